//! `discard`: resolve chosen dead events without processing them. The note is required; the
//! record stays, `discarded`, with the note and time, for audit. Retention: a discarded record
//! expires like a processed one (the processor's retention), since nothing is left to do; a
//! dead record never expires until it is replayed or discarded.

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{OperationError, Operations, Skipped, event_ref, keys};
use crate::{
    clock::Clock,
    ports::{DeadLetterQueue, EventQueue, OperationsStore, OperatorMark, TenantNames},
    record::EventStatus,
};

/// `{"action": "discard", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"],
/// "note": "ops: test event, never to be applied", "dry_run": true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardArgs {
    pub tenant: String,
    pub provider: String,
    pub ids: Vec<String>,
    pub note: String,
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiscardSummary {
    pub action: &'static str,
    pub dry_run: bool,
    /// Discarded (or, in a dry run, would be).
    pub discarded: Vec<String>,
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
    pub async fn discard(&self, args: DiscardArgs) -> Result<DiscardSummary, OperationError> {
        let note = args.note.trim();
        if note.is_empty() {
            return Err(OperationError::Invalid(
                "note: say who discards these events and why".into(),
            ));
        }
        let limit = self.limit(args.limit)?;
        let keys = keys(&args.tenant, &args.provider, &args.ids, limit)?;
        let now = self.clock.now();
        let mark = OperatorMark {
            at: now,
            note: note.chars().take(500).collect(),
        };
        let expires_at = Some(now + self.settings.retention);
        let mut summary = DiscardSummary {
            action: "discard",
            dry_run: args.dry_run,
            ..DiscardSummary::default()
        };
        for key in keys {
            let id = event_ref(&key);
            let Some(record) = self.store.get(&key).await? else {
                summary.not_found.push(id);
                continue;
            };
            if record.status != EventStatus::Dead {
                summary.skipped.push(Skipped {
                    id,
                    reason: format!(
                        "only dead events are discarded; this one is {}",
                        record.status
                    ),
                });
                continue;
            }
            if args.dry_run {
                summary.discarded.push(id);
                continue;
            }
            if self.store.mark_discarded(&key, &mark, expires_at).await? {
                info!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
                    note = %mark.note, "discarded");
                summary.discarded.push(id);
            } else {
                summary.skipped.push(Skipped {
                    id,
                    reason: "the event changed meanwhile".into(),
                });
            }
        }
        Ok(summary)
    }
}
