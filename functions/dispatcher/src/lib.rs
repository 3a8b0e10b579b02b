//! The dispatcher Lambda's adapter: a deliveries-queue batch in, a partial batch response out.
//! The work is the dispatcher use case in `shared::outbound`.

use std::{sync::Arc, time::Duration};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use shared::{
    aws::{DynamoOutboundStore, SqsDeliveryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    outbound::{
        Outbound, OutboundSettings,
        dispatch::{Dispatcher, SlowLane},
        ports::{DeliveryQueue, DeliveryRetryQueue, OutboundStore, Transport},
        ssrf::{EgressPolicy, LowPorts},
        transport::HttpTransport,
    },
    processor::{Jitter, SystemJitter},
};

/// The dispatcher wired to DynamoDB, SQS and the network, as deployed.
pub type AwsDispatcher = Dispatcher<
    DynamoOutboundStore,
    SqsDeliveryQueue,
    SqsDeliveryQueue,
    HttpTransport,
    SystemClock,
    SystemJitter,
>;

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub outbound_table: String,
    pub deliveries_queue_url: String,
    pub deliveries_dlq_url: String,
    pub secrets_key: String,
    /// The inbound events' bucket: relayed payloads too large for a message's item are
    /// delivered from it.
    pub payloads_bucket: String,
    /// The slow lane's queue; without it, every delivery is attempted on the main lane.
    pub slow_deliveries_queue_url: Option<String>,
    /// Which queue this function consumes (`DISPATCHER_LANE`).
    pub lane: Lane,
    pub settings: OutboundSettings,
}

/// The queue a dispatcher consumes ([`shared::outbound::lanes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The deliveries queue: slow endpoints' pointers go on to the slow lane.
    Main,
    /// The slow lane's queue: every pointer is attempted here.
    Slow,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    /// The egress policy is always the public one: nothing in a deployment can open the SSRF
    /// guard (the local stack builds its own configuration).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        Ok(Self {
            outbound_table: env.required("OUTBOUND_TABLE")?,
            deliveries_queue_url: env.required("DELIVERIES_QUEUE_URL")?,
            deliveries_dlq_url: env.required("DELIVERIES_DLQ_URL")?,
            secrets_key: env.required("SECRETS_KEY_ID")?,
            payloads_bucket: env.required("PAYLOADS_BUCKET")?,
            slow_deliveries_queue_url: env.0("SLOW_DELIVERIES_QUEUE_URL"),
            lane: match env.0("DISPATCHER_LANE").as_deref() {
                None | Some("main") => Lane::Main,
                Some("slow") => Lane::Slow,
                Some(other) => {
                    return Err(EnvError::Invalid {
                        name: "DISPATCHER_LANE",
                        problem: format!("{other:?} is neither main nor slow"),
                    });
                }
            },
            settings: outbound_settings(&env)?,
        })
    }
}

/// The outbound knobs every function that runs the outbound use cases reads alike.
pub fn outbound_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<OutboundSettings, EnvError> {
    let defaults = OutboundSettings::default();
    let schedule = match env.0("DELIVERY_SCHEDULE") {
        None => defaults.schedule.clone(),
        Some(raw) => raw
            .parse()
            .map_err(|e: shared::retry::ScheduleError| EnvError::Invalid {
                name: "DELIVERY_SCHEDULE",
                problem: e.to_string(),
            })?,
    };
    let attempt_timeout = Duration::from_secs(env.parsed_within(
        "ATTEMPT_TIMEOUT_SECS",
        defaults.attempt_timeout.as_secs(),
        1..=shared::outbound::MAX_ATTEMPT_TIMEOUT.as_secs(),
    )?);
    Ok(OutboundSettings {
        schedule,
        attempt_timeout,
        lease: OutboundSettings::lease_for(attempt_timeout),
        disable_after: Duration::from_secs(
            env.parsed_within(
                "DISABLE_AFTER_HOURS",
                defaults.disable_after.as_secs() / 3_600,
                1..=720,
            )? * 3_600,
        ),
        retention: env.retention()?,
        concurrency: env.parsed_within("BATCH_CONCURRENCY", defaults.concurrency, 1..=10)?,
        max_endpoints: env.parsed_within(
            "MAX_ENDPOINTS_PER_TENANT",
            defaults.max_endpoints,
            1..=10_000,
        )?,
        egress: EgressPolicy {
            low_ports: match env.0("EGRESS_ALLOWED_PORTS") {
                None => LowPorts::NONE,
                Some(raw) => LowPorts::parse(&raw).map_err(|problem| EnvError::Invalid {
                    name: "EGRESS_ALLOWED_PORTS",
                    problem,
                })?,
            },
            ..EgressPolicy::PUBLIC
        },
        ..defaults
    })
}

/// Build the deployed dispatcher: SDK clients and the HTTP client once per cold start.
pub fn build(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Result<AwsDispatcher, std::io::Error> {
    let transport = HttpTransport::with_resolver(
        config.settings.egress,
        Arc::new(shared::outbound::ssrf::SystemResolver),
    )?;
    Ok(build_with(sdk, config, transport))
}

/// The deployed dispatcher over another transport (the cost meter's partner that answers at
/// once): the same store, queues and settings.
pub fn build_with<T: Transport>(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    transport: T,
) -> Dispatcher<DynamoOutboundStore, SqsDeliveryQueue, SqsDeliveryQueue, T, SystemClock, SystemJitter>
{
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let on = |url: &str| SqsDeliveryQueue::new(sqs.clone(), url, &config.deliveries_dlq_url);
    let queue = on(&config.deliveries_queue_url);
    let slow = config.slow_deliveries_queue_url.as_deref().map(on);
    // The queue this function consumes: where its messages' visibility is changed.
    let consumed = match (config.lane, &slow) {
        (Lane::Slow, Some(slow)) => slow.clone(),
        _ => queue.clone(),
    };
    let store = DynamoOutboundStore::new(
        dynamodb,
        &config.outbound_table,
        shared::aws::secrets_keys(sdk, &config.secrets_key),
    )
    .with_payloads(shared::aws::s3_on_first_use(sdk), &config.payloads_bucket);
    let dispatcher = Dispatcher::new(
        Outbound::new(store, queue, SystemClock, config.settings.clone()),
        consumed,
        transport,
        SystemJitter,
    );
    match (config.lane, slow) {
        (Lane::Main, Some(slow)) => dispatcher.with_slow_lane(SlowLane::new(Arc::new(slow))),
        _ => dispatcher,
    }
}

/// Handle one SQS batch: every delivery on its own; the ones to retry listed for SQS.
pub async fn handle<S, Q, R, T, C, J>(
    dispatcher: &Dispatcher<S, Q, R, T, C, J>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    R: DeliveryRetryQueue,
    T: Transport,
    C: Clock,
    J: Jitter,
{
    let invocation = &event.context.request_id;
    Ok(
        shared::batch::respond(&event.payload, |messages| async move {
            dispatcher.dispatch_batch(&messages, invocation).await
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
        ids::TenantId,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore, ScriptedTransport},
        outbound::{admin::EndpointChange, publish::PublishRequest, ssrf::StaticResolver},
        processor::NoJitter,
    };

    use super::*;

    #[tokio::test]
    async fn a_batch_reports_only_the_deliveries_that_must_come_back() {
        // GIVEN one message published to an endpoint that fails and to one that answers
        let queue = Arc::new(MemoryDeliveryQueue::new());
        let resolver = StaticResolver::default()
            .with("failing.example", &["93.184.216.34".parse().expect("ip")])
            .with("fine.example", &["93.184.216.35".parse().expect("ip")]);
        let outbound = Outbound::new(
            MemoryOutboundStore::new(),
            queue.clone(),
            ManualClock::at_unix(1_750_000_000),
            OutboundSettings::default(),
        )
        .with_resolver(Arc::new(resolver));
        let transport = ScriptedTransport::new();
        transport.script(
            "https://failing.example/in",
            vec![ScriptedTransport::status(500)],
        );
        let dispatcher = Dispatcher::new(outbound, queue.clone(), transport, NoJitter);
        let tenant = TenantId::parse("acme").expect("tenant");
        let mut failing = None;
        for url in ["https://failing.example/in", "https://fine.example/in"] {
            let endpoint = dispatcher
                .outbound
                .add_endpoint(
                    &tenant,
                    EndpointChange {
                        url: Some(url.into()),
                        ..EndpointChange::default()
                    },
                    None,
                )
                .await
                .expect("endpoint");
            failing.get_or_insert(endpoint.id);
        }
        let failing = failing.expect("the failing endpoint").to_string();
        dispatcher
            .outbound
            .publish(PublishRequest {
                tenant: &tenant,
                event_type: "invoice.paid",
                payload: br#"{"id":"inv_1"}"#,
                idempotency_key: Some("order-1"),
            })
            .await
            .expect("published");
        // The failing endpoint's pointer first, then the fine one's, then garbage.
        let mut pointers = queue.drain();
        pointers.sort_by_key(|p| p.endpoint_id != failing);
        let mut records: Vec<SqsMessage> = pointers
            .iter()
            .enumerate()
            .map(|(n, p)| record(&format!("m-{n}"), &p.to_json()))
            .collect();
        records.push(record("m-garbage", "not a pointer"));

        // WHEN the batch arrives
        let mut payload = SqsEvent::default();
        payload.records = records;
        let mut context = Context::default();
        context.request_id = "invocation-1".into();
        let response = handle(&dispatcher, LambdaEvent::new(payload, context))
            .await
            .expect("answered");

        // THEN only the failing endpoint's delivery is reported, to come back on its schedule
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m-0"]);
    }

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.receipt_handle = Some(format!("receipt-{id}"));
        message.body = Some(body.to_owned());
        message.attributes =
            HashMap::from([("ApproximateReceiveCount".to_owned(), "1".to_owned())]);
        message
    }

    #[test]
    fn configuration_comes_from_the_environment_and_never_opens_the_guard() {
        let env = |name: &str| match name {
            "OUTBOUND_TABLE" => Some("outbound".to_owned()),
            "DELIVERIES_QUEUE_URL" => Some("https://q".to_owned()),
            "DELIVERIES_DLQ_URL" => Some("https://dlq".to_owned()),
            "SECRETS_KEY_ID" => Some("alias/k".to_owned()),
            "PAYLOADS_BUCKET" => Some("payloads".to_owned()),
            "DELIVERY_SCHEDULE" => Some("0,5,60".to_owned()),
            "ATTEMPT_TIMEOUT_SECS" => Some("10".to_owned()),
            _ => None,
        };
        let config = Config::from_lookup(env).expect("config");
        assert_eq!(config.settings.schedule.max_attempts(), 3);
        assert_eq!(config.settings.attempt_timeout, Duration::from_secs(10));
        // The lease covers the attempt and its writes, within the function's 60 s.
        assert_eq!(config.settings.lease, Duration::from_secs(25));
        assert_eq!(config.settings.egress, EgressPolicy::PUBLIC);
        assert!(matches!(
            Config::from_lookup(|_| None),
            Err(EnvError::Missing("OUTBOUND_TABLE"))
        ));
        let too_slow = |name: &str| match name {
            "ATTEMPT_TIMEOUT_SECS" => Some("46".to_owned()),
            other => env(other),
        };
        assert!(Config::from_lookup(too_slow).is_err());

        // The lane: main unless told; anything else is refused.
        assert_eq!(config.lane, Lane::Main);
        assert_eq!(config.slow_deliveries_queue_url, None);
        let slow = |name: &str| match name {
            "DISPATCHER_LANE" => Some("slow".to_owned()),
            "SLOW_DELIVERIES_QUEUE_URL" => Some("https://slow".to_owned()),
            other => env(other),
        };
        let config = Config::from_lookup(slow).expect("config");
        assert_eq!(
            (config.lane, config.slow_deliveries_queue_url.as_deref()),
            (Lane::Slow, Some("https://slow"))
        );
        let odd = |name: &str| match name {
            "DISPATCHER_LANE" => Some("fast".to_owned()),
            other => env(other),
        };
        assert!(Config::from_lookup(odd).is_err());

        // Ports below 1024 opened by the operator, and nothing else.
        let ports = |raw: &'static str| {
            move |name: &str| match name {
                "EGRESS_ALLOWED_PORTS" => Some(raw.to_owned()),
                other => env(other),
            }
        };
        let opened = Config::from_lookup(ports("80")).expect("config");
        assert!(opened.settings.egress.allows_port(80));
        assert!(!opened.settings.egress.allows_port(22));
        assert!(!opened.settings.egress.allow_loopback);
        assert!(Config::from_lookup(ports("8080")).is_err());
    }
}
