//! The processor use case: exactly-once effects over at-least-once delivery.
//!
//! For each queue message, on its own: read the record (consistent); processed or dead →
//! nothing to do. Claim it with a lease; refuse it if its verification does not permit
//! processing; run the provider's handler, which returns its writes; commit the writes and the
//! `processed` mark in one transaction conditioned on the lease. A permanent error (bad
//! payload, unknown type configured as fatal) sends the event dead and its message to the DLQ
//! at once. Any other failure records the error, delays the message by the retry schedule and
//! reports it failed; the last attempt marks the event dead and `retry_exhausted`, and the
//! queue's redrive moves the message to the DLQ.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures_util::{StreamExt, stream};
use tracing::{error, info, warn};

use crate::{
    clock::Clock,
    handlers::{self, HandlerOutcome, UnknownTypePolicy},
    ids::{EventId, TenantId},
    message::QueueMessage,
    metrics::{self, MetricLine, MetricSink},
    ports::{Claim, Commit, EventProcessing, EventStore, Failure, Lease, RetryQueue},
    projection::ProjectionWrite,
    provider::Provider,
    record::{EventKey, EventRecord, EventStatus},
    retry::{RetrySchedule, within_sqs_limit},
};

/// The processor's knobs.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// How long a claim holds; longer than the function's timeout, so a live processor never
    /// loses its lease, and a crashed one's event is free again soon after.
    pub lease: Duration,
    pub schedule: RetrySchedule,
    pub unknown_types: UnknownTypePolicy,
    /// How long processed records are kept (DynamoDB TTL). Failed and dead ones never expire.
    pub retention: Duration,
    /// How many messages of a batch are processed at once.
    pub concurrency: usize,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            schedule: RetrySchedule::default(),
            unknown_types: UnknownTypePolicy::Ignore,
            retention: Duration::from_secs(30 * 24 * 60 * 60),
            concurrency: 4,
        }
    }
}

/// One queue message, as the Lambda event (or the local runner) hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Effects committed now.
    Processed,
    /// Committed with no effects: an unknown type under the `ignore` policy.
    Ignored,
    /// Nothing to do: committed before, dead waiting for an operator, or finished by another.
    Skipped(&'static str),
    /// Sent to the DLQ at once: a permanent error.
    DeadLettered,
    /// Report the message failed: the queue delivers it again after its delay (or redrives it).
    Retry,
}

impl Disposition {
    /// Whether the message must be reported in `batchItemFailures`.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Retry)
    }

    /// The `outcome` dimension and the metric counted.
    fn label(&self) -> &'static str {
        match self {
            Self::Processed => metrics::PROCESSED,
            Self::Ignored => metrics::IGNORED,
            Self::Skipped(_) => metrics::SKIPPED,
            Self::DeadLettered => metrics::DEAD_LETTERED,
            Self::Retry => metrics::FAILED,
        }
    }
}

/// A source of jitter in `0..1`.
pub trait Jitter: Send + Sync + std::fmt::Debug {
    fn sample(&self) -> f64;
}

/// Jitter from the operating system's random numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemJitter;

impl Jitter for SystemJitter {
    fn sample(&self) -> f64 {
        // 53 random bits as a fraction; a failing source means no jitter, not no retry.
        getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The processor over its ports.
#[derive(Debug)]
pub struct Processor<S, Q, C, J> {
    pub store: S,
    pub queue: Q,
    pub clock: C,
    pub jitter: J,
    pub settings: ProcessorSettings,
    /// Where metric lines go: stdout unless replaced with [`Processor::with_metrics`].
    pub metrics: Arc<dyn MetricSink>,
}

impl<S, Q, C, J> Processor<S, Q, C, J>
where
    S: EventStore + EventProcessing,
    Q: RetryQueue,
    C: Clock,
    J: Jitter,
{
    pub fn new(store: S, queue: Q, clock: C, jitter: J, settings: ProcessorSettings) -> Self {
        Self {
            store,
            queue,
            clock,
            jitter,
            settings,
            metrics: metrics::stdout(),
        }
    }

    /// Send metric lines to `sink` instead of stdout (tests read them back).
    pub fn with_metrics(mut self, sink: Arc<dyn MetricSink>) -> Self {
        self.metrics = sink;
        self
    }

    /// Process a batch, a bounded number at a time; the ids of the messages to report failed.
    /// `invocation` names the lease owner (the Lambda request id).
    pub async fn process_batch(&self, messages: &[Message], invocation: &str) -> Vec<String> {
        stream::iter(messages)
            .map(|message| async move {
                let owner = format!("{invocation}/{}", message.message_id);
                (message, self.process(message, &owner).await)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .filter_map(|(message, disposition)| async move {
                disposition.is_failure().then(|| message.message_id.clone())
            })
            .collect()
            .await
    }

    /// Process one message, log it and emit its metrics.
    pub async fn process(&self, message: &Message, owner: &str) -> Disposition {
        let started = Instant::now();
        let Some(key) = pointer_key(&message.body) else {
            error!(message_id = %message.message_id, "queue message is not an event pointer; dead-lettering it");
            let disposition = self.dead_letter(message).await;
            // No key, so no provider or tenant: counted all the same, so the DLQ never grows
            // unexplained.
            let line = self
                .line(None, &disposition)
                .millis(metrics::PROCESSING_LATENCY, millis_since(started))
                .property(metrics::MESSAGE_ID, message.message_id.as_str());
            self.metrics.emit(&line);
            return disposition;
        };
        let (disposition, record) = self.run(message, &key, owner).await;
        self.observe(&key, message, &disposition, record.as_ref(), started);
        disposition
    }

    async fn run(
        &self,
        message: &Message,
        key: &EventKey,
        owner: &str,
    ) -> (Disposition, Option<EventRecord>) {
        match self.store.get(key).await {
            Ok(Some(record)) if record.status == EventStatus::Processed => {
                return (Disposition::Skipped("already processed"), Some(record));
            }
            Ok(Some(record)) if record.status == EventStatus::Discarded => {
                return (
                    Disposition::Skipped("discarded by an operator"),
                    Some(record),
                );
            }
            Ok(Some(record)) if record.status == EventStatus::Dead => {
                return (
                    Disposition::Skipped("dead, waiting for an operator"),
                    Some(record),
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                warn!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id, "no record for this pointer yet");
                return (self.retry_unclaimed(message).await, None);
            }
            Err(e) => {
                warn!(tenant = %key.tenant, event_id = %key.event_id, error = %e, "event store unavailable");
                return (self.retry_unclaimed(message).await, None);
            }
        }

        let now = self.clock.now();
        let lease = Lease {
            owner: owner.to_owned(),
            until: now + self.settings.lease,
        };
        let record = match self.store.claim(key, &lease, now).await {
            Ok(Claim::Claimed(record)) => *record,
            Ok(Claim::AlreadyProcessed) => {
                return (Disposition::Skipped("already processed"), None);
            }
            Ok(Claim::Unclaimable(_)) => {
                return (Disposition::Skipped("dead, waiting for an operator"), None);
            }
            Ok(Claim::Busy) => {
                info!(tenant = %key.tenant, event_id = %key.event_id, "another processor holds the event");
                return (self.retry_after(message, self.settings.lease).await, None);
            }
            Ok(Claim::Missing) | Err(_) => return (self.retry_unclaimed(message).await, None),
        };

        if !record.verification.permits_processing() {
            warn!(security = true, tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
                verification = record.verification.as_str(), "stored verification does not permit processing; event dead");
            let disposition = self
                .permanent(
                    message,
                    &record,
                    &lease,
                    "verification does not permit processing",
                )
                .await;
            return (disposition, Some(record));
        }

        let (writes, outcome) = match handlers::handle(
            key.provider,
            record.event_type.as_deref(),
            &record.payload,
            key,
            self.settings.unknown_types,
        ) {
            Ok(HandlerOutcome::Writes(writes)) => (writes, "processed".to_owned()),
            Ok(HandlerOutcome::Ignored { reason }) => (Vec::new(), format!("ignored: {reason}")),
            Err(e) => {
                let disposition = self
                    .permanent(message, &record, &lease, &e.to_string())
                    .await;
                return (disposition, Some(record));
            }
        };
        let disposition = self
            .commit(message, &record, &lease, &writes, &outcome)
            .await;
        (disposition, Some(record))
    }

    async fn commit(
        &self,
        message: &Message,
        record: &EventRecord,
        lease: &Lease,
        writes: &[ProjectionWrite],
        outcome: &str,
    ) -> Disposition {
        let key = &record.key;
        let now = self.clock.now();
        let expires_at = Some(now + self.settings.retention);
        match self
            .store
            .commit(key, lease, writes, outcome, now, expires_at)
            .await
        {
            Ok(Commit::Committed { applied, skipped }) => {
                info!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
                    request_id = record.correlation.request_id.as_deref(), applied, skipped, "processed");
                if writes.is_empty() {
                    Disposition::Ignored
                } else {
                    Disposition::Processed
                }
            }
            Ok(Commit::LeaseLost) => {
                warn!(tenant = %key.tenant, event_id = %key.event_id, "lease lost before commit; nothing written");
                self.retry_after(message, Duration::ZERO).await
            }
            Err(e) => self.transient(message, record, lease, &e.to_string()).await,
        }
    }

    /// A failure that may pass: record it, and let the queue try again after the schedule's
    /// delay, or give up on the last attempt.
    async fn transient(
        &self,
        message: &Message,
        record: &EventRecord,
        lease: &Lease,
        error: &str,
    ) -> Disposition {
        let key = &record.key;
        let attempt = record.attempts.max(message.receive_count);
        let exhausted = self.settings.schedule.is_last(attempt);
        let failure = Failure {
            error: error.to_owned(),
            status: if exhausted {
                EventStatus::Dead
            } else {
                EventStatus::Failed
            },
            retry_exhausted: exhausted,
        };
        if let Err(e) = self
            .store
            .record_failure(key, lease, &failure, self.clock.now())
            .await
        {
            warn!(tenant = %key.tenant, event_id = %key.event_id, error = %e, "could not record the failure");
        }
        if exhausted {
            error!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id, attempt, error,
                "retries exhausted; event dead, the queue's redrive moves it to the DLQ");
            // Its own line: the message's line counts it `failed` like any other attempt.
            let line = MetricLine::new(self.clock.now())
                .dimension(metrics::FUNCTION, metrics::PROCESSOR)
                .dimension(metrics::PROVIDER, key.provider.as_str())
                .count(metrics::RETRY_EXHAUSTED)
                .property(metrics::TENANT, key.tenant.as_str())
                .property(metrics::EVENT_ID, key.event_id.as_str());
            self.metrics.emit(&line);
            return self.retry_after(message, Duration::ZERO).await;
        }
        let delay = self
            .settings
            .schedule
            .delay_for(attempt, &mut || self.jitter.sample());
        warn!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id, attempt,
            retry_in_secs = delay.as_secs(), error, "attempt failed; will retry");
        self.retry_after(message, delay).await
    }

    /// A failure that will not pass: the event goes dead and its message to the DLQ now.
    async fn permanent(
        &self,
        message: &Message,
        record: &EventRecord,
        lease: &Lease,
        error: &str,
    ) -> Disposition {
        let key = &record.key;
        error!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id, error,
            "permanent failure; event dead");
        let failure = Failure {
            error: format!("permanent: {error}"),
            status: EventStatus::Dead,
            retry_exhausted: false,
        };
        if let Err(e) = self
            .store
            .record_failure(key, lease, &failure, self.clock.now())
            .await
        {
            warn!(tenant = %key.tenant, event_id = %key.event_id, error = %e, "could not record the failure");
            return self.retry_after(message, Duration::ZERO).await;
        }
        self.dead_letter(message).await
    }

    /// Before any claim: retry on the schedule for the message's receive count.
    async fn retry_unclaimed(&self, message: &Message) -> Disposition {
        let delay = self
            .settings
            .schedule
            .delay_for(message.receive_count, &mut || self.jitter.sample());
        self.retry_after(message, delay).await
    }

    async fn retry_after(&self, message: &Message, delay: Duration) -> Disposition {
        // SQS refuses a visibility that ends more than 12 h after the receive, rather than trim
        // it; the message has been in flight for at most a lease.
        let delay = within_sqs_limit(delay, self.settings.lease);
        if let Some(receipt) = &message.receipt_handle {
            if let Err(e) = self.queue.retry_after(receipt, delay).await {
                // The message still comes back, after the queue's own visibility timeout.
                warn!(message_id = %message.message_id, error = %e, "could not set the retry delay");
            }
        }
        Disposition::Retry
    }

    async fn dead_letter(&self, message: &Message) -> Disposition {
        match self.queue.dead_letter(&message.body).await {
            Ok(()) => Disposition::DeadLettered,
            Err(e) => {
                // Left on the queue, it reaches the DLQ by redrive after its receives run out.
                warn!(message_id = %message.message_id, error = %e, "could not dead-letter; retrying instead");
                Disposition::Retry
            }
        }
    }

    fn observe(
        &self,
        key: &EventKey,
        message: &Message,
        disposition: &Disposition,
        record: Option<&EventRecord>,
        started: Instant,
    ) {
        let mut line = self
            .line(Some(key.provider), disposition)
            .millis(metrics::PROCESSING_LATENCY, millis_since(started))
            .property(metrics::TENANT, key.tenant.as_str())
            .property(metrics::EVENT_ID, key.event_id.as_str())
            .property(metrics::MESSAGE_ID, message.message_id.as_str());
        if let (Disposition::Processed | Disposition::Ignored, Some(record)) = (disposition, record)
        {
            line = line.millis(
                metrics::END_TO_END_LATENCY,
                millis_between(record.received_at, self.clock.now()),
            );
        }
        self.metrics.emit(&line);
    }

    /// A message's line: its disposition counted under function, provider and outcome.
    fn line(&self, provider: Option<Provider>, disposition: &Disposition) -> MetricLine {
        MetricLine::new(self.clock.now())
            .dimension(metrics::FUNCTION, metrics::PROCESSOR)
            .dimension(
                metrics::PROVIDER,
                provider.map_or("unknown", Provider::as_str),
            )
            .dimension(metrics::OUTCOME, disposition.label())
            .count(disposition.label())
    }
}

/// The event key a queue message points at, if it is a valid pointer.
fn pointer_key(body: &str) -> Option<EventKey> {
    let pointer: QueueMessage = serde_json::from_str(body).ok()?;
    Some(EventKey {
        tenant: TenantId::parse(&pointer.tenant).ok()?,
        provider: pointer.provider.parse::<Provider>().ok()?,
        event_id: EventId::parse(&pointer.event_id).ok()?,
    })
}

fn millis_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1_000.0
}

fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod tests;
