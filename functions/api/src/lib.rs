//! The API Lambda's adapter: the publish route and the tenant's event catalog, JSON in and out.
//! API Gateway authorizes the caller with AWS IAM (SigV4) before this runs; an IAM policy can
//! allow one tenant's paths only (`.../*/v1/tenants/acme/*`).
//!
//! - [`publish`]: `POST /v1/tenants/{tenant}/messages`.
//! - [`event_types`]: `GET|POST /v1/tenants/{tenant}/event-types`,
//!   `GET|PATCH /v1/tenants/{tenant}/event-types/{name}`.
//! - [`openapi`]: `GET /v1/openapi.json`, the description of all of them.
//!
//! A client's mistake is a 4xx with the reason; an outage a 503 (send it again).

pub mod event_types;
pub mod openapi;
pub mod publish;

use lambda_http::{
    Body, Error, Request, Response,
    http::{HeaderValue, Method, StatusCode, header::CONTENT_TYPE},
};
use serde_json::{Value, json};
use shared::{
    aws::{DynamoOutboundStore, SqsDeliveryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    ids::TenantId,
    outbound::{
        Outbound, OutboundSettings,
        ports::{DeliveryQueue, OutboundStore},
    },
};

/// The publish use case wired to DynamoDB and SQS, as deployed.
pub type AwsOutbound = Outbound<DynamoOutboundStore, SqsDeliveryQueue, SystemClock>;

/// The function's configuration, from its environment (set by template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub outbound_table: String,
    pub deliveries_queue_url: String,
    pub settings: OutboundSettings,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        Ok(Self {
            outbound_table: env.required("OUTBOUND_TABLE")?,
            deliveries_queue_url: env.required("DELIVERIES_QUEUE_URL")?,
            settings: OutboundSettings {
                retention: env.retention()?,
                ..OutboundSettings::default()
            },
        })
    }
}

/// Build the deployed publisher: it reads endpoints without their secrets (no KMS access).
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> AwsOutbound {
    Outbound::new(
        DynamoOutboundStore::without_secrets(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.outbound_table,
        ),
        SqsDeliveryQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.deliveries_queue_url,
            String::new(),
        ),
        SystemClock,
        config.settings.clone(),
    )
}

/// Every route the handler serves, as API Gateway's routes and the OpenAPI document name them.
pub const ROUTES: [(&str, &str); 6] = [
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/tenants/{tenant}/messages"),
    ("GET", "/v1/tenants/{tenant}/event-types"),
    ("POST", "/v1/tenants/{tenant}/event-types"),
    ("GET", "/v1/tenants/{tenant}/event-types/{name}"),
    ("PATCH", "/v1/tenants/{tenant}/event-types/{name}"),
];

/// Answer one request: route it by method and path.
pub async fn handle<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    request: Request,
) -> Result<Response<Body>, Error>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    let path = request.uri().path().to_owned();
    // After `v1`: a stage name before it (API Gateway's non-default stages) does not matter.
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .skip_while(|segment| *segment != "v1")
        .collect();
    let method = request.method().clone();
    let route = match segments.as_slice() {
        ["v1", "openapi.json"] if method == Method::GET => {
            return Ok(json_response(StatusCode::OK, &openapi::document()));
        }
        ["v1", "tenants", tenant, rest @ ..] => (*tenant, rest),
        _ => return Ok(not_found("no such route")),
    };
    let (tenant, rest) = route;
    let Ok(tenant) = TenantId::parse(tenant) else {
        return Ok(not_found("unknown tenant"));
    };
    let body: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    Ok(match (&method, rest) {
        (&Method::POST, ["messages"]) => {
            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
            let (key, trace) = (header("idempotency-key"), header(shared::trace::HEADER));
            publish::publish(outbound, &tenant, body, key, trace).await
        }
        (&Method::GET, ["event-types"]) => event_types::list(outbound, &tenant).await,
        (&Method::POST, ["event-types"]) => event_types::register(outbound, &tenant, body).await,
        (&Method::GET, ["event-types", name]) => event_types::show(outbound, &tenant, name).await,
        (&Method::PATCH, ["event-types", name]) => {
            event_types::update(outbound, &tenant, name, body).await
        }
        (_, ["messages"] | ["event-types"] | ["event-types", _]) => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": format!("{method} is not allowed here")}),
        ),
        _ => not_found("no such route"),
    })
}

fn not_found(why: &str) -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, &json!({ "error": why }))
}

/// A JSON answer with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use shared::{
        clock::ManualClock,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore},
        outbound::{
            admin::EndpointChange, ids::MessageId, ports::DeliveryLog, ssrf::StaticResolver,
        },
    };

    use lambda_http::RequestExt;
    use shared::outbound::delivery::MAX_PAYLOAD_BYTES;

    use super::*;

    /// A publisher on memory adapters that resolves `partner.example` (the OpenAPI tests too).
    pub(crate) fn outbound() -> Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>
    {
        Outbound::new(
            MemoryOutboundStore::new(),
            Arc::new(MemoryDeliveryQueue::new()),
            ManualClock::at_unix(1_750_000_000),
            OutboundSettings::default(),
        )
        .with_resolver(Arc::new(
            StaticResolver::default()
                .with("partner.example", &["93.184.216.34".parse().expect("ip")]),
        ))
    }

    fn request(tenant: &str, body: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/v1/tenants/{tenant}/messages"))
            .body(Body::Text(body.to_owned()))
            .expect("request")
            .with_path_parameters(HashMap::from([("tenant".to_owned(), tenant.to_owned())]))
    }

    async fn answer(
        outbound: &Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>,
        tenant: &str,
        body: &str,
    ) -> (u16, Value) {
        let response = handle(outbound, request(tenant, body))
            .await
            .expect("answered");
        let status = response.status().as_u16();
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (status, serde_json::from_str(&text).expect("json"))
    }

    #[tokio::test]
    async fn a_publish_is_accepted_once_and_a_repeat_is_a_duplicate() {
        let o = outbound();
        let tenant = TenantId::parse("acme").expect("tenant");
        o.add_endpoint(
            &tenant,
            EndpointChange {
                url: Some("https://partner.example/hooks".into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint");
        let body =
            r#"{"event_type":"invoice.paid","payload":{"id":"inv_1"},"idempotency_key":"order-1"}"#;

        let (status, first) = answer(&o, "acme", body).await;
        assert_eq!(
            (
                status,
                first["message_id"].as_str(),
                first["deliveries"].as_u64()
            ),
            (202, Some("order-1"), Some(1))
        );
        let (status, again) = answer(&o, "acme", body).await;
        assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
        assert_eq!(o.queue.sent().len(), 1);
        // Stored once, its payload byte for byte as partners receive it.
        let stored = o
            .store
            .message(&tenant, &MessageId::parse("order-1").expect("id"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.payload, br#"{"id":"inv_1"}"#);
    }

    #[tokio::test]
    async fn client_mistakes_are_4xx_with_the_reason() {
        let o = outbound();
        for (tenant, body, status) in [
            ("acme", "not json", 400),
            ("acme", r#"{"event_type":"invoice.paid"}"#, 400),
            ("acme", r#"{"event_type":"bad type!","payload":{}}"#, 400),
            (
                "acme",
                r#"{"event_type":"a.b","payload":{},"extra":1}"#,
                400,
            ),
            ("Not-A-Tenant", r#"{"event_type":"a.b","payload":{}}"#, 404),
            // No endpoint and no policy: a typo, kept nowhere.
            ("acme", r#"{"event_type":"a.b","payload":{}}"#, 404),
        ] {
            let (got, answer) = answer(&o, tenant, body).await;
            assert_eq!(got, status, "{body}: {answer}");
            assert!(answer["error"].is_string());
        }
        shared::outbound::ports::EndpointStore::put_tenant_policy(
            &o.store,
            &TenantId::parse("acme").expect("tenant"),
            &shared::outbound::TenantPolicy::default(),
        )
        .await
        .expect("policy");
        let (status, _) = answer(
            &o,
            "acme",
            r#"{"event_type":"a.b","payload":{"v":1},"idempotency_key":"k"}"#,
        )
        .await;
        assert_eq!(status, 202);
        let (status, conflict) = answer(
            &o,
            "acme",
            r#"{"event_type":"a.b","payload":{"v":2},"idempotency_key":"k"}"#,
        )
        .await;
        assert_eq!(status, 409, "{conflict}");
        let huge = format!(
            r#"{{"event_type":"a.b","payload":"{}"}}"#,
            "x".repeat(MAX_PAYLOAD_BYTES + 10)
        );
        assert_eq!(answer(&o, "acme", &huge).await.0, 413);
        o.store.set_unavailable(true);
        let (status, outage) = answer(&o, "acme", r#"{"event_type":"a.b","payload":{}}"#).await;
        assert_eq!(status, 503);
        assert!(
            !outage["error"]
                .as_str()
                .unwrap_or_default()
                .contains("simulated")
        );
    }
}
