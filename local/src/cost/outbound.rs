//! The outbound flow: a 1 KiB message published through the API (`POST
//! /v1/tenants/{tenant}/messages`) for a tenant with one endpoint, and delivered by the
//! dispatcher at the first attempt. The partner is a transport that answers 204 at once: its
//! HTTP exchange is no AWS call, and the time the dispatcher waits for it is modelled
//! ([`prices::PARTNER_MILLIS`]).
//!
//! Like the inbound flows, it warms the functions with one message first (the endpoint's
//! opened secret, the SDK's connections), then counts `events` more.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use lambda_http::{Body, Request, RequestExt};
use shared::{
    aws::{DynamoOutboundStore, KmsKeys},
    ids::TenantId,
    outbound::{
        delivery::{DeliveryKey, DeliveryStatus, Exchange},
        ids::{EndpointId, MessageId},
        ports::{DeliveryLog, OutboundRequest, Transport},
    },
};

use super::{
    FlowCost, Usage,
    flows::{
        BATCH_SIZE, CountingMetrics, Flow, drain, fresh_stack, log_counter, memory_of, metering,
        partner_endpoint, platform_log_bytes, unique,
    },
    prices,
};
use crate::event_source::EventSourceMapping;

const TENANT: &str = "meter";

/// A partner that accepts every delivery at once.
#[derive(Debug, Clone, Copy)]
struct Accepting;

#[async_trait]
impl Transport for Accepting {
    async fn send(&self, _request: OutboundRequest) -> Exchange {
        Exchange {
            status: Some(204),
            retry_after: None,
            body: String::new(),
            latency: Duration::from_millis(1),
            error: None,
        }
    }
}

/// Run the outbound flow on a fresh stack in the emulator at `endpoint`.
pub async fn measure(
    endpoint: &str,
    template: &crate::template::Template,
    flow: &Flow,
) -> Result<FlowCost, String> {
    let logs = log_counter();
    let (clients, resources) = fresh_stack(endpoint, template).await?;
    let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
    let keys = Arc::new(KmsKeys::new(clients.kms.clone(), resources.secrets_key()));
    let store =
        DynamoOutboundStore::new(clients.dynamodb.clone(), resources.outbound_table(), keys);
    let partner = partner_endpoint(&store, &tenant).await?;

    let (proxy, billing, sdk) = metering(endpoint, template, &resources).await?;
    let metrics = Arc::new(CountingMetrics::default());
    let api_config = crate::dev::api_config(&resources).map_err(|e| e.to_string())?;
    let api = api::build(&sdk, &api_config).with_metrics(metrics.clone());
    let dispatcher_config = crate::dev::dispatcher_config(&resources).map_err(|e| e.to_string())?;
    let mut dispatcher = dispatcher::build_with(&sdk, &dispatcher_config, Accepting);
    dispatcher.outbound = dispatcher.outbound.with_metrics(metrics.clone());
    let mapping = EventSourceMapping {
        sqs: clients.sqs.clone(),
        queue_url: resources.deliveries_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::ZERO,
    };

    // Warm up: one message through both functions, then forget what it cost.
    let warm = format!("msg_warm_{}", unique());
    publish(&api, &warm, flow.payload_bytes).await?;
    deliver(&mapping, &dispatcher, &store, &tenant, &partner, &[warm]).await?;
    let _ = proxy.take_recorded();
    metrics.take();
    logs.take();

    let ids: Vec<String> = (0..flow.events)
        .map(|i| format!("msg_cost_{}_{i}", unique()))
        .collect();
    for id in &ids {
        publish(&api, id, flow.payload_bytes).await?;
    }
    let api_calls = proxy.take_recorded();
    let api_logs = logs.take() + metrics.take();
    deliver(&mapping, &dispatcher, &store, &tenant, &partner, &ids).await?;
    let batches = flow.events as f64 / BATCH_SIZE;
    let dispatcher_calls = proxy.take_recorded();
    let dispatcher_logs = logs.take() + metrics.take();

    let mut usage = Usage::of_calls(&billing, &api_calls);
    usage.add(&Usage::of_calls(&billing, &dispatcher_calls));
    usage.invoke(
        flow.events as f64,
        memory_of(template, "ApiFunction"),
        &api_calls,
    );
    usage.invoke(
        batches,
        memory_of(template, "DispatcherFunction"),
        &dispatcher_calls,
    );
    // The partner's answers, waited for at once within each batch.
    usage.lambda_gb_seconds += batches * memory_of(template, "DispatcherFunction") as f64 / 1024.0
        * prices::PARTNER_MILLIS
        / 1000.0;
    usage.front_requests = flow.events as f64;
    // The event source mapping: one receive and one batch delete per batch.
    usage.sqs_requests += 2.0 * batches;
    usage.log_bytes = api_logs
        + dispatcher_logs
        + flow.events as f64 * platform_log_bytes(template, "ApiFunction")
        + batches * platform_log_bytes(template, "DispatcherFunction");
    Ok(FlowCost {
        name: flow.name.to_owned(),
        events: flow.events,
        ids,
        usage,
    })
}

/// Publish a message of about `bytes` with idempotency key `id`, through the API's handler.
async fn publish(api: &api::AwsOutbound, id: &str, bytes: usize) -> Result<(), String> {
    let payload = String::from_utf8(super::flows::invoice(id, bytes)).map_err(|e| e.to_string())?;
    let body =
        format!(r#"{{"event_type":"invoice.paid","payload":{payload},"idempotency_key":"{id}"}}"#);
    let request: Request = http::Request::builder()
        .method("POST")
        .uri(format!("/v1/tenants/{TENANT}/messages"))
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .map_err(|e| e.to_string())?
        .with_path_parameters(std::collections::HashMap::from([(
            "tenant".to_owned(),
            TENANT.to_owned(),
        )]));
    let response = api::handle(api, request).await.map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        202 => Ok(()),
        other => Err(format!("the API answered {other} for {id}")),
    }
}

/// Run the dispatcher on the deliveries queue until every one of `ids` is delivered.
async fn deliver(
    mapping: &EventSourceMapping,
    dispatcher: &impl crate::event_source::SqsFunction,
    store: &DynamoOutboundStore,
    tenant: &TenantId,
    endpoint: &EndpointId,
    ids: &[String],
) -> Result<(), String> {
    drain(mapping, dispatcher, "messages not delivered", || async {
        let mut left = 0;
        for id in ids {
            let key = DeliveryKey {
                tenant: tenant.clone(),
                message_id: MessageId::parse(id).map_err(|e| e.to_string())?,
                endpoint_id: endpoint.clone(),
            };
            let done = store
                .delivery(&key)
                .await
                .map_err(|e| e.to_string())?
                .is_some_and(|d| d.status == DeliveryStatus::Delivered);
            left += usize::from(!done);
        }
        Ok(left)
    })
    .await
}
