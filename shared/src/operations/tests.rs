//! The operations on in-memory adapters, GIVEN / WHEN / THEN.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::{
    clock::ManualClock,
    memory::{MemoryDeadLetterQueue, MemoryDirectory, MemoryEventStore, MemoryQueue},
    ports::{EventStore, PutOutcome},
    record::{Correlation, EventStatus, Verification},
    secret::{Secret, SecretSlot},
    tenant::ProviderConfig,
};

const NOW: u64 = 1_750_000_000;

fn counts(sink: &crate::metrics::CapturedMetrics, name: &str) -> usize {
    sink.lines()
        .iter()
        .filter_map(|l| crate::metrics::Published::parse(l).ok())
        .filter(|p| p.metric(name).is_some() && p.field("function") == Some("replay"))
        .count()
}

type Ops =
    Operations<MemoryEventStore, MemoryQueue, MemoryDeadLetterQueue, MemoryDirectory, ManualClock>;

fn ops() -> Ops {
    let directory = MemoryDirectory::with([
        ProviderConfig::new(tenant("acme"), Provider::Stripe, Secret::new("s")),
        ProviderConfig::new(tenant("globex"), Provider::Stripe, Secret::new("s")),
    ]);
    Operations::new(
        MemoryEventStore::new(),
        MemoryQueue::new(),
        MemoryDeadLetterQueue::new(),
        directory,
        ManualClock::at_unix(NOW),
    )
}

fn at(secs_before_now: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW - secs_before_now)
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("tenant")
}

fn key_of(tenant_name: &str, id: &str) -> EventKey {
    EventKey {
        tenant: tenant(tenant_name),
        provider: Provider::Stripe,
        event_id: EventId::parse(id).expect("id"),
    }
}

/// GIVEN a record of `tenant` in `status`, received `age` seconds ago.
fn given(ops: &Ops, tenant_name: &str, id: &str, status: EventStatus, age: u64) -> EventKey {
    let key = key_of(tenant_name, id);
    let mut record = EventRecord::received(
        key.clone(),
        Some("invoice.paid".into()),
        None,
        Correlation {
            request_id: Some(format!("apigw-{id}")),
            client_request_id: Some(format!("x-{id}")),
            trace: None,
        },
        Verification::Verified(SecretSlot::Current),
        b"{}".to_vec(),
        at(age),
    );
    record.status = status;
    match status {
        EventStatus::Received => {}
        EventStatus::Enqueued | EventStatus::Failed => record.enqueued_at = Some(at(age)),
        EventStatus::Processing => {
            record.enqueued_at = Some(at(age));
            record.lease_owner = Some("worker".into());
            record.lease_until = Some(at(age) + Duration::from_secs(60));
            record.attempts = 1;
        }
        EventStatus::Processed => {
            record.enqueued_at = Some(at(age));
            record.completed_at = Some(at(age) + Duration::from_millis(250));
            record.attempts = 1;
            record.expires_at = Some(at(0) + Duration::from_secs(86_400));
        }
        EventStatus::Dead | EventStatus::Discarded => {
            record.enqueued_at = Some(at(age));
            record.completed_at = Some(at(age) + Duration::from_secs(1));
            record.attempts = 6;
            record.retry_exhausted = true;
            record.last_error = Some("downstream down".into());
        }
    }
    record.status_at = record.completed_at.unwrap_or(at(age));
    ops.store.insert(record);
    key
}

/// The DLQ body the processor or SQS would have left for `key`.
fn dead_letter(ops: &Ops, key: &EventKey) {
    let message = QueueMessage::new(
        key,
        &Correlation {
            request_id: Some(format!("apigw-{}", key.event_id)),
            client_request_id: Some(format!("x-{}", key.event_id)),
            trace: None,
        },
    );
    ops.dead_letters
        .push(serde_json::to_string(&message).expect("json"));
}

fn record(ops: &Ops, key: &EventKey) -> EventRecord {
    ops.store.record(key).expect("record")
}

async fn run(ops: &Ops, action: serde_json::Value) -> serde_json::Value {
    ops.run_json(action).await.expect("runs")
}

fn ids(summary: &serde_json::Value, field: &str) -> Vec<String> {
    summary[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {summary}"))
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect()
}

// --- input -------------------------------------------------------------------------------

#[tokio::test]
async fn misspelt_fields_and_bad_limits_are_refused_and_change_nothing() {
    let ops = ops();
    let key = given(&ops, "acme", "evt_1", EventStatus::Dead, 60);
    let before = ops.store.all();
    for action in [
        json!({"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"], "dryrun": true}),
        json!({"action": "redrive", "limit": 0}),
        json!({"action": "redrive", "limit": 1_000_000}),
        json!({"action": "explode"}),
        json!({"action": "discard", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"], "note": "  "}),
        json!({"action": "replay", "tenant": "ACME", "provider": "stripe", "ids": ["evt_1"]}),
        json!({"action": "replay", "tenant": "acme", "provider": "paddel", "ids": ["evt_1"]}),
        json!({"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["a", "b"], "limit": 1}),
    ] {
        let summary = run(&ops, action.clone()).await;
        assert!(summary["error"].is_string(), "{action} → {summary}");
    }
    assert_eq!(ops.store.all(), before);
    assert_eq!(record(&ops, &key).status, EventStatus::Dead);
    assert!(ops.queue.sent().is_empty());
}

// --- redrive -----------------------------------------------------------------------------

#[tokio::test]
async fn redrive_sends_dead_events_back_with_their_correlation_and_removes_stale_ones() {
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    let done = given(&ops, "acme", "evt_done", EventStatus::Processed, 600);
    let gone = given(&ops, "acme", "evt_gone", EventStatus::Discarded, 600);
    for key in [&dead, &done, &gone] {
        dead_letter(&ops, key);
    }
    ops.dead_letters.push("not json");

    let summary = run(
        &ops,
        json!({"action": "redrive", "note": "ops: after the fix of INC-7"}),
    )
    .await;

    assert_eq!(ids(&summary, "redriven"), ["acme/stripe/evt_dead"]);
    assert_eq!(ids(&summary, "already_processed"), ["acme/stripe/evt_done"]);
    assert_eq!(ids(&summary, "discarded"), ["acme/stripe/evt_gone"]);
    assert_eq!(summary["skipped"][0]["reason"], "not an event pointer");
    assert_eq!(summary["examined"], 4);
    // Only the unreadable message stays in the DLQ, visible again.
    assert_eq!(ops.dead_letters.visible(), ["not json"]);
    assert_eq!(ops.dead_letters.held(), 0);
    let sent = ops.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].request_id.as_deref(), Some("apigw-evt_dead"));
    assert_eq!(sent[0].client_request_id.as_deref(), Some("x-evt_dead"));
    assert_eq!(sent[0].replay_count, 1);
    let replayed = record(&ops, &dead);
    assert_eq!(replayed.status, EventStatus::Enqueued);
    assert_eq!(replayed.replay_count, 1);
    assert_eq!(replayed.replayed_at, Some(at(0)));
    assert_eq!(
        replayed.note.as_deref(),
        Some("ops: after the fix of INC-7")
    );
    assert_eq!((replayed.attempts, replayed.retry_exhausted), (0, false));
    assert_eq!(
        replayed.expires_at, None,
        "a replayed event never expires unprocessed"
    );
    // The processed record is untouched: not re-run.
    assert_eq!(record(&ops, &done).status, EventStatus::Processed);
}

#[tokio::test]
async fn redrives_and_replays_are_counted_in_metrics_dry_runs_are_not() {
    let sink = crate::metrics::CapturedMetrics::new();
    let ops = ops().with_metrics(sink.clone());
    let a = given(&ops, "acme", "evt_a", EventStatus::Dead, 600);
    given(&ops, "acme", "evt_b", EventStatus::Dead, 600);
    dead_letter(&ops, &a);

    run(&ops, json!({"action": "redrive", "dry_run": true})).await;
    run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["evt_b"], "dry_run": true}),
    )
    .await;
    assert!(sink.lines().is_empty());

    run(&ops, json!({"action": "redrive"})).await;
    run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["evt_b"]}),
    )
    .await;
    assert_eq!(counts(&sink, crate::metrics::DLQ_REDRIVEN), 1);
    assert_eq!(counts(&sink, crate::metrics::REPLAYED), 1);
}

#[tokio::test]
async fn a_redrive_dry_run_changes_nothing_and_leaves_every_message_visible() {
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    let done = given(&ops, "acme", "evt_done", EventStatus::Processed, 600);
    dead_letter(&ops, &dead);
    dead_letter(&ops, &done);
    let records = ops.store.all();
    let messages = ops.dead_letters.visible();

    let summary = run(&ops, json!({"action": "redrive", "dry_run": true})).await;

    assert_eq!(summary["dry_run"], true);
    assert_eq!(ids(&summary, "redriven"), ["acme/stripe/evt_dead"]);
    assert_eq!(ids(&summary, "already_processed"), ["acme/stripe/evt_done"]);
    assert_eq!(ops.store.all(), records);
    assert_eq!(ops.dead_letters.visible().len(), messages.len());
    assert_eq!(ops.dead_letters.held(), 0);
    assert!(ops.queue.sent().is_empty());
}

#[tokio::test]
async fn redrive_filters_by_tenant_and_type_and_stops_at_its_limit() {
    let ops = ops();
    for i in 0..3 {
        let key = given(&ops, "acme", &format!("evt_a{i}"), EventStatus::Dead, 600);
        dead_letter(&ops, &key);
    }
    let other = given(&ops, "globex", "evt_g", EventStatus::Dead, 600);
    dead_letter(&ops, &other);

    let summary = run(
        &ops,
        json!({"action": "redrive", "tenant": "acme", "event_type": "invoice.paid", "limit": 2}),
    )
    .await;

    assert_eq!(ids(&summary, "redriven").len(), 2);
    assert_eq!(summary["more"], true);
    assert_eq!(record(&ops, &other).status, EventStatus::Dead);
    // One acme message and the globex one wait for the next run.
    assert_eq!(ops.dead_letters.visible().len(), 2);

    let by_type = run(
        &ops,
        json!({"action": "redrive", "event_type": "customer.created"}),
    )
    .await;
    assert!(ids(&by_type, "redriven").is_empty());
    assert_eq!(by_type["filtered_out"], 2);
}

#[tokio::test]
async fn a_failed_send_leaves_the_message_in_the_dlq_and_the_record_for_reconcile() {
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    dead_letter(&ops, &dead);
    ops.queue.set_unavailable(true);

    let summary = run(&ops, json!({"action": "redrive"})).await;

    assert!(ids(&summary, "redriven").is_empty());
    assert_eq!(
        ops.dead_letters.visible().len(),
        1,
        "deleted only after a send"
    );
    assert_eq!(record(&ops, &dead).status, EventStatus::Enqueued);
}

// --- replay ------------------------------------------------------------------------------

#[tokio::test]
async fn replay_re_enqueues_from_the_record_and_re_runs_processed_only_with_force() {
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    let done = given(&ops, "acme", "evt_done", EventStatus::Processed, 600);
    let busy = given(&ops, "acme", "evt_busy", EventStatus::Processing, 10);

    let summary = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead", "evt_done", "evt_busy", "evt_none"], "note": "ops: INC-7"}),
    )
    .await;

    assert_eq!(ids(&summary, "replayed"), ["acme/stripe/evt_dead"]);
    assert_eq!(ids(&summary, "not_found"), ["acme/stripe/evt_none"]);
    assert_eq!(summary["skipped"].as_array().map(Vec::len), Some(2));
    assert_eq!(record(&ops, &busy).status, EventStatus::Processing);
    assert_eq!(record(&ops, &done).status, EventStatus::Processed);
    assert_eq!(
        ops.queue.sent()[0].request_id.as_deref(),
        Some("apigw-evt_dead")
    );

    let forced = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_done"], "force": true}),
    )
    .await;
    assert_eq!(ids(&forced, "replayed"), ["acme/stripe/evt_done"]);
    let rerun = record(&ops, &done);
    assert_eq!(rerun.status, EventStatus::Enqueued);
    assert_eq!(rerun.expires_at, None);
    assert_eq!(rerun.note.as_deref(), Some("replay by id"));
    assert_eq!(record(&ops, &dead).replay_count, 1);
}

#[tokio::test]
async fn a_replay_dry_run_changes_nothing() {
    let ops = ops();
    given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    let before = ops.store.all();

    let summary = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead"], "dry_run": true}),
    )
    .await;

    assert_eq!(ids(&summary, "replayed"), ["acme/stripe/evt_dead"]);
    assert_eq!(ops.store.all(), before);
    assert!(ops.queue.sent().is_empty());
}

#[tokio::test]
async fn an_erased_event_is_refused_by_replay_and_redrive_with_the_reason() {
    // GIVEN a dead event whose payload an operator erased, with its DLQ copy
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    ops.store.insert(EventRecord {
        payload: Vec::new(),
        erased_at: Some(at(0)),
        erased_by: Some("dpo".into()),
        ..record(&ops, &dead)
    });
    dead_letter(&ops, &dead);
    let before = ops.store.all();

    // WHEN an operator replays it, even by force, or redrives the DLQ
    let replay = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead"], "force": true}),
    )
    .await;
    let redrive = run(&ops, json!({"action": "redrive"})).await;

    // THEN both refuse it, saying why, and nothing changes or is sent
    for summary in [&replay, &redrive] {
        assert_eq!(
            summary["skipped"][0]["reason"],
            crate::record::ERASED_REASON,
            "{summary}"
        );
    }
    assert!(ids(&replay, "replayed").is_empty());
    assert_eq!(ops.store.all(), before);
    assert!(ops.queue.sent().is_empty());
}

#[tokio::test]
async fn replay_never_reaches_another_tenants_event() {
    let ops = ops();
    let theirs = given(&ops, "globex", "evt_x", EventStatus::Dead, 600);
    let summary = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["evt_x"]}),
    )
    .await;
    assert_eq!(ids(&summary, "not_found"), ["acme/stripe/evt_x"]);
    assert_eq!(record(&ops, &theirs).status, EventStatus::Dead);
}

// --- reconcile ---------------------------------------------------------------------------

#[tokio::test]
async fn reconcile_re_enqueues_stuck_events_and_leaves_fresh_and_leased_ones() {
    let ops = ops();
    // A new `received` record is in no index: its pointer was on the queue before it.
    let received = given(&ops, "acme", "evt_rcv", EventStatus::Received, 3_600);
    let enqueued = given(&ops, "globex", "evt_enq", EventStatus::Enqueued, 3_600);
    let abandoned = given(
        &ops,
        "acme",
        "evt_abandoned",
        EventStatus::Processing,
        3_600,
    );
    let fresh = given(&ops, "acme", "evt_fresh", EventStatus::Received, 10);
    let leased = given(&ops, "acme", "evt_leased", EventStatus::Processing, 30);
    let spent = given(&ops, "acme", "evt_spent", EventStatus::Processing, 3_600);
    ops.store.insert(EventRecord {
        attempts: 6,
        ..record(&ops, &spent)
    });

    let summary = run(&ops, json!({"action": "reconcile"})).await;

    let mut requeued = ids(&summary, "requeued");
    requeued.sort();
    assert_eq!(
        requeued,
        ["acme/stripe/evt_abandoned", "globex/stripe/evt_enq"]
    );
    // Its processor died on the last attempt: dead, with its DLQ copy, for an operator.
    assert_eq!(ids(&summary, "dead_lettered"), ["acme/stripe/evt_spent"]);
    let spent = record(&ops, &spent);
    assert_eq!(spent.status, EventStatus::Dead);
    assert!(spent.retry_exhausted);
    assert_eq!(ops.dead_letters.visible().len(), 1);
    assert_eq!(record(&ops, &received).status, EventStatus::Received);
    for key in [&enqueued, &abandoned] {
        let r = record(&ops, key);
        assert_eq!(r.status, EventStatus::Enqueued, "{}", key.event_id);
        assert_eq!(r.enqueued_at, Some(at(0)));
        assert_eq!(r.replay_count, 0, "reconcile is not an operator replay");
        assert_eq!(r.note.as_deref(), Some("reconcile"));
    }
    assert_eq!(record(&ops, &abandoned).attempts, 1, "attempts still count");
    assert_eq!(record(&ops, &fresh).status, EventStatus::Received);
    assert_eq!(record(&ops, &leased).status, EventStatus::Processing);
    assert_eq!(ops.queue.sent().len(), 2);
}

#[tokio::test]
async fn reconcile_requeues_failed_events_only_past_their_longest_backoff() {
    // GIVEN two failed events: one waiting out its backoff, one whose message was lost
    let ops = ops();
    let waiting = given(&ops, "acme", "evt_waiting", EventStatus::Failed, 3_600);
    let lost = given(&ops, "acme", "evt_lost", EventStatus::Failed, 50_000);

    let summary = run(&ops, json!({"action": "reconcile"})).await;

    // THEN only the lost one goes back on the queue, with its attempts kept
    assert_eq!(ids(&summary, "requeued"), ["acme/stripe/evt_lost"]);
    assert_eq!(record(&ops, &lost).status, EventStatus::Enqueued);
    assert_eq!(record(&ops, &waiting).status, EventStatus::Failed);
}

#[tokio::test]
async fn reconcile_reads_past_events_it_cannot_act_on() {
    // GIVEN 100 processing events whose leases still hold, older than one abandoned event
    let ops = ops();
    for i in 0..100 {
        let key = given(
            &ops,
            "acme",
            &format!("evt_busy{i:03}"),
            EventStatus::Processing,
            3_600,
        );
        ops.store.insert(EventRecord {
            lease_until: Some(at(0) + Duration::from_secs(600)),
            ..record(&ops, &key)
        });
    }
    let abandoned = given(
        &ops,
        "acme",
        "evt_abandoned",
        EventStatus::Processing,
        1_800,
    );

    // WHEN reconcile runs with a small limit
    let summary = run(&ops, json!({"action": "reconcile", "limit": 5})).await;

    // THEN it still reaches the one it can recover
    assert_eq!(ids(&summary, "requeued"), ["acme/stripe/evt_abandoned"]);
    assert_eq!(record(&ops, &abandoned).status, EventStatus::Enqueued);
}

#[tokio::test]
async fn spent_stuck_events_do_not_hide_a_recoverable_one() {
    // GIVEN 100 events whose processors died on their last attempt, and one recoverable
    let ops = ops();
    for i in 0..100 {
        let key = given(
            &ops,
            "acme",
            &format!("evt_spent{i:03}"),
            EventStatus::Processing,
            7_200,
        );
        ops.store.insert(EventRecord {
            attempts: 6,
            ..record(&ops, &key)
        });
    }
    let recoverable = given(&ops, "acme", "evt_ok", EventStatus::Processing, 3_600);

    // WHEN the schedule runs reconcile until it says there is no more
    let mut runs = 0;
    loop {
        runs += 1;
        let summary = run(&ops, json!({"action": "reconcile", "limit": 25})).await;
        if summary["more"] == json!(false) || runs > 10 {
            break;
        }
    }

    // THEN the spent ones are dead on the DLQ and the recoverable one is back on the queue
    assert!(runs <= 6, "took {runs} runs");
    assert_eq!(record(&ops, &recoverable).status, EventStatus::Enqueued);
    assert_eq!(ops.dead_letters.visible().len(), 100);
    let dead = ops
        .store
        .all()
        .into_iter()
        .filter(|r| r.status == EventStatus::Dead)
        .count();
    assert_eq!(dead, 100);
}

#[tokio::test]
async fn a_reconcile_dry_run_changes_nothing() {
    let ops = ops();
    given(&ops, "acme", "evt_rcv", EventStatus::Enqueued, 3_600);
    let before = ops.store.all();

    let summary = run(
        &ops,
        json!({"action": "reconcile", "dry_run": true, "stuck_after_secs": 60}),
    )
    .await;

    assert_eq!(ids(&summary, "requeued"), ["acme/stripe/evt_rcv"]);
    assert_eq!(ops.store.all(), before);
    assert!(ops.queue.sent().is_empty());
}

// --- list --------------------------------------------------------------------------------

#[tokio::test]
async fn list_pages_through_a_tenants_dead_events_newest_first() {
    let ops = ops();
    for i in 0..5u64 {
        given(
            &ops,
            "acme",
            &format!("evt_{i}"),
            EventStatus::Dead,
            1_000 - i * 100,
        );
    }
    given(&ops, "globex", "evt_theirs", EventStatus::Dead, 1);

    let first = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "limit": 2}),
    )
    .await;
    let ids_of = |page: &serde_json::Value| -> Vec<String> {
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["event_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids_of(&first), ["evt_4", "evt_3"]);
    let token = first["next_token"].as_str().expect("more").to_owned();
    let second = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "limit": 2, "next_token": token}),
    )
    .await;
    assert_eq!(ids_of(&second), ["evt_2", "evt_1"]);
    let third = run(
        &ops,
        json!({"action": "list", "tenant": "acme", "limit": 2,
               "next_token": second["next_token"].clone()}),
    )
    .await;
    assert_eq!(ids_of(&third), ["evt_0"]);
    assert!(third["next_token"].is_null());

    // A token of another tenant's listing is refused.
    let theirs = run(
        &ops,
        json!({"action": "list", "tenant": "globex", "limit": 1}),
    )
    .await;
    assert_eq!(ids_of(&theirs), ["evt_theirs"]);
    let forged = run(
        &ops,
        json!({"action": "list", "tenant": "globex", "next_token": token}),
    )
    .await;
    assert!(forged["error"].is_string(), "{forged}");
}

#[tokio::test]
async fn list_stuck_covers_the_pending_statuses() {
    let ops = ops();
    given(&ops, "acme", "evt_r", EventStatus::Received, 100);
    given(&ops, "acme", "evt_e", EventStatus::Enqueued, 100);
    given(&ops, "acme", "evt_p", EventStatus::Processing, 100);
    given(&ops, "acme", "evt_d", EventStatus::Dead, 100);
    let mut statuses = Vec::new();
    let mut token = serde_json::Value::Null;
    loop {
        let page = run(
            &ops,
            json!({"action": "list", "tenant": "acme", "status": "stuck", "limit": 1, "next_token": token}),
        )
        .await;
        for e in page["events"].as_array().expect("events") {
            statuses.push(e["status"].as_str().expect("status").to_owned());
        }
        token = page["next_token"].clone();
        if token.is_null() {
            break;
        }
    }
    // Not the `received` one: a new record is in no index (its pointer is on the queue).
    assert_eq!(statuses, ["enqueued", "processing"]);
}

// --- discard -----------------------------------------------------------------------------

#[tokio::test]
async fn discard_resolves_dead_events_only_and_keeps_them_for_audit() {
    let ops = ops();
    let dead = given(&ops, "acme", "evt_dead", EventStatus::Dead, 600);
    let failed = given(&ops, "acme", "evt_failed", EventStatus::Failed, 600);

    let dry = run(
        &ops,
        json!({"action": "discard", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead"], "note": "ops: test event", "dry_run": true}),
    )
    .await;
    assert_eq!(ids(&dry, "discarded"), ["acme/stripe/evt_dead"]);
    assert_eq!(record(&ops, &dead).status, EventStatus::Dead);

    let summary = run(
        &ops,
        json!({"action": "discard", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead", "evt_failed"], "note": "ops: test event"}),
    )
    .await;

    assert_eq!(ids(&summary, "discarded"), ["acme/stripe/evt_dead"]);
    let discarded = record(&ops, &dead);
    assert_eq!(discarded.status, EventStatus::Discarded);
    assert_eq!(discarded.note.as_deref(), Some("ops: test event"));
    assert_eq!(discarded.discarded_at, Some(at(0)));
    assert_eq!(
        discarded.expires_at,
        Some(at(0) + ReplaySettings::default().retention)
    );
    assert_eq!(record(&ops, &failed).status, EventStatus::Failed);
    // A discarded event is never replayed, even by force.
    let again = run(
        &ops,
        json!({"action": "replay", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_dead"], "force": true}),
    )
    .await;
    assert!(ids(&again, "replayed").is_empty());
}

// --- health ------------------------------------------------------------------------------

#[tokio::test]
async fn health_is_healthy_when_everything_is_processed() {
    let ops = ops();
    for i in 0..10 {
        given(
            &ops,
            "acme",
            &format!("evt_{i}"),
            EventStatus::Processed,
            100 + i,
        );
    }

    let summary = run(&ops, json!({"action": "health"})).await;

    assert_eq!(summary["status"], "HEALTHY", "{summary}");
    assert_eq!(summary["counts"]["processed"], 10);
    assert_eq!(summary["tenants"], json!(["acme", "globex"]));
    assert_eq!(summary["processing_latency"]["p50_ms"], 250.0);
    assert_eq!(summary["checks"].as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn health_turns_degraded_then_critical_as_failures_and_backlog_grow() {
    let ops = ops();
    // One dead in 201: a 99.5 % success rate, under the 99.9 % objective.
    for i in 0..200 {
        given(
            &ops,
            "acme",
            &format!("evt_{i}"),
            EventStatus::Processed,
            100 + i,
        );
    }
    given(&ops, "acme", "evt_dead_0", EventStatus::Dead, 100);
    let degraded = run(&ops, json!({"action": "health", "tenant": "acme"})).await;
    assert_eq!(degraded["status"], "DEGRADED", "{degraded}");

    for i in 1..12 {
        given(
            &ops,
            "acme",
            &format!("evt_dead_{i}"),
            EventStatus::Dead,
            100,
        );
    }
    let critical = run(&ops, json!({"action": "health", "tenant": "acme"})).await;
    assert_eq!(critical["status"], "CRITICAL", "{critical}");

    // Thresholds are the operator's: loosen them and the same records pass.
    let loose = run(
        &ops,
        json!({"action": "health", "tenant": "acme", "thresholds": {
            "failures_degraded": 100, "failures_critical": 200,
            "attempts_degraded": 10, "attempts_critical": 20,
            "success_rate_degraded": 0.1, "success_rate_critical": 0.05}}),
    )
    .await;
    assert_eq!(loose["status"], "HEALTHY", "{loose}");
}

#[tokio::test]
async fn health_counts_duplicates_and_the_oldest_pending_event() {
    let ops = ops();
    let key = given(&ops, "acme", "evt_old", EventStatus::Enqueued, 7_200);
    let copy = record(&ops, &key);
    for _ in 0..3 {
        assert!(matches!(
            ops.store.put_if_absent(&copy).await,
            Ok(PutOutcome::Existing(_))
        ));
    }
    given(&ops, "acme", "evt_new", EventStatus::Processed, 10);

    let summary = run(
        &ops,
        json!({"action": "health", "tenant": "acme", "window_secs": 86_400}),
    )
    .await;

    assert_eq!(summary["status"], "CRITICAL", "{summary}");
    let check = |name: &str| {
        summary["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .expect("check")
    };
    assert_eq!(check("oldest_pending_age_secs")["value"], 7_200.0);
    assert_eq!(check("oldest_pending_age_secs")["status"], "CRITICAL");
    assert_eq!(summary["counts"]["duplicates"], 3);
    assert_eq!(check("duplicate_rate")["status"], "CRITICAL");
}

#[test]
fn page_tokens_belong_to_their_tenant() {
    let token = encode_page_token(42, "acme#stripe#evt_1");
    assert_eq!(
        decode_page_token(&token, &tenant("acme")),
        Some((42, "acme#stripe#evt_1".to_owned()))
    );
    assert_eq!(decode_page_token(&token, &tenant("acm")), None);
    assert_eq!(decode_page_token("!!", &tenant("acme")), None);
}

#[tokio::test]
async fn erase_from_the_console_runs_dry_first_then_tombstones_audits_and_keeps_other_tenants() {
    let ops = ops();
    let key = given(&ops, "acme", "evt_1", EventStatus::Processed, 60);
    let globex = given(&ops, "globex", "evt_1", EventStatus::Processed, 60);
    let erase = |dry_run: bool| {
        json!({"action": "erase", "tenant": "acme", "provider": "stripe",
               "ids": ["evt_1", "evt_missing"], "actor": "dpo: request 114", "dry_run": dry_run})
    };

    // A dry run says what it would erase and changes nothing.
    let dry = run(&ops, erase(true)).await;
    assert_eq!(ids(&dry, "erased"), ["acme/stripe/evt_1"]);
    assert_eq!(ids(&dry, "not_found"), ["acme/stripe/evt_missing"]);
    assert!(!record(&ops, &key).is_erased());

    // The real run tombstones acme's event only; a second run finds it erased.
    let done = run(&ops, erase(false)).await;
    assert_eq!(ids(&done, "erased"), ["acme/stripe/evt_1"]);
    let tombstone = record(&ops, &key);
    assert!(tombstone.is_erased() && tombstone.payload.is_empty());
    assert_eq!(tombstone.status, EventStatus::Processed);
    assert!(!record(&ops, &globex).is_erased());
    let again = run(&ops, erase(false)).await;
    assert_eq!(ids(&again, "already_erased"), ["acme/stripe/evt_1"]);

    // Without an actor nothing runs.
    let anonymous = run(
        &ops,
        json!({"action": "erase", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"], "actor": " "}),
    )
    .await;
    assert!(
        anonymous["error"]
            .as_str()
            .is_some_and(|e| e.contains("actor")),
        "{anonymous}"
    );
}
