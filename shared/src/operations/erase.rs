//! `erase`: remove chosen events' content on request (GDPR) from the console, as
//! `hookctl erase` does ([`crate::erasure`]): each record becomes a tombstone that keeps
//! idempotency, an offloaded payload's object is deleted, and each erase is audited. Run it as
//! a dry run first; `actor` says who erases and why, and goes to the audit record.

use serde::{Deserialize, Serialize};

use super::{OperationError, Operations, event_ref, keys};
use crate::{
    clock::Clock,
    erasure::{ErasureError, erase_event},
    ports::{DeadLetterQueue, Erasure, EventQueue, OperationsStore, TenantNames},
};

/// `{"action": "erase", "tenant": "acme", "provider": "stripe", "ids": ["evt_1"],
/// "actor": "dpo: request 2026-114", "dry_run": true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseArgs {
    pub tenant: String,
    pub provider: String,
    pub ids: Vec<String>,
    pub actor: String,
    #[serde(default)]
    pub dry_run: bool,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EraseSummary {
    pub action: &'static str,
    pub dry_run: bool,
    /// Erased now (or, in a dry run, would be).
    pub erased: Vec<String>,
    /// Found erased already: nothing more to do (a real run still audits the request).
    pub already_erased: Vec<String>,
    pub not_found: Vec<String>,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn erase(&self, args: EraseArgs) -> Result<EraseSummary, OperationError> {
        let actor = args.actor.trim();
        if actor.is_empty() {
            return Err(OperationError::Invalid(
                "actor: say who erases these events and why (it goes to the audit record)".into(),
            ));
        }
        let limit = self.limit(args.limit)?;
        let keys = keys(&args.tenant, &args.provider, &args.ids, limit)?;
        let erasure = Erasure {
            at: self.clock.now(),
            actor: actor.chars().take(200).collect(),
        };
        let mut summary = EraseSummary {
            action: "erase",
            dry_run: args.dry_run,
            ..EraseSummary::default()
        };
        for key in keys {
            let id = event_ref(&key);
            match erase_event(&self.store, &key, &erasure, args.dry_run).await {
                Ok(report) if report.erased > 0 => summary.erased.push(id),
                Ok(_) => summary.already_erased.push(id),
                Err(ErasureError::NotFound { .. }) => summary.not_found.push(id),
                Err(ErasureError::Store(e) | ErasureError::Unaudited(e)) => return Err(e.into()),
            }
        }
        Ok(summary)
    }
}
