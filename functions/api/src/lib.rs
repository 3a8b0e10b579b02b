//! The API Lambda's adapter: `POST /v1/tenants/{tenant}/messages` in, the publish use case, a
//! JSON answer out. API Gateway authorizes the caller with AWS IAM (SigV4) before this runs;
//! an IAM policy can allow one tenant's path only (`.../POST/v1/tenants/acme/messages`).
//!
//! The body: `{"event_type": "invoice.paid", "payload": {...}, "idempotency_key": "..."}`; the
//! key may come as the `Idempotency-Key` header instead. 202 with the message id when stored
//! and fanned out; the same request again answers 200 with `duplicate: true` and delivers
//! nothing twice. A client's mistake is a 4xx with the reason; an outage a 503 (publish again
//! with the same key).

use lambda_http::{
    Body, Error, Request, RequestExt, Response,
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    aws::{DynamoOutboundStore, SqsDeliveryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    ids::TenantId,
    outbound::{
        Outbound, OutboundSettings, PublishError,
        delivery::MAX_PAYLOAD_BYTES,
        ports::{DeliveryQueue, OutboundStore},
        publish::PublishRequest,
    },
};
use tracing::warn;

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

/// The publish request's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    event_type: String,
    payload: Box<serde_json::value::RawValue>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Answer one request.
pub async fn handle<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    request: Request,
) -> Result<Response<Body>, Error>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    let tenant = request
        .path_parameters()
        .first("tenant")
        .unwrap_or_default()
        .to_owned();
    let Ok(tenant) = TenantId::parse(&tenant) else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown tenant"}),
        ));
    };
    let body: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    // The payload plus its envelope: anything bigger cannot hold an acceptable payload.
    if body.len() > MAX_PAYLOAD_BYTES + 4096 {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &PublishError::TooLarge,
        ));
    }
    let parsed: PublishBody = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("the body must be {{\"event_type\", \"payload\", \"idempotency_key\"}}: {e}")}),
            ));
        }
    };
    let header_key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key = parsed.idempotency_key.or(header_key);
    let result = outbound
        .publish(PublishRequest {
            tenant: &tenant,
            event_type: &parsed.event_type,
            payload: parsed.payload.get().as_bytes(),
            idempotency_key: key.as_deref(),
        })
        .await;
    Ok(match result {
        Ok(published) => json_response(
            if published.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            },
            &json!({
                "message_id": published.message_id.as_str(),
                "duplicate": published.duplicate,
                "deliveries": published.deliveries,
            }),
        ),
        Err(e) => {
            let status = match &e {
                PublishError::Conflict(_) => StatusCode::CONFLICT,
                PublishError::UnknownTenant(_) => StatusCode::NOT_FOUND,
                PublishError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                PublishError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            if !e.is_client_error() {
                warn!(%tenant, error = %e, "publish failed");
            }
            error(status, &e)
        }
    })
}

fn error(status: StatusCode, e: &PublishError) -> Response<Body> {
    let text = if e.is_client_error() {
        e.to_string()
    } else {
        "temporarily unavailable; publish again with the same idempotency key".to_owned()
    };
    json_response(status, &json!({ "error": text }))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
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

    use super::*;

    fn outbound() -> Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock> {
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
