//! CloudWatch Embedded Metric Format: JSON lines on stdout, turned into metrics by CloudWatch
//! Logs with no SDK call and no extra latency. Dimensions stay low-cardinality (function,
//! provider, outcome); the tenant goes in properties. A line may carry many samples of a metric
//! (EMF's value arrays, up to [`MAX_VALUES`]), so a batch costs one line, not one per message.
//!
//! Every line is published twice: under all its dimensions, and rolled up under `function`
//! alone. CloudWatch alarms cannot add up metrics across dimension values, so the alarms and the
//! dashboard in template.yaml read the `function` roll-up; the full set is for drilling down.
//!
//! The names below are the contract with template.yaml's alarms and dashboard: rename one here
//! and there together.

use std::{fmt::Debug, sync::Arc, time::SystemTime};

use serde_json::{Map, Value, json};

use crate::clock::unix_millis;

/// The most values EMF takes for one metric in one line.
pub const MAX_VALUES: usize = 100;

/// The CloudWatch namespace every metric of this system is published under.
pub const NAMESPACE: &str = "Webhooks";

// Dimensions: a handful of values each, so the number of metrics stays bounded.
pub const FUNCTION: &str = "function";
pub const PROVIDER: &str = "provider";
pub const OUTCOME: &str = "outcome";

// Properties: searchable in the logs, never dimensions (a tenant per metric would be unbounded).
pub const TENANT: &str = "tenant";
pub const EVENT_ID: &str = "event_id";
pub const MESSAGE_ID: &str = "message_id";
/// API Gateway's (or Lambda's, behind a Function URL) request id.
pub const REQUEST_ID: &str = "request_id";
/// The sender's `X-Request-Id`.
pub const CLIENT_REQUEST_ID: &str = "client_request_id";
/// Why a signature failed (`VerifyError::reason`).
pub const REASON: &str = "reason";

// Ingress counts, one per delivery by outcome, and its latency.
pub const RECEIVED: &str = "received";
pub const DUPLICATE: &str = "duplicate";
/// Slack's `url_verification` answered.
pub const CHALLENGE: &str = "challenge";
pub const SIGNATURE_FAILURE: &str = "signature_failure";
/// A security signal: a delivery accepted without a signature on a tenant's token route.
pub const UNSIGNED_ACCEPTED: &str = "unsigned_accepted";
pub const ENQUEUE_FAILURE: &str = "enqueue_failure";
pub const CONFLICT: &str = "conflict";
pub const UNAVAILABLE: &str = "unavailable";
/// Not found, too large or without a readable id: the sender's mistake.
pub const REJECTED: &str = "rejected";
/// From the request reaching the use case to its answer; one sample per delivery, so its
/// sample count is also the number of deliveries.
pub const ACK_LATENCY: &str = "ack_latency";

// Processor counts, one per message by disposition, and its latencies.
pub const PROCESSED: &str = "processed";
pub const IGNORED: &str = "ignored";
pub const SKIPPED: &str = "skipped";
pub const DEAD_LETTERED: &str = "dead_lettered";
pub const FAILED: &str = "failed";
/// An event's last attempt failed: it is dead and its message goes to the DLQ.
pub const RETRY_EXHAUSTED: &str = "retry_exhausted";
pub const PROCESSING_LATENCY: &str = "processing_latency";
/// From the ingress storing the event to the processor committing it.
pub const END_TO_END_LATENCY: &str = "end_to_end_latency";

// Replay counts (operator actions).
pub const REPLAYED: &str = "replayed";
pub const DLQ_REDRIVEN: &str = "dlq_redriven";
/// An operator's replay or redrive of one event that could not be completed (its pointer not
/// sent): the denominator of the replay success alarm, with `replayed` and `dlq_redriven`.
pub const REPLAY_FAILED: &str = "replay_failed";
/// An event reconcile put back on its way (its message was lost).
pub const RECONCILED: &str = "reconciled";

// The `function` dimension's values.
pub const INGRESS: &str = "ingress";
pub const PROCESSOR: &str = "processor";
pub const REPLAY: &str = "replay";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One measurement line: dimensions, values and free-form properties.
#[derive(Debug, Clone)]
pub struct MetricLine {
    at: SystemTime,
    dimensions: Vec<(&'static str, String)>,
    /// Each metric's samples: one value, or several published from one line.
    metrics: Vec<(&'static str, Vec<f64>, Unit)>,
    properties: Vec<(&'static str, String)>,
}

impl MetricLine {
    pub fn new(at: SystemTime) -> Self {
        Self {
            at,
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(self, name: &'static str) -> Self {
        self.counted(name, 1)
    }

    /// `n` occurrences at once (CloudWatch's Sum adds them up).
    pub fn counted(mut self, name: &'static str, n: usize) -> Self {
        self.metrics.push((name, vec![n as f64], Unit::Count));
        self
    }

    pub fn millis(self, name: &'static str, value: f64) -> Self {
        self.millis_each(name, vec![value])
    }

    /// Several samples of one latency; at most [`MAX_VALUES`] (the rest are dropped).
    pub fn millis_each(mut self, name: &'static str, mut values: Vec<f64>) -> Self {
        values.truncate(MAX_VALUES);
        if !values.is_empty() {
            self.metrics.push((name, values, Unit::Milliseconds));
        }
        self
    }

    /// A searchable value that is not a dimension (tenant, event id).
    pub fn property(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    /// The dimension sets: all dimensions, plus the `function` roll-up when there are more.
    fn dimension_sets(&self) -> Vec<Vec<&'static str>> {
        let all: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
        let mut sets = vec![all.clone()];
        if all.len() > 1 && all.contains(&FUNCTION) {
            sets.push(vec![FUNCTION]);
        }
        sets
    }

    /// The EMF JSON document.
    pub fn render(&self) -> String {
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": unix_millis(self.at),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": self.dimension_sets(),
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in self.dimensions.iter().chain(&self.properties) {
            doc.insert((*name).into(), Value::String(value.clone()));
        }
        for (name, values, _) in &self.metrics {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            doc.insert((*name).into(), value);
        }
        Value::Object(doc).to_string()
    }

    /// Hand the line to `sink`.
    pub fn emit_to(&self, sink: &dyn MetricSink) {
        sink.emit(self);
    }

    /// Print the line to stdout, where CloudWatch Logs picks it up. Use cases write through
    /// their [`MetricSink`] instead, so tests can read what they emit.
    pub fn emit(&self) {
        StdoutMetrics.emit(self);
    }
}

/// Where a use case's metric lines go: stdout when deployed, a [`CapturedMetrics`] in tests.
pub trait MetricSink: Send + Sync + Debug {
    fn emit(&self, line: &MetricLine);
}

/// The deployed sink: Lambda sends stdout to CloudWatch Logs, which extracts the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutMetrics;

impl MetricSink for StdoutMetrics {
    fn emit(&self, line: &MetricLine) {
        println!("{}", line.render());
    }
}

/// The sink use cases start with.
pub fn stdout() -> Arc<dyn MetricSink> {
    Arc::new(StdoutMetrics)
}

/// Keeps every rendered line, so tests assert on exactly what CloudWatch would read.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct CapturedMetrics {
    lines: std::sync::Mutex<Vec<String>>,
}

#[cfg(any(test, feature = "test-util"))]
impl CapturedMetrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The lines so far, as rendered.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl MetricSink for CapturedMetrics {
    fn emit(&self, line: &MetricLine) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.render());
        }
    }
}

/// An EMF line read back: what CloudWatch would publish from it. For tests and tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub namespace: String,
    /// Dimension sets, each a list of names.
    pub dimension_sets: Vec<Vec<String>>,
    /// (metric name, unit, values): one value, or a line's several samples.
    pub metrics: Vec<(String, String, Vec<f64>)>,
    /// Every top-level member but `_aws`: dimension values, properties and metric values.
    pub fields: Map<String, Value>,
}

/// Why a line is not a valid EMF document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmfError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(&'static str),
}

impl Published {
    /// Read one line the way CloudWatch does: every declared dimension and metric must have a
    /// member of the same name, metrics numeric.
    pub fn parse(line: &str) -> Result<Self, EmfError> {
        let mut doc: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| EmfError::Json(e.to_string()))?;
        let aws = doc.remove("_aws").ok_or(EmfError::Invalid("no _aws"))?;
        if !aws["Timestamp"].is_u64() {
            return Err(EmfError::Invalid("Timestamp is not epoch milliseconds"));
        }
        let directive = &aws["CloudWatchMetrics"][0];
        let namespace = directive["Namespace"]
            .as_str()
            .ok_or(EmfError::Invalid("no Namespace"))?
            .to_owned();
        let strings = |value: &Value| -> Option<Vec<String>> {
            value
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let dimension_sets = directive["Dimensions"]
            .as_array()
            .ok_or(EmfError::Invalid("no Dimensions"))?
            .iter()
            .map(|set| strings(set).ok_or(EmfError::Invalid("a dimension set is not names")))
            .collect::<Result<Vec<_>, _>>()?;
        for name in dimension_sets.iter().flatten() {
            if !doc.get(name).is_some_and(Value::is_string) {
                return Err(EmfError::Invalid("a dimension has no string value"));
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or(EmfError::Invalid("no Metrics"))?
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().ok_or(EmfError::Invalid("metric name"))?;
                let unit = m["Unit"].as_str().ok_or(EmfError::Invalid("metric unit"))?;
                let values = match doc.get(name) {
                    Some(Value::Array(values)) if values.len() <= MAX_VALUES => {
                        values.iter().map(Value::as_f64).collect::<Option<Vec<_>>>()
                    }
                    Some(value) => value.as_f64().map(|v| vec![v]),
                    None => None,
                }
                .filter(|values| !values.is_empty())
                .ok_or(EmfError::Invalid("a metric has no numeric value"))?;
                Ok((name.to_owned(), unit.to_owned(), values))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            namespace,
            dimension_sets,
            metrics,
            fields: doc,
        })
    }

    /// A metric's (unit, value) if the line carries it; the sum when it carries several
    /// values (what CloudWatch's Sum statistic adds up).
    pub fn metric(&self, name: &str) -> Option<(&str, f64)> {
        self.values(name)
            .map(|(unit, values)| (unit, values.iter().sum()))
    }

    /// A metric's (unit, samples), if the line carries it.
    pub fn values(&self, name: &str) -> Option<(&str, &[f64])> {
        self.metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, unit, values)| (unit.as_str(), values.as_slice()))
    }

    /// The metric names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.metrics.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    /// A dimension's or property's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_emf_with_a_function_roll_up() {
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension(FUNCTION, INGRESS)
            .dimension(PROVIDER, "stripe")
            .count(RECEIVED)
            .millis(ACK_LATENCY, 12.5)
            .property(TENANT, "acme")
            .render();
        let doc: Value = serde_json::from_str(&line).expect("json");
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Webhooks");
        assert_eq!(
            cw["Dimensions"],
            json!([["function", "provider"], ["function"]])
        );
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "ack_latency", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["received"], 1.0);
        assert_eq!(doc["tenant"], "acme");
        assert_eq!(doc["provider"], "stripe");

        let published = Published::parse(&line).expect("valid EMF");
        assert_eq!(published.metric(ACK_LATENCY), Some(("Milliseconds", 12.5)));
        assert_eq!(published.field(TENANT), Some("acme"));
    }

    #[test]
    fn a_line_with_only_the_function_dimension_is_not_rolled_up_twice() {
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension(FUNCTION, REPLAY)
            .count(REPLAYED)
            .render();
        let published = Published::parse(&line).expect("valid EMF");
        assert_eq!(published.dimension_sets, [vec!["function".to_owned()]]);
    }

    #[test]
    fn the_captured_sink_keeps_what_stdout_would_print() {
        let sink = CapturedMetrics::new();
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension(FUNCTION, PROCESSOR)
            .count(PROCESSED);
        sink.emit(&line);
        assert_eq!(sink.lines(), [line.render()]);
    }

    #[test]
    fn several_samples_go_out_as_one_value_array() {
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension(FUNCTION, PROCESSOR)
            .counted(PROCESSED, 3)
            .millis_each(PROCESSING_LATENCY, vec![1.0, 2.5, 4.0])
            .millis_each(END_TO_END_LATENCY, Vec::new())
            .render();
        let doc: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(doc[PROCESSED], 3.0);
        assert_eq!(doc[PROCESSING_LATENCY], json!([1.0, 2.5, 4.0]));
        let published = Published::parse(&line).expect("valid EMF");
        assert_eq!(published.names(), [PROCESSED, PROCESSING_LATENCY]);
        assert_eq!(
            published.values(PROCESSING_LATENCY),
            Some(("Milliseconds", &[1.0, 2.5, 4.0][..]))
        );
        assert_eq!(published.metric(PROCESSED), Some(("Count", 3.0)));
    }

    #[test]
    fn more_samples_than_emf_takes_are_dropped_not_refused() {
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension(FUNCTION, PROCESSOR)
            .millis_each(PROCESSING_LATENCY, vec![1.0; MAX_VALUES + 5])
            .render();
        let published = Published::parse(&line).expect("valid EMF");
        let (_, values) = published.values(PROCESSING_LATENCY).expect("values");
        assert_eq!(values.len(), MAX_VALUES);
    }

    #[test]
    fn parsing_refuses_a_metric_without_its_value() {
        let line = r#"{"_aws":{"Timestamp":0,"CloudWatchMetrics":[{"Namespace":"Webhooks","Dimensions":[[]],"Metrics":[{"Name":"received","Unit":"Count"}]}]}}"#;
        assert_eq!(
            Published::parse(line),
            Err(EmfError::Invalid("a metric has no numeric value"))
        );
    }
}
