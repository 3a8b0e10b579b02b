//! The processor Lambda's adapter: an SQS batch in, a partial batch response out. The work is
//! the processor use case in `shared`.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use shared::{
    aws::{DynamoEventStore, SqsRetryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    handlers::UnknownTypePolicy,
    ports::{EventProcessing, EventStore, RetryQueue},
    processor::{Jitter, Message, Processor, ProcessorSettings, SystemJitter},
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

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        let defaults = ProcessorSettings::default();
        let retention_days: u64 = env.parsed_or("RETENTION_DAYS", 30)?;
        Ok(Self {
            events_table: env.required("EVENTS_TABLE")?,
            projections_table: env.required("PROJECTIONS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            settings: ProcessorSettings {
                lease: Duration::from_secs(env.parsed_or("LEASE_SECS", defaults.lease.as_secs())?),
                schedule: env.parsed_or("RETRY_SCHEDULE", defaults.schedule)?,
                unknown_types: env.parsed_or("UNKNOWN_EVENT_TYPES", UnknownTypePolicy::Ignore)?,
                retention: Duration::from_secs(retention_days.saturating_mul(24 * 60 * 60)),
                concurrency: env.parsed_or("BATCH_CONCURRENCY", defaults.concurrency)?,
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
