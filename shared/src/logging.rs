//! The functions' log subscriber: Lambda's JSON log format at the level its logging controls
//! set, each line carrying its event's span once. The runtime's default subscriber also prints
//! the list of every enclosing span, which repeats the same ids on every line and roughly
//! doubles the bytes CloudWatch Logs bills.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, filter::LevelFilter, fmt::MakeWriter};

/// Install the subscriber on stdout, as the functions' `main` does: JSON when Lambda's
/// `AWS_LAMBDA_LOG_FORMAT` says so, plain text otherwise; the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let installed = if json {
        tracing::subscriber::set_global_default(json_subscriber(std::io::stdout, from_env(level)))
    } else {
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_target(false)
                .without_time()
                .with_env_filter(from_env(level))
                .finish(),
        )
    };
    if installed.is_err() {
        eprintln!("a log subscriber was already installed; keeping it");
    }
}

/// The deployed JSON format, writing to `writer`: the cost meter counts these bytes.
pub fn json_subscriber<W>(writer: W, filter: EnvFilter) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// `level` by default; `RUST_LOG`'s per-module directives on top, as the runtime allows.
fn from_env(level: LevelFilter) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{info, info_span};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_carries_its_span_once_and_no_span_list() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = json_subscriber(move || writer.clone(), EnvFilter::new("info"));
        tracing::subscriber::with_default(subscriber, || {
            let outer = info_span!("invoke", request_id = "r-1");
            let _outer = outer.enter();
            let span = info_span!("message", tenant = "acme", event_id = "evt_1");
            let _entered = span.enter();
            info!(attempt = 1, "processed");
            tracing::debug!("not at info");
        });
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        let mut parsed = text.lines().map(serde_json::from_str::<serde_json::Value>);
        let line = parsed.next().expect("one line").expect("json");
        assert!(parsed.next().is_none(), "{text}");
        assert_eq!(line["fields"]["message"], "processed");
        assert_eq!(line["span"]["event_id"], "evt_1");
        assert_eq!(line["span"]["tenant"], "acme");
        assert!(line.get("spans").is_none(), "{line}");
    }
}
