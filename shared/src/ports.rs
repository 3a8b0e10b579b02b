//! The ports the use cases reach the world through. Each has an AWS adapter (`crate::aws`) and
//! an in-memory one (`crate::memory`) for fast unit tests.

use std::time::SystemTime;

use async_trait::async_trait;
use thiserror::Error;

use crate::{
    ids::TenantId,
    message::QueueMessage,
    provider::Provider,
    record::{EventKey, EventRecord},
    tenant::ProviderConfig,
};

/// A storage call that did not complete. Never a client's fault: the ingress answers 503 so the
/// provider retries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored item is malformed: {0}")]
    Malformed(String),
}

/// A queue call that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// What a conditional insert found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The record is new and now stored.
    Inserted,
    /// A record with the same key was already there; this is it, unchanged.
    Existing(Box<EventRecord>),
}

/// The event records.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Store `record` unless its key exists (`attribute_not_exists`), and say which happened.
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError>;

    /// Note that the pointer message is on the queue, unless the event has moved on already.
    async fn mark_enqueued(&self, key: &EventKey, at: SystemTime) -> Result<(), StoreError>;

    /// Read a record with a strongly consistent read.
    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError>;
}

/// The queue between ingress and processor.
#[async_trait]
pub trait EventQueue: Send + Sync {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError>;
}

/// Read access to tenants' provider configuration (secrets included): the ingress's view.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError>;
}

/// Write access to tenants' configuration: the operator CLI's view.
#[async_trait]
pub trait TenantAdmin: TenantDirectory {
    async fn put_config(&self, config: &ProviderConfig) -> Result<(), StoreError>;

    /// Every provider configuration of `tenant`, or of all tenants when `None`.
    async fn list_configs(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ProviderConfig>, StoreError>;
}

/// One line of an event listing: what the status index holds (no payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    pub key: EventKey,
    pub event_type: Option<String>,
    pub status: crate::record::EventStatus,
    pub attempts: u32,
    pub retry_exhausted: bool,
    pub last_error: Option<String>,
    pub received_at: SystemTime,
}

/// Listing a tenant's events by status, newest first: the operators' view.
#[async_trait]
pub trait EventListing: Send + Sync {
    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: crate::record::EventStatus,
        limit: u32,
    ) -> Result<Vec<EventSummary>, StoreError>;
}
