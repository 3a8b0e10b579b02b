//! The processor use case: exactly-once effects over at-least-once delivery.
//!
//! For each queue message, on its own: read the record (consistent); processed, discarded or
//! dead → nothing to do; missing → its ingress may still be writing it (the pointer is sent
//! first), so look again later, and drop the pointer once no ingress can be. Refuse it if its
//! verification does not permit processing; run the provider's projector, which returns its
//! writes; commit the writes and the `processed` mark, on condition that the event is still
//! unfinished; then relay it to the tenant's partners if it asks (a processed event that comes
//! back is relayed again: the queue is the relay's outbox).
//!
//! There is no claim and no lease: every write is idempotent (projection writes are
//! conditioned on the order of what their items hold, relayed messages on their id, the marks
//! on the event being unfinished), so two deliveries of one event racing each other change
//! nothing twice. The attempt is counted from the record's failures and the message's
//! receives, whichever says more, and written with the mark that ends the attempt.
//!
//! When it gives up on an event, the processor itself dead-letters it: first the copy on the
//! DLQ, then the record `dead`, then the message deleted. So a `dead` record always has its DLQ
//! copy (the alarm and `redrive` see it), and a failure between the steps leaves the message to
//! come back and finish the job. It gives up on a permanent error (a payload that breaks the
//! provider's schema, an unknown type configured as fatal, a write the store refuses), on the
//! event's last attempt, and on the message's last receive: whichever comes first, so attempts
//! lost to reconcile's fresh messages or to receives that could not claim never leave an event
//! dead without its copy, nor a message redriven with its record still `failed`. Any other
//! failure records the error, delays the message by the retry schedule and reports it failed.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tracing::{Instrument, error, info, info_span, warn};

use crate::{
    clock::Clock,
    message::QueueMessage,
    metrics::{self, MetricLine, MetricSink},
    ports::{Commit, Failure, ProcessorStore, RetryQueue, StoreError},
    projection::ProjectionWrite,
    projectors::{self, ProjectorOutcome, UnknownTypePolicy},
    provider::Provider,
    record::{ERASED_REASON, EventKey, EventRecord, EventStatus},
    retry::{RetrySchedule, within_sqs_limit},
};

/// The processor's knobs.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// How long a received message stays hidden (the queue's visibility timeout): longer than
    /// the function's timeout. Reconcile also reads it as how long a `processing` record of
    /// the old layout may be held.
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
            lease: crate::env::DEFAULT_LEASE,
            schedule: RetrySchedule::default(),
            unknown_types: UnknownTypePolicy::Ignore,
            retention: crate::record::DEFAULT_RETENTION,
            concurrency: 4,
        }
    }
}

/// How long after its sending a pointer may still find no record because its ingress is
/// still writing it: Lambda's longest timeout. After that, a pointer without a record names a
/// delivery that was never acknowledged (the provider got a 5xx and retries), and is dropped.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(15 * 60);

pub use crate::batch::{Message, MissingMessageId, messages};

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Effects committed now.
    Processed,
    /// Committed with no effects: an unknown type under the `ignore` policy.
    Ignored,
    /// Nothing to do: committed before, dead waiting for an operator, or finished by another.
    Skipped(&'static str),
    /// Given up: copied to the DLQ and the record marked dead (a permanent error, the last
    /// attempt, or the message's last receive).
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

/// Jitter fixed at the middle of its range, so delays equal the schedule: for tests and
/// benchmarks.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJitter;

#[cfg(any(test, feature = "test-util"))]
impl Jitter for NoJitter {
    fn sample(&self) -> f64 {
        0.5
    }
}

/// Relays an inbound event to the tenant's partners (the outbound side) after its commit.
///
/// The events queue is the outbox: the message that brought the event is let go only once the
/// relay succeeded, so a relay that fails after the commit comes back with it, and a processed
/// event that comes back is relayed again. Publishing is idempotent (the message id comes from
/// the event's key, and the same id with the same bytes is a duplicate), so relaying twice
/// sends nothing twice. A partner never receives an event whose commit failed, and a
/// committed event's relay cannot be lost.
#[async_trait::async_trait]
pub trait Relay: Send + Sync + std::fmt::Debug {
    /// Publish `record` if its tenant relays inbound events; `Err` if that could not be done
    /// now (the attempt is retried).
    async fn relay(&self, record: &EventRecord) -> Result<(), String>;
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
    /// Relays processed events to partners, where the tenant asked for it.
    pub relay: Option<Arc<dyn Relay>>,
}

impl<S, Q, C, J> Processor<S, Q, C, J>
where
    S: ProcessorStore,
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
            relay: None,
        }
    }

    /// Relay processed events through `relay` once they are committed.
    pub fn with_relay(mut self, relay: Arc<dyn Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Send metric lines to `sink` instead of stdout (tests read them back).
    pub fn with_metrics(mut self, sink: Arc<dyn MetricSink>) -> Self {
        self.metrics = sink;
        self
    }

    /// Process a batch, a bounded number at a time, and publish its metrics in one line per
    /// provider and outcome; the ids of the messages to report failed.
    pub async fn process_batch(&self, messages: &[Message]) -> Vec<String> {
        let handled = crate::batch::run(messages, self.settings.concurrency, |message| {
            self.handle(message)
        })
        .await;
        self.publish(handled.iter().map(|(_, (_, sample))| sample));
        handled
            .into_iter()
            .filter(|(_, (disposition, _))| disposition.is_failure())
            .map(|(message, _)| message.message_id.clone())
            .collect()
    }

    /// Process one message as a batch of one.
    pub async fn process(&self, message: &Message) -> Disposition {
        let (disposition, sample) = self.handle(message).await;
        self.publish([&sample]);
        disposition
    }

    /// Process one message and log it; its measurements go back for its batch's line. Every
    /// line of its life carries the message's span: message id, tenant, provider, event id and
    /// request ids.
    async fn handle(&self, message: &Message) -> (Disposition, Sample) {
        let started = Instant::now();
        let pointer = QueueMessage::parse(&message.body);
        let span = info_span!(
            "message",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            tenant = pointer.as_ref().map(|p| p.tenant.as_str()),
            provider = pointer.as_ref().map(|p| p.provider.as_str()),
            event_id = pointer.as_ref().map(|p| p.event_id.as_str()),
            request_id = pointer.as_ref().and_then(|p| p.request_id.as_deref()),
            client_request_id = pointer.as_ref().and_then(|p| p.client_request_id.as_deref()),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        async {
            let Some(key) = pointer.and_then(|p| p.key()) else {
                error!("queue message is not an event pointer; dead-lettering it");
                let disposition = self.dead_letter_unreadable(message).await;
                // No key, so no provider: counted all the same, so the DLQ never grows
                // unexplained.
                let sample = self.sample(None, &disposition, None, started);
                return (disposition, sample);
            };
            let (disposition, record) = self.run(message, &key).await;
            let sample = self.sample(Some(key.provider), &disposition, record.as_ref(), started);
            (disposition, sample)
        }
        .instrument(span)
        .await
    }

    async fn run(&self, message: &Message, key: &EventKey) -> (Disposition, Option<EventRecord>) {
        let record = match self.store.get(key).await {
            Ok(Some(record)) => record,
            Ok(None) => return (self.missing(message).await, None),
            Err(e) => {
                warn!(error = %e, "event store unavailable");
                return (self.retry_unclaimed(message).await, None);
            }
        };
        // This run is a span of the event's trace, its parent the ingress's span.
        if let Some(ingress) = record.correlation.trace {
            let span = tracing::Span::current();
            span.record("trace_id", ingress.trace_id());
            span.record("span_id", ingress.child().span_id());
            span.record("parent_span_id", ingress.span_id());
        }
        if record.is_erased() {
            return (self.erased(message, &record).await, Some(record));
        }
        match record.status {
            // Its relay may be what failed after the commit: relaying again is a duplicate.
            EventStatus::Processed => {
                let done = Disposition::Skipped("already processed");
                return (self.relayed(message, &record, done).await, Some(record));
            }
            EventStatus::Discarded => {
                return (
                    Disposition::Skipped("discarded by an operator"),
                    Some(record),
                );
            }
            // Its DLQ copy was sent before it was marked dead.
            EventStatus::Dead => {
                return (
                    Disposition::Skipped("dead, waiting for an operator"),
                    Some(record),
                );
            }
            _ => {}
        }
        let attempt = (record.attempts + 1).max(message.receive_count);

        if !record.verification.permits_processing() {
            warn!(
                security = true,
                verification = record.verification.as_str(),
                "stored verification does not permit processing; event dead"
            );
            let disposition = self
                .give_up(
                    message,
                    &record,
                    attempt,
                    GiveUp::Permanent("verification does not permit processing".into()),
                )
                .await;
            return (disposition, Some(record));
        }

        let (writes, outcome) = match projectors::project(
            key.provider,
            record.event_type.as_deref(),
            &record.payload,
            key,
            self.settings.unknown_types,
        ) {
            Ok(ProjectorOutcome::Writes(writes)) => (writes, "processed".to_owned()),
            Ok(ProjectorOutcome::Ignored { reason }) => (Vec::new(), format!("ignored: {reason}")),
            Err(e) => {
                let disposition = self
                    .give_up(message, &record, attempt, GiveUp::Permanent(e.to_string()))
                    .await;
                return (disposition, Some(record));
            }
        };
        let disposition = self
            .commit(message, &record, attempt, &writes, &outcome)
            .await;
        if matches!(disposition, Disposition::Processed | Disposition::Ignored) {
            return (
                self.relayed(message, &record, disposition).await,
                Some(record),
            );
        }
        (disposition, Some(record))
    }

    /// An event whose payload an operator erased: there is nothing to apply (an empty payload
    /// is not the event) nor to relay, and no retry brings it back. An unfinished one ends
    /// dead with [`ERASED_REASON`], visible to operators; it is never copied to the DLQ, where
    /// a redrive could only refuse it again.
    async fn erased(&self, message: &Message, record: &EventRecord) -> Disposition {
        if EventStatus::UNFINISHED.contains(&record.status) {
            let failure = Failure {
                error: ERASED_REASON.to_owned(),
                status: EventStatus::Dead,
                retry_exhausted: false,
            };
            let now = self.clock.now();
            if let Err(e) = self
                .store
                .record_failure(&record.key, record.attempts, &failure, now)
                .await
            {
                warn!(error = %e, "could not mark an erased event dead; retrying");
                return self.retry_after(message, Duration::ZERO).await;
            }
            warn!("the event's payload was erased; marked dead, not processed");
        }
        Disposition::Skipped("payload erased by an operator")
    }

    /// Relay a committed event where its tenant asks for it, then end as `done`. If the relay
    /// cannot be done now, the message comes back (the record stays as committed) and its
    /// next receive relays it again.
    async fn relayed(
        &self,
        message: &Message,
        record: &EventRecord,
        done: Disposition,
    ) -> Disposition {
        let Some(relay) = &self.relay else {
            return done;
        };
        match relay.relay(record).await {
            Ok(()) => done,
            Err(e) => {
                warn!(error = %e, "relaying to partners failed; the message comes back for it");
                self.retry_unclaimed(message).await
            }
        }
    }

    /// A pointer whose record is not there: its ingress may still be writing it, so look again
    /// later; once no ingress can be, it names a delivery nobody acknowledged, and goes.
    async fn missing(&self, message: &Message) -> Disposition {
        let age = message
            .sent_at
            .and_then(|sent| self.clock.now().duration_since(sent).ok());
        if age.is_some_and(|age| age >= ORPHAN_AFTER) {
            info!("no record for this pointer: its delivery was never acknowledged; dropped");
            return Disposition::Skipped("no record: never acknowledged");
        }
        info!("no record for this pointer yet");
        self.retry_unclaimed(message).await
    }

    async fn commit(
        &self,
        message: &Message,
        record: &EventRecord,
        attempt: u32,
        writes: &[ProjectionWrite],
        outcome: &str,
    ) -> Disposition {
        let key = &record.key;
        let now = self.clock.now();
        let expires_at = now.checked_add(self.settings.retention);
        match self
            .store
            .commit(key, attempt, writes, outcome, now, expires_at)
            .await
        {
            Ok(Commit::Committed { applied, skipped }) => {
                info!(applied, skipped, attempt, "processed");
                // A payload kept outside was written to expire with its event, unless a failed
                // attempt kept it (`note_failure`).
                if record.payload_location.is_some()
                    && record.attempts > 0
                    && let Err(e) = self.store.release_payload(record).await
                {
                    warn!(error = %e, "could not release the payload kept outside the record");
                }
                if writes.is_empty() {
                    Disposition::Ignored
                } else {
                    Disposition::Processed
                }
            }
            Ok(Commit::Finished) => {
                info!("finished meanwhile by another delivery or an operator");
                Disposition::Skipped("finished meanwhile")
            }
            Err(e) if e.is_permanent() => {
                self.give_up(message, record, attempt, GiveUp::Permanent(e.to_string()))
                    .await
            }
            Err(e) => {
                self.transient(message, record, attempt, &e.to_string())
                    .await
            }
        }
    }

    /// A failure that may pass: record it, and let the queue try again after the schedule's
    /// delay, unless this was the event's last attempt or the message's last receive.
    async fn transient(
        &self,
        message: &Message,
        record: &EventRecord,
        attempt: u32,
        error: &str,
    ) -> Disposition {
        if self.settings.schedule.is_last(attempt) || self.is_last_receive(message) {
            return self
                .give_up(
                    message,
                    record,
                    attempt,
                    GiveUp::Exhausted(error.to_owned()),
                )
                .await;
        }
        let failure = Failure {
            error: error.to_owned(),
            status: EventStatus::Failed,
            retry_exhausted: false,
        };
        if let Err(e) = self.note_failure(record, attempt, &failure).await {
            warn!(error = %e, "could not record the failure");
        }
        let delay = self
            .settings
            .schedule
            .delay_for(attempt, &mut || self.jitter.sample());
        warn!(
            attempt,
            retry_in_secs = delay.as_secs(),
            error,
            "attempt failed; will retry"
        );
        self.retry_after(message, delay).await
    }

    /// Stop trying: the DLQ copy first, then the record `dead`, then let the message go. If the
    /// copy cannot be sent, the record stays `failed` and the message comes back (or, on its
    /// last receive, reaches the DLQ by redrive, where reconcile's watch of `failed` records
    /// finds it); if the record cannot be marked, the message comes back to finish.
    async fn give_up(
        &self,
        message: &Message,
        record: &EventRecord,
        attempt: u32,
        why: GiveUp,
    ) -> Disposition {
        let key = &record.key;
        let (error, exhausted) = match &why {
            GiveUp::Permanent(error) => (format!("permanent: {error}"), false),
            GiveUp::Exhausted(error) => (error.clone(), true),
        };
        if let Err(e) = self.queue.dead_letter(&message.body).await {
            warn!(error = %e, "could not copy the event to the DLQ; it stays failed and retries");
            let failure = Failure {
                error: format!("{error} (the DLQ copy failed: {e})"),
                status: EventStatus::Failed,
                retry_exhausted: false,
            };
            if let Err(e) = self.note_failure(record, attempt, &failure).await {
                warn!(error = %e, "could not record the failure");
            }
            return self.retry_after(message, Duration::ZERO).await;
        }
        let failure = Failure {
            error: error.clone(),
            status: EventStatus::Dead,
            retry_exhausted: exhausted,
        };
        if let Err(e) = self.note_failure(record, attempt, &failure).await {
            warn!(error = %e, "copied to the DLQ, but the record could not be marked dead; retrying");
            return self.retry_after(message, Duration::ZERO).await;
        }
        if exhausted {
            error!(
                attempt,
                error, "retries exhausted; event dead and on the DLQ"
            );
            // Its own line: the message's line counts it `dead_lettered`.
            let line = MetricLine::new(self.clock.now())
                .dimension(metrics::FUNCTION, metrics::PROCESSOR)
                .dimension(metrics::PROVIDER, key.provider.as_str())
                .count(metrics::RETRY_EXHAUSTED)
                .property(metrics::TENANT, key.tenant.as_str())
                .property(metrics::EVENT_ID, key.event_id.as_str());
            self.metrics.emit(&line);
        } else {
            error!(error, "permanent failure; event dead and on the DLQ");
        }
        Disposition::DeadLettered
    }

    /// Mark a failed attempt, keeping a payload stored outside the record from expiring first:
    /// a failed or dead event is never left without its payload.
    async fn note_failure(
        &self,
        record: &EventRecord,
        attempt: u32,
        failure: &Failure,
    ) -> Result<(), StoreError> {
        if record.payload_location.is_some() {
            self.store.keep_payload(record).await?;
        }
        self.store
            .record_failure(&record.key, attempt, failure, self.clock.now())
            .await
    }

    /// Whether the queue will not deliver this message again: its receives equal the
    /// schedule's attempts, which is the queue's `maxReceiveCount`.
    fn is_last_receive(&self, message: &Message) -> bool {
        message.receives_left(self.settings.schedule.max_attempts()) == 0
    }

    /// Before any claim: retry on the schedule for the message's receive count. On its last
    /// receive SQS redrives it to the DLQ, and the record (pending or failed, if any) is in
    /// reconcile's watch.
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
        if let Some(receipt) = &message.receipt_handle
            && let Err(e) = self.queue.retry_after(receipt, delay).await
        {
            // The message still comes back, after the queue's own visibility timeout.
            warn!(error = %e, "could not set the retry delay");
        }
        Disposition::Retry
    }

    /// A message that names no event: copied to the DLQ for a human, or left to SQS's redrive.
    async fn dead_letter_unreadable(&self, message: &Message) -> Disposition {
        match self.queue.dead_letter(&message.body).await {
            Ok(()) => Disposition::DeadLettered,
            Err(e) => {
                // Left on the queue, it reaches the DLQ by redrive after its receives run out.
                warn!(error = %e, "could not dead-letter; retrying instead");
                Disposition::Retry
            }
        }
    }

    fn sample(
        &self,
        provider: Option<Provider>,
        disposition: &Disposition,
        record: Option<&EventRecord>,
        started: Instant,
    ) -> Sample {
        let end_to_end_ms = match (disposition, record) {
            (Disposition::Processed | Disposition::Ignored, Some(record)) => {
                Some(millis_between(record.received_at, self.clock.now()))
            }
            _ => None,
        };
        Sample {
            provider: provider.map_or("unknown", Provider::as_str),
            outcome: disposition.label(),
            processing_ms: millis_since(started),
            end_to_end_ms,
        }
    }

    /// One line per provider and outcome: the messages counted under function, provider and
    /// outcome, with their latencies as value arrays. Who the messages were is in their logs.
    fn publish<'a>(&self, samples: impl IntoIterator<Item = &'a Sample>) {
        let mut groups: Vec<((&str, &str), Vec<&Sample>)> = Vec::new();
        for sample in samples {
            let group = (sample.provider, sample.outcome);
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members.push(sample),
                None => groups.push((group, vec![sample])),
            }
        }
        for ((provider, outcome), members) in groups {
            for chunk in members.chunks(metrics::MAX_VALUES) {
                let line = MetricLine::new(self.clock.now())
                    .dimension(metrics::FUNCTION, metrics::PROCESSOR)
                    .dimension(metrics::PROVIDER, provider)
                    .dimension(metrics::OUTCOME, outcome)
                    .counted(outcome, chunk.len())
                    .millis_each(
                        metrics::PROCESSING_LATENCY,
                        chunk.iter().map(|s| s.processing_ms).collect(),
                    )
                    .millis_each(
                        metrics::END_TO_END_LATENCY,
                        chunk.iter().filter_map(|s| s.end_to_end_ms).collect(),
                    );
                self.metrics.emit(&line);
            }
        }
    }
}

/// One message's measurements, published with the rest of its batch.
#[derive(Debug, Clone, Copy)]
struct Sample {
    provider: &'static str,
    outcome: &'static str,
    processing_ms: f64,
    end_to_end_ms: Option<f64>,
}

/// Why the processor stops trying an event.
enum GiveUp {
    /// The same input fails the same way every time.
    Permanent(String),
    /// The last attempt, or the message's last receive, failed.
    Exhausted(String),
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
