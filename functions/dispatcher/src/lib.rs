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
        dispatch::Dispatcher,
        ports::{DeliveryQueue, DeliveryRetryQueue, OutboundStore, Transport},
        ssrf::EgressPolicy,
        transport::HttpTransport,
    },
    processor::{Jitter, SystemJitter, messages},
};
use tracing::error;

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
    pub settings: OutboundSettings,
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
        egress: EgressPolicy::PUBLIC,
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
    let queue = SqsDeliveryQueue::new(
        sqs,
        &config.deliveries_queue_url,
        &config.deliveries_dlq_url,
    );
    let store = DynamoOutboundStore::new(
        dynamodb,
        &config.outbound_table,
        shared::aws::secrets_keys(sdk, &config.secrets_key),
    );
    Dispatcher::new(
        Outbound::new(store, queue.clone(), SystemClock, config.settings.clone()),
        queue,
        transport,
        SystemJitter,
    )
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
    let messages =
        messages(&event.payload).inspect_err(|e| error!(error = %e, "refusing the batch"))?;
    let mut response = SqsBatchResponse::default();
    for failed in dispatcher
        .dispatch_batch(&messages, &event.context.request_id)
        .await
    {
        response.add_failure(failed);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_comes_from_the_environment_and_never_opens_the_guard() {
        let env = |name: &str| match name {
            "OUTBOUND_TABLE" => Some("outbound".to_owned()),
            "DELIVERIES_QUEUE_URL" => Some("https://q".to_owned()),
            "DELIVERIES_DLQ_URL" => Some("https://dlq".to_owned()),
            "SECRETS_KEY_ID" => Some("alias/k".to_owned()),
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
    }
}
