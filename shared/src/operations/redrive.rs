//! `redrive`: drain the DLQ back to the events queue.
//!
//! Each DLQ message is a pointer. Its record decides: `processed` or `discarded` → the message
//! is stale, deleted and counted; `processing` under a live lease → left; anything else → the
//! record goes back to `enqueued` (replay count, time and note recorded), the pointer is sent
//! to the events queue with its original correlation ids, and only then deleted from the DLQ.
//! Messages that do not match the filters, or cannot be redriven, stay hidden until the run
//! ends and are then released, so one run never reads a message twice. A dry run releases
//! everything it received.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    OperationError, Operations, Skipped, event_ref, lease_live, note_or, parse_provider,
    parse_tenant,
};
use crate::{
    clock::Clock,
    ids::TenantId,
    message::QueueMessage,
    ports::{
        DeadLetter, DeadLetterQueue, EventQueue, OperationsStore, OperatorMark, Requeue,
        TenantNames,
    },
    provider::Provider,
    record::{EventKey, EventStatus},
};

/// `{"action": "redrive", "dry_run": true, "limit": 10, "note": "...", "tenant": "acme",
/// "provider": "stripe", "event_type": "invoice.paid"}`; the filters are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveArgs {
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<u32>,
    pub note: Option<String>,
    pub tenant: Option<String>,
    pub provider: Option<String>,
    pub event_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    pub action: &'static str,
    pub dry_run: bool,
    /// DLQ messages read.
    pub examined: usize,
    /// Sent back to the events queue (or, in a dry run, would be).
    pub redriven: Vec<String>,
    /// Stale: the event was processed already; deleted from the DLQ (or would be).
    pub already_processed: Vec<String>,
    /// Stale: an operator discarded the event; deleted from the DLQ (or would be).
    pub discarded: Vec<String>,
    /// Not matching the filters: left in the DLQ.
    pub filtered_out: usize,
    /// Left in the DLQ, and why.
    pub skipped: Vec<Skipped>,
    /// The limit was reached: more messages may wait; run again until this is false.
    pub more: bool,
}

/// What became of one message.
enum Fate {
    /// Handled (redriven or removed): counts toward the limit; the receipt is spent.
    Done,
    /// Handled in a dry run: counts toward the limit; release it at the end.
    WouldDo,
    /// Left in the DLQ: release it at the end.
    Left,
}

struct Filters {
    tenant: Option<TenantId>,
    provider: Option<Provider>,
    event_type: Option<String>,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn redrive(&self, args: RedriveArgs) -> Result<RedriveSummary, OperationError> {
        let limit = usize::try_from(self.limit(args.limit)?).unwrap_or(usize::MAX);
        let filters = Filters {
            tenant: args.tenant.as_deref().map(parse_tenant).transpose()?,
            provider: args.provider.as_deref().map(parse_provider).transpose()?,
            event_type: args.event_type.clone(),
        };
        let mark = OperatorMark {
            at: self.clock.now(),
            note: note_or(args.note.as_deref(), "redrive from the DLQ"),
        };
        let mut summary = RedriveSummary {
            action: "redrive",
            dry_run: args.dry_run,
            ..RedriveSummary::default()
        };
        // Messages not handled are released at the end; reading past `limit * 10` unmatched
        // messages stops the run, so a full DLQ with a narrow filter stays bounded.
        let mut to_release: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut handled = 0;
        let mut result = Ok(());
        'receiving: while handled < limit && summary.examined < limit.saturating_mul(10) {
            let want = u32::try_from((limit - handled).min(10)).unwrap_or(10);
            let batch = match self.dead_letters.receive(want, self.settings.hold).await {
                Ok(batch) => batch,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut fresh = false;
            for message in batch {
                if !seen.insert(message.message_id.clone()) || handled >= limit {
                    to_release.push(message.receipt_handle);
                    continue;
                }
                fresh = true;
                summary.examined += 1;
                match self
                    .redrive_one(&message, &filters, &mark, &mut summary)
                    .await
                {
                    Fate::Done => handled += 1,
                    Fate::WouldDo => {
                        handled += 1;
                        to_release.push(message.receipt_handle);
                    }
                    Fate::Left => to_release.push(message.receipt_handle),
                }
            }
            if !fresh {
                break 'receiving;
            }
        }
        summary.more = handled >= limit;
        for receipt in to_release {
            if let Err(e) = self.dead_letters.release(&receipt).await {
                // It comes back on its own once the hold ends.
                warn!(error = %e, "could not release a DLQ message");
            }
        }
        result.map(|()| summary)
    }

    async fn redrive_one(
        &self,
        message: &DeadLetter,
        filters: &Filters,
        mark: &OperatorMark,
        summary: &mut RedriveSummary,
    ) -> Fate {
        let Some((pointer, key)) = pointer(&message.body) else {
            return left(
                summary,
                format!("message:{}", message.message_id),
                "not an event pointer",
            );
        };
        if filters.tenant.as_ref().is_some_and(|t| t != &key.tenant)
            || filters.provider.is_some_and(|p| p != key.provider)
        {
            summary.filtered_out += 1;
            return Fate::Left;
        }
        let id = event_ref(&key);
        let record = match self.store.get(&key).await {
            Ok(Some(record)) => record,
            Ok(None) => return left(summary, id, "no record for this pointer"),
            Err(e) => return left(summary, id, &e.to_string()),
        };
        if let Some(wanted) = &filters.event_type
            && record.event_type.as_deref() != Some(wanted.as_str())
        {
            summary.filtered_out += 1;
            return Fate::Left;
        }
        let now = mark.at;
        match record.status {
            EventStatus::Processed | EventStatus::Discarded => {
                let list = if record.status == EventStatus::Processed {
                    &mut summary.already_processed
                } else {
                    &mut summary.discarded
                };
                if summary.dry_run {
                    list.push(id);
                    return Fate::WouldDo;
                }
                match self.dead_letters.delete(&message.receipt_handle).await {
                    Ok(()) => {
                        list.push(id);
                        Fate::Done
                    }
                    Err(e) => left(summary, id, &e.to_string()),
                }
            }
            EventStatus::Processing if lease_live(record.lease_until, now) => {
                left(summary, id, "a processor holds the event")
            }
            // Nothing left to apply; the DLQ copy stays for the operator to see.
            _ if record.is_erased() => left(summary, id, crate::record::ERASED_REASON),
            status => {
                if summary.dry_run {
                    summary.redriven.push(id);
                    return Fate::WouldDo;
                }
                let replayed = match self
                    .store
                    .mark_requeued(&key, status, Requeue::Replay, mark)
                    .await
                {
                    Ok(Some(record)) => record,
                    Ok(None) => return left(summary, id, "the event changed meanwhile; run again"),
                    Err(e) => {
                        self.metric(crate::metrics::REPLAY_FAILED, &key);
                        return left(summary, id, &e.to_string());
                    }
                };
                // The DLQ's own pointer, so the original correlation ids travel unchanged.
                let mut resent = pointer;
                resent.replay_count = replayed.replay_count;
                if let Err(e) = self.queue.send(&resent).await {
                    warn!(tenant = %key.tenant, event_id = %key.event_id, error = %e,
                        "redrive could not send; the record waits enqueued for reconcile");
                    self.metric(crate::metrics::REPLAY_FAILED, &key);
                    return left(summary, id, &format!("{e}; left for reconcile"));
                }
                self.metric(crate::metrics::DLQ_REDRIVEN, &key);
                info!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
                    request_id = record.correlation.request_id.as_deref(),
                    replay_count = replayed.replay_count, note = %mark.note, "redriven from the DLQ");
                summary.redriven.push(id.clone());
                match self.dead_letters.delete(&message.receipt_handle).await {
                    Ok(()) => Fate::Done,
                    Err(e) => {
                        // Sent, but the DLQ copy stays: a later redrive re-sends it, which
                        // processing absorbs.
                        warn!(event_id = %key.event_id, error = %e, "redriven, but could not delete the DLQ copy");
                        Fate::Done
                    }
                }
            }
        }
    }
}

fn left(summary: &mut RedriveSummary, id: String, reason: &str) -> Fate {
    summary.skipped.push(Skipped {
        id,
        reason: reason.to_owned(),
    });
    Fate::Left
}

/// The pointer in a DLQ message body and the key it names, if valid.
fn pointer(body: &str) -> Option<(QueueMessage, EventKey)> {
    let pointer = QueueMessage::parse(body)?;
    let key = pointer.key()?;
    Some((pointer, key))
}
