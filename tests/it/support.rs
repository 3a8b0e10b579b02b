//! The harness: emulator clients, per-test resources, and helpers to build signed requests.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_sqs::Client as Sqs;
use lambda_http::{Body, Request, RequestExt};
use local_stack::{provision::Provisioned, template::Template};
use shared::{
    aws::{DynamoEventStore, DynamoTenantDirectory, SqsEventQueue},
    clock::ManualClock,
    ingress::{Ingress, IngressSettings},
    secret::Secret,
    tenant::ProviderConfig,
};

/// `len` hex digits that do not deflate much (a payload that stays large when stored).
pub fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect()
}

/// The fixed "now" of every test, so signatures and windows are deterministic.
pub const NOW: u64 = 1_700_000_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The emulator's address. `make test` sets it; without it the tests fail loudly rather than
/// skip: a test that did not run proves nothing.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the integration tests with `make test`, which starts the AWS emulator")
    })
}

/// One test's private slice of the emulator.
pub struct Stack {
    pub dynamodb: DynamoDb,
    pub sqs: Sqs,
    pub kms: aws_sdk_kms::Client,
    pub s3: aws_sdk_s3::Client,
    pub resources: Provisioned,
}

impl Stack {
    /// Provision every table and queue of template.yaml under a fresh prefix.
    pub async fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let endpoint = endpoint();
        let clients = local_stack::aws::clients(&endpoint).await;
        let template = Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml parses");
        let prefix = format!(
            "it{}x{}-",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
                % 100_000_000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let resources = local_stack::provision::provision(&template, &clients, &prefix)
            .await
            .unwrap_or_else(|e| panic!("cannot provision on the AWS emulator at {endpoint} (is it running? `make test` starts it): {e}"));
        Self {
            dynamodb: clients.dynamodb,
            sqs: clients.sqs,
            kms: clients.kms,
            s3: clients.s3,
            resources,
        }
    }

    /// The events store as the functions have it: large payloads go to the stack's bucket.
    pub fn store(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.dynamodb.clone(), self.resources.events_table())
            .with_payloads(self.s3.clone(), self.resources.payloads_bucket())
    }

    pub fn queue(&self) -> SqsEventQueue {
        SqsEventQueue::new(self.sqs.clone(), self.resources.events_queue_url())
    }

    pub fn directory(&self) -> DynamoTenantDirectory {
        DynamoTenantDirectory::new(
            self.dynamodb.clone(),
            self.resources.tenants_table(),
            std::sync::Arc::new(shared::aws::KmsKeys::new(
                self.kms.clone(),
                self.resources.secrets_key(),
            )),
        )
    }

    /// The ingress over the real adapters, with the clock pinned at [`NOW`].
    pub fn ingress(
        &self,
    ) -> Ingress<DynamoEventStore, SqsEventQueue, DynamoTenantDirectory, ManualClock> {
        Ingress::new(
            self.store(),
            self.queue(),
            self.directory(),
            ManualClock::at_unix(NOW),
            IngressSettings::default(),
        )
    }

    /// Store a tenant's provider configuration the way the CLI does.
    pub async fn add_tenant(&self, config: &ProviderConfig) {
        use shared::ports::TenantAdmin;
        self.directory()
            .put_config(config)
            .await
            .expect("tenant stored");
    }

    /// Every projection item of `tenant`'s `kind`, read consistently from each of its shards.
    pub async fn projections_of(
        &self,
        tenant: &str,
        kind: shared::projection::ProjectionKind,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let tenant = shared::ids::TenantId::parse(tenant).expect("tenant");
        let mut items = Vec::new();
        for pk in shared::projection::ProjectionKey::partitions(&tenant, kind) {
            let mut start = None;
            loop {
                let page = self
                    .dynamodb
                    .query()
                    .table_name(self.resources.projections_table())
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(
                        ":pk",
                        aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()),
                    )
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .expect("query");
                items.extend(page.items.unwrap_or_default());
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        items.sort_by_key(|item| format!("{:?}", item.get("sk")));
        items
    }

    /// Receive (and delete) up to 10 messages from the main queue.
    pub async fn drain_queue(&self) -> Vec<serde_json::Value> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(self.resources.events_queue_url())
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for m in messages {
                bodies
                    .push(serde_json::from_str(m.body().unwrap_or("null")).expect("json message"));
                if let Some(handle) = m.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(self.resources.events_queue_url())
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
    }
}

/// Clients whose endpoint refuses connections: a service outage, as the SDK sees it.
pub async fn unreachable_clients() -> (DynamoDb, Sqs) {
    let clients = local_stack::aws::clients("http://127.0.0.1:9").await;
    (clients.dynamodb, clients.sqs)
}

/// An API Gateway request for `path` segments with `headers` and `body`.
pub fn request(
    tenant: &str,
    provider: &str,
    token: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("/webhooks/{tenant}/{provider}"));
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut params = std::collections::HashMap::from([
        ("tenant".to_owned(), tenant.to_owned()),
        ("provider".to_owned(), provider.to_owned()),
    ]);
    if let Some(token) = token {
        params.insert("token".to_owned(), token.to_owned());
    }
    builder
        .body(Body::Binary(body.to_vec()))
        .expect("request")
        .with_path_parameters(params)
}

/// The headers `config`'s provider would send for `body`, signed with `secret` at `when`.
pub fn sign(
    config: &ProviderConfig,
    secret: &str,
    body: &[u8],
    when: u64,
    id: &str,
) -> Vec<(String, String)> {
    config
        .verifier()
        .scheme
        .sign(body, &Secret::new(secret), at(when), id)
        .expect("sign")
}

/// Run the deployed handler and return status and JSON body.
pub async fn call<S, Q, D, C>(
    ingress: &Ingress<S, Q, D, C>,
    request: Request,
) -> (u16, serde_json::Value)
where
    S: shared::ports::EventStore,
    Q: shared::ports::EventQueue,
    D: shared::ports::TenantDirectory,
    C: shared::clock::Clock,
{
    let response = ::ingress::handle(ingress, request)
        .await
        .expect("handler answers");
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("json body"),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status().as_u16(), body)
}

/// The Stripe secret of the `acme` tenant in the pipeline and replay tests.
pub const SECRET: &str = "whsec_it_pipeline";

const INVOICE_PAID: &str = include_str!("../../events/payloads/stripe/invoice.paid.json");

/// Tenant `acme`'s Stripe configuration.
pub fn stripe() -> ProviderConfig {
    ProviderConfig::new(
        shared::ids::TenantId::parse("acme").expect("tenant"),
        shared::provider::Provider::Stripe,
        Secret::new(SECRET),
    )
}

/// The key of `acme`'s Stripe event `id`.
pub fn key(id: &str) -> shared::record::EventKey {
    shared::record::EventKey {
        tenant: shared::ids::TenantId::parse("acme").expect("tenant"),
        provider: shared::provider::Provider::Stripe,
        event_id: shared::ids::EventId::parse(id).expect("id"),
    }
}

/// A Stripe invoice.paid for `id`, as the provider would send it, about its own invoice and
/// customer. (Distinct entities also keep concurrent transactions off the same projection
/// items: the emulator rolls a cancelled transaction back by restoring a table snapshot, which
/// can erase a concurrent commit; DynamoDB does not.)
pub fn invoice(id: &str) -> Vec<u8> {
    INVOICE_PAID
        .replace("evt_1PayloadInvoicePaid0001", id)
        .replace("in_1PayloadInvoice0001", &format!("in_{id}"))
        .replace("cus_PayloadCustomer1", &format!("cus_{id}"))
        .replace("sub_1PayloadSubscr0001", &format!("sub_{id}"))
        .into_bytes()
}

/// The real store, with every commit's effects counted and commits taken one at a time.
///
/// Counting: the sum of the writes commits applied, so an upsert applied twice shows even
/// where it leaves the same item behind. One at a time: the emulator undoes a cancelled
/// transaction by restoring a snapshot of the table, which can erase a transaction that
/// committed meanwhile (DynamoDB does not); with commits in turn, the loser's rollback restores
/// a table that already holds the winner's commit. Claims still race.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    gate: tokio::sync::Mutex<()>,
    effects: std::sync::atomic::AtomicUsize,
    commits: std::sync::atomic::AtomicUsize,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            gate: tokio::sync::Mutex::new(()),
            effects: 0.into(),
            commits: 0.into(),
        }
    }

    /// Projection writes applied by all commits so far.
    pub fn effects(&self) -> usize {
        self.effects.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Commits that landed.
    pub fn commits(&self) -> usize {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl<S: shared::ports::EventStore> shared::ports::EventStore for CountingStore<S> {
    async fn put_if_absent(
        &self,
        record: &shared::record::EventRecord,
    ) -> Result<shared::ports::PutOutcome, shared::ports::StoreError> {
        self.inner.put_if_absent(record).await
    }

    async fn get(
        &self,
        key: &shared::record::EventKey,
    ) -> Result<Option<shared::record::EventRecord>, shared::ports::StoreError> {
        self.inner.get(key).await
    }

    async fn claim_content(
        &self,
        key: &shared::record::EventKey,
        content: &str,
        replacing: Option<&shared::ids::EventId>,
        expires_at: SystemTime,
    ) -> Result<shared::ports::ContentClaim, shared::ports::StoreError> {
        self.inner
            .claim_content(key, content, replacing, expires_at)
            .await
    }
}

#[async_trait::async_trait]
impl<S: shared::ports::EventProcessing> shared::ports::EventProcessing for CountingStore<S> {
    async fn commit(
        &self,
        key: &shared::record::EventKey,
        attempt: u32,
        writes: &[shared::projection::ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<shared::ports::Commit, shared::ports::StoreError> {
        use std::sync::atomic::Ordering;
        let _turn = self.gate.lock().await;
        let result = self
            .inner
            .commit(key, attempt, writes, outcome, now, expires_at)
            .await;
        if let Ok(shared::ports::Commit::Committed { applied, .. }) = &result {
            self.effects.fetch_add(*applied, Ordering::SeqCst);
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn record_failure(
        &self,
        key: &shared::record::EventKey,
        attempt: u32,
        failure: &shared::ports::Failure,
        now: SystemTime,
    ) -> Result<(), shared::ports::StoreError> {
        self.inner.record_failure(key, attempt, failure, now).await
    }
}
