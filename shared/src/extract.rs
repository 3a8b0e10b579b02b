//! Reading an event's id, type and provider time, per provider. The id comes from where the
//! provider puts it (Stripe's body `id`, Svix's `webhook-id` header, GitHub's
//! `X-GitHub-Delivery`, ...); nothing here ever reads a tenant from the payload.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;
use thiserror::Error;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    ids::{EventId, IdError},
    provider::Provider,
    verify::GenericHeaders,
};

/// What the ingress needs to know about a delivery before storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_id: EventId,
    pub event_type: Option<String>,
    /// When the provider says the event happened; orders projections in the processor.
    pub created_at: Option<SystemTime>,
}

/// Why a delivery's metadata could not be read. Always the sender's mistake: 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtractError {
    #[error("body is not a JSON object")]
    NotJsonObject,
    #[error("no event id: expected {0}")]
    MissingEventId(&'static str),
    #[error("invalid event id: {0}")]
    InvalidEventId(#[from] IdError),
}

/// Read the metadata of a delivery for `provider`. `generic` names the generic scheme's
/// headers when the tenant configured its own.
pub fn extract(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    generic: Option<&GenericHeaders>,
) -> Result<EventMeta, ExtractError> {
    match provider {
        Provider::Stripe => {
            let json = object(body)?;
            Ok(EventMeta {
                event_id: id_from(string(&json, "id"), "body field id")?,
                event_type: string(&json, "type"),
                created_at: unix_secs(&json["created"]),
            })
        }
        Provider::Clerk | Provider::Resend | Provider::Svix | Provider::StandardWebhooks => {
            let id = header(headers, "webhook-id").or_else(|| header(headers, "svix-id"));
            let json = object(body)?;
            let created_at = match provider {
                Provider::Clerk => unix_millis(&json["timestamp"]),
                _ => rfc3339(&json["created_at"]).or_else(|| rfc3339(&json["timestamp"])),
            };
            Ok(EventMeta {
                event_id: id_from(id, "header webhook-id or svix-id")?,
                event_type: string(&json, "type"),
                created_at,
            })
        }
        Provider::GitHub => Ok(EventMeta {
            event_id: id_from(
                header(headers, "x-github-delivery"),
                "header X-GitHub-Delivery",
            )?,
            event_type: header(headers, "x-github-event"),
            created_at: None,
        }),
        Provider::Shopify => Ok(EventMeta {
            event_id: id_from(
                header(headers, "x-shopify-webhook-id"),
                "header X-Shopify-Webhook-Id",
            )?,
            event_type: header(headers, "x-shopify-topic"),
            created_at: header(headers, "x-shopify-triggered-at")
                .and_then(|t| rfc3339(&Value::String(t))),
        }),
        Provider::Slack => {
            let json = object(body)?;
            let event_type = json["event"]["type"]
                .as_str()
                .or_else(|| json["type"].as_str())
                .map(str::to_owned);
            Ok(EventMeta {
                event_id: id_from(string(&json, "event_id"), "body field event_id")?,
                event_type,
                created_at: unix_secs(&json["event_time"]),
            })
        }
        Provider::Generic => {
            let id_header = generic.map_or_else(|| GenericHeaders::default().id, |g| g.id.clone());
            let from_header = id_header.and_then(|name| header(headers, &name));
            let json = object(body)?;
            Ok(EventMeta {
                event_id: id_from(
                    from_header.or_else(|| string(&json, "id")),
                    "id header or body field id",
                )?,
                event_type: string(&json, "type"),
                created_at: unix_secs(&json["created"]).or_else(|| rfc3339(&json["created_at"])),
            })
        }
    }
}

fn object(body: &[u8]) -> Result<Value, ExtractError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(ExtractError::NotJsonObject),
    }
}

fn id_from(raw: Option<String>, expected: &'static str) -> Result<EventId, ExtractError> {
    let raw = raw.ok_or(ExtractError::MissingEventId(expected))?;
    Ok(EventId::parse(&raw)?)
}

fn string(json: &Value, field: &str) -> Option<String> {
    json[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn unix_secs(value: &Value) -> Option<SystemTime> {
    value
        .as_u64()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn unix_millis(value: &Value) -> Option<SystemTime> {
    value
        .as_u64()
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn rfc3339(value: &Value) -> Option<SystemTime> {
    let parsed = OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()?;
    let nanos = u64::try_from(parsed.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    fn at_millis(ms: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    #[test]
    fn stripe_reads_the_body() {
        let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","created":1686089970}"#;
        let meta = extract(Provider::Stripe, &HeaderMap::new(), body, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(meta.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(meta.created_at, at_millis(1_686_089_970_000));
    }

    #[test]
    fn clerk_reads_the_svix_header_and_millisecond_timestamp() {
        let h = headers(&[("svix-id", "msg_2ZwQk")]);
        let body = br#"{"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"},"object":"event","type":"user.created","timestamp":1654012591835}"#;
        let meta = extract(Provider::Clerk, &h, body, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "msg_2ZwQk");
        assert_eq!(meta.event_type.as_deref(), Some("user.created"));
        assert_eq!(meta.created_at, at_millis(1_654_012_591_835));
    }

    #[test]
    fn resend_reads_rfc3339_created_at() {
        let h = headers(&[("webhook-id", "msg_resend_1")]);
        let body = br#"{"type":"email.delivered","created_at":"2024-02-22T23:41:12.126Z","data":{"email_id":"56761188"}}"#;
        let meta = extract(Provider::Resend, &h, body, None).expect("meta");
        assert_eq!(meta.created_at, at_millis(1_708_645_272_126));
    }

    #[test]
    fn github_and_shopify_read_headers_only() {
        let h = headers(&[
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-event", "push"),
        ]);
        let meta = extract(Provider::GitHub, &h, b"not json is fine", None).expect("meta");
        assert_eq!(meta.event_type.as_deref(), Some("push"));
        let h = headers(&[
            ("x-shopify-webhook-id", "b54557e4"),
            ("x-shopify-topic", "orders/create"),
        ]);
        assert_eq!(
            extract(Provider::Shopify, &h, b"", None)
                .expect("meta")
                .event_id
                .as_str(),
            "b54557e4"
        );
    }

    #[test]
    fn generic_prefers_the_header_then_the_body() {
        let body = br#"{"id":"evt_body","type":"payment.settled","created":1700000000}"#;
        let meta = extract(
            Provider::Generic,
            &headers(&[("x-webhook-id", "evt_header")]),
            body,
            None,
        )
        .expect("meta");
        assert_eq!(meta.event_id.as_str(), "evt_header");
        let meta = extract(Provider::Generic, &HeaderMap::new(), body, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "evt_body");
    }

    #[test]
    fn missing_or_bad_ids_are_specific_errors() {
        assert_eq!(
            extract(Provider::Stripe, &HeaderMap::new(), b"{oops", None),
            Err(ExtractError::NotJsonObject)
        );
        assert_eq!(
            extract(Provider::Stripe, &HeaderMap::new(), b"[1]", None),
            Err(ExtractError::NotJsonObject)
        );
        assert_eq!(
            extract(
                Provider::Stripe,
                &HeaderMap::new(),
                br#"{"type":"x"}"#,
                None
            ),
            Err(ExtractError::MissingEventId("body field id"))
        );
        assert!(matches!(
            extract(
                Provider::Stripe,
                &HeaderMap::new(),
                br#"{"id":"evt 1"}"#,
                None
            ),
            Err(ExtractError::InvalidEventId(_))
        ));
        assert_eq!(
            extract(Provider::GitHub, &HeaderMap::new(), b"{}", None),
            Err(ExtractError::MissingEventId("header X-GitHub-Delivery"))
        );
    }

    proptest! {
        #[test]
        fn no_body_makes_extraction_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for provider in Provider::ALL {
                let _ = extract(provider, &HeaderMap::new(), &body, None);
            }
        }
    }
}
