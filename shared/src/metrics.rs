//! CloudWatch Embedded Metric Format: one JSON line on stdout per measurement, turned into
//! metrics by CloudWatch Logs with no SDK call and no extra latency. Dimensions stay
//! low-cardinality (function, provider, outcome); the tenant goes in properties.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::clock::unix_millis;

/// The CloudWatch namespace every metric of this system is published under.
pub const NAMESPACE: &str = "Webhooks";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
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
    metrics: Vec<(&'static str, f64, Unit)>,
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

    pub fn count(mut self, name: &'static str) -> Self {
        self.metrics.push((name, 1.0, Unit::Count));
        self
    }

    pub fn millis(mut self, name: &'static str, value: f64) -> Self {
        self.metrics.push((name, value, Unit::Milliseconds));
        self
    }

    /// A searchable value that is not a dimension (tenant, event id).
    pub fn property(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    /// The EMF JSON document.
    pub fn render(&self) -> String {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
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
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in self.dimensions.iter().chain(&self.properties) {
            doc.insert((*name).into(), Value::String(value.clone()));
        }
        for (name, value, _) in &self.metrics {
            doc.insert((*name).into(), json!(value));
        }
        Value::Object(doc).to_string()
    }

    /// Print the line where CloudWatch Logs picks it up.
    pub fn emit(&self) {
        println!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_emf() {
        let line = MetricLine::new(SystemTime::UNIX_EPOCH)
            .dimension("function", "ingress")
            .dimension("provider", "stripe")
            .count("received")
            .millis("ack_latency", 12.5)
            .property("tenant", "acme")
            .render();
        let doc: Value = serde_json::from_str(&line).expect("json");
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Webhooks");
        assert_eq!(cw["Dimensions"], json!([["function", "provider"]]));
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "ack_latency", "Unit": "Milliseconds"})
        );
        assert_eq!(doc["received"], 1.0);
        assert_eq!(doc["tenant"], "acme");
        assert_eq!(doc["provider"], "stripe");
    }
}
