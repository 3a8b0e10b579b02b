//! The processor Lambda's adapter: an SQS batch in, a partial batch response out. The work is
//! the processor use case in `shared`.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use shared::{
    aws::{DynamoEventStore, SqsRetryQueue},
    clock::{Clock, SystemClock},
    handlers::UnknownTypePolicy,
    ports::{EventProcessing, EventStore, RetryQueue},
    processor::{Jitter, Message, Processor, ProcessorSettings, SystemJitter},
    retry::RetrySchedule,
};
use thiserror::Error;
use tracing::error;

/// The processor wired to DynamoDB and SQS, as deployed.
pub type AwsProcessor = Processor<DynamoEventStore, SqsRetryQueue, SystemClock, SystemJitter>;

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub events_table: String,
    pub projections_table: String,
    pub events_queue_url: String,
    pub dead_letter_queue_url: String,
    pub settings: ProcessorSettings,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let invalid =
            |name: &'static str| move |problem: String| ConfigError::Invalid { name, problem };
        let number = |name: &'static str, default: u64| match lookup(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|e| invalid(name)(e.to_string())),
        };
        let defaults = ProcessorSettings::default();
        let schedule = match lookup("RETRY_SCHEDULE") {
            None => defaults.schedule.clone(),
            Some(v) => v
                .parse::<RetrySchedule>()
                .map_err(|e| invalid("RETRY_SCHEDULE")(e.to_string()))?,
        };
        let unknown_types = match lookup("UNKNOWN_EVENT_TYPES") {
            None => UnknownTypePolicy::Ignore,
            Some(v) => v
                .parse()
                .map_err(|e: shared::handlers::UnknownPolicyName| {
                    invalid("UNKNOWN_EVENT_TYPES")(e.to_string())
                })?,
        };
        let concurrency = usize::try_from(number("BATCH_CONCURRENCY", 4)?)
            .map_err(|e| invalid("BATCH_CONCURRENCY")(e.to_string()))?;
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            projections_table: required("PROJECTIONS_TABLE")?,
            events_queue_url: required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL")?,
            settings: ProcessorSettings {
                lease: Duration::from_secs(number("LEASE_SECS", defaults.lease.as_secs())?),
                schedule,
                unknown_types,
                retention: Duration::from_secs(
                    number("RETENTION_DAYS", 30)?.saturating_mul(24 * 60 * 60),
                ),
                concurrency,
            },
        })
    }
}

/// Build the deployed processor: SDK clients once per cold start.
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> AwsProcessor {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    Processor::new(
        DynamoEventStore::new(dynamodb, &config.events_table)
            .with_projections(&config.projections_table),
        SqsRetryQueue::new(sqs, &config.events_queue_url, &config.dead_letter_queue_url),
        SystemClock,
        SystemJitter,
        config.settings.clone(),
    )
}

/// A batch the processor cannot answer for message by message.
#[derive(Debug, Error)]
#[error(
    "an SQS record has no message id, so its failure could not be reported alone; retrying the batch"
)]
pub struct MissingMessageId;

/// The processor's messages from an SQS event. A record without a message id cannot be reported
/// alone, so the batch is refused whole (and retried; processing is idempotent) rather than
/// reported with an empty identifier.
pub fn messages(event: &SqsEvent) -> Result<Vec<Message>, MissingMessageId> {
    event
        .records
        .iter()
        .map(|record| {
            let message_id = record
                .message_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or(MissingMessageId)?;
            Ok(Message {
                message_id,
                receipt_handle: record.receipt_handle.clone(),
                body: record.body.clone().unwrap_or_default(),
                receive_count: record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
            })
        })
        .collect()
}

/// Handle one SQS batch: every record on its own; the failed ones listed for SQS to retry.
pub async fn handle<S, Q, C, J>(
    processor: &Processor<S, Q, C, J>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error>
where
    S: EventStore + EventProcessing,
    Q: RetryQueue,
    C: Clock,
    J: Jitter,
{
    let messages =
        messages(&event.payload).inspect_err(|e| error!(error = %e, "refusing the batch"))?;
    let mut response = SqsBatchResponse::default();
    for failed in processor
        .process_batch(&messages, &event.context.request_id)
        .await
    {
        response.add_failure(failed);
    }
    Ok(response)
}
