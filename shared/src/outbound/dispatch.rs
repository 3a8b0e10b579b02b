//! The dispatcher: one attempt per deliveries-queue message.
//!
//! For each pointer, on its own and a bounded number at once (so a slow endpoint holds one slot
//! and never the others): read the delivery (final → nothing to do) and its endpoint (deleted
//! → cancelled; disabled, or paused by its circuit breaker → held, off the queue, never
//! discarded); keep to its rate limit (over it → the next free slot reserved and the pointer
//! back then, no attempt counted); claim the delivery with a lease (counting the attempt); sign
//! and POST; log the attempt and move the delivery on in one write, then update the
//! endpoint's health when it changed.
//!
//! A partner's 2xx is never lost to a write failing for a moment: the finishing transaction is
//! retried in place, and if it still fails, a note that the partner answered is left on the
//! delivery, so the claim that comes next finishes it without posting again.
//!
//! 2xx: delivered. 410 Gone: the endpoint is disabled and the delivery held. Anything else is
//! retried on the schedule (429 and 503 sooner if their `Retry-After` says so); after the last
//! attempt the pointer is copied to the deliveries DLQ first and only then is the delivery
//! marked dead, so a dead delivery always has its copy. Failures in a row open the endpoint's
//! circuit; failing continuously for too long disables it.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use serde_json::json;
use tracing::{Instrument, error, info, info_span, warn};

use super::{
    Outbound, OutboundSettings,
    delivery::{
        Answered, Attempt, Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus, ErrorClass,
        Exchange, OutboundMessage, Trigger,
    },
    endpoint::{DisabledReason, Endpoint},
    ids::{EndpointId, EventType, MessageId},
    lanes::{self, Flights, Pace, Ticket},
    ports::{
        AttemptResult, DeliveryClaim, DeliveryQueue, DeliveryRetryQueue, OutboundRequest,
        OutboundStore, Transport,
    },
    rate, signing,
};
use crate::{
    clock::{Clock, from_unix_millis, unix_millis},
    ids::TenantId,
    metrics::{self, MetricLine, MetricSink},
    ports::StoreError,
    processor::{Jitter, Message},
    retry::RetrySchedule,
    trace::{self, TraceParent},
};

/// The deliveries queue's `maxReceiveCount` (template.yaml): a pointer that would come back
/// once more is sent again fresh instead, so no receive limit sends a live delivery to the DLQ.
pub const DELIVERIES_MAX_RECEIVES: u32 = 100;
/// How old a pointer may grow before one that comes back is sent again fresh: well inside the
/// deliveries queue's retention (`MessageRetentionPeriod`, four days), past which SQS drops it.
pub const POINTER_REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How soon a pointer comes back when its message is not stored yet (its publish is between
/// sending the pointers and storing the message).
const UNSTORED_DELAY: Duration = Duration::from_secs(2);
/// How soon a message comes back when its endpoint, not proven fast here, has as many attempts
/// in flight in this process as it may ([`lanes::UNPROVEN_IN_FLIGHT`]).
const UNPROVEN_DELAY: Duration = Duration::from_secs(1);
/// How soon a message comes back after a storage or queue outage.
const OUTAGE_DELAY: Duration = Duration::from_secs(10);
/// How many held deliveries a recovered endpoint releases at once; reconcile does the rest.
const RELEASE_BATCH: u32 = 100;
/// The longest a message is hidden at once: SQS refuses a visibility past 12 hours from its
/// receive, so a longer wait is chained (the claim sends a message that comes back early away
/// again until its delivery is due).
const MAX_HIDE: Duration = Duration::from_secs(12 * 3600 - 5 * 60);
/// How many times an attempt's finishing write is tried before the message comes back.
const FINISH_TRIES: u32 = 3;
/// The wait before the second try; doubled before each next one. Far inside the lease.
const FINISH_BACKOFF: Duration = Duration::from_millis(50);

/// The metric names of the outbound side (function `dispatcher`).
pub mod names {
    pub const DISPATCHER: &str = "dispatcher";
    pub const DELIVERED: &str = "delivered";
    /// An attempt that failed and will be retried.
    pub const DELIVERY_FAILED: &str = "delivery_failed";
    /// A delivery whose schedule is spent: dead, on the deliveries DLQ.
    pub const DELIVERY_DEAD: &str = "delivery_dead";
    pub const DELIVERY_HELD: &str = "delivery_held";
    /// An endpoint disabled by the dispatcher (410 Gone, or failing too long).
    pub const ENDPOINT_DISABLED: &str = "endpoint_disabled";
    pub const ENDPOINT_PAUSED: &str = "endpoint_paused";
    pub const DELIVERY_LATENCY: &str = "delivery_latency";
    pub const ENDPOINT_ID: &str = "endpoint_id";
    /// The attempt's number, on its line.
    pub const ATTEMPT: &str = "attempt";
    /// The partner's HTTP status, on the attempt's line.
    pub const STATUS_CODE: &str = "status_code";
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    Delivered,
    /// Failed; back on the queue after the schedule's delay.
    Retry(Duration),
    /// The schedule is spent: on the DLQ and dead.
    Dead,
    /// Kept off the queue until its endpoint takes deliveries again.
    Held,
    /// Nothing to do (final already, deleted endpoint, another dispatcher's).
    Skipped(&'static str),
    /// Not attempted now (rate limit, another's lease, an outage): back on the queue soon.
    Later(Duration),
    /// Retried or not attempted now, through a fresh copy of its pointer (this one was near
    /// the queue's receive or age limit): done with as far as this message goes.
    SentAgain(Duration),
    /// Its endpoint is slow: its pointer went to the slow lane, unattempted.
    Diverted,
}

impl Dispatched {
    /// Whether the message must be reported failed, for SQS to deliver it again.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Retry(_) | Self::Later(_))
    }
}

/// The dispatcher over its ports.
#[derive(Debug)]
pub struct Dispatcher<S, Q, R, T, C, J> {
    /// Holds the store, the deliveries queue (to release held deliveries) and the clock.
    pub outbound: Outbound<S, Q, C>,
    /// The queue this dispatcher consumes: back off, send again, give up.
    pub retry: R,
    pub transport: T,
    pub jitter: J,
    /// Set on the main lane: where slow endpoints' deliveries go ([`lanes`]).
    pub slow_lane: Option<SlowLane>,
}

/// The main lane's way to the slow lane, and its count of attempts in flight per endpoint.
#[derive(Clone)]
pub struct SlowLane {
    pub queue: Arc<dyn DeliveryQueue>,
    pub flights: Flights,
}

impl std::fmt::Debug for SlowLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowLane").finish_non_exhaustive()
    }
}

impl SlowLane {
    pub fn new(queue: Arc<dyn DeliveryQueue>) -> Self {
        Self {
            queue,
            flights: Flights::default(),
        }
    }
}

/// What an attempt decided for the delivery, before it is written.
struct Decision {
    status: DeliveryStatus,
    delay: Option<Duration>,
}

impl<S, Q, R, T, C, J> Dispatcher<S, Q, R, T, C, J>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    R: DeliveryRetryQueue,
    T: Transport,
    C: Clock,
    J: Jitter,
{
    pub fn new(outbound: Outbound<S, Q, C>, retry: R, transport: T, jitter: J) -> Self {
        Self {
            outbound,
            retry,
            transport,
            jitter,
            slow_lane: None,
        }
    }

    /// Run as the main lane, sending slow endpoints' deliveries to `lane`.
    pub fn with_slow_lane(mut self, lane: SlowLane) -> Self {
        self.slow_lane = Some(lane);
        self
    }

    fn settings(&self) -> &OutboundSettings {
        &self.outbound.settings
    }

    fn metrics(&self) -> &Arc<dyn MetricSink> {
        &self.outbound.metrics
    }

    fn now(&self) -> SystemTime {
        self.outbound.clock.now()
    }

    /// Dispatch a batch; the ids of the messages to report failed.
    pub async fn dispatch_batch(&self, messages: &[Message], invocation: &str) -> Vec<String> {
        crate::batch::run(
            messages,
            self.settings().concurrency,
            |message| async move {
                let owner = format!("{invocation}/{}", message.message_id);
                self.dispatch(message, &owner).await
            },
        )
        .await
        .into_iter()
        .filter(|(_, outcome)| outcome.is_failure())
        .map(|(message, _)| message.message_id.clone())
        .collect()
    }

    /// Handle one message, with its span.
    pub async fn dispatch(&self, message: &Message, owner: &str) -> Dispatched {
        let pointer = DeliveryPointer::parse(&message.body);
        let span = info_span!(
            "delivery",
            message_id = %message.message_id,
            tenant = pointer.as_ref().map(|p| p.tenant.as_str()),
            outbound_message_id = pointer.as_ref().map(|p| p.message_id.as_str()),
            endpoint_id = pointer.as_ref().map(|p| p.endpoint_id.as_str()),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        async {
            let Some((pointer, key)) = pointer.and_then(|p| p.key().map(|k| (p, k))) else {
                // Not a pointer of ours: nothing it could name exists, so nothing is lost.
                error!("not a delivery pointer; dropping it");
                return Dispatched::Skipped("malformed");
            };
            let outcome = match self.attempt(&pointer, &key, owner, message.sent_at).await {
                Ok(outcome) => outcome,
                // The same call fails the same way every time: retrying it forever would only
                // hide it. The DLQ keeps the pointer for an operator.
                Err(e @ (StoreError::Rejected(_) | StoreError::Malformed(_))) => {
                    error!(error = %e, "the store refuses this delivery; to the DLQ");
                    self.dead_letter(&pointer).await
                }
                Err(e) => {
                    warn!(error = %e, "storage unavailable; the message comes back");
                    Dispatched::Later(OUTAGE_DELAY)
                }
            };
            if let Dispatched::Retry(delay) | Dispatched::Later(delay) = outcome {
                // A rate-limit slot admits one attempt: the retry reserves its own.
                let slot_spent = matches!(outcome, Dispatched::Retry(_)) && pointer.slot.is_some();
                if slot_spent || self.nears_queue_limits(message) {
                    let fresh = DeliveryPointer {
                        slot: pointer.slot.filter(|_| !slot_spent),
                        ..pointer.clone()
                    };
                    let why = if slot_spent {
                        "its rate-limit slot is spent"
                    } else {
                        "near the queue's limits"
                    };
                    return self.send_again(message, &fresh, outcome, delay, why).await;
                }
                self.come_back(message, delay).await;
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// Copy a pointer to the deliveries DLQ; if that fails, the message comes back instead.
    async fn dead_letter(&self, pointer: &DeliveryPointer) -> Dispatched {
        match self.retry.dead_letter(pointer).await {
            Ok(()) => Dispatched::Dead,
            Err(e) => {
                warn!(error = %e, "could not copy to the deliveries DLQ; the message comes back");
                Dispatched::Later(OUTAGE_DELAY)
            }
        }
    }

    /// Whether SQS would soon drop a pointer that comes back: on its last receives (it would
    /// go to the DLQ although its delivery is not dead) or near the queue's retention (it
    /// would vanish, and a delivery not claimed yet with it).
    fn nears_queue_limits(&self, message: &Message) -> bool {
        message.receives_left(DELIVERIES_MAX_RECEIVES) <= 1
            || message.sent_at.is_some_and(|sent| {
                self.now().duration_since(sent).unwrap_or_default() >= POINTER_REFRESH_AFTER
            })
    }

    /// Put a fresh copy of the pointer on the queue and let this one go: its receives and its
    /// age start over. If the copy cannot be sent, this one comes back as usual.
    async fn send_again(
        &self,
        message: &Message,
        pointer: &DeliveryPointer,
        outcome: Dispatched,
        delay: Duration,
        why: &str,
    ) -> Dispatched {
        match self.retry.send_again(pointer, delay).await {
            Ok(()) => {
                info!(
                    receive_count = message.receive_count,
                    "sent again fresh: {why}"
                );
                Dispatched::SentAgain(delay)
            }
            Err(e) => {
                warn!(error = %e, "could not send the pointer again; it comes back as it is");
                self.come_back(message, delay).await;
                outcome
            }
        }
    }

    async fn come_back(&self, message: &Message, delay: Duration) {
        if let Some(handle) = &message.receipt_handle
            && let Err(e) = self.retry.retry_after(handle, delay.min(MAX_HIDE)).await
        {
            // The queue's own visibility timeout brings it back instead.
            warn!(error = %e, "could not set the message's delay");
        }
    }

    /// On the main lane, a slow endpoint's pointer goes on to the slow lane, and an endpoint
    /// not proven fast here waits its turn: `Err` with what became of the pointer. `Ok` with
    /// the ticket that counts this attempt in flight (none off the main lane, or for a probe).
    async fn main_lane(
        &self,
        pointer: &DeliveryPointer,
        key: &DeliveryKey,
        endpoint: &Endpoint,
    ) -> Result<Option<Ticket>, Dispatched> {
        let Some(lane) = self.slow_lane.as_ref().filter(|_| !pointer.probe) else {
            return Ok(None);
        };
        if endpoint.health.slow_since.is_some() {
            match lane.queue.enqueue(pointer).await {
                Ok(()) => {
                    info!("a slow endpoint: to the slow lane");
                    return Err(Dispatched::Diverted);
                }
                Err(e) => warn!(error = %e, "could not reach the slow lane; attempted here"),
            }
        }
        match lane.flights.admit(&key.tenant, &key.endpoint_id) {
            Some(ticket) => Ok(Some(ticket)),
            None => Err(Dispatched::Later(UNPROVEN_DELAY)),
        }
    }

    /// Keep to the endpoint's rate limit: `None` if the delivery goes now, else what became of
    /// its pointer. A pointer without a slot reserves the next free one; if that is not near,
    /// a copy carrying it is sent to come back then and this one is let go. A pointer with a
    /// slot goes once the slot is near, without reserving again.
    async fn rate_limited(
        &self,
        pointer: &DeliveryPointer,
        key: &DeliveryKey,
        limit: u32,
        now: SystemTime,
    ) -> Result<Option<Dispatched>, StoreError> {
        if let Some(slot) = pointer.slot.map(from_unix_millis) {
            return Ok(
                (!rate::goes_now(slot, now)).then(|| Dispatched::Later(rate::wait_for(slot, now)))
            );
        }
        let slot = self
            .outbound
            .store
            .reserve(&key.tenant, &key.endpoint_id, limit, now)
            .await?;
        if rate::goes_now(slot, now) {
            return Ok(None);
        }
        let wait = rate::wait_for(slot, now);
        let reserved = DeliveryPointer {
            slot: Some(unix_millis(slot)),
            ..pointer.clone()
        };
        Ok(Some(match self.retry.send_again(&reserved, wait).await {
            Ok(()) => Dispatched::SentAgain(wait),
            Err(e) => {
                // This one comes back then instead, and reserves again.
                warn!(error = %e, "could not send the pointer with its slot");
                Dispatched::Later(wait)
            }
        }))
    }

    /// The attempt itself; storage errors end it early (the message comes back).
    async fn attempt(
        &self,
        pointer: &DeliveryPointer,
        key: &DeliveryKey,
        owner: &str,
        sent_at: Option<SystemTime>,
    ) -> Result<Dispatched, StoreError> {
        let store = &self.outbound.store;
        let now = self.now();
        let Some(message) = store.message(&key.tenant, &key.message_id).await? else {
            return self.without_message(pointer, key, sent_at, now).await;
        };
        if message.is_erased() {
            return self.erased(key, now).await;
        }
        if pointer
            .event_type
            .as_deref()
            .is_some_and(|t| t != message.event_type.as_str())
        {
            // Sent by a publish that lost to another with this id and another type.
            return Ok(Dispatched::Skipped("another message's pointer"));
        }
        let Some(endpoint) = store
            .endpoint_with_secrets(&key.tenant, &key.endpoint_id)
            .await?
        else {
            store
                .move_delivery(
                    key,
                    &[DeliveryStatus::Pending, DeliveryStatus::Held],
                    DeliveryStatus::Cancelled,
                    false,
                    now,
                    Some(now + self.settings().retention),
                )
                .await?;
            return Ok(Dispatched::Skipped("endpoint deleted"));
        };
        // A repeated publish sends pointers to the endpoints of its time: one created after
        // the message was stored never receives it.
        if pointer.event_type.is_some() && endpoint.created_at > message.created_at {
            return Ok(Dispatched::Skipped("endpoint newer than the message"));
        }
        // A published delivery also waits while older ones are held, to go out after them.
        let behind_held = pointer.event_type.is_some() && endpoint.health.holding;
        if !endpoint.is_enabled() || (endpoint.is_paused(now) && !pointer.probe) || behind_held {
            return self.hold(&message, key, now).await;
        }
        // Our own failures never count against the partner: no attempt, no health.
        if endpoint.secrets.is_none() || endpoint.headers.opened().is_none() {
            error!("the endpoint's signing secrets could not be read; not attempted");
            return Ok(Dispatched::Later(OUTAGE_DELAY));
        }
        let _ticket = match self.main_lane(pointer, key, &endpoint).await {
            Ok(ticket) => ticket,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(limit) = endpoint.rate_limit
            && let Some(waiting) = self.rate_limited(pointer, key, limit.get(), now).await?
        {
            return Ok(waiting);
        }
        let lease_until = now + self.settings().lease;
        let new = Delivery::new(&message, &key.endpoint_id, false, now);
        let delivery = match store
            .claim_delivery(&new, owner, lease_until, pointer.probe, now)
            .await?
        {
            DeliveryClaim::Claimed(delivery) => *delivery,
            DeliveryClaim::NotNow(DeliveryStatus::Sending) => {
                return Ok(Dispatched::Later(self.settings().lease));
            }
            DeliveryClaim::NotDue(due) => {
                return Ok(Dispatched::Later(
                    due.duration_since(now).unwrap_or_default(),
                ));
            }
            DeliveryClaim::NotNow(status) if status.is_final() => {
                return Ok(Dispatched::Skipped("final already"));
            }
            DeliveryClaim::NotNow(_) => return Ok(Dispatched::Skipped("moved on")),
        };
        if let Some(answered) = delivery.answered {
            return self
                .finish_answered(&delivery, &endpoint, answered, owner)
                .await;
        }
        if delivery.spent {
            return self.dead_when_copied(pointer, &delivery, now).await;
        }
        let policy = self.outbound.policies.get(store, &key.tenant).await?;
        let (schedule, disable_after) = self.settings().for_tenant(policy.as_ref());
        let exchange = self.send(&endpoint, &message, now).await;
        let done = self.now();
        let attempt = Attempt::new(
            key,
            delivery.attempts,
            now,
            Trigger::Scheduled,
            &endpoint.url,
            &exchange,
        );
        let mut decision = self
            .decide(
                &endpoint,
                &delivery,
                &exchange,
                &schedule,
                disable_after,
                done,
            )
            .await?;
        let mut spent = false;
        if decision.status == DeliveryStatus::Dead
            && let Err(e) = self.retry.dead_letter(pointer).await
        {
            // No DLQ copy, no `dead`: the copy is tried again soon, without another attempt.
            warn!(error = %e, "could not copy to the deliveries DLQ; trying again soon");
            decision = Decision {
                status: DeliveryStatus::Pending,
                delay: Some(OUTAGE_DELAY),
            };
            spent = true;
        }
        let result = AttemptResult {
            attempt,
            created_at: delivery.created_at,
            status: decision.status,
            spent,
            next_attempt_at: decision.delay.map(|d| done + d),
            // Delivered, dead (its copy on the DLQ for an operator) or cancelled: kept as long
            // as delivered ones, then gone.
            expires_at: decision
                .status
                .is_final()
                .then(|| done + self.settings().retention),
        };
        match self.finish(owner, &result).await {
            Ok(true) => {}
            Ok(false) => return Ok(Dispatched::Skipped("lease lost")),
            Err(e) => {
                if let (DeliveryStatus::Delivered, Some(status)) = (result.status, exchange.status)
                {
                    self.note_answered(key, owner, status, done).await;
                }
                return Err(e);
            }
        }
        if decision.status == DeliveryStatus::Delivered && success_changes(&endpoint.health, done) {
            self.record_success(key, done).await;
        }
        self.note_pace(&endpoint, lanes::pace(&exchange), done)
            .await;
        match (decision.status, result.next_attempt_at) {
            (DeliveryStatus::Held, _) => {
                store
                    .mark_holding(&key.tenant, &key.endpoint_id, done)
                    .await?;
                self.keep_message(&message, done + self.settings().retention)
                    .await;
            }
            // A retry due in the message's second half of life keeps it a life past then.
            (DeliveryStatus::Pending, Some(due))
                if due > message.created_at + self.settings().retention / 2 =>
            {
                self.keep_message(&message, due + self.settings().retention)
                    .await;
            }
            _ => {}
        }
        self.count(&delivery, &endpoint, &exchange, decision.status);
        Ok(match decision.status {
            DeliveryStatus::Delivered => {
                if pointer.probe
                    || endpoint.health.consecutive_failures > 0
                    || endpoint.health.holding
                {
                    self.release(&key.tenant, &key.endpoint_id).await;
                }
                Dispatched::Delivered
            }
            DeliveryStatus::Pending => Dispatched::Retry(decision.delay.unwrap_or(OUTAGE_DELAY)),
            DeliveryStatus::Held => Dispatched::Held,
            _ => Dispatched::Dead,
        })
    }

    /// Finish the attempt, trying again in place what an outage of the moment refuses: the
    /// partner has answered, and a write lost now would make the next claim post again.
    async fn finish(&self, owner: &str, result: &AttemptResult) -> Result<bool, StoreError> {
        let mut backoff = FINISH_BACKOFF;
        let mut tries = 1;
        loop {
            match self.outbound.store.finish_attempt(owner, result).await {
                Err(e) if !e.is_permanent() && tries < FINISH_TRIES => {
                    warn!(error = %e, tries, "could not finish the attempt; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tries += 1;
                }
                finished => return finished,
            }
        }
    }

    /// Leave the partner's 2xx on the delivery, for the next claim to finish it from.
    async fn note_answered(&self, key: &DeliveryKey, owner: &str, status: u16, at: SystemTime) {
        match self
            .outbound
            .store
            .note_answered(key, owner, status, at)
            .await
        {
            Ok(true) => warn!("delivered, but not recorded yet: noted for the next claim"),
            Ok(false) => warn!("delivered, but the lease was gone before it could be noted"),
            Err(e) => error!(
                error = %e,
                "delivered, but neither recorded nor noted; the partner may receive it again"
            ),
        }
    }

    /// What the attempt's pace says about its endpoint: proven fast (or not) in this process,
    /// and marked slow or fast again when that changes. Best effort, after the attempt is
    /// recorded.
    async fn note_pace(&self, endpoint: &Endpoint, pace: Pace, at: SystemTime) {
        if let Some(lane) = &self.slow_lane {
            lane.flights.observe(&endpoint.tenant, &endpoint.id, pace);
        }
        let slow = endpoint.health.slow_since.is_some();
        let mark = match pace {
            Pace::Slow if !slow => Some(at),
            Pace::Fast if slow => None,
            _ => return,
        };
        match self
            .outbound
            .store
            .mark_slow(&endpoint.tenant, &endpoint.id, mark)
            .await
        {
            Ok(()) => info!(slow = mark.is_some(), "the endpoint's pace changed"),
            Err(e) => warn!(error = %e, "the endpoint's pace could not be noted"),
        }
    }

    /// The endpoint's health after a delivery: best effort, after the delivery is recorded,
    /// so a failure here never sends it again.
    async fn record_success(&self, key: &DeliveryKey, at: SystemTime) {
        if let Err(e) = self
            .outbound
            .store
            .record_success(&key.tenant, &key.endpoint_id, at)
            .await
        {
            warn!(error = %e, "delivered; the endpoint's health could not be updated");
        }
    }

    /// Finish a delivery whose partner already answered 2xx (its attempt's finishing write
    /// failed): delivered, logged with the noted answer, and not posted again.
    async fn finish_answered(
        &self,
        delivery: &Delivery,
        endpoint: &Endpoint,
        answered: Answered,
        owner: &str,
    ) -> Result<Dispatched, StoreError> {
        let key = &delivery.key;
        let exchange = Exchange {
            status: Some(answered.status),
            retry_after: None,
            body: String::new(),
            latency: Duration::ZERO,
            error: None,
        };
        // The claim that led here counted one more attempt than was made.
        let attempt = Attempt::new(
            key,
            delivery.attempts.saturating_sub(1).max(1),
            answered.at,
            Trigger::Scheduled,
            &endpoint.url,
            &exchange,
        );
        let result = AttemptResult {
            attempt,
            created_at: delivery.created_at,
            status: DeliveryStatus::Delivered,
            spent: false,
            next_attempt_at: None,
            expires_at: Some(answered.at + self.settings().retention),
        };
        if !self.finish(owner, &result).await? {
            return Ok(Dispatched::Skipped("lease lost"));
        }
        info!("finished from the partner's noted answer; not posted again");
        self.record_success(key, answered.at).await;
        self.count(delivery, endpoint, &exchange, DeliveryStatus::Delivered);
        Ok(Dispatched::Delivered)
    }

    /// A pointer whose message is not stored: its publish is still writing it (it comes back
    /// soon), or never did (older than any publish takes: dropped), or the message expired
    /// under a delivery that was still waiting (dead).
    async fn without_message(
        &self,
        pointer: &DeliveryPointer,
        key: &DeliveryKey,
        sent_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<Dispatched, StoreError> {
        match self.outbound.store.delivery(key).await? {
            Some(delivery) if !delivery.status.is_final() => {
                self.expired(pointer, &delivery, now).await
            }
            Some(_) => Ok(Dispatched::Skipped("final already")),
            None if sent_at.is_some_and(|sent| {
                now.duration_since(sent).unwrap_or_default() < crate::processor::ORPHAN_AFTER
            }) =>
            {
                Ok(Dispatched::Later(UNSTORED_DELAY))
            }
            None => {
                warn!("no message for this pointer: its publish was not accepted; dropping it");
                Ok(Dispatched::Skipped("no such message"))
            }
        }
    }

    /// A delivery of a message whose payload an operator erased: nothing may be sent (never an
    /// empty body), so no attempt and nothing against the endpoint's health; cancelled, with
    /// no DLQ copy, since a redrive could only be refused again.
    async fn erased(&self, key: &DeliveryKey, now: SystemTime) -> Result<Dispatched, StoreError> {
        warn!(
            reason = crate::record::ERASED_REASON,
            "not delivered; cancelled"
        );
        self.outbound
            .store
            .move_delivery(
                key,
                &[
                    DeliveryStatus::Pending,
                    DeliveryStatus::Held,
                    DeliveryStatus::Sending,
                ],
                DeliveryStatus::Cancelled,
                false,
                now,
                Some(now + self.settings().retention),
            )
            .await?;
        Ok(Dispatched::Skipped(crate::record::ERASED_REASON))
    }

    /// A delivery whose schedule was spent when its DLQ copy failed: copy it now and mark it
    /// dead, with no attempt.
    async fn dead_when_copied(
        &self,
        pointer: &DeliveryPointer,
        delivery: &Delivery,
        now: SystemTime,
    ) -> Result<Dispatched, StoreError> {
        let dead = self
            .dead_without_attempt(pointer, delivery, &[DeliveryStatus::Sending], now)
            .await?;
        if let Dispatched::Later(delay) = dead {
            // Still claimed: the pointer comes back once the lease ends.
            return Ok(Dispatched::Later(delay.max(self.settings().lease)));
        }
        info!("schedule spent; copied to the deliveries DLQ and dead, not posted again");
        Ok(dead)
    }

    /// A delivery whose message is gone (expired): nothing to send, so no attempt and nothing
    /// against the endpoint's health; dead, with its DLQ copy first.
    async fn expired(
        &self,
        pointer: &DeliveryPointer,
        delivery: &Delivery,
        now: SystemTime,
    ) -> Result<Dispatched, StoreError> {
        error!("the message expired before it could be delivered; dead");
        self.dead_without_attempt(
            pointer,
            delivery,
            &[
                DeliveryStatus::Pending,
                DeliveryStatus::Held,
                DeliveryStatus::Sending,
            ],
            now,
        )
        .await
    }

    /// Copy the pointer to the deliveries DLQ, then mark the delivery dead from one of `from`
    /// (a dead delivery always has its copy); if the copy fails, it comes back instead.
    async fn dead_without_attempt(
        &self,
        pointer: &DeliveryPointer,
        delivery: &Delivery,
        from: &[DeliveryStatus],
        now: SystemTime,
    ) -> Result<Dispatched, StoreError> {
        if let Dispatched::Later(delay) = self.dead_letter(pointer).await {
            return Ok(Dispatched::Later(delay));
        }
        self.outbound
            .store
            .move_delivery(
                &delivery.key,
                from,
                DeliveryStatus::Dead,
                false,
                now,
                Some(now + self.settings().retention),
            )
            .await?;
        self.endpoint_line(
            names::DELIVERY_DEAD,
            &delivery.key.tenant,
            &delivery.key.endpoint_id,
            now,
        )
        .emit_to(&**self.metrics());
        Ok(Dispatched::Dead)
    }

    /// Keep `message` until `until` at least, for a delivery that waits (held, or a late
    /// retry): best effort, as the wait itself is recorded already; a message that expires
    /// under it makes the delivery dead, never a wrong send.
    async fn keep_message(&self, message: &OutboundMessage, until: SystemTime) {
        if let Err(e) = self
            .outbound
            .store
            .keep_message(&message.tenant, &message.id, until)
            .await
        {
            warn!(error = %e, "could not keep the message for its waiting delivery");
        }
    }

    /// Keep a pending delivery (or one a publish's pointer would have created) off the queue
    /// until its endpoint takes deliveries again.
    async fn hold(
        &self,
        message: &OutboundMessage,
        key: &DeliveryKey,
        now: SystemTime,
    ) -> Result<Dispatched, StoreError> {
        let store = &self.outbound.store;
        let held = store
            .move_delivery(
                key,
                &[DeliveryStatus::Pending],
                DeliveryStatus::Held,
                false,
                now,
                None,
            )
            .await?
            || store
                .put_delivery_if_absent(&Delivery::new(message, &key.endpoint_id, true, now))
                .await?;
        if held {
            store
                .mark_holding(&key.tenant, &key.endpoint_id, now)
                .await?;
            self.keep_message(message, now + self.settings().retention)
                .await;
            self.endpoint_line(names::DELIVERY_HELD, &key.tenant, &key.endpoint_id, now)
                .emit_to(&**self.metrics());
            info!("endpoint takes no deliveries now; delivery held");
            return Ok(Dispatched::Held);
        }
        Ok(Dispatched::Skipped("moved on"))
    }

    /// Sign and POST `message` to `endpoint`.
    async fn send(
        &self,
        endpoint: &Endpoint,
        message: &OutboundMessage,
        at: SystemTime,
    ) -> Exchange {
        let (Some(secrets), Some(custom)) = (&endpoint.secrets, endpoint.headers.opened()) else {
            return failed_before_sending("the endpoint's secrets were not read");
        };
        let mut headers = match signing::sign(secrets, message.id.as_str(), at, &message.payload) {
            Ok(headers) => headers,
            Err(e) => return failed_before_sending(&format!("signing failed: {e}")),
        };
        // This attempt is a span of the publish's trace (a message stored before traces were
        // kept starts one): the receiver can continue it. Outside the signed content.
        let attempt = message
            .trace
            .map_or_else(TraceParent::generate, |trace| trace.child());
        let span = tracing::Span::current();
        span.record("trace_id", attempt.trace_id());
        span.record("span_id", attempt.span_id());
        if let Some(parent) = message.trace {
            span.record("parent_span_id", parent.span_id());
        }
        headers.push((trace::HEADER.to_owned(), attempt.to_string()));
        headers.extend(custom.iter().map(|(n, v)| (n.to_owned(), v.to_owned())));
        self.transport
            .send(OutboundRequest {
                url: endpoint.url.clone(),
                headers,
                body: message.payload.clone(),
                timeout: self.settings().attempt_timeout,
            })
            .await
    }

    /// Where the attempt leaves the delivery, and the endpoint's health with it.
    async fn decide(
        &self,
        endpoint: &Endpoint,
        delivery: &Delivery,
        exchange: &Exchange,
        schedule: &RetrySchedule,
        disable_after: Duration,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        let store = &self.outbound.store;
        let (tenant, id) = (&endpoint.tenant, &endpoint.id);
        // Its health waits for the attempt to be recorded (`record_success`).
        if exchange.is_success() {
            return Ok(Decision {
                status: DeliveryStatus::Delivered,
                delay: None,
            });
        }
        if exchange.status == Some(410) {
            store.disable(tenant, id, DisabledReason::Gone, now).await?;
            self.disabled(endpoint, DisabledReason::Gone, now);
            return Ok(Decision {
                status: DeliveryStatus::Held,
                delay: None,
            });
        }
        let health = store.record_failure(tenant, id, now).await?;
        if health
            .failing_since
            .is_some_and(|since| now.duration_since(since).unwrap_or_default() >= disable_after)
        {
            store
                .disable(tenant, id, DisabledReason::Failing, now)
                .await?;
            self.disabled(endpoint, DisabledReason::Failing, now);
            return Ok(Decision {
                status: DeliveryStatus::Held,
                delay: None,
            });
        }
        let pause = self.settings().pause_for(health.pauses);
        let paused = health.paused_until.is_some_and(|until| until > now);
        if health.consecutive_failures >= self.settings().pause_after_failures
            && !paused
            && store.pause(tenant, id, now + pause, now).await?
        {
            self.endpoint_line(names::ENDPOINT_PAUSED, tenant, id, now)
                .emit_to(&**self.metrics());
            warn!(
                failures = health.consecutive_failures,
                pause_secs = pause.as_secs(),
                "circuit open: endpoint paused"
            );
        }
        if schedule.is_last(delivery.attempts) {
            return Ok(Decision {
                status: DeliveryStatus::Dead,
                delay: None,
            });
        }
        let step = schedule.delay_for(delivery.attempts, &mut || self.jitter.sample());
        let delay = match (exchange.status, exchange.retry_after) {
            // The endpoint says when it will be ready; never later than the schedule's step.
            (Some(429 | 503), Some(asked)) => asked.min(step),
            _ => step,
        };
        Ok(Decision {
            status: DeliveryStatus::Pending,
            delay: Some(delay),
        })
    }

    /// A dispatcher line counting `name` for one endpoint (its ids as properties).
    fn endpoint_line(
        &self,
        name: &'static str,
        tenant: &TenantId,
        endpoint: &EndpointId,
        at: SystemTime,
    ) -> MetricLine {
        MetricLine::new(at)
            .dimension(metrics::FUNCTION, names::DISPATCHER)
            .count(name)
            .property(metrics::TENANT, tenant.as_str())
            .property(names::ENDPOINT_ID, endpoint.as_str())
    }

    fn disabled(&self, endpoint: &Endpoint, reason: DisabledReason, now: SystemTime) {
        self.endpoint_line(
            names::ENDPOINT_DISABLED,
            &endpoint.tenant,
            &endpoint.id,
            now,
        )
        .property(metrics::REASON, reason.as_str())
        .emit_to(&**self.metrics());
        warn!(reason = %reason, url = %endpoint.url.redacted(), "endpoint disabled; its deliveries are held");
    }

    /// The attempt's metrics and log line.
    fn count(
        &self,
        delivery: &Delivery,
        endpoint: &Endpoint,
        exchange: &Exchange,
        status: DeliveryStatus,
    ) {
        let name = match status {
            DeliveryStatus::Delivered => names::DELIVERED,
            DeliveryStatus::Dead => names::DELIVERY_DEAD,
            DeliveryStatus::Held => names::DELIVERY_HELD,
            _ => names::DELIVERY_FAILED,
        };
        let error = exchange
            .error
            .as_ref()
            .map(|(class, text)| format!("{class}: {text}"));
        // One line per attempt: the metric line carries what the log line would.
        let mut line = self
            .endpoint_line(name, &endpoint.tenant, &endpoint.id, self.now())
            .millis(
                names::DELIVERY_LATENCY,
                exchange.latency.as_secs_f64() * 1e3,
            )
            .property(metrics::MESSAGE_ID, delivery.key.message_id.as_str())
            .property(names::ATTEMPT, delivery.attempts.to_string())
            .property(metrics::OUTCOME, status.as_str());
        if let Some(code) = exchange.status {
            line = line.property(names::STATUS_CODE, code.to_string());
        }
        if let Some(error) = &error {
            line = line.property(metrics::REASON, error.as_str());
        }
        line.emit_to(&**self.metrics());
        // A failure also gets a line of its own, with the delivery's span, to search and alarm on.
        if status != DeliveryStatus::Delivered {
            warn!(
                attempt = delivery.attempts,
                status = exchange.status,
                latency_ms = exchange.latency.as_millis() as u64,
                error,
                outcome = %status,
                "delivery attempt failed"
            );
        }
    }

    /// Release a recovered endpoint's held deliveries; what is left, reconcile releases.
    async fn release(&self, tenant: &TenantId, endpoint: &EndpointId) {
        if let Err(e) = self
            .outbound
            .release_held(tenant, endpoint, RELEASE_BATCH)
            .await
        {
            warn!(error = %e, "releasing held deliveries failed; reconcile will");
        }
    }

    /// Send a test event to one endpoint now and return the attempt: `webhook.test` with a
    /// small payload unless `event_type` and `payload` are given. Goes out even if the
    /// endpoint is disabled (to check it before enabling it), and through the SSRF guard like
    /// any delivery; logged with the endpoint's attempts.
    pub async fn test_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        event_type: Option<&EventType>,
        payload: Option<&[u8]>,
    ) -> Result<Option<Attempt>, StoreError> {
        let store = &self.outbound.store;
        let Some(endpoint) = store.endpoint_with_secrets(tenant, endpoint).await? else {
            return Ok(None);
        };
        let now = self.now();
        let event_type = match event_type {
            Some(t) => t.clone(),
            None => {
                EventType::parse("webhook.test").map_err(|e| StoreError::Rejected(e.to_string()))?
            }
        };
        let message = OutboundMessage {
            payload_location: None,
            tenant: tenant.clone(),
            id: MessageId::generate(),
            payload: payload.map_or_else(|| test_payload(&event_type, now), <[u8]>::to_vec),
            event_type,
            created_at: now,
            fanned_out: true,
            trace: Some(TraceParent::generate()),
            erased: None,
        };
        let started = Instant::now();
        let exchange = self.send(&endpoint, &message, now).await;
        let key = DeliveryKey {
            tenant: tenant.clone(),
            message_id: message.id.clone(),
            endpoint_id: endpoint.id.clone(),
        };
        let attempt = Attempt::new(&key, 1, now, Trigger::Test, &endpoint.url, &exchange);
        store
            .log_attempt(&attempt, now + self.settings().retention)
            .await?;
        info!(
            tenant = %tenant,
            endpoint_id = %endpoint.id,
            status = exchange.status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "test event sent"
        );
        Ok(Some(attempt))
    }
}

/// How stale an endpoint's `last_success_at` may grow before a success writes it again: a busy
/// endpoint's successes change nothing else, and writing each would put every delivery's
/// write on the endpoint's item.
const SUCCESS_REFRESH: Duration = Duration::from_secs(60);

/// Whether a success at `at` changes `health` enough to write: failures to forget, a circuit to
/// close, or a last success older than [`SUCCESS_REFRESH`].
fn success_changes(health: &super::endpoint::EndpointHealth, at: SystemTime) -> bool {
    health.consecutive_failures > 0
        || health.failing_since.is_some()
        || health.paused_until.is_some()
        || health.pauses > 0
        || health
            .last_success_at
            .is_none_or(|last| at.duration_since(last).unwrap_or_default() >= SUCCESS_REFRESH)
}

/// The body of a test event.
fn test_payload(event_type: &EventType, at: SystemTime) -> Vec<u8> {
    json!({
        "type": event_type.as_str(),
        "timestamp": crate::clock::unix_secs(at),
        "data": { "test": true, "message": "A test event from your webhook provider." },
    })
    .to_string()
    .into_bytes()
}

fn failed_before_sending(reason: &str) -> Exchange {
    Exchange {
        status: None,
        retry_after: None,
        body: String::new(),
        latency: Duration::ZERO,
        error: Some((ErrorClass::Connection, reason.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::endpoint::EndpointHealth;

    #[test]
    fn a_success_writes_health_only_when_it_changes_it_or_the_last_is_a_minute_old() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let healthy = EndpointHealth {
            last_success_at: Some(at - Duration::from_secs(5)),
            ..EndpointHealth::default()
        };
        assert!(!success_changes(&healthy, at));
        for changed in [
            EndpointHealth {
                consecutive_failures: 1,
                ..healthy.clone()
            },
            EndpointHealth {
                paused_until: Some(at),
                ..healthy.clone()
            },
            EndpointHealth {
                last_success_at: Some(at - SUCCESS_REFRESH),
                ..healthy.clone()
            },
            EndpointHealth::default(),
        ] {
            assert!(success_changes(&changed, at), "{changed:?}");
        }
    }
}
