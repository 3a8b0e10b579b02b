//! The ports the use cases reach the world through. Each has an AWS adapter and an in-memory one
//! for fast unit tests, side by side under `crate::adapters`.
//!
//! The processor and the operators' use cases name the ports they need through one trait each
//! ([`ProcessorStore`], [`OperationsStore`]), implemented for every adapter that has the parts.

use std::time::SystemTime;

use async_trait::async_trait;
use thiserror::Error;

use crate::{
    ids::{EventId, TenantId},
    message::QueueMessage,
    provider::Provider,
    record::{EventKey, EventRecord},
    tenant::ProviderConfig,
};

/// A storage call that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The store could not answer now (an outage, throttling, a timeout): retrying may pass.
    /// Never a client's fault: the ingress answers 503 so the provider retries.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored item is malformed: {0}")]
    Malformed(String),
    /// The store refused the request itself (too large, too many items, an invalid value): the
    /// same request fails the same way every time, so retrying only wastes attempts.
    #[error("storage refused the request: {0}")]
    Rejected(String),
    /// A conditional write found the item changed since it was read (or, for a new item,
    /// already there): nothing was written; read again and decide again.
    #[error("changed meanwhile: {0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether retrying the same call can never succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }
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

    /// Read a record with a strongly consistent read.
    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError>;

    /// Note that `key`'s event carried the signed content whose hash is `content`, unless
    /// another event of the same tenant and provider did first ([`ContentClaim::Seen`] names
    /// it). `replacing` takes the note over from that event (whose record never got stored).
    /// Kept until `expires_at`.
    async fn claim_content(
        &self,
        key: &EventKey,
        content: &str,
        replacing: Option<&EventId>,
        expires_at: SystemTime,
    ) -> Result<ContentClaim, StoreError>;
}

/// What a content claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentClaim {
    /// The content is now noted as this event's (or was already).
    Claimed,
    /// Another event id carried the same signed content first.
    Seen(EventId),
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
    /// Store `config` as the next version of what was read: a new configuration (`version`
    /// 0) only if none exists, a changed one only if the stored version is still
    /// `config.version`. Otherwise [`StoreError::Conflict`] and nothing changes, so a rotation
    /// can never write back a secret or token another operator revoked meanwhile.
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

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// The writes and the `processed` mark are stored. `skipped` counts writes older than
    /// what their items already hold (out-of-order events, or this event's own writes applied
    /// by an earlier try), dropped by design.
    Committed { applied: usize, skipped: usize },
    /// The record was finished meanwhile (processed by another delivery of the event, or
    /// resolved by an operator): the mark was not written, and the writes changed nothing that
    /// the event had not already changed.
    Finished,
}

/// A failed attempt, as recorded on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    /// `failed` (the queue will retry) or `dead` (an operator must act).
    pub status: crate::record::EventStatus,
    pub retry_exhausted: bool,
}

/// The processor's view of the event records: commit, record failures.
///
/// There is no claim. Every write is idempotent (projection writes are conditioned on the
/// order of what their items hold, the mark on the record being unfinished), so two
/// deliveries of one event racing each other apply nothing twice: the first mark wins, and
/// the other finds the event [`Commit::Finished`].
#[async_trait]
pub trait EventProcessing: Send + Sync {
    /// Apply `writes` (those not older than their items) and mark the event processed with
    /// `outcome` after `attempt` attempts, if it is unfinished (see
    /// [`EventStatus::UNFINISHED`](crate::record::EventStatus::UNFINISHED)). Writes to several
    /// items commit with the mark in one transaction; a single item's write, being idempotent,
    /// is written first on its own and the mark after it.
    async fn commit(
        &self,
        key: &EventKey,
        attempt: u32,
        writes: &[crate::projection::ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError>;

    /// The event is processed after failing: a payload kept outside the record may now expire
    /// with it. Best effort, and nothing to do where the record holds its payload.
    async fn release_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        let _ = record;
        Ok(())
    }

    /// An attempt failed: a payload kept outside the record must not expire while the event
    /// waits for a retry or an operator. Nothing to do where the record holds its payload.
    async fn keep_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        let _ = record;
        Ok(())
    }

    /// Note a failed `attempt`, if the event is still unfinished.
    async fn record_failure(
        &self,
        key: &EventKey,
        attempt: u32,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError>;
}

/// The processor's view of its queue.
#[async_trait]
pub trait RetryQueue: Send + Sync {
    /// Make the message visible again after `delay`: the retry schedule's backoff.
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError>;

    /// Put a message body on the dead-letter queue at once (permanent errors).
    async fn dead_letter(&self, body: &str) -> Result<(), QueueError>;
}

/// Who did what and why: what an operator action records on each event it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMark {
    pub at: SystemTime,
    pub note: String,
}

/// How a re-enqueue counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// An operator's replay (redrive, replay): `replay_count` + 1, `replayed_at` set, and a
    /// fresh retry budget (attempts back to 0, `retry_exhausted` cleared).
    Replay,
    /// Reconcile recovering a lost message: the attempts so far still count.
    Reconcile,
}

/// Recovery: operators' and reconcile's changes to event records (requeue, give up, discard).
/// Each is conditioned on the status the caller saw, so an event that moved on meanwhile is
/// left alone (`None` / `false`).
#[async_trait]
pub trait EventRecovery: Send + Sync {
    /// Put the event back to `enqueued` from `from` (a `processing` one only once its lease has
    /// run out): clears the lease, the completion time and the TTL (a replayed event must not
    /// expire before it is processed again), records `mark`. The record as it is now.
    async fn mark_requeued(
        &self,
        key: &EventKey,
        from: crate::record::EventStatus,
        how: Requeue,
        mark: &OperatorMark,
    ) -> Result<Option<EventRecord>, StoreError>;

    /// Give up on a `processing` event whose lease has run out and whose attempts are spent
    /// (its processor died on the last one): `dead`, `retry_exhausted`, with `reason`. `false`
    /// when it is no longer so.
    async fn mark_dead(
        &self,
        key: &EventKey,
        reason: &str,
        mark: &OperatorMark,
    ) -> Result<bool, StoreError>;

    /// Resolve a dead event without processing it: `discarded`, expiring at `expires_at`.
    async fn mark_discarded(
        &self,
        key: &EventKey,
        mark: &OperatorMark,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError>;
}

/// Who erases, and when: what a tombstone and its audit record keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub at: SystemTime,
    /// The operator (`hookctl erase --actor`, by default the OS user).
    pub actor: String,
}

/// What erasing one event's payload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erased {
    /// No record under this key: nothing changed.
    NotFound,
    /// The payload is gone now; `tombstone` is the record as stored, and `offloaded` says
    /// whether the payload was kept outside the record (its object deleted).
    Now {
        tombstone: Box<EventRecord>,
        offloaded: bool,
    },
    /// Erased before (by this erasure's earlier try, or another): nothing more to remove.
    Already(Box<EventRecord>),
}

/// One erasure, as audited: who, when, what, and how many items it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureAudit {
    pub tenant: TenantId,
    pub at: SystemTime,
    pub actor: String,
    /// What was asked for, e.g. `event stripe/evt_1`.
    pub target: String,
    /// How many items lost their payload (0 when all were erased before).
    pub items: u32,
}

/// Erasing payloads on request (GDPR), keeping every record's idempotency: the record stays
/// as a tombstone with its key, status, times and payload hash, so a redelivery of the same
/// bytes is still a duplicate and other bytes under the id still a conflict.
#[async_trait]
pub trait EventErasure: Send + Sync {
    /// Remove `key`'s payload: the record's bytes, and the object a payload too large for its
    /// record is kept in, and mark the record erased by `erasure`. Only `key`'s own record is
    /// touched (it is built from the tenant, never found by search).
    async fn erase_payload(&self, key: &EventKey, erasure: &Erasure) -> Result<Erased, StoreError>;

    /// Keep `audit`, under a key scoped to its tenant that no event record can have.
    async fn record_erasure(&self, audit: &ErasureAudit) -> Result<(), StoreError>;
}

/// An event waiting in a pending status, as the pending index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub key: EventKey,
    pub status: crate::record::EventStatus,
    /// When it entered that status.
    pub since: SystemTime,
    pub attempts: u32,
    pub lease_until: Option<SystemTime>,
}

/// Pending events across all tenants: reconcile's view.
#[async_trait]
pub trait PendingEvents: Send + Sync {
    /// Up to `limit` events in the pending `status` that entered it in `from..before` (whole
    /// milliseconds), oldest first, ties by key: a reader pages on by moving `from` up to the
    /// last one it saw.
    async fn pending_between(
        &self,
        status: crate::record::EventStatus,
        from: SystemTime,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError>;
}

/// One page of a listing, and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// Opaque; `None` on the last page.
    pub next: Option<String>,
}

/// An event's timings, for the health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeline {
    pub key: EventKey,
    pub status: crate::record::EventStatus,
    pub status_at: SystemTime,
    pub attempts: u32,
    pub received_at: SystemTime,
    pub enqueued_at: Option<SystemTime>,
    pub completed_at: Option<SystemTime>,
    pub duplicates: u32,
}

/// A tenant's events by status through the status index, page by page or over a time window.
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// Up to `limit` events in `status`, newest first, starting after `after` (a previous
    /// page's `next`, which must belong to the same tenant and status).
    async fn page_by_status(
        &self,
        tenant: &TenantId,
        status: crate::record::EventStatus,
        limit: u32,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError>;

    /// Up to `limit` events that entered `status` at or after `since`.
    async fn in_status_since(
        &self,
        tenant: &TenantId,
        status: crate::record::EventStatus,
        since: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError>;

    /// Up to `limit` events that entered `status` before `before`, oldest first: what an
    /// erasure by age reaches (an event's status time is at or after its receipt).
    async fn in_status_before(
        &self,
        tenant: &TenantId,
        status: crate::record::EventStatus,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError>;
}

/// The tenants that have configuration: names only, never secrets.
#[async_trait]
pub trait TenantNames: Send + Sync {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError>;
}

/// A message received from the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

/// The dead-letter queue, as the replay function drains it.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Up to `max` (at most 10) messages, hidden from other receivers for `hold`.
    async fn receive(
        &self,
        max: u32,
        hold: std::time::Duration,
    ) -> Result<Vec<DeadLetter>, QueueError>;

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;

    /// Put a message body on the queue (reconcile dead-letters what a dead processor left).
    async fn send(&self, body: &str) -> Result<(), QueueError>;

    /// Make a received message visible again at once.
    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError>;

    /// How many messages wait (approximately).
    async fn depth(&self) -> Result<u64, QueueError>;
}

/// What the processor needs of the event records: read, claim, commit, record failures.
pub trait ProcessorStore: EventStore + EventProcessing {}
impl<T: EventStore + EventProcessing> ProcessorStore for T {}

/// What the operators' use cases need of the event records: read, requeue, discard and erase,
/// the pending index and the status index.
pub trait OperationsStore:
    EventStore + EventRecovery + PendingEvents + EventHistory + EventErasure
{
}
impl<T: EventStore + EventRecovery + PendingEvents + EventHistory + EventErasure> OperationsStore
    for T
{
}
