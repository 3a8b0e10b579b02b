//! The ports of the outbound side: endpoints, the message and delivery log, the deliveries
//! queue, the rate limiter and the HTTP transport. DynamoDB, SQS and hyper as deployed; memory
//! and scripted doubles in tests.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    TenantPolicy,
    catalog::EventTypeDefinition,
    delivery::{
        Attempt, Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus, Exchange, OutboundMessage,
    },
    endpoint::{DisabledReason, Endpoint, EndpointHealth},
    ids::{EndpointId, EventType, MessageId},
    ssrf::EndpointUrl,
};
use crate::{
    ids::TenantId,
    ports::{Erasure, QueueError, StoreError},
};

/// Tenants' partner endpoints.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Store `endpoint`'s configuration as the next version of what was read: a new one
    /// (`version` 0) only if absent, a changed one only if the stored version is still
    /// `endpoint.version`; else [`StoreError::Conflict`]. Never touches its health.
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    /// An endpoint without its secrets.
    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// An endpoint with its secrets opened: for signing, rotating and revealing only.
    async fn endpoint_with_secrets(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Every endpoint of `tenant`, without secrets.
    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, StoreError>;

    /// Store a new endpoint unless its tenant has `max` already, counted with the insert so
    /// adds racing at the limit cannot both pass. `existing` (how many the caller just read)
    /// starts the count of a tenant counted for the first time. `false`: at the limit, nothing
    /// stored; a `Conflict` if the endpoint exists.
    async fn insert_endpoint(
        &self,
        endpoint: &Endpoint,
        existing: usize,
        max: usize,
    ) -> Result<bool, StoreError>;

    /// Delete it if still at `version` (and count it out of its tenant's endpoints).
    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: u64,
    ) -> Result<(), StoreError>;

    /// A success: failures reset, circuit closed.
    async fn record_success(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// One more failure (counted atomically across dispatchers); the health as it is now.
    async fn record_failure(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<EndpointHealth, StoreError>;

    /// Open the circuit until `until`, counting a pause, unless it is open at `now` already:
    /// the failures of attempts that were in flight when it opened do not lengthen it.
    /// Whether this call opened it.
    async fn pause(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// The dispatcher disables it (`gone`, `failing`).
    async fn disable(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: DisabledReason,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Mark it slow since `since`, or (`None`) fast again.
    async fn mark_slow(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        since: Option<SystemTime>,
    ) -> Result<(), StoreError>;

    /// Forget its health (an operator enabled it): no failures, circuit closed, not disabled.
    async fn reset_health(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), StoreError>;

    /// Note that it holds deliveries since `at`, so reconcile finds it without reading every
    /// tenant's endpoints.
    async fn mark_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Forget the note, unless a delivery was held after `read_at` (when the caller found
    /// none left): a hold racing the release keeps it.
    async fn clear_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        read_at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Endpoints of every tenant that hold deliveries, a page of up to `limit` after `after`
    /// (a token from the page before).
    async fn holding_endpoints(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<(TenantId, EndpointId)>, StoreError>;

    /// The tenant's own delivery policy, if it set one.
    async fn tenant_policy(&self, tenant: &TenantId) -> Result<Option<TenantPolicy>, StoreError>;

    async fn put_tenant_policy(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
    ) -> Result<(), StoreError>;
}

/// Tenants' event catalogs.
#[async_trait]
pub trait EventTypeStore: Send + Sync {
    /// Store `definition`: created when its version is 0 (a `Conflict` if it exists),
    /// otherwise only while the stored one is still at that version.
    async fn put_event_type(&self, definition: &EventTypeDefinition) -> Result<(), StoreError>;

    async fn event_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
    ) -> Result<Option<EventTypeDefinition>, StoreError>;

    /// Every type the tenant registered, in no particular order.
    async fn event_types(&self, tenant: &TenantId) -> Result<Vec<EventTypeDefinition>, StoreError>;

    /// How many types the tenant registered, without reading (or compiling) their schemas.
    async fn event_type_count(&self, tenant: &TenantId) -> Result<usize, StoreError>;
}

/// What storing a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMessage {
    Inserted,
    /// A message with this id was there, with the same type and payload: this is it.
    Duplicate(Box<OutboundMessage>),
    /// A message with this id was there with another type or payload.
    Conflict,
}

/// An endpoint's held deliveries, and whether more may be held than were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldDeliveries {
    pub deliveries: Vec<Delivery>,
    /// Decided from the index itself (a full page), never from how many of the deliveries
    /// read were still held: a releaser running beside this one moves some between the two
    /// reads, and a short list must not look like the last.
    pub more: bool,
}

/// What a claim on a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// The lease is ours; the delivery with this attempt counted.
    Claimed(Box<Delivery>),
    /// Not in a status an attempt may start from (final, held, or leased to another).
    NotNow(DeliveryStatus),
    /// Pending, but its next attempt is due only then: an extra pointer (reconcile, a resend)
    /// or one that came back early (SQS hides a message 12 hours at most) makes no attempt.
    NotDue(SystemTime),
}

/// How early a pending delivery may be claimed: clocks of the queue and of the functions
/// differ by a little.
pub const DUE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A page of a listing, newest first, and where the next starts (opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// How an attempt leaves its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub attempt: Attempt,
    /// When the delivery was created: a held one is released in that order.
    pub created_at: SystemTime,
    pub status: DeliveryStatus,
    /// For a retry: when it is due.
    pub next_attempt_at: Option<SystemTime>,
    /// For a final status: when the delivery's record expires.
    pub expires_at: Option<SystemTime>,
    /// The schedule is spent but the DLQ copy failed: pending, to be made dead by the next
    /// claim without another attempt.
    pub spent: bool,
}

/// The message and delivery log.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Store a message unless its id exists; expires at `expires_at`.
    async fn put_message(
        &self,
        message: &OutboundMessage,
        expires_at: SystemTime,
    ) -> Result<PutMessage, StoreError>;

    async fn message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<OutboundMessage>, StoreError>;

    /// What is stored under this id, read cheaply before a publish sends anything: it may
    /// miss one stored a moment ago (the put's own condition still catches that).
    async fn stored_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .message(tenant, id)
            .await?
            .map(|m| StoredMessage::of(&m)))
    }

    /// The event types among up to `limit` of the tenant's stored messages, sorted, each
    /// once: what the portal offers when a partner picks a filter.
    async fn published_types(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<EventType>, StoreError>;

    /// Keep a message (its payload) until `until` at least: a delivery of it waits that long
    /// (held behind a disabled endpoint, or for a late retry). Nothing if it is gone already.
    async fn keep_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        until: SystemTime,
    ) -> Result<(), StoreError>;

    /// Every delivery exists: reconcile need not finish the fan-out.
    async fn mark_fanned_out(&self, tenant: &TenantId, id: &MessageId) -> Result<(), StoreError>;

    /// Messages of every tenant whose fan-out did not finish, created before `before`.
    async fn unfinished_fan_outs(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<(TenantId, MessageId)>, StoreError>;

    /// Store a delivery unless it exists; whether it was new.
    async fn put_delivery_if_absent(&self, delivery: &Delivery) -> Result<bool, StoreError>;

    async fn delivery(&self, key: &DeliveryKey) -> Result<Option<Delivery>, StoreError>;

    /// Start an attempt on `delivery.key`: from `pending` (or `sending` whose lease ran out;
    /// or `held` for a probe), or from nothing (a published message's delivery is created by
    /// its first claim, as `delivery` says), to `sending`, attempts + 1, leased to `owner`
    /// until `lease_until`.
    async fn claim_delivery(
        &self,
        delivery: &Delivery,
        owner: &str,
        lease_until: SystemTime,
        probe: bool,
        now: SystemTime,
    ) -> Result<DeliveryClaim, StoreError>;

    /// At once: log the attempt and move the delivery on, if `owner` still holds its lease.
    /// `false` if it does not (nothing written).
    async fn finish_attempt(&self, owner: &str, result: &AttemptResult)
    -> Result<bool, StoreError>;

    /// Note on a delivery `owner` holds that its partner answered `status` at `at`, for when
    /// the attempt cannot be finished: `false` if the lease is gone (nothing written).
    async fn note_answered(
        &self,
        key: &DeliveryKey,
        owner: &str,
        status: u16,
        at: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Log an attempt outside any delivery's life (a test event).
    async fn log_attempt(
        &self,
        attempt: &Attempt,
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Move a delivery from one of `from` to `to` (pending: due at `now`, attempts kept unless
    /// `reset_attempts`), its record expiring at `expires_at` (a final status's; `None`: not
    /// while it is on its way). `false` if it was in none of them.
    async fn move_delivery(
        &self,
        key: &DeliveryKey,
        from: &[DeliveryStatus],
        to: DeliveryStatus,
        reset_attempts: bool,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError>;

    /// The deliveries of a message, one per endpoint.
    async fn deliveries_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// An endpoint's deliveries created at or after `since`, newest first.
    async fn deliveries_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: Option<SystemTime>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Delivery>, StoreError>;

    /// An endpoint's held deliveries, oldest first, up to `limit`.
    async fn held_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
    ) -> Result<HeldDeliveries, StoreError>;

    /// Deliveries of every tenant that are `pending` past their due time or `sending` past
    /// their lease, by `before`: their pointer is lost.
    async fn overdue_deliveries(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<DeliveryKey>, StoreError>;

    /// Attempts of a message (to any endpoint), newest first.
    async fn attempts_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError>;

    /// Attempts at an endpoint, newest first.
    async fn attempts_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError>;
}

/// What a repeated publish is compared with: the stored message's type and content hash,
/// never its payload (which may be large, or kept outside the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub event_type: EventType,
    pub content_hash: String,
}

impl StoredMessage {
    pub fn of(message: &OutboundMessage) -> Self {
        Self {
            event_type: message.event_type.clone(),
            content_hash: message.content_hash(),
        }
    }
}

/// What erasing one message's payload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasedMessage {
    /// No message of this tenant under this id: nothing changed.
    NotFound,
    /// The payload is gone now. `tombstone` is the message as stored; `referenced` says
    /// whether it relayed a payload kept by reference (the inbound event's S3 object, left
    /// alone: only the reference was dropped); `attempts` is how many stored partner answers
    /// (attempts' response bodies) were cleared.
    Now {
        tombstone: Box<OutboundMessage>,
        referenced: bool,
        attempts: u32,
    },
    /// Erased before: nothing more to remove.
    Already(Box<OutboundMessage>),
}

/// Erasing an outbound message's payload on request (GDPR), keeping its idempotency: the
/// message stays as a tombstone with its tenant, id, type, times and content hash, so a
/// repeated publish of the same content is still a duplicate and other content a conflict.
#[async_trait]
pub trait MessageErasure: Send + Sync {
    /// Remove the payload of `tenant`'s message `id` (and a reference to a payload kept
    /// outside, never the object itself), mark it erased by `erasure`, and clear the response
    /// bodies its deliveries' attempts keep. Only that message's items are touched (their keys
    /// are built from the tenant, never found by search).
    async fn erase_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        erasure: &Erasure,
    ) -> Result<ErasedMessage, StoreError>;
}

/// Deliveries per second for one endpoint, shared by every dispatcher ([`super::rate`]).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Reserve the endpoint's next free slot at `limit` per second: when it begins.
    async fn reserve(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError>;
}

/// The deliveries queue.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue(&self, pointer: &DeliveryPointer) -> Result<(), QueueError>;

    /// Send every pointer; an error if any one was not sent (some may have been: a pointer is
    /// harmless twice).
    async fn enqueue_all(&self, pointers: &[DeliveryPointer]) -> Result<(), QueueError> {
        for pointer in pointers {
            self.enqueue(pointer).await?;
        }
        Ok(())
    }
}

/// The dispatcher's view of the deliveries queue: back off, give up.
#[async_trait]
pub trait DeliveryRetryQueue: Send + Sync {
    /// Make the message visible again after `delay`.
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError>;

    /// Copy a pointer to the deliveries DLQ.
    async fn dead_letter(&self, pointer: &DeliveryPointer) -> Result<(), QueueError>;

    /// Send a fresh copy of a pointer, visible after `delay` (SQS delays 15 minutes at most):
    /// for one whose receives or age near the queue's limits.
    async fn send_again(
        &self,
        pointer: &DeliveryPointer,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// One signed request to an endpoint.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub url: EndpointUrl,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// Sends a request and reports what came back; never fails, every failure is an
/// [`Exchange`] with its class.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: OutboundRequest) -> Exchange;
}

/// Everything the outbound use cases store.
pub trait OutboundStore: EndpointStore + EventTypeStore + DeliveryLog + RateLimiter {}
impl<T: EndpointStore + EventTypeStore + DeliveryLog + RateLimiter> OutboundStore for T {}

/// A shared queue is a queue: the publisher and the dispatcher may hold the same one.
#[async_trait]
impl<T: DeliveryQueue + ?Sized> DeliveryQueue for std::sync::Arc<T> {
    async fn enqueue_all(&self, pointers: &[DeliveryPointer]) -> Result<(), QueueError> {
        (**self).enqueue_all(pointers).await
    }

    async fn enqueue(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        (**self).enqueue(pointer).await
    }
}

#[async_trait]
impl<T: DeliveryRetryQueue + ?Sized> DeliveryRetryQueue for std::sync::Arc<T> {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        (**self).retry_after(receipt_handle, delay).await
    }

    async fn dead_letter(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        (**self).dead_letter(pointer).await
    }

    async fn send_again(
        &self,
        pointer: &DeliveryPointer,
        delay: Duration,
    ) -> Result<(), QueueError> {
        (**self).send_again(pointer, delay).await
    }
}
