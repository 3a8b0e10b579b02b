//! The EMF lines the ingress prints on each path, read back the way CloudWatch reads them:
//! names, units, dimensions, and the tenant kept out of the dimensions.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::{
    clock::ManualClock,
    memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
    metrics::{CapturedMetrics, Published},
    secret::Secret,
    tenant::{ProviderConfig, TokenDigest, UnsignedPolicy},
};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "whsec_metrics_test";
const BODY: &[u8] =
    br#"{"id":"evt_m1","object":"event","type":"invoice.paid","created":1699999990}"#;
const TOKEN: &str = "tok_0123456789abcdef0123456789abcdef";

type MemoryIngress = Ingress<MemoryEventStore, MemoryQueue, MemoryDirectory, ManualClock>;

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

/// GIVEN acme with Stripe signed and generic unsigned on its token route, metrics captured.
fn ingress() -> (MemoryIngress, Arc<CapturedMetrics>) {
    let stripe = ProviderConfig::new(acme(), Provider::Stripe, Secret::new(SECRET));
    let mut generic = ProviderConfig::new(acme(), Provider::Generic, Secret::new("gen"));
    generic.unsigned = UnsignedPolicy::Allow {
        token_digest: TokenDigest::of(TOKEN),
    };
    let sink = CapturedMetrics::new();
    let ingress = Ingress::new(
        MemoryEventStore::new(),
        MemoryQueue::new(),
        MemoryDirectory::with([stripe, generic]),
        ManualClock::at_unix(NOW),
        IngressSettings::default(),
    )
    .with_metrics(sink.clone());
    (ingress, sink)
}

fn signed(secret: &str) -> HeaderMap {
    let config = ProviderConfig::new(acme(), Provider::Stripe, Secret::new(SECRET));
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let mut headers = HeaderMap::new();
    for (name, value) in config
        .verifier()
        .scheme
        .sign(BODY, &Secret::new(secret), at, "evt_m1")
        .expect("sign")
    {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(&value).expect("value"),
        );
    }
    headers
}

fn delivery<'a>(provider: &'a str, headers: &'a HeaderMap, token: Option<&'a str>) -> Delivery<'a> {
    Delivery {
        tenant: "acme",
        provider,
        path_token: token,
        headers,
        body: BODY,
        correlation: Correlation::default(),
        host: Some("hooks.example.com"),
        method: "POST",
        path_and_query: Some("/webhooks/acme/stripe"),
    }
}

/// The last line printed, parsed as CloudWatch would.
fn last(sink: &CapturedMetrics) -> Published {
    let lines = sink.lines();
    Published::parse(lines.last().expect("a metric line")).expect("valid EMF")
}

/// Every delivery's line: namespace, dimensions with a function roll-up, tenant as property,
/// and one ack latency sample.
fn assert_delivery_line(line: &Published, provider: &str, outcome: &str) {
    assert_eq!(line.namespace, "Webhooks");
    assert_eq!(
        line.dimension_sets,
        [vec!["function", "provider", "outcome"], vec!["function"]]
    );
    assert_eq!(line.field("function"), Some("ingress"));
    assert_eq!(line.field("provider"), Some(provider));
    assert_eq!(line.field("outcome"), Some(outcome));
    assert_eq!(line.field("tenant"), Some("acme"));
    assert!(matches!(line.metric("ack_latency"), Some(("Milliseconds", ms)) if ms >= 0.0));
}

#[tokio::test]
async fn an_accepted_delivery_counts_received_with_its_latency() {
    let (ingress, sink) = ingress();
    let headers = signed(SECRET);

    let mut accepted = delivery("stripe", &headers, None);
    accepted.correlation = Correlation {
        request_id: Some("apigw-1".into()),
        client_request_id: Some("req-1".into()),
        trace: None,
    };
    ingress.handle(accepted).await;

    // The delivery's one line: what an operator searches by is on it.
    let line = last(&sink);
    assert_delivery_line(&line, "stripe", "accepted");
    assert_eq!(line.names(), ["received", "ack_latency"]);
    assert_eq!(line.metric("received"), Some(("Count", 1.0)));
    assert!(
        line.field("event_id")
            .is_some_and(|id| id.starts_with("evt_"))
    );
    assert_eq!(line.field("request_id"), Some("apigw-1"));
    assert_eq!(line.field("client_request_id"), Some("req-1"));
    assert_eq!(sink.lines().len(), 1);
}

#[tokio::test]
async fn a_duplicate_counts_duplicate_not_received() {
    let (ingress, sink) = ingress();
    let headers = signed(SECRET);
    ingress.handle(delivery("stripe", &headers, None)).await;

    ingress.handle(delivery("stripe", &headers, None)).await;

    let line = last(&sink);
    assert_delivery_line(&line, "stripe", "duplicate");
    assert_eq!(line.names(), ["duplicate", "ack_latency"]);
    assert_eq!(line.metric("duplicate"), Some(("Count", 1.0)));
}

#[tokio::test]
async fn a_signature_failure_is_counted_with_its_reason_as_a_property() {
    let (ingress, sink) = ingress();
    let headers = signed("whsec_someone_else");

    ingress.handle(delivery("stripe", &headers, None)).await;

    let line = last(&sink);
    assert_delivery_line(&line, "stripe", "signature_failure");
    assert_eq!(line.names(), ["signature_failure", "ack_latency"]);
    assert_eq!(line.metric("signature_failure"), Some(("Count", 1.0)));
    assert!(line.field("reason").is_some_and(|r| !r.is_empty()));
    assert!(
        !line
            .dimension_sets
            .iter()
            .flatten()
            .any(|d| d == "reason" || d == "tenant"),
        "reason and tenant are properties, never dimensions"
    );
}

#[tokio::test]
async fn an_unsigned_delivery_on_the_token_route_raises_unsigned_accepted() {
    let (ingress, sink) = ingress();
    let none = HeaderMap::new();

    ingress
        .handle(delivery("generic", &none, Some(TOKEN)))
        .await;

    let line = last(&sink);
    assert_delivery_line(&line, "generic", "accepted");
    assert_eq!(
        line.names(),
        ["received", "ack_latency", "unsigned_accepted"]
    );
    assert_eq!(line.metric("unsigned_accepted"), Some(("Count", 1.0)));
}

#[tokio::test]
async fn an_enqueue_failure_is_counted_apart_from_the_unavailable_answer() {
    let (ingress, sink) = ingress();
    ingress.queue.set_unavailable(true);
    let headers = signed(SECRET);

    ingress.handle(delivery("stripe", &headers, None)).await;

    let lines: Vec<Published> = sink
        .lines()
        .iter()
        .map(|l| Published::parse(l).expect("valid EMF"))
        .collect();
    assert_eq!(lines.len(), 2);
    let failure = &lines[0];
    assert_eq!(failure.names(), ["enqueue_failure"]);
    assert_eq!(failure.metric("enqueue_failure"), Some(("Count", 1.0)));
    assert_eq!(
        failure.dimension_sets,
        [vec!["function", "provider"], vec!["function"]]
    );
    assert_eq!(failure.field("tenant"), Some("acme"));
    assert_eq!(failure.field("event_id"), Some("evt_m1"));
    assert_delivery_line(&lines[1], "stripe", "unavailable");
    assert_eq!(lines[1].names(), ["unavailable", "ack_latency"]);
}
