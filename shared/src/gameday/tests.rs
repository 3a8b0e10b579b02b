//! The handbook's gameday checklist, one scenario each: GIVEN a fault, WHEN webhooks arrive and
//! the pipeline runs, THEN no event is lost, none applied twice, and the operator sees it.

use std::time::Duration;

use serde_json::json;

use super::{NOW, Webhook, World, sqs::VISIBILITY};
use crate::{
    clock::Clock,
    ingress::Outcome,
    memory::{Fault, When},
    record::EventStatus,
    verify::DEFAULT_TOLERANCE,
};

impl World {
    /// THEN every webhook's event is processed, its effects committed exactly once.
    fn assert_processed_once(&self, webhooks: &[Webhook]) {
        for webhook in webhooks {
            let key = webhook.key();
            assert_eq!(
                self.status(&key),
                Some(EventStatus::Processed),
                "{}",
                webhook.event_id
            );
            assert_eq!(self.store.commits(&key), 1, "{}", webhook.event_id);
        }
        assert_eq!(self.sqs.depth(), 0, "nothing left on the queue");
    }
}

/// GIVEN three accepted events that a downstream outage longer than the retry schedule left
/// dead on the DLQ; the outage is over.
async fn dead_on_the_dlq(w: &World) -> Vec<Webhook> {
    let webhooks = three(w);
    for webhook in &webhooks {
        w.deliver_until_accepted(webhook, 1).await;
    }
    w.plan
        .inject("EventProcessing.commit", Fault::Fail, When::Always);
    w.drain(500).await;
    w.plan.clear();
    webhooks
}

/// Run `action`, whatever it answers (faults may fail it).
async fn attempt(w: &World, action: serde_json::Value) {
    let action: crate::operations::Action = serde_json::from_value(action).expect("action");
    let _ = w.operations.run(action).await;
}

fn three(w: &World) -> Vec<Webhook> {
    vec![
        w.stripe("acme", "evt_g1", NOW - 5, "sub_1", "active"),
        w.clerk("acme", "msg_g2", "user_1", NOW * 1000),
        w.resend("globex", "msg_g3", "email_1"),
    ]
}

#[tokio::test]
async fn a_signature_failure_spike_stores_nothing_and_counts_every_failure() {
    let w = World::new(&["acme"], 1);
    let genuine = w.stripe("acme", "evt_spike", NOW, "sub_1", "active");

    for n in 0..50 {
        let mut forged = genuine.clone();
        forged.body = format!("{{\"id\":\"evt_forged_{n}\",\"type\":\"invoice.paid\"}}").into();
        assert_eq!(w.deliver(&forged).await.status_code(), 401);
    }

    assert!(w.store.all().is_empty());
    assert_eq!(w.sqs.depth(), 0);
    assert_eq!(w.metric("signature_failure"), 50.0);
    // The genuine delivery still passes during the spike.
    assert_eq!(w.deliver(&genuine).await.status_code(), 200);
}

#[tokio::test]
async fn a_provider_clock_outside_the_window_is_refused_either_way() {
    let w = World::new(&["acme"], 2);
    let skew = DEFAULT_TOLERANCE + Duration::from_secs(1);
    for (label, at) in [
        ("ahead", w.clock.now() + skew),
        ("behind", w.clock.now() - skew),
    ] {
        let now = w.clock.now();
        w.clock.set(at);
        let webhook = w.stripe("acme", &format!("evt_{label}"), NOW, "sub_1", "active");
        w.clock.set(now);

        let outcome = w.deliver(&webhook).await;

        assert_eq!(outcome.status_code(), 401, "{label}: {outcome:?}");
        assert!(w.store.all().is_empty(), "{label}");
    }
    // Inside the window, both ways: accepted.
    let inside = DEFAULT_TOLERANCE - Duration::from_secs(1);
    let now = w.clock.now();
    w.clock.set(now + inside);
    let webhook = w.stripe("acme", "evt_inside", NOW, "sub_1", "active");
    w.clock.set(now);
    assert_eq!(w.deliver(&webhook).await.status_code(), 200);
}

#[tokio::test]
async fn an_sqs_outage_during_ingress_is_503_and_the_retry_enqueues_once() {
    let w = World::new(&["acme", "globex"], 3);
    let webhooks = three(&w);
    w.plan.inject("EventQueue.send", Fault::Fail, When::Always);

    for webhook in &webhooks {
        let outcome = w.deliver(webhook).await;
        assert_eq!(outcome, Outcome::Unavailable);
        // The pointer goes first: nothing is stored without it.
        assert_eq!(w.status(&webhook.key()), None);
    }
    assert_eq!(w.metric("enqueue_failure"), 3.0);

    w.plan.clear();
    for webhook in &webhooks {
        assert_eq!(w.deliver_until_accepted(webhook, 1).await, 1);
        // A second retry (the provider's, racing) is a duplicate: its pointer (sent first)
        // finds the event finished, or finishes it; either way it is applied once.
        assert!(matches!(
            w.deliver(webhook).await,
            Outcome::Duplicate { .. }
        ));
    }
    assert_eq!(w.sqs.depth(), 6);
    w.drain(100).await;
    w.assert_processed_once(&webhooks);
}

#[tokio::test]
async fn every_ingress_call_failing_throttled_timing_out_or_losing_its_answer_loses_nothing() {
    let operations = [
        "TenantDirectory.provider_config",
        "EventStore.put_if_absent",
        "EventStore.get",
        "EventQueue.send",
    ];
    let faults = [Fault::Fail, Fault::Timeout, Fault::LoseResponse];
    let w = World::new(&["acme", "globex"], 4);
    let mut webhooks = Vec::new();
    for (i, operation) in operations.iter().enumerate() {
        for (j, fault) in faults.iter().enumerate() {
            let webhook = w.stripe("acme", &format!("evt_in_{i}_{j}"), NOW, "sub_1", "active");
            w.plan.inject(operation, *fault, When::Next(1));

            let tries = w.deliver_until_accepted(&webhook, 5).await;

            assert!(tries <= 2, "{operation} {fault:?}: {tries} tries");
            w.plan.clear();
            webhooks.push(webhook);
        }
    }
    assert!(w.plan.injected("*") >= 9, "the faults were reached");
    w.drain(200).await;
    w.assert_processed_once(&webhooks);
}

#[tokio::test]
async fn every_processor_call_failing_throttled_timing_out_or_losing_its_answer_applies_once() {
    let operations = [
        "EventStore.get",
        "EventProcessing.commit",
        "EventProcessing.record_failure",
        "RetryQueue.retry_after",
    ];
    let faults = [Fault::Fail, Fault::Timeout, Fault::LoseResponse];
    for operation in operations {
        for fault in faults {
            let w = World::new(&["acme", "globex"], 5);
            let webhooks = three(&w);
            for webhook in &webhooks {
                w.deliver_until_accepted(webhook, 1).await;
            }
            // Twice: record_failure and retry_after are reached only after a first failure.
            w.plan
                .inject("EventProcessing.commit", Fault::Fail, When::Next(1));
            w.plan.inject(operation, fault, When::Next(2));

            w.drain(200).await;

            w.assert_processed_once(&webhooks);
            assert!(
                w.plan.injected(operation) >= 1,
                "{operation} {fault:?} reached"
            );
            assert!(w.sqs.dlq_bodies().is_empty(), "{operation} {fault:?}");
        }
    }
}

#[tokio::test]
async fn a_put_whose_answer_is_lost_is_a_duplicate_on_the_retry_and_processed_once() {
    let w = World::new(&["acme"], 6);
    let webhook = w.stripe("acme", "evt_lost_put", NOW, "sub_1", "active");
    w.plan.inject(
        "EventStore.put_if_absent",
        Fault::LoseResponse,
        When::Next(1),
    );

    assert_eq!(w.deliver(&webhook).await, Outcome::Unavailable);
    // The write took effect: the record is there, though the ingress never heard so, and its
    // pointer went before it.
    assert_eq!(w.status(&webhook.key()), Some(EventStatus::Received));
    assert_eq!(w.sqs.depth(), 1);

    assert_eq!(w.deliver_until_accepted(&webhook, 1).await, 1);
    w.drain(100).await;
    w.assert_processed_once(&[webhook]);
}

#[tokio::test]
async fn a_downstream_timeout_retries_on_the_schedule_and_applies_once() {
    let w = World::new(&["acme"], 7);
    let webhook = w.stripe("acme", "evt_timeout", NOW, "sub_1", "active");
    w.deliver_until_accepted(&webhook, 1).await;
    w.plan
        .inject("EventProcessing.commit", Fault::Timeout, When::Next(3));

    let start = w.clock.now();
    w.drain(100).await;

    w.assert_processed_once(std::slice::from_ref(&webhook));
    let record = w.store.record(&webhook.key()).expect("record");
    assert_eq!(record.attempts, 4);
    // Backed off on the schedule, not retried at once.
    assert!(w.clock.now().duration_since(start).unwrap_or_default() >= Duration::from_secs(60));
}

#[tokio::test]
async fn a_processor_killed_after_its_commit_and_before_the_delete_changes_nothing_more() {
    let w = World::new(&["acme"], 8);
    let webhook = w.stripe("acme", "evt_killed_late", NOW, "sub_1", "active");
    w.deliver_until_accepted(&webhook, 1).await;

    // WHEN a batch commits and the Lambda dies before the event source mapping deletes it
    let batch = w.sqs.receive(10);
    assert!(w.processor.process_batch(&batch).await.is_empty());
    assert_eq!(w.store.commits(&webhook.key()), 1);

    // THEN the message comes back after its visibility timeout and is skipped
    w.clock.advance(VISIBILITY);
    w.drain(100).await;
    w.assert_processed_once(&[webhook]);
}

#[tokio::test(start_paused = true)]
async fn a_processor_killed_before_its_commit_is_finished_by_the_next() {
    let w = World::new(&["acme"], 9);
    let webhook = w.stripe("acme", "evt_killed_early", NOW, "sub_1", "active");
    w.deliver_until_accepted(&webhook, 1).await;
    w.plan
        .inject("EventProcessing.commit", Fault::Hang, When::Next(1));

    // WHEN the invocation hangs in its commit and Lambda kills it at its timeout
    let killed = tokio::time::timeout(Duration::from_secs(30), w.poll()).await;
    assert!(killed.is_err(), "the invocation was killed");
    assert_eq!(w.status(&webhook.key()), Some(EventStatus::Received));

    // THEN the message is visible again after its timeout, and the next receive finishes it
    w.drain(100).await;
    w.assert_processed_once(&[webhook]);
}

#[tokio::test]
async fn the_runbook_dlq_exercise_finds_dead_events_and_redrives_them_once() {
    let w = World::new(&["acme", "globex"], 10);
    let webhooks = dead_on_the_dlq(&w).await;
    for webhook in &webhooks {
        assert_eq!(w.status(&webhook.key()), Some(EventStatus::Dead));
    }
    assert_eq!(w.sqs.dlq_bodies().len(), 3);
    assert_eq!(w.metric("retry_exhausted"), 3.0);

    // WHEN the operator follows the runbook once the outage is over: list, dry run, redrive
    let listed = w
        .operate(json!({"action": "list", "tenant": "acme", "status": "dead"}))
        .await;
    assert_eq!(
        listed["events"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let dry = w
        .operate(json!({"action": "redrive", "dry_run": true}))
        .await;
    assert_eq!(dry["examined"], 3, "{dry}");
    assert_eq!(w.sqs.dlq_bodies().len(), 3, "a dry run moves nothing");
    let redriven = w
        .operate(json!({"action": "redrive", "note": "gameday: downstream back"}))
        .await;
    assert_eq!(redriven["examined"], 3, "{redriven}");

    // THEN each is processed once and the DLQ is empty
    w.drain(100).await;
    w.assert_processed_once(&webhooks);
    assert!(w.sqs.dlq_bodies().is_empty());
}

#[tokio::test]
async fn a_redrive_interrupted_by_faults_is_finished_by_running_it_again() {
    let w = World::new(&["acme", "globex"], 11);
    let webhooks = dead_on_the_dlq(&w).await;

    // WHEN the redrive itself meets a failing re-enqueue and a lost DLQ delete
    w.plan.inject("EventQueue.send", Fault::Fail, When::Next(1));
    w.plan
        .inject("DeadLetterQueue.delete", Fault::LoseResponse, When::Next(1));
    attempt(&w, json!({"action": "redrive"})).await;
    w.plan.clear();
    w.drain(100).await;
    // AND the operator runs it again (what is left is released back to the DLQ)
    w.operate(json!({"action": "redrive"})).await;
    w.drain(100).await;

    w.assert_processed_once(&webhooks);
    assert!(w.sqs.dlq_bodies().is_empty());
}

#[tokio::test]
async fn an_sqs_outage_stores_nothing_so_nothing_waits_for_reconcile() {
    let w = World::new(&["acme", "globex"], 12);
    let webhooks = three(&w);
    // GIVEN an SQS outage, and providers that never retry (they gave up, or answered later)
    w.plan.inject("EventQueue.send", Fault::Fail, When::Always);
    for webhook in &webhooks {
        assert_eq!(w.deliver(webhook).await, Outcome::Unavailable);
    }
    w.plan.clear();

    // WHEN the scheduled reconcile runs after the stuck threshold
    w.clock.advance(Duration::from_secs(16 * 60));
    let done = w.operate(json!({"action": "reconcile"})).await;

    // THEN nothing was acknowledged, so nothing was stored and nothing is stuck
    assert_eq!(done["requeued"].as_array().map(Vec::len), Some(0), "{done}");
    for webhook in &webhooks {
        assert_eq!(w.status(&webhook.key()), None);
    }
}

#[tokio::test]
async fn every_replay_call_failing_timing_out_or_losing_its_answer_still_recovers_each_event_once()
{
    let operations = [
        "DeadLetterQueue.receive",
        "DeadLetterQueue.delete",
        "DeadLetterQueue.release",
        "EventStore.get",
        "EventRecovery.mark_requeued",
        "EventQueue.send",
    ];
    for operation in operations {
        for fault in [Fault::Fail, Fault::Timeout, Fault::LoseResponse] {
            let w = World::new(&["acme", "globex"], 13);
            let webhooks = dead_on_the_dlq(&w).await;

            // WHEN the operator's redrive meets the fault, and the runbook is followed again
            w.plan.inject(operation, fault, When::Next(1));
            attempt(&w, json!({"action": "redrive"})).await;
            w.plan.clear();
            w.drain(100).await;
            // (a receive whose answer was lost holds its messages until their hold ends)
            w.clock.advance(Duration::from_secs(3_600));
            w.operate(json!({"action": "redrive"})).await;
            w.drain(100).await;
            w.clock.advance(Duration::from_secs(3_600));
            w.operate(json!({"action": "reconcile"})).await;
            w.drain(100).await;

            // THEN each event is processed once and nothing is left
            w.assert_processed_once(&webhooks);
            assert!(w.sqs.dlq_bodies().is_empty(), "{operation} {fault:?}");
        }
    }
}
