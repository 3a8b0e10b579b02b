//! `replay`: re-enqueue chosen events by tenant and ids, from their records alone (the DLQ
//! message may be gone: the record is the source of truth). Processed events are re-run only
//! with `force`; their effects stay idempotent because projections are versioned by the
//! provider's event time.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{OperationError, Operations, Skipped, event_ref, keys, lease_live, note_or};
use crate::{
    clock::Clock,
    ports::{DeadLetterQueue, EventQueue, OperationsStore, OperatorMark, Requeue, TenantNames},
    record::EventStatus,
};

/// `{"action": "replay", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"],
/// "force": false, "dry_run": true, "note": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayArgs {
    pub tenant: String,
    pub provider: String,
    pub ids: Vec<String>,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<u32>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub action: &'static str,
    pub dry_run: bool,
    /// Re-enqueued (or, in a dry run, would be).
    pub replayed: Vec<String>,
    pub not_found: Vec<String>,
    pub skipped: Vec<Skipped>,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn replay(&self, args: ReplayArgs) -> Result<ReplaySummary, OperationError> {
        let limit = self.limit(args.limit)?;
        let keys = keys(&args.tenant, &args.provider, &args.ids, limit)?;
        let mark = OperatorMark {
            at: self.clock.now(),
            note: note_or(args.note.as_deref(), "replay by id"),
        };
        let mut summary = ReplaySummary {
            action: "replay",
            dry_run: args.dry_run,
            ..ReplaySummary::default()
        };
        for key in keys {
            let id = event_ref(&key);
            let mut skip = |reason: &str| {
                summary.skipped.push(Skipped {
                    id: id.clone(),
                    reason: reason.to_owned(),
                })
            };
            let Some(record) = self.store.get(&key).await? else {
                summary.not_found.push(id);
                continue;
            };
            if record.is_erased() {
                skip(crate::record::ERASED_REASON);
                continue;
            }
            match record.status {
                EventStatus::Processed if !args.force => {
                    skip("processed already; set \"force\": true to run it again");
                    continue;
                }
                EventStatus::Discarded => {
                    skip("discarded by an operator");
                    continue;
                }
                EventStatus::Processing if lease_live(record.lease_until, mark.at) => {
                    skip("a processor holds the event");
                    continue;
                }
                _ => {}
            }
            if args.dry_run {
                summary.replayed.push(id);
                continue;
            }
            let Some(replayed) = self
                .store
                .mark_requeued(&key, record.status, Requeue::Replay, &mark)
                .await?
            else {
                skip("the event changed meanwhile; run again");
                continue;
            };
            if let Err(e) = self.send_pointer(&replayed).await {
                warn!(tenant = %key.tenant, event_id = %key.event_id, error = %e,
                    "replay could not send; the record waits enqueued for reconcile");
                self.metric(crate::metrics::REPLAY_FAILED, &key);
                skip(&format!("{e}; left enqueued for reconcile"));
                continue;
            }
            self.metric(crate::metrics::REPLAYED, &key);
            info!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
                request_id = replayed.correlation.request_id.as_deref(),
                replay_count = replayed.replay_count, from = %record.status, note = %mark.note, "replayed");
            summary.replayed.push(id);
        }
        Ok(summary)
    }
}
