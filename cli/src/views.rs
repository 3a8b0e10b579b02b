//! The JSON documents `--output json` prints. Field names are stable (the README lists them);
//! times are RFC 3339 in UTC; absent values are `null`. Each view is built field by field from
//! what the text form may show, so adding a field to a record cannot leak a secret here.

use std::time::SystemTime;

use serde_json::{Value, json};
use shared::{
    outbound::{
        delivery::{Attempt, Delivery},
        endpoint::{CustomHeaders, Endpoint},
    },
    ports::EventSummary,
    record::{EventRecord, payload_hash},
    tenant::{ProviderConfig, UnsignedPolicy},
};

use crate::output::{scheme_name, timestamp};

fn time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

/// An endpoint, without its secrets.
pub fn endpoint(e: &Endpoint, now: SystemTime) -> Value {
    json!({
        "id": e.id.as_str(),
        "tenant": e.tenant.as_str(),
        "url": e.url.as_str(),
        "description": e.description,
        "filter": e.filter.patterns(),
        "enabled": e.is_enabled(),
        "disabled_reason": e.disabled().map(|r| r.as_str()),
        "paused": e.is_paused(now),
        "consecutive_failures": e.health.consecutive_failures,
        "rate_limit": e.rate_limit.map(std::num::NonZeroU32::get),
        "headers": e.headers.names(),
        "last_success_at": time(e.health.last_success_at),
        "created_at": timestamp(e.created_at),
        "updated_at": timestamp(e.updated_at),
    })
}

/// An endpoint with its signing secrets (and, when `with_headers`, its headers' values): what
/// `add`, `rotate` and `show --reveal` print.
pub fn endpoint_with_secrets(e: &Endpoint, now: SystemTime, with_headers: bool) -> Value {
    let mut view = endpoint(e, now);
    if let Some(secrets) = &e.secrets {
        view["secret"] = secrets.current.expose().into();
        view["previous_secret"] = secrets.previous.as_ref().map_or(
            Value::Null,
            |p| json!({"secret": p.secret.expose(), "expires_at": timestamp(p.expires_at)}),
        );
    }
    if with_headers {
        let values: serde_json::Map<String, Value> = e
            .headers
            .opened()
            .into_iter()
            .flat_map(CustomHeaders::iter)
            .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
            .collect();
        view["header_values"] = Value::Object(values);
    }
    view
}

pub fn attempt(a: &Attempt) -> Value {
    json!({
        "message_id": a.key.message_id.as_str(),
        "endpoint_id": a.key.endpoint_id.as_str(),
        "number": a.number,
        "at": timestamp(a.at),
        "trigger": a.trigger.as_str(),
        "url": a.url,
        "status": a.status,
        "latency_ms": u64::try_from(a.latency.as_millis()).unwrap_or(u64::MAX),
        "error_class": a.error_class.map(|c| c.as_str()),
        "error": a.error,
        "response_body": a.response_body,
    })
}

pub fn delivery(d: &Delivery) -> Value {
    json!({
        "message_id": d.key.message_id.as_str(),
        "endpoint_id": d.key.endpoint_id.as_str(),
        "event_type": d.event_type.as_str(),
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "created_at": timestamp(d.created_at),
        "next_attempt_at": time(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": time(d.delivered_at),
    })
}

pub fn event_summary(e: &EventSummary) -> Value {
    json!({
        "tenant": e.key.tenant.as_str(),
        "provider": e.key.provider.as_str(),
        "event_id": e.key.event_id.as_str(),
        "event_type": e.event_type,
        "status": e.status.as_str(),
        "attempts": e.attempts,
        "retry_exhausted": e.retry_exhausted,
        "last_error": e.last_error,
        "received_at": timestamp(e.received_at),
    })
}

/// A record; its payload as text only when asked for (it may hold personal data).
pub fn event_record(r: &EventRecord, with_payload: bool) -> Value {
    json!({
        "tenant": r.key.tenant.as_str(),
        "provider": r.key.provider.as_str(),
        "event_id": r.key.event_id.as_str(),
        "event_type": r.event_type,
        "status": r.status.as_str(),
        "status_at": timestamp(r.status_at),
        "attempts": r.attempts,
        "retry_exhausted": r.retry_exhausted,
        "last_error": r.last_error,
        "outcome": r.outcome,
        "verification": r.verification.as_str(),
        "received_at": timestamp(r.received_at),
        "enqueued_at": time(r.enqueued_at),
        "completed_at": time(r.completed_at),
        "provider_created_at": time(r.provider_created_at),
        "duplicates": r.duplicates,
        "replays": r.replay_count,
        "request_id": r.correlation.request_id,
        "trace_id": r.correlation.trace.map(|t| t.trace_id()),
        "note": r.note,
        "payload_bytes": r.payload.len(),
        "payload_sha256": r.payload_hash,
        "payload_intact": r.is_erased() || payload_hash(&r.payload) == r.payload_hash,
        "payload": (with_payload && !r.is_erased())
            .then(|| String::from_utf8_lossy(&r.payload).into_owned()),
        "erased_at": time(r.erased_at),
        "erased_by": r.erased_by,
    })
}

/// A provider configuration, never its secrets or route token.
pub fn provider_config(c: &ProviderConfig, now: SystemTime) -> Value {
    json!({
        "tenant": c.tenant.as_str(),
        "provider": c.provider.as_str(),
        "scheme": scheme_name(&c.verifier().scheme),
        "tolerance_secs": c.tolerance.as_secs(),
        "unsigned": matches!(c.unsigned, UnsignedPolicy::Allow { .. }),
        "previous_secret_expires_at": c.secrets.previous.as_ref().map(|p| timestamp(p.expires_at)),
        "previous_secret_valid": c.secrets.previous.as_ref().is_some_and(|p| p.expires_at > now),
    })
}
