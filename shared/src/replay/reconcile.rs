//! `reconcile`: re-enqueue events stuck in `received` or `enqueued` longer than a threshold,
//! and `processing` ones whose lease ended longer ago than that. The schedule runs it every
//! five minutes across all tenants; it reads the sparse pending index, never the whole table.
//!
//! It does not reset attempts (a message lost is not a new chance), and it leaves `processing`
//! events whose attempts are spent for an operator: re-enqueueing one that crashes its
//! processor every time would loop forever.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{OperationError, Operations, Skipped, event_ref, note_or};
use crate::{
    clock::Clock,
    ports::{
        DeadLetterQueue, EventHistory, EventQueue, EventReplay, EventStore, OperatorMark,
        PendingEvents, Requeue, TenantNames,
    },
    record::EventStatus,
};

/// `{"action": "reconcile", "dry_run": true, "limit": 100, "stuck_after_secs": 900}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileArgs {
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<u32>,
    pub note: Option<String>,
    pub stuck_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileSummary {
    pub action: &'static str,
    pub dry_run: bool,
    pub stuck_after_secs: u64,
    /// Re-enqueued (or, in a dry run, would be).
    pub requeued: Vec<String>,
    /// `processing` past its lease with its attempts spent: needs an operator.
    pub exhausted: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// The limit was reached: more stuck events may wait (the next run continues).
    pub more: bool,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: EventStore + EventReplay + PendingEvents + EventHistory,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn reconcile(&self, args: ReconcileArgs) -> Result<ReconcileSummary, OperationError> {
        let limit = self.limit(args.limit)?;
        let stuck_after = args
            .stuck_after_secs
            .map_or(self.settings.stuck_after, Duration::from_secs);
        let now = self.clock.now();
        let cutoff = now
            .checked_sub(stuck_after)
            .unwrap_or(std::time::UNIX_EPOCH);
        let mark = OperatorMark {
            at: now,
            note: note_or(args.note.as_deref(), "reconcile"),
        };
        let mut summary = ReconcileSummary {
            action: "reconcile",
            dry_run: args.dry_run,
            stuck_after_secs: stuck_after.as_secs(),
            ..ReconcileSummary::default()
        };
        let mut touched = 0u32;
        for status in EventStatus::PENDING {
            if touched >= limit {
                summary.more = true;
                break;
            }
            let found = self
                .store
                .pending_before(status, cutoff, limit - touched)
                .await?;
            if u32::try_from(found.len()).unwrap_or(u32::MAX) >= limit - touched {
                summary.more = true;
            }
            for pending in found {
                let id = event_ref(&pending.key);
                if status == EventStatus::Processing {
                    // Its lease must have ended before the cutoff too: a processor that just
                    // lost its lease may still be finishing, and its message is still queued.
                    if pending.lease_until.is_some_and(|until| until >= cutoff) {
                        continue;
                    }
                    if pending.attempts >= self.settings.max_attempts {
                        summary.exhausted.push(id);
                        continue;
                    }
                }
                touched += 1;
                if args.dry_run {
                    summary.requeued.push(id);
                    continue;
                }
                let record = match self
                    .store
                    .mark_requeued(&pending.key, status, Requeue::Reconcile, &mark)
                    .await
                {
                    Ok(Some(record)) => record,
                    // It moved on by itself: nothing stuck any more.
                    Ok(None) => continue,
                    Err(e) => {
                        summary.skipped.push(Skipped {
                            id,
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                if let Err(e) = self.send_pointer(&record).await {
                    warn!(tenant = %pending.key.tenant, event_id = %pending.key.event_id, error = %e,
                        "reconcile could not send; the next run tries again");
                    summary.skipped.push(Skipped {
                        id,
                        reason: e.to_string(),
                    });
                    continue;
                }
                info!(tenant = %pending.key.tenant, provider = %pending.key.provider,
                    event_id = %pending.key.event_id, from = %status, note = %mark.note, "reconciled");
                // Reconcile is recovery, not an operator replay: counted in its own metric.
                self.metric("reconciled", &pending.key);
                summary.requeued.push(id);
            }
        }
        Ok(summary)
    }
}
