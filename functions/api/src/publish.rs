//! `POST /v1/tenants/{tenant}/messages`: publish a message to the tenant's partner endpoints.
//!
//! The body: `{"event_type": "invoice.paid", "payload": {...}, "idempotency_key": "..."}`; the
//! key may come as the `Idempotency-Key` header instead. 202 with the message id when stored
//! and fanned out; the same request again answers 200 with `duplicate: true` and delivers
//! nothing twice. A `traceparent` header makes the publish, and every delivery attempt after it,
//! spans of the caller's trace. A payload that breaks its registered type's schema is a 422 naming where;
//! an outage a 503 (publish again with the same key).

use lambda_http::{Body, Response, http::StatusCode};
use serde::Deserialize;
use serde_json::json;
use shared::{
    clock::Clock,
    ids::TenantId,
    outbound::{
        Outbound, PublishError,
        delivery::MAX_PAYLOAD_BYTES,
        ports::{DeliveryQueue, OutboundStore},
        publish::PublishRequest,
    },
    trace::TraceParent,
};
use tracing::warn;

use crate::json_response;

/// The publish request's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    pub(crate) event_type: String,
    pub(crate) payload: Box<serde_json::value::RawValue>,
    #[serde(default)]
    pub(crate) idempotency_key: Option<String>,
}

/// Publish what `body` says for `tenant`.
pub async fn publish<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    tenant: &TenantId,
    body: &[u8],
    header_key: Option<&str>,
    traceparent: Option<&str>,
) -> Response<Body>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    // The payload plus its envelope: anything bigger cannot hold an acceptable payload.
    if body.len() > MAX_PAYLOAD_BYTES + 4096 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &PublishError::TooLarge);
    }
    let parsed: PublishBody = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("the body must be {{\"event_type\", \"payload\", \"idempotency_key\"}}: {e}")}),
            );
        }
    };
    let key = parsed.idempotency_key.as_deref().or(header_key);
    // The publish is a span of the caller's trace, if it sent one: every delivery continues it.
    let result = outbound
        .publish_traced(
            PublishRequest {
                tenant,
                event_type: &parsed.event_type,
                payload: parsed.payload.get().as_bytes(),
                idempotency_key: key,
            },
            TraceParent::continue_from(traceparent),
        )
        .await;
    match result {
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
                PublishError::SchemaMismatch { .. } | PublishError::UnregisteredType(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                PublishError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            if !e.is_client_error() {
                warn!(%tenant, error = %e, "publish failed");
            }
            error(status, &e)
        }
    }
}

fn error(status: StatusCode, e: &PublishError) -> Response<Body> {
    let mut body = json!({
        "error": if e.is_client_error() {
            e.to_string()
        } else {
            "temporarily unavailable; publish again with the same idempotency key".to_owned()
        }
    });
    if let PublishError::SchemaMismatch { mismatch, .. } = e {
        body["pointer"] = mismatch.pointer.clone().into();
        body["keyword"] = mismatch.keyword.clone().into();
    }
    json_response(status, &body)
}
