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
    /// A time field holds a number no real event carries (beyond [`LATEST_EVENT_TIME`]).
    #[error("{0} is out of range")]
    TimeOutOfRange(&'static str),
}

/// The latest provider time accepted: 9999-12-31T23:59:59Z, as far as RFC 3339 reaches. Beyond
/// it a number is a mistake or an attack, and would overflow the arithmetic on times.
pub const LATEST_EVENT_TIME: Duration = Duration::from_secs(253_402_300_799);

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
                created_at: unix_secs(&json["created"], "created")?,
            })
        }
        Provider::Clerk | Provider::Resend | Provider::Svix | Provider::StandardWebhooks => {
            let id = header(headers, "webhook-id").or_else(|| header(headers, "svix-id"));
            let json = object(body)?;
            let created_at = match provider {
                Provider::Clerk => unix_millis(&json["timestamp"], "timestamp")?,
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
                created_at: unix_secs(&json["event_time"], "event_time")?,
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
                created_at: match unix_secs(&json["created"], "created")? {
                    Some(at) => Some(at),
                    None => rfc3339(&json["created_at"]),
                },
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

/// A whole number of seconds since the epoch. Absent or not a whole number: no time (the
/// event is ordered by arrival); a whole number past [`LATEST_EVENT_TIME`]: refused.
fn unix_secs(value: &Value, field: &'static str) -> Result<Option<SystemTime>, ExtractError> {
    value
        .as_u64()
        .map(|secs| since_epoch(Duration::from_secs(secs), field))
        .transpose()
}

/// As [`unix_secs`], in milliseconds.
fn unix_millis(value: &Value, field: &'static str) -> Result<Option<SystemTime>, ExtractError> {
    value
        .as_u64()
        .map(|ms| since_epoch(Duration::from_millis(ms), field))
        .transpose()
}

fn since_epoch(offset: Duration, field: &'static str) -> Result<SystemTime, ExtractError> {
    if offset > LATEST_EVENT_TIME {
        return Err(ExtractError::TimeOutOfRange(field));
    }
    SystemTime::UNIX_EPOCH
        .checked_add(offset)
        .ok_or(ExtractError::TimeOutOfRange(field))
}

/// An RFC 3339 time at or after the epoch (the format caps the year at 9999).
fn rfc3339(value: &Value) -> Option<SystemTime> {
    let parsed = OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()?;
    let nanos = u64::try_from(parsed.unix_timestamp_nanos()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
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

    #[test]
    fn times_past_year_9999_are_refused_with_the_field_named() {
        let h = headers(&[("webhook-id", "msg_1"), ("x-github-delivery", "d")]);
        let cases = [
            (
                Provider::Stripe,
                r#"{"id":"evt_1","created":18446744073709551615}"#,
                "created",
            ),
            (
                Provider::Stripe,
                r#"{"id":"evt_1","created":253402300800}"#,
                "created",
            ),
            (
                Provider::Clerk,
                r#"{"timestamp":18446744073709551615}"#,
                "timestamp",
            ),
            (
                Provider::Slack,
                r#"{"event_id":"Ev1","event_time":18446744073709551615}"#,
                "event_time",
            ),
            (
                Provider::Generic,
                r#"{"id":"e","created":18446744073709551614}"#,
                "created",
            ),
        ];
        for (provider, body, field) in cases {
            assert_eq!(
                extract(provider, &h, body.as_bytes(), None),
                Err(ExtractError::TimeOutOfRange(field)),
                "{provider}"
            );
        }
        // The last second of 9999 is still a time; a fractional or negative one is no time.
        let meta = extract(
            Provider::Stripe,
            &h,
            br#"{"id":"evt_1","created":253402300799}"#,
            None,
        )
        .expect("meta");
        assert!(meta.created_at.is_some());
        for created in ["-5", "1.5e9", "\"1700000000\""] {
            let body = format!(r#"{{"id":"evt_1","created":{created}}}"#);
            let meta = extract(Provider::Stripe, &h, body.as_bytes(), None).expect("meta");
            assert_eq!(meta.created_at, None, "{created}");
        }
    }

    /// JSON values that break naive code: extreme numbers, huge strings, deep nesting.
    fn hostile_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![
                Just(u64::MAX),
                Just(u64::MAX - 1),
                Just(i64::MAX as u64),
                Just(253_402_300_800),
                any::<u64>(),
            ]
            .prop_map(Value::from),
            prop_oneof![Just(i64::MIN), Just(-1i64), any::<i64>()].prop_map(Value::from),
            prop_oneof![
                Just(f64::MAX),
                Just(f64::MIN_POSITIVE),
                Just(-0.0),
                any::<f64>()
            ]
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[ -~]{0,40}".prop_map(Value::String),
            Just(Value::String("x".repeat(100_000))),
        ];
        leaf.prop_recursive(8, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An event body whose well-known fields (ids, types, every time field a provider uses)
    /// hold hostile values.
    fn hostile_event() -> impl Strategy<Value = Vec<u8>> {
        let fields = [
            "id",
            "type",
            "created",
            "timestamp",
            "created_at",
            "event_time",
            "event_id",
            "event",
        ];
        proptest::collection::vec(hostile_value(), fields.len()).prop_map(move |values| {
            let object: serde_json::Map<String, Value> =
                fields.iter().map(|f| (*f).to_owned()).zip(values).collect();
            serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
        })
    }

    proptest! {
        #[test]
        fn no_body_makes_extraction_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for provider in Provider::ALL {
                let _ = extract(provider, &HeaderMap::new(), &body, None);
            }
        }

        #[test]
        fn hostile_json_is_answered_never_panicked_on(body in hostile_event()) {
            let h = headers(&[("webhook-id", "msg_1"), ("x-github-delivery", "d")]);
            for provider in Provider::ALL {
                if let Ok(meta) = extract(provider, &h, &body, None) {
                    // Any time that passes can be computed with, and stored as milliseconds.
                    if let Some(at) = meta.created_at {
                        prop_assert!(at <= SystemTime::UNIX_EPOCH + LATEST_EVENT_TIME);
                        prop_assert!(at.checked_add(Duration::from_secs(86_400 * 366)).is_some());
                    }
                }
            }
        }
    }
}
