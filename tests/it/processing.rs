//! The processor's storage adapters against the emulator: claims, atomic commits with
//! versioned projections, failures, and the retry queue.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use aws_sdk_dynamodb::{
    config::{
        ConfigBag, Intercept, RuntimeComponents, interceptors::FinalizerInterceptorContextMut,
    },
    error::BoxError,
    operation::batch_get_item::BatchGetItemOutput,
    types::AttributeValue,
};
use serde_json::{Value, json};
use shared::{
    aws::{DynamoEventStore, MAX_ERROR_CHARS, SqsRetryQueue},
    ids::{EventId, TenantId},
    ports::{Commit, EventHistory, EventProcessing, EventStore, Failure, RetryQueue, StoreError},
    projection::{Change, Fields, ProjectionKey, ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
};

use crate::support::*;

type Item = HashMap<String, AttributeValue>;

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn key(id: &str) -> EventKey {
    EventKey {
        tenant: tenant(),
        provider: Provider::Stripe,
        event_id: EventId::parse(id).expect("id"),
    }
}

/// The events store, able to commit projections.
fn store(stack: &Stack) -> DynamoEventStore {
    stack
        .store()
        .with_projections(stack.resources.projections_table())
}

/// GIVEN an event delivered and not yet processed.
async fn unprocessed(stack: &Stack, id: &str) -> EventKey {
    let record = EventRecord::received(
        key(id),
        Some("customer.updated".into()),
        None,
        Correlation::default(),
        Verification::Unsigned,
        br#"{"id":"x"}"#.to_vec(),
        at(NOW - 5),
    );
    let store = stack.store();
    store.put_if_absent(&record).await.expect("stored");
    record.key
}

fn customer(id: &str) -> ProjectionKey {
    ProjectionKey::new(&tenant(), ProjectionKind::StripeCustomer, id).expect("key")
}

fn upsert(id: &str, version: i64, event: &str, fields: Value) -> ProjectionWrite {
    let Value::Object(map) = fields else {
        panic!("fields are an object")
    };
    ProjectionWrite {
        key: customer(id),
        version,
        rank: 0,
        source_event_id: EventId::parse(event).expect("id"),
        change: Change::Upsert(map.into_iter().collect()),
    }
}

/// A delete ranks last in its object's life, as the projectors rank `*.deleted`.
fn delete(id: &str, version: i64, event: &str) -> ProjectionWrite {
    ProjectionWrite {
        key: customer(id),
        version,
        rank: shared::projectors::lifecycle_rank(Provider::Stripe, "customer.deleted"),
        source_event_id: EventId::parse(event).expect("id"),
        change: Change::Delete,
    }
}

async fn commit(
    stack: &Stack,
    key: &EventKey,
    attempt: u32,
    writes: &[ProjectionWrite],
) -> Result<Commit, StoreError> {
    store(stack)
        .commit(
            key,
            attempt,
            writes,
            "processed",
            at(NOW + 1),
            Some(at(NOW + 86_400)),
        )
        .await
}

async fn record(stack: &Stack, key: &EventKey) -> EventRecord {
    stack.store().get(key).await.expect("read").expect("record")
}

/// A projection item as stored, read consistently.
async fn projection(stack: &Stack, key: &ProjectionKey) -> Option<Item> {
    stack
        .dynamodb
        .get_item()
        .table_name(stack.resources.projections_table())
        .key("pk", AttributeValue::S(key.pk()))
        .key("sk", AttributeValue::S(key.sk().to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get projection")
        .item
}

async fn projection_count(stack: &Stack) -> usize {
    stack
        .dynamodb
        .scan()
        .table_name(stack.resources.projections_table())
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .items()
        .len()
}

fn n(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.clone(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

fn text(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("{name} is not a string: {other:?}"),
    }
}

#[tokio::test]
async fn a_commit_writes_projections_and_marks_the_event_processed_together() {
    let stack = Stack::new().await;
    let key = unprocessed(&stack, "evt_commit").await;
    let history = ProjectionWrite {
        key: ProjectionKey::history(
            &tenant(),
            ProjectionKind::ResendEmailEvent,
            "em_1",
            1_700_000_000_000,
            &EventId::parse("evt_commit").expect("id"),
        )
        .expect("key"),
        version: 1_700_000_000_000,
        rank: 0,
        source_event_id: EventId::parse("evt_commit").expect("id"),
        change: Change::Append(Fields::from([("type".to_owned(), json!("delivered"))])),
    };
    let writes = [
        upsert(
            "cus_1",
            10,
            "evt_commit",
            // `status`, `name` and `size` are reserved words in DynamoDB expressions.
            json!({"status": "active", "name": "Ada", "size": 3, "email": null,
                   "tags": ["a", 1], "address": {"city": "Paris"}}),
        ),
        history.clone(),
    ];

    let result = commit(&stack, &key, 1, &writes).await.expect("commit");

    assert_eq!(
        result,
        Commit::Committed {
            applied: 2,
            skipped: 0
        }
    );
    let done = record(&stack, &key).await;
    assert_eq!(done.status, EventStatus::Processed);
    assert_eq!(done.outcome.as_deref(), Some("processed"));
    assert_eq!(done.completed_at, Some(at(NOW + 1)));
    assert_eq!(done.expires_at, Some(at(NOW + 86_400)));
    assert_eq!((done.lease_owner, done.lease_until), (None, None));
    let item = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(text(&item, "status"), "active");
    assert_eq!(text(&item, "name"), "Ada");
    assert_eq!(n(&item, "size"), "3");
    assert_eq!(item["email"], AttributeValue::Null(true));
    assert_eq!(
        item["tags"],
        AttributeValue::L(vec![
            AttributeValue::S("a".into()),
            AttributeValue::N("1".into())
        ])
    );
    assert_eq!(
        item["address"],
        AttributeValue::M(HashMap::from([(
            "city".to_owned(),
            AttributeValue::S("Paris".into())
        )]))
    );
    assert_eq!(n(&item, "version"), "10");
    assert_eq!(item["deleted"], AttributeValue::Bool(false));
    assert_eq!(text(&item, "source_event_id"), "evt_commit");
    let entry = projection(&stack, &history.key).await.expect("history");
    assert_eq!(text(&entry, "type"), "delivered");
}

#[tokio::test]
async fn a_stale_write_is_skipped_while_the_rest_commits() {
    let stack = Stack::new().await;
    let first = unprocessed(&stack, "evt_new").await;
    commit(
        &stack,
        &first,
        1,
        &[upsert("cus_1", 20, "evt_new", json!({"status": "active"}))],
    )
    .await
    .expect("first commit");
    let late = unprocessed(&stack, "evt_old").await;

    let result = commit(
        &stack,
        &late,
        1,
        &[
            upsert("cus_1", 10, "evt_old", json!({"status": "incomplete"})),
            upsert("cus_2", 10, "evt_old", json!({"status": "trialing"})),
        ],
    )
    .await
    .expect("commit");

    assert_eq!(
        result,
        Commit::Committed {
            applied: 1,
            skipped: 1
        }
    );
    let kept = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(text(&kept, "status"), "active");
    assert_eq!(n(&kept, "version"), "20");
    assert_eq!(text(&kept, "source_event_id"), "evt_new");
    let other = projection(&stack, &customer("cus_2")).await.expect("item");
    assert_eq!(text(&other, "status"), "trialing");
    assert_eq!(record(&stack, &late).await.status, EventStatus::Processed);
}

#[tokio::test]
async fn an_item_stored_before_the_shards_moves_to_its_shard_keeping_its_order_and_fields() {
    // GIVEN cus_1 as an older version stored it, under the unsharded key.
    let stack = Stack::new().await;
    let legacy = customer("cus_1").unsharded_pk();
    stack
        .dynamodb
        .put_item()
        .table_name(stack.resources.projections_table())
        .item("pk", AttributeValue::S(legacy.clone()))
        .item("sk", AttributeValue::S("cus_1".into()))
        .item("version", AttributeValue::N("20".into()))
        .item("rank", AttributeValue::N("0".into()))
        .item("source_event_id", AttributeValue::S("evt_before".into()))
        .item("deleted", AttributeValue::Bool(false))
        .item("status", AttributeValue::S("active".into()))
        .item("plan", AttributeValue::S("pro".into()))
        .send()
        .await
        .expect("legacy item");
    assert_eq!(projection(&stack, &customer("cus_1")).await, None);

    // WHEN an older event for it commits, THEN it changes nothing, and the item now sits in
    // its shard as it was.
    let late = unprocessed(&stack, "evt_late").await;
    let stale = upsert("cus_1", 10, "evt_late", json!({"status": "incomplete"}));
    assert_eq!(
        commit(&stack, &late, 1, &[stale]).await.expect("commit"),
        Commit::Committed {
            applied: 0,
            skipped: 1
        }
    );
    let moved = projection(&stack, &customer("cus_1")).await.expect("moved");
    assert_eq!(text(&moved, "pk"), customer("cus_1").pk());
    assert_eq!(
        (text(&moved, "status"), text(&moved, "plan")),
        ("active".into(), "pro".into())
    );
    assert_eq!(n(&moved, "version"), "20");

    // WHEN a newer one commits, THEN it merges into the moved item: the old fields stay.
    let newer = unprocessed(&stack, "evt_newer").await;
    let update = upsert("cus_1", 30, "evt_newer", json!({"status": "past_due"}));
    commit(&stack, &newer, 1, &[update]).await.expect("commit");
    let item = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(
        (text(&item, "status"), text(&item, "plan")),
        ("past_due".into(), "pro".into())
    );
    assert_eq!(n(&item, "version"), "30");
}

#[tokio::test]
async fn a_delete_leaves_a_tombstone_that_only_a_newer_update_replaces() {
    let stack = Stack::new().await;
    let events = ["evt_v1", "evt_v5", "evt_v5b", "evt_v6"];
    for id in events {
        unprocessed(&stack, id).await;
    }
    let step = |id: &'static str, write: ProjectionWrite| {
        let stack = &stack;
        async move { commit(stack, &key(id), 1, &[write]).await.expect(id) }
    };
    step(
        "evt_v1",
        upsert(
            "cus_1",
            1,
            "evt_v1",
            json!({"status": "active", "plan": "pro"}),
        ),
    )
    .await;
    assert_eq!(
        step("evt_v5", delete("cus_1", 5, "evt_v5")).await,
        Commit::Committed {
            applied: 1,
            skipped: 0
        }
    );
    let tombstone = projection(&stack, &customer("cus_1")).await.expect("item");
    let mut attributes: Vec<&str> = tombstone.keys().map(String::as_str).collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        ["deleted", "pk", "rank", "sk", "source_event_id", "version"]
    );
    // Same instant: the delete ranks higher, and wins.
    assert_eq!(
        step(
            "evt_v5b",
            upsert("cus_1", 5, "evt_v5b", json!({"status": "active"}))
        )
        .await,
        Commit::Committed {
            applied: 0,
            skipped: 1
        }
    );
    // Strictly newer: the entity starts over, without its old fields.
    step(
        "evt_v6",
        upsert("cus_1", 6, "evt_v6", json!({"status": "active"})),
    )
    .await;
    let back = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(back["deleted"], AttributeValue::Bool(false));
    assert_eq!(text(&back, "status"), "active");
    assert!(!back.contains_key("plan"), "old fields are gone");
}

#[tokio::test]
async fn of_two_deliveries_committing_one_event_exactly_one_marks_it_and_the_effect_lands_once() {
    let stack = Stack::new().await;
    let key = unprocessed(&stack, "evt_twice").await;
    let writes = [upsert(
        "cus_1",
        10,
        "evt_twice",
        json!({"status": "active"}),
    )];

    // One after the other: the emulator does not serialize a conditional write against
    // another request's (see above); DynamoDB does, and the outcome is the same.
    let first = commit(&stack, &key, 1, &writes).await.expect("first");
    let second = commit(&stack, &key, 2, &writes).await.expect("second");

    assert_eq!(
        first,
        Commit::Committed {
            applied: 1,
            skipped: 0
        }
    );
    assert_eq!(second, Commit::Finished);
    let done = record(&stack, &key).await;
    assert_eq!((done.status, done.attempts), (EventStatus::Processed, 1));
    assert_eq!(projection_count(&stack).await, 1);
}

/// Makes the first `lies` `BatchGetItem` answers report every item at `version`: what a
/// commit sees when a newer write lands between its read and its transaction. The emulator
/// cannot be paused mid-commit, so the interleaving is staged on the client instead.
#[derive(Debug)]
struct StaleReads {
    version: i64,
    counts: Arc<ReadCounts>,
}

#[derive(Debug, Default)]
struct ReadCounts {
    lies: AtomicU32,
    reads: AtomicU32,
}

impl Intercept for StaleReads {
    fn name(&self) -> &'static str {
        "StaleReads"
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(output) = output.downcast_mut::<BatchGetItemOutput>() else {
            return Ok(());
        };
        self.counts.reads.fetch_add(1, Ordering::SeqCst);
        if self
            .counts
            .lies
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Ok(());
        }
        for item in output
            .responses
            .iter_mut()
            .flat_map(|r| r.values_mut())
            .flatten()
        {
            item.insert(
                "version".into(),
                AttributeValue::N(self.version.to_string()),
            );
        }
        Ok(())
    }
}

/// The store, reading projections through [`StaleReads`], and its read counts.
fn store_reading_stale(
    stack: &Stack,
    version: i64,
    lies: u32,
) -> (DynamoEventStore, Arc<ReadCounts>) {
    let counts = Arc::new(ReadCounts {
        lies: AtomicU32::new(lies),
        reads: AtomicU32::new(0),
    });
    let config = stack
        .dynamodb
        .config()
        .to_builder()
        .interceptor(StaleReads {
            version,
            counts: counts.clone(),
        })
        .build();
    let store = DynamoEventStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        stack.resources.events_table(),
    )
    .with_projections(stack.resources.projections_table());
    (store, counts)
}

/// GIVEN `cus_1` at version 20, and a claimed older event that updates `cus_1` and `cus_2`.
async fn newer_entity_and_older_event(stack: &Stack) -> (EventKey, [ProjectionWrite; 2]) {
    let newer = unprocessed(stack, "evt_newer").await;
    commit(
        stack,
        &newer,
        1,
        &[upsert(
            "cus_1",
            20,
            "evt_newer",
            json!({"status": "active"}),
        )],
    )
    .await
    .expect("newer commit");
    let older = unprocessed(stack, "evt_older").await;
    let writes = [
        upsert("cus_1", 10, "evt_older", json!({"status": "incomplete"})),
        upsert("cus_2", 10, "evt_older", json!({"status": "trialing"})),
    ];
    (older, writes)
}

#[tokio::test]
async fn a_newer_write_landing_after_the_read_cancels_the_transaction_and_wins() {
    let stack = Stack::new().await;
    let (older, writes) = newer_entity_and_older_event(&stack).await;
    // The first read sees cus_1 (and cus_2) at version 5, as before the newer event landed.
    let (store, counts) = store_reading_stale(&stack, 5, 1);

    let result = store
        .commit(&older, 1, &writes, "processed", at(NOW + 1), None)
        .await
        .expect("commit");

    // The transaction conditioned on version 5 was cancelled; the retry read version 20. Each
    // attempt reads the shards, then the unsharded key of cus_2, which is new.
    assert_eq!(counts.reads.load(Ordering::SeqCst), 4);
    assert_eq!(
        result,
        Commit::Committed {
            applied: 1,
            skipped: 1
        }
    );
    let kept = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(
        (text(&kept, "status"), n(&kept, "version")),
        ("active".to_owned(), "20".to_owned())
    );
    let other = projection(&stack, &customer("cus_2")).await.expect("item");
    assert_eq!(text(&other, "status"), "trialing");
    assert_eq!(record(&stack, &older).await.status, EventStatus::Processed);
}

#[tokio::test]
async fn a_commit_that_keeps_losing_races_gives_up_without_writing() {
    let stack = Stack::new().await;
    let (older, writes) = newer_entity_and_older_event(&stack).await;
    let (store, counts) = store_reading_stale(&stack, 5, u32::MAX);

    let result = store
        .commit(&older, 1, &writes, "processed", at(NOW + 1), None)
        .await;

    let Err(StoreError::Unavailable(reason)) = result else {
        panic!("expected to give up, got {result:?}")
    };
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    // Three attempts, each reading the shards and cus_2's unsharded key.
    assert_eq!(counts.reads.load(Ordering::SeqCst), 6);
    assert_eq!(
        projection_count(&stack).await,
        1,
        "only the newer event's item"
    );
    let still = record(&stack, &older).await;
    assert_eq!(still.status, EventStatus::Received);
}

#[tokio::test]
async fn a_commit_with_writes_needs_a_projections_table() {
    let stack = Stack::new().await;
    let key = unprocessed(&stack, "evt_nowhere_to_write").await;
    let without = stack.store();
    let writes = [upsert("cus_1", 1, "evt_nowhere_to_write", json!({}))];

    let refused = without
        .commit(&key, 1, &writes, "processed", at(NOW), None)
        .await;

    assert_eq!(
        refused,
        Err(StoreError::Rejected(
            "no projections table configured".into()
        ))
    );
    assert_eq!(record(&stack, &key).await.status, EventStatus::Received);
    // An event without writes needs none.
    let ignored = without
        .commit(&key, 1, &[], "ignored", at(NOW), None)
        .await
        .expect("commit");
    assert_eq!(
        ignored,
        Commit::Committed {
            applied: 0,
            skipped: 0
        }
    );
    let done = record(&stack, &key).await;
    assert_eq!(
        (done.status, done.outcome.as_deref(), done.expires_at),
        (EventStatus::Processed, Some("ignored"), None)
    );
}

#[tokio::test]
async fn a_failure_is_recorded_with_its_attempt_until_the_event_is_finished() {
    let stack = Stack::new().await;
    let store = store(&stack);
    let key = unprocessed(&stack, "evt_fail").await;
    let failed = Failure {
        error: "downstream timeout".into(),
        status: EventStatus::Failed,
        retry_exhausted: false,
    };

    store
        .record_failure(&key, 1, &failed, at(NOW + 2))
        .await
        .expect("recorded");

    let after = record(&stack, &key).await;
    assert_eq!(after.status, EventStatus::Failed);
    assert_eq!(after.last_error.as_deref(), Some("downstream timeout"));
    assert!(!after.retry_exhausted);
    assert_eq!((after.lease_owner, after.lease_until), (None, None));
    assert_eq!(after.completed_at, None);
    let listed = stack
        .store()
        .page_by_status(&tenant(), EventStatus::Failed, 10, None)
        .await
        .expect("list")
        .events;
    assert_eq!(listed.len(), 1);

    assert_eq!(after.attempts, 1);

    // The queue redelivers; the second attempt fails for good.
    let dead = Failure {
        error: "é".repeat(3000),
        status: EventStatus::Dead,
        retry_exhausted: true,
    };
    store
        .record_failure(&key, 2, &dead, at(NOW + 62))
        .await
        .expect("recorded");

    let end = record(&stack, &key).await;
    assert_eq!((end.status, end.attempts), (EventStatus::Dead, 2));
    assert!(end.retry_exhausted);
    // A racing delivery's failure on the finished event changes nothing.
    store
        .record_failure(&key, 3, &failed, at(NOW + 63))
        .await
        .expect("ignored");
    assert_eq!(record(&stack, &key).await.status, EventStatus::Dead);
    assert_eq!(end.completed_at, Some(at(NOW + 62)));
    assert_eq!(
        end.last_error.map(|e| e.chars().count()),
        Some(MAX_ERROR_CHARS)
    );
}

#[tokio::test]
async fn the_retry_queue_backs_off_and_dead_letters() {
    let stack = Stack::new().await;
    let queue_url = stack.resources.events_queue_url();
    let queue = SqsRetryQueue::new(
        stack.sqs.clone(),
        queue_url,
        stack.resources.dead_letter_queue_url(),
    );
    let receive = |url: &str| {
        let sqs = stack.sqs.clone();
        let url = url.to_owned();
        async move {
            sqs.receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default()
        }
    };

    queue.dead_letter(r#"{"poison":true}"#).await.expect("sent");
    let dead = receive(stack.resources.dead_letter_queue_url()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some(r#"{"poison":true}"#));

    stack
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body("pointer")
        .send()
        .await
        .expect("send");
    let first = receive(queue_url).await;
    let handle = first[0].receipt_handle().expect("handle");
    // Visible again at once...
    queue
        .retry_after(handle, Duration::ZERO)
        .await
        .expect("retry now");
    let again = receive(queue_url).await;
    assert_eq!(again.len(), 1);
    // ...or hidden for the backoff.
    let handle = again[0].receipt_handle().expect("handle");
    queue
        .retry_after(handle, Duration::from_secs(3_600))
        .await
        .expect("retry later");
    assert!(receive(queue_url).await.is_empty());
}
