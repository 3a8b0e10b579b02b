//! Outbound webhooks: the tenant's own events, delivered to its partners' endpoints with the
//! inbound side's promises — stored before acknowledged, never lost, every attempt logged.
//!
//! - [`publish`]: store a message once (same id and bytes: a duplicate; other bytes: a
//!   conflict), then fan out one delivery per matching endpoint, crash-safe.
//! - [`dispatch`]: the dispatcher, one attempt per queue message: Standard Webhooks
//!   [`signing`], the HTTP [`transport`] behind the [`ssrf`] guard, the retry schedule, endpoint
//!   health (circuit breaker, automatic disabling), dead-lettering; and test events.
//! - [`recovery`]: reconcile (unfinished fan-outs, lost pointers, held deliveries), the
//!   deliveries DLQ redrive, resend and recover.
//! - [`relay`]: inbound events published to partners, from the processor.
//! - [`admin`]: adding and changing endpoints; [`actions`]: recovery as console events.
//! - [`catalog`]: the tenant's event types, with the JSON Schema a publish is checked against.
//! - [`message_log`]: the tenant's messages and how their deliveries stand, for the portal.
//! - [`rate`]: an endpoint's rate limit as reserved slots.
//! - [`lanes`]: slow endpoints' deliveries on a lane of their own.
//! - [`endpoint`], [`filter`], [`delivery`], [`ids`]: the records; [`ports`]: their storage.

pub mod actions;
pub mod admin;
pub mod catalog;
pub mod delivery;
pub mod dispatch;
pub mod endpoint;
pub mod filter;
pub mod ids;
pub mod lanes;
pub mod message_log;
pub mod policies;
pub mod ports;
pub mod publish;
pub mod rate;
pub mod recovery;
pub mod relay;
pub mod signing;
pub mod ssrf;
pub mod transport;

use std::{sync::Arc, time::Duration};

use crate::{
    clock::Clock,
    metrics::{self, MetricSink},
    retry::RetrySchedule,
};

pub use publish::{PublishError, Published};

/// Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_DELIVERY_SCHEDULE: [u64; 8] = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// The delivery schedule the deployment uses unless a tenant sets its own.
pub fn default_schedule() -> RetrySchedule {
    // The constant is valid: non-empty, every delay within SQS's 12 h.
    RetrySchedule::new(
        DEFAULT_DELIVERY_SCHEDULE
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
    )
    .unwrap_or_default()
}

/// A tenant's own delivery policy, overriding the deployment's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantPolicy {
    pub schedule: Option<RetrySchedule>,
    /// How long an endpoint may fail continuously before it is disabled.
    pub disable_after: Option<Duration>,
    /// Relay every processed inbound event to the partners as `{provider}.{type}` (e.g.
    /// `stripe.invoice.paid`), with the provider's payload.
    pub relay_inbound: bool,
    /// Refuse to publish an event type the tenant's catalog does not hold (default: accept).
    pub registered_types_only: bool,
}

/// The outbound side's knobs.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub schedule: RetrySchedule,
    /// Each attempt's limit, connection to the last byte read. At most
    /// [`MAX_ATTEMPT_TIMEOUT`]: the attempt and its writes fit the function's timeout.
    pub attempt_timeout: Duration,
    /// How long an attempt's claim holds: the attempt and its [`ATTEMPT_MARGIN`]
    /// ([`Self::lease_for`]), so a live dispatcher keeps it, and no longer, so a crashed one's
    /// delivery is free again soon.
    pub lease: Duration,
    /// How long delivered records, attempts and messages are kept.
    pub retention: Duration,
    /// Failures in a row that open the circuit breaker.
    pub pause_after_failures: u32,
    /// The first pause; each further failure while paused doubles it, up to `max_pause`.
    pub pause: Duration,
    pub max_pause: Duration,
    /// How long an endpoint may fail continuously before it is disabled.
    pub disable_after: Duration,
    /// Where deliveries may go.
    pub egress: ssrf::EgressPolicy,
    /// How many deliveries of a batch go out at once: a slow endpoint holds one slot only.
    pub concurrency: usize,
    /// How long a rotated-out secret keeps signing.
    pub secret_overlap: Duration,
    /// How many endpoints a tenant may have (`MaxEndpointsPerTenant`): what a partner can
    /// create is bounded, and so is a publish's fan-out.
    pub max_endpoints: usize,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            schedule: default_schedule(),
            attempt_timeout: Duration::from_secs(15),
            lease: Self::lease_for(Duration::from_secs(15)),
            retention: crate::record::DEFAULT_RETENTION,
            pause_after_failures: 5,
            pause: Duration::from_secs(60),
            max_pause: Duration::from_secs(3_600),
            disable_after: Duration::from_secs(5 * 24 * 3_600),
            egress: ssrf::EgressPolicy::PUBLIC,
            concurrency: 10,
            secret_overlap: endpoint::DEFAULT_SECRET_OVERLAP,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
        }
    }
}

/// How many endpoints a tenant may have unless the stack says otherwise.
pub const DEFAULT_MAX_ENDPOINTS: usize = 100;

/// The longest attempt timeout: with [`ATTEMPT_MARGIN`], the dispatcher's 60 s function timeout.
pub const MAX_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(45);

/// What an attempt needs besides the partner's answer: reading, signing, and the finishing
/// write with its tries in place.
pub const ATTEMPT_MARGIN: Duration = Duration::from_secs(15);

impl OutboundSettings {
    /// The lease of attempts limited to `attempt_timeout`.
    pub const fn lease_for(attempt_timeout: Duration) -> Duration {
        attempt_timeout.saturating_add(ATTEMPT_MARGIN)
    }

    /// The schedule and disabling delay for `tenant`'s policy.
    pub fn for_tenant(&self, policy: Option<&TenantPolicy>) -> (RetrySchedule, Duration) {
        let policy = policy.cloned().unwrap_or_default();
        (
            policy.schedule.unwrap_or_else(|| self.schedule.clone()),
            policy.disable_after.unwrap_or(self.disable_after),
        )
    }

    /// How long the circuit stays open when it opens after `pauses` others in the same run
    /// of failures: doubled per pause, not per failure, so a burst of failures that were in
    /// flight together counts once.
    pub fn pause_for(&self, pauses: u32) -> Duration {
        self.pause
            .saturating_mul(1 << pauses.min(16))
            .min(self.max_pause)
    }
}

/// The publishing, fan-out and recovery use cases over their ports.
#[derive(Debug)]
pub struct Outbound<S, Q, C> {
    pub store: S,
    pub queue: Q,
    pub clock: C,
    pub settings: OutboundSettings,
    pub metrics: Arc<dyn MetricSink>,
    /// Name resolution for the SSRF guard's checks at registration.
    pub resolver: Arc<dyn ssrf::Resolver>,
    /// Tenants' policies, read once per lifetime.
    pub policies: policies::TenantPolicies,
    /// Tenants' event types, read once per lifetime.
    pub known_types: catalog::KnownTypes,
}

impl<S, Q, C: Clock> Outbound<S, Q, C> {
    pub fn new(store: S, queue: Q, clock: C, settings: OutboundSettings) -> Self {
        Self {
            store,
            queue,
            clock,
            settings,
            metrics: metrics::stdout(),
            resolver: Arc::new(ssrf::SystemResolver),
            policies: policies::TenantPolicies::default(),
            known_types: catalog::KnownTypes::default(),
        }
    }

    /// Resolve endpoint hosts through `resolver` (tests point names anywhere).
    pub fn with_resolver(mut self, resolver: Arc<dyn ssrf::Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Send metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: Arc<dyn MetricSink>) -> Self {
        self.metrics = sink;
        self
    }
}

#[cfg(test)]
mod tests;
