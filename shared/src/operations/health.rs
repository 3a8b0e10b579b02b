//! `health`: the seed's six checks over a window (recent failures, backlog, oldest pending age,
//! average attempts, duplicates, success rate), each against configurable thresholds, and the
//! worst of them as the verdict: HEALTHY, DEGRADED or CRITICAL. Also p50 / p95 / p99 of
//! processing latency (enqueued → completed) and end-to-end latency (received → completed) of
//! the events processed in the window, computed from their records.
//!
//! Read through the status index, per tenant: events that entered their current status within
//! the window, plus every event still pending (whatever its age), at most `max_records` per
//! tenant and status.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{OperationError, Operations, parse_tenant};
use crate::{
    clock::Clock,
    ports::{DeadLetterQueue, EventQueue, EventTimeline, OperationsStore, TenantNames},
    record::EventStatus,
};

/// `{"action": "health", "tenant": "acme", "window_secs": 3600, "thresholds": {...}}`; without
/// `tenant`, every tenant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    pub tenant: Option<String>,
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub thresholds: Thresholds,
    pub max_records: Option<u32>,
}

/// Where each check turns DEGRADED and CRITICAL. Every field is optional in the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Failed or dead events in the window.
    pub failures_degraded: f64,
    pub failures_critical: f64,
    /// Events pending now (received, enqueued, processing, failed).
    pub backlog_degraded: f64,
    pub backlog_critical: f64,
    /// Seconds since the oldest pending event was received.
    pub oldest_pending_degraded_secs: f64,
    pub oldest_pending_critical_secs: f64,
    /// Mean attempts of the events that finished (processed or dead) in the window.
    pub attempts_degraded: f64,
    pub attempts_critical: f64,
    /// Duplicate deliveries per event received in the window.
    pub duplicate_rate_degraded: f64,
    pub duplicate_rate_critical: f64,
    /// Processed / (processed + failed + dead) in the window: lower is worse.
    pub success_rate_degraded: f64,
    pub success_rate_critical: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failures_degraded: 1.0,
            failures_critical: 10.0,
            backlog_degraded: 100.0,
            backlog_critical: 1_000.0,
            oldest_pending_degraded_secs: 900.0,
            oldest_pending_critical_secs: 3_600.0,
            attempts_degraded: 1.5,
            attempts_critical: 3.0,
            duplicate_rate_degraded: 0.05,
            duplicate_rate_critical: 0.25,
            success_rate_degraded: 0.999,
            success_rate_critical: 0.99,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Healthy,
    Degraded,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub value: f64,
    pub degraded_at: f64,
    pub critical_at: f64,
    pub status: Verdict,
}

impl Check {
    /// Higher is worse.
    fn above(name: &'static str, value: f64, degraded_at: f64, critical_at: f64) -> Self {
        let status = if value >= critical_at {
            Verdict::Critical
        } else if value >= degraded_at {
            Verdict::Degraded
        } else {
            Verdict::Healthy
        };
        Self {
            name,
            value,
            degraded_at,
            critical_at,
            status,
        }
    }

    /// Lower is worse.
    fn below(name: &'static str, value: f64, degraded_at: f64, critical_at: f64) -> Self {
        let status = if value < critical_at {
            Verdict::Critical
        } else if value < degraded_at {
            Verdict::Degraded
        } else {
            Verdict::Healthy
        };
        Self {
            name,
            value,
            degraded_at,
            critical_at,
            status,
        }
    }
}

/// Percentiles in milliseconds; `null` when nothing was processed in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Latency {
    /// The percentiles of `samples` (milliseconds, any order).
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            p50_ms: percentile(&samples, 50.0),
            p95_ms: percentile(&samples, 95.0),
            p99_ms: percentile(&samples, 99.0),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub processed: usize,
    pub failed: usize,
    pub dead: usize,
    pub discarded: usize,
    pub pending: usize,
    pub duplicates: u64,
    pub dead_letter_queue: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSummary {
    pub action: &'static str,
    pub status: Verdict,
    pub tenants: Vec<String>,
    pub window_secs: u64,
    pub checks: Vec<Check>,
    pub counts: Counts,
    pub processing_latency: Latency,
    pub end_to_end_latency: Latency,
    /// Whether `max_records` cut a read short: the figures then cover a sample.
    pub truncated: bool,
}

fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn health(&self, args: HealthArgs) -> Result<HealthSummary, OperationError> {
        let now = self.clock.now();
        let window = Duration::from_secs(args.window_secs.unwrap_or(3_600));
        let since = now.checked_sub(window).unwrap_or(UNIX_EPOCH);
        let cap = args.max_records.unwrap_or(10_000).max(1);
        let tenants = match args.tenant.as_deref() {
            Some(t) => vec![parse_tenant(t)?],
            None => self.tenants.tenant_ids().await?,
        };
        let mut in_window: Vec<EventTimeline> = Vec::new();
        let mut pending: Vec<EventTimeline> = Vec::new();
        let mut truncated = false;
        for tenant in &tenants {
            for status in EventStatus::ALL {
                let is_pending = status.is_pending();
                let from = if is_pending { UNIX_EPOCH } else { since };
                let found = self
                    .store
                    .in_status_since(tenant, status, from, cap)
                    .await?;
                truncated |= found.len() >= usize::try_from(cap).unwrap_or(usize::MAX);
                for timeline in found {
                    if timeline.status_at >= since {
                        in_window.push(timeline.clone());
                    }
                    if is_pending {
                        pending.push(timeline);
                    }
                }
            }
        }
        let dead_letter_queue = self.dead_letters.depth().await?;

        let count = |s: EventStatus| in_window.iter().filter(|t| t.status == s).count();
        let counts = Counts {
            processed: count(EventStatus::Processed),
            failed: count(EventStatus::Failed),
            dead: count(EventStatus::Dead),
            discarded: count(EventStatus::Discarded),
            pending: pending.len(),
            duplicates: in_window.iter().map(|t| u64::from(t.duplicates)).sum(),
            dead_letter_queue,
        };
        let received_in_window = in_window.iter().filter(|t| t.received_at >= since).count();
        let finished: Vec<&EventTimeline> = in_window
            .iter()
            .filter(|t| matches!(t.status, EventStatus::Processed | EventStatus::Dead))
            .collect();
        let average_attempts = if finished.is_empty() {
            0.0
        } else {
            finished.iter().map(|t| f64::from(t.attempts)).sum::<f64>() / finished.len() as f64
        };
        let outcomes = counts.processed + counts.failed + counts.dead;
        let success_rate = if outcomes == 0 {
            1.0
        } else {
            counts.processed as f64 / outcomes as f64
        };
        let oldest_pending_secs = pending
            .iter()
            .map(|t| t.received_at)
            .min()
            .map_or(0.0, |oldest| millis_between(oldest, now) / 1_000.0);
        let duplicate_rate = counts.duplicates as f64 / received_in_window.max(1) as f64;

        let th = &args.thresholds;
        let checks = vec![
            Check::above(
                "recent_failures",
                (counts.failed + counts.dead) as f64,
                th.failures_degraded,
                th.failures_critical,
            ),
            Check::above(
                "backlog",
                counts.pending as f64,
                th.backlog_degraded,
                th.backlog_critical,
            ),
            Check::above(
                "oldest_pending_age_secs",
                oldest_pending_secs,
                th.oldest_pending_degraded_secs,
                th.oldest_pending_critical_secs,
            ),
            Check::above(
                "average_attempts",
                average_attempts,
                th.attempts_degraded,
                th.attempts_critical,
            ),
            Check::above(
                "duplicate_rate",
                duplicate_rate,
                th.duplicate_rate_degraded,
                th.duplicate_rate_critical,
            ),
            Check::below(
                "success_rate",
                success_rate,
                th.success_rate_degraded,
                th.success_rate_critical,
            ),
        ];
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Verdict::Healthy);

        let processed = in_window
            .iter()
            .filter(|t| t.status == EventStatus::Processed);
        let processing_latency = Latency::of(
            processed
                .clone()
                .filter_map(|t| {
                    t.completed_at
                        .map(|done| millis_between(t.enqueued_at.unwrap_or(t.received_at), done))
                })
                .collect(),
        );
        let end_to_end_latency = Latency::of(
            processed
                .filter_map(|t| {
                    t.completed_at
                        .map(|done| millis_between(t.received_at, done))
                })
                .collect(),
        );
        Ok(HealthSummary {
            action: "health",
            status,
            tenants: tenants.iter().map(ToString::to_string).collect(),
            window_secs: window.as_secs(),
            checks,
            counts,
            processing_latency,
            end_to_end_latency,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 95.0), Some(95.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn checks_grade_both_directions() {
        assert_eq!(Check::above("x", 0.0, 1.0, 10.0).status, Verdict::Healthy);
        assert_eq!(Check::above("x", 1.0, 1.0, 10.0).status, Verdict::Degraded);
        assert_eq!(Check::above("x", 10.0, 1.0, 10.0).status, Verdict::Critical);
        assert_eq!(Check::below("x", 1.0, 0.999, 0.99).status, Verdict::Healthy);
        assert_eq!(
            Check::below("x", 0.995, 0.999, 0.99).status,
            Verdict::Degraded
        );
        assert_eq!(
            Check::below("x", 0.5, 0.999, 0.99).status,
            Verdict::Critical
        );
    }
}
