//! Error text for logs and operators.

use std::error::Error;

/// An error and its causes on one line: `outer: middle: root`. Transport errors say little at
/// the top (`dispatch failure`); the cause is what an operator needs.
pub fn one_line(err: &dyn Error) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_the_chain() {
        let err = Outer(std::io::Error::other("root cause"));
        assert_eq!(one_line(&err), "outer: root cause");
    }
}
