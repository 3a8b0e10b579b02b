//! Reading a function's settings from its environment, the way every function does: required
//! names fail the cold start with a clear message, optional ones fall back to a default.

use std::{fmt::Display, str::FromStr};

use thiserror::Error;

/// A missing or unreadable setting: the function refuses to start rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Settings looked up through a function, so tests never touch the process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env<F>(pub F);

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A value that must be present and non-empty.
    pub fn required(&self, name: &'static str) -> Result<String, EnvError> {
        (self.0)(name)
            .filter(|v| !v.is_empty())
            .ok_or(EnvError::Missing(name))
    }

    /// A value parsed with `FromStr`, or `default` when unset.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match (self.0)(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| EnvError::Invalid {
                name,
                problem: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn required_values_must_be_present_and_non_empty() {
        let e = env(&[("A", "x"), ("B", "")]);
        assert_eq!(e.required("A"), Ok("x".into()));
        assert_eq!(e.required("B"), Err(EnvError::Missing("B")));
        assert_eq!(e.required("C"), Err(EnvError::Missing("C")));
    }

    #[test]
    fn parsed_values_default_when_unset_and_fail_when_unreadable() {
        let e = env(&[("N", " 42 "), ("BAD", "lots")]);
        assert_eq!(e.parsed_or("N", 1u64), Ok(42));
        assert_eq!(e.parsed_or("UNSET", 7u64), Ok(7));
        assert!(matches!(
            e.parsed_or("BAD", 1u64),
            Err(EnvError::Invalid { name: "BAD", .. })
        ));
    }
}
