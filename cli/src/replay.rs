//! `hookctl replay`: the replay function's actions, run from an operator's machine through the
//! same use cases (`shared::operations`) and the same settings (`ReplaySettings::from_env`), so
//! the console and the command line answer alike.

use std::{io::Write, path::PathBuf};

use serde_json::Value;
use shared::{
    clock::Clock,
    operations::Operations,
    outbound::{
        Outbound,
        ports::{DeliveryQueue, OutboundStore},
    },
    ports::{DeadLetterQueue, EventQueue, OperationsStore, TenantNames},
};

use crate::error::CliError;

/// The action from its argument: JSON, or `@PATH` of a JSON file.
pub fn read_action(raw: &str) -> Result<Value, CliError> {
    let text = match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|source| CliError::ReadAction {
            path: PathBuf::from(path),
            source,
        })?,
        None => raw.to_owned(),
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::Replay(format!("the action is not JSON: {e}")))
}

/// Run the action and print its summary as JSON. A refused action is an error (non-zero exit),
/// its summary printed all the same.
pub async fn run<S, Q, D, T, C>(
    operations: &Operations<S, Q, D, T, C>,
    action: Value,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    let summary = operations
        .run_json(action)
        .await
        .map_err(|e| CliError::Replay(e.to_string()))?;
    print_summary(&summary, out)
}

/// Run an outbound action (`deliveries_redrive`, `resend`, `recover_failed`,
/// `outbound_reconcile`) as the replay function does, and print its summary as JSON.
pub async fn run_outbound<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    dead_letters: &impl DeadLetterQueue,
    action: Value,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    let summary = outbound
        .run_json(action, dead_letters)
        .await
        .map_err(|e| CliError::Replay(e.to_string()))?;
    print_summary(&summary, out)
}

/// The summary as pretty JSON; one that reports an error is an error (non-zero exit), printed
/// all the same.
fn print_summary(summary: &Value, out: &mut dyn Write) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| CliError::Replay(e.to_string()))?;
    writeln!(out, "{text}")?;
    match summary.get("error").and_then(Value::as_str) {
        Some(problem) => Err(CliError::Replay(problem.to_owned())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::{
        clock::ManualClock,
        ids::{EventId, TenantId},
        memory::{MemoryDeadLetterQueue, MemoryDirectory, MemoryEventStore, MemoryQueue},
        provider::Provider,
        record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
        secret::SecretSlot,
    };

    use super::*;

    fn operations() -> Operations<
        MemoryEventStore,
        MemoryQueue,
        MemoryDeadLetterQueue,
        MemoryDirectory,
        ManualClock,
    > {
        Operations::new(
            MemoryEventStore::new(),
            MemoryQueue::new(),
            MemoryDeadLetterQueue::new(),
            MemoryDirectory::new(),
            ManualClock::at_unix(1_700_000_000),
        )
    }

    #[tokio::test]
    async fn replays_a_dead_event_and_prints_the_summary() {
        let ops = operations();
        let key = EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse("evt_1").expect("id"),
        };
        let mut record = EventRecord::received(
            key.clone(),
            None,
            None,
            Correlation::default(),
            Verification::Verified(SecretSlot::Current),
            b"{}".to_vec(),
            std::time::UNIX_EPOCH,
        );
        record.status = EventStatus::Dead;
        ops.store.insert(record);
        let action = read_action(
            r#"{"action":"replay","tenant":"acme","provider":"stripe","ids":["evt_1"],"note":"cli"}"#,
        )
        .expect("json");
        let mut out = Vec::new();

        run(&ops, action, &mut out).await.expect("runs");

        let summary: Value = serde_json::from_slice(&out).expect("json out");
        assert_eq!(summary["replayed"], json!(["acme/stripe/evt_1"]));
        assert_eq!(
            ops.store.record(&key).map(|r| r.status),
            Some(EventStatus::Enqueued)
        );
    }

    #[tokio::test]
    async fn a_refused_action_fails_and_a_missing_file_is_named() {
        let mut out = Vec::new();
        let err = run(&operations(), json!({"action": "explode"}), &mut out)
            .await
            .expect_err("refused");
        assert!(err.to_string().starts_with("replay: "), "{err}");
        let err = read_action("@no/such/file.json").expect_err("missing");
        assert!(err.to_string().contains("no/such/file.json"), "{err}");
    }

    #[tokio::test]
    async fn outbound_actions_run_as_the_replay_function_runs_them_dry_run_first() {
        use shared::{
            memory::{MemoryDeliveryQueue, MemoryOutboundStore},
            outbound::{
                OutboundSettings, actions::OutboundAction, admin::EndpointChange,
                publish::PublishRequest, ssrf::StaticResolver,
            },
        };
        let outbound = Outbound::new(
            MemoryOutboundStore::new(),
            std::sync::Arc::new(MemoryDeliveryQueue::new()),
            ManualClock::at_unix(1_700_000_000),
            OutboundSettings::default(),
        )
        .with_resolver(std::sync::Arc::new(
            StaticResolver::default()
                .with("partner.example", &["93.184.216.34".parse().expect("ip")]),
        ));
        let acme = TenantId::parse("acme").expect("tenant");
        outbound
            .add_endpoint(
                &acme,
                EndpointChange {
                    url: Some("https://partner.example/hooks".into()),
                    ..EndpointChange::default()
                },
                None,
            )
            .await
            .expect("endpoint");
        outbound
            .publish(PublishRequest {
                tenant: &acme,
                event_type: "invoice.paid",
                payload: b"{}",
                idempotency_key: Some("order-1"),
            })
            .await
            .expect("published");
        let sent = outbound.queue.sent().len();
        let dlq = MemoryDeadLetterQueue::new();
        let action =
            json!({"action": "resend", "tenant": "acme", "message_id": "order-1", "dry_run": true});
        assert!(OutboundAction::is_outbound(&action));

        let mut out = Vec::new();
        run_outbound(&outbound, &dlq, action, &mut out)
            .await
            .expect("runs");

        let summary: Value = serde_json::from_slice(&out).expect("json out");
        assert_eq!(summary["dry_run"], true, "{summary}");
        assert_eq!(outbound.queue.sent().len(), sent, "a dry run sends nothing");
        let mut out = Vec::new();
        let refused = run_outbound(
            &outbound,
            &dlq,
            json!({"action": "resend", "tenant": "Not A Tenant", "message_id": "x"}),
            &mut out,
        )
        .await;
        assert!(refused.is_err());
        assert!(String::from_utf8_lossy(&out).contains("error"));
    }

    #[test]
    fn every_console_event_reads_as_an_action() {
        for name in [
            "redrive",
            "replay",
            "reconcile",
            "list",
            "health",
            "discard",
            "deliveries_redrive",
            "resend",
            "recover_failed",
            "outbound_reconcile",
        ] {
            let path = format!(
                "{}/../events/replay/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let action = read_action(&format!("@{path}")).expect("reads");
            assert_eq!(action["action"], name);
        }
    }
}
