//! Load with faults: 10,000 signed events from three tenants and three providers, many in the
//! same second about the same objects, delivered shuffled and concurrently, a fifth of them
//! twice by the provider and a fifth of the queue's deletes lost (SQS delivering again), while
//! 5 % of every AWS call fails, times out or loses its answer. At the end: every event
//! processed exactly once, none lost, no double effect, no cross-tenant write, and whatever
//! went dead recovered by the operator's replay.

use std::{
    collections::{BTreeMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    time::Instant,
};

use futures_util::future::join_all;
use serde_json::json;

use super::{NOW, Webhook, World};
use crate::{
    memory::{Fault, When},
    operations::Action,
    record::EventStatus,
};

const EVENTS: usize = 10_000;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const STATUSES: [&str; 5] = ["active", "past_due", "canceled", "incomplete", "trialing"];

fn hash(seed: u64, n: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    (seed, n).hash(&mut hasher);
    hasher.finish()
}

/// The events: same-second bursts on shared objects, so projections must break ties.
fn webhooks(w: &World) -> Vec<Webhook> {
    (0..EVENTS)
        .map(|i| {
            let tenant = TENANTS[i % TENANTS.len()];
            match (i / TENANTS.len()) % 3 {
                0 => w.stripe(
                    tenant,
                    &format!("evt_load{i:05}"),
                    NOW - (i / 50) as u64,
                    &format!("sub_{}", i % 100),
                    STATUSES[i % STATUSES.len()],
                ),
                1 => w.clerk(
                    tenant,
                    &format!("msg_load{i:05}"),
                    &format!("user_{}", i % 100),
                    (NOW - (i / 20) as u64) * 1000,
                ),
                _ => w.resend(
                    tenant,
                    &format!("msg_load{i:05}"),
                    &format!("email-{}", i % 200),
                ),
            }
        })
        .collect()
}

/// Deliver until 2xx, as a provider retries 5xx (re-signing is not needed: the clock stands
/// still while events arrive).
async fn deliver(w: &World, webhook: &Webhook) -> u32 {
    for attempt in 1..=50 {
        let outcome = w.deliver(webhook).await;
        match outcome.status_code() {
            200..=299 => return attempt,
            503 => continue,
            _ => panic!("{} refused: {outcome:?}", webhook.event_id),
        }
    }
    panic!("{} never accepted", webhook.event_id)
}

#[derive(Debug, Default)]
struct Tally {
    provider_retries: u64,
    provider_duplicates: u64,
    recovery_rounds: u32,
    reconciled: usize,
    redriven: usize,
    /// DLQ copies of events processed after all, deleted by the redrive.
    stale: usize,
}

#[tokio::test]
async fn ten_thousand_events_under_faults_are_each_processed_exactly_once() {
    let started = Instant::now();
    let seed = 20_261_207;
    let w = World::with_duplicates(&TENANTS, seed, 0.20);
    let all = webhooks(&w);

    // 5 % of every call: 2 % refused, 1.5 % timed out, 1.5 % done with the answer lost.
    w.plan.inject("*", Fault::Fail, When::Rate(0.02));
    w.plan.inject("*", Fault::Timeout, When::Rate(0.015));
    w.plan.inject("*", Fault::LoseResponse, When::Rate(0.015));

    // Shuffled, a fifth sent twice, in concurrent bursts, the processor polling in between.
    let mut order: Vec<usize> = (0..EVENTS).collect();
    order.sort_by_key(|i| hash(seed, *i));
    let mut sends: Vec<usize> = order.clone();
    sends.extend(
        order
            .iter()
            .filter(|i| hash(seed + 1, **i).is_multiple_of(5)),
    );
    let mut tally = Tally {
        provider_duplicates: (sends.len() - EVENTS) as u64,
        ..Tally::default()
    };
    for burst in sends.chunks(25) {
        let tries = join_all(burst.iter().map(|i| deliver(&w, &all[*i]))).await;
        tally.provider_retries += tries.iter().map(|t| u64::from(t - 1)).sum::<u64>();
        join_all((0..3).map(|_| w.poll())).await;
    }

    // The queue drains on the schedule; then the operator's recovery, faults still on.
    w.drain(200_000).await;
    // Until every event is processed and the DLQ empty: a DLQ copy of an event that was
    // processed after all (its dead-letter send lost its answer) is deleted by the redrive.
    while !all_processed(&w, &all) || !w.sqs.dlq_bodies().is_empty() {
        tally.recovery_rounds += 1;
        assert!(tally.recovery_rounds <= 20, "not recovered in 20 rounds");
        w.clock.advance(std::time::Duration::from_secs(3_600));
        if let Ok(summary) = run(&w, json!({"action": "reconcile", "limit": 1000})).await {
            tally.reconciled += summary["requeued"].as_array().map_or(0, Vec::len);
        }
        if let Ok(summary) = run(&w, json!({"action": "redrive", "limit": 1000})).await {
            tally.redriven += summary["redriven"].as_array().map_or(0, Vec::len);
            tally.stale += summary["already_processed"].as_array().map_or(0, Vec::len);
        }
        w.drain(200_000).await;
    }

    // THEN every event processed exactly once, none lost, nothing left anywhere
    let keys: HashSet<_> = all.iter().map(Webhook::key).collect();
    assert_eq!(keys.len(), EVENTS);
    let twice: Vec<_> = keys.iter().filter(|k| w.store.commits(k) != 1).collect();
    assert!(twice.is_empty(), "committed other than once: {twice:?}");
    assert_eq!(w.store.all().len(), EVENTS, "no record but the events'");
    assert_eq!(w.sqs.depth(), 0);
    assert!(w.sqs.dlq_bodies().is_empty(), "the DLQ is empty");
    // No double effect and one final state whatever the order: the projections are exactly
    // those of each event applied once.
    assert_eq!(w.store.projections(), World::expected_projections(&all));
    assert_eq!(w.cross_tenant_writes(&all), Vec::<String>::new());

    let (deletes, queue_duplicates, to_dlq) = w.sqs.counts();
    let mut injected = BTreeMap::new();
    for operation in OPERATIONS {
        injected.insert(
            operation,
            (w.plan.injected(operation), w.plan.calls(operation)),
        );
    }
    println!(
        "load: {EVENTS} events, {} tenants, 3 providers; {} provider duplicates, {} provider \
         retries after 503; {deletes} deletes of which {queue_duplicates} lost (redelivered); \
         {to_dlq} redriven to the DLQ by SQS, {} by the processor; {} recovery rounds \
         (reconciled {}, redriven {}, stale DLQ copies deleted {}); {} faults injected; {:.1?}",
        TENANTS.len(),
        tally.provider_duplicates,
        tally.provider_retries,
        w.metric("dead_lettered") as u64,
        tally.recovery_rounds,
        tally.reconciled,
        tally.redriven,
        tally.stale,
        w.plan.injected("*"),
        started.elapsed(),
    );
    for (operation, (faults, calls)) in injected {
        println!("  {operation}: {faults} faults in {calls} calls");
    }
}

const OPERATIONS: [&str; 11] = [
    "TenantDirectory.provider_config",
    "EventStore.put_if_absent",
    "EventStore.get",
    "EventQueue.send",
    "EventProcessing.commit",
    "EventProcessing.record_failure",
    "EventProcessing.keep_payload",
    "EventProcessing.release_payload",
    "RetryQueue.retry_after",
    "RetryQueue.dead_letter",
    "DeadLetterQueue.receive",
];

fn all_processed(w: &World, all: &[Webhook]) -> bool {
    all.iter()
        .all(|webhook| w.status(&webhook.key()) == Some(EventStatus::Processed))
}

async fn run(w: &World, action: serde_json::Value) -> Result<serde_json::Value, String> {
    let action: Action = serde_json::from_value(action).map_err(|e| e.to_string())?;
    w.operations.run(action).await.map_err(|e| e.to_string())
}
