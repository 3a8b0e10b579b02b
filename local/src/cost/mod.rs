//! The cost meter: every AWS call a flow makes, recorded at the SDK boundary (the
//! [`crate::fault_proxy`] between the SDK clients and the emulator), priced call by call with
//! the services' own billing rules at on-demand list prices, and the write units each partition
//! key value takes (the heat a busy tenant puts on one partition).
//!
//! - [`size`]: DynamoDB's item size.
//! - [`dynamodb`]: write and read units, index writes and heat.
//! - [`prices`]: the list prices.
//! - [`flows`]: the flows measured (`make cost`, and the test that pins their units);
//!   [`outbound`] the published one.
//!
//! Lambda's duration is modelled, not timed, so the figures are deterministic: each invocation
//! bills 2 ms of its own plus a typical in-region latency for each AWS call it makes
//! ([`prices::CALL_MILLIS`]). Logs are the bytes the functions write at the deployed level
//! and format (JSON, INFO), metric lines included, plus the platform's own lines unless the
//! template sets `SystemLogLevel: WARN`.

pub mod dynamodb;
pub mod flows;
pub mod outbound;
pub mod prices;
pub mod size;

use std::{collections::BTreeMap, fmt::Write as _};

use self::dynamodb::{Billing, Units};
use crate::fault_proxy::RecordedCall;

/// How the ingress is reached: API Gateway's HTTP API, or a Lambda Function URL (which adds
/// nothing to the function's own price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    ApiGateway,
    FunctionUrl,
}

impl Front {
    pub fn label(self) -> &'static str {
        match self {
            Self::ApiGateway => "API Gateway",
            Self::FunctionUrl => "Function URL",
        }
    }
}

/// Everything a flow consumed, summed over its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub dynamodb: Units,
    /// Calls by operation (`dynamodb:PutItem`, ...), as recorded.
    pub calls: BTreeMap<String, u64>,
    /// SQS requests, in 64 KB chunks.
    pub sqs_requests: f64,
    pub kms_requests: f64,
    pub s3_puts: f64,
    pub s3_gets: f64,
    /// Requests through the front door (API Gateway bills per 512 KB).
    pub front_requests: f64,
    pub lambda_requests: f64,
    pub lambda_gb_seconds: f64,
    pub log_bytes: f64,
}

impl Usage {
    /// Price recorded calls, and model the Lambda invocations they were made in.
    pub fn of_calls(billing: &Billing, calls: &[RecordedCall]) -> Self {
        let mut usage = Self::default();
        for call in calls {
            *usage.calls.entry(call.operation.clone()).or_default() += 1;
            let (service, action) = call.operation.split_once(':').unwrap_or(("", ""));
            match service {
                "dynamodb" => {
                    let units = if call.images.is_empty() {
                        billing.reads(action, &call.request, &call.response)
                    } else {
                        billing.writes(
                            &call.images,
                            call.status == 200,
                            action == "TransactWriteItems",
                        )
                    };
                    usage.dynamodb.add(&units);
                }
                "sqs" => usage.sqs_requests += chunks(call.request_bytes, 64 * 1024),
                "kms" => usage.kms_requests += 1.0,
                "s3" => match action {
                    "PUT" | "POST" | "COPY" | "LIST" => usage.s3_puts += 1.0,
                    "GET" | "HEAD" => usage.s3_gets += 1.0,
                    // DELETE is free.
                    _ => {}
                },
                _ => {}
            }
        }
        usage
    }

    /// Add `invocations` of a function with `memory_mb`, whose AWS calls are `calls`.
    pub fn invoke(&mut self, invocations: f64, memory_mb: u64, calls: &[RecordedCall]) {
        let call_millis: f64 = calls
            .iter()
            .map(|c| prices::call_millis(&c.operation))
            .sum();
        let millis = invocations * prices::OWN_MILLIS + call_millis;
        self.lambda_requests += invocations;
        self.lambda_gb_seconds += memory_mb as f64 / 1024.0 * millis / 1000.0;
    }

    pub fn add(&mut self, other: &Usage) {
        self.dynamodb.add(&other.dynamodb);
        for (k, v) in &other.calls {
            *self.calls.entry(k.clone()).or_default() += v;
        }
        self.sqs_requests += other.sqs_requests;
        self.kms_requests += other.kms_requests;
        self.s3_puts += other.s3_puts;
        self.s3_gets += other.s3_gets;
        self.front_requests += other.front_requests;
        self.lambda_requests += other.lambda_requests;
        self.lambda_gb_seconds += other.lambda_gb_seconds;
        self.log_bytes += other.log_bytes;
    }

    /// The bill's lines per event: (what, units per event, $ per million events).
    pub fn lines(&self, events: u64, front: Front) -> Vec<(String, f64, f64)> {
        let n = events.max(1) as f64;
        let per = |x: f64| x / n;
        let mut lines = Vec::new();
        let front_price = match front {
            Front::ApiGateway => prices::API_GATEWAY_HTTP_PER_MILLION,
            Front::FunctionUrl => 0.0,
        };
        lines.push((
            format!("{} requests", front.label()),
            per(self.front_requests),
            per(self.front_requests) * front_price,
        ));
        lines.push((
            "Lambda requests".to_owned(),
            per(self.lambda_requests),
            per(self.lambda_requests) * prices::LAMBDA_REQUEST_PER_MILLION,
        ));
        lines.push((
            "Lambda GB-seconds (modelled)".to_owned(),
            per(self.lambda_gb_seconds),
            per(self.lambda_gb_seconds) * prices::LAMBDA_ARM_GB_SECOND * 1e6,
        ));
        for (place, units) in &self.dynamodb.write {
            lines.push((
                format!("DynamoDB write units: {place}"),
                per(*units),
                per(*units) * prices::DYNAMODB_WRITE_PER_MILLION,
            ));
        }
        for (place, units) in &self.dynamodb.read {
            lines.push((
                format!("DynamoDB read units: {place}"),
                per(*units),
                per(*units) * prices::DYNAMODB_READ_PER_MILLION,
            ));
        }
        lines.push((
            "SQS requests (64 KB chunks)".to_owned(),
            per(self.sqs_requests),
            per(self.sqs_requests) * prices::SQS_PER_MILLION,
        ));
        if self.s3_puts > 0.0 || self.s3_gets > 0.0 {
            lines.push((
                "S3 PUT-class requests".to_owned(),
                per(self.s3_puts),
                per(self.s3_puts) * prices::S3_PUT_PER_MILLION,
            ));
            lines.push((
                "S3 GET-class requests".to_owned(),
                per(self.s3_gets),
                per(self.s3_gets) * prices::S3_GET_PER_MILLION,
            ));
        }
        if self.kms_requests > 0.0 {
            lines.push((
                "KMS requests".to_owned(),
                per(self.kms_requests),
                per(self.kms_requests) * prices::KMS_PER_MILLION,
            ));
        }
        lines.push((
            "CloudWatch Logs bytes".to_owned(),
            per(self.log_bytes),
            per(self.log_bytes) * prices::LOGS_PER_GB / 1e9 * 1e6,
        ));
        lines
    }

    /// Dollars per million events.
    pub fn dollars_per_million(&self, events: u64, front: Front) -> f64 {
        self.lines(events, front).iter().map(|(_, _, d)| d).sum()
    }

    /// The partition key values events share, hottest first: (table or `table/index`, key,
    /// write units per event). A key that names one event (its id is in `ids`) takes that
    /// event's writes once, whatever the rate, so it is not heat and is left out. Keys the
    /// product spreads over hashed shards (`…#{shard}`, see [`shards_of`]) are summed per
    /// family (`…#*`) and divided by the shard count: at volume each shard takes an even share,
    /// which a few events' sample of the hash would misstate either way.
    pub fn heat(&self, events: u64, ids: &[String]) -> Vec<(String, String, f64)> {
        let n = events.max(1) as f64;
        let mut families: BTreeMap<(String, String), f64> = BTreeMap::new();
        for ((place, key), units) in &self.dynamodb.write_heat {
            if ids.iter().any(|id| key.contains(id.as_str())) {
                continue;
            }
            let (family, share) = match (shards_of(place), key.rsplit_once('#')) {
                (Some(shards), Some((family, shard))) if shard.parse::<u8>().is_ok() => {
                    (format!("{family}#*"), f64::from(shards))
                }
                _ => (key.clone(), 1.0),
            };
            *families.entry((place.clone(), family)).or_default() += units / share;
        }
        let mut hot: Vec<(String, String, f64)> = families
            .into_iter()
            .map(|((place, key), units)| (place, key, units / n))
            .collect();
        hot.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        hot
    }

    /// The hottest shared key's write units per event.
    pub fn hottest(&self, events: u64, ids: &[String]) -> f64 {
        self.heat(events, ids).first().map_or(0.0, |h| h.2)
    }
}

/// How many hashed shards the product spreads a place's partition keys over, if it does.
fn shards_of(place: &str) -> Option<u8> {
    match place {
        "EventsTable/by_tenant_status" => Some(shared::aws::STATUS_SHARDS),
        "EventsTable/by_pending_status" => Some(shared::aws::PENDING_SHARDS),
        "ProjectionsTable" => Some(shared::projection::PROJECTION_SHARDS),
        "OutboundTable/by_due" => Some(shared::aws::DUE_SHARDS),
        "OutboundTable/by_endpoint" => Some(shared::aws::ENDPOINT_SHARDS),
        _ => None,
    }
}

fn chunks(bytes: usize, chunk: usize) -> f64 {
    bytes.div_ceil(chunk).max(1) as f64
}

/// One flow's result.
#[derive(Debug, Clone)]
pub struct FlowCost {
    pub name: String,
    pub events: u64,
    /// The counted events' ids: keys that name one of them are that event's own.
    pub ids: Vec<String>,
    pub usage: Usage,
}

impl FlowCost {
    /// Write units per event.
    pub fn write_units(&self) -> f64 {
        self.usage.dynamodb.total_write() / self.events.max(1) as f64
    }

    /// Read units per event.
    pub fn read_units(&self) -> f64 {
        self.usage.dynamodb.total_read() / self.events.max(1) as f64
    }

    /// The hottest shared partition key's write units per event.
    pub fn hottest(&self) -> f64 {
        self.usage.hottest(self.events, &self.ids)
    }
}

/// The report `make cost` prints: a bill per flow and front door, then the partition heat.
pub fn report(flows: &[FlowCost]) -> String {
    let mut out = String::new();
    for flow in flows {
        let _ = writeln!(
            out,
            "\n## {} ({} events)\n\n| item | per event | $ per million |\n| --- | ---: | ---: |",
            flow.name, flow.events
        );
        for (what, units, dollars) in flow.usage.lines(flow.events, Front::ApiGateway) {
            let _ = writeln!(out, "| {what} | {units:.3} | {dollars:.3} |");
        }
        let _ = writeln!(
            out,
            "| **total with API Gateway** | | **{:.2}** |\n| **total with the Function URL** | | **{:.2}** |",
            flow.usage
                .dollars_per_million(flow.events, Front::ApiGateway),
            flow.usage
                .dollars_per_million(flow.events, Front::FunctionUrl),
        );
        let mut calls: Vec<String> = flow
            .usage
            .calls
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", *n as f64 / flow.events.max(1) as f64))
            .collect();
        calls.push("and the event source's ReceiveMessage and DeleteMessageBatch 0.10 each".into());
        let _ = writeln!(out, "\nAWS calls per event: {}", calls.join(", "));
    }
    let _ = writeln!(
        out,
        "\n## Partition heat (write units per event on one shared partition key value, one tenant sending all; at most 0.33 keeps 3,000 events/s under 1,000 units/s)\n\n| flow | table / index | hottest key | WRU per event |\n| --- | --- | --- | ---: |"
    );
    for flow in flows {
        let mut seen = std::collections::BTreeSet::new();
        for (place, key, units) in flow.usage.heat(flow.events, &flow.ids) {
            if seen.insert(place.clone()) {
                let _ = writeln!(out, "| {} | {place} | `{key}` | {units:.3} |", flow.name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_shards_share_their_familys_heat_and_one_events_keys_are_no_heat() {
        let mut usage = Usage::default();
        let heat = &mut usage.dynamodb.write_heat;
        // Four events: their status entries landed on two of the eight shards.
        heat.insert(
            (
                "EventsTable/by_tenant_status".into(),
                "t#processed#1".into(),
            ),
            3.0,
        );
        heat.insert(
            (
                "EventsTable/by_tenant_status".into(),
                "t#processed#6".into(),
            ),
            1.0,
        );
        // An unsharded key takes every event's unit; a record's own key is not heat.
        heat.insert(("OutboundTable".into(), "t#t".into()), 4.0);
        heat.insert(("EventsTable".into(), "t#stripe#evt_1".into()), 2.0);

        let hot = usage.heat(4, &["evt_1".to_owned()]);

        assert_eq!(
            hot,
            [
                ("OutboundTable".into(), "t#t".into(), 1.0),
                (
                    "EventsTable/by_tenant_status".into(),
                    "t#processed#*".into(),
                    4.0 / f64::from(shared::aws::STATUS_SHARDS) / 4.0
                ),
            ]
        );
    }
}
