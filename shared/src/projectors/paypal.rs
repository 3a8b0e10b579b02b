//! PayPal webhook events (<https://developer.paypal.com/api/rest/webhooks/event-names/>):
//! `{id, event_type, create_time, resource_type, resource}`, where `resource` is the object as
//! of the event. The version is `create_time` (RFC 3339) in milliseconds, and events of one
//! instant rank by their type's place in the resource's life ([`rank`]). Time comes first, so
//! a later `BILLING.SUBSCRIPTION.RE-ACTIVATED` undoes a suspension, while a late, older
//! `PAYMENT.CAPTURE.COMPLETED` never undoes a refund.
//!
//! `PAYMENT.CAPTURE.REFUNDED` and `.REVERSED` carry the refund (`resource_type: refund`), not
//! the capture: it becomes a `paypal_refund` whose `capture_id` (from its `up` link) names the
//! capture. The capture's own item is left as the capture events wrote it: every write of a
//! kind carries the kind's whole field set (see `Change::Upsert`), and a refund does not know
//! the capture's amount, invoice or order, so marking the capture from it would erase them. A
//! capture's refunds are found by `capture_id`.

use serde_json::{Value, json};

use super::{
    Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, clip, fields, reader::Reader,
    unknown,
};
use crate::{
    projection::{Fields, ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::EventKey,
};

/// A capture's event types in the order of its life: refunds and reversals follow completion,
/// and a declined or denied capture ends there.
pub(super) const CAPTURE_TYPES: [&str; 6] = [
    "PAYMENT.CAPTURE.PENDING",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.REFUNDED",
    "PAYMENT.CAPTURE.REVERSED",
    "PAYMENT.CAPTURE.DECLINED",
    "PAYMENT.CAPTURE.DENIED",
];

pub(super) const DISPUTE_TYPES: [&str; 3] = [
    "CUSTOMER.DISPUTE.CREATED",
    "CUSTOMER.DISPUTE.UPDATED",
    "CUSTOMER.DISPUTE.RESOLVED",
];

/// A subscription's event types in the order of its life. A re-activation can only follow a
/// suspension, so it ranks above it: at one instant, the re-activation is the later.
pub(super) const SUBSCRIPTION_TYPES: [&str; 8] = [
    "BILLING.SUBSCRIPTION.CREATED",
    "BILLING.SUBSCRIPTION.ACTIVATED",
    "BILLING.SUBSCRIPTION.UPDATED",
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
    "BILLING.SUBSCRIPTION.SUSPENDED",
    "BILLING.SUBSCRIPTION.RE-ACTIVATED",
    "BILLING.SUBSCRIPTION.CANCELLED",
    "BILLING.SUBSCRIPTION.EXPIRED",
];

/// Where `event_type` stands in its resource's life (10, 20, ...), for events of one instant.
pub(super) fn rank(event_type: &str) -> Option<u32> {
    [&CAPTURE_TYPES[..], &DISPUTE_TYPES, &SUBSCRIPTION_TYPES]
        .iter()
        .find_map(|types| types.iter().position(|t| *t == event_type))
        .and_then(|p| u32::try_from(p).ok())
        .map(|p| 10 + p * 10)
}

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let Some(t) = event_type else {
        return unknown(Provider::PayPal, None, policy);
    };
    let handler = if CAPTURE_TYPES.contains(&t) {
        capture_event
    } else if DISPUTE_TYPES.contains(&t) {
        dispute
    } else if SUBSCRIPTION_TYPES.contains(&t) {
        subscription
    } else {
        return unknown(Provider::PayPal, Some(t), policy);
    };
    let ev = Event::new(Provider::PayPal, t, key);
    let json: Value = ev.parse(payload)?;
    let root = Reader::root(&ev, &json)?;
    ev.check_type(root.string("event_type")?)?;
    let version = ev.rfc3339_version("create_time", root.string("create_time")?)?;
    let opened = Opened {
        ev: &ev,
        version,
        resource_type: root.string("resource_type")?,
        resource: root.object("resource")?,
    };
    handler(&opened).map(ProjectorOutcome::Writes)
}

/// An event past its envelope: the version and the resource.
struct Opened<'e, 'v> {
    ev: &'e Event<'e>,
    version: i64,
    resource_type: &'v str,
    resource: Reader<'e, 'v>,
}

impl Opened<'_, '_> {
    fn expect_resource(&self, expected: &[&str]) -> Result<(), ProjectorError> {
        if expected.contains(&self.resource_type) {
            Ok(())
        } else {
            Err(self.ev.invalid(format_args!(
                "resource_type is {}, expected {}",
                clip(self.resource_type, 100),
                expected.join(" or ")
            )))
        }
    }
}

/// A capture event carries the capture, except refunds and reversals, which carry the refund.
fn capture_event(e: &Opened<'_, '_>) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let refunding = matches!(
        e.ev.event_type,
        "PAYMENT.CAPTURE.REFUNDED" | "PAYMENT.CAPTURE.REVERSED"
    );
    e.expect_resource(if refunding {
        &["capture", "refund"]
    } else {
        &["capture"]
    })?;
    if e.resource_type == "refund" {
        return refund(e);
    }
    let r = &e.resource;
    let order_id = match r.opt_object("supplementary_data")? {
        Some(s) => match s.opt_object("related_ids")? {
            Some(ids) => ids.opt_string("order_id")?,
            None => None,
        },
        None => None,
    };
    let f = capture_fields(
        r.string("status")?,
        r.money("amount", ["currency_code", "value"])?,
        [
            json!(r.opt_string("invoice_id")?),
            json!(r.opt_string("custom_id")?),
            json!(order_id),
        ],
        e.ev.event_type,
    );
    Ok(vec![e.ev.upsert(
        ProjectionKind::PayPalCapture,
        r.string("id")?,
        e.version,
        f,
    )?])
}

/// The capture's field set, whichever event writes it.
fn capture_fields(
    status: &str,
    amount: Value,
    [invoice_id, custom_id, order_id]: [Value; 3],
    event_type: &str,
) -> Fields {
    fields([
        ("status", json!(status)),
        ("amount", amount),
        ("invoice_id", invoice_id),
        ("custom_id", custom_id),
        ("order_id", order_id),
        ("last_event_type", json!(event_type)),
    ])
}

/// The refund, naming its capture.
fn refund(e: &Opened<'_, '_>) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let r = &e.resource;
    let id = r.string("id")?;
    let status = r.string("status")?;
    let capture_id = captured_by(r)?;
    let f = fields([
        ("status", json!(status)),
        ("amount", r.money("amount", ["currency_code", "value"])?),
        ("capture_id", json!(capture_id)),
        ("invoice_id", json!(r.opt_string("invoice_id")?)),
        ("custom_id", json!(r.opt_string("custom_id")?)),
        ("last_event_type", json!(e.ev.event_type)),
    ]);
    Ok(vec![e.ev.upsert(
        ProjectionKind::PayPalRefund,
        id,
        e.version,
        f,
    )?])
}

/// The capture a refund names in its `up` link (`.../v2/payments/captures/{id}`), if any.
fn captured_by<'v>(r: &Reader<'_, 'v>) -> Result<Option<&'v str>, ProjectorError> {
    for link in r.array("links")? {
        let Some(link) = link.as_object() else {
            return Err(r.error("links", "holds an item that is not an object"));
        };
        let text = |name: &str| link.get(name).and_then(Value::as_str);
        if text("rel") != Some("up") {
            continue;
        }
        let Some(href) = text("href") else {
            return Err(r.error("links", "holds an up link without an href"));
        };
        let path = href.split(['?', '#']).next().unwrap_or_default();
        if let Some((_, tail)) = path.rsplit_once("/captures/") {
            let id = tail.trim_end_matches('/');
            if !id.is_empty() && !id.contains('/') {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

fn dispute(e: &Opened<'_, '_>) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    e.expect_resource(&["dispute"])?;
    let r = &e.resource;
    let outcome = r.opt_object("dispute_outcome")?;
    let (outcome_code, refunded) = match &outcome {
        Some(o) => (
            o.opt_string("outcome_code")?,
            o.money("amount_refunded", ["currency_code", "value"])?,
        ),
        None => (None, Value::Null),
    };
    let f = fields([
        ("status", json!(r.string("status")?)),
        ("reason", json!(r.opt_string("reason")?)),
        (
            "dispute_amount",
            r.money("dispute_amount", ["currency_code", "value"])?,
        ),
        ("outcome", json!(outcome_code)),
        ("amount_refunded", refunded),
        (
            "life_cycle_stage",
            json!(r.opt_string("dispute_life_cycle_stage")?),
        ),
        ("last_event_type", json!(e.ev.event_type)),
    ]);
    Ok(vec![e.ev.upsert(
        ProjectionKind::PayPalDispute,
        r.string("dispute_id")?,
        e.version,
        f,
    )?])
}

fn subscription(e: &Opened<'_, '_>) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    e.expect_resource(&["subscription"])?;
    let r = &e.resource;
    let (email, payer_id) = match r.opt_object("subscriber")? {
        Some(s) => (s.opt_string("email_address")?, s.opt_string("payer_id")?),
        None => (None, None),
    };
    let (next_billing, failed_payments) = match r.opt_object("billing_info")? {
        Some(b) => (
            b.opt_string("next_billing_time")?,
            b.opt_u64("failed_payments_count")?,
        ),
        None => (None, None),
    };
    let f = fields([
        ("status", json!(r.string("status")?)),
        ("plan_id", json!(r.opt_string("plan_id")?)),
        ("subscriber_email", json!(email)),
        ("subscriber_payer_id", json!(payer_id)),
        ("next_billing_time", json!(next_billing)),
        ("failed_payments_count", json!(failed_payments)),
        ("last_event_type", json!(e.ev.event_type)),
    ]);
    Ok(vec![e.ev.upsert(
        ProjectionKind::PayPalSubscription,
        r.string("id")?,
        e.version,
        f,
    )?])
}
