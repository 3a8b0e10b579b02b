//! In-memory adapters of the ports, for fast unit tests of the use cases. Each can be told to
//! fail, to exercise the outage paths. They mirror the AWS adapters' semantics (conditional
//! insert, consistent reads); the integration tests check the real ones against the emulator.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    ids::TenantId,
    message::QueueMessage,
    ports::{
        Claim, Commit, DeadLetter, DeadLetterQueue, EventHistory, EventListing, EventPage,
        EventProcessing, EventQueue, EventReplay, EventStore, EventSummary, EventTimeline, Failure,
        Lease, OperatorMark, PendingEvent, PendingEvents, PutOutcome, QueueError, Requeue,
        RetryQueue, StoreError, TenantAdmin, TenantDirectory, TenantNames,
    },
    projection::{MemoryProjections, ProjectionWrite},
    provider::Provider,
    record::{EventKey, EventRecord, EventStatus},
    tenant::ProviderConfig,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A switch that makes an adapter answer as if its service were down.
#[derive(Debug, Default)]
struct Outage(AtomicBool);

impl Outage {
    fn set(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), String> {
        if self.0.load(Ordering::SeqCst) {
            Err("simulated outage".to_owned())
        } else {
            Ok(())
        }
    }
}

/// Event records in a map, and the projections the processor commits with them.
#[derive(Debug, Default)]
pub struct MemoryEventStore {
    records: Mutex<HashMap<EventKey, EventRecord>>,
    projections: Mutex<MemoryProjections>,
    outage: Outage,
    commit_outage: Outage,
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

    fn available(&self) -> Result<(), StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)
    }
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

    async fn mark_enqueued(&self, key: &EventKey, at: SystemTime) -> Result<(), StoreError> {
        self.available()?;
        if let Some(record) = lock(&self.records).get_mut(key) {
            if record.status == EventStatus::Received {
                record.status = EventStatus::Enqueued;
                record.enqueued_at = Some(at);
            }
        }
        Ok(())
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.available()?;
        Ok(lock(&self.records).get(key).cloned())
    }
}

#[async_trait]
impl EventListing for MemoryEventStore {
    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        limit: u32,
    ) -> Result<Vec<EventSummary>, StoreError> {
        self.available()?;
        let mut found: Vec<EventSummary> = lock(&self.records)
            .values()
            .filter(|r| &r.key.tenant == tenant && r.status == status)
            .map(|r| EventSummary {
                key: r.key.clone(),
                event_type: r.event_type.clone(),
                status: r.status,
                attempts: r.attempts,
                retry_exhausted: r.retry_exhausted,
                last_error: r.last_error.clone(),
                received_at: r.received_at,
            })
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse(s.received_at));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }
}

#[async_trait]
impl EventProcessing for MemoryEventStore {
    async fn claim(
        &self,
        key: &EventKey,
        lease: &Lease,
        now: SystemTime,
    ) -> Result<Claim, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key) else {
            return Ok(Claim::Missing);
        };
        let expired = record.lease_until.is_none_or(|until| until < now);
        match record.status {
            EventStatus::Processed => return Ok(Claim::AlreadyProcessed),
            EventStatus::Processing if !expired => return Ok(Claim::Busy),
            EventStatus::Dead | EventStatus::Discarded => {
                return Ok(Claim::Unclaimable(record.status));
            }
            _ => {}
        }
        record.status = EventStatus::Processing;
        record.lease_owner = Some(lease.owner.clone());
        record.lease_until = Some(lease.until);
        record.attempts += 1;
        Ok(Claim::Claimed(Box::new(record.clone())))
    }

    async fn commit(
        &self,
        key: &EventKey,
        lease: &Lease,
        writes: &[ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError> {
        self.available()?;
        self.commit_outage
            .check()
            .map_err(StoreError::Unavailable)?;
        // Both locks held: the writes and the mark land together or not at all.
        let mut records = lock(&self.records);
        let mut projections = lock(&self.projections);
        let Some(record) = records.get_mut(key) else {
            return Ok(Commit::LeaseLost);
        };
        if record.status != EventStatus::Processing
            || record.lease_owner.as_deref() != Some(&lease.owner)
        {
            return Ok(Commit::LeaseLost);
        }
        let applied = projections.apply_all(writes);
        record.status = EventStatus::Processed;
        record.outcome = Some(outcome.to_owned());
        record.completed_at = Some(now);
        record.lease_owner = None;
        record.lease_until = None;
        record.expires_at = expires_at;
        Ok(Commit::Committed {
            applied,
            skipped: writes.len() - applied,
        })
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        lease: &Lease,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        if let Some(record) = records.get_mut(key) {
            if record.lease_owner.as_deref() == Some(&lease.owner) {
                record.status = failure.status;
                record.last_error = Some(failure.error.clone());
                record.retry_exhausted = failure.retry_exhausted;
                record.lease_owner = None;
                record.lease_until = None;
                if failure.status == EventStatus::Dead {
                    record.completed_at = Some(now);
                }
            }
        }
        Ok(())
    }
}

/// What the processor asked of its queue.
#[derive(Debug, Default)]
pub struct MemoryRetryQueue {
    delays: Mutex<Vec<(String, Duration)>>,
    dead_letters: Mutex<Vec<String>>,
    outage: Outage,
}

impl MemoryRetryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// (receipt handle, delay) per retry asked for.
    pub fn delays(&self) -> Vec<(String, Duration)> {
        lock(&self.delays).clone()
    }

    /// Bodies sent straight to the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        lock(&self.dead_letters).clone()
    }
}

#[async_trait]
impl RetryQueue for MemoryRetryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.delays).push((receipt_handle.to_owned(), delay));
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.dead_letters).push(body.to_owned());
        Ok(())
    }
}

/// A queue that keeps what it was sent.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<QueueMessage>>,
    outage: Outage,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<QueueMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.sent).push(message.clone());
        Ok(())
    }
}

/// Tenant configurations in a map.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    configs: Mutex<HashMap<(TenantId, Provider), ProviderConfig>>,
    outage: Outage,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(configs: impl IntoIterator<Item = ProviderConfig>) -> Self {
        let directory = Self::default();
        {
            let mut map = lock(&directory.configs);
            for config in configs {
                map.insert((config.tenant.clone(), config.provider), config);
            }
        }
        directory
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// How many lookups reached this directory (to test caching in front of it).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TenantDirectory for MemoryDirectory {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.outage.check().map_err(StoreError::Unavailable)?;
        Ok(lock(&self.configs)
            .get(&(tenant.clone(), provider))
            .cloned())
    }
}

#[async_trait]
impl TenantAdmin for MemoryDirectory {
    async fn put_config(&self, config: &ProviderConfig) -> Result<(), StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        lock(&self.configs).insert((config.tenant.clone(), config.provider), config.clone());
        Ok(())
    }

    async fn list_configs(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ProviderConfig>, StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        let mut configs: Vec<ProviderConfig> = lock(&self.configs)
            .values()
            .filter(|c| tenant.is_none_or(|t| &c.tenant == t))
            .cloned()
            .collect();
        configs.sort_by(|a, b| (&a.tenant, a.provider).cmp(&(&b.tenant, b.provider)));
        Ok(configs)
    }
}

/// When a record entered its status, as far as the record tells (the DynamoDB adapter keeps it
/// in `status_at`; the memory store derives it).
fn status_since(record: &EventRecord) -> SystemTime {
    match record.status {
        EventStatus::Enqueued => record.enqueued_at,
        EventStatus::Processed | EventStatus::Dead => record.completed_at,
        EventStatus::Discarded => record.discarded_at,
        EventStatus::Processing | EventStatus::Failed => record.enqueued_at,
        EventStatus::Received => None,
    }
    .unwrap_or(record.received_at)
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

fn memory_pk(key: &EventKey) -> String {
    format!("{}#{}#{}", key.tenant, key.provider, key.event_id)
}

#[async_trait]
impl EventReplay for MemoryEventStore {
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
        if record.status != from || (from == EventStatus::Processing && lease_live) {
            return Ok(None);
        }
        record.status = EventStatus::Enqueued;
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
        record.status = EventStatus::Discarded;
        record.discarded_at = Some(mark.at);
        record.note = Some(mark.note.clone());
        record.expires_at = expires_at;
        Ok(true)
    }
}

#[async_trait]
impl PendingEvents for MemoryEventStore {
    async fn pending_before(
        &self,
        status: EventStatus,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.available()?;
        let mut found: Vec<PendingEvent> = lock(&self.records)
            .values()
            .filter(|r| r.status == status && status.is_pending() && status_since(r) < before)
            .map(|r| PendingEvent {
                key: r.key.clone(),
                status: r.status,
                since: status_since(r),
                attempts: r.attempts,
                lease_until: r.lease_until,
            })
            .collect();
        found.sort_by_key(|p| (p.since, memory_pk(&p.key)));
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
                crate::replay::decode_page_token(token, tenant)
                    .ok_or_else(|| StoreError::Malformed("invalid page token".into()))?,
            ),
        };
        let mut found: Vec<(i64, String, EventSummary)> = lock(&self.records)
            .values()
            .filter(|r| &r.key.tenant == tenant && r.status == status)
            .map(|r| {
                (
                    crate::clock::unix_millis(status_since(r)),
                    memory_pk(&r.key),
                    summary(r),
                )
            })
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
            .map(|(t, k, _)| crate::replay::encode_page_token(*t, k));
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
        self.available()?;
        let mut found: Vec<EventTimeline> = lock(&self.records)
            .values()
            .filter(|r| &r.key.tenant == tenant && r.status == status && status_since(r) >= since)
            .map(|r| EventTimeline {
                key: r.key.clone(),
                status: r.status,
                status_at: status_since(r),
                attempts: r.attempts,
                received_at: r.received_at,
                enqueued_at: r.enqueued_at,
                completed_at: r.completed_at,
                duplicates: r.duplicates,
            })
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse(t.status_at));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }
}

#[async_trait]
impl TenantNames for MemoryDirectory {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        let mut tenants: Vec<TenantId> =
            lock(&self.configs).keys().map(|(t, _)| t.clone()).collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }
}

/// A dead-letter queue: visible messages, and received ones held until deleted or released.
#[derive(Debug, Default)]
pub struct MemoryDeadLetterQueue {
    visible: Mutex<std::collections::VecDeque<DeadLetter>>,
    held: Mutex<HashMap<String, DeadLetter>>,
    counter: std::sync::atomic::AtomicUsize,
    outage: Outage,
}

impl MemoryDeadLetterQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Put a body on the queue, as a redrive or the processor would.
    pub fn push(&self, body: impl Into<String>) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        lock(&self.visible).push_back(DeadLetter {
            message_id: format!("dlq-{n}"),
            receipt_handle: String::new(),
            body: body.into(),
        });
    }

    /// Bodies visible now, oldest first.
    pub fn visible(&self) -> Vec<String> {
        lock(&self.visible).iter().map(|m| m.body.clone()).collect()
    }

    /// How many received messages are neither deleted nor released.
    pub fn held(&self) -> usize {
        lock(&self.held).len()
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryDeadLetterQueue {
    async fn receive(&self, max: u32, _hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        self.outage.check().map_err(QueueError)?;
        let mut visible = lock(&self.visible);
        let mut held = lock(&self.held);
        let mut out = Vec::new();
        while out.len() < usize::try_from(max.min(10)).unwrap_or(10) {
            let Some(mut message) = visible.pop_front() else {
                break;
            };
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            message.receipt_handle = format!("receipt-{n}");
            held.insert(message.receipt_handle.clone(), message.clone());
            out.push(message);
        }
        Ok(out)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.held).remove(receipt_handle);
        Ok(())
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        if let Some(message) = lock(&self.held).remove(receipt_handle) {
            lock(&self.visible).push_back(message);
        }
        Ok(())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        self.outage.check().map_err(QueueError)?;
        Ok((lock(&self.visible).len() + lock(&self.held).len()) as u64)
    }
}
