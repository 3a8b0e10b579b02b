//! Fault injection at the port boundary, for gameday tests: [`Faulty`] wraps any adapter and,
//! per operation, fails, times out, slows down, or performs the call and then loses its
//! response, as a [`FaultPlan`] says. The plan is shared, so a test switches faults on and off
//! between calls, and counts what was injected. Decisions at a rate are a hash of the seed, the
//! operation and its call number: a failing run fails the same way again.
//!
//! Operation names are `Port.method` (`EventStore.put_if_absent`, `EventQueue.send`); a rule
//! names one, a port (`EventStore.*`), or every call (`*`).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    ids::{EventId, TenantId},
    message::QueueMessage,
    ports::{
        Commit, ContentClaim, DeadLetter, DeadLetterQueue, Erased, Erasure, ErasureAudit,
        EventErasure, EventHistory, EventPage, EventProcessing, EventQueue, EventRecovery,
        EventStore, EventTimeline, Failure, OperatorMark, PendingEvent, PendingEvents, PutOutcome,
        QueueError, Requeue, RetryQueue, StoreError, TenantDirectory, TenantNames,
    },
    projection::ProjectionWrite,
    provider::Provider,
    record::{EventKey, EventRecord, EventStatus},
    tenant::ProviderConfig,
};

/// What goes wrong with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before anything happened (an outage, throttling).
    Fail,
    /// No answer in time; nothing happened.
    Timeout,
    /// Answered, late (tokio's clock: tests pause it instead of sleeping).
    Slow(Duration),
    /// Never answers: the caller is killed (its future dropped) at this point, as a Lambda
    /// that hits its timeout is.
    Hang,
    /// Done, but the answer never arrived: the caller sees an error for a call that took effect.
    LoseResponse,
}

/// When a rule applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    Always,
    /// The next `n` matching calls.
    Next(u32),
    /// This fraction of matching calls (0.0 to 1.0), decided by the plan's seed.
    Rate(f64),
}

#[derive(Debug, Clone)]
struct Rule {
    operation: String,
    fault: Fault,
    when: When,
}

impl Rule {
    fn matches(&self, operation: &str) -> bool {
        self.operation == "*"
            || self.operation == operation
            || self
                .operation
                .strip_suffix('*')
                .is_some_and(|port| operation.starts_with(port))
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: HashMap<&'static str, u64>,
    injected: HashMap<&'static str, u64>,
}

/// The faults to inject, shared by every wrapped adapter of a test.
#[derive(Debug, Default)]
pub struct FaultPlan {
    seed: u64,
    state: Mutex<State>,
}

impl FaultPlan {
    /// A plan with no faults; `seed` decides which calls a [`When::Rate`] hits.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            state: Mutex::default(),
        })
    }

    /// Inject `fault` into calls of `operation` (`Port.method`, `Port.*` or `*`) `when` it says.
    pub fn inject(&self, operation: &str, fault: Fault, when: When) {
        self.state().rules.push(Rule {
            operation: operation.to_owned(),
            fault,
            when,
        });
    }

    /// Remove every rule (the outage is over); the counts stay.
    pub fn clear(&self) {
        self.state().rules.clear();
    }

    /// How many faults were injected into `operation` (or into every call, for `*`).
    pub fn injected(&self, operation: &str) -> u64 {
        let state = self.state();
        match operation {
            "*" => state.injected.values().sum(),
            _ => state.injected.get(operation).copied().unwrap_or(0),
        }
    }

    /// How many calls reached `operation`, faulty or not.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state().calls.get(operation).copied().unwrap_or(0)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    /// The fault for this call of `operation`, if any; counts the call.
    fn decide(&self, operation: &'static str) -> Option<Fault> {
        let mut state = self.state();
        let n = {
            let calls = state.calls.entry(operation).or_default();
            *calls += 1;
            *calls
        };
        let seed = self.seed;
        let fault = state.rules.iter_mut().enumerate().find_map(|(i, rule)| {
            if !rule.matches(operation) {
                return None;
            }
            match &mut rule.when {
                When::Always => Some(rule.fault),
                When::Next(0) => None,
                When::Next(left) => {
                    *left -= 1;
                    Some(rule.fault)
                }
                When::Rate(rate) => (chance((seed, i, operation, n)) < *rate).then_some(rule.fault),
            }
        })?;
        *state.injected.entry(operation).or_default() += 1;
        Some(fault)
    }
}

/// A deterministic number in `[0, 1)` for `key`: the same key draws the same number in every
/// run. The fault plan keys it by seed, rule, operation and call number, so two rules at 2 %
/// each hit about 4 % of calls.
pub fn chance(key: impl Hash) -> f64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    // The top 53 bits: exactly representable.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// An error a port can return for an injected fault.
pub trait InjectedError {
    fn injected(operation: &str, what: &str) -> Self;
}

impl InjectedError for StoreError {
    fn injected(operation: &str, what: &str) -> Self {
        Self::Unavailable(format!("{operation}: injected {what}"))
    }
}

impl InjectedError for QueueError {
    fn injected(operation: &str, what: &str) -> Self {
        Self(format!("{operation}: injected {what}"))
    }
}

/// An adapter whose calls go through a [`FaultPlan`] first. The adapter is shared, so the
/// ingress, the processor and the operations of one test see the same records.
#[derive(Debug)]
pub struct Faulty<P> {
    pub inner: Arc<P>,
    pub plan: Arc<FaultPlan>,
}

impl<P> Clone for Faulty<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            plan: self.plan.clone(),
        }
    }
}

impl<P> Faulty<P> {
    pub fn new(inner: Arc<P>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }

    async fn call<T, E, F>(&self, operation: &'static str, call: F) -> Result<T, E>
    where
        E: InjectedError,
        F: Future<Output = Result<T, E>>,
    {
        match self.plan.decide(operation) {
            None => call.await,
            Some(Fault::Fail) => Err(E::injected(operation, "failure")),
            Some(Fault::Timeout) => Err(E::injected(operation, "timeout")),
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                call.await
            }
            Some(Fault::Hang) => std::future::pending().await,
            Some(Fault::LoseResponse) => {
                // Whatever the call did stays done; its answer is lost on the way back.
                let _ = call.await;
                Err(E::injected(operation, "lost response"))
            }
        }
    }
}

#[async_trait]
impl<P: EventStore> EventStore for Faulty<P> {
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError> {
        self.call("EventStore.put_if_absent", self.inner.put_if_absent(record))
            .await
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.call("EventStore.get", self.inner.get(key)).await
    }

    async fn claim_content(
        &self,
        key: &EventKey,
        content: &str,
        replacing: Option<&EventId>,
        expires_at: SystemTime,
    ) -> Result<ContentClaim, StoreError> {
        self.call(
            "EventStore.claim_content",
            self.inner
                .claim_content(key, content, replacing, expires_at),
        )
        .await
    }
}

#[async_trait]
impl<P: EventQueue> EventQueue for Faulty<P> {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.call("EventQueue.send", self.inner.send(message)).await
    }
}

#[async_trait]
impl<P: TenantDirectory> TenantDirectory for Faulty<P> {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError> {
        self.call(
            "TenantDirectory.provider_config",
            self.inner.provider_config(tenant, provider),
        )
        .await
    }
}

#[async_trait]
impl<P: EventProcessing> EventProcessing for Faulty<P> {
    async fn commit(
        &self,
        key: &EventKey,
        attempt: u32,
        writes: &[ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError> {
        self.call(
            "EventProcessing.commit",
            self.inner
                .commit(key, attempt, writes, outcome, now, expires_at),
        )
        .await
    }

    async fn release_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        self.call(
            "EventProcessing.release_payload",
            self.inner.release_payload(record),
        )
        .await
    }

    async fn keep_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        self.call(
            "EventProcessing.keep_payload",
            self.inner.keep_payload(record),
        )
        .await
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        attempt: u32,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.call(
            "EventProcessing.record_failure",
            self.inner.record_failure(key, attempt, failure, now),
        )
        .await
    }
}

#[async_trait]
impl<P: RetryQueue> RetryQueue for Faulty<P> {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.call(
            "RetryQueue.retry_after",
            self.inner.retry_after(receipt_handle, delay),
        )
        .await
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.call("RetryQueue.dead_letter", self.inner.dead_letter(body))
            .await
    }
}

#[async_trait]
impl<P: EventRecovery> EventRecovery for Faulty<P> {
    async fn mark_requeued(
        &self,
        key: &EventKey,
        from: EventStatus,
        how: Requeue,
        mark: &OperatorMark,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.call(
            "EventRecovery.mark_requeued",
            self.inner.mark_requeued(key, from, how, mark),
        )
        .await
    }

    async fn mark_dead(
        &self,
        key: &EventKey,
        reason: &str,
        mark: &OperatorMark,
    ) -> Result<bool, StoreError> {
        self.call(
            "EventRecovery.mark_dead",
            self.inner.mark_dead(key, reason, mark),
        )
        .await
    }

    async fn mark_discarded(
        &self,
        key: &EventKey,
        mark: &OperatorMark,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.call(
            "EventRecovery.mark_discarded",
            self.inner.mark_discarded(key, mark, expires_at),
        )
        .await
    }
}

#[async_trait]
impl<P: PendingEvents> PendingEvents for Faulty<P> {
    async fn pending_between(
        &self,
        status: EventStatus,
        from: SystemTime,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        self.call(
            "PendingEvents.pending_between",
            self.inner.pending_between(status, from, before, limit),
        )
        .await
    }
}

#[async_trait]
impl<P: EventHistory> EventHistory for Faulty<P> {
    async fn page_by_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        limit: u32,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        self.call(
            "EventHistory.page_by_status",
            self.inner.page_by_status(tenant, status, limit, after),
        )
        .await
    }

    async fn in_status_since(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        since: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        self.call(
            "EventHistory.in_status_since",
            self.inner.in_status_since(tenant, status, since, limit),
        )
        .await
    }

    async fn in_status_before(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        self.call(
            "EventHistory.in_status_before",
            self.inner.in_status_before(tenant, status, before, limit),
        )
        .await
    }
}

#[async_trait]
impl<P: EventErasure> EventErasure for Faulty<P> {
    async fn erase_payload(&self, key: &EventKey, erasure: &Erasure) -> Result<Erased, StoreError> {
        self.call(
            "EventErasure.erase_payload",
            self.inner.erase_payload(key, erasure),
        )
        .await
    }

    async fn record_erasure(&self, audit: &ErasureAudit) -> Result<(), StoreError> {
        self.call(
            "EventErasure.record_erasure",
            self.inner.record_erasure(audit),
        )
        .await
    }
}

#[async_trait]
impl<P: TenantNames> TenantNames for Faulty<P> {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        self.call("TenantNames.tenant_ids", self.inner.tenant_ids())
            .await
    }
}

#[async_trait]
impl<P: DeadLetterQueue> DeadLetterQueue for Faulty<P> {
    async fn receive(&self, max: u32, hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        self.call("DeadLetterQueue.receive", self.inner.receive(max, hold))
            .await
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.call("DeadLetterQueue.delete", self.inner.delete(receipt_handle))
            .await
    }

    async fn send(&self, body: &str) -> Result<(), QueueError> {
        self.call("DeadLetterQueue.send", self.inner.send(body))
            .await
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.call(
            "DeadLetterQueue.release",
            self.inner.release(receipt_handle),
        )
        .await
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        self.call("DeadLetterQueue.depth", self.inner.depth()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_an_operation_a_port_or_everything() {
        let rule = |operation: &str| Rule {
            operation: operation.into(),
            fault: Fault::Fail,
            when: When::Always,
        };
        assert!(rule("EventQueue.send").matches("EventQueue.send"));
        assert!(rule("EventQueue.*").matches("EventQueue.send"));
        assert!(rule("*").matches("EventStore.get"));
        assert!(!rule("EventStore.*").matches("EventQueue.send"));
        assert!(!rule("EventStore.get").matches("EventStore.get_all"));
    }

    #[test]
    fn a_rate_hits_about_that_share_of_calls_and_the_same_ones_every_run() {
        let run = |seed| {
            let plan = FaultPlan::new(seed);
            plan.inject("EventQueue.send", Fault::Fail, When::Rate(0.05));
            (0..10_000)
                .map(|_| plan.decide("EventQueue.send").is_some())
                .collect::<Vec<_>>()
        };
        let hits = run(7).iter().filter(|hit| **hit).count();
        assert!((400..600).contains(&hits), "{hits} of 10,000");
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn next_n_injects_n_times_then_stops() {
        let plan = FaultPlan::new(1);
        plan.inject("EventStore.*", Fault::Timeout, When::Next(2));
        let faults: Vec<_> = (0..4).map(|_| plan.decide("EventStore.get")).collect();
        assert_eq!(
            faults,
            [Some(Fault::Timeout), Some(Fault::Timeout), None, None]
        );
        assert_eq!(plan.injected("EventStore.get"), 2);
        assert_eq!(plan.calls("EventStore.get"), 4);
    }
}
