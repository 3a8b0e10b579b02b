//! `hookctl replay`: the replay function's actions, run from an operator's machine through the
//! same use cases (`shared::operations`) and the same settings (`ReplaySettings::from_env`), so
//! the console and the command line answer alike.

use std::{io::Write, path::PathBuf};

use serde_json::Value;
use shared::{
    clock::Clock,
    operations::Operations,
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

    #[test]
    fn every_console_event_reads_as_an_action() {
        for name in [
            "redrive",
            "replay",
            "reconcile",
            "list",
            "health",
            "discard",
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
