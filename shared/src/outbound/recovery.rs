//! Putting deliveries back on their way: reconcile (scheduled, finishes what a crash or an
//! outage left), and the operators' actions — redrive the deliveries DLQ, resend a message,
//! recover an endpoint's dead deliveries since a time. Every action has a dry run that changes
//! nothing and reports what it would do; every change is conditioned on the status that was
//! read, so a delivery that moved on meanwhile is left alone.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tracing::{info, warn};

use super::{
    Outbound, PublishError,
    delivery::{Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus},
    endpoint::Endpoint,
    ids::{EndpointId, MessageId},
    ports::{DeliveryQueue, OutboundStore},
};
use crate::{
    clock::Clock,
    ids::TenantId,
    ports::{DeadLetterQueue, StoreError},
};

/// How long a pending delivery may be overdue before reconcile decides its pointer is lost:
/// past SQS's own redelivery of a message whose dispatcher died.
pub const OVERDUE_GRACE: Duration = Duration::from_secs(15 * 60);
/// How long a fan-out may run before reconcile finishes it.
pub const FAN_OUT_GRACE: Duration = Duration::from_secs(60);
/// The most pages of holding endpoints one reconcile reads looking for ready ones.
const HOLDING_PAGES: usize = 50;

/// What an operator's action did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    pub dry_run: bool,
    /// Deliveries the action applied to.
    pub matched: usize,
    /// Put back on the queue (or, in a dry run, would be).
    pub requeued: usize,
    /// Left alone: already on their way, or moved on meanwhile.
    pub skipped: usize,
    /// Could not be handled now (an outage, an unreadable DLQ message); left where they were.
    pub failed: usize,
    /// `tenant/message/endpoint` of each requeued delivery, at most 100.
    pub deliveries: Vec<String>,
}

impl RecoveryReport {
    fn dry(dry_run: bool) -> Self {
        Self {
            dry_run,
            ..Self::default()
        }
    }

    fn requeued(&mut self, key: &DeliveryKey) {
        self.requeued += 1;
        if self.deliveries.len() < 100 {
            self.deliveries.push(key.to_string());
        }
    }
}

/// What reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub fan_outs_finished: usize,
    pub pointers_resent: usize,
    pub held_released: usize,
    pub probes_sent: usize,
    pub failed: usize,
}

/// Why an operator's action could not run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("no message {0} (never published, or expired)")]
    UnknownMessage(MessageId),
    #[error("no endpoint {0}")]
    UnknownEndpoint(EndpointId),
    /// An operator erased the message's payload: nothing left to send.
    #[error("message {0}: {reason}", reason = crate::record::ERASED_REASON)]
    Erased(MessageId),
    #[error(transparent)]
    Unavailable(#[from] PublishError),
}

impl From<StoreError> for RecoveryError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    /// Finish what crashes and outages left, across tenants, up to `limit` of each kind:
    /// fan-outs that did not finish, deliveries whose pointer was lost, endpoints holding
    /// deliveries that may take them again (released in order, or one probe first if the
    /// endpoint was failing).
    pub async fn reconcile(&self, limit: u32) -> Result<ReconcileReport, StoreError> {
        let now = self.clock.now();
        let mut report = ReconcileReport::default();
        for (tenant, id) in self
            .store
            .unfinished_fan_outs(now - FAN_OUT_GRACE, limit)
            .await?
        {
            let Some(message) = self.store.message(&tenant, &id).await? else {
                continue;
            };
            match self.fan_out(&message).await {
                Ok(_) => report.fan_outs_finished += 1,
                Err(e) => {
                    warn!(%tenant, message_id = %id, error = %e, "fan-out still failing");
                    report.failed += 1;
                }
            }
        }
        for key in self
            .store
            .overdue_deliveries(now - OVERDUE_GRACE, limit)
            .await?
        {
            let Some(delivery) = self.store.delivery(&key).await? else {
                continue;
            };
            match self
                .requeue(
                    &delivery,
                    &[DeliveryStatus::Pending, DeliveryStatus::Sending],
                    false,
                )
                .await
            {
                Ok(true) => report.pointers_resent += 1,
                Ok(false) => {}
                Err(_) => report.failed += 1,
            }
        }
        for endpoint in self.ready_holding_endpoints(limit, now).await? {
            let (tenant, id) = (&endpoint.tenant, &endpoint.id);
            let outcome = if endpoint.health.consecutive_failures > 0 {
                self.probe(tenant, id).await.map(|sent| {
                    report.probes_sent += usize::from(sent);
                })
            } else {
                self.release_held(tenant, id, limit).await.map(|n| {
                    report.held_released += n;
                })
            };
            if outcome.is_err() {
                report.failed += 1;
            }
        }
        if report != ReconcileReport::default() {
            info!(?report, "outbound reconcile");
        }
        Ok(report)
    }

    /// Up to `limit` endpoints that hold deliveries and may take them now (enabled, not paused),
    /// read page by page past those that may not: however many disabled endpoints hold
    /// deliveries, a recovered one behind them is found. Bounded, as reconcile comes back.
    async fn ready_holding_endpoints(
        &self,
        limit: u32,
        now: SystemTime,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut ready = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..HOLDING_PAGES {
            let page = self
                .store
                .holding_endpoints(limit, after.as_deref())
                .await?;
            for (tenant, id) in page.items {
                let Some(endpoint) = self.store.endpoint(&tenant, &id).await? else {
                    continue;
                };
                if endpoint.is_enabled() && !endpoint.is_paused(now) {
                    ready.push(endpoint);
                }
                if ready.len() >= wanted {
                    return Ok(ready);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(ready)
    }

    /// Send an endpoint's oldest held delivery as a probe: it goes out although the endpoint
    /// was failing, and releases the others if it succeeds.
    async fn probe(&self, tenant: &TenantId, endpoint: &EndpointId) -> Result<bool, PublishError> {
        let held = self.store.held_deliveries(tenant, endpoint, 1).await?;
        let Some(oldest) = held.deliveries.into_iter().next() else {
            if held.more {
                // Released by another meanwhile; the next reconcile looks again.
                return Ok(false);
            }
            self.store
                .clear_holding(tenant, endpoint, self.clock.now())
                .await?;
            return Ok(false);
        };
        let mut pointer = DeliveryPointer::new(&oldest.key);
        pointer.probe = true;
        self.queue.enqueue(&pointer).await?;
        Ok(true)
    }

    /// Deliver `message` again: to `endpoint`, or to every endpoint whose filter matches now.
    /// A final delivery (delivered, dead, cancelled) starts over with a fresh schedule; an
    /// endpoint that never had one gets one; one on its way is left alone.
    pub async fn resend(
        &self,
        tenant: &TenantId,
        message_id: &MessageId,
        endpoint: Option<&EndpointId>,
        dry_run: bool,
    ) -> Result<RecoveryReport, RecoveryError> {
        let message = self
            .store
            .message(tenant, message_id)
            .await?
            .ok_or_else(|| RecoveryError::UnknownMessage(message_id.clone()))?;
        if message.is_erased() {
            return Err(RecoveryError::Erased(message_id.clone()));
        }
        let targets = match endpoint {
            Some(id) => vec![
                self.store
                    .endpoint(tenant, id)
                    .await?
                    .ok_or_else(|| RecoveryError::UnknownEndpoint(id.clone()))?,
            ],
            None => self
                .store
                .endpoints(tenant)
                .await?
                .into_iter()
                .filter(|e| e.filter.matches(&message.event_type))
                .collect(),
        };
        let now = self.clock.now();
        let mut report = RecoveryReport::dry(dry_run);
        for target in targets {
            report.matched += 1;
            let fresh = Delivery::new(&message, &target.id, false, now);
            match self.store.delivery(&fresh.key).await? {
                Some(existing) if existing.status.is_final() => {
                    if dry_run || self.requeue(&existing, &FINAL, true).await? {
                        report.requeued(&existing.key);
                    } else {
                        report.skipped += 1;
                    }
                }
                Some(_) => report.skipped += 1,
                None if dry_run => report.requeued(&fresh.key),
                None => {
                    if self.store.put_delivery_if_absent(&fresh).await? {
                        self.queue
                            .enqueue(&DeliveryPointer::new(&fresh.key))
                            .await
                            .map_err(PublishError::from)?;
                        report.requeued(&fresh.key);
                    } else {
                        report.skipped += 1;
                    }
                }
            }
        }
        info!(%tenant, message_id = %message_id, ?report, "resend");
        Ok(report)
    }

    /// Whether the delivery's message had its payload erased by an operator: such a delivery
    /// is never started over (skipped, with the reason logged).
    async fn is_erased(&self, key: &DeliveryKey) -> Result<bool, StoreError> {
        let erased = self
            .store
            .message(&key.tenant, &key.message_id)
            .await?
            .is_some_and(|m| m.is_erased());
        if erased {
            info!(delivery = %key, reason = crate::record::ERASED_REASON, "not started over");
        }
        Ok(erased)
    }

    /// Start over every dead delivery of `endpoint` created at or after `since`.
    pub async fn recover_failed(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: SystemTime,
        dry_run: bool,
    ) -> Result<RecoveryReport, RecoveryError> {
        if self.store.endpoint(tenant, endpoint).await?.is_none() {
            return Err(RecoveryError::UnknownEndpoint(endpoint.clone()));
        }
        let mut report = RecoveryReport::dry(dry_run);
        let mut after = None;
        loop {
            let page = self
                .store
                .deliveries_of_endpoint(tenant, endpoint, Some(since), 100, after.as_deref())
                .await?;
            for delivery in page
                .items
                .iter()
                .filter(|d| d.status == DeliveryStatus::Dead)
            {
                report.matched += 1;
                if self.is_erased(&delivery.key).await? {
                    report.skipped += 1;
                    continue;
                }
                if dry_run
                    || self
                        .requeue(delivery, &[DeliveryStatus::Dead], true)
                        .await?
                {
                    report.requeued(&delivery.key);
                } else {
                    report.skipped += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        info!(%tenant, endpoint_id = %endpoint, ?report, "recover failed deliveries");
        Ok(report)
    }

    /// Drain up to `max` messages of the deliveries DLQ: each dead delivery starts over with a
    /// fresh schedule and its copy is deleted; a copy whose delivery moved on is deleted; one
    /// that cannot be read stays. A dry run only reads, and leaves every message visible again.
    pub async fn redrive_dead_letters(
        &self,
        dlq: &impl DeadLetterQueue,
        max: usize,
        dry_run: bool,
    ) -> Result<RecoveryReport, RecoveryError> {
        let mut report = RecoveryReport::dry(dry_run);
        let mut seen = 0;
        // Messages left on the DLQ stay hidden until the end, so one is never read twice.
        let mut kept = Vec::new();
        while seen < max {
            let batch = dlq
                .receive(
                    u32::try_from((max - seen).min(10)).unwrap_or(10),
                    Duration::from_secs(60),
                )
                .await
                .map_err(PublishError::from)?;
            if batch.is_empty() {
                break;
            }
            seen += batch.len();
            for letter in batch {
                let delivery = match DeliveryPointer::parse(&letter.body).and_then(|p| p.key()) {
                    Some(key) => self.store.delivery(&key).await?,
                    None => None,
                };
                let Some(delivery) = delivery else {
                    report.failed += 1;
                    kept.push(letter.receipt_handle);
                    continue;
                };
                report.matched += 1;
                let erased = delivery.status == DeliveryStatus::Dead
                    && self.is_erased(&delivery.key).await?;
                if dry_run {
                    if delivery.status == DeliveryStatus::Dead && !erased {
                        report.requeued(&delivery.key);
                    } else {
                        report.skipped += 1;
                    }
                    kept.push(letter.receipt_handle);
                    continue;
                }
                let requeued = delivery.status == DeliveryStatus::Dead
                    && !erased
                    && self
                        .requeue(&delivery, &[DeliveryStatus::Dead], true)
                        .await?;
                if requeued {
                    report.requeued(&delivery.key);
                } else {
                    report.skipped += 1;
                }
                dlq.delete(&letter.receipt_handle)
                    .await
                    .map_err(PublishError::from)?;
            }
        }
        for handle in kept {
            if let Err(e) = dlq.release(&handle).await {
                warn!(error = %e, "a DLQ message stays hidden until its hold ends");
            }
        }
        info!(?report, "deliveries DLQ redrive");
        Ok(report)
    }
}

/// The statuses a resend starts over from.
const FINAL: [DeliveryStatus; 3] = [
    DeliveryStatus::Delivered,
    DeliveryStatus::Dead,
    DeliveryStatus::Cancelled,
];
