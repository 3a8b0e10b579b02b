//! The replay Lambda's adapter: a JSON action in (a console test event, or the schedule's
//! reconcile), a JSON summary out. The work is the replay use cases in `shared`.
//!
//! Input the operator got wrong is answered as `{"error": "..."}` with nothing changed; a
//! storage or queue outage fails the invocation, so the schedule's errors show in metrics.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use shared::{
    aws::{
        DynamoEventStore, DynamoOutboundStore, DynamoTenantNames, SqsDeadLetterQueue,
        SqsDeliveryQueue, SqsEventQueue,
    },
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    erasure::{EraseMessageArgs, erase_message_action},
    operations::{Operations, ReplaySettings},
    outbound::{Outbound, OutboundSettings, actions::OutboundAction},
};
use tracing::{error, info};

/// The operations wired to DynamoDB and SQS, as deployed.
pub type AwsOperations =
    Operations<DynamoEventStore, SqsEventQueue, SqsDeadLetterQueue, DynamoTenantNames, SystemClock>;

/// The outbound recovery use cases wired to DynamoDB and SQS, as deployed.
pub type AwsOutbound = Outbound<DynamoOutboundStore, SqsDeliveryQueue, SystemClock>;

/// Both sides' operator actions, and the deliveries DLQ the outbound redrive drains.
#[derive(Debug)]
pub struct Replay {
    pub operations: AwsOperations,
    pub outbound: AwsOutbound,
    pub deliveries_dlq: SqsDeadLetterQueue,
}

impl Replay {
    /// Run a console event on the side it names; the operator's mistakes are an
    /// `{"error": ...}` summary, an outage an `Err`.
    pub async fn run_json(&self, event: Value) -> Result<Value, Error> {
        // A message's erasure touches both sides: the message, and the audit in the events table.
        if event.get("action").and_then(Value::as_str) == Some(EraseMessageArgs::ACTION) {
            let now = self.operations.clock.now();
            return Ok(erase_message_action(
                &self.outbound.store,
                &self.operations.store,
                event,
                now,
            )
            .await?);
        }
        if OutboundAction::is_outbound(&event) {
            Ok(self.outbound.run_json(event, &self.deliveries_dlq).await?)
        } else {
            Ok(self.operations.run_json(event).await?)
        }
    }
}

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub events_table: String,
    pub tenants_table: String,
    pub events_queue_url: String,
    pub dead_letter_queue_url: String,
    /// Where payloads too large for their record are kept.
    pub payloads_bucket: String,
    pub settings: ReplaySettings,
    pub outbound_table: String,
    pub deliveries_queue_url: String,
    pub deliveries_dlq_url: String,
    pub outbound: OutboundSettings,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        Ok(Self {
            events_table: env.required("EVENTS_TABLE")?,
            tenants_table: env.required("TENANTS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            payloads_bucket: env.required("PAYLOADS_BUCKET")?,
            settings: ReplaySettings::from_env(&env)?,
            outbound_table: env.required("OUTBOUND_TABLE")?,
            deliveries_queue_url: env.required("DELIVERIES_QUEUE_URL")?,
            deliveries_dlq_url: env.required("DELIVERIES_DLQ_URL")?,
            outbound: OutboundSettings {
                retention: env.retention()?,
                ..OutboundSettings::default()
            },
        })
    }
}

/// Build the deployed operations: SDK clients once per cold start. The outbound side reads
/// endpoints without their secrets: this function has no KMS access.
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> Replay {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let operations = Operations::new(
        DynamoEventStore::new(dynamodb.clone(), &config.events_table)
            .with_payloads(shared::aws::s3_on_first_use(sdk), &config.payloads_bucket),
        SqsEventQueue::new(sqs.clone(), &config.events_queue_url),
        SqsDeadLetterQueue::new(sqs.clone(), &config.dead_letter_queue_url),
        DynamoTenantNames::new(dynamodb.clone(), &config.tenants_table),
        SystemClock,
    )
    .with_settings(config.settings.clone());
    let outbound = Outbound::new(
        DynamoOutboundStore::without_secrets(dynamodb, &config.outbound_table),
        SqsDeliveryQueue::new(
            sqs.clone(),
            &config.deliveries_queue_url,
            &config.deliveries_dlq_url,
        ),
        SystemClock,
        config.outbound.clone(),
    );
    Replay {
        operations,
        outbound,
        deliveries_dlq: SqsDeadLetterQueue::new(sqs, &config.deliveries_dlq_url),
    }
}

/// Run one action from its console event; its summary.
pub async fn handle(replay: &Replay, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let action = event
        .payload
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned();
    let request_id = event.context.request_id.clone();
    match replay.run_json(event.payload).await {
        Ok(summary) => {
            info!(action, request_id, summary = %summary, "operator action done");
            Ok(summary)
        }
        Err(e) => {
            error!(action, request_id, error = %e, "operator action failed");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::operations::Action;

    use super::*;

    #[test]
    fn every_console_event_is_a_valid_action_and_changing_ones_are_dry_runs() {
        let events = [
            (
                "redrive",
                include_str!("../../../events/replay/redrive.json"),
            ),
            ("replay", include_str!("../../../events/replay/replay.json")),
            (
                "reconcile",
                include_str!("../../../events/replay/reconcile.json"),
            ),
            ("list", include_str!("../../../events/replay/list.json")),
            ("health", include_str!("../../../events/replay/health.json")),
            (
                "discard",
                include_str!("../../../events/replay/discard.json"),
            ),
            ("erase", include_str!("../../../events/replay/erase.json")),
        ];
        for (name, text) in events {
            let value: Value = serde_json::from_str(text).expect("json");
            let action: Action =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(action.name(), name);
            if !matches!(name, "list" | "health") {
                assert_eq!(value["dry_run"], true, "{name} ships as a dry run");
            }
        }
    }

    #[test]
    fn the_message_erasure_console_event_parses_and_ships_as_a_dry_run() {
        let text = include_str!("../../../events/replay/erase_message.json");
        let args: EraseMessageArgs = serde_json::from_str(text).expect("erase_message");
        assert_eq!(args.action, EraseMessageArgs::ACTION);
        assert!(args.dry_run);
    }

    #[test]
    fn configuration_comes_from_the_environment() {
        let env = |name: &str| match name {
            "EVENTS_TABLE" => Some("events".to_owned()),
            "TENANTS_TABLE" => Some("tenants".to_owned()),
            "EVENTS_QUEUE_URL" => Some("https://q".to_owned()),
            "DEAD_LETTER_QUEUE_URL" => Some("https://dlq".to_owned()),
            "PAYLOADS_BUCKET" => Some("payloads".to_owned()),
            "OUTBOUND_TABLE" => Some("outbound".to_owned()),
            "DELIVERIES_QUEUE_URL" => Some("https://deliveries".to_owned()),
            "DELIVERIES_DLQ_URL" => Some("https://deliveries-dlq".to_owned()),
            "RETRY_SCHEDULE" => Some("0,1,2".to_owned()),
            "STUCK_AFTER_SECS" => Some("600".to_owned()),
            _ => None,
        };
        let config = Config::from_lookup(env).expect("config");
        assert_eq!(config.settings.schedule.max_attempts(), 3);
        assert_eq!(
            config.settings.stuck_after,
            std::time::Duration::from_secs(600)
        );
        assert!(matches!(
            Config::from_lookup(|_| None),
            Err(EnvError::Missing("EVENTS_TABLE"))
        ));
    }
}
