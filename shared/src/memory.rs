//! In-memory adapters of the ports, for fast unit tests of the use cases. Each can be told to
//! fail, to exercise the outage paths. They mirror the AWS adapters' semantics (conditional
//! insert, consistent reads); the integration tests check the real ones against the emulator.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use async_trait::async_trait;

use crate::{
    ids::TenantId,
    message::QueueMessage,
    ports::{
        EventListing, EventQueue, EventStore, EventSummary, PutOutcome, QueueError, StoreError,
        TenantAdmin, TenantDirectory,
    },
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

/// Event records in a map.
#[derive(Debug, Default)]
pub struct MemoryEventStore {
    records: Mutex<HashMap<EventKey, EventRecord>>,
    outage: Outage,
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

    fn available(&self) -> Result<(), StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError> {
        self.available()?;
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(&record.key) {
            return Ok(PutOutcome::Existing(Box::new(existing.clone())));
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
