//! `reconcile`: find events whose message is lost and put them back on their way. The schedule
//! runs it every five minutes across all tenants; it reads the sparse pending index, never the
//! whole table.
//!
//! - `received` or `enqueued` longer than the threshold, `processing` whose lease ended longer
//!   ago than that, and `failed` past the schedule's longest delay (its message should have come
//!   back by then; on its last receive an outage can send it to the DLQ by redrive instead):
//!   re-enqueued. Attempts are kept: a message lost is not a new chance.
//! - `processing` past its lease with its attempts spent (a processor that died on the last
//!   attempt, perhaps because the event kills it): copied to the DLQ and marked `dead`, as the
//!   processor would have, so an operator sees it; re-enqueueing it would loop forever.
//!
//! Events it cannot act on yet (a `processing` one whose lease has only just ended) never fill
//! its page: it reads on past them, so a run acts on up to `limit` events whatever waits ahead.

use std::{collections::HashSet, time::Duration};

use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, warn};

use super::{OperationError, Operations, Skipped, event_ref, event_span, note_or};
use crate::{
    clock::Clock,
    message::QueueMessage,
    metrics,
    ports::{
        DeadLetterQueue, EventQueue, OperationsStore, OperatorMark, PendingEvent, Requeue,
        TenantNames,
    },
    record::EventStatus,
};

/// How many index pages one status may take per run: bounds a run over a huge backlog of
/// events it must leave alone.
const MAX_PAGES_PER_STATUS: usize = 50;

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
    /// `processing` past its lease with its attempts spent: copied to the DLQ and marked dead
    /// (or, in a dry run, would be).
    pub dead_lettered: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// The limit was reached: more stuck events may wait (the next run continues).
    pub more: bool,
}

/// What reconcile does with one pending event.
enum Verdict {
    Requeue,
    DeadLetter,
    /// Not yet: a processor that just lost its lease may still be finishing.
    Wait,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
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
        let mut acted = 0u32;
        'statuses: for status in EventStatus::PENDING {
            let threshold = if status == EventStatus::Failed {
                self.settings.failed_stuck_after(stuck_after)
            } else {
                stuck_after
            };
            let cutoff = now.checked_sub(threshold).unwrap_or(std::time::UNIX_EPOCH);
            let mut from = std::time::UNIX_EPOCH;
            let mut seen: HashSet<String> = HashSet::new();
            for _ in 0..MAX_PAGES_PER_STATUS {
                if acted >= limit {
                    summary.more = true;
                    break 'statuses;
                }
                let want = limit - acted;
                let page = self
                    .store
                    .pending_between(status, from, cutoff, want)
                    .await?;
                let full = u32::try_from(page.len()).unwrap_or(u32::MAX) >= want;
                let Some(last) = page.last().map(|p| p.since) else {
                    break;
                };
                let mut fresh = false;
                for pending in page {
                    if !seen.insert(event_ref(&pending.key)) {
                        continue;
                    }
                    fresh = true;
                    if acted >= limit {
                        summary.more = true;
                        break 'statuses;
                    }
                    match self.verdict(&pending, cutoff) {
                        Verdict::Wait => {}
                        Verdict::Requeue => {
                            acted += 1;
                            self.requeue_stuck(&pending, &mark, &mut summary)
                                .instrument(event_span(&pending.key))
                                .await;
                        }
                        Verdict::DeadLetter => {
                            acted += 1;
                            self.dead_letter_stuck(&pending, &mark, &mut summary)
                                .instrument(event_span(&pending.key))
                                .await;
                        }
                    }
                }
                if !full {
                    break;
                }
                // Page on from the last one read; a page of nothing new (ties on one
                // millisecond filling it) steps past that millisecond.
                from = if fresh {
                    last
                } else {
                    last + Duration::from_millis(1)
                };
            }
        }
        Ok(summary)
    }

    fn verdict(&self, pending: &PendingEvent, cutoff: std::time::SystemTime) -> Verdict {
        if pending.status != EventStatus::Processing {
            return Verdict::Requeue;
        }
        // Its lease must have ended before the cutoff too: a processor that just lost its
        // lease may still be finishing, and its message is still queued.
        if pending.lease_until.is_some_and(|until| until >= cutoff) {
            return Verdict::Wait;
        }
        if self.settings.schedule.is_last(pending.attempts) {
            Verdict::DeadLetter
        } else {
            Verdict::Requeue
        }
    }

    async fn requeue_stuck(
        &self,
        pending: &PendingEvent,
        mark: &OperatorMark,
        summary: &mut ReconcileSummary,
    ) {
        let id = event_ref(&pending.key);
        if summary.dry_run {
            summary.requeued.push(id);
            return;
        }
        let record = match self
            .store
            .mark_requeued(&pending.key, pending.status, Requeue::Reconcile, mark)
            .await
        {
            Ok(Some(record)) => record,
            // It moved on by itself: nothing stuck any more.
            Ok(None) => return,
            Err(e) => {
                summary.skipped.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
                return;
            }
        };
        if let Err(e) = self.send_pointer(&record).await {
            warn!(error = %e, "reconcile could not send; the next run tries again");
            summary.skipped.push(Skipped {
                id,
                reason: e.to_string(),
            });
            return;
        }
        info!(from = %pending.status, note = %mark.note, "reconciled");
        // Reconcile is recovery, not an operator replay: counted in its own metric.
        self.metric(metrics::RECONCILED, &pending.key);
        summary.requeued.push(id);
    }

    /// The processor's give-up, done for a processor that died: the DLQ copy first, then the
    /// record `dead`.
    async fn dead_letter_stuck(
        &self,
        pending: &PendingEvent,
        mark: &OperatorMark,
        summary: &mut ReconcileSummary,
    ) {
        let id = event_ref(&pending.key);
        if summary.dry_run {
            summary.dead_lettered.push(id);
            return;
        }
        let record = match self.store.get(&pending.key).await {
            Ok(Some(record)) if record.status == EventStatus::Processing => record,
            Ok(_) => return,
            Err(e) => {
                summary.skipped.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let mut pointer = QueueMessage::new(&record.key, &record.correlation);
        pointer.replay_count = record.replay_count;
        let body = match serde_json::to_string(&pointer) {
            Ok(body) => body,
            Err(e) => {
                summary.skipped.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
                return;
            }
        };
        if let Err(e) = self.dead_letters.send(&body).await {
            summary.skipped.push(Skipped {
                id,
                reason: e.to_string(),
            });
            return;
        }
        let reason = format!(
            "its processor stopped during attempt {} of {}, the last",
            record.attempts,
            self.settings.schedule.max_attempts()
        );
        match self.store.mark_dead(&pending.key, &reason, mark).await {
            Ok(true) => {
                warn!("attempts spent in a crashed processor; event dead and on the DLQ");
                self.metric(metrics::RETRY_EXHAUSTED, &pending.key);
                summary.dead_lettered.push(id);
            }
            // It moved on meanwhile; the DLQ copy is stale and redrive will say so.
            Ok(false) => {}
            Err(e) => summary.skipped.push(Skipped {
                id,
                reason: e.to_string(),
            }),
        }
    }
}
