//! `local-stack dev`: provision, seed a demo tenant, serve the ingress.

use std::{sync::Arc, time::Duration};

use aws_sdk_dynamodb::types::AttributeValue;

use shared::{
    aws::DynamoTenantDirectory,
    env::EnvError,
    ids::TenantId,
    ports::{StoreError, TenantAdmin},
    provider::Provider,
    secret::Secret,
    tenant::ProviderConfig,
};

use crate::provision::Provisioned;

/// The demo tenant's name.
pub const DEMO_TENANT: &str = "demo";

/// Local-only secrets, fixed so the sample events in events/ verify and the README's commands
/// work as written. Never use them anywhere else.
pub const DEMO_SECRETS: [(Provider, &str); 5] = [
    (Provider::Stripe, "whsec_demo_local_only"),
    (
        Provider::Clerk,
        "whsec_ZGVtby1sb2NhbC1vbmx5LWNsZXJrLXNlY3JldA==",
    ),
    (
        Provider::Resend,
        "whsec_ZGVtby1sb2NhbC1vbmx5LXJlc2VuZC1zZWNyZXQ=",
    ),
    (Provider::GitHub, "demo-local-only-github-secret"),
    (Provider::Generic, "demo-local-only-generic-secret"),
];

/// Store the demo tenant's provider configurations afresh: whatever an earlier `make dev` left
/// (an older format, a rotation) is replaced, so the README's commands work as written. Its
/// outbound policy (the defaults) makes it a tenant the publish API knows before it has an
/// endpoint.
pub async fn seed_demo_tenant(
    directory: &DynamoTenantDirectory,
    dynamodb: &aws_sdk_dynamodb::Client,
    resources: &Provisioned,
) -> Result<(), StoreError> {
    let table = resources.tenants_table();
    let tenant = TenantId::parse(DEMO_TENANT).map_err(|e| StoreError::Malformed(e.to_string()))?;
    for (provider, _) in DEMO_SECRETS {
        dynamodb
            .delete_item()
            .table_name(table)
            .key("tenant", AttributeValue::S(DEMO_TENANT.into()))
            .key("provider", AttributeValue::S(provider.as_str().into()))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(shared::aws::describe(&e)))?;
    }
    for (provider, secret) in DEMO_SECRETS {
        directory
            .put_config(&ProviderConfig::new(
                tenant.clone(),
                provider,
                Secret::new(secret),
            ))
            .await?;
    }
    use shared::outbound::ports::EndpointStore;
    let outbound = shared::aws::DynamoOutboundStore::without_secrets(
        dynamodb.clone(),
        resources.outbound_table(),
    );
    if outbound.tenant_policy(&tenant).await?.is_none() {
        outbound
            .put_tenant_policy(&tenant, &shared::outbound::TenantPolicy::default())
            .await?;
    }
    Ok(())
}

/// The environment the functions and `hookctl` need to reach this stack.
pub fn environment(endpoint: &str, resources: &Provisioned) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("EVENTS_TABLE", resources.events_table().to_owned()),
        ("TENANTS_TABLE", resources.tenants_table().to_owned()),
        (
            "PROJECTIONS_TABLE",
            resources.projections_table().to_owned(),
        ),
        ("EVENTS_QUEUE_URL", resources.events_queue_url().to_owned()),
        (
            "DEAD_LETTER_QUEUE_URL",
            resources.dead_letter_queue_url().to_owned(),
        ),
        ("SECRETS_KEY_ID", resources.secrets_key().to_owned()),
        ("PORTAL_LINK_KEY_ID", resources.portal_link_key().to_owned()),
        ("PAYLOADS_BUCKET", resources.payloads_bucket().to_owned()),
        ("OUTBOUND_TABLE", resources.outbound_table().to_owned()),
        (
            "DELIVERIES_QUEUE_URL",
            resources.deliveries_queue_url().to_owned(),
        ),
        (
            "DELIVERIES_DLQ_URL",
            resources.deliveries_dlq_url().to_owned(),
        ),
    ]
}

/// The ingress configuration for this stack.
pub fn ingress_config(resources: &Provisioned) -> ingress::Config {
    ingress::Config {
        events_table: resources.events_table().to_owned(),
        tenants_table: resources.tenants_table().to_owned(),
        events_queue_url: resources.events_queue_url().to_owned(),
        secrets_key: resources.secrets_key().to_owned(),
        payloads_bucket: resources.payloads_bucket().to_owned(),
        max_body_bytes: shared::ingress::DEFAULT_MAX_BODY_BYTES,
        tenant_cache_ttl: Duration::from_secs(5),
        retention: shared::record::DEFAULT_RETENTION,
    }
}

/// Build the ingress exactly as the Lambda does, against the emulator.
pub fn build_ingress(
    sdk: &aws_config::SdkConfig,
    resources: &Provisioned,
) -> Arc<ingress::AwsIngress> {
    Arc::new(ingress::build(sdk, &ingress_config(resources)))
}

/// The processor configuration for this stack: the deployed defaults, with `RETRY_SCHEDULE`
/// (seconds per attempt) read from the environment so a developer can watch the DLQ fill up
/// in seconds instead of hours (the local queue's receives follow it, as deployed).
pub fn processor_config(resources: &Provisioned) -> Result<processor::Config, EnvError> {
    let lookup = |name: &str| match name {
        "EVENTS_TABLE" => Some(resources.events_table().to_owned()),
        "PROJECTIONS_TABLE" => Some(resources.projections_table().to_owned()),
        "EVENTS_QUEUE_URL" => Some(resources.events_queue_url().to_owned()),
        "DEAD_LETTER_QUEUE_URL" => Some(resources.dead_letter_queue_url().to_owned()),
        "PAYLOADS_BUCKET" => Some(resources.payloads_bucket().to_owned()),
        "OUTBOUND_TABLE" => Some(resources.outbound_table().to_owned()),
        "DELIVERIES_QUEUE_URL" => Some(resources.deliveries_queue_url().to_owned()),
        "RETRY_SCHEDULE" => std::env::var(name).ok(),
        _ => None,
    };
    processor::Config::from_lookup(lookup)
}

/// The replay function's configuration for this stack: the deployed defaults, with
/// `STUCK_AFTER_SECS` and `RETRY_SCHEDULE` read from the environment.
pub fn replay_config(resources: &Provisioned) -> Result<replay::Config, EnvError> {
    let lookup = |name: &str| match name {
        "EVENTS_TABLE" => Some(resources.events_table().to_owned()),
        "TENANTS_TABLE" => Some(resources.tenants_table().to_owned()),
        "EVENTS_QUEUE_URL" => Some(resources.events_queue_url().to_owned()),
        "DEAD_LETTER_QUEUE_URL" => Some(resources.dead_letter_queue_url().to_owned()),
        "PAYLOADS_BUCKET" => Some(resources.payloads_bucket().to_owned()),
        "OUTBOUND_TABLE" => Some(resources.outbound_table().to_owned()),
        "DELIVERIES_QUEUE_URL" => Some(resources.deliveries_queue_url().to_owned()),
        "DELIVERIES_DLQ_URL" => Some(resources.deliveries_dlq_url().to_owned()),
        "STUCK_AFTER_SECS" | "RETRY_SCHEDULE" | "RETENTION_DAYS" => std::env::var(name).ok(),
        _ => None,
    };
    replay::Config::from_lookup(lookup)
}

/// The dispatcher's configuration for this stack: the deployed defaults, `DELIVERY_SCHEDULE`
/// from the environment (watch a delivery go dead in seconds), and the local-development
/// egress policy, so deliveries reach receivers on this machine (`hookctl listen`). Only the
/// local stack builds this policy; a deployed dispatcher's configuration cannot.
pub fn dispatcher_config(resources: &Provisioned) -> Result<dispatcher::Config, EnvError> {
    let lookup = |name: &str| match name {
        "OUTBOUND_TABLE" => Some(resources.outbound_table().to_owned()),
        "DELIVERIES_QUEUE_URL" => Some(resources.deliveries_queue_url().to_owned()),
        "DELIVERIES_DLQ_URL" => Some(resources.deliveries_dlq_url().to_owned()),
        "SECRETS_KEY_ID" => Some(resources.secrets_key().to_owned()),
        "PAYLOADS_BUCKET" => Some(resources.payloads_bucket().to_owned()),
        "SLOW_DELIVERIES_QUEUE_URL" => Some(resources.slow_deliveries_queue_url().to_owned()),
        "DELIVERY_SCHEDULE" | "ATTEMPT_TIMEOUT_SECS" => std::env::var(name).ok(),
        _ => None,
    };
    let mut config = dispatcher::Config::from_lookup(lookup)?;
    config.settings.egress = shared::outbound::ssrf::EgressPolicy::LOCAL_DEVELOPMENT;
    Ok(config)
}

/// The slow lane's dispatcher configuration: the main one's, consuming the slow lane's queue.
pub fn slow_dispatcher_config(resources: &Provisioned) -> Result<dispatcher::Config, EnvError> {
    Ok(dispatcher::Config {
        lane: dispatcher::Lane::Slow,
        ..dispatcher_config(resources)?
    })
}

/// The portal's configuration for this stack: the dispatcher's (so its test events reach
/// receivers on this machine), the replay function's (operator pages) and the links' key.
pub fn portal_config(resources: &Provisioned) -> Result<portal::Config, EnvError> {
    Ok(portal::Config {
        dispatcher: dispatcher_config(resources)?,
        replay: replay_config(resources)?,
        link_key: resources.portal_link_key().to_owned(),
    })
}

/// The publish API's configuration for this stack.
pub fn api_config(resources: &Provisioned) -> Result<api::Config, EnvError> {
    let lookup = |name: &str| match name {
        "OUTBOUND_TABLE" => Some(resources.outbound_table().to_owned()),
        "DELIVERIES_QUEUE_URL" => Some(resources.deliveries_queue_url().to_owned()),
        _ => None,
    };
    api::Config::from_lookup(lookup)
}
