//! The replay function's actions against the emulator: the gameday "replay exercise from DLQ"
//! end to end, reconcile after a queue outage, the health report under seeded failures, listing
//! and discarding, and dry runs that change nothing.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::event_source::{EventSourceMapping, Poll};
use serde_json::{Value, json};
use shared::{
    aws::{DynamoEventStore, DynamoTenantNames, SqsDeadLetterQueue, SqsEventQueue},
    clock::ManualClock,
    operations::{Operations, ReplaySettings},
    ports::EventStore,
    projection::ProjectionKind,
    record::{Correlation, EventRecord, EventStatus, Verification},
    retry::RetrySchedule,
    secret::SecretSlot,
};

use crate::support::*;

type AwsOperations =
    Operations<DynamoEventStore, SqsEventQueue, SqsDeadLetterQueue, DynamoTenantNames, ManualClock>;

fn signed(id: &str, request_id: &str) -> lambda_http::Request {
    let body = invoice(id);
    let mut headers = sign(&stripe(), SECRET, &body, NOW, "");
    headers.push(("x-request-id".into(), request_id.into()));
    request("acme", "stripe", None, &headers, &body)
}

fn operations(stack: &Stack, now_secs: u64) -> AwsOperations {
    Operations::new(
        stack.store(),
        stack.queue(),
        SqsDeadLetterQueue::new(stack.sqs.clone(), stack.resources.dead_letter_queue_url()),
        DynamoTenantNames::new(stack.dynamodb.clone(), stack.resources.tenants_table()),
        ManualClock::at_unix(now_secs),
    )
    .with_settings(ReplaySettings {
        // Received messages come back at once after a failed test, not in five minutes.
        hold: Duration::from_secs(30),
        ..ReplaySettings::default()
    })
}

async fn run(ops: &AwsOperations, action: Value) -> Value {
    let summary = ops.run_json(action.clone()).await.expect("runs");
    assert!(summary.get("error").is_none(), "{action} → {summary}");
    summary
}

async fn processor_with(stack: &Stack, projections_table: &str) -> processor::AwsProcessor {
    let sdk = local_stack::aws::sdk_config(&endpoint()).await;
    let mut config = local_stack::dev::processor_config(&stack.resources).expect("config");
    config.settings.schedule = "0,0,0,0,0,0"
        .parse::<RetrySchedule>()
        .expect("schedule")
        .with_jitter(0.0);
    config.projections_table = projections_table.to_owned();
    processor::build(&sdk, &config)
}

fn mapping(stack: &Stack) -> EventSourceMapping {
    EventSourceMapping {
        sqs: stack.sqs.clone(),
        queue_url: stack.resources.events_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::ZERO,
    }
}

async fn record(stack: &Stack, id: &str) -> EventRecord {
    stack
        .store()
        .get(&key(id))
        .await
        .expect("read")
        .expect("record")
}

/// Messages in the DLQ, visible or not.
async fn dlq_depth(stack: &Stack) -> u64 {
    use shared::ports::DeadLetterQueue;
    SqsDeadLetterQueue::new(stack.sqs.clone(), stack.resources.dead_letter_queue_url())
        .depth()
        .await
        .expect("depth")
}

fn strings(summary: &Value, field: &str) -> Vec<String> {
    summary[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {summary}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

#[tokio::test]
async fn gameday_replay_exercise_from_the_dlq() {
    // GIVEN a delivery whose processing fails every time (its projections table is missing,
    // as in a downstream outage) until it is dead and SQS has moved it to the DLQ.
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    let (status, _) = call(&stack.ingress(), signed("evt_gameday", "req-gameday-1")).await;
    assert_eq!(status, 200);
    let broken = processor_with(&stack, "no-such-table").await;
    for attempt in 1..=6 {
        mapping(&stack)
            .poll_once(&broken, &format!("broken-{attempt}"))
            .await
            .expect("poll");
    }
    assert_eq!(
        mapping(&stack)
            .poll_once(&broken, "broken-7")
            .await
            .expect("poll"),
        Poll::default()
    );
    let dead = record(&stack, "evt_gameday").await;
    assert_eq!(
        (dead.status, dead.retry_exhausted),
        (EventStatus::Dead, true)
    );
    assert_eq!(dead.expires_at, None, "dead records never expire");
    assert_eq!(dlq_depth(&stack).await, 1);
    let ops = operations(&stack, NOW + 3_600);

    // WHEN the operator dry-runs the redrive, THEN nothing changes.
    let dry = run(
        &ops,
        json!({"action": "redrive", "dry_run": true, "tenant": "acme", "note": "gameday"}),
    )
    .await;
    assert_eq!(strings(&dry, "redriven"), ["acme/stripe/evt_gameday"]);
    assert_eq!(record(&stack, "evt_gameday").await, dead);
    assert!(stack.drain_queue().await.is_empty());
    assert_eq!(dlq_depth(&stack).await, 1);

    // WHEN the cause is fixed and the operator redrives for real.
    let summary = run(
        &ops,
        json!({"action": "redrive", "tenant": "acme", "note": "ops:gameday projections restored"}),
    )
    .await;

    // THEN the event is back on the queue with its original correlation ids, and recorded.
    assert_eq!(strings(&summary, "redriven"), ["acme/stripe/evt_gameday"]);
    assert_eq!(
        dlq_depth(&stack).await,
        0,
        "deleted from the DLQ after the send"
    );
    let requeued = record(&stack, "evt_gameday").await;
    assert_eq!(requeued.status, EventStatus::Enqueued);
    assert_eq!(requeued.replay_count, 1);
    assert!(requeued.replayed_at.is_some());
    assert_eq!(
        requeued.note.as_deref(),
        Some("ops:gameday projections restored")
    );
    assert_eq!(requeued.correlation, dead.correlation);
    assert_eq!(
        requeued.correlation.client_request_id.as_deref(),
        Some("req-gameday-1")
    );

    // AND the fixed processor applies it exactly once.
    let fixed = processor_with(&stack, stack.resources.projections_table()).await;
    assert_eq!(
        mapping(&stack)
            .poll_once(&fixed, "fixed-1")
            .await
            .expect("poll"),
        Poll {
            received: 1,
            failed: 0
        }
    );
    let processed = record(&stack, "evt_gameday").await;
    assert_eq!(processed.status, EventStatus::Processed);
    assert_eq!(
        processed.attempts, 1,
        "a fresh retry budget after the replay"
    );
    assert!(processed.expires_at.is_some(), "processed records expire");
    let invoices = stack
        .projections_of("acme", ProjectionKind::StripeInvoice)
        .await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        invoices[0].get("source_event_id"),
        Some(&AttributeValue::S("evt_gameday".into()))
    );

    // AND verifying no duplicate side effects: a forced replay re-runs it, and the projection
    // is unchanged (versioned by the provider's event time).
    let forced = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_gameday"], "force": true, "note": "ops:gameday verify idempotence"}),
    )
    .await;
    assert_eq!(strings(&forced, "replayed"), ["acme/stripe/evt_gameday"]);
    mapping(&stack)
        .poll_once(&fixed, "fixed-2")
        .await
        .expect("poll");
    assert_eq!(
        record(&stack, "evt_gameday").await.status,
        EventStatus::Processed
    );
    assert_eq!(
        stack
            .projections_of("acme", ProjectionKind::StripeInvoice)
            .await,
        invoices
    );

    // AND a second redrive finds nothing left.
    let empty = run(&ops, json!({"action": "redrive"})).await;
    assert_eq!(empty["examined"], 0);
}

#[tokio::test]
async fn a_dlq_message_of_a_processed_event_is_removed_not_re_run() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    assert_eq!(
        call(&stack.ingress(), signed("evt_done", "req-done"))
            .await
            .0,
        200
    );
    let fixed = processor_with(&stack, stack.resources.projections_table()).await;
    mapping(&stack)
        .poll_once(&fixed, "p-1")
        .await
        .expect("poll");
    let before = record(&stack, "evt_done").await;
    assert_eq!(before.status, EventStatus::Processed);
    // A stale copy in the DLQ (say, a duplicate that ran out of receives).
    let pointer = shared::message::QueueMessage::new(&key("evt_done"), &before.correlation);
    stack
        .sqs
        .send_message()
        .queue_url(stack.resources.dead_letter_queue_url())
        .message_body(serde_json::to_string(&pointer).expect("json"))
        .send()
        .await
        .expect("send");

    let summary = run(&operations(&stack, NOW + 60), json!({"action": "redrive"})).await;

    assert_eq!(
        strings(&summary, "already_processed"),
        ["acme/stripe/evt_done"]
    );
    assert!(strings(&summary, "redriven").is_empty());
    assert_eq!(dlq_depth(&stack).await, 0);
    assert!(stack.drain_queue().await.is_empty());
    assert_eq!(record(&stack, "evt_done").await, before);
}

#[tokio::test]
async fn reconcile_recovers_an_event_whose_requeue_message_was_lost() {
    // GIVEN an event an operator put back on the queue, whose message was then lost (an SQS
    // outage between the mark and the send). An SQS outage at the ingress stores nothing: the
    // pointer goes before the record.
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    seed(&stack, "evt_stuck", EventStatus::Enqueued, 0).await;
    let stuck = record(&stack, "evt_stuck").await;
    assert_eq!(stuck.status, EventStatus::Enqueued);

    // WHEN reconcile runs before the threshold, or as a dry run after it, THEN nothing changes.
    let early = run(
        &operations(&stack, NOW + 60),
        json!({"action": "reconcile"}),
    )
    .await;
    assert!(strings(&early, "requeued").is_empty());
    let ops = operations(&stack, NOW + 1_000);
    let dry = run(&ops, json!({"action": "reconcile", "dry_run": true})).await;
    assert_eq!(strings(&dry, "requeued"), ["acme/stripe/evt_stuck"]);
    assert_eq!(record(&stack, "evt_stuck").await, stuck);
    assert!(stack.drain_queue().await.is_empty());

    // WHEN the scheduled reconcile runs after the threshold.
    let summary = run(
        &ops,
        json!({"action": "reconcile", "note": "scheduled reconcile"}),
    )
    .await;

    // THEN the event is enqueued with its correlation ids, and the processor applies it.
    assert_eq!(strings(&summary, "requeued"), ["acme/stripe/evt_stuck"]);
    let requeued = record(&stack, "evt_stuck").await;
    assert_eq!(requeued.status, EventStatus::Enqueued);
    assert_eq!(requeued.note.as_deref(), Some("scheduled reconcile"));
    let processor = processor_with(&stack, stack.resources.projections_table()).await;
    assert_eq!(
        mapping(&stack)
            .poll_once(&processor, "p-1")
            .await
            .expect("poll"),
        Poll {
            received: 1,
            failed: 0
        }
    );
    let processed = record(&stack, "evt_stuck").await;
    assert_eq!(processed.status, EventStatus::Processed, "{processed:?}");
    // Nothing pending any more: the next run finds nothing.
    let again = run(
        &operations(&stack, NOW + 2_000),
        json!({"action": "reconcile"}),
    )
    .await;
    assert!(strings(&again, "requeued").is_empty());
}

/// A Stripe `invoice.paid` the processor can apply.
fn invoice_paid(id: &str) -> Vec<u8> {
    json!({"id": id, "object": "event", "type": "invoice.paid", "created": NOW,
        "data": {"object": {"id": format!("in_{id}"), "object": "invoice", "customer": "cus_1",
        "amount_due": 2000, "amount_paid": 2000, "currency": "usd", "status": "paid"}}})
    .to_string()
    .into_bytes()
}

/// Store a record as the pipeline would have left it.
async fn seed(stack: &Stack, id: &str, status: EventStatus, secs_after_now: u64) {
    let at = |s: u64| shared::clock::from_unix_millis(i64::try_from(s * 1_000).unwrap_or(0));
    let mut r = EventRecord::received(
        key(id),
        Some("invoice.paid".into()),
        None,
        Correlation::default(),
        Verification::Verified(SecretSlot::Current),
        invoice_paid(id),
        at(NOW + secs_after_now),
    );
    r.status = status;
    r.enqueued_at = Some(at(NOW + secs_after_now));
    r.completed_at = Some(at(NOW + secs_after_now + 1));
    r.attempts = if status == EventStatus::Dead { 6 } else { 1 };
    r.retry_exhausted = status == EventStatus::Dead;
    stack.store().put_if_absent(&r).await.expect("seeded");
}

#[tokio::test]
async fn health_turns_degraded_then_critical_under_seeded_failures() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    for i in 0..20 {
        seed(&stack, &format!("evt_ok_{i}"), EventStatus::Processed, i).await;
    }
    let ops = operations(&stack, NOW + 600);
    let thresholds = json!({"failures_degraded": 1, "failures_critical": 5,
        "success_rate_degraded": 0.9, "success_rate_critical": 0.5});
    let health = |tenant: Option<&str>| {
        let mut action = json!({"action": "health", "thresholds": thresholds});
        if let Some(t) = tenant {
            action["tenant"] = json!(t);
        }
        action
    };

    let healthy = run(&ops, health(Some("acme"))).await;
    assert_eq!(healthy["status"], "HEALTHY", "{healthy}");
    assert_eq!(healthy["end_to_end_latency"]["p99_ms"], 1_000.0);

    seed(&stack, "evt_dead_0", EventStatus::Dead, 30).await;
    let degraded = run(&ops, health(None)).await;
    assert_eq!(degraded["status"], "DEGRADED", "{degraded}");
    assert_eq!(degraded["tenants"], json!(["acme"]));

    for i in 1..6 {
        seed(&stack, &format!("evt_dead_{i}"), EventStatus::Dead, 30).await;
    }
    let critical = run(&ops, health(Some("acme"))).await;
    assert_eq!(critical["status"], "CRITICAL", "{critical}");
    assert_eq!(critical["counts"]["dead"], 6);
}

#[tokio::test]
async fn dead_events_are_listed_page_by_page_and_discarded_for_audit() {
    let stack = Stack::new().await;
    for i in 0..3 {
        seed(&stack, &format!("evt_dead_{i}"), EventStatus::Dead, i * 10).await;
    }
    let ops = operations(&stack, NOW + 600);

    let first = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "limit": 2}),
    )
    .await;
    let ids = |page: &Value| -> Vec<String> {
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["event_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["evt_dead_2", "evt_dead_1"]);
    let second = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "limit": 2, "next_token": first["next_token"]}),
    )
    .await;
    assert_eq!(ids(&second), ["evt_dead_0"]);

    let dry = run(
        &ops,
        json!({"action": "discard", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead_0"], "note": "ops: test event", "dry_run": true}),
    )
    .await;
    assert_eq!(strings(&dry, "discarded"), ["acme/stripe/evt_dead_0"]);
    assert_eq!(record(&stack, "evt_dead_0").await.status, EventStatus::Dead);

    run(
        &ops,
        json!({"action": "discard", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead_0"], "note": "ops: test event"}),
    )
    .await;
    let discarded = record(&stack, "evt_dead_0").await;
    assert_eq!(discarded.status, EventStatus::Discarded);
    assert_eq!(discarded.note.as_deref(), Some("ops: test event"));
    assert!(discarded.expires_at.is_some());
    let listed = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "status": "discarded"}),
    )
    .await;
    assert_eq!(ids(&listed), ["evt_dead_0"]);
    let remaining = run(&ops, json!({"action": "list", "tenant": "acme"})).await;
    assert_eq!(ids(&remaining), ["evt_dead_2", "evt_dead_1"]);
}

#[tokio::test]
async fn reconcile_takes_over_abandoned_processing_dead_letters_spent_and_leaves_live_leases() {
    let stack = Stack::new().await;
    let at = |s: u64| shared::clock::from_unix_millis(i64::try_from(s * 1_000).unwrap_or(0));
    let claimed = |id: &str, lease_ends: u64, attempts: u32| {
        let mut r = EventRecord::received(
            key(id),
            Some("invoice.paid".into()),
            None,
            Correlation {
                request_id: Some(format!("apigw-{id}")),
                client_request_id: None,
                trace: None,
            },
            Verification::Verified(SecretSlot::Current),
            b"{}".to_vec(),
            at(NOW),
        );
        r.status = EventStatus::Processing;
        r.enqueued_at = Some(at(NOW));
        r.lease_owner = Some("crashed-worker".into());
        r.lease_until = Some(at(lease_ends));
        r.attempts = attempts;
        r
    };
    let store = stack.store();
    for record in [
        claimed("evt_abandoned", NOW + 60, 1),
        claimed("evt_live", NOW + 10_000, 1),
        claimed("evt_spent", NOW + 60, 6),
    ] {
        store.put_if_absent(&record).await.expect("seeded");
    }
    let ops = operations(&stack, NOW + 1_000);

    let summary = run(&ops, json!({"action": "reconcile"})).await;

    assert_eq!(strings(&summary, "requeued"), ["acme/stripe/evt_abandoned"]);
    assert_eq!(
        strings(&summary, "dead_lettered"),
        ["acme/stripe/evt_spent"]
    );
    let requeued = record(&stack, "evt_abandoned").await;
    assert_eq!(requeued.status, EventStatus::Enqueued);
    assert_eq!((requeued.lease_owner, requeued.lease_until), (None, None));
    assert_eq!(requeued.attempts, 1, "reconcile keeps the attempts");
    assert_eq!(
        record(&stack, "evt_live").await.status,
        EventStatus::Processing
    );
    // Its processor died on the last attempt: dead, exhausted, its copy on the DLQ.
    let spent = record(&stack, "evt_spent").await;
    assert_eq!(
        (spent.status, spent.retry_exhausted),
        (EventStatus::Dead, true)
    );
    assert_eq!(dlq_depth(&stack).await, 1);
    let sent = stack.drain_queue().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["request_id"], "apigw-evt_abandoned");
}

#[tokio::test]
async fn a_dlq_message_that_is_no_pointer_stays_in_the_dlq() {
    let stack = Stack::new().await;
    stack
        .sqs
        .send_message()
        .queue_url(stack.resources.dead_letter_queue_url())
        .message_body("garbage")
        .send()
        .await
        .expect("send");

    let summary = run(&operations(&stack, NOW), json!({"action": "redrive"})).await;

    assert_eq!(summary["skipped"][0]["reason"], "not an event pointer");
    // Released at the end of the run: visible again at once.
    let again = stack
        .sqs
        .receive_message()
        .queue_url(stack.resources.dead_letter_queue_url())
        .send()
        .await
        .expect("receive");
    assert_eq!(again.messages().len(), 1);
}
