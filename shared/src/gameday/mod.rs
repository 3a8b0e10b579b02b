//! The gameday suite on in-memory adapters: the whole inbound pipeline (ingress, the events
//! queue as SQS behaves, the processor, the DLQ and the operator's actions) on one injected
//! clock, with faults injected at every port. The scenarios are in [`tests`], the load run with
//! faults in [`load`]; the same promises against the emulator are in the integration tests.
//! The outbound slow lane under Lambda's concurrency is simulated in [`lanes`], on tokio's
//! paused clock.
//!
//! Nothing sleeps: time moves by the clock, and a Lambda killed at its timeout is a future
//! dropped while it waits on a hung call.

mod lanes;
mod load;
mod sqs;
mod tests;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::{
    clock::{Clock, ManualClock},
    ids::TenantId,
    ingress::{Delivery, Ingress, IngressSettings, Outcome},
    memory::{FaultPlan, Faulty, MemoryDirectory, MemoryEventStore},
    metrics::{CapturedMetrics, Published},
    operations::{Action, Operations, ReplaySettings},
    processor::{Message, NoJitter, Processor, ProcessorSettings},
    projection::MemoryProjections,
    projectors::{self, ProjectorOutcome, UnknownTypePolicy},
    provider::Provider,
    record::{Correlation, EventKey, EventStatus},
    secret::Secret,
    tenant::ProviderConfig,
};
use sqs::SqsModel;

pub const NOW: u64 = 1_750_000_000;
const STRIPE_SECRET: &str = "whsec_stripe_gameday";
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type Store = Faulty<MemoryEventStore>;
type Queue = Faulty<SqsModel>;
type Directory = Faulty<MemoryDirectory>;
type Clk = Arc<ManualClock>;

/// One deployment of the inbound pipeline, in memory.
pub struct World {
    pub clock: Clk,
    pub plan: Arc<FaultPlan>,
    pub store: Arc<MemoryEventStore>,
    pub sqs: Arc<SqsModel>,
    pub metrics: Arc<CapturedMetrics>,
    pub ingress: Ingress<Store, Queue, Directory, Clk>,
    pub processor: Processor<Store, Queue, Clk, NoJitter>,
    pub operations: Operations<Store, Queue, Queue, Directory, Clk>,
}

/// A webhook as a provider sends it: signed headers and the raw body.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub tenant: TenantId,
    pub provider: Provider,
    pub event_id: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Webhook {
    pub fn key(&self) -> EventKey {
        EventKey {
            tenant: self.tenant.clone(),
            provider: self.provider,
            event_id: crate::ids::EventId::parse(&self.event_id).expect("event id"),
        }
    }
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("tenant")
}

fn configs(tenants: &[&str]) -> Vec<ProviderConfig> {
    tenants
        .iter()
        .flat_map(|t| {
            [
                ProviderConfig::new(tenant(t), Provider::Stripe, Secret::new(STRIPE_SECRET)),
                ProviderConfig::new(tenant(t), Provider::Clerk, Secret::new(SVIX_SECRET)),
                ProviderConfig::new(tenant(t), Provider::Resend, Secret::new(SVIX_SECRET)),
            ]
        })
        .collect()
}

impl World {
    /// The pipeline for `tenants` (each with Stripe, Clerk and Resend), no faults yet.
    pub fn new(tenants: &[&str], seed: u64) -> Self {
        Self::with_duplicates(tenants, seed, 0.0)
    }

    /// As [`World::new`], with this share of the queue's deletes lost (duplicate deliveries).
    pub fn with_duplicates(tenants: &[&str], seed: u64, duplicates: f64) -> Self {
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let plan = FaultPlan::new(seed);
        let settings = ProcessorSettings::default();
        let store = Arc::new(MemoryEventStore::new());
        let sqs = Arc::new(
            SqsModel::new(clock.clone(), settings.schedule.max_attempts())
                .with_duplicates(duplicates, seed),
        );
        let directory = Arc::new(MemoryDirectory::with(configs(tenants)));
        let metrics = CapturedMetrics::new();
        let faulty_store = Faulty::new(store.clone(), plan.clone());
        let faulty_queue = Faulty::new(sqs.clone(), plan.clone());
        let faulty_directory = Faulty::new(directory, plan.clone());
        let ingress = Ingress::new(
            faulty_store.clone(),
            faulty_queue.clone(),
            faulty_directory.clone(),
            clock.clone(),
            IngressSettings::default(),
        )
        .with_metrics(metrics.clone());
        let processor = Processor::new(
            faulty_store.clone(),
            faulty_queue.clone(),
            clock.clone(),
            NoJitter,
            settings.clone(),
        )
        .with_metrics(metrics.clone());
        let operations = Operations::new(
            faulty_store,
            faulty_queue.clone(),
            faulty_queue,
            faulty_directory,
            clock.clone(),
        )
        .with_settings(ReplaySettings {
            schedule: settings.schedule,
            lease: settings.lease,
            ..ReplaySettings::default()
        })
        .with_metrics(metrics.clone());
        Self {
            clock,
            plan,
            store,
            sqs,
            metrics,
            ingress,
            processor,
            operations,
        }
    }

    /// A signed Stripe `customer.subscription.updated` `id`, created at `created` (whole
    /// seconds, as Stripe sends), leaving `subscription` in `status`.
    pub fn stripe(
        &self,
        tenant_name: &str,
        id: &str,
        created: u64,
        subscription: &str,
        status: &str,
    ) -> Webhook {
        let mut body: Value = serde_json::from_str(include_str!(
            "../../../events/payloads/stripe/customer.subscription.updated.json"
        ))
        .expect("sample");
        body["id"] = id.into();
        body["created"] = created.into();
        body["data"]["object"]["id"] = subscription.into();
        body["data"]["object"]["status"] = status.into();
        self.sign(tenant_name, Provider::Stripe, id, &body, STRIPE_SECRET)
    }

    /// A signed Clerk `user.updated` `id` about user `user`, at `updated_at` (ms).
    pub fn clerk(&self, tenant_name: &str, id: &str, user: &str, updated_at: u64) -> Webhook {
        let mut body: Value = serde_json::from_str(include_str!(
            "../../../events/payloads/clerk/user.updated.json"
        ))
        .expect("sample");
        body["data"]["id"] = user.into();
        body["data"]["updated_at"] = updated_at.into();
        self.sign(tenant_name, Provider::Clerk, id, &body, SVIX_SECRET)
    }

    /// A signed Resend `email.delivered` `id` about email `email`.
    pub fn resend(&self, tenant_name: &str, id: &str, email: &str) -> Webhook {
        let mut body: Value = serde_json::from_str(include_str!(
            "../../../events/payloads/resend/email.delivered.json"
        ))
        .expect("sample");
        body["data"]["email_id"] = email.into();
        self.sign(tenant_name, Provider::Resend, id, &body, SVIX_SECRET)
    }

    fn sign(
        &self,
        tenant_name: &str,
        provider: Provider,
        id: &str,
        body: &Value,
        secret: &str,
    ) -> Webhook {
        let body = serde_json::to_vec(body).expect("json");
        let config = ProviderConfig::new(tenant(tenant_name), provider, Secret::new(secret));
        let pairs = config
            .verifier()
            .scheme
            .sign(&body, &Secret::new(secret), self.clock.now(), id)
            .expect("signed");
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(&value).expect("value"),
            );
        }
        Webhook {
            tenant: tenant(tenant_name),
            provider,
            event_id: id.to_owned(),
            headers,
            body,
        }
    }

    /// The ingress's answer to `webhook`.
    pub async fn deliver(&self, webhook: &Webhook) -> Outcome {
        self.ingress
            .handle(Delivery {
                tenant: webhook.tenant.as_str(),
                provider: webhook.provider.as_str(),
                path_token: None,
                headers: &webhook.headers,
                body: &webhook.body,
                correlation: Correlation::default(),
                host: Some("hooks.example.com"),
                method: "POST",
                path_and_query: None,
            })
            .await
    }

    /// Deliver until the ingress answers 2xx, as providers retry a 5xx; how many tries it took.
    pub async fn deliver_until_accepted(&self, webhook: &Webhook, tries: u32) -> u32 {
        for n in 1..=tries {
            let outcome = self.deliver(webhook).await;
            match outcome.status_code() {
                200..=299 => return n,
                503 => self.clock.advance(Duration::from_secs(5)),
                _ => panic!("{} refused: {outcome:?}", webhook.event_id),
            }
        }
        panic!("{} not accepted in {tries} tries", webhook.event_id)
    }

    /// One batch through the processor, as the event source mapping runs it: messages not
    /// reported failed are deleted. `None` if nothing is visible now.
    pub async fn poll(&self) -> Option<usize> {
        let batch = self.sqs.receive(10);
        if batch.is_empty() {
            return None;
        }
        self.finish(&batch).await;
        Some(batch.len())
    }

    async fn finish(&self, batch: &[Message]) {
        let failed: HashSet<String> = self
            .processor
            .process_batch(batch)
            .await
            .into_iter()
            .collect();
        for message in batch {
            if !failed.contains(&message.message_id)
                && let Some(receipt) = &message.receipt_handle
            {
                self.sqs.delete(receipt);
            }
        }
    }

    /// Poll until the queue is empty, moving the clock to each next visible message; at most
    /// `polls` batches. Returns how many batches ran.
    pub async fn drain(&self, polls: usize) -> usize {
        for n in 0..polls {
            if self.poll().await.is_none() {
                match self.sqs.next_visible() {
                    Some(at) => self.clock.set(at.max(self.clock.now())),
                    None => return n,
                }
            }
        }
        panic!("the queue did not drain in {polls} polls")
    }

    /// Run an operator action (a console test event on the replay function).
    pub async fn operate(&self, action: Value) -> Value {
        let action: Action = serde_json::from_value(action).expect("action");
        self.operations.run(action).await.expect("operation")
    }

    /// The sum of metric `name` over every line emitted so far.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics
            .lines()
            .iter()
            .filter_map(|line| Published::parse(line).ok())
            .flat_map(|p| p.metrics)
            .filter(|(metric, _, _)| metric == name)
            .flat_map(|(_, _, values)| values)
            .sum()
    }

    pub fn status(&self, key: &EventKey) -> Option<EventStatus> {
        self.store.record(key).map(|r| r.status)
    }

    /// The projections the accepted `webhooks` must leave, each applied once in id order:
    /// projection writes are totally ordered, so any arrival order must end here.
    pub fn expected_projections(webhooks: &[Webhook]) -> MemoryProjections {
        let mut ordered: Vec<&Webhook> = webhooks.iter().collect();
        ordered.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        let mut projections = MemoryProjections::new();
        for webhook in ordered {
            let event_type = serde_json::from_slice::<Value>(&webhook.body)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned));
            if let Ok(ProjectorOutcome::Writes(writes)) = projectors::project(
                webhook.provider,
                event_type.as_deref(),
                &webhook.body,
                &webhook.key(),
                UnknownTypePolicy::Ignore,
            ) {
                projections.apply_all(&writes);
            }
        }
        projections
    }

    /// Every projection item was written by an event of its own tenant.
    pub fn cross_tenant_writes(&self, webhooks: &[Webhook]) -> Vec<String> {
        let owner: BTreeMap<&str, &TenantId> = webhooks
            .iter()
            .map(|w| (w.event_id.as_str(), &w.tenant))
            .collect();
        self.store
            .projections()
            .iter()
            .filter(|(key, item)| owner.get(item.source_event_id.as_str()) != Some(&key.tenant()))
            .map(|(key, item)| format!("{key:?} from {}", item.source_event_id))
            .collect()
    }
}
