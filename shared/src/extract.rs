//! Reading an event's id, type and provider time, per provider. The id comes from where the
//! provider puts it (Stripe's body `id`, Svix's `webhook-id` header, GitHub's
//! `X-GitHub-Delivery`, Twilio's `I-Twilio-Idempotency-Token`, ...); nothing here ever reads a
//! tenant from the payload.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use base64::Engine;

use crate::{
    ids::{EventId, IdError},
    provider::Provider,
    verify::{
        GenericHeaders,
        declared::{
            Auth, Carrier, Declaration, Field, IdFrom, Stamp, TimeField, TimeUnit, text_of,
        },
    },
};

const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// What the ingress needs to know about a delivery before storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_id: EventId,
    pub event_type: Option<String>,
    /// When the provider says the event happened; orders projections in the processor.
    pub created_at: Option<SystemTime>,
    /// Whether the signature covers the id. Where it does not (GitHub's and Shopify's id
    /// headers, Twilio's idempotency header, the generic scheme's id header), a captured
    /// delivery could be replayed under a fresh id: the ingress dedupes those on their signed
    /// content as well.
    pub id_signed: bool,
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
                id_signed: true,
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
                id_signed: true,
            })
        }
        Provider::GitHub => Ok(EventMeta {
            event_id: id_from(
                header(headers, "x-github-delivery"),
                "header X-GitHub-Delivery",
            )?,
            event_type: header(headers, "x-github-event"),
            created_at: None,
            id_signed: false,
        }),
        Provider::Shopify => Ok(EventMeta {
            event_id: id_from(
                header(headers, "x-shopify-webhook-id"),
                "header X-Shopify-Webhook-Id",
            )?,
            event_type: header(headers, "x-shopify-topic"),
            created_at: header(headers, "x-shopify-triggered-at")
                .and_then(|t| rfc3339(&Value::String(t))),
            id_signed: false,
        }),
        Provider::Slack => slack(headers, body),
        Provider::Twilio => twilio(headers, body),
        Provider::Circle => {
            let json = object(body)?;
            Ok(EventMeta {
                event_id: id_from(string(&json, "notificationId"), "body field notificationId")?,
                event_type: string(&json, "notificationType"),
                created_at: rfc3339(&json["timestamp"]),
                id_signed: true,
            })
        }
        Provider::PayPal => {
            let json = object(body)?;
            Ok(EventMeta {
                event_id: id_from(string(&json, "id"), "body field id")?,
                event_type: string(&json, "event_type"),
                created_at: rfc3339(&json["create_time"]),
                id_signed: true,
            })
        }
        Provider::Declared(declaration) => declared(declaration, headers, body),
        Provider::Firebase => firebase(body),
        Provider::Braintree => braintree(body),
        Provider::Generic => {
            let id_header = generic.map_or_else(|| GenericHeaders::default().id, |g| g.id.clone());
            let from_header = id_header.and_then(|name| header(headers, &name));
            let json = object(body)?;
            // The body is signed and a header is not: the body's id wins when it has one.
            let from_body = string(&json, "id");
            let id_signed = from_body.is_some();
            Ok(EventMeta {
                event_id: id_from(from_body.or(from_header), "body field id or id header")?,
                event_type: string(&json, "type"),
                created_at: match unix_secs(&json["created"], "created")? {
                    Some(at) => Some(at),
                    None => rfc3339(&json["created_at"]),
                },
                id_signed,
            })
        }
    }
}

/// Slack sends three shapes, all signed as raw bytes: Events API JSON (`event_callback`, and the
/// `url_verification` handshake), form-encoded slash commands (`command`, `trigger_id`), and
/// interactivity as JSON wrapped in a `payload` form field. The id is the first of: the Events
/// API's `event_id`; the request's `trigger_id`; the payload's own ids (its view's id and
/// hash, or its `action_ts`); and, for whatever carries none (the handshake), the hex SHA-256 of
/// the signed content `v0:{timestamp}:{body}`, which Slack never repeats.
fn slack(headers: &HeaderMap, body: &[u8]) -> Result<EventMeta, ExtractError> {
    const EXPECTED: &str = "body field event_id or trigger_id, or header X-Slack-Request-Timestamp";
    let sent_at = header(headers, SLACK_TIMESTAMP_HEADER);
    let digest = || {
        let ts = sent_at.as_deref()?;
        let mut hash = Sha256::new();
        hash.update(b"v0:");
        hash.update(ts.as_bytes());
        hash.update(b":");
        hash.update(body);
        Some(hex::encode(hash.finalize()))
    };

    if let Ok(json) = object(body) {
        let event_type = json["event"]["type"]
            .as_str()
            .or_else(|| json["type"].as_str())
            .map(str::to_owned);
        return Ok(EventMeta {
            event_id: id_from(string(&json, "event_id").or_else(digest), EXPECTED)?,
            event_type,
            created_at: unix_secs(&json["event_time"], "event_time")?,
            id_signed: true,
        });
    }
    let form = form(body);
    let (event_type, own_id) = if let Some(payload) = form.get("payload") {
        let json = object(payload.as_bytes())?;
        let view = &json["view"];
        let view_id = match (view["id"].as_str(), view["hash"].as_str()) {
            (Some(id), Some(hash)) => Some(format!("{id}:{hash}")),
            (Some(id), None) => Some(id.to_owned()),
            _ => None,
        };
        let own = string(&json, "trigger_id")
            .or(view_id)
            .or_else(|| string(&json, "action_ts"));
        (string(&json, "type"), own)
    } else if form.contains_key("command") {
        // The command's name is the tenant's own text; the type stays one bounded label.
        let trigger = form.get("trigger_id").filter(|t| !t.is_empty()).cloned();
        (Some("slash_command".to_owned()), trigger)
    } else {
        return Err(ExtractError::NotJsonObject);
    };
    // Forms carry no event time: when Slack sent the request is the closest there is.
    let sent = sent_at
        .as_deref()
        .and_then(|ts| ts.parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    Ok(EventMeta {
        event_id: id_from(own_id.or_else(digest), EXPECTED)?,
        event_type,
        created_at: sent,
        id_signed: true,
    })
}

/// Whether a verified Slack delivery is the Events API's `url_verification` handshake, and if
/// so its challenge, which the ingress answers with (200, the challenge as the body) instead of
/// storing an event. Call it only after the signature verified: the challenge is echoed back.
/// A challenge that is empty, long or not printable ASCII is not answered.
pub fn slack_challenge(body: &[u8]) -> Option<String> {
    let json = object(body).ok()?;
    if json["type"].as_str() != Some("url_verification") {
        return None;
    }
    json["challenge"]
        .as_str()
        .filter(|c| !c.is_empty() && c.len() <= 256 && c.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// Twilio posts form fields. Its idempotency token is the same on every retry of one delivery;
/// without it (older or proxied requests) a status callback is identified by its resource's SID
/// and the status it reports, so each transition of a message or call is one event.
fn twilio(headers: &HeaderMap, body: &[u8]) -> Result<EventMeta, ExtractError> {
    let form = form(body);
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let (kind, sid, status) = match (field("MessageSid"), field("CallSid")) {
        (Some(sid), _) => (
            "message",
            Some(sid),
            field("MessageStatus").or_else(|| field("SmsStatus")),
        ),
        (None, Some(sid)) => ("call", Some(sid), field("CallStatus")),
        (None, None) => ("event", None, None),
    };
    let from_form = sid.map(|sid| match status {
        Some(status) => format!("{sid}:{status}"),
        None => sid.clone(),
    });
    let event_type = match (sid, status) {
        (Some(_), Some(status)) => Some(format!("{kind}.{status}")),
        (Some(_), None) => Some(kind.to_owned()),
        (None, _) => None,
    };
    let token = header(headers, crate::verify::twilio::IDEMPOTENCY_HEADER);
    let id_signed = token.is_none();
    Ok(EventMeta {
        event_id: id_from(
            token.or(from_form),
            "header I-Twilio-Idempotency-Token or form field MessageSid or CallSid",
        )?,
        event_type,
        created_at: None,
        id_signed,
    })
}

/// A declared provider's metadata, from where its declaration says. Bodies are read as any JSON
/// (SendGrid and HubSpot send arrays); a body that is not JSON has no body fields.
fn declared(
    declaration: &Declaration,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<EventMeta, ExtractError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let at = |pointer: &str| json.as_ref().and_then(|j| j.pointer(pointer));
    let event_id = match declaration.id {
        IdFrom::Header { name, .. } => id_from(header(headers, name), name)?,
        IdFrom::Body(pointer) => {
            if json.is_none() {
                return Err(ExtractError::NotJsonObject);
            }
            id_from(
                at(pointer).and_then(text_of).filter(|t| !t.is_empty()),
                pointer,
            )?
        }
        IdFrom::BodyHash => id_from(Some(hex::encode(Sha256::digest(body))), "a body")?,
    };
    let event_type = match declaration.event_type {
        Field::None => None,
        Field::Header(name) => header(headers, name),
        Field::Body(pointer) => at(pointer).and_then(text_of).filter(|t| !t.is_empty()),
    };
    let time_of = |value: Option<&Value>, unit: TimeUnit| -> Option<SystemTime> {
        match value? {
            Value::String(text) => unit.parse(text),
            // Whole or fractional seconds (Mailgun's event time), whole milliseconds.
            Value::Number(n) => match unit {
                TimeUnit::Secs => n
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s <= LATEST_EVENT_TIME.as_secs_f64())
                    .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)),
                TimeUnit::Millis => unit.parse(&n.as_u64()?.to_string()),
                TimeUnit::Rfc3339 => None,
            },
            _ => None,
        }
    };
    let created_at = match declaration.created_at {
        TimeField::None => None,
        TimeField::Header(name, unit) => header(headers, name).and_then(|t| unit.parse(&t)),
        TimeField::Body(pointer, unit) => time_of(at(pointer), unit),
        TimeField::Signed => match &declaration.auth {
            Auth::Signed(signature) => match signature.timestamp {
                Some(Stamp::Header { name, unit }) => {
                    header(headers, name).and_then(|t| unit.parse(&t))
                }
                Some(Stamp::Body { pointer, unit }) => time_of(at(pointer), unit),
                Some(Stamp::Field { key, unit }) => match signature.carrier {
                    Carrier::Fields {
                        header: name,
                        separator,
                        ..
                    } => header(headers, name).and_then(|value| {
                        value.split(separator).find_map(|item| {
                            let (k, v) = item.trim().split_once('=')?;
                            (k == key).then(|| unit.parse(v)).flatten()
                        })
                    }),
                    _ => None,
                },
                None => None,
            },
            _ => None,
        },
    };
    Ok(EventMeta {
        event_id,
        event_type,
        created_at,
        id_signed: declaration.id_signed(),
    })
}

/// A Google Cloud Pub/Sub push: `{"message": {"data", "messageId", "publishTime",
/// "attributes"}, "subscription"}`. The id is Pub/Sub's message id, the same on every
/// redelivery; the type is the `eventType` attribute (Firebase and Eventarc set one) else the
/// `event` of the decoded data (FCM's delivery rows); the time is when it was published. The
/// bearer token authenticates the sender, not the bytes: the ingress also deduplicates on
/// content, leaving out `deliveryAttempt`, which changes on each redelivery.
fn firebase(body: &[u8]) -> Result<EventMeta, ExtractError> {
    let json = object(body)?;
    let message = &json["message"];
    let event_type = message["attributes"]["eventType"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let data = message["data"].as_str()?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(data)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data))
                .ok()?;
            let row: Value = serde_json::from_slice(&decoded).ok()?;
            string(&row, "event")
        });
    Ok(EventMeta {
        event_id: id_from(string(message, "messageId"), "body field message.messageId")?,
        event_type,
        created_at: rfc3339(&message["publishTime"]),
        id_signed: false,
    })
}

/// Braintree's notifications carry no id: the hex SHA-256 of the signed payload is one (a
/// retry carries the same payload). The kind and time are read from the payload's XML.
fn braintree(body: &[u8]) -> Result<EventMeta, ExtractError> {
    const EXPECTED: &str = "form field bt_payload";
    let (_, payload) = crate::verify::braintree::fields(body)
        .map_err(|_| ExtractError::MissingEventId(EXPECTED))?;
    let (kind, time) = crate::verify::braintree::kind_and_time(&payload);
    Ok(EventMeta {
        event_id: id_from(
            Some(hex::encode(Sha256::digest(payload.as_bytes()))),
            EXPECTED,
        )?,
        event_type: kind,
        created_at: time.and_then(|t| rfc3339(&Value::String(t))),
        id_signed: true,
    })
}

/// The content a Pub/Sub push is deduplicated on: the envelope without `deliveryAttempt`, which
/// Pub/Sub raises on each redelivery of the same message.
pub fn firebase_identity(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            if let Some(envelope) = json.as_object_mut() {
                envelope.remove("deliveryAttempt");
            }
            json.to_string().into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

/// The first value of each field of a form-encoded body.
fn form(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        fields
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    fields
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
    fn generic_prefers_the_signed_body_then_the_header() {
        let body = br#"{"id":"evt_body","type":"payment.settled","created":1700000000}"#;
        let with_header = headers(&[("x-webhook-id", "evt_header")]);
        let meta = extract(Provider::Generic, &with_header, body, None).expect("meta");
        assert_eq!((meta.event_id.as_str(), meta.id_signed), ("evt_body", true));
        let no_id = br#"{"type":"payment.settled"}"#;
        let meta = extract(Provider::Generic, &with_header, no_id, None).expect("meta");
        assert_eq!(
            (meta.event_id.as_str(), meta.id_signed),
            ("evt_header", false)
        );
    }

    #[test]
    fn ids_from_unsigned_headers_are_marked() {
        let h = headers(&[
            ("x-github-delivery", "d-1"),
            ("x-shopify-webhook-id", "s-1"),
            ("i-twilio-idempotency-token", "t-1"),
        ]);
        for provider in [Provider::GitHub, Provider::Shopify, Provider::Twilio] {
            let meta = extract(provider, &h, b"MessageSid=SM1", None).expect("meta");
            assert!(!meta.id_signed, "{provider}");
        }
        let meta =
            extract(Provider::Twilio, &HeaderMap::new(), b"MessageSid=SM1", None).expect("meta");
        assert!(meta.id_signed, "Twilio's form fields are signed");
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

    // Slack's documented slash command request (also the signature vector in verify::slack).
    const SLASH: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebbot&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const HANDSHAKE: &[u8] = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;

    fn slack_headers() -> HeaderMap {
        headers(&[("x-slack-request-timestamp", "1531420618")])
    }

    #[test]
    fn slack_events_api_reads_the_event_id() {
        let body = br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event_time":1531420618,"event":{"type":"app_mention"}}"#;
        let meta = extract(Provider::Slack, &slack_headers(), body, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "Ev08MFMKH6");
        assert_eq!(meta.event_type.as_deref(), Some("app_mention"));
        assert_eq!(meta.created_at, at_millis(1_531_420_618_000));
    }

    #[test]
    fn slack_url_verification_is_recognised_and_has_an_id() {
        // GIVEN the Events API handshake
        // THEN the ingress is told the challenge to answer with
        assert_eq!(
            slack_challenge(HANDSHAKE).as_deref(),
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        );
        // and it still has an id: SHA-256 of "v0:{ts}:{body}" (computed with Python's hashlib)
        let meta = extract(Provider::Slack, &slack_headers(), HANDSHAKE, None).expect("meta");
        assert_eq!(
            meta.event_id.as_str(),
            "6e585d6c9f4f3bd7c5c35c809a05ef10e95ab0c5fa12d65a94868ccfea93ac19"
        );
        assert_eq!(meta.event_type.as_deref(), Some("url_verification"));
        // Anything else is not a handshake.
        for body in [
            &br#"{"type":"event_callback","challenge":"x"}"#[..],
            br#"{"type":"url_verification","challenge":""}"#,
            br#"{"type":"url_verification","challenge":"a b"}"#,
            br#"{"type":"url_verification"}"#,
            SLASH,
            b"",
        ] {
            assert_eq!(slack_challenge(body), None);
        }
    }

    #[test]
    fn slack_slash_commands_read_the_trigger_id() {
        let meta = extract(Provider::Slack, &slack_headers(), SLASH, None).expect("meta");
        assert_eq!(
            meta.event_id.as_str(),
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        assert_eq!(meta.event_type.as_deref(), Some("slash_command"));
        assert_eq!(meta.created_at, at_millis(1_531_420_618_000));
    }

    #[test]
    fn slack_interactivity_reads_the_wrapped_payload() {
        let cases: [(&[u8], &str, &str); 3] = [
            (
                b"payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%2213345224609.738474920.8088930838d88f008e0%22%7D",
                "13345224609.738474920.8088930838d88f008e0",
                "block_actions",
            ),
            (
                b"payload=%7B%22type%22%3A%22view_closed%22%2C%22view%22%3A%7B%22id%22%3A%22V0PKB1ZFV%22%2C%22hash%22%3A%221578977498.bRnXoEBY%22%7D%7D",
                "V0PKB1ZFV:1578977498.bRnXoEBY",
                "view_closed",
            ),
            (
                b"payload=%7B%22type%22%3A%22block_suggestion%22%2C%22action_ts%22%3A%221578977498.123%22%7D",
                "1578977498.123",
                "block_suggestion",
            ),
        ];
        for (body, id, kind) in cases {
            let meta = extract(Provider::Slack, &slack_headers(), body, None).expect("meta");
            assert_eq!(meta.event_id.as_str(), id);
            assert_eq!(meta.event_type.as_deref(), Some(kind));
        }
        // A payload with no ids of its own is named by its signed content.
        let bare = b"payload=%7B%22type%22%3A%22message_action%22%7D";
        let meta = extract(Provider::Slack, &slack_headers(), bare, None).expect("meta");
        assert_eq!(meta.event_id.as_str().len(), 64);
        // Without the timestamp header there is nothing to name it by.
        assert_eq!(
            extract(Provider::Slack, &HeaderMap::new(), bare, None),
            Err(ExtractError::MissingEventId(
                "body field event_id or trigger_id, or header X-Slack-Request-Timestamp"
            ))
        );
        assert_eq!(
            extract(Provider::Slack, &slack_headers(), b"payload=%7Bnope", None),
            Err(ExtractError::NotJsonObject)
        );
        assert_eq!(
            extract(Provider::Slack, &slack_headers(), b"text=hello", None),
            Err(ExtractError::NotJsonObject)
        );
    }

    #[test]
    fn twilio_prefers_the_idempotency_token_then_the_sid_and_status() {
        // GIVEN a message status callback, form-encoded as Twilio sends it
        let body = b"AccountSid=AC0123&MessageSid=SM0123456789abcdef&MessageStatus=delivered&To=%2B15005550006";
        // WHEN it carries Twilio's idempotency token, THEN that is the id
        let h = headers(&[(
            "i-twilio-idempotency-token",
            "fa7e4b7b-a2b5-4b38-9d0b-5a2c3e2e1c1d",
        )]);
        let meta = extract(Provider::Twilio, &h, body, None).expect("meta");
        assert_eq!(
            meta.event_id.as_str(),
            "fa7e4b7b-a2b5-4b38-9d0b-5a2c3e2e1c1d"
        );
        assert_eq!(meta.event_type.as_deref(), Some("message.delivered"));
        // WHEN it does not, THEN the SID and status are
        let meta = extract(Provider::Twilio, &HeaderMap::new(), body, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "SM0123456789abcdef:delivered");
        // and a call's status callback reads the same way
        let call = b"CallSid=CA42&CallStatus=in-progress&Direction=inbound";
        let meta = extract(Provider::Twilio, &HeaderMap::new(), call, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "CA42:in-progress");
        assert_eq!(meta.event_type.as_deref(), Some("call.in-progress"));
        // an inbound SMS has SmsStatus, and no status at all still gives the SID
        let sms = b"MessageSid=SM1&SmsStatus=received&Body=hi";
        assert_eq!(
            extract(Provider::Twilio, &HeaderMap::new(), sms, None)
                .expect("meta")
                .event_id
                .as_str(),
            "SM1:received"
        );
        let bare = b"MessageSid=SM2&Body=hi";
        let meta = extract(Provider::Twilio, &HeaderMap::new(), bare, None).expect("meta");
        assert_eq!(meta.event_id.as_str(), "SM2");
        assert_eq!(meta.event_type.as_deref(), Some("message"));
        assert_eq!(
            extract(Provider::Twilio, &HeaderMap::new(), b"Body=hi", None),
            Err(ExtractError::MissingEventId(
                "header I-Twilio-Idempotency-Token or form field MessageSid or CallSid"
            ))
        );
    }

    #[test]
    fn circle_reads_the_notification() {
        let body = br#"{"subscriptionId":"00000000-0000-0000-0000-000000000000","notificationId":"5c1d0a1c-7d4b-4f7e-9a21-3b0f4f0b9a11","notificationType":"transfers","notification":{"id":"t1"},"timestamp":"2024-01-26T18:22:19.779834211Z","version":2}"#;
        let meta = extract(Provider::Circle, &HeaderMap::new(), body, None).expect("meta");
        assert_eq!(
            meta.event_id.as_str(),
            "5c1d0a1c-7d4b-4f7e-9a21-3b0f4f0b9a11"
        );
        assert_eq!(meta.event_type.as_deref(), Some("transfers"));
        assert_eq!(
            meta.created_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(1_706_293_339_779_834_211))
        );
    }

    #[test]
    fn paypal_reads_the_event() {
        let body = br#"{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0","create_time":"2014-10-23T17:23:52Z","resource_type":"sale","event_type":"PAYMENT.SALE.COMPLETED","resource":{"id":"4RR959492F879224U"}}"#;
        let meta = extract(Provider::PayPal, &HeaderMap::new(), body, None).expect("meta");
        assert_eq!(
            meta.event_id.as_str(),
            "WH-2WR32451HC0233532-67976317FL4543714"
        );
        assert_eq!(meta.event_type.as_deref(), Some("PAYMENT.SALE.COMPLETED"));
        assert_eq!(meta.created_at, at_millis(1_414_085_032_000));
    }

    proptest! {
        #[test]
        fn no_body_makes_extraction_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for provider in Provider::all() {
                let _ = extract(provider, &HeaderMap::new(), &body, None);
                let _ = extract(provider, &slack_headers(), &body, None);
            }
            let _ = slack_challenge(&body);
        }

        #[test]
        fn no_form_body_makes_slack_extraction_panic(
            fields in proptest::collection::vec(("[a-z_]{1,10}", "[ -~]{0,40}"), 0..6),
        ) {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            let _ = extract(Provider::Slack, &slack_headers(), body.as_bytes(), None);
        }

        #[test]
        fn hostile_json_is_answered_never_panicked_on(body in crate::fuzzing::strategies::hostile_event()) {
            let h = headers(&[("webhook-id", "msg_1"), ("x-github-delivery", "d")]);
            for provider in Provider::representatives() {
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
