//! Providers without a domain handler (GitHub, Slack, Shopify, Svix, Standard Webhooks, the
//! declared ones, generic), and Circle's subscription handshakes: each event is recorded as
//! received, with its type and time, so a tenant can see what arrived. The payload may be
//! anything, even not JSON: every type is accepted.

use serde_json::{Value, json};

use super::{Event, ProjectorError, ProjectorOutcome, fields, rfc3339_millis};
use crate::{projection::ProjectionKind, provider::Provider, record::EventKey};

/// One `received_event` item keyed `"{provider}#{event id}"`: ids are unique per provider
/// only, and generic senders choose their own.
pub(super) fn project(
    provider: Provider,
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
) -> Result<ProjectorOutcome, ProjectorError> {
    let ev = Event::new(provider, event_type.unwrap_or("event"), key);
    let occurred = occurred_at(provider, payload);
    let f = fields([
        ("provider", json!(provider.as_str())),
        ("event_type", json!(event_type)),
        ("occurred_at", json!(occurred)),
    ]);
    let entity = format!("{provider}#{}", key.event_id);
    let write = ev.upsert(
        ProjectionKind::ReceivedEvent,
        &entity,
        occurred.unwrap_or(0),
        f,
    )?;
    Ok(ProjectorOutcome::Writes(vec![write]))
}

/// The provider's event time in unix milliseconds, where the body carries one (GitHub's and
/// Shopify's travel in headers or not at all).
fn occurred_at(provider: Provider, payload: &[u8]) -> Option<i64> {
    let secs = |v: &Value| v.as_i64().and_then(|s| s.checked_mul(1000));
    let rfc = |v: &Value| v.as_str().and_then(rfc3339_millis);
    let json: Value = match provider {
        Provider::Generic | Provider::Svix | Provider::StandardWebhooks | Provider::Slack => {
            serde_json::from_slice(payload).ok()?
        }
        _ => return None,
    };
    let ms = match provider {
        Provider::Generic => secs(&json["created"]).or_else(|| rfc(&json["created_at"])),
        Provider::Slack => secs(&json["event_time"]),
        _ => rfc(&json["timestamp"]).or_else(|| rfc(&json["created_at"])),
    };
    ms.filter(|ms| *ms >= 0)
}
