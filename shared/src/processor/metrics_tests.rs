//! The EMF lines the processor prints on each path, read back the way CloudWatch reads them.

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use super::*;
use crate::{
    clock::ManualClock,
    ids::{EventId, TenantId},
    memory::{MemoryEventStore, MemoryRetryQueue},
    metrics::{CapturedMetrics, Published},
    record::{Correlation, Verification},
    secret::SecretSlot,
};

const NOW: u64 = 1_750_000_000;
const INVOICE_PAID: &[u8] = include_bytes!("../../../events/payloads/stripe/invoice.paid.json");

type MemoryProcessor = Processor<MemoryEventStore, MemoryRetryQueue, ManualClock, NoJitter>;

/// GIVEN one stored Stripe invoice.paid event, received 2 s ago, and metrics captured.
fn processor() -> (MemoryProcessor, Arc<CapturedMetrics>, Message) {
    let sink = CapturedMetrics::new();
    let p = Processor::new(
        MemoryEventStore::new(),
        MemoryRetryQueue::new(),
        ManualClock::at_unix(NOW),
        NoJitter,
        ProcessorSettings::default(),
    )
    .with_metrics(sink.clone());
    let key = EventKey {
        tenant: TenantId::parse("acme").expect("tenant"),
        provider: Provider::Stripe,
        event_id: EventId::parse("evt_1PayloadInvoicePaid0001").expect("id"),
    };
    let mut record = EventRecord::received(
        key.clone(),
        Some("invoice.paid".to_owned()),
        None,
        Correlation::default(),
        Verification::Verified(SecretSlot::Current),
        INVOICE_PAID.to_vec(),
        UNIX_EPOCH + Duration::from_secs(NOW - 2),
    );
    record.status = EventStatus::Enqueued;
    p.store.insert(record);
    let message = Message {
        message_id: "m-1".into(),
        receipt_handle: Some("r-1".into()),
        body: serde_json::to_string(&QueueMessage::new(&key, &Correlation::default()))
            .expect("json"),
        receive_count: 1,
        sent_at: None,
    };
    (p, sink, message)
}

fn published(sink: &CapturedMetrics) -> Vec<Published> {
    sink.lines()
        .iter()
        .map(|l| Published::parse(l).expect("valid EMF"))
        .collect()
}

/// A batch of one's line: dimensions with a function roll-up, a count and a latency; no ids
/// (they are in the message's log line).
fn assert_message_line(line: &Published, outcome: &str) {
    assert_eq!(line.namespace, "Webhooks");
    assert_eq!(
        line.dimension_sets,
        [vec!["function", "provider", "outcome"], vec!["function"]]
    );
    assert_eq!(line.field("function"), Some("processor"));
    assert_eq!(line.field("provider"), Some("stripe"));
    assert_eq!(line.field("outcome"), Some(outcome));
    for id in ["tenant", "event_id", "message_id"] {
        assert_eq!(line.field(id), None, "{id}");
    }
    assert_eq!(line.metric(outcome), Some(("Count", 1.0)));
    assert!(matches!(line.metric("processing_latency"), Some(("Milliseconds", ms)) if ms >= 0.0));
}

#[tokio::test]
async fn a_processed_event_counts_processed_with_both_latencies() {
    let (p, sink, message) = processor();

    assert_eq!(p.process(&message).await, Disposition::Processed);

    let lines = published(&sink);
    assert_eq!(lines.len(), 1);
    assert_message_line(&lines[0], "processed");
    assert_eq!(
        lines[0].names(),
        ["processed", "processing_latency", "end_to_end_latency"]
    );
    assert_eq!(
        lines[0].metric("end_to_end_latency"),
        Some(("Milliseconds", 2_000.0))
    );
}

#[tokio::test]
async fn a_batch_publishes_one_line_per_outcome_with_every_latency() {
    let (p, sink, message) = processor();
    let mut unreadable = message.clone();
    unreadable.message_id = "m-2".into();
    unreadable.body = "not a pointer".into();
    let mut duplicate = message.clone();
    duplicate.message_id = "m-3".into();
    let mut again = message.clone();
    again.message_id = "m-4".into();

    // One at a time, so the first processes it and the others find it done.
    let p = Processor {
        settings: ProcessorSettings {
            concurrency: 1,
            ..ProcessorSettings::default()
        },
        ..p
    };
    let failed = p
        .process_batch(&[message, unreadable, duplicate, again])
        .await;

    assert!(failed.is_empty(), "{failed:?}");
    let lines = published(&sink);
    let outcomes: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l.field("provider").unwrap_or_default(),
                l.field("outcome").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("stripe", "processed"),
            ("unknown", "dead_lettered"),
            ("stripe", "skipped")
        ]
    );
    let skipped = &lines[2];
    assert_eq!(skipped.metric("skipped"), Some(("Count", 2.0)));
    let (_, latencies) = skipped.values("processing_latency").expect("latencies");
    assert_eq!(latencies.len(), 2);
    assert_eq!(skipped.values("end_to_end_latency"), None);
}

#[tokio::test]
async fn a_failed_attempt_counts_failed_without_end_to_end_latency() {
    let (p, sink, message) = processor();
    p.store.set_commits_failing(true);

    assert_eq!(p.process(&message).await, Disposition::Retry);

    let lines = published(&sink);
    assert_eq!(lines.len(), 1);
    assert_message_line(&lines[0], "failed");
    assert_eq!(lines[0].names(), ["failed", "processing_latency"]);
}

#[tokio::test]
async fn the_last_failed_attempt_also_counts_retry_exhausted() {
    let (p, sink, mut message) = processor();
    p.store.set_commits_failing(true);
    message.receive_count = 6;

    assert_eq!(p.process(&message).await, Disposition::DeadLettered);

    let lines = published(&sink);
    assert_eq!(lines.len(), 2);
    let exhausted = &lines[0];
    assert_eq!(exhausted.names(), ["retry_exhausted"]);
    assert_eq!(exhausted.metric("retry_exhausted"), Some(("Count", 1.0)));
    assert_eq!(
        exhausted.dimension_sets,
        [vec!["function", "provider"], vec!["function"]]
    );
    assert_eq!(exhausted.field("tenant"), Some("acme"));
    assert_message_line(&lines[1], "dead_lettered");
}

#[tokio::test]
async fn a_message_that_is_not_a_pointer_is_still_counted() {
    let (p, sink, mut message) = processor();
    message.body = "not a pointer".into();

    assert_eq!(p.process(&message).await, Disposition::DeadLettered);

    let line = &published(&sink)[0];
    assert_eq!(line.field("provider"), Some("unknown"));
    assert_eq!(line.field("outcome"), Some("dead_lettered"));
    assert_eq!(line.names(), ["dead_lettered", "processing_latency"]);
}
