//! The ingress Lambda's adapter: turn an API Gateway or Function URL request into a
//! [`Delivery`], run the ingress use case, turn its [`Outcome`] into a response. Everything else
//! lives in `shared`.

mod google_jwks_source;
mod https;
mod paypal_source;

use std::{sync::Arc, time::Duration};

use lambda_http::{
    Body, Error, Request, RequestExt, Response,
    http::{HeaderValue, Method, StatusCode, header::CONTENT_TYPE},
    request::RequestContext,
};
use shared::{
    aws::{DynamoEventStore, DynamoTenantDirectory, SqsEventQueue, secrets_keys},
    clock::{Clock, SystemClock},
    directory_cache::CachedDirectory,
    env::{Env, EnvError},
    ingress::{
        DEFAULT_MAX_BODY_BYTES, Delivery, Ingress, IngressSettings, MAX_STORED_BODY_BYTES, Outcome,
    },
    ports::{EventQueue, EventStore, TenantDirectory},
    record::Correlation,
    trace::TraceParent,
    verify::{PayPalCertificates, google_oidc::GoogleKeys},
};

/// The longest a warm ingress may trust a cached configuration: a revoked secret or token
/// stops working within it.
pub const MAX_TENANT_CACHE_TTL_SECS: u64 = 300;

/// The ingress wired to DynamoDB and SQS, as deployed.
pub type AwsIngress =
    Ingress<DynamoEventStore, SqsEventQueue, CachedDirectory<DynamoTenantDirectory>, SystemClock>;

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    pub tenants_table: String,
    pub events_queue_url: String,
    /// The KMS key tenants' secrets are sealed with.
    pub secrets_key: String,
    /// Where payloads too large for their record are kept.
    pub payloads_bucket: String,
    pub max_body_bytes: usize,
    pub tenant_cache_ttl: Duration,
    /// How long records are kept: signed content is remembered as long.
    pub retention: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        Ok(Self {
            events_table: env.required("EVENTS_TABLE")?,
            tenants_table: env.required("TENANTS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            secrets_key: env.required("SECRETS_KEY_ID")?,
            payloads_bucket: env.required("PAYLOADS_BUCKET")?,
            max_body_bytes: env.parsed_within(
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1..=MAX_STORED_BODY_BYTES,
            )?,
            tenant_cache_ttl: Duration::from_secs(env.parsed_within(
                "TENANT_CACHE_TTL_SECS",
                60,
                1..=MAX_TENANT_CACHE_TTL_SECS,
            )?),
            retention: env.retention()?,
        })
    }
}

/// Build the deployed ingress: SDK clients once per cold start, shared by every invocation.
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> AwsIngress {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ingress = Ingress::new(
        DynamoEventStore::new(dynamodb.clone(), &config.events_table)
            .with_payloads(shared::aws::s3_on_first_use(sdk), &config.payloads_bucket),
        SqsEventQueue::new(sqs, &config.events_queue_url),
        CachedDirectory::new(
            DynamoTenantDirectory::new(
                dynamodb,
                &config.tenants_table,
                secrets_keys(sdk, &config.secrets_key),
            ),
            config.tenant_cache_ttl,
            clock,
        ),
        SystemClock,
        IngressSettings {
            max_body_bytes: config.max_body_bytes,
            retention: config.retention,
        },
    );
    let ingress = ingress.with_google(Arc::new(GoogleKeys::new(Arc::new(
        google_jwks_source::GoogleJwksHttps::default(),
    ))));
    match paypal_certificates() {
        Some(certificates) => ingress.with_paypal(certificates),
        None => {
            tracing::error!("no trust anchors: PayPal deliveries will be answered 503");
            ingress
        }
    }
}

/// PayPal's certificate checker: bundles fetched over HTTPS (the client is built on the first
/// fetch), chains validated against the public roots TLS clients trust (PayPal's certificate
/// must also carry PayPal's name).
fn paypal_certificates() -> Option<Arc<PayPalCertificates>> {
    let source = Arc::new(paypal_source::HttpsCertificates::default());
    PayPalCertificates::with_anchors(source, webpki_roots::TLS_SERVER_ROOTS.to_vec())
        .ok()
        .map(Arc::new)
}

/// The webhook route's parts.
struct Route<'a> {
    tenant: &'a str,
    provider: &'a str,
    token: Option<&'a str>,
}

/// API Gateway's path parameters; behind a Function URL, which routes nothing, the method and
/// the path `/webhooks/{tenant}/{provider}[/{token}]` themselves. `None`: no webhook route.
fn route(request: &Request) -> Option<Route<'_>> {
    if let Some(params) = request.path_parameters_ref().filter(|p| !p.is_empty()) {
        return Some(Route {
            tenant: params.first("tenant").unwrap_or_default(),
            provider: params.first("provider").unwrap_or_default(),
            token: params.first("token"),
        });
    }
    // Events are POSTs; some providers' handshakes are GETs (Meta, Dropbox, Okta) or a HEAD
    // (Trello).
    if ![Method::POST, Method::GET, Method::HEAD].contains(request.method()) {
        return None;
    }
    let rest = request.uri().path().strip_prefix("/webhooks/")?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [tenant, provider] => Some(Route {
            tenant,
            provider,
            token: None,
        }),
        [tenant, provider, token] if !token.is_empty() => Some(Route {
            tenant,
            provider,
            token: Some(token),
        }),
        _ => None,
    }
}

/// Handle one API Gateway or Function URL request. Client mistakes are responses, never `Err`.
pub async fn handle<S, Q, D, C>(
    ingress: &Ingress<S, Q, D, C>,
    request: Request,
) -> Result<Response<Body>, Error>
where
    S: EventStore,
    Q: EventQueue,
    D: TenantDirectory,
    C: Clock,
{
    let Some(route) = route(&request) else {
        return Ok(not_found());
    };
    let body: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let delivery = Delivery {
        tenant: route.tenant,
        provider: route.provider,
        path_token: route.token,
        headers: request.headers(),
        body,
        correlation: correlation(&request),
        host: host(&request),
        method: request.method().as_str(),
        path_and_query: request.uri().path_and_query().map(|p| p.as_str()),
    };
    Ok(response(&ingress.handle(delivery).await))
}

/// The host the sender addressed: API Gateway's domain name, else the `Host` header.
fn host(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) if ctx.domain_name.is_some() => {
            ctx.domain_name.as_deref()
        }
        _ => request
            .headers()
            .get(lambda_http::http::header::HOST)
            .and_then(|v| v.to_str().ok()),
    }
}

/// API Gateway's request id, the sender's `X-Request-Id`, and the ingress's span of the trace.
fn correlation(request: &Request) -> Correlation {
    let request_id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    let client_request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect());
    // The ingress's span: a child of the provider's trace, if it sent one, else a new trace.
    let trace = TraceParent::continue_from(
        request
            .headers()
            .get(shared::trace::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    Correlation {
        request_id,
        client_request_id,
        trace: Some(trace),
    }
}

/// What API Gateway answers a request no route matches, so both fronts answer alike.
fn not_found() -> Response<Body> {
    let mut response = Response::new(Body::Text(r#"{"message":"Not Found"}"#.to_owned()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The HTTP answer for an outcome.
pub fn response(outcome: &Outcome) -> Response<Body> {
    let (body, content_type) = match outcome {
        // A handshake is answered exactly as the provider expects, text or JSON.
        Outcome::Handshake(answer) => (answer.body.clone(), answer.content_type),
        _ => (outcome.body().to_string(), "application/json"),
    };
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() =
        StatusCode::from_u16(outcome.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(secs) = outcome.retry_after() {
        headers.insert("retry-after", HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use shared::{
        clock::ManualClock,
        ids::TenantId,
        memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
        provider::Provider,
        secret::Secret,
        tenant::ProviderConfig,
    };

    use super::*;

    type MemoryIngress = Ingress<MemoryEventStore, MemoryQueue, MemoryDirectory, ManualClock>;

    fn ingress() -> MemoryIngress {
        let tenant = TenantId::parse("demo").expect("tenant");
        let config = ProviderConfig::new(
            tenant,
            Provider::Stripe,
            Secret::new("whsec_demo_local_only"),
        );
        Ingress::new(
            MemoryEventStore::new(),
            MemoryQueue::new(),
            MemoryDirectory::with([config]),
            ManualClock::at_unix(1_700_000_000),
            IngressSettings::default(),
        )
    }

    fn fixture(name: &str) -> Request {
        let path = format!("{}/../../events/ingress/{name}", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read_to_string(&path).expect("fixture");
        lambda_http::request::from_str(&json).expect("API Gateway event")
    }

    async fn call(ingress: &MemoryIngress, name: &str) -> (u16, serde_json::Value) {
        let response = handle(ingress, fixture(name)).await.expect("response");
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).expect("json body"),
            other => panic!("unexpected body {other:?}"),
        };
        (response.status().as_u16(), body)
    }

    #[tokio::test]
    async fn the_sample_event_is_accepted_with_its_correlation_ids() {
        let ingress = ingress();
        let (status, body) = call(&ingress, "stripe-invoice-paid.json").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            serde_json::json!({"received": true, "id": "evt_1Demo000000000000000001"})
        );
        let record = &ingress.store.all()[0];
        assert_eq!(
            record.correlation.request_id.as_deref(),
            Some("JKJaXmPLvHcESHA=")
        );
        assert_eq!(
            record.correlation.client_request_id.as_deref(),
            Some("req-demo-1")
        );
        assert!(record.correlation.trace.is_some(), "a trace starts here");
    }

    #[tokio::test]
    async fn a_provider_s_traceparent_is_continued_on_the_record() {
        let ingress = ingress();
        let mut request = fixture("stripe-invoice-paid.json");
        request.headers_mut().insert(
            "traceparent",
            lambda_http::http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let response = handle(&ingress, request).await.expect("response");
        assert_eq!(response.status().as_u16(), 200);
        let trace = ingress.store.all()[0].correlation.trace.expect("kept");
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            trace.span_id(),
            "00f067aa0ba902b7",
            "the ingress's own span"
        );
    }

    #[tokio::test]
    async fn a_base64_body_is_verified_on_its_decoded_bytes() {
        let ingress = ingress();
        let (status, _) = call(&ingress, "stripe-invoice-paid-base64.json").await;
        assert_eq!(status, 200);
        let (status, body) = call(&ingress, "stripe-invoice-paid.json").await;
        assert_eq!((status, body["duplicate"].as_bool()), (200, Some(true)));
    }

    #[tokio::test]
    async fn a_bad_signature_is_a_generic_401() {
        let ingress = ingress();
        let (status, body) = call(&ingress, "stripe-bad-signature.json").await;
        assert_eq!(
            (status, body),
            (401, serde_json::json!({"error": "invalid signature"}))
        );
        assert!(ingress.store.all().is_empty());
    }

    #[tokio::test]
    async fn a_function_url_request_is_routed_by_its_path() {
        let ingress = ingress();
        let (status, body) = call(&ingress, "stripe-invoice-paid-function-url.json").await;
        assert_eq!(
            (status, body),
            (
                200,
                serde_json::json!({"received": true, "id": "evt_1Demo000000000000000001"})
            )
        );
        let record = &ingress.store.all()[0];
        assert_eq!(record.key.tenant.as_str(), "demo");
        assert_eq!(
            record.correlation.request_id.as_deref(),
            Some("7f3c9a4e-1d2b-4c5a-9e8f-0a1b2c3d4e5f")
        );
    }

    #[tokio::test]
    async fn a_handshake_is_answered_as_the_provider_expects_text_and_not_sniffed() {
        // GIVEN a tenant receiving Meta's webhooks, and Meta's subscription check as a GET
        let secret = Secret::new("meta_app_secret");
        let token = shared::verify::declared::meta_verify_token(&secret);
        let meta = ProviderConfig::new(
            TenantId::parse("demo").expect("tenant"),
            "meta".parse().expect("meta"),
            secret,
        );
        let ingress = Ingress::new(
            MemoryEventStore::new(),
            MemoryQueue::new(),
            MemoryDirectory::with([meta]),
            ManualClock::at_unix(1_700_000_000),
            IngressSettings::default(),
        );
        let mut request = fixture("function-url-get.json");
        *request.uri_mut() = format!(
            "https://hooks.example.com/webhooks/demo/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )
        .parse()
        .expect("uri");

        // WHEN it arrives through the Function URL
        let response = handle(&ingress, request).await.expect("response");

        // THEN the challenge is the whole body, as text, and the browser may not sniff it
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(matches!(response.body(), Body::Text(text) if text == "1158201444"));
        assert!(ingress.store.all().is_empty());
    }

    #[tokio::test]
    async fn a_function_url_answers_what_api_gateway_has_no_route_for_with_404() {
        let ingress = ingress();
        // A GET is routed, as API Gateway routes it for handshakes; Stripe has none: 405.
        let (status, body) = call(&ingress, "function-url-get.json").await;
        assert_eq!(
            (status, body),
            (
                405,
                serde_json::json!({"error": "method not allowed: send a POST"})
            )
        );
        for path in [
            "/",
            "/webhooks/demo",
            "/webhooks/demo/stripe/",
            "/webhooks/demo/stripe/token/extra",
            "/other/demo/stripe",
        ] {
            let mut request = fixture("stripe-invoice-paid-function-url.json");
            *request.uri_mut() = path.parse().expect("uri");
            let response = handle(&ingress, request).await.expect("response");
            assert_eq!(response.status(), 404, "{path}");
        }
        assert!(ingress.store.all().is_empty());
    }

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = response(&Outcome::Unavailable);
        assert_eq!(response.status(), 503);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        assert_eq!(
            response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }

    #[test]
    fn config_requires_its_resources_and_reads_limits() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let full: &'static [(&str, &str)] = &[
            ("EVENTS_TABLE", "events"),
            ("TENANTS_TABLE", "tenants"),
            ("EVENTS_QUEUE_URL", "http://queue"),
            ("SECRETS_KEY_ID", "key"),
            ("PAYLOADS_BUCKET", "payloads"),
            ("MAX_BODY_BYTES", "1024"),
        ];
        let config = Config::from_lookup(env(full)).expect("config");
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.tenant_cache_ttl, Duration::from_secs(60));
        assert_eq!(
            Config::from_lookup(env(&full[1..])),
            Err(EnvError::Missing("EVENTS_TABLE"))
        );
        for bad in ["lots", "0", "6000001"] {
            let lookup = |name: &str| match name {
                "MAX_BODY_BYTES" => Some(bad.to_owned()),
                other => env(full)(other),
            };
            assert!(
                matches!(Config::from_lookup(lookup), Err(EnvError::Invalid { .. })),
                "{bad}"
            );
        }
        let at_the_limit = |name: &str| match name {
            "MAX_BODY_BYTES" => Some(MAX_STORED_BODY_BYTES.to_string()),
            "TENANT_CACHE_TTL_SECS" => Some(MAX_TENANT_CACHE_TTL_SECS.to_string()),
            other => env(full)(other),
        };
        assert!(Config::from_lookup(at_the_limit).is_ok());
    }
}
