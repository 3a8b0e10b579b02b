//! The processor Lambda's adapter: an SQS batch in, a partial batch response out. The work is
//! the processor use case in `shared`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use shared::{
    aws::{DynamoEventStore, DynamoOutboundStore, SqsDeliveryQueue, SqsRetryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    outbound::{Outbound, OutboundSettings, relay::InboundRelay},
    ports::{ProcessorStore, RetryQueue},
    processor::{Jitter, Processor, ProcessorSettings, SystemJitter},
    projectors::UnknownTypePolicy,
};

/// The processor wired to DynamoDB and SQS, as deployed.
pub type AwsProcessor = Processor<DynamoEventStore, SqsRetryQueue, SystemClock, SystemJitter>;

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub events_table: String,
    pub projections_table: String,
    pub events_queue_url: String,
    pub dead_letter_queue_url: String,
    /// Where payloads too large for their record are kept.
    pub payloads_bucket: String,
    pub settings: ProcessorSettings,
    /// Where processed events are relayed to partners, for tenants that ask for it; `None`
    /// in a deployment without the outbound side.
    pub relay: Option<RelayConfig>,
}

/// The outbound table and deliveries queue the relay publishes through.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub outbound_table: String,
    pub deliveries_queue_url: String,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        let defaults = ProcessorSettings::default();
        Ok(Self {
            events_table: env.required("EVENTS_TABLE")?,
            projections_table: env.required("PROJECTIONS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            payloads_bucket: env.required("PAYLOADS_BUCKET")?,
            // Half a relay would process a relaying tenant's events without relaying them.
            relay: match (env.0("OUTBOUND_TABLE"), env.0("DELIVERIES_QUEUE_URL")) {
                (Some(outbound_table), Some(deliveries_queue_url)) => Some(RelayConfig {
                    outbound_table,
                    deliveries_queue_url,
                }),
                (None, None) => None,
                _ => {
                    return Err(EnvError::Invalid {
                        name: "OUTBOUND_TABLE",
                        problem: "set both OUTBOUND_TABLE and DELIVERIES_QUEUE_URL, or neither"
                            .into(),
                    });
                }
            },
            settings: ProcessorSettings {
                lease: env.lease()?,
                schedule: env.retry_schedule()?,
                unknown_types: env.parsed_or("UNKNOWN_EVENT_TYPES", UnknownTypePolicy::Ignore)?,
                retention: env.retention()?,
                concurrency: env.parsed_within(
                    "BATCH_CONCURRENCY",
                    defaults.concurrency,
                    1..=10,
                )?,
            },
        })
    }
}

/// Build the deployed processor: SDK clients once per cold start.
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> AwsProcessor {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let processor = Processor::new(
        DynamoEventStore::new(dynamodb.clone(), &config.events_table)
            .with_projections(&config.projections_table)
            .with_payloads(shared::aws::s3_on_first_use(sdk), &config.payloads_bucket),
        SqsRetryQueue::new(
            sqs.clone(),
            &config.events_queue_url,
            &config.dead_letter_queue_url,
        ),
        SystemClock,
        SystemJitter,
        config.settings.clone(),
    );
    match &config.relay {
        // The relay publishes without reading endpoint secrets: no KMS access.
        Some(relay) => processor.with_relay(Arc::new(InboundRelay::new(Outbound::new(
            DynamoOutboundStore::without_secrets(dynamodb, &relay.outbound_table),
            SqsDeliveryQueue::new(sqs, &relay.deliveries_queue_url, String::new()),
            SystemClock,
            OutboundSettings {
                retention: config.settings.retention,
                ..OutboundSettings::default()
            },
        )))),
        None => processor,
    }
}

/// Handle one SQS batch: every record on its own; the failed ones listed for SQS to retry.
pub async fn handle<S, Q, C, J>(
    processor: &Processor<S, Q, C, J>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error>
where
    S: ProcessorStore,
    Q: RetryQueue,
    C: Clock,
    J: Jitter,
{
    Ok(
        shared::batch::respond(&event.payload, |messages| async move {
            processor.process_batch(&messages).await
        })
        .await?,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_lambda_events::event::sqs::SqsMessage;
    use lambda_runtime::Context;
    use shared::{
        clock::ManualClock,
        ids::{EventId, TenantId},
        memory::{MemoryEventStore, MemoryRetryQueue},
        message::QueueMessage,
        provider::Provider,
        record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
        secret::SecretSlot,
    };

    use super::*;

    const NOW: u64 = 1_750_000_000;
    const INVOICE_PAID: &str = include_str!("../../../events/payloads/stripe/invoice.paid.json");

    type MemoryProcessor =
        Processor<MemoryEventStore, MemoryRetryQueue, ManualClock, shared::processor::NoJitter>;

    fn processor() -> MemoryProcessor {
        Processor::new(
            MemoryEventStore::new(),
            MemoryRetryQueue::new(),
            ManualClock::at_unix(NOW),
            shared::processor::NoJitter,
            ProcessorSettings::default(),
        )
    }

    fn key(id: &str) -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse(id).expect("id"),
        }
    }

    /// GIVEN a stored, enqueued invoice.paid event with id `id`.
    fn stored(p: &MemoryProcessor, id: &str) -> EventKey {
        let key = key(id);
        let body = INVOICE_PAID.replace("evt_1PayloadInvoicePaid0001", id);
        let mut record = EventRecord::received(
            key.clone(),
            Some("invoice.paid".into()),
            None,
            Correlation::default(),
            Verification::Verified(SecretSlot::Current),
            body.into_bytes(),
            p.clock.now(),
        );
        record.status = EventStatus::Enqueued;
        p.store.insert(record);
        key
    }

    /// An SQS record as Lambda delivers it, pointing at `key`.
    fn record(message_id: Option<&str>, key: &EventKey, receive_count: Option<&str>) -> SqsMessage {
        let mut attributes = HashMap::new();
        if let Some(n) = receive_count {
            attributes.insert("ApproximateReceiveCount".to_owned(), n.to_owned());
        }
        let mut message = SqsMessage::default();
        message.message_id = message_id.map(str::to_owned);
        message.receipt_handle = message_id.map(|id| format!("receipt-{id}"));
        message.body = Some(
            serde_json::to_string(&QueueMessage::new(key, &Correlation::default())).expect("json"),
        );
        message.attributes = attributes;
        message
    }

    fn event(records: Vec<SqsMessage>) -> LambdaEvent<SqsEvent> {
        let mut payload = SqsEvent::default();
        payload.records = records;
        let mut context = Context::default();
        context.request_id = "invocation-1".into();
        LambdaEvent::new(payload, context)
    }

    fn failures(response: &SqsBatchResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_reports_only_the_messages_that_must_come_back() {
        // GIVEN two stored events and a pointer to one that is not stored yet
        let p = processor();
        let a = stored(&p, "evt_a");
        let b = stored(&p, "evt_b");
        let missing = key("evt_missing");

        // WHEN the batch arrives
        let response = handle(
            &p,
            event(vec![
                record(Some("m-a"), &a, Some("1")),
                record(Some("m-missing"), &missing, Some("1")),
                record(Some("m-b"), &b, Some("1")),
            ]),
        )
        .await
        .expect("answered");

        // THEN only the missing one is reported, by its message id
        assert_eq!(failures(&response), ["m-missing"]);
        for k in [&a, &b] {
            assert_eq!(
                p.store.record(k).expect("record").status,
                EventStatus::Processed
            );
        }
    }

    #[tokio::test]
    async fn a_record_without_a_message_id_refuses_the_batch_rather_than_report_an_empty_id() {
        let p = processor();
        let a = stored(&p, "evt_a");

        let result = handle(&p, event(vec![record(None, &a, Some("1"))])).await;

        assert!(result.is_err());
        // Nothing was processed: the whole batch comes back, and processing is idempotent.
        assert_eq!(
            p.store.record(&a).expect("record").status,
            EventStatus::Enqueued
        );
    }

    #[tokio::test]
    async fn receive_counts_reach_the_processor_and_a_missing_one_counts_as_the_first() {
        // GIVEN a commit that fails, so the receive count decides the delay
        let p = processor();
        let a = stored(&p, "evt_a");
        let b = stored(&p, "evt_b");
        p.store.set_commits_failing(true);

        let response = handle(
            &p,
            event(vec![
                record(Some("m-a"), &a, Some("3")),
                record(Some("m-b"), &b, None),
            ]),
        )
        .await
        .expect("answered");

        assert_eq!(failures(&response).len(), 2);
        // Receive 3 of six is not the last: a failed attempt, backed off on the schedule.
        assert_eq!(
            p.store.record(&a).expect("record").status,
            EventStatus::Failed
        );
        let delays: HashMap<String, u64> = p
            .queue
            .delays()
            .into_iter()
            .map(|(receipt, delay)| (receipt, delay.as_secs()))
            .collect();
        // A missing count is the first receive: the second attempt waits 60 s. Receive 3 was
        // the third attempt (attempts count from the message, where it is ahead of the
        // record): the fourth waits 1800 s.
        assert_eq!(delays["receipt-m-b"], 60);
        assert_eq!(delays["receipt-m-a"], 1800);
    }

    #[tokio::test]
    async fn the_last_receive_gives_up_into_the_dlq_and_is_not_reported() {
        let p = processor();
        let a = stored(&p, "evt_a");
        p.store.set_commits_failing(true);

        let response = handle(&p, event(vec![record(Some("m-a"), &a, Some("6"))]))
            .await
            .expect("answered");

        assert!(failures(&response).is_empty());
        assert_eq!(p.queue.dead_letters().len(), 1);
        assert_eq!(
            p.store.record(&a).expect("record").status,
            EventStatus::Dead
        );
    }

    #[test]
    fn configuration_comes_from_the_environment() {
        let env = |name: &str| match name {
            "EVENTS_TABLE" => Some("events".to_owned()),
            "PROJECTIONS_TABLE" => Some("projections".to_owned()),
            "EVENTS_QUEUE_URL" => Some("https://q".to_owned()),
            "DEAD_LETTER_QUEUE_URL" => Some("https://dlq".to_owned()),
            "PAYLOADS_BUCKET" => Some("payloads".to_owned()),
            "RETRY_SCHEDULE" => Some("0,1,2".to_owned()),
            "RETENTION_DAYS" => Some("7".to_owned()),
            _ => None,
        };
        let config = Config::from_lookup(env).expect("config");
        assert_eq!(config.settings.schedule.max_attempts(), 3);
        assert_eq!(
            config.settings.retention,
            std::time::Duration::from_secs(7 * 86_400)
        );
        let huge = |name: &str| match name {
            "RETENTION_DAYS" => Some("18446744073709551615".to_owned()),
            other => env(other),
        };
        assert!(Config::from_lookup(huge).is_err());
        assert!(config.relay.is_none(), "no outbound side, no relay");
        let half = |name: &str| match name {
            "OUTBOUND_TABLE" => Some("outbound".to_owned()),
            other => env(other),
        };
        assert!(
            Config::from_lookup(half).is_err(),
            "half a relay is refused"
        );
    }
}
