//! The outbound ports in memory, for fast unit tests and benchmarks: the store (endpoints,
//! messages, deliveries, attempts, rate limits), the deliveries queue, and a scripted transport.
//! Each can be told to fail, and the store counts the requests that reached an endpoint.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    adapters::{Outage, lock},
    ids::TenantId,
    outbound::{
        TenantPolicy,
        catalog::EventTypeDefinition,
        delivery::{
            Answered, Attempt, Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus, Exchange,
            MessageErased, OutboundMessage,
        },
        endpoint::{DisabledReason, Endpoint, EndpointHealth},
        ids::{EndpointId, EventType, MessageId},
        ports::{
            AttemptResult, DUE_GRACE, DeliveryClaim, DeliveryLog, DeliveryQueue,
            DeliveryRetryQueue, EndpointStore, ErasedMessage, EventTypeStore, HeldDeliveries,
            MessageErasure, OutboundRequest, Page, PutMessage, RateLimiter, Transport,
        },
    },
    ports::{Erasure, QueueError, StoreError},
};

#[derive(Debug, Clone)]
struct StoredEndpoint {
    endpoint: Endpoint,
    holding_since: Option<SystemTime>,
}

impl StoredEndpoint {
    /// The endpoint as a read gives it, with its holding mark.
    fn read(&self) -> Endpoint {
        let mut endpoint = self.endpoint.clone();
        endpoint.health.holding = self.holding_since.is_some();
        endpoint
    }
}

#[derive(Debug, Clone)]
struct StoredDelivery {
    delivery: Delivery,
    owner: Option<String>,
}

impl StoredDelivery {
    /// Whether `owner` holds the delivery's lease: the condition of every write that ends or
    /// notes an attempt.
    fn leased_to(&self, owner: &str) -> bool {
        self.owner.as_deref() == Some(owner) && self.delivery.status == DeliveryStatus::Sending
    }
}

#[derive(Debug, Default)]
struct State {
    endpoints: BTreeMap<(TenantId, EndpointId), StoredEndpoint>,
    policies: HashMap<TenantId, TenantPolicy>,
    event_types: BTreeMap<(TenantId, EventType), EventTypeDefinition>,
    messages: BTreeMap<(TenantId, MessageId), OutboundMessage>,
    /// How long each message is kept, as far as `keep_message` said.
    kept: BTreeMap<(TenantId, MessageId), SystemTime>,
    deliveries: BTreeMap<DeliveryKey, StoredDelivery>,
    attempts: Vec<Attempt>,
    /// Each rate-limited endpoint's next free slot.
    rate: HashMap<(TenantId, EndpointId), Option<SystemTime>>,
}

/// [`EndpointStore`], [`DeliveryLog`] and [`RateLimiter`] in memory. Clones share one store,
/// as a deployment's dispatchers share one table.
#[derive(Debug, Default, Clone)]
pub struct MemoryOutboundStore(std::sync::Arc<SharedStore>);

impl std::ops::Deref for MemoryOutboundStore {
    type Target = SharedStore;

    fn deref(&self) -> &SharedStore {
        &self.0
    }
}

/// What the clones of a [`MemoryOutboundStore`] share.
#[derive(Debug, Default)]
pub struct SharedStore {
    state: Mutex<State>,
    outage: Outage,
    /// How many coming `finish_attempt` calls fail as an outage would, writing nothing.
    failing_finishes: std::sync::atomic::AtomicU32,
    /// How many coming `record_success` calls fail so.
    failing_successes: std::sync::atomic::AtomicU32,
    /// Every call refused as a store refuses an invalid request.
    refusing: Outage,
    /// How many deliveries another releaser moves on between the next `held_deliveries`
    /// call's index read and its reads of the deliveries themselves.
    racing_releaser: std::sync::atomic::AtomicU32,
}

impl MemoryOutboundStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    fn check(&self) -> Result<(), StoreError> {
        self.refusing.check().map_err(StoreError::Rejected)?;
        self.outage.check().map_err(StoreError::Unavailable)
    }

    /// Let another releaser move the oldest `n` held deliveries on in the middle of the next
    /// `held_deliveries` call, as DynamoDB's index page and item reads allow.
    pub fn race_next_held(&self, n: u32) {
        self.racing_releaser
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Refuse every call as permanently wrong (an item the store cannot take).
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing.set(refusing);
    }

    /// Forget a message, as its expiry would.
    /// Until when `keep_message` last asked to keep a message.
    pub fn kept_until(&self, tenant: &TenantId, id: &MessageId) -> Option<SystemTime> {
        lock(&self.state)
            .kept
            .get(&(tenant.clone(), id.clone()))
            .copied()
    }

    pub fn forget_message(&self, tenant: &TenantId, id: &MessageId) {
        lock(&self.state)
            .messages
            .remove(&(tenant.clone(), id.clone()));
    }

    /// Make the next `n` finishing writes fail (throttled, cancelled by a conflict).
    pub fn fail_finishes(&self, n: u32) {
        self.failing_finishes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Make the next `n` health updates after a success fail.
    pub fn fail_successes(&self, n: u32) {
        self.failing_successes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn take_failure(counter: &std::sync::atomic::AtomicU32, what: &str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        match counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(StoreError::Unavailable(format!("{what}: throttled"))),
            Err(_) => Ok(()),
        }
    }

    /// Every delivery, for assertions.
    pub fn all_deliveries(&self) -> Vec<Delivery> {
        lock(&self.state)
            .deliveries
            .values()
            .map(|d| d.delivery.clone())
            .collect()
    }

    /// Every message stored, for assertions.
    pub fn all_messages(&self) -> Vec<OutboundMessage> {
        lock(&self.state).messages.values().cloned().collect()
    }

    /// Every attempt logged, oldest first.
    pub fn all_attempts(&self) -> Vec<Attempt> {
        lock(&self.state).attempts.clone()
    }
}

fn page<T: Clone>(items: Vec<T>, limit: u32, after: Option<&str>) -> Page<T> {
    let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let end = (start + limit).min(items.len());
    Page {
        items: items.get(start..end).unwrap_or_default().to_vec(),
        next: (end < items.len()).then(|| end.to_string()),
    }
}

/// Store `endpoint` at its version, keeping its health (and its secrets and header values when
/// it was read without them).
fn put_in(state: &mut State, endpoint: &Endpoint) -> Result<(), StoreError> {
    let key = (endpoint.tenant.clone(), endpoint.id.clone());
    let stored = state.endpoints.get(&key);
    let current = stored.map_or(0, |s| s.endpoint.version);
    if current != endpoint.version {
        return Err(StoreError::Conflict(format!("endpoint {}", endpoint.id)));
    }
    let mut next = endpoint.clone();
    next.version += 1;
    if let Some(stored) = stored {
        next.health = stored.endpoint.health.clone();
        if next.secrets.is_none() {
            next.secrets.clone_from(&stored.endpoint.secrets);
        }
        if next.headers.opened().is_none() {
            next.headers.clone_from(&stored.endpoint.headers);
        }
    }
    let holding_since = stored.and_then(|s| s.holding_since);
    state.endpoints.insert(
        key,
        StoredEndpoint {
            endpoint: next,
            holding_since,
        },
    );
    Ok(())
}

#[async_trait]
impl EndpointStore for MemoryOutboundStore {
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.check()?;
        put_in(&mut lock(&self.state), endpoint)
    }

    async fn insert_endpoint(
        &self,
        endpoint: &Endpoint,
        _existing: usize,
        max: usize,
    ) -> Result<bool, StoreError> {
        self.check()?;
        // Counted under the lock the insert holds, as DynamoDB counts in the transaction.
        let mut state = lock(&self.state);
        let count = state
            .endpoints
            .keys()
            .filter(|(tenant, _)| *tenant == endpoint.tenant)
            .count();
        if count >= max {
            return Ok(false);
        }
        put_in(&mut state, endpoint).map(|()| true)
    }

    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        Ok(self
            .endpoint_with_secrets(tenant, id)
            .await?
            .map(Endpoint::without_secrets))
    }

    async fn endpoint_with_secrets(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .endpoints
            .get(&(tenant.clone(), id.clone()))
            .map(StoredEndpoint::read))
    }

    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .endpoints
            .values()
            .filter(|s| s.endpoint.tenant == *tenant)
            .map(|s| s.read().without_secrets())
            .collect())
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        version: u64,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let key = (tenant.clone(), id.clone());
        match state.endpoints.get(&key) {
            Some(s) if s.endpoint.version == version => {
                state.endpoints.remove(&key);
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("endpoint {id}"))),
        }
    }

    async fn record_success(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        Self::take_failure(&self.failing_successes, "record_success")?;
        self.health(tenant, id, |h| {
            h.consecutive_failures = 0;
            h.failing_since = None;
            h.paused_until = None;
            h.pauses = 0;
            h.last_success_at = Some(at);
        })
        .map(|_| ())
    }

    async fn mark_slow(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        since: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.health(tenant, id, |h| h.slow_since = since)
            .map(|_| ())
    }

    async fn record_failure(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<EndpointHealth, StoreError> {
        self.health(tenant, id, |h| {
            h.consecutive_failures += 1;
            h.failing_since.get_or_insert(at);
        })
    }

    async fn pause(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut opened = false;
        self.health(tenant, id, |h| {
            if h.paused_until.is_none_or(|open| open <= now) {
                h.paused_until = Some(until);
                h.pauses += 1;
                opened = true;
            }
        })?;
        Ok(opened)
    }

    async fn disable(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: DisabledReason,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.health(tenant, id, |h| h.disabled = Some((reason, at)))
            .map(|_| ())
    }

    async fn reset_health(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), StoreError> {
        self.health(tenant, id, |h| {
            let last_success_at = h.last_success_at;
            *h = EndpointHealth {
                last_success_at,
                ..EndpointHealth::default()
            };
        })
        .map(|_| ())
    }

    async fn mark_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(s) = lock(&self.state)
            .endpoints
            .get_mut(&(tenant.clone(), id.clone()))
        {
            s.holding_since = Some(at);
        }
        Ok(())
    }

    async fn clear_holding(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        read_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(s) = lock(&self.state)
            .endpoints
            .get_mut(&(tenant.clone(), id.clone()))
            && s.holding_since.is_some_and(|at| at <= read_at)
        {
            s.holding_since = None;
        }
        Ok(())
    }

    async fn holding_endpoints(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<(TenantId, EndpointId)>, StoreError> {
        self.check()?;
        // Oldest mark first, as the index orders them.
        let mut holding: Vec<(SystemTime, (TenantId, EndpointId))> = lock(&self.state)
            .endpoints
            .iter()
            .filter_map(|(k, s)| s.holding_since.map(|since| (since, k.clone())))
            .collect();
        holding.sort();
        let keys = holding.into_iter().map(|(_, k)| k).collect();
        Ok(page(keys, limit, after))
    }

    async fn tenant_policy(&self, tenant: &TenantId) -> Result<Option<TenantPolicy>, StoreError> {
        self.check()?;
        Ok(lock(&self.state).policies.get(tenant).cloned())
    }

    async fn put_tenant_policy(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
    ) -> Result<(), StoreError> {
        self.check()?;
        lock(&self.state)
            .policies
            .insert(tenant.clone(), policy.clone());
        Ok(())
    }
}

#[async_trait]
impl EventTypeStore for MemoryOutboundStore {
    async fn put_event_type(&self, definition: &EventTypeDefinition) -> Result<(), StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let key = (definition.tenant.clone(), definition.name.clone());
        let stored = state.event_types.get(&key).map_or(0, |d| d.version);
        if stored != definition.version {
            return Err(StoreError::Conflict(format!(
                "event type {}",
                definition.name
            )));
        }
        let mut next = definition.clone();
        next.version += 1;
        state.event_types.insert(key, next);
        Ok(())
    }

    async fn event_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
    ) -> Result<Option<EventTypeDefinition>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .event_types
            .get(&(tenant.clone(), name.clone()))
            .cloned())
    }

    async fn event_types(&self, tenant: &TenantId) -> Result<Vec<EventTypeDefinition>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .event_types
            .values()
            .filter(|d| d.tenant == *tenant)
            .cloned()
            .collect())
    }

    async fn event_type_count(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .event_types
            .keys()
            .filter(|(t, _)| t == tenant)
            .count())
    }
}

impl MemoryOutboundStore {
    fn health(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: impl FnOnce(&mut EndpointHealth),
    ) -> Result<EndpointHealth, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let stored = state
            .endpoints
            .get_mut(&(tenant.clone(), id.clone()))
            .ok_or_else(|| StoreError::Conflict(format!("no endpoint {id}")))?;
        change(&mut stored.endpoint.health);
        Ok(stored.endpoint.health.clone())
    }
}

#[async_trait]
impl MessageErasure for MemoryOutboundStore {
    async fn erase_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        erasure: &Erasure,
    ) -> Result<ErasedMessage, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let Some(message) = state.messages.get_mut(&(tenant.clone(), id.clone())) else {
            return Ok(ErasedMessage::NotFound);
        };
        if message.is_erased() {
            return Ok(ErasedMessage::Already(Box::new(message.clone())));
        }
        message.erased = Some(MessageErased {
            at: erasure.at,
            by: erasure.actor.clone(),
            content_hash: message.content_hash(),
        });
        message.payload.clear();
        let referenced = message.payload_location.take().is_some();
        let tombstone = Box::new(message.clone());
        let mut attempts = 0;
        for attempt in state
            .attempts
            .iter_mut()
            .filter(|a| &a.key.tenant == tenant && &a.key.message_id == id)
        {
            if !attempt.response_body.is_empty() {
                attempt.response_body.clear();
                attempts += 1;
            }
        }
        Ok(ErasedMessage::Now {
            tombstone,
            referenced,
            attempts,
        })
    }
}

#[async_trait]
impl DeliveryLog for MemoryOutboundStore {
    async fn put_message(
        &self,
        message: &OutboundMessage,
        _expires_at: SystemTime,
    ) -> Result<PutMessage, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let key = (message.tenant.clone(), message.id.clone());
        match state.messages.get(&key) {
            Some(existing) if existing.content_hash() == message.content_hash() => {
                Ok(PutMessage::Duplicate(Box::new(existing.clone())))
            }
            Some(_) => Ok(PutMessage::Conflict),
            None => {
                state.messages.insert(key, message.clone());
                Ok(PutMessage::Inserted)
            }
        }
    }

    async fn message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .messages
            .get(&(tenant.clone(), id.clone()))
            .cloned())
    }

    async fn published_types(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<EventType>, StoreError> {
        self.check()?;
        let state = lock(&self.state);
        let types: std::collections::BTreeSet<EventType> = state
            .messages
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .take(limit as usize)
            .map(|(_, message)| message.event_type.clone())
            .collect();
        Ok(types.into_iter().collect())
    }

    async fn keep_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        until: SystemTime,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let key = (tenant.clone(), id.clone());
        if state.messages.contains_key(&key) {
            let kept = state.kept.entry(key).or_insert(until);
            *kept = (*kept).max(until);
        }
        Ok(())
    }

    async fn mark_fanned_out(&self, tenant: &TenantId, id: &MessageId) -> Result<(), StoreError> {
        self.check()?;
        if let Some(m) = lock(&self.state)
            .messages
            .get_mut(&(tenant.clone(), id.clone()))
        {
            m.fanned_out = true;
        }
        Ok(())
    }

    async fn unfinished_fan_outs(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<(TenantId, MessageId)>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .messages
            .iter()
            .filter(|(_, m)| !m.fanned_out && m.created_at < before)
            .map(|(k, _)| k.clone())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn put_delivery_if_absent(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        if state.deliveries.contains_key(&delivery.key) {
            return Ok(false);
        }
        state.deliveries.insert(
            delivery.key.clone(),
            StoredDelivery {
                delivery: delivery.clone(),
                owner: None,
            },
        );
        Ok(true)
    }

    async fn delivery(&self, key: &DeliveryKey) -> Result<Option<Delivery>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .deliveries
            .get(key)
            .map(|s| s.delivery.clone()))
    }

    async fn claim_delivery(
        &self,
        delivery: &Delivery,
        owner: &str,
        lease_until: SystemTime,
        probe: bool,
        now: SystemTime,
    ) -> Result<DeliveryClaim, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let stored = state
            .deliveries
            .entry(delivery.key.clone())
            .or_insert_with(|| StoredDelivery {
                delivery: delivery.clone(),
                owner: None,
            });
        let d = &mut stored.delivery;
        if d.status == DeliveryStatus::Pending
            && let Some(due) = d.next_attempt_at
            && due > now + DUE_GRACE
        {
            return Ok(DeliveryClaim::NotDue(due));
        }
        let free = match d.status {
            DeliveryStatus::Pending => true,
            DeliveryStatus::Sending => d.lease_until.is_none_or(|until| until <= now),
            DeliveryStatus::Held => probe,
            _ => false,
        };
        if !free {
            return Ok(DeliveryClaim::NotNow(d.status));
        }
        d.status = DeliveryStatus::Sending;
        d.status_at = now;
        d.attempts += 1;
        d.lease_until = Some(lease_until);
        stored.owner = Some(owner.to_owned());
        Ok(DeliveryClaim::Claimed(Box::new(stored.delivery.clone())))
    }

    async fn finish_attempt(
        &self,
        owner: &str,
        result: &AttemptResult,
    ) -> Result<bool, StoreError> {
        self.check()?;
        Self::take_failure(&self.failing_finishes, "finish_attempt")?;
        let mut state = lock(&self.state);
        let Some(stored) = state.deliveries.get_mut(&result.attempt.key) else {
            return Ok(false);
        };
        if !stored.leased_to(owner) {
            return Ok(false);
        }
        let d = &mut stored.delivery;
        d.status = result.status;
        d.status_at = result.attempt.at;
        d.next_attempt_at = result.next_attempt_at;
        d.lease_until = None;
        d.last_status_code = result.attempt.status;
        d.last_error = result.attempt.error.clone();
        if result.status == DeliveryStatus::Delivered {
            d.delivered_at = Some(result.attempt.at);
        }
        d.answered = None;
        d.spent = result.spent;
        stored.owner = None;
        state.attempts.push(result.attempt.clone());
        Ok(true)
    }

    async fn note_answered(
        &self,
        key: &DeliveryKey,
        owner: &str,
        status: u16,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let Some(stored) = state.deliveries.get_mut(key) else {
            return Ok(false);
        };
        if !stored.leased_to(owner) {
            return Ok(false);
        }
        stored.delivery.answered = Some(Answered { status, at });
        Ok(true)
    }

    async fn log_attempt(&self, attempt: &Attempt, _: SystemTime) -> Result<(), StoreError> {
        self.check()?;
        lock(&self.state).attempts.push(attempt.clone());
        Ok(())
    }

    async fn move_delivery(
        &self,
        key: &DeliveryKey,
        from: &[DeliveryStatus],
        to: DeliveryStatus,
        reset_attempts: bool,
        now: SystemTime,
        _expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let Some(stored) = state.deliveries.get_mut(key) else {
            return Ok(false);
        };
        let d = &mut stored.delivery;
        if !from.contains(&d.status) {
            return Ok(false);
        }
        d.status = to;
        d.status_at = now;
        d.lease_until = None;
        d.next_attempt_at = (to == DeliveryStatus::Pending).then_some(now);
        if reset_attempts {
            d.attempts = 0;
            d.spent = false;
        }
        stored.owner = None;
        Ok(true)
    }

    async fn deliveries_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .deliveries
            .values()
            .filter(|s| s.delivery.key.tenant == *tenant && s.delivery.key.message_id == *id)
            .map(|s| s.delivery.clone())
            .collect())
    }

    async fn deliveries_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: Option<SystemTime>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Delivery>, StoreError> {
        self.check()?;
        let mut items: Vec<Delivery> = lock(&self.state)
            .deliveries
            .values()
            .map(|s| &s.delivery)
            .filter(|d| d.key.tenant == *tenant && d.key.endpoint_id == *endpoint)
            .filter(|d| since.is_none_or(|s| d.created_at >= s))
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            (b.created_at, &b.key.message_id).cmp(&(a.created_at, &a.key.message_id))
        });
        Ok(page(items, limit, after))
    }

    async fn held_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
    ) -> Result<HeldDeliveries, StoreError> {
        self.check()?;
        let mut items: Vec<Delivery> = lock(&self.state)
            .deliveries
            .values()
            .map(|s| &s.delivery)
            .filter(|d| {
                d.key.tenant == *tenant
                    && d.key.endpoint_id == *endpoint
                    && d.status == DeliveryStatus::Held
            })
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            (a.created_at, &a.key.message_id).cmp(&(b.created_at, &b.key.message_id))
        });
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = items.len() > limit;
        items.truncate(limit);
        let raced = self
            .racing_releaser
            .swap(0, std::sync::atomic::Ordering::SeqCst);
        let raced = usize::try_from(raced)
            .unwrap_or(usize::MAX)
            .min(items.len());
        let mut state = lock(&self.state);
        for released in items.drain(..raced) {
            if let Some(stored) = state.deliveries.get_mut(&released.key) {
                stored.delivery.status = DeliveryStatus::Pending;
            }
        }
        Ok(HeldDeliveries {
            deliveries: items,
            more,
        })
    }

    async fn overdue_deliveries(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<DeliveryKey>, StoreError> {
        self.check()?;
        Ok(lock(&self.state)
            .deliveries
            .values()
            .map(|s| &s.delivery)
            .filter(|d| match d.status {
                DeliveryStatus::Pending => d.next_attempt_at.is_some_and(|at| at < before),
                DeliveryStatus::Sending => d.lease_until.is_some_and(|at| at < before),
                _ => false,
            })
            .map(|d| d.key.clone())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn attempts_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempts_where(limit, after, |a| {
            a.key.tenant == *tenant && a.key.message_id == *id
        })
    }

    async fn attempts_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempts_where(limit, after, |a| {
            a.key.tenant == *tenant && a.key.endpoint_id == *endpoint
        })
    }
}

impl MemoryOutboundStore {
    fn attempts_where(
        &self,
        limit: u32,
        after: Option<&str>,
        keep: impl Fn(&Attempt) -> bool,
    ) -> Result<Page<Attempt>, StoreError> {
        self.check()?;
        let items: Vec<Attempt> = lock(&self.state)
            .attempts
            .iter()
            .rev()
            .filter(|a| keep(a))
            .cloned()
            .collect();
        Ok(page(items, limit, after))
    }
}

#[async_trait]
impl RateLimiter for MemoryOutboundStore {
    async fn reserve(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError> {
        self.check()?;
        let mut state = lock(&self.state);
        let next_free = state
            .rate
            .entry((tenant.clone(), endpoint.clone()))
            .or_default();
        let (slot, free) = crate::outbound::rate::reserve(*next_free, limit, now);
        *next_free = Some(free);
        Ok(slot)
    }
}

/// The deliveries queue and the dispatcher's view of it, in memory.
#[derive(Debug, Default)]
pub struct MemoryDeliveryQueue {
    sent: Mutex<Vec<DeliveryPointer>>,
    delays: Mutex<Vec<(String, Duration)>>,
    dead_letters: Mutex<Vec<DeliveryPointer>>,
    outage: Outage,
}

impl MemoryDeliveryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Pointers sent, oldest first.
    pub fn sent(&self) -> Vec<DeliveryPointer> {
        lock(&self.sent).clone()
    }

    /// Take every pointer sent so far, leaving none.
    pub fn drain(&self) -> Vec<DeliveryPointer> {
        std::mem::take(&mut *lock(&self.sent))
    }

    /// (receipt handle, delay) per message put back.
    pub fn delays(&self) -> Vec<(String, Duration)> {
        lock(&self.delays).clone()
    }

    pub fn dead_letters(&self) -> Vec<DeliveryPointer> {
        lock(&self.dead_letters).clone()
    }
}

#[async_trait]
impl DeliveryQueue for MemoryDeliveryQueue {
    async fn enqueue(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.sent).push(pointer.clone());
        Ok(())
    }
}

#[async_trait]
impl DeliveryRetryQueue for MemoryDeliveryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.delays).push((receipt_handle.to_owned(), delay));
        Ok(())
    }

    async fn dead_letter(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.dead_letters).push(pointer.clone());
        Ok(())
    }

    async fn send_again(
        &self,
        pointer: &DeliveryPointer,
        _delay: Duration,
    ) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.sent).push(pointer.clone());
        Ok(())
    }
}

/// A transport that answers from a script, per URL (the last answer repeats), and keeps every
/// request it was handed.
#[derive(Debug, Default)]
pub struct ScriptedTransport {
    answers: Mutex<HashMap<String, Vec<Exchange>>>,
    requests: Mutex<Vec<OutboundRequest>>,
}

impl ScriptedTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer requests to `url` with `answers`, in order.
    pub fn script(&self, url: &str, answers: Vec<Exchange>) {
        lock(&self.answers).insert(url.to_owned(), answers);
    }

    pub fn requests(&self) -> Vec<OutboundRequest> {
        lock(&self.requests).clone()
    }

    /// An answer with `status`.
    pub fn status(status: u16) -> Exchange {
        Exchange {
            status: Some(status),
            retry_after: None,
            body: format!("status {status}"),
            latency: Duration::from_millis(3),
            error: (!(200..300).contains(&status)).then(|| {
                (
                    crate::outbound::delivery::ErrorClass::HttpStatus,
                    format!("answered {status}"),
                )
            }),
        }
    }
}

#[async_trait]
impl Transport for ScriptedTransport {
    async fn send(&self, request: OutboundRequest) -> Exchange {
        // As a network round trip would: the batch's other attempts go out meanwhile.
        tokio::task::yield_now().await;
        let url = request.url.as_str();
        lock(&self.requests).push(request);
        let mut answers = lock(&self.answers);
        match answers.get_mut(&url) {
            Some(script) if script.len() > 1 => script.remove(0),
            Some(script) => script.first().cloned().unwrap_or_else(|| Self::status(200)),
            None => Self::status(200),
        }
    }
}
