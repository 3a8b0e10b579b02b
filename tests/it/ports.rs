//! One suite per port, run against every adapter: the memory doubles the unit tests rely on,
//! and the DynamoDB and SQS adapters against the emulator. The same calls must give the same
//! answers and leave the same records, so the doubles can never drift from what is deployed.

use std::time::Duration;

use serde_json::json;
use shared::{
    aws::{DynamoTenantNames, SqsDeadLetterQueue},
    ids::{EventId, TenantId},
    memory::{MemoryDeadLetterQueue, MemoryDirectory, MemoryEventStore},
    ports::StoreError,
    ports::{
        Commit, ContentClaim, DeadLetterQueue, Failure, OperationsStore, OperatorMark,
        ProcessorStore, PutOutcome, Requeue, TenantAdmin, TenantDirectory, TenantNames,
    },
    projection::{Change, ProjectionKey, ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
    secret::{Secret, SecretSlot},
    tenant::{ProviderConfig, UnsignedPolicy},
};

use crate::support::*;

/// What the event-record suites need of an adapter.
trait Records: ProcessorStore + OperationsStore {}
impl<T: ProcessorStore + OperationsStore> Records for T {}

fn event(tenant: &str, id: &str) -> EventKey {
    EventKey {
        tenant: TenantId::parse(tenant).expect("tenant"),
        provider: Provider::Stripe,
        event_id: EventId::parse(id).expect("id"),
    }
}

fn received(key: &EventKey, secs: u64) -> EventRecord {
    EventRecord::received(
        key.clone(),
        Some("customer.updated".into()),
        None,
        Correlation {
            request_id: Some(format!("req-{}", key.event_id)),
            client_request_id: None,
            trace: None,
        },
        Verification::Verified(SecretSlot::Current),
        format!(r#"{{"id":"{}"}}"#, key.event_id).into_bytes(),
        at(secs),
    )
}

/// A record that failed its first attempt at `secs`: in the pending index (a new `received`
/// one is in none: its pointer is on the queue already).
fn failed(key: &EventKey, secs: u64) -> EventRecord {
    EventRecord {
        status: EventStatus::Failed,
        attempts: 1,
        ..received(key, secs)
    }
}

fn mark(secs: u64) -> OperatorMark {
    OperatorMark {
        at: at(secs),
        note: "ops:suite".into(),
    }
}

fn write(key: &EventKey) -> ProjectionWrite {
    ProjectionWrite {
        key: ProjectionKey::new(
            &key.tenant,
            ProjectionKind::StripeCustomer,
            &format!("cus_{}", key.event_id),
        )
        .expect("projection key"),
        version: 1_000,
        rank: 0,
        source_event_id: key.event_id.clone(),
        change: Change::Upsert(
            [("status".to_owned(), json!("active"))]
                .into_iter()
                .collect(),
        ),
    }
}

async fn read(store: &impl Records, key: &EventKey) -> EventRecord {
    store.get(key).await.expect("read").expect("record")
}

/// GIVEN an event stored at `NOW` and put back on the queue a second later (an operator's
/// replay, or a record of the old layout).
async fn enqueued(store: &impl Records, key: &EventKey) {
    let record = EventRecord {
        status: EventStatus::Enqueued,
        status_at: at(NOW + 1),
        enqueued_at: Some(at(NOW + 1)),
        ..received(key, NOW)
    };
    assert_eq!(store.put_if_absent(&record).await, Ok(PutOutcome::Inserted));
}

/// GIVEN a record of the old layout: claimed by `owner` at `NOW + 2`, its lease to `NOW + 32`.
async fn claimed(store: &impl Records, key: &EventKey, owner: &str) {
    let record = EventRecord {
        status: EventStatus::Processing,
        status_at: at(NOW + 2),
        enqueued_at: Some(at(NOW + 1)),
        attempts: 1,
        lease_owner: Some(owner.to_owned()),
        lease_until: Some(at(NOW + 32)),
        ..received(key, NOW)
    };
    assert_eq!(store.put_if_absent(&record).await, Ok(PutOutcome::Inserted));
}

/// The life of one event through the processor's calls, with the time each status was entered.
async fn processing_suite(store: &impl Records) {
    let key = event("acme", "evt_life");
    let first = received(&key, NOW);
    assert_eq!(store.put_if_absent(&first).await, Ok(PutOutcome::Inserted));
    let again = store.put_if_absent(&first).await.expect("second put");
    assert!(matches!(again, PutOutcome::Existing(ref r) if r.status == EventStatus::Received));
    assert_eq!(read(store, &key).await.status_at, at(NOW));

    // A failed first attempt: noted with its number.
    let failure = Failure {
        error: "downstream".into(),
        status: EventStatus::Failed,
        retry_exhausted: false,
    };
    store
        .record_failure(&key, 1, &failure, at(NOW + 5))
        .await
        .expect("failure");
    let r = read(store, &key).await;
    assert_eq!(
        (r.status, r.status_at, r.attempts, r.last_error.as_deref()),
        (EventStatus::Failed, at(NOW + 5), 1, Some("downstream"))
    );

    // Redelivered: the second attempt commits.
    let writes = [write(&key)];
    assert_eq!(
        store
            .commit(
                &key,
                2,
                &writes,
                "processed",
                at(NOW + 42),
                Some(at(NOW + 86_400)),
            )
            .await,
        Ok(Commit::Committed {
            applied: 1,
            skipped: 0
        })
    );
    let r = read(store, &key).await;
    assert_eq!(
        (
            r.status,
            r.status_at,
            r.completed_at,
            r.expires_at,
            r.attempts
        ),
        (
            EventStatus::Processed,
            at(NOW + 42),
            Some(at(NOW + 42)),
            Some(at(NOW + 86_400)),
            2
        )
    );
    // A racing delivery's commit of the same event: finished, its writes not applied again;
    // its failure changes nothing either.
    assert_eq!(
        store
            .commit(&key, 2, &writes, "processed", at(NOW + 51), None)
            .await,
        Ok(Commit::Finished)
    );
    store
        .record_failure(&key, 3, &failure, at(NOW + 52))
        .await
        .expect("ignored");
    let r = read(store, &key).await;
    assert_eq!((r.status, r.attempts), (EventStatus::Processed, 2));
    assert_eq!(
        store
            .commit(
                &event("acme", "evt_nobody"),
                1,
                &[],
                "processed",
                at(NOW),
                None
            )
            .await,
        Ok(Commit::Finished)
    );
    // Content notes: the first id owns the content; another sees it; a take-over from a stale
    // owner succeeds once; the owner itself may note it again.
    let content = "ab".repeat(32);
    let first = event("acme", "d-1");
    let later = event("acme", "d-2");
    let expiry = at(NOW + 86_400);
    assert_eq!(
        store.claim_content(&first, &content, None, expiry).await,
        Ok(ContentClaim::Claimed)
    );
    assert_eq!(
        store.claim_content(&first, &content, None, expiry).await,
        Ok(ContentClaim::Claimed)
    );
    assert_eq!(
        store.claim_content(&later, &content, None, expiry).await,
        Ok(ContentClaim::Seen(first.event_id.clone()))
    );
    assert_eq!(
        store
            .claim_content(&later, &content, Some(&first.event_id), expiry)
            .await,
        Ok(ContentClaim::Claimed)
    );
    assert_eq!(
        store.claim_content(&first, &content, None, expiry).await,
        Ok(ContentClaim::Seen(later.event_id.clone()))
    );
    assert_eq!(
        store
            .claim_content(&event("globex", "d-9"), &content, None, expiry)
            .await,
        Ok(ContentClaim::Claimed),
        "tenants never share content notes"
    );

    // More items than one commit holds: refused for good, nothing written.
    let other = event("acme", "evt_huge");
    claimed(store, &other, "h").await;
    let huge: Vec<ProjectionWrite> = (0..100)
        .map(|i| ProjectionWrite {
            key: ProjectionKey::new(
                &other.tenant,
                ProjectionKind::StripeCustomer,
                &format!("c{i}"),
            )
            .expect("key"),
            ..write(&other)
        })
        .collect();
    let refused = store
        .commit(&other, 2, &huge, "processed", at(NOW + 3), None)
        .await;
    assert!(
        matches!(refused, Err(ref e) if e.is_permanent()),
        "{refused:?}"
    );
    assert_eq!(read(store, &other).await.status, EventStatus::Processing);
}

/// Operators' moves: each only from the status the life allows, each dated.
async fn operations_suite(store: &impl Records) {
    // Dead by a holder, then replayed.
    let dead = event("acme", "evt_dead");
    claimed(store, &dead, "a").await;
    let failure = Failure {
        error: "gave up".into(),
        status: EventStatus::Dead,
        retry_exhausted: true,
    };
    store
        .record_failure(&dead, 2, &failure, at(NOW + 3))
        .await
        .expect("dead");
    assert_eq!(
        store
            .mark_requeued(&dead, EventStatus::Failed, Requeue::Replay, &mark(NOW + 9))
            .await,
        Ok(None),
        "not in the status the operator saw"
    );
    let replayed = store
        .mark_requeued(&dead, EventStatus::Dead, Requeue::Replay, &mark(NOW + 10))
        .await
        .expect("replay")
        .expect("replayed");
    assert_eq!(
        (
            replayed.status,
            replayed.status_at,
            replayed.attempts,
            replayed.replay_count,
            replayed.retry_exhausted,
            replayed.note.as_deref(),
        ),
        (
            EventStatus::Enqueued,
            at(NOW + 10),
            0,
            1,
            false,
            Some("ops:suite")
        )
    );
    assert_eq!(replayed, read(store, &dead).await);

    // Reconcile re-sends a lost `enqueued` one and keeps its attempts.
    let lost = event("acme", "evt_lost");
    enqueued(store, &lost).await;
    let again = store
        .mark_requeued(
            &lost,
            EventStatus::Enqueued,
            Requeue::Reconcile,
            &mark(NOW + 900),
        )
        .await
        .expect("reconcile")
        .expect("requeued");
    assert_eq!((again.status_at, again.replay_count), (at(NOW + 900), 0));

    // A processing one only once its lease is over; then dead only the same way.
    let stuck = event("acme", "evt_stuck");
    claimed(store, &stuck, "crashed").await;
    for at_secs in [NOW + 10, NOW + 32] {
        assert_eq!(
            store
                .mark_requeued(
                    &stuck,
                    EventStatus::Processing,
                    Requeue::Reconcile,
                    &mark(at_secs)
                )
                .await,
            Ok(None)
        );
        assert_eq!(
            store.mark_dead(&stuck, "stopped", &mark(at_secs)).await,
            Ok(false)
        );
    }
    assert_eq!(
        store.mark_dead(&stuck, "stopped", &mark(NOW + 33)).await,
        Ok(true)
    );
    let r = read(store, &stuck).await;
    assert_eq!(
        (r.status, r.status_at, r.retry_exhausted, r.lease_owner),
        (EventStatus::Dead, at(NOW + 33), true, None)
    );
    assert_eq!(
        store.mark_dead(&stuck, "again", &mark(NOW + 34)).await,
        Ok(false)
    );

    // Discarded only from dead, and only once.
    assert_eq!(
        store
            .mark_discarded(&lost, &mark(NOW + 40), Some(at(NOW + 86_400)))
            .await,
        Ok(false)
    );
    assert_eq!(
        store
            .mark_discarded(&stuck, &mark(NOW + 40), Some(at(NOW + 86_400)))
            .await,
        Ok(true)
    );
    let r = read(store, &stuck).await;
    assert_eq!(
        (r.status, r.status_at, r.expires_at),
        (EventStatus::Discarded, at(NOW + 40), Some(at(NOW + 86_400)))
    );
    assert_eq!(
        store.mark_discarded(&stuck, &mark(NOW + 41), None).await,
        Ok(false)
    );
}

/// The indexes: pending events oldest first within bounds, a tenant's statuses newest first,
/// page by page, and a page token never crossing tenants.
async fn listing_suite(store: &impl Records) {
    for i in 0..5u64 {
        let key = event("acme", &format!("evt_p{i}"));
        assert_eq!(
            store.put_if_absent(&failed(&key, NOW + i)).await,
            Ok(PutOutcome::Inserted)
        );
    }
    let theirs = event("globex", "evt_theirs");
    assert_eq!(
        store.put_if_absent(&failed(&theirs, NOW + 2)).await,
        Ok(PutOutcome::Inserted)
    );
    let pending = store
        .pending_between(EventStatus::Failed, at(NOW + 1), at(NOW + 4), 10)
        .await
        .expect("pending");
    let ids: Vec<&str> = pending.iter().map(|p| p.key.event_id.as_str()).collect();
    assert_eq!(ids, ["evt_p1", "evt_p2", "evt_theirs", "evt_p3"]);
    assert_eq!(pending[0].since, at(NOW + 1));
    let limited = store
        .pending_between(EventStatus::Failed, at(NOW), at(NOW + 10), 2)
        .await
        .expect("pending");
    assert_eq!(limited.len(), 2);
    assert!(
        store
            .pending_between(EventStatus::Processed, at(NOW), at(NOW + 10), 10)
            .await
            .expect("not pending")
            .is_empty()
    );

    let tenant = TenantId::parse("acme").expect("tenant");
    let first = store
        .page_by_status(&tenant, EventStatus::Failed, 2, None)
        .await
        .expect("page");
    let names = |page: &shared::ports::EventPage| -> Vec<String> {
        page.events
            .iter()
            .map(|e| e.key.event_id.to_string())
            .collect()
    };
    assert_eq!(names(&first), ["evt_p4", "evt_p3"]);
    let token = first.next.clone().expect("more");
    let second = store
        .page_by_status(&tenant, EventStatus::Failed, 10, Some(&token))
        .await
        .expect("page");
    assert_eq!(names(&second), ["evt_p2", "evt_p1", "evt_p0"]);
    let globex = TenantId::parse("globex").expect("tenant");
    assert!(
        store
            .page_by_status(&globex, EventStatus::Failed, 10, Some(&token))
            .await
            .is_err(),
        "another tenant's token"
    );
    let recent = store
        .in_status_since(&tenant, EventStatus::Failed, at(NOW + 3), 10)
        .await
        .expect("window");
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].status_at, at(NOW + 4));
    // What an erasure by age reaches: before a time, oldest first, this tenant's only.
    let older = store
        .in_status_before(&tenant, EventStatus::Failed, at(NOW + 3), 10)
        .await
        .expect("older");
    let older: Vec<String> = older.iter().map(|t| t.key.event_id.to_string()).collect();
    assert_eq!(older, ["evt_p0", "evt_p1", "evt_p2"]);
    let oldest = store
        .in_status_before(&tenant, EventStatus::Failed, at(NOW + 3), 1)
        .await
        .expect("oldest");
    assert_eq!(oldest.len(), 1);
    assert_eq!(oldest[0].key.event_id.as_str(), "evt_p0");
}

#[tokio::test]
async fn the_event_record_adapters_answer_alike() {
    let stack = Stack::new().await;
    let dynamodb = stack
        .store()
        .with_projections(stack.resources.projections_table());
    let memory = MemoryEventStore::new();
    processing_suite(&memory).await;
    processing_suite(&dynamodb).await;
    operations_suite(&memory).await;
    operations_suite(&dynamodb).await;
    listing_suite(&memory).await;
    listing_suite(&dynamodb).await;
    for key in [event("acme", "evt_life"), event("acme", "evt_dead")] {
        assert_eq!(
            read(&memory, &key).await,
            read(&dynamodb, &key).await,
            "{}",
            key.event_id
        );
    }
}

async fn dead_letter_suite(queue: &impl DeadLetterQueue) {
    queue.send("one").await.expect("send");
    queue.send("two").await.expect("send");
    assert_eq!(queue.depth().await, Ok(2));
    let held = queue
        .receive(10, Duration::from_secs(60))
        .await
        .expect("receive");
    let mut bodies: Vec<&str> = held.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["one", "two"]);
    assert!(
        queue
            .receive(10, Duration::from_secs(60))
            .await
            .expect("receive")
            .is_empty(),
        "held messages are hidden"
    );
    assert_eq!(queue.depth().await, Ok(2), "held ones still count");
    queue.delete(&held[0].receipt_handle).await.expect("delete");
    queue
        .release(&held[1].receipt_handle)
        .await
        .expect("release");
    let back = queue
        .receive(10, Duration::from_secs(60))
        .await
        .expect("receive");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, held[1].body);
}

#[tokio::test]
async fn the_dead_letter_queue_adapters_answer_alike() {
    let stack = Stack::new().await;
    dead_letter_suite(&MemoryDeadLetterQueue::new()).await;
    dead_letter_suite(&SqsDeadLetterQueue::new(
        stack.sqs.clone(),
        stack.resources.dead_letter_queue_url(),
    ))
    .await;
}

async fn tenant_suite(directory: &(impl TenantAdmin + TenantNames)) {
    let acme = TenantId::parse("acme").expect("tenant");
    assert_eq!(
        directory.provider_config(&acme, Provider::Stripe).await,
        Ok(None)
    );
    let new = ProviderConfig::new(acme.clone(), Provider::Stripe, Secret::new("s1"));
    directory.put_config(&new).await.expect("put");
    // `add` never overwrites.
    assert!(matches!(
        directory.put_config(&new).await,
        Err(StoreError::Conflict(_))
    ));
    // Two operators read version 1; the first rotation lands, the second finds it changed.
    let read = directory
        .provider_config(&acme, Provider::Stripe)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read.version, 1);
    let mut config = read.clone();
    config.rotate(Secret::new("s2"), at(NOW), Duration::from_secs(3_600));
    directory.put_config(&config).await.expect("rotate");
    let mut stale = read;
    stale.unsigned = UnsignedPolicy::Refuse;
    stale.rotate(Secret::new("s3"), at(NOW), Duration::from_secs(60));
    assert!(matches!(
        directory.put_config(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    config.version = 2;
    directory
        .put_config(&ProviderConfig::new(
            TenantId::parse("globex").expect("tenant"),
            Provider::GitHub,
            Secret::new("g"),
        ))
        .await
        .expect("put");
    assert_eq!(
        directory.provider_config(&acme, Provider::Stripe).await,
        Ok(Some(config.clone()))
    );
    assert_eq!(directory.list_configs(Some(&acme)).await, Ok(vec![config]));
    assert_eq!(directory.list_configs(None).await.map(|c| c.len()), Ok(2));
    let names: Vec<String> = directory
        .tenant_ids()
        .await
        .expect("names")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["acme", "globex"]);
}

/// The DynamoDB directory and the names reader are two adapters of one table.
#[derive(Debug)]
struct DynamoTenants {
    directory: shared::aws::DynamoTenantDirectory,
    names: DynamoTenantNames,
}

#[async_trait::async_trait]
impl TenantDirectory for DynamoTenants {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, shared::ports::StoreError> {
        self.directory.provider_config(tenant, provider).await
    }
}

#[async_trait::async_trait]
impl TenantAdmin for DynamoTenants {
    async fn put_config(&self, config: &ProviderConfig) -> Result<(), shared::ports::StoreError> {
        self.directory.put_config(config).await
    }

    async fn list_configs(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ProviderConfig>, shared::ports::StoreError> {
        self.directory.list_configs(tenant).await
    }
}

#[async_trait::async_trait]
impl TenantNames for DynamoTenants {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, shared::ports::StoreError> {
        self.names.tenant_ids().await
    }
}

#[tokio::test]
async fn the_tenant_adapters_answer_alike() {
    let stack = Stack::new().await;
    tenant_suite(&MemoryDirectory::new()).await;
    tenant_suite(&DynamoTenants {
        directory: stack.directory(),
        names: DynamoTenantNames::new(stack.dynamodb.clone(), stack.resources.tenants_table()),
    })
    .await;
}

async fn event_type_suite(store: &impl shared::outbound::ports::OutboundStore) {
    use shared::outbound::{
        TenantPolicy,
        catalog::{EventTypeDefinition, PayloadSchema},
        ids::EventType,
    };
    let acme = TenantId::parse("acme").expect("tenant");
    let globex = TenantId::parse("globex").expect("tenant");
    let paid = EventType::parse("invoice.paid").expect("type");
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let schema =
        json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
    let definition = EventTypeDefinition {
        tenant: acme.clone(),
        name: paid.clone(),
        description: "An invoice was paid.".into(),
        schema: Some(PayloadSchema::new(schema).expect("schema")),
        examples: vec![json!({"id": "inv_1"})],
        deprecated: false,
        created_at: at,
        updated_at: at,
        version: 0,
    };

    // Created once; a second create is a conflict.
    store.put_event_type(&definition).await.expect("created");
    assert!(matches!(
        store.put_event_type(&definition).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store
        .event_type(&acme, &paid)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        stored,
        EventTypeDefinition {
            version: 1,
            ..definition.clone()
        }
    );

    // Changed only at the version it was read at.
    let deprecated = EventTypeDefinition {
        deprecated: true,
        schema: None,
        ..stored.clone()
    };
    store.put_event_type(&deprecated).await.expect("changed");
    assert!(matches!(
        store.put_event_type(&deprecated).await,
        Err(StoreError::Conflict(_))
    ));
    let read = store
        .event_type(&acme, &paid)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        (read.deprecated, read.schema, read.version),
        (true, None, 2)
    );

    // Each tenant sees its own catalog only; an endpoint or policy item is not a type.
    store
        .put_tenant_policy(&acme, &TenantPolicy::default())
        .await
        .expect("policy");
    let listed = store.event_types(&acme).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(store.event_type_count(&acme).await.expect("count"), 1);
    assert_eq!(store.event_type_count(&globex).await.expect("count"), 0);
    assert!(store.event_types(&globex).await.expect("list").is_empty());
    assert_eq!(store.event_type(&globex, &paid).await.expect("read"), None);
}

#[tokio::test]
async fn the_event_catalog_adapters_answer_alike() {
    let stack = Stack::new().await;
    event_type_suite(&shared::memory::MemoryOutboundStore::new()).await;
    event_type_suite(&shared::aws::DynamoOutboundStore::without_secrets(
        stack.dynamodb.clone(),
        stack.resources.outbound_table(),
    ))
    .await;
}

async fn endpoint_count_suite(store: &impl shared::outbound::ports::OutboundStore) {
    use shared::{
        outbound::{
            endpoint::Endpoint,
            filter::EventFilter,
            ssrf::{EgressPolicy, EndpointUrl},
        },
        secret::Secret,
    };
    let acme = TenantId::parse("acme").expect("tenant");
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let new = |path: &str| {
        let url = EndpointUrl::parse(
            &format!("https://partner.example/{path}"),
            EgressPolicy::PUBLIC,
        )
        .expect("url");
        Endpoint::new(
            acme.clone(),
            url,
            EventFilter::all(),
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            at,
        )
    };

    // A tenant with an endpoint stored before endpoints were counted.
    let legacy = new("legacy");
    store.put_endpoint(&legacy).await.expect("stored");

    // Counting starts from what the caller read; the limit holds even when the caller's read
    // is stale (another add landed in between).
    assert!(store.insert_endpoint(&new("a"), 1, 3).await.expect("a"));
    assert!(store.insert_endpoint(&new("b"), 2, 3).await.expect("b"));
    assert!(
        !store.insert_endpoint(&new("c"), 2, 3).await.expect("c"),
        "at the limit"
    );
    assert_eq!(store.endpoints(&acme).await.expect("list").len(), 3);
    let twice = new("d");
    let mut roomy = 10;
    assert!(store.insert_endpoint(&twice, 3, roomy).await.expect("d"));
    assert!(matches!(
        store.insert_endpoint(&twice, 4, roomy).await,
        Err(StoreError::Conflict(_))
    ));

    // A delete makes room again; a stale delete is a conflict and counts nothing out.
    assert!(matches!(
        store.delete_endpoint(&acme, &legacy.id, 7).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .delete_endpoint(&acme, &legacy.id, 1)
        .await
        .expect("deleted");
    roomy = 4;
    assert!(store.insert_endpoint(&new("e"), 3, roomy).await.expect("e"));
    assert!(!store.insert_endpoint(&new("f"), 3, roomy).await.expect("f"));
}

#[tokio::test]
async fn the_endpoint_adapters_count_endpoints_with_each_insert_and_delete() {
    let stack = Stack::new().await;
    endpoint_count_suite(&shared::memory::MemoryOutboundStore::new()).await;
    endpoint_count_suite(&shared::aws::DynamoOutboundStore::new(
        stack.dynamodb.clone(),
        stack.resources.outbound_table(),
        std::sync::Arc::new(shared::aws::KmsKeys::new(
            stack.kms.clone(),
            stack.resources.secrets_key(),
        )),
    ))
    .await;
}

/// What the erasure suite needs of an adapter.
trait Erasable: shared::ports::EventStore + shared::ports::EventErasure {}
impl<T: shared::ports::EventStore + shared::ports::EventErasure> Erasable for T {}

async fn erasure_suite(store: &impl Erasable) {
    use shared::ports::{Erased, Erasure, ErasureAudit};
    let erasure = Erasure {
        at: at(NOW + 9),
        actor: "dpo".into(),
    };
    // GIVEN acme's event and other's event under the same id
    let mine = event("acme", "evt_erase");
    let theirs = event("other", "evt_erase");
    for key in [&mine, &theirs] {
        assert_eq!(
            store.put_if_absent(&received(key, NOW)).await,
            Ok(PutOutcome::Inserted)
        );
    }
    // WHEN ids that reach for other's record are erased as acme's: nothing is found
    for id in [
        "evt_none",
        "other#stripe#evt_erase",
        "../other/evt_erase",
        "evt_erase#",
    ] {
        assert_eq!(
            store.erase_payload(&event("acme", id), &erasure).await,
            Ok(Erased::NotFound),
            "{id}"
        );
    }
    // WHEN acme's is erased: a tombstone with its hash, time and actor, and no payload
    let original = received(&mine, NOW);
    let Ok(Erased::Now {
        tombstone,
        offloaded: false,
    }) = store.erase_payload(&mine, &erasure).await
    else {
        panic!("erased now");
    };
    let stored = store.get(&mine).await.expect("read").expect("kept");
    assert_eq!(*tombstone, stored);
    assert!(stored.payload.is_empty() && stored.payload_location.is_none());
    assert_eq!(stored.payload_hash, original.payload_hash);
    assert_eq!(stored.status, original.status);
    assert_eq!(stored.received_at, original.received_at);
    assert_eq!(
        (stored.erased_at, stored.erased_by.as_deref()),
        (Some(at(NOW + 9)), Some("dpo"))
    );
    // THEN again is `Already`, a redelivery finds the tombstone, and other's is whole
    assert_eq!(
        store.erase_payload(&mine, &erasure).await,
        Ok(Erased::Already(Box::new(stored.clone())))
    );
    match store.put_if_absent(&original).await {
        Ok(PutOutcome::Existing(found)) => {
            assert_eq!(found.payload_hash, original.payload_hash);
            assert!(found.is_erased());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .get(&theirs)
            .await
            .expect("read")
            .expect("kept")
            .payload,
        received(&theirs, NOW).payload
    );
    // AND an audit record is kept
    let audit = ErasureAudit {
        tenant: mine.tenant.clone(),
        at: erasure.at,
        actor: "dpo".into(),
        target: "event stripe/evt_erase".into(),
        items: 1,
    };
    assert_eq!(store.record_erasure(&audit).await, Ok(()));
}

#[tokio::test]
async fn the_erasure_adapters_answer_alike() {
    use shared::ports::EventStore;
    let stack = Stack::new().await;
    let dynamodb = stack.store();
    let memory = MemoryEventStore::new();
    erasure_suite(&memory).await;
    erasure_suite(&dynamodb).await;
    let key = event("acme", "evt_erase");
    assert_eq!(
        memory.get(&key).await.expect("memory"),
        dynamodb.get(&key).await.expect("dynamodb")
    );
    assert_eq!(memory.erasures().len(), 1);
    // The audit item sits under acme's scoped key, apart from every event record.
    let audits = stack
        .dynamodb
        .scan()
        .table_name(stack.resources.events_table())
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("#audit#acme#erase#".into()),
        )
        .send()
        .await
        .expect("scan");
    assert_eq!(audits.count(), 1);
    let item = &audits.items()[0];
    assert_eq!(item["actor"].as_s().expect("S"), "dpo");
    assert_eq!(item["items"].as_n().expect("N"), "1");
}
