//! Publishing: one pointer per subscribed endpoint, then the message, stored once.
//!
//! The pointers go first, batched, and the message is written last, in one conditional put:
//! a message that is stored is on its way to every endpoint that subscribed to it, with
//! nothing to finish and no index entry. Killed before the put, the publish was not accepted
//! (the caller got an error and publishes again with the same idempotency key); its pointers
//! find no message and the dispatcher drops them once they are older than any publish can
//! take. A repeated publish of a stored message sends nothing. The dispatcher creates each
//! delivery with its first claim, so a second pointer (two publishes of one id at once) is
//! harmless. An endpoint that takes no deliveries now has its delivery
//! created here, held, after the message.
//!
//! Messages stored before this order were fanned out from the store (`fan_out`): reconcile
//! still finishes any of those left unfinished.

use std::time::SystemTime;

use thiserror::Error;
use tracing::{info, warn};

use super::{
    Outbound,
    catalog::{SchemaMismatch, TypeCheck},
    delivery::{
        Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus, MAX_PAYLOAD_BYTES, OutboundMessage,
    },
    endpoint::Endpoint,
    ids::{EndpointId, EventType, MessageId},
    ports::{DeliveryQueue, OutboundStore, PutMessage},
};
use crate::{
    clock::Clock,
    ids::{IdError, TenantId},
    ports::{QueueError, StoreError},
    trace::TraceParent,
};

/// Why a publish did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PublishError {
    #[error("invalid event type: {0}")]
    EventType(IdError),
    #[error("invalid idempotency key: {0}")]
    MessageId(IdError),
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("the payload is larger than {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge,
    #[error("message {0} was published before with another type or payload")]
    Conflict(MessageId),
    /// The tenant's catalog holds the type, and the payload breaks its schema.
    #[error("the payload does not match the schema of {event_type}: {mismatch}")]
    SchemaMismatch {
        event_type: EventType,
        mismatch: SchemaMismatch,
    },
    /// The tenant publishes registered types only, and its catalog does not hold this one.
    #[error("event type {0} is not in the tenant's catalog, which allows registered types only")]
    UnregisteredType(EventType),
    /// A tenant exists once it has an endpoint or a policy: a publish to a name with neither
    /// is a mistake (a typo), not a message to keep.
    #[error("unknown tenant {0}: it has no endpoint and no policy")]
    UnknownTenant(TenantId),
    /// Storage or the queue is down: nothing is lost (what was stored stays, reconcile
    /// finishes it), and publishing again with the same key completes it.
    #[error("unavailable, publish again with the same idempotency key: {0}")]
    Unavailable(String),
}

impl PublishError {
    /// Whether the caller's request was at fault (a 4xx), rather than the service (a 503).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for PublishError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<QueueError> for PublishError {
    fn from(e: QueueError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub message_id: MessageId,
    /// The same message was published before: nothing new is delivered.
    pub duplicate: bool,
    /// Deliveries the message has, one per matching endpoint.
    pub deliveries: usize,
}

/// A message to publish, as the caller gives it.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    pub tenant: &'a TenantId,
    pub event_type: &'a str,
    pub payload: &'a [u8],
    /// The caller's id for the message; a generated one when `None` (then a retry publishes
    /// a second message).
    pub idempotency_key: Option<&'a str>,
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    /// Store the message once and fan it out, as the first span of a new trace.
    pub async fn publish(&self, request: PublishRequest<'_>) -> Result<Published, PublishError> {
        self.publish_kept(request, None, TraceParent::generate())
            .await
    }

    /// The same, as a span of the caller's trace (`TraceParent::continue_from` its header):
    /// every attempt of every delivery continues it.
    pub async fn publish_traced(
        &self,
        request: PublishRequest<'_>,
        trace: TraceParent,
    ) -> Result<Published, PublishError> {
        self.publish_kept(request, None, trace).await
    }

    /// Publish a payload whose bytes are kept at `kept_at` already (a relayed inbound event's
    /// S3 object): one too large for the message's item refers to them instead of holding a
    /// copy, so it is delivered whole.
    pub async fn publish_kept(
        &self,
        request: PublishRequest<'_>,
        kept_at: Option<&str>,
        trace: TraceParent,
    ) -> Result<Published, PublishError> {
        let event_type = EventType::parse(request.event_type).map_err(PublishError::EventType)?;
        let id = match request.idempotency_key {
            Some(key) => MessageId::parse(key).map_err(PublishError::MessageId)?,
            None => MessageId::generate(),
        };
        let payload_location = match kept_at {
            _ if request.payload.len() <= MAX_PAYLOAD_BYTES => None,
            Some(location) => Some(location.to_owned()),
            None => return Err(PublishError::TooLarge),
        };
        serde_json::from_slice::<serde::de::IgnoredAny>(request.payload)
            .map_err(|e| PublishError::NotJson(e.to_string()))?;
        let now = self.clock.now();
        let message = OutboundMessage {
            tenant: request.tenant.clone(),
            id: id.clone(),
            event_type,
            payload: request.payload.to_vec(),
            payload_location,
            created_at: now,
            fanned_out: true,
            trace: Some(trace),
            erased: None,
        };
        // A repeated publish sends nothing: the message it repeats is on its way already.
        if let Some(existing) = self.store.stored_message(&message.tenant, &id).await? {
            if existing.content_hash != message.content_hash() {
                return Err(PublishError::Conflict(id));
            }
            let deliveries = self
                .store
                .endpoints(&message.tenant)
                .await?
                .iter()
                .filter(|e| e.filter.matches(&existing.event_type))
                .count();
            info!(tenant = %message.tenant, message_id = %id, duplicate = true, "published");
            return Ok(Published {
                message_id: id,
                duplicate: true,
                deliveries,
            });
        }
        // Checked after the duplicate check: a retry of a stored message keeps its answer even
        // if the schema changed since.
        self.check_catalog(&message).await?;
        let endpoints = self.store.endpoints(&message.tenant).await?;
        if endpoints.is_empty() && self.store.tenant_policy(&message.tenant).await?.is_none() {
            return Err(PublishError::UnknownTenant(message.tenant));
        }
        let (held, open): (Vec<&Endpoint>, Vec<&Endpoint>) = endpoints
            .iter()
            .filter(|e| e.filter.matches(&message.event_type))
            .partition(|e| !e.is_enabled() || e.is_paused(now) || e.health.holding);
        let pointers: Vec<DeliveryPointer> = open
            .iter()
            .map(|e| {
                DeliveryPointer::published(&delivery_key(&message, &e.id), &message.event_type)
            })
            .collect();
        self.queue.enqueue_all(&pointers).await?;
        let (message, duplicate) = match self
            .store
            .put_message(&message, now + self.settings.retention)
            .await?
        {
            PutMessage::Inserted => (message, false),
            PutMessage::Duplicate(existing) => (*existing, true),
            PutMessage::Conflict => return Err(PublishError::Conflict(id)),
        };
        for endpoint in &held {
            self.hold_new(&message, &endpoint.id, now).await?;
        }
        let deliveries = held.len() + open.len();
        info!(
            tenant = %message.tenant,
            message_id = %message.id,
            event_type = %message.event_type,
            duplicate,
            deliveries,
            trace_id = message.trace.map(|t| t.trace_id()).as_deref(),
            span_id = message.trace.map(|t| t.span_id()).as_deref(),
            "published"
        );
        Ok(Published {
            message_id: message.id,
            duplicate,
            deliveries,
        })
    }

    /// Refuse a payload that breaks its registered type's schema, or an unregistered type when
    /// the tenant allows registered ones only.
    async fn check_catalog(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        let (tenant, event_type) = (&message.tenant, &message.event_type);
        match self
            .check_type(tenant, event_type, &message.payload)
            .await?
        {
            TypeCheck::Registered => Ok(()),
            TypeCheck::Mismatch(mismatch) => Err(PublishError::SchemaMismatch {
                event_type: event_type.clone(),
                mismatch,
            }),
            TypeCheck::Unregistered => {
                let policy = self.policies.get(&self.store, tenant).await?;
                if policy.is_some_and(|p| p.registered_types_only) {
                    Err(PublishError::UnregisteredType(event_type.clone()))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Create a held delivery of `message` to an endpoint that takes no deliveries now, and
    /// note that the endpoint holds one.
    async fn hold_new(
        &self,
        message: &OutboundMessage,
        endpoint: &EndpointId,
        now: SystemTime,
    ) -> Result<(), PublishError> {
        let delivery = Delivery::new(message, endpoint, true, now);
        if self.store.put_delivery_if_absent(&delivery).await? {
            self.store
                .mark_holding(&message.tenant, endpoint, now)
                .await?;
        }
        Ok(())
    }

    /// Create the deliveries a message stored unfinished (before pointers went first) lacks,
    /// send their pointers, and mark it finished: reconcile's way to finish such a fan-out.
    /// Safe to run again at any point.
    pub async fn fan_out(&self, message: &OutboundMessage) -> Result<usize, PublishError> {
        let now = self.clock.now();
        let endpoints = self.store.endpoints(&message.tenant).await?;
        let mut count = 0;
        for endpoint in endpoints
            .iter()
            .filter(|e| e.filter.matches(&message.event_type))
        {
            let held = !endpoint.is_enabled() || endpoint.is_paused(now);
            let delivery = Delivery::new(message, &endpoint.id, held, now);
            let created = self.store.put_delivery_if_absent(&delivery).await?;
            let status = if created {
                delivery.status
            } else {
                match self.store.delivery(&delivery.key).await? {
                    // The first run stopped between the put and the pointer: send it now.
                    Some(existing) if existing.attempts == 0 => existing.status,
                    _ => {
                        count += 1;
                        continue;
                    }
                }
            };
            match status {
                DeliveryStatus::Held => {
                    self.store
                        .mark_holding(&message.tenant, &endpoint.id, now)
                        .await?;
                }
                DeliveryStatus::Pending => {
                    self.queue
                        .enqueue(&DeliveryPointer::new(&delivery.key))
                        .await?;
                }
                _ => {}
            }
            count += 1;
        }
        self.store
            .mark_fanned_out(&message.tenant, &message.id)
            .await?;
        Ok(count)
    }

    /// Put an endpoint's held deliveries back on their way, oldest first, up to `limit`.
    /// Forgets that the endpoint holds any when none is left. How many went.
    pub async fn release_held(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
    ) -> Result<usize, PublishError> {
        let read_at = self.clock.now();
        let held = self.store.held_deliveries(tenant, endpoint, limit).await?;
        let mut released = 0;
        for delivery in &held.deliveries {
            if self
                .requeue(delivery, &[DeliveryStatus::Held], false)
                .await?
            {
                released += 1;
            }
        }
        if !held.more {
            self.store.clear_holding(tenant, endpoint, read_at).await?;
        }
        if released > 0 {
            info!(%tenant, endpoint = %endpoint, released, "released held deliveries");
        }
        Ok(released)
    }

    /// Move a delivery from one of `from` back to pending and send its pointer. `false` if it
    /// had moved on.
    pub(crate) async fn requeue(
        &self,
        delivery: &Delivery,
        from: &[DeliveryStatus],
        reset_attempts: bool,
    ) -> Result<bool, PublishError> {
        let now: SystemTime = self.clock.now();
        let moved = self
            .store
            .move_delivery(
                &delivery.key,
                from,
                DeliveryStatus::Pending,
                reset_attempts,
                now,
                None,
            )
            .await?;
        if !moved {
            return Ok(false);
        }
        if let Err(e) = self
            .queue
            .enqueue(&DeliveryPointer::new(&delivery.key))
            .await
        {
            // Pending with no pointer: reconcile sends it once it is overdue.
            warn!(delivery = %delivery.key, error = %e, "pointer not sent; reconcile will");
            return Err(e.into());
        }
        Ok(true)
    }
}

fn delivery_key(message: &OutboundMessage, endpoint: &EndpointId) -> DeliveryKey {
    DeliveryKey {
        tenant: message.tenant.clone(),
        message_id: message.id.clone(),
        endpoint_id: endpoint.clone(),
    }
}
