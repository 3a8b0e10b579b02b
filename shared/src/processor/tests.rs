//! The processor on in-memory adapters, GIVEN / WHEN / THEN.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::{
    clock::ManualClock,
    ids::{EventId, TenantId},
    memory::{MemoryEventStore, MemoryRetryQueue},
    ports::EventProcessing,
    record::{Correlation, Verification},
    secret::SecretSlot,
};

const NOW: u64 = 1_750_000_000;
const INVOICE_PAID: &[u8] = include_bytes!("../../../events/payloads/stripe/invoice.paid.json");

type MemoryProcessor = Processor<MemoryEventStore, MemoryRetryQueue, ManualClock, NoJitter>;

fn processor() -> MemoryProcessor {
    Processor::new(
        MemoryEventStore::new(),
        MemoryRetryQueue::new(),
        ManualClock::at_unix(NOW),
        NoJitter,
        ProcessorSettings::default(),
    )
}

fn key(id: &str) -> EventKey {
    EventKey {
        tenant: TenantId::parse("acme").expect("tenant"),
        provider: Provider::Stripe,
        event_id: EventId::parse(id).expect("id"),
    }
}

fn stored(processor: &MemoryProcessor, id: &str, event_type: &str, payload: &[u8]) -> EventKey {
    let key = key(id);
    let mut record = EventRecord::received(
        key.clone(),
        Some(event_type.to_owned()),
        None,
        Correlation::default(),
        Verification::Verified(SecretSlot::Current),
        payload.to_vec(),
        UNIX_EPOCH + Duration::from_secs(NOW - 2),
    );
    record.status = EventStatus::Enqueued;
    processor.store.insert(record);
    key
}

fn message(key: &EventKey, n: u32) -> Message {
    let pointer = QueueMessage::new(key, &Correlation::default());
    Message {
        message_id: format!("m-{}-{n}", key.event_id),
        receipt_handle: Some(format!("r-{}-{n}", key.event_id)),
        body: serde_json::to_string(&pointer).expect("json"),
        receive_count: n,
        sent_at: None,
    }
}

fn status(processor: &MemoryProcessor, key: &EventKey) -> EventStatus {
    processor.store.record(key).expect("record").status
}

#[tokio::test]
async fn an_event_is_applied_and_marked_processed_together() {
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);

    let disposition = p.process(&message(&key, 1)).await;

    assert_eq!(disposition, Disposition::Processed);
    let record = p.store.record(&key).expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert_eq!(record.outcome.as_deref(), Some("processed"));
    assert_eq!(record.attempts, 1);
    assert_eq!(record.lease_owner, None);
    assert_eq!(
        record.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(NOW) + ProcessorSettings::default().retention)
    );
    assert!(!p.store.projections().is_empty());
}

#[tokio::test]
async fn a_redelivery_changes_nothing() {
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    p.process(&message(&key, 1)).await;
    let before = p.store.projections();

    let again = p.process(&message(&key, 2)).await;

    assert_eq!(again, Disposition::Skipped("already processed"));
    assert_eq!(p.store.projections(), before);
    // Effects, not items: an upsert applied twice would leave the same item.
    assert_eq!(p.store.effects(), 1);
    assert_eq!(p.store.record(&key).expect("record").attempts, 1);
}

#[tokio::test]
async fn two_deliveries_racing_change_nothing_twice_and_the_first_mark_wins() {
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    // The second delivery read the record while it was unfinished; the first commits.
    assert_eq!(p.process(&message(&key, 1)).await, Disposition::Processed);
    let writes = match projectors::project(
        key.provider,
        Some("invoice.paid"),
        INVOICE_PAID,
        &key,
        UnknownTypePolicy::Ignore,
    ) {
        Ok(ProjectorOutcome::Writes(writes)) => writes,
        other => panic!("{other:?}"),
    };

    // WHEN the second commits the same writes
    let late = p
        .store
        .commit(&key, 1, &writes, "processed", p.clock.now(), None)
        .await;

    // THEN it finds the event finished, and the effects are applied once
    assert_eq!(late, Ok(Commit::Finished));
    assert_eq!(p.store.effects(), 1);
    assert_eq!(p.store.commits(&key), 1);
}

#[tokio::test]
async fn a_pointer_without_its_record_is_retried_while_its_ingress_may_be_writing_it() {
    let p = processor();
    let key = key("evt_never");
    let mut young = message(&key, 1);
    young.sent_at = Some(p.clock.now() - Duration::from_secs(5));
    assert_eq!(p.process(&young).await, Disposition::Retry);

    // Once no ingress can still be writing it, the delivery was never acknowledged: it goes,
    // without reaching the DLQ.
    let mut old = message(&key, 3);
    old.sent_at = Some(p.clock.now() - ORPHAN_AFTER);
    assert_eq!(
        p.process(&old).await,
        Disposition::Skipped("no record: never acknowledged")
    );
    assert!(p.queue.dead_letters().is_empty());
}

#[tokio::test]
async fn unrecognized_verification_is_never_applied() {
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    let mut record = p.store.record(&key).expect("record");
    record.verification = Verification::Unrecognized;
    p.store.insert(record);

    assert_eq!(
        p.process(&message(&key, 1)).await,
        Disposition::DeadLettered
    );

    assert_eq!(status(&p, &key), EventStatus::Dead);
    assert!(p.store.projections().is_empty());
    assert_eq!(p.queue.dead_letters().len(), 1);
}

#[tokio::test]
async fn an_erased_event_that_comes_back_is_never_applied_and_ends_dead() {
    use crate::ports::{Erasure, EventErasure};
    // GIVEN an enqueued event whose payload an operator erased
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    let erasure = Erasure {
        at: p.clock.now(),
        actor: "dpo".into(),
    };
    p.store.erase_payload(&key, &erasure).await.expect("erased");

    // WHEN its pointer arrives, and again
    let first = p.process(&message(&key, 1)).await;
    let again = p.process(&message(&key, 2)).await;

    // THEN nothing is applied, nothing goes to the DLQ, and the event is dead saying why
    assert_eq!(first, Disposition::Skipped("payload erased by an operator"));
    assert_eq!(again, first);
    assert!(p.store.projections().is_empty());
    assert!(p.queue.dead_letters().is_empty());
    let record = p.store.record(&key).expect("record");
    assert_eq!(record.status, EventStatus::Dead);
    assert_eq!(record.last_error.as_deref(), Some(ERASED_REASON));
}

#[tokio::test]
async fn a_payload_that_breaks_the_schema_goes_dead_and_to_the_dlq_at_once() {
    let p = processor();
    let key = stored(
        &p,
        "evt_bad",
        "invoice.paid",
        br#"{"id":"evt_bad","type":"invoice.paid","created":1,"data":{"object":"nope"}}"#,
    );

    assert_eq!(
        p.process(&message(&key, 1)).await,
        Disposition::DeadLettered
    );

    let record = p.store.record(&key).expect("record");
    assert_eq!(record.status, EventStatus::Dead);
    assert!(!record.retry_exhausted);
    assert!(
        record
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("permanent:"))
    );
    assert!(p.queue.delays().is_empty());
}

#[tokio::test]
async fn an_unknown_type_is_processed_as_ignored() {
    let p = processor();
    let key = stored(
        &p,
        "evt_new",
        "radar.early_fraud_warning.created",
        br#"{"id":"evt_new","type":"radar.early_fraud_warning.created","created":1}"#,
    );

    assert_eq!(p.process(&message(&key, 1)).await, Disposition::Ignored);

    let record = p.store.record(&key).expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert!(
        record
            .outcome
            .as_deref()
            .is_some_and(|o| o.starts_with("ignored"))
    );
}

#[tokio::test]
async fn failures_back_off_on_the_schedule_and_the_last_attempt_is_dead() {
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    p.store.set_commits_failing(true);
    // The 12 h step is trimmed by the lease: SQS counts its limit from the receive.
    let expected = [60, 300, 1_800, 7_200, 43_200 - 60];

    for (n, secs) in (1..=5).zip(expected) {
        assert_eq!(p.process(&message(&key, n)).await, Disposition::Retry);
        let record = p.store.record(&key).expect("record");
        assert_eq!((record.status, record.attempts), (EventStatus::Failed, n));
        assert!(record.last_error.is_some());
        assert_eq!(
            p.queue.delays().last().map(|(_, d)| d.as_secs()),
            Some(secs),
            "after attempt {n}"
        );
    }

    // The last attempt gives up: the DLQ copy, then the record dead, then the message goes.
    assert_eq!(
        p.process(&message(&key, 6)).await,
        Disposition::DeadLettered
    );
    let record = p.store.record(&key).expect("record");
    assert_eq!(record.status, EventStatus::Dead);
    assert!(record.retry_exhausted);
    assert_eq!(p.queue.dead_letters(), [message(&key, 6).body]);
    assert_eq!(p.queue.delays().len(), 5);
    assert!(p.store.projections().is_empty());
}

#[tokio::test]
async fn a_dead_event_always_has_its_dlq_copy_even_when_the_first_send_fails() {
    // GIVEN a permanent failure while the DLQ is down
    let p = processor();
    let key = stored(
        &p,
        "evt_bad",
        "invoice.paid",
        br#"{"id":"evt_bad","type":"invoice.paid","created":1,"data":{"object":"nope"}}"#,
    );
    p.queue.set_dead_letters_failing(true);

    // WHEN the processor gives up: the message stays, the record is not dead yet
    assert_eq!(p.process(&message(&key, 1)).await, Disposition::Retry);
    assert_eq!(status(&p, &key), EventStatus::Failed);
    assert!(p.queue.dead_letters().is_empty());

    // THEN its next receive finishes the job: the copy, then the record dead
    p.queue.set_dead_letters_failing(false);
    assert_eq!(
        p.process(&message(&key, 2)).await,
        Disposition::DeadLettered
    );
    assert_eq!(status(&p, &key), EventStatus::Dead);
    assert_eq!(p.queue.dead_letters().len(), 1);
}

#[tokio::test]
async fn a_fresh_message_for_an_event_with_spent_attempts_gives_up_with_a_dlq_copy() {
    // GIVEN an event reconcile re-enqueued after five attempts: a fresh message, receive 1
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    let mut record = p.store.record(&key).expect("record");
    record.attempts = 5;
    p.store.insert(record);
    p.store.set_commits_failing(true);

    // WHEN its sixth attempt fails
    let disposition = p.process(&message(&key, 1)).await;

    // THEN it is dead with its copy on the DLQ, not dead with its message about to be dropped
    assert_eq!(disposition, Disposition::DeadLettered);
    let record = p.store.record(&key).expect("record");
    assert_eq!((record.status, record.attempts), (EventStatus::Dead, 6));
    assert!(record.retry_exhausted);
    assert_eq!(p.queue.dead_letters().len(), 1);
}

#[tokio::test]
async fn the_last_receive_gives_up_even_with_attempts_left() {
    // GIVEN a message whose receives went to a busy lease and outages: attempt 1, receive 6
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    p.store.set_commits_failing(true);

    // WHEN that attempt fails
    let disposition = p.process(&message(&key, 6)).await;

    // THEN the processor dead-letters it itself, rather than let SQS redrive the message
    // while the record says `failed` where nobody looks
    assert_eq!(disposition, Disposition::DeadLettered);
    let record = p.store.record(&key).expect("record");
    // Six receives, so six attempts, though the record saw none of them fail.
    assert_eq!((record.status, record.attempts), (EventStatus::Dead, 6));
    assert_eq!(p.queue.dead_letters().len(), 1);
}

#[tokio::test]
async fn a_write_the_store_refuses_is_permanent() {
    // GIVEN a commit DynamoDB refuses (an item over 400 KB, a transaction over 100 items)
    let p = processor();
    let key = stored(&p, "evt_1", "invoice.paid", INVOICE_PAID);
    p.store.set_commits_refused(true);

    // WHEN it is processed, THEN it is dead at once, not retried for fourteen hours
    assert_eq!(
        p.process(&message(&key, 1)).await,
        Disposition::DeadLettered
    );
    let record = p.store.record(&key).expect("record");
    assert_eq!((record.status, record.attempts), (EventStatus::Dead, 1));
    assert!(!record.retry_exhausted);
    assert!(
        record
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("permanent: storage refused"))
    );
    assert_eq!(p.queue.dead_letters().len(), 1);
}

#[tokio::test]
async fn one_poison_message_fails_alone_in_a_batch() {
    let p = processor();
    let mut messages: Vec<Message> = (0..9)
        .map(|i| {
            let id = format!("evt_b{i}");
            let body =
                String::from_utf8_lossy(INVOICE_PAID).replace("evt_1PayloadInvoicePaid0001", &id);
            message(&stored(&p, &id, "invoice.paid", body.as_bytes()), 1)
        })
        .collect();
    // A pointer whose record does not exist (yet): retried, not applied.
    let poison = message(&key("evt_missing"), 1);
    messages.insert(4, poison.clone());
    messages.push(Message {
        message_id: "not-a-pointer".into(),
        receipt_handle: Some("r-x".into()),
        body: "{oops".into(),
        receive_count: 1,
        sent_at: None,
    });

    let failed = p.process_batch(&messages).await;

    assert_eq!(failed, vec![poison.message_id.clone()]);
    assert_eq!(
        p.queue.delays(),
        vec![(
            poison.receipt_handle.clone().expect("receipt"),
            Duration::from_secs(60)
        )]
    );
    assert_eq!(p.queue.dead_letters(), vec!["{oops".to_owned()]);
    let processed = p
        .store
        .all()
        .into_iter()
        .filter(|r| r.status == EventStatus::Processed)
        .count();
    assert_eq!(processed, 9);
}
