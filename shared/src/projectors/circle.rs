//! Circle notifications (<https://developers.circle.com/circle-mint/notifications-data-models>).
//! Two envelopes carry the same resources: v2 (`{notificationId, notificationType,
//! notification, timestamp, version: 2}`) names the resource `notification`; v1 names it after
//! its type (`{clientId, notificationType: "payments", payment: {...}}`) and arrives through
//! AWS SNS, as the JSON string `Message` of `{Type: "Notification", ...}`. All three are read.
//!
//! The version is the resource's `updateDate`, or its `createDate` where Circle sends no
//! `updateDate` (transfers): every notification of such a resource then has one version and
//! the status's place in the life decides, as for Twilio. Circle's subscription handshakes
//! (SNS `SubscriptionConfirmation`, v2 `webhooks` tests) are recorded as `received_event`: they
//! are expected traffic, not errors.

use serde_json::{Value, json};

use super::{
    Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, reader::Reader, recorded,
    unknown,
};
use crate::{projection::ProjectionKind, provider::Provider, record::EventKey};

/// A payment's statuses in the order of its life; `failed` ends it. Circle sends refunds and
/// cancellations as payments too (`type: refund`), with the same statuses.
pub(super) const PAYMENT_STATUSES: [&str; 6] = [
    "pending",
    "action_required",
    "confirmed",
    "paid",
    "reversed",
    "failed",
];

pub(super) const TRANSFER_STATUSES: [&str; 3] = ["pending", "complete", "failed"];

pub(super) const PAYOUT_STATUSES: [&str; 3] = ["pending", "complete", "failed"];

/// Where `status` stands in a life (10, 20, ...). A status Circle adds later ranks 0: at one
/// instant it never outranks one we know.
pub(super) fn rank(statuses: &[&str], status: &str) -> u32 {
    statuses
        .iter()
        .position(|s| *s == status)
        .and_then(|p| u32::try_from(p).ok())
        .map_or(0, |p| 10 + p * 10)
}

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let json: Option<Value> = serde_json::from_slice(payload).ok();
    if is_handshake(event_type, json.as_ref()) {
        let t = event_type.or_else(|| json.as_ref().and_then(|j| j["Type"].as_str()));
        return recorded::project(Provider::Circle, t, payload, key);
    }
    let sns_message = json
        .as_ref()
        .filter(|j| j["Type"] == "Notification")
        .and_then(|j| j["Message"].as_str());
    let unwrapped: Option<Value> = match sns_message {
        Some(message) => Some(serde_json::from_str(message).map_err(|_| {
            Event::new(Provider::Circle, event_type.unwrap_or("Notification"), key)
                .invalid("Message is not JSON")
        })?),
        None => None,
    };
    let body = unwrapped.as_ref().or(json.as_ref());
    let found = body.and_then(|b| b["notificationType"].as_str());
    if let (None, Some(stored), Some(found)) = (sns_message, event_type, found) {
        Event::new(Provider::Circle, stored, key).check_type(found)?;
    }
    let Some(t) = found.or(event_type) else {
        return unknown(Provider::Circle, None, policy);
    };
    let (kind, name, statuses): (_, _, &[&str]) = match t {
        "payments" => (ProjectionKind::CirclePayment, "payment", &PAYMENT_STATUSES),
        "transfers" => (
            ProjectionKind::CircleTransfer,
            "transfer",
            &TRANSFER_STATUSES,
        ),
        "payouts" => (ProjectionKind::CirclePayout, "payout", &PAYOUT_STATUSES),
        other => return unknown(Provider::Circle, Some(other), policy),
    };
    let ev = Event::new(Provider::Circle, t, key);
    let parsed: Value;
    let body = match body {
        Some(b) => b,
        None => {
            parsed = ev.parse(payload)?;
            &parsed
        }
    };
    let root = Reader::root(&ev, body)?;
    let resource = if root.get("notification").is_some() {
        root.object("notification")?
    } else if root.get(name).is_some() {
        root.object(name)?
    } else {
        return Err(root.error("notification", &format!("(or {name}) is missing")));
    };
    let status = resource.string("status")?;
    let created = resource.opt_string("createDate")?;
    let updated = resource.opt_string("updateDate")?;
    let version = match (updated, created) {
        (Some(at), _) => ev.rfc3339_version(&resource.path("updateDate"), at)?,
        (None, Some(at)) => ev.rfc3339_version(&resource.path("createDate"), at)?,
        (None, None) => return Err(resource.error("updateDate", "and createDate are missing")),
    };
    let f = fields([
        ("status", json!(status)),
        ("amount", resource.money("amount", ["amount", "currency"])?),
        ("type", json!(resource.opt_string("type")?)),
        ("error_code", json!(resource.opt_string("errorCode")?)),
        (
            "transaction_hash",
            json!(resource.opt_string("transactionHash")?),
        ),
        ("create_date", json!(created)),
        ("update_date", json!(updated)),
    ]);
    let id = resource.string("id")?;
    let writer = Event::new(Provider::Circle, t, key).with_rank(rank(statuses, status));
    Ok(ProjectorOutcome::Writes(vec![
        writer.upsert(kind, id, version, f)?,
    ]))
}

/// Whether the body is one of Circle's subscription handshakes rather than a notification.
fn is_handshake(event_type: Option<&str>, json: Option<&Value>) -> bool {
    let named = |t: &str| {
        t == "webhooks"
            || t.starts_with("webhooks.")
            || t == "SubscriptionConfirmation"
            || t == "UnsubscribeConfirmation"
    };
    event_type.is_some_and(named)
        || json.is_some_and(|j| {
            j.get("SubscribeURL").is_some()
                || j["Type"].as_str().is_some_and(named)
                || j["notificationType"].as_str().is_some_and(named)
        })
}
