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
    ports::{
        Claim, Commit, EventHistory, EventProcessing, EventStore, Failure, Lease, RetryQueue,
        StoreError,
    },
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

fn lease(owner: &str, until_secs: u64) -> Lease {
    Lease {
        owner: owner.to_owned(),
        until: at(until_secs),
    }
}

/// The events store, able to commit projections.
fn store(stack: &Stack) -> DynamoEventStore {
    stack
        .store()
        .with_projections(stack.resources.projections_table())
}

/// GIVEN an event delivered and enqueued.
async fn enqueued(stack: &Stack, id: &str) -> EventKey {
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
    store
        .mark_enqueued(&record.key, at(NOW - 4))
        .await
        .expect("enqueued");
    record.key
}

/// GIVEN an event claimed by `owner` at `NOW` for 30 s.
async fn claimed(stack: &Stack, id: &str, owner: &str) -> EventKey {
    let key = enqueued(stack, id).await;
    let claim = store(stack)
        .claim(&key, &lease(owner, NOW + 30), at(NOW))
        .await
        .expect("claim");
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    key
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
    owner: &str,
    writes: &[ProjectionWrite],
) -> Result<Commit, StoreError> {
    store(stack)
        .commit(
            key,
            &lease(owner, NOW + 30),
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
async fn a_claim_takes_the_event_and_counts_the_attempt() {
    let stack = Stack::new().await;
    let key = enqueued(&stack, "evt_claim").await;

    let claim = store(&stack)
        .claim(&key, &lease("inv-1/m1", NOW + 30), at(NOW))
        .await
        .expect("claim");

    let Claim::Claimed(claimed) = claim else {
        panic!("expected a claim, got {claim:?}")
    };
    assert_eq!(claimed.status, EventStatus::Processing);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("inv-1/m1"));
    assert_eq!(claimed.lease_until, Some(at(NOW + 30)));
    assert_eq!(
        *claimed,
        record(&stack, &key).await,
        "returns what is stored"
    );
    // The status index moved with it.
    let listed = stack
        .store()
        .page_by_status(&tenant(), EventStatus::Processing, 10, None)
        .await
        .expect("list")
        .events;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts, 1);
}

#[tokio::test]
async fn a_claim_refuses_processed_busy_dead_and_missing_events() {
    let stack = Stack::new().await;
    let store = store(&stack);
    let processed = claimed(&stack, "evt_done", "a").await;
    commit(&stack, &processed, "a", &[]).await.expect("commit");
    let busy = claimed(&stack, "evt_busy", "a").await;
    let dead = claimed(&stack, "evt_dead", "a").await;
    store
        .record_failure(
            &dead,
            &lease("a", NOW + 30),
            &Failure {
                error: "permanent".into(),
                status: EventStatus::Dead,
                retry_exhausted: false,
            },
            at(NOW + 1),
        )
        .await
        .expect("dead");

    let other = lease("b", NOW + 40);
    let claim = |key: EventKey| {
        let store = &store;
        let other = &other;
        async move { store.claim(&key, other, at(NOW + 10)).await.expect("claim") }
    };
    assert_eq!(claim(processed).await, Claim::AlreadyProcessed);
    assert_eq!(claim(busy.clone()).await, Claim::Busy);
    assert_eq!(claim(dead).await, Claim::Unclaimable(EventStatus::Dead));
    assert_eq!(claim(key("evt_nowhere")).await, Claim::Missing);
    // A refused claim changes nothing.
    let still = record(&stack, &busy).await;
    assert_eq!(
        (still.lease_owner.as_deref(), still.attempts),
        (Some("a"), 1)
    );
}

#[tokio::test]
async fn an_expired_lease_can_be_taken_over() {
    let stack = Stack::new().await;
    let key = claimed(&stack, "evt_stale", "a").await;

    let claim = store(&stack)
        .claim(&key, &lease("b", NOW + 100), at(NOW + 31))
        .await
        .expect("claim");

    let Claim::Claimed(taken) = claim else {
        panic!("expected a takeover, got {claim:?}")
    };
    assert_eq!(taken.lease_owner.as_deref(), Some("b"));
    assert_eq!(taken.attempts, 2);
}

#[tokio::test]
async fn a_commit_writes_projections_and_marks_the_event_processed_together() {
    let stack = Stack::new().await;
    let key = claimed(&stack, "evt_commit", "a").await;
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

    let result = commit(&stack, &key, "a", &writes).await.expect("commit");

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
    let first = claimed(&stack, "evt_new", "a").await;
    commit(
        &stack,
        &first,
        "a",
        &[upsert("cus_1", 20, "evt_new", json!({"status": "active"}))],
    )
    .await
    .expect("first commit");
    let late = claimed(&stack, "evt_old", "b").await;

    let result = commit(
        &stack,
        &late,
        "b",
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
async fn a_delete_leaves_a_tombstone_that_only_a_newer_update_replaces() {
    let stack = Stack::new().await;
    let events = ["evt_v1", "evt_v5", "evt_v5b", "evt_v6"];
    for id in events {
        claimed(&stack, id, "a").await;
    }
    let step = |id: &'static str, write: ProjectionWrite| {
        let stack = &stack;
        async move { commit(stack, &key(id), "a", &[write]).await.expect(id) }
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
async fn a_commit_after_the_lease_was_lost_writes_nothing() {
    let stack = Stack::new().await;
    let key = claimed(&stack, "evt_lost", "a").await;
    let takeover = store(&stack)
        .claim(&key, &lease("b", NOW + 100), at(NOW + 31))
        .await
        .expect("claim");
    assert!(matches!(takeover, Claim::Claimed(_)));

    let result = commit(
        &stack,
        &key,
        "a",
        &[upsert("cus_1", 10, "evt_lost", json!({"status": "active"}))],
    )
    .await
    .expect("commit");

    assert_eq!(result, Commit::LeaseLost);
    assert_eq!(projection_count(&stack).await, 0, "rolled back");
    let still = record(&stack, &key).await;
    assert_eq!(still.status, EventStatus::Processing);
    assert_eq!(still.lease_owner.as_deref(), Some("b"));
    // Without writes too.
    assert_eq!(
        commit(&stack, &key, "a", &[]).await.expect("commit"),
        Commit::LeaseLost
    );
}

// The emulator does not serialize conditional writes (a check and its write can interleave
// with another request's), and it undoes a cancelled transaction by restoring whole-table
// snapshots, which can erase a transaction that committed meanwhile. So the races below keep
// concurrent only what the emulator handles soundly; DynamoDB handles all of it.

#[tokio::test]
async fn of_two_processors_racing_on_one_event_exactly_one_commits() {
    let stack = Stack::new().await;
    let key = enqueued(&stack, "evt_race").await;
    let (a, b) = (store(&stack), store(&stack));
    let (lease_a, lease_b) = (lease("a", NOW + 30), lease("b", NOW + 30));

    let (claim_a, claim_b) = tokio::join!(
        a.claim(&key, &lease_a, at(NOW)),
        b.claim(&key, &lease_b, at(NOW)),
    );
    // DynamoDB lets one claim through; the emulator may let both. Either way one owner's lease
    // is stored, and only that owner's commit lands.
    let claims = [claim_a.expect("a"), claim_b.expect("b")];
    assert!(
        claims.iter().any(|c| matches!(c, Claim::Claimed(_))),
        "{claims:?}"
    );
    let mut commits = Vec::new();
    for owner in ["a", "b"] {
        let writes = [upsert("cus_1", 10, "evt_race", json!({ "by": owner }))];
        commits.push(commit(&stack, &key, owner, &writes).await.expect(owner));
    }

    let winners: Vec<&str> = ["a", "b"]
        .into_iter()
        .zip(&commits)
        .filter(|(_, c)| matches!(c, Commit::Committed { .. }))
        .map(|(owner, _)| owner)
        .collect();
    assert_eq!(winners.len(), 1, "{commits:?}");
    let item = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(text(&item, "by"), winners[0]);
    assert_eq!(record(&stack, &key).await.status, EventStatus::Processed);
}

#[tokio::test]
async fn of_two_concurrent_commits_on_one_event_exactly_one_lands() {
    let stack = Stack::new().await;
    let key = claimed(&stack, "evt_twice", "a").await;
    // The lease ran out and another processor took the event; `a` has not noticed.
    store(&stack)
        .claim(&key, &lease("b", NOW + 100), at(NOW + 31))
        .await
        .expect("takeover");
    let by_b = [upsert("cus_1", 10, "evt_twice", json!({"by": "b"}))];

    // `a` commits an ignored event (a plain conditional update): a cancelled transaction
    // from `a` could make the emulator erase `b`'s commit (see above).
    let (from_a, from_b) = tokio::join!(
        commit(&stack, &key, "a", &[]),
        commit(&stack, &key, "b", &by_b),
    );

    assert_eq!(from_a.expect("a"), Commit::LeaseLost);
    assert_eq!(
        from_b.expect("b"),
        Commit::Committed {
            applied: 1,
            skipped: 0
        }
    );
    let done = record(&stack, &key).await;
    assert_eq!(
        (done.status, done.outcome.as_deref()),
        (EventStatus::Processed, Some("processed"))
    );
    let item = projection(&stack, &customer("cus_1")).await.expect("item");
    assert_eq!(text(&item, "by"), "b");
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
    let newer = claimed(stack, "evt_newer", "a").await;
    commit(
        stack,
        &newer,
        "a",
        &[upsert(
            "cus_1",
            20,
            "evt_newer",
            json!({"status": "active"}),
        )],
    )
    .await
    .expect("newer commit");
    let older = claimed(stack, "evt_older", "b").await;
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
        .commit(
            &older,
            &lease("b", NOW + 30),
            &writes,
            "processed",
            at(NOW + 1),
            None,
        )
        .await
        .expect("commit");

    // The transaction conditioned on version 5 was cancelled; the retry read version 20.
    assert_eq!(counts.reads.load(Ordering::SeqCst), 2);
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
        .commit(
            &older,
            &lease("b", NOW + 30),
            &writes,
            "processed",
            at(NOW + 1),
            None,
        )
        .await;

    let Err(StoreError::Unavailable(reason)) = result else {
        panic!("expected to give up, got {result:?}")
    };
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(counts.reads.load(Ordering::SeqCst), 3);
    assert_eq!(
        projection_count(&stack).await,
        1,
        "only the newer event's item"
    );
    let still = record(&stack, &older).await;
    assert_eq!(
        (still.status, still.lease_owner.as_deref()),
        (EventStatus::Processing, Some("b"))
    );
}

#[tokio::test]
async fn a_commit_with_writes_needs_a_projections_table() {
    let stack = Stack::new().await;
    let key = claimed(&stack, "evt_nowhere_to_write", "a").await;
    let without = stack.store();
    let writes = [upsert("cus_1", 1, "evt_nowhere_to_write", json!({}))];

    let refused = without
        .commit(
            &key,
            &lease("a", NOW + 30),
            &writes,
            "processed",
            at(NOW),
            None,
        )
        .await;

    assert_eq!(
        refused,
        Err(StoreError::Rejected(
            "no projections table configured".into()
        ))
    );
    assert_eq!(record(&stack, &key).await.status, EventStatus::Processing);
    // An event without writes needs none.
    let ignored = without
        .commit(&key, &lease("a", NOW + 30), &[], "ignored", at(NOW), None)
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
async fn a_failure_is_recorded_by_the_lease_holder_only() {
    let stack = Stack::new().await;
    let store = store(&stack);
    let key = claimed(&stack, "evt_fail", "a").await;
    let failed = Failure {
        error: "downstream timeout".into(),
        status: EventStatus::Failed,
        retry_exhausted: false,
    };

    store
        .record_failure(&key, &lease("a", NOW + 30), &failed, at(NOW + 2))
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

    // The queue redelivers; the next attempt fails for good.
    let retry = store
        .claim(&key, &lease("b", NOW + 100), at(NOW + 60))
        .await
        .expect("claim");
    assert!(matches!(retry, Claim::Claimed(ref r) if r.attempts == 2));
    // A stale holder's report is ignored.
    store
        .record_failure(&key, &lease("a", NOW + 30), &failed, at(NOW + 61))
        .await
        .expect("ignored");
    assert_eq!(record(&stack, &key).await.status, EventStatus::Processing);
    let dead = Failure {
        error: "é".repeat(3000),
        status: EventStatus::Dead,
        retry_exhausted: true,
    };
    store
        .record_failure(&key, &lease("b", NOW + 100), &dead, at(NOW + 62))
        .await
        .expect("recorded");

    let end = record(&stack, &key).await;
    assert_eq!(end.status, EventStatus::Dead);
    assert!(end.retry_exhausted);
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
