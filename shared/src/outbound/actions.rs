//! The outbound recovery actions as console events for the replay function (and `hookctl`):
//! `{"action": "deliveries_redrive", ...}`, `resend`, `recover_failed`, `outbound_reconcile`.
//! Unknown fields are refused, so a misspelt `dry_run` never runs the real thing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Outbound,
    ids::{EndpointId, MessageId},
    ports::{DeliveryQueue, OutboundStore},
    recovery::RecoveryError,
};
use crate::{clock::Clock, ids::TenantId, ports::DeadLetterQueue};

/// The most DLQ messages one redrive reads.
pub const MAX_REDRIVE: usize = 1_000;

/// One outbound action, as pasted into the console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutboundAction {
    /// Start over every dead delivery on the deliveries DLQ.
    DeliveriesRedrive {
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        max: Option<usize>,
    },
    /// Deliver a message again, to one endpoint or to every matching one.
    Resend {
        tenant: String,
        message_id: String,
        #[serde(default)]
        endpoint_id: Option<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Start over an endpoint's dead deliveries since a time (unix seconds).
    RecoverFailed {
        tenant: String,
        endpoint_id: String,
        since: u64,
        #[serde(default)]
        dry_run: bool,
    },
    /// Finish fan-outs, resend lost pointers, release held deliveries (the schedule runs it).
    OutboundReconcile {
        #[serde(default)]
        limit: Option<u32>,
    },
}

impl OutboundAction {
    /// The action names this module answers, for dispatching a console event.
    pub const NAMES: [&'static str; 4] = [
        "deliveries_redrive",
        "resend",
        "recover_failed",
        "outbound_reconcile",
    ];

    /// Whether a console event names an outbound action.
    pub fn is_outbound(event: &Value) -> bool {
        event
            .get("action")
            .and_then(Value::as_str)
            .is_some_and(|name| Self::NAMES.contains(&name))
    }
}

fn tenant(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw).map_err(|e| format!("tenant: {e}"))
}

fn endpoint(raw: &str) -> Result<EndpointId, String> {
    EndpointId::parse(raw).map_err(|e| format!("endpoint_id: {e}"))
}

fn error(problem: impl Into<String>) -> Value {
    json!({ "error": problem.into() })
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    /// Run a console event; the operator's mistakes are an `{"error": ...}` summary with
    /// nothing changed, an outage is an `Err`.
    pub async fn run_json(
        &self,
        event: Value,
        dead_letters: &impl DeadLetterQueue,
    ) -> Result<Value, RecoveryError> {
        let action: OutboundAction = match serde_json::from_value(event) {
            Ok(action) => action,
            Err(e) => return Ok(error(e.to_string())),
        };
        let outcome = match action {
            OutboundAction::DeliveriesRedrive { dry_run, max } => {
                let max = max.unwrap_or(100);
                if max == 0 || max > MAX_REDRIVE {
                    return Ok(error(format!("max must be between 1 and {MAX_REDRIVE}")));
                }
                self.redrive_dead_letters(dead_letters, max, dry_run).await
            }
            OutboundAction::Resend {
                tenant: t,
                message_id,
                endpoint_id,
                dry_run,
            } => {
                let parsed = tenant(&t).and_then(|t| {
                    let id =
                        MessageId::parse(&message_id).map_err(|e| format!("message_id: {e}"))?;
                    let ep = endpoint_id.as_deref().map(endpoint).transpose()?;
                    Ok((t, id, ep))
                });
                let (t, id, ep) = match parsed {
                    Ok(parts) => parts,
                    Err(problem) => return Ok(error(problem)),
                };
                self.resend(&t, &id, ep.as_ref(), dry_run).await
            }
            OutboundAction::RecoverFailed {
                tenant: t,
                endpoint_id,
                since,
                dry_run,
            } => {
                let (t, ep) = match tenant(&t).and_then(|t| Ok((t, endpoint(&endpoint_id)?))) {
                    Ok(parts) => parts,
                    Err(problem) => return Ok(error(problem)),
                };
                let since: SystemTime = UNIX_EPOCH + Duration::from_secs(since);
                self.recover_failed(&t, &ep, since, dry_run).await
            }
            OutboundAction::OutboundReconcile { limit } => {
                let report = self.reconcile(limit.unwrap_or(100).clamp(1, 1_000)).await?;
                return Ok(serde_json::to_value(report).unwrap_or_default());
            }
        };
        match outcome {
            Ok(report) => Ok(serde_json::to_value(report).unwrap_or_default()),
            Err(RecoveryError::Unavailable(e)) => Err(RecoveryError::Unavailable(e)),
            Err(invalid) => Ok(error(invalid.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_event_parses_and_changing_ones_ship_as_dry_runs() {
        for (name, text) in [
            (
                "deliveries_redrive",
                include_str!("../../../events/replay/deliveries_redrive.json"),
            ),
            ("resend", include_str!("../../../events/replay/resend.json")),
            (
                "recover_failed",
                include_str!("../../../events/replay/recover_failed.json"),
            ),
            (
                "outbound_reconcile",
                include_str!("../../../events/replay/outbound_reconcile.json"),
            ),
        ] {
            let value: Value = serde_json::from_str(text).expect("json");
            assert!(OutboundAction::is_outbound(&value), "{name}");
            let action: OutboundAction =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name != "outbound_reconcile" {
                assert_eq!(value["dry_run"], true, "{name} ships as a dry run");
            }
            let _ = action;
        }
        let misspelt =
            json!({"action": "resend", "tenant": "acme", "message_id": "m", "dryrun": true});
        assert!(serde_json::from_value::<OutboundAction>(misspelt).is_err());
    }
}
