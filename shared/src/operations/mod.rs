//! The replay use cases: what an operator does from a console test event, and what the schedule
//! runs every five minutes. One JSON action in, one JSON summary out.
//!
//! - [`redrive`]: drain the DLQ back to the events queue.
//! - [`targeted`]: re-enqueue chosen events by tenant and ids, from their records alone.
//! - [`reconcile`]: re-enqueue events stuck in `received` / `enqueued`, `processing` past their
//!   lease, or `failed` past their longest backoff.
//! - [`list`]: a tenant's dead, failed or stuck events, newest first, page by page.
//! - [`health`]: six checks over a window → HEALTHY / DEGRADED / CRITICAL, with latencies.
//! - [`discard`]: resolve dead events without processing them.
//!
//! Every action that changes anything takes `dry_run` (change nothing, say what would change)
//! and a `limit`, and records its `note` on each event it touches. The record is the source of
//! truth: a re-enqueue first moves the record back to `enqueued` (conditioned on the status the
//! operator's run saw), then sends a pointer carrying the original correlation ids. If the send
//! fails, the record waits in `enqueued` and reconcile sends it later; duplicates are harmless
//! because processing is idempotent.

pub mod discard;
pub mod erase;
pub mod health;
pub mod list;
pub mod reconcile;
pub mod redrive;
pub mod targeted;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::{
    clock::Clock,
    env::{Env, EnvError},
    ids::{EventId, TenantId},
    message::QueueMessage,
    metrics::{self, MetricLine, MetricSink},
    ports::{DeadLetterQueue, EventQueue, OperationsStore, QueueError, StoreError, TenantNames},
    provider::Provider,
    record::{EventKey, EventRecord},
    retry::RetrySchedule,
};

/// The replay function's knobs.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// How long discarded records are kept (DynamoDB TTL): the processed records' retention.
    pub retention: Duration,
    /// Reconcile's default threshold: an event pending longer than this is stuck.
    pub stuck_after: Duration,
    /// The processor's retry schedule: its length is the attempts an event gets (a
    /// `processing` event whose attempts are spent is dead-lettered, not re-enqueued), its
    /// longest delay how long a `failed` event may rightly wait for its message.
    pub schedule: RetrySchedule,
    /// The processor's lease: a `failed` event's message may be in flight this long too.
    pub lease: Duration,
    /// How long a redrive hides the DLQ messages it received; longer than the function runs.
    pub hold: Duration,
    /// The `limit` when an action gives none.
    pub default_limit: u32,
    /// The largest `limit` an action may ask for.
    pub max_limit: u32,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            retention: crate::record::DEFAULT_RETENTION,
            stuck_after: Duration::from_secs(15 * 60),
            schedule: RetrySchedule::default(),
            lease: crate::env::DEFAULT_LEASE,
            hold: Duration::from_secs(300),
            default_limit: 10,
            max_limit: 1_000,
        }
    }
}

impl ReplaySettings {
    /// The settings the replay function is deployed with (`RETRY_SCHEDULE`, `RETENTION_DAYS`,
    /// `STUCK_AFTER_SECS`, `LEASE_SECS`): one reading for the Lambda and `hookctl replay`, so
    /// both act alike.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, EnvError> {
        let defaults = Self::default();
        Ok(Self {
            retention: env.retention()?,
            stuck_after: Duration::from_secs(env.parsed_within(
                "STUCK_AFTER_SECS",
                defaults.stuck_after.as_secs(),
                120..=86_400,
            )?),
            schedule: env.retry_schedule()?,
            lease: env.lease()?,
            ..defaults
        })
    }

    /// How long a `failed` event may wait for its message before reconcile calls it stuck:
    /// the schedule's longest delay and a lease beyond `stuck_after`.
    pub fn failed_stuck_after(&self, stuck_after: Duration) -> Duration {
        stuck_after
            .saturating_add(self.schedule.longest_delay())
            .saturating_add(self.lease)
    }
}

/// One operator action, as pasted into the console: `{"action": "redrive", ...}`. Unknown
/// fields are refused, so a misspelt `dry_run` never runs a real replay.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Redrive(redrive::RedriveArgs),
    Replay(targeted::ReplayArgs),
    Reconcile(reconcile::ReconcileArgs),
    List(list::ListArgs),
    Health(health::HealthArgs),
    Discard(discard::DiscardArgs),
    Erase(erase::EraseArgs),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redrive(_) => "redrive",
            Self::Replay(_) => "replay",
            Self::Reconcile(_) => "reconcile",
            Self::List(_) => "list",
            Self::Health(_) => "health",
            Self::Discard(_) => "discard",
            Self::Erase(_) => "erase",
        }
    }
}

/// Why an action did not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OperationError {
    /// The operator's input is wrong: answered as `{"error": ...}`, nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The operations over their ports.
#[derive(Debug)]
pub struct Operations<S, Q, D, T, C> {
    pub store: S,
    pub queue: Q,
    pub dead_letters: D,
    pub tenants: T,
    pub clock: C,
    pub settings: ReplaySettings,
    pub metrics: std::sync::Arc<dyn MetricSink>,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub fn new(store: S, queue: Q, dead_letters: D, tenants: T, clock: C) -> Self {
        Self {
            store,
            queue,
            dead_letters,
            tenants,
            clock,
            settings: ReplaySettings::default(),
            metrics: metrics::stdout(),
        }
    }

    pub fn with_settings(mut self, settings: ReplaySettings) -> Self {
        self.settings = settings;
        self
    }

    /// Where metric lines go (stdout, where CloudWatch reads EMF, unless a test captures them).
    pub fn with_metrics(mut self, sink: std::sync::Arc<dyn MetricSink>) -> Self {
        self.metrics = sink;
        self
    }

    /// Run one action; its JSON summary.
    pub async fn run(&self, action: Action) -> Result<Value, OperationError> {
        let summary = match action {
            Action::Redrive(args) => to_json(self.redrive(args).await?),
            Action::Replay(args) => to_json(self.replay(args).await?),
            Action::Reconcile(args) => to_json(self.reconcile(args).await?),
            Action::List(args) => to_json(self.list(args).await?),
            Action::Health(args) => to_json(self.health(args).await?),
            Action::Discard(args) => to_json(self.discard(args).await?),
            Action::Erase(args) => to_json(self.erase(args).await?),
        };
        Ok(summary)
    }

    /// Parse and run a console event; bad input is an `{"error": ...}` summary, not a failure.
    pub async fn run_json(&self, event: Value) -> Result<Value, OperationError> {
        let action: Action = match serde_json::from_value(event) {
            Ok(action) => action,
            Err(e) => return Ok(invalid_input(&e.to_string())),
        };
        match self.run(action).await {
            Err(OperationError::Invalid(problem)) => Ok(invalid_input(&problem)),
            other => other,
        }
    }

    fn limit(&self, asked: Option<u32>) -> Result<u32, OperationError> {
        let limit = asked.unwrap_or(self.settings.default_limit);
        if limit == 0 || limit > self.settings.max_limit {
            return Err(OperationError::Invalid(format!(
                "limit must be between 1 and {}",
                self.settings.max_limit
            )));
        }
        Ok(limit)
    }

    /// Send the pointer for a re-enqueued record: its original correlation ids, its replay count.
    async fn send_pointer(&self, record: &EventRecord) -> Result<(), QueueError> {
        let mut message = QueueMessage::new(&record.key, &record.correlation);
        message.replay_count = record.replay_count;
        self.queue.send(&message).await
    }

    /// One count for one event an action re-enqueued.
    fn metric(&self, name: &'static str, key: &EventKey) {
        let line = MetricLine::new(self.clock.now())
            .dimension(metrics::FUNCTION, metrics::REPLAY)
            .dimension(metrics::PROVIDER, key.provider.as_str())
            .count(name)
            .property(metrics::TENANT, key.tenant.as_str())
            .property(metrics::EVENT_ID, key.event_id.as_str());
        self.metrics.emit(&line);
    }
}

fn to_json(summary: impl Serialize) -> Value {
    serde_json::to_value(summary).unwrap_or_else(|e| invalid_input(&e.to_string()))
}

fn invalid_input(problem: &str) -> Value {
    serde_json::json!({ "error": problem })
}

/// The span of the work on one event: its lines carry tenant, provider and event id.
pub(crate) fn event_span(key: &EventKey) -> tracing::Span {
    tracing::info_span!(
        "event",
        tenant = %key.tenant,
        provider = %key.provider,
        event_id = %key.event_id
    )
}

/// `tenant/provider/event_id`: how summaries name an event.
pub fn event_ref(key: &EventKey) -> String {
    format!("{}/{}/{}", key.tenant, key.provider, key.event_id)
}

pub(crate) fn parse_tenant(raw: &str) -> Result<TenantId, OperationError> {
    TenantId::parse(raw).map_err(|e| OperationError::Invalid(format!("tenant: {e}")))
}

pub(crate) fn parse_provider(raw: &str) -> Result<Provider, OperationError> {
    raw.parse()
        .map_err(|_| OperationError::Invalid(format!("provider: unknown provider `{raw}`")))
}

/// The keys of `ids` for one tenant and provider, refusing more than `limit`.
pub(crate) fn keys(
    tenant: &str,
    provider: &str,
    ids: &[String],
    limit: u32,
) -> Result<Vec<EventKey>, OperationError> {
    let tenant = parse_tenant(tenant)?;
    let provider = parse_provider(provider)?;
    if ids.is_empty() {
        return Err(OperationError::Invalid(
            "ids: name at least one event".into(),
        ));
    }
    if ids.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        return Err(OperationError::Invalid(format!(
            "{} ids exceed the limit of {limit}",
            ids.len()
        )));
    }
    ids.iter()
        .map(|id| {
            Ok(EventKey {
                tenant: tenant.clone(),
                provider,
                event_id: EventId::parse(id)
                    .map_err(|e| OperationError::Invalid(format!("ids: {e}")))?,
            })
        })
        .collect()
}

/// The note to record: the operator's, or what the action is when they gave none.
pub(crate) fn note_or(note: Option<&str>, default: &str) -> String {
    note.map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(default)
        .chars()
        .take(500)
        .collect()
}

/// One event an action left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// A page token: the last item's status time and key, opaque to the operator. It is checked
/// against the tenant asking, so a token never reads another tenant's events.
pub(crate) fn encode_page_token(status_at_millis: i64, pk: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{status_at_millis}.{pk}"))
}

pub(crate) fn decode_page_token(token: &str, tenant: &TenantId) -> Option<(i64, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (at, pk) = text.split_once('.')?;
    let at = at.parse().ok()?;
    pk.starts_with(&format!("{tenant}#"))
        .then(|| (at, pk.to_owned()))
}

/// Whether a `processing` event's lease still holds at `now`.
pub(crate) fn lease_live(lease_until: Option<SystemTime>, now: SystemTime) -> bool {
    lease_until.is_some_and(|until| until >= now)
}
