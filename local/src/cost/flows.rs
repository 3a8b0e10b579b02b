//! The flows the meter measures, each on a stack of its own in the emulator, through the
//! deployed functions' own builders with every AWS call passing the metering proxy:
//!
//! - inbound 1 KiB, 30 KiB and 100 KiB (held in S3): a signed Stripe `invoice.paid` of that
//!   size received by the ingress and processed once by the processor;
//! - relay on: the 1 KiB flow for a tenant that relays its inbound events to one partner
//!   endpoint (the delivery itself is the outbound flow's);
//! - outbound ([`super::outbound`]): a 1 KiB message published through the API to one
//!   endpoint and delivered at the first attempt.
//!
//! Each flow first warms the functions (tenant cache, opened secrets, relay switch) with one
//! event, as a running deployment has them, then counts `events` more. The event source
//! mapping's own receives and deletes are not the functions' calls: they are modelled as one
//! `ReceiveMessage` and one `DeleteMessageBatch` per full batch of ten, as Lambda makes them at
//! volume.

use std::{
    io::Write,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lambda_http::{Body, Request, RequestExt};
use serde_json::Value;
use shared::{
    aws::{DynamoOutboundStore, KmsKeys},
    ids::TenantId,
    metrics::{MetricLine, MetricSink},
    outbound::{
        TenantPolicy,
        endpoint::{Endpoint, generate_secret},
        filter::EventFilter,
        ports::EndpointStore,
        ssrf::{EgressPolicy, EndpointUrl},
    },
    ports::{EventStore, TenantAdmin},
    provider::Provider,
    record::{EventKey, EventStatus},
    secret::Secret,
    tenant::ProviderConfig,
};

use super::{FlowCost, Usage, dynamodb::Billing, prices};
use crate::{
    cost::dynamodb::TableSchema,
    event_source::EventSourceMapping,
    fault_proxy::FaultProxy,
    provision::{Provisioned, provision},
    template::Template,
};

/// The measured flows' names, in the report's order.
pub const INBOUND_1K: &str = "inbound 1 KiB";
pub const INBOUND_30K: &str = "inbound 30 KiB";
pub const INBOUND_100K: &str = "inbound 100 KiB (S3)";
pub const RELAY: &str = "inbound 1 KiB, relayed to one endpoint";
pub const PUBLISHED: &str = "outbound 1 KiB, published to one endpoint, delivered";

/// Which side a flow measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Received by the ingress, processed by the processor.
    Inbound,
    /// Inbound, for a tenant relaying its events to one endpoint.
    Relayed,
    /// Published through the API, delivered by the dispatcher.
    Published,
}

/// What a flow sends.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: &'static str,
    pub payload_bytes: usize,
    pub kind: Kind,
    pub events: u64,
}

impl Flow {
    /// The flows `make cost` prints, with `events` each.
    pub fn all(events: u64) -> Vec<Flow> {
        vec![
            Flow {
                name: INBOUND_1K,
                payload_bytes: 1024,
                kind: Kind::Inbound,
                events,
            },
            Flow {
                name: INBOUND_30K,
                payload_bytes: 30 * 1024,
                kind: Kind::Inbound,
                events,
            },
            Flow {
                name: INBOUND_100K,
                payload_bytes: 100 * 1024,
                kind: Kind::Inbound,
                events,
            },
            Flow {
                name: RELAY,
                payload_bytes: 1024,
                kind: Kind::Relayed,
                events,
            },
            Flow {
                name: PUBLISHED,
                payload_bytes: 1024,
                kind: Kind::Published,
                events,
            },
        ]
    }
}

const TENANT: &str = "meter";
const SECRET: &str = "whsec_cost_meter_local_only";
const INVOICE_PAID: &str = include_str!("../../../events/payloads/stripe/invoice.paid.json");

/// Run `flow` on a fresh stack in the emulator at `endpoint`.
pub async fn measure(endpoint: &str, template: &Template, flow: &Flow) -> Result<FlowCost, String> {
    if flow.kind == Kind::Published {
        return super::outbound::measure(endpoint, template, flow).await;
    }
    let logs = log_counter();
    let (clients, resources) = fresh_stack(endpoint, template).await?;
    let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
    seed(&clients, &resources, &tenant, flow.kind == Kind::Relayed).await?;

    let (proxy, billing, sdk) = metering(endpoint, template, &resources).await?;
    let metrics = Arc::new(CountingMetrics::default());
    // The deployed cache lifetime (`TenantCacheTtlSecs`), not the local stack's 5 s: at volume
    // a tenant's configuration is read once a minute per container, nothing per event.
    let mut ingress_config = crate::dev::ingress_config(&resources);
    ingress_config.tenant_cache_ttl = Duration::from_secs(60);
    let ingress = ingress::build(&sdk, &ingress_config).with_metrics(metrics.clone());
    let mut config = crate::dev::processor_config(&resources).map_err(|e| e.to_string())?;
    // One at a time, as the emulator wants its transactions (see the README's notes).
    config.settings.concurrency = 1;
    let processor = processor::build(&sdk, &config).with_metrics(metrics.clone());
    let mapping = EventSourceMapping {
        sqs: clients.sqs.clone(),
        queue_url: resources.events_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::ZERO,
    };
    let store =
        shared::aws::DynamoEventStore::new(clients.dynamodb.clone(), resources.events_table());

    // Warm up: one event through both functions, then forget what it cost.
    let warm = format!("evt_warm_{}", unique());
    deliver(&ingress, flow.payload_bytes, &warm).await?;
    process(&mapping, &processor, &store, &tenant, &[warm]).await?;
    let _ = proxy.take_recorded();
    metrics.take();
    logs.take();

    let ids: Vec<String> = (0..flow.events)
        .map(|i| format!("evt_cost_{}_{i}", unique()))
        .collect();
    for id in &ids {
        deliver(&ingress, flow.payload_bytes, id).await?;
    }
    let ingress_calls = proxy.take_recorded();
    let ingress_logs = logs.take() + metrics.take();
    process(&mapping, &processor, &store, &tenant, &ids).await?;
    // At volume the event source hands over full batches: the template's batch size.
    let batches = flow.events as f64 / BATCH_SIZE;
    let processor_calls = proxy.take_recorded();
    let processor_logs = logs.take() + metrics.take();

    let memory = |function: &str| memory_of(template, function);
    let platform = |function: &str| platform_log_bytes(template, function);
    let mut usage = Usage::of_calls(&billing, &ingress_calls);
    usage.add(&Usage::of_calls(&billing, &processor_calls));
    usage.invoke(
        flow.events as f64,
        memory("IngressFunction"),
        &ingress_calls,
    );
    usage.invoke(batches, memory("ProcessorFunction"), &processor_calls);
    // API Gateway bills each 512 KB of a request as one.
    usage.front_requests =
        flow.events as f64 * (flow.payload_bytes.div_ceil(512 * 1024).max(1)) as f64;
    // The event source mapping: one receive and one batch delete per batch.
    usage.sqs_requests += 2.0 * batches;
    usage.log_bytes = ingress_logs
        + processor_logs
        + flow.events as f64 * platform("IngressFunction")
        + batches * platform("ProcessorFunction");
    Ok(FlowCost {
        name: flow.name.to_owned(),
        events: flow.events,
        ids,
        usage,
    })
}

/// A function's memory in MB, as the template sets it.
pub(super) fn memory_of(template: &Template, function: &str) -> u64 {
    template
        .function_memory
        .get(function)
        .copied()
        .unwrap_or(128)
}

/// The platform's bytes per invocation of `function`: none when its system log level is WARN.
pub(super) fn platform_log_bytes(template: &Template, function: &str) -> f64 {
    let quiet = template
        .function_system_log_level
        .get(function)
        .is_some_and(|l| l.eq_ignore_ascii_case("WARN") || l.eq_ignore_ascii_case("ERROR"));
    if quiet {
        0.0
    } else {
        prices::PLATFORM_LOG_BYTES
    }
}

/// A stack of its own in the emulator at `endpoint`, for one flow.
pub(super) async fn fresh_stack(
    endpoint: &str,
    template: &Template,
) -> Result<(crate::aws::Clients, Provisioned), String> {
    let clients = crate::aws::clients(endpoint).await;
    let prefix = format!("cost{}-", unique());
    let resources = provision(template, &clients, &prefix)
        .await
        .map_err(|e| format!("cannot provision on the emulator at {endpoint}: {e}"))?;
    Ok((clients, resources))
}

/// The metering proxy in front of the emulator, its billing rules, and the SDK configuration
/// that sends every call of the functions through it.
pub(super) async fn metering(
    endpoint: &str,
    template: &Template,
    resources: &Provisioned,
) -> Result<(FaultProxy, Billing, aws_config::SdkConfig), String> {
    let proxy = FaultProxy::start(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let billing = billing(template, resources);
    proxy.meter(
        billing
            .tables
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t.key_names().iter().map(|k| (*k).to_owned()).collect(),
                )
            })
            .collect(),
    );
    let sdk = crate::aws::sdk_config(&proxy.url).await;
    Ok((proxy, billing, sdk))
}

/// The billing rules over this stack's tables, from the template.
pub fn billing(template: &Template, resources: &Provisioned) -> Billing {
    Billing {
        tables: template
            .tables
            .iter()
            .filter_map(|def| {
                resources
                    .table(&def.logical_id)
                    .map(|name| (name.to_owned(), TableSchema::from_def(def)))
            })
            .collect(),
    }
}

async fn seed(
    clients: &crate::aws::Clients,
    resources: &Provisioned,
    tenant: &TenantId,
    relay: bool,
) -> Result<(), String> {
    let keys = Arc::new(KmsKeys::new(clients.kms.clone(), resources.secrets_key()));
    shared::aws::DynamoTenantDirectory::new(
        clients.dynamodb.clone(),
        resources.tenants_table(),
        keys.clone(),
    )
    .put_config(&ProviderConfig::new(
        tenant.clone(),
        Provider::Stripe,
        Secret::new(SECRET),
    ))
    .await
    .map_err(|e| e.to_string())?;
    if relay {
        let outbound =
            DynamoOutboundStore::new(clients.dynamodb.clone(), resources.outbound_table(), keys);
        outbound
            .put_tenant_policy(
                tenant,
                &TenantPolicy {
                    relay_inbound: true,
                    ..TenantPolicy::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        partner_endpoint(&outbound, tenant).await?;
    }
    Ok(())
}

/// The tenant's one partner endpoint, subscribed to everything.
pub(super) async fn partner_endpoint(
    store: &DynamoOutboundStore,
    tenant: &TenantId,
) -> Result<shared::outbound::ids::EndpointId, String> {
    let url = EndpointUrl::parse("https://partner.example/webhooks", EgressPolicy::PUBLIC)
        .map_err(|e| e.to_string())?;
    let secret = generate_secret().map_err(|e| e.to_string())?;
    let endpoint = Endpoint::new(
        tenant.clone(),
        url,
        EventFilter::all(),
        secret,
        SystemTime::now(),
    );
    store
        .put_endpoint(&endpoint)
        .await
        .map_err(|e| e.to_string())?;
    Ok(endpoint.id)
}

/// A signed Stripe `invoice.paid` of about `bytes` bytes (padded with line items), delivered.
async fn deliver(ingress: &ingress::AwsIngress, bytes: usize, id: &str) -> Result<(), String> {
    let body = invoice(id, bytes);
    let config = ProviderConfig::new(
        TenantId::parse(TENANT).map_err(|e| e.to_string())?,
        Provider::Stripe,
        Secret::new(SECRET),
    );
    let headers = config
        .verifier()
        .scheme
        .sign(&body, &Secret::new(SECRET), SystemTime::now(), "")
        .map_err(|e| e.to_string())?;
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("/webhooks/{TENANT}/stripe"));
    for (name, value) in &headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request: Request = builder
        .body(Body::Binary(body))
        .map_err(|e| e.to_string())?
        .with_path_parameters(std::collections::HashMap::from([
            ("tenant".to_owned(), TENANT.to_owned()),
            ("provider".to_owned(), "stripe".to_owned()),
        ]));
    let response = ingress::handle(ingress, request)
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("the ingress answered {other} for {id}")),
    }
}

/// A Stripe `invoice.paid` about its own invoice and customer, padded to about `bytes`.
pub fn invoice(id: &str, bytes: usize) -> Vec<u8> {
    let base = INVOICE_PAID
        .replace("evt_1PayloadInvoicePaid0001", id)
        .replace("in_1PayloadInvoice0001", &format!("in_{id}"))
        .replace("cus_PayloadCustomer1", &format!("cus_{id}"))
        .replace("sub_1PayloadSubscr0001", &format!("sub_{id}"));
    let Ok(mut value) = serde_json::from_str::<Value>(&base) else {
        return base.into_bytes();
    };
    // Line items with random ids and amounts under the invoice's own keys: about as
    // compressible as a real body (JSON keys repeat, ids do not), until the size is reached.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // The body's size as it grows: `,"padding":[]` once, then each line and its comma.
    let mut size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len()) + 13;
    let mut lines = Vec::new();
    while size < bytes {
        let id: String = (0..24)
            .map(|_| char::from(alphabet[(random() % alphabet.len() as u64) as usize]))
            .collect();
        let line = serde_json::json!({
            "id": format!("il_{id}"),
            "object": "line_item",
            "amount": random() % 100_000,
            "currency": "usd",
            "quantity": random() % 10 + 1,
        });
        size += line.to_string().len() + 1;
        lines.push(line);
    }
    if let Some(object) = value
        .pointer_mut("/data/object")
        .and_then(Value::as_object_mut)
    {
        object.insert("padding".into(), Value::Array(lines));
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| base.into_bytes())
}

/// The processor's and the dispatcher's batch size (the template's defaults).
pub(super) const BATCH_SIZE: f64 = 10.0;

/// Poll until every one of `ids` is processed.
async fn process(
    mapping: &EventSourceMapping,
    processor: &processor::AwsProcessor,
    store: &shared::aws::DynamoEventStore,
    tenant: &TenantId,
    ids: &[String],
) -> Result<(), String> {
    drain(mapping, processor, "events not processed", || async {
        let mut left = 0;
        for id in ids {
            let key = EventKey {
                tenant: tenant.clone(),
                provider: Provider::Stripe,
                event_id: shared::ids::EventId::parse(id).map_err(|e| e.to_string())?,
            };
            let done = store
                .get(&key)
                .await
                .map_err(|e| e.to_string())?
                .is_some_and(|r| r.status == EventStatus::Processed);
            left += usize::from(!done);
        }
        Ok(left)
    })
    .await
}

/// Run `function` on the mapping's queue until `left` says nothing is left (`what` names
/// what is left, if that takes more than two minutes).
pub(super) async fn drain<F, Fut>(
    mapping: &EventSourceMapping,
    function: &impl crate::event_source::SqsFunction,
    what: &str,
    left: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, String>>,
{
    let started = std::time::Instant::now();
    let mut invocation = 0u64;
    loop {
        invocation += 1;
        let poll = mapping
            .poll_once(function, &format!("cost-{invocation}"))
            .await?;
        if poll.received > 0 {
            continue;
        }
        let left = left().await?;
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{left} {what} in 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (millis % 100_000_000) * 100 + N.fetch_add(1, Ordering::SeqCst) % 100
}

/// Metric lines as CloudWatch Logs would take them: counted, not printed.
#[derive(Debug, Default)]
pub(super) struct CountingMetrics(AtomicU64);

impl CountingMetrics {
    pub(super) fn take(&self) -> f64 {
        self.0.swap(0, Ordering::SeqCst) as f64
    }
}

impl MetricSink for CountingMetrics {
    fn emit(&self, line: &MetricLine) {
        self.0
            .fetch_add(line.render().len() as u64 + 1, Ordering::SeqCst);
    }
}

/// The bytes the functions' log lines would take, in the deployed format (JSON, INFO).
#[derive(Debug, Clone, Default)]
pub struct LogCounter(Arc<Mutex<u64>>);

impl LogCounter {
    pub(super) fn take(&self) -> f64 {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner)) as f64
    }
}

impl Write for LogCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's log subscriber: the functions' own (Lambda's JSON format at INFO), writing
/// into a counter. Installed once; a process that already has a subscriber counts nothing.
pub(super) fn log_counter() -> LogCounter {
    static COUNTER: OnceLock<LogCounter> = OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let counter = LogCounter::default();
            let writer = counter.clone();
            let subscriber = shared::logging::json_subscriber(
                move || writer.clone(),
                tracing_subscriber::EnvFilter::new("info"),
            );
            if tracing::subscriber::set_global_default(subscriber).is_err() {
                eprintln!(
                    "cost meter: a log subscriber is already installed; log bytes are not counted"
                );
            }
            counter
        })
        .clone()
}
