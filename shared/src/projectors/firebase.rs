//! Firebase Cloud Messaging delivery data
//! (<https://firebase.google.com/docs/cloud-messaging/understand-delivery>): one row of FCM's
//! BigQuery export (`firebase_messaging`) per event, published to Google Cloud Pub/Sub and
//! pushed here. The stored payload is the push envelope, `{message: {data, messageId,
//! publishTime, attributes}, subscription}`, whose `data` is the row as base64 JSON.
//!
//! Each row updates `firebase_message`, keyed by `message_id`. The version is the row's
//! `event_timestamp` (RFC 3339, or Unix microseconds as the export's TIMESTAMP holds them). At
//! one instant `MESSAGE_DELIVERED` outranks every error and every error outranks
//! `MESSAGE_ACCEPTED`: a delivery is the one fact no error contradicts, and an error says more
//! than an acceptance. A message sent to a topic or to several devices has a row per device
//! under one `message_id`: its item holds the latest of them, naming its `instance_id`.
//!
//! The stored type may come from a Pub/Sub attribute; the row's own `event` decides here. A
//! Pub/Sub message that is not a delivery row (no data, no known `event`) is an unknown type.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde_json::{Value, json};

use super::{
    Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, reader::Reader,
    rfc3339_millis, unknown,
};
use crate::{projection::ProjectionKind, provider::Provider, record::EventKey};

pub(super) const ACCEPTED: &str = "MESSAGE_ACCEPTED";
pub(super) const DELIVERED: &str = "MESSAGE_DELIVERED";

/// The export's error events: each ends the message's life as `failed`.
pub(super) const ERRORS: [&str; 12] = [
    "MISSING_REGISTRATIONS",
    "UNAUTHORIZED_REGISTRATION",
    "MESSAGE_RECEIVED_INTERNAL_ERROR",
    "MISMATCH_SENDER_ID",
    "QUOTA_EXCEEDED",
    "INVALID_REGISTRATION",
    "INVALID_PACKAGE_NAME",
    "INVALID_APNS_CREDENTIAL",
    "INVALID_PARAMETERS",
    "PAYLOAD_TOO_LARGE",
    "AUTHENTICATION_ERROR",
    "INVALID_TTL",
];

/// The status an event leaves and its rank at one instant; `None` for what is not an FCM
/// delivery event.
pub(super) fn status(event: &str) -> Option<(&'static str, u32)> {
    match event {
        ACCEPTED => Some(("accepted", 10)),
        DELIVERED => Some(("delivered", 30)),
        e if ERRORS.contains(&e) => Some(("failed", 20)),
        _ => None,
    }
}

/// Pub/Sub writes standard base64; other publishers use the URL-safe alphabet, or drop the
/// padding. All are read.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let envelope = Event::new(Provider::Firebase, event_type.unwrap_or("push"), key);
    let json: Value = envelope.parse(payload)?;
    let root = Reader::root(&envelope, &json)?;
    let message = root.object("message")?;
    // Pub/Sub allows a message of attributes alone: not a delivery row.
    let Some(data) = message.opt_string("data")?.filter(|d| !d.is_empty()) else {
        return unknown(Provider::Firebase, event_type, policy);
    };
    let bytes = STANDARD
        .decode(data)
        .or_else(|_| URL_SAFE.decode(data))
        .map_err(|_| message.error("data", "is not base64"))?;
    let row: Value =
        serde_json::from_slice(&bytes).map_err(|_| message.error("data", "is not JSON"))?;
    let named = row.get("event").and_then(Value::as_str);
    let Some((event, (status, rank))) = named.and_then(|e| Some((e, status(e)?))) else {
        return unknown(Provider::Firebase, named.or(event_type), policy);
    };

    let ev = Event::new(Provider::Firebase, event, key).with_rank(rank);
    let r = Reader::object_at(&ev, "message.data", &row)?;
    let version = event_time(&r, "event_timestamp")?;
    let f = fields([
        ("status", json!(status)),
        ("error", json!((status == "failed").then_some(event))),
        ("last_event", json!(event)),
        ("instance_id", json!(r.opt_string("instance_id")?)),
        ("project_number", json!(number_text(&r, "project_number")?)),
        ("app_name", json!(r.opt_string("app_name")?)),
        ("sdk_platform", json!(r.opt_string("sdk_platform")?)),
        ("message_type", json!(r.opt_string("message_type")?)),
        ("analytics_label", json!(r.opt_string("analytics_label")?)),
    ]);
    Ok(ProjectorOutcome::Writes(vec![ev.upsert(
        ProjectionKind::FirebaseMessage,
        r.string("message_id")?,
        version,
        f,
    )?]))
}

/// The row's time in milliseconds: RFC 3339, or Unix microseconds as a number or a string.
fn event_time(r: &Reader<'_, '_>, name: &str) -> Result<i64, ProjectorError> {
    let micros = |us: i64| (us >= 0).then_some(us / 1000);
    let ms = match r.get(name) {
        None => return Err(r.error(name, "is missing")),
        Some(Value::Number(n)) => n.as_i64().and_then(micros),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok().and_then(micros)
        }
        Some(Value::String(s)) => rfc3339_millis(s),
        Some(_) => None,
    };
    ms.ok_or_else(|| r.error(name, "is not an RFC 3339 time or Unix microseconds"))
}

/// A number the export may write as a JSON number or a string, kept as text.
fn number_text(r: &Reader<'_, '_>, name: &str) -> Result<Option<String>, ProjectorError> {
    match r.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(r.error(name, "is not a number")),
    }
}
