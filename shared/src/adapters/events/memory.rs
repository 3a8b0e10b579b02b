//! The event records in a map, for fast unit tests of the use cases. Every status change goes
//! through [`EventRecord::enter`], so the memory store refuses exactly the moves the life
//! forbids, as the DynamoDB adapter's conditions do; the port suites in the integration tests
//! run both adapters through the same cases.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use async_trait::async_trait;

use crate::{
    adapters::{Outage, lock},
    clock::unix_millis,
    ids::EventId,
    ids::TenantId,
    operations::{decode_page_token, encode_page_token},
    ports::{
        Commit, ContentClaim, Erased, Erasure, ErasureAudit, EventErasure, EventHistory, EventPage,
        EventProcessing, EventRecovery, EventStore, EventSummary, EventTimeline, Failure,
        OperatorMark, PendingEvent, PendingEvents, PutOutcome, Requeue, StoreError,
    },
    projection::{MemoryProjections, ProjectionWrite, check_writes},
    record::{EventKey, EventRecord, EventStatus},
};

/// Event records in a map, and the projections the processor commits with them.
#[derive(Debug, Default)]
pub struct MemoryEventStore {
    records: Mutex<HashMap<EventKey, EventRecord>>,
    projections: Mutex<MemoryProjections>,
    outage: Outage,
    commit_outage: Outage,
    commit_refusal: Outage,
    /// Content notes: (tenant, provider, content hash) → the event id that carried it first.
    contents: Mutex<HashMap<(TenantId, crate::provider::Provider, String), EventId>>,
    /// Projection writes applied by commits, summed: effects, not items, so a write applied
    /// twice shows even when it leaves the same item behind.
    effects: AtomicUsize,
    /// Successful commits per event: exactly one for every processed event.
    commits: Mutex<HashMap<EventKey, usize>>,
    /// Erasures' audit records, in the order they were kept.
    erasures: Mutex<Vec<ErasureAudit>>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every call fail (`true`) or succeed again (`false`).
    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Every stored record, for assertions.
    pub fn all(&self) -> Vec<EventRecord> {
        lock(&self.records).values().cloned().collect()
    }

    /// Make only commits fail (`true`): a downstream failure after a successful claim.
    pub fn set_commits_failing(&self, failing: bool) {
        self.commit_outage.set(failing);
    }

    /// Make commits refused as DynamoDB refuses a request it can never accept (`true`).
    pub fn set_commits_refused(&self, refused: bool) {
        self.commit_refusal.set(refused);
    }

    /// One record, for assertions.
    pub fn record(&self, key: &EventKey) -> Option<EventRecord> {
        lock(&self.records).get(key).cloned()
    }

    /// Store or replace a record as it is, for arranging tests.
    pub fn insert(&self, record: EventRecord) {
        lock(&self.records).insert(record.key.clone(), record);
    }

    /// The committed projections, for assertions.
    pub fn projections(&self) -> MemoryProjections {
        lock(&self.projections).clone()
    }

    /// How many projection writes commits have applied in all.
    pub fn effects(&self) -> usize {
        self.effects.load(Ordering::SeqCst)
    }

    /// How many times `key`'s effects were committed.
    pub fn commits(&self, key: &EventKey) -> usize {
        lock(&self.commits).get(key).copied().unwrap_or(0)
    }

    /// The erasures' audit records, for assertions.
    pub fn erasures(&self) -> Vec<ErasureAudit> {
        lock(&self.erasures).clone()
    }

    fn available(&self) -> Result<(), StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)
    }
}

fn summary(r: &EventRecord) -> EventSummary {
    EventSummary {
        key: r.key.clone(),
        event_type: r.event_type.clone(),
        status: r.status,
        attempts: r.attempts,
        retry_exhausted: r.retry_exhausted,
        last_error: r.last_error.clone(),
        received_at: r.received_at,
    }
}

/// The DynamoDB partition key's text, so pages break ties the way the index does.
fn sort_key(key: &EventKey) -> String {
    format!("{}#{}#{}", key.tenant, key.provider, key.event_id)
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        if let Some(existing) = records.get_mut(&record.key) {
            let found = existing.clone();
            existing.duplicates += 1;
            return Ok(PutOutcome::Existing(Box::new(found)));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(PutOutcome::Inserted)
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.available()?;
        Ok(lock(&self.records).get(key).cloned())
    }

    async fn claim_content(
        &self,
        key: &EventKey,
        content: &str,
        replacing: Option<&EventId>,
        _expires_at: SystemTime,
    ) -> Result<ContentClaim, StoreError> {
        self.available()?;
        let mut contents = lock(&self.contents);
        let note = (key.tenant.clone(), key.provider, content.to_owned());
        match contents.get(&note) {
            Some(owner) if owner != &key.event_id && Some(owner) != replacing => {
                Ok(ContentClaim::Seen(owner.clone()))
            }
            _ => {
                contents.insert(note, key.event_id.clone());
                Ok(ContentClaim::Claimed)
            }
        }
    }
}

#[async_trait]
impl EventProcessing for MemoryEventStore {
    async fn commit(
        &self,
        key: &EventKey,
        attempt: u32,
        writes: &[ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError> {
        self.available()?;
        check_writes(writes).map_err(|e| StoreError::Rejected(e.to_string()))?;
        self.commit_outage
            .check()
            .map_err(StoreError::Unavailable)?;
        self.commit_refusal.check().map_err(StoreError::Rejected)?;
        // Both locks held: the writes and the mark land together or not at all.
        let mut records = lock(&self.records);
        let mut projections = lock(&self.projections);
        let Some(record) = records.get_mut(key) else {
            return Ok(Commit::Finished);
        };
        if !EventStatus::UNFINISHED.contains(&record.status)
            || record.enter(EventStatus::Processed, now).is_err()
        {
            return Ok(Commit::Finished);
        }
        let applied = projections.apply_all(writes);
        self.effects.fetch_add(applied, Ordering::SeqCst);
        record.outcome = Some(outcome.to_owned());
        record.completed_at = Some(now);
        record.attempts = attempt;
        record.lease_owner = None;
        record.lease_until = None;
        record.expires_at = expires_at;
        *lock(&self.commits).entry(key.clone()).or_default() += 1;
        Ok(Commit::Committed {
            applied,
            skipped: writes.len() - applied,
        })
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        attempt: u32,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.available()?;
        if !matches!(failure.status, EventStatus::Failed | EventStatus::Dead) {
            return Err(StoreError::Rejected(format!(
                "a failure leaves an event failed or dead, not {}",
                failure.status
            )));
        }
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key) else {
            return Ok(());
        };
        if !EventStatus::UNFINISHED.contains(&record.status)
            || record.enter(failure.status, now).is_err()
        {
            return Ok(());
        }
        record.last_error = Some(failure.error.clone());
        record.retry_exhausted = failure.retry_exhausted;
        record.attempts = attempt;
        record.lease_owner = None;
        record.lease_until = None;
        if failure.status == EventStatus::Dead {
            record.completed_at = Some(now);
        }
        Ok(())
    }
}

#[async_trait]
impl EventRecovery for MemoryEventStore {
    async fn mark_requeued(
        &self,
        key: &EventKey,
        from: EventStatus,
        how: Requeue,
        mark: &OperatorMark,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key) else {
            return Ok(None);
        };
        let lease_live = record.lease_until.is_some_and(|until| until >= mark.at);
        if record.status != from
            || (from == EventStatus::Processing && lease_live)
            || record.enter(EventStatus::Enqueued, mark.at).is_err()
        {
            return Ok(None);
        }
        record.enqueued_at = Some(mark.at);
        record.note = Some(mark.note.clone());
        record.lease_owner = None;
        record.lease_until = None;
        record.completed_at = None;
        record.expires_at = None;
        if how == Requeue::Replay {
            record.replay_count += 1;
            record.replayed_at = Some(mark.at);
            record.attempts = 0;
            record.retry_exhausted = false;
        }
        Ok(Some(record.clone()))
    }

    async fn mark_dead(
        &self,
        key: &EventKey,
        reason: &str,
        mark: &OperatorMark,
    ) -> Result<bool, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key) else {
            return Ok(false);
        };
        let lease_live = record.lease_until.is_some_and(|until| until >= mark.at);
        if record.status != EventStatus::Processing
            || lease_live
            || record.enter(EventStatus::Dead, mark.at).is_err()
        {
            return Ok(false);
        }
        record.last_error = Some(reason.to_owned());
        record.retry_exhausted = true;
        record.completed_at = Some(mark.at);
        record.note = Some(mark.note.clone());
        record.lease_owner = None;
        record.lease_until = None;
        Ok(true)
    }

    async fn mark_discarded(
        &self,
        key: &EventKey,
        mark: &OperatorMark,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        let Some(record) = records
            .get_mut(key)
            .filter(|r| r.status == EventStatus::Dead)
        else {
            return Ok(false);
        };
        if record.enter(EventStatus::Discarded, mark.at).is_err() {
            return Ok(false);
        }
        record.discarded_at = Some(mark.at);
        record.note = Some(mark.note.clone());
        record.expires_at = expires_at;
        Ok(true)
    }
}

#[async_trait]
impl EventErasure for MemoryEventStore {
    async fn erase_payload(&self, key: &EventKey, erasure: &Erasure) -> Result<Erased, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key) else {
            return Ok(Erased::NotFound);
        };
        if record.is_erased() {
            return Ok(Erased::Already(Box::new(record.clone())));
        }
        record.payload = Vec::new();
        let offloaded = record.payload_location.take().is_some();
        record.erased_at = Some(erasure.at);
        record.erased_by = Some(erasure.actor.clone());
        Ok(Erased::Now {
            tombstone: Box::new(record.clone()),
            offloaded,
        })
    }

    async fn record_erasure(&self, audit: &ErasureAudit) -> Result<(), StoreError> {
        self.available()?;
        lock(&self.erasures).push(audit.clone());
        Ok(())
    }
}

#[async_trait]
impl PendingEvents for MemoryEventStore {
    async fn pending_between(
        &self,
        status: EventStatus,
        from: SystemTime,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.available()?;
        // Whole milliseconds, as the index stores them.
        let (from, before) = (unix_millis(from), unix_millis(before));
        let mut found: Vec<PendingEvent> = lock(&self.records)
            .values()
            .filter(|r| r.status == status && status.is_pending() && status.is_indexed())
            .filter(|r| (from..before).contains(&unix_millis(r.status_at)))
            .map(|r| PendingEvent {
                key: r.key.clone(),
                status: r.status,
                since: r.status_at,
                attempts: r.attempts,
                lease_until: r.lease_until,
            })
            .collect();
        found.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }
}

#[async_trait]
impl EventHistory for MemoryEventStore {
    async fn page_by_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        limit: u32,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        self.available()?;
        let start = match after {
            None => None,
            Some(token) => Some(
                decode_page_token(token, tenant)
                    .ok_or_else(|| StoreError::Malformed("invalid page token".into()))?,
            ),
        };
        let mut found: Vec<(i64, String, EventSummary)> = lock(&self.records)
            .values()
            .filter(|r| &r.key.tenant == tenant && r.status == status && status.is_indexed())
            .map(|r| (unix_millis(r.status_at), sort_key(&r.key), summary(r)))
            .collect();
        // Newest first, as the index reads backwards: by time, then by key.
        found.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        if let Some((at, pk)) = &start {
            found.retain(|(t, k, _)| (t, k) < (at, pk));
        }
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = found.len() > wanted;
        found.truncate(wanted);
        let next = more
            .then(|| found.last())
            .flatten()
            .map(|(t, k, _)| encode_page_token(*t, k));
        Ok(EventPage {
            events: found.into_iter().map(|(_, _, s)| s).collect(),
            next,
        })
    }

    async fn in_status_since(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        since: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        let mut found = self.in_status(tenant, status, |at| at >= since)?;
        found.reverse();
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn in_status_before(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        let mut found = self.in_status(tenant, status, |at| at < before)?;
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }
}

impl MemoryEventStore {
    /// The tenant's events in `status` whose status time `within` admits, oldest first; as in
    /// DynamoDB, `received` records are in no index.
    fn in_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        within: impl Fn(SystemTime) -> bool,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        self.available()?;
        let mut found: Vec<EventTimeline> = lock(&self.records)
            .values()
            .filter(|r| &r.key.tenant == tenant && r.status == status && within(r.status_at))
            .filter(|r| r.status.is_indexed())
            .map(|r| EventTimeline {
                key: r.key.clone(),
                status: r.status,
                status_at: r.status_at,
                attempts: r.attempts,
                received_at: r.received_at,
                enqueued_at: r.enqueued_at,
                completed_at: r.completed_at,
                duplicates: r.duplicates,
            })
            .collect();
        found.sort_by(|a, b| (a.status_at, &a.key).cmp(&(b.status_at, &b.key)));
        Ok(found)
    }
}
