//! Stripe events (<https://docs.stripe.com/api/events/object>): `data.object` holds the object
//! as of the event, and the version is the event's `created` (seconds) in milliseconds.
//! The structs name only the fields the projections keep; everything else (client secrets
//! included) is never read.

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, Error as _},
};
use serde_json::{Value, json};

use super::{Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, unknown};
use crate::{
    projection::{ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::EventKey,
};

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let Some(t) = event_type else {
        return unknown(Provider::Stripe, None, policy);
    };
    let ev = Event::new(Provider::Stripe, t, key);
    let writes = match t {
        "invoice.paid" | "invoice.payment_failed" => invoice(&ev, payload)?,
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => subscription(&ev, payload)?,
        "checkout.session.completed" => checkout_session(&ev, payload)?,
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            payment_intent(&ev, payload)?
        }
        "charge.refunded" => charge(&ev, payload)?,
        other => return unknown(Provider::Stripe, Some(other), policy),
    };
    Ok(ProjectorOutcome::Writes(writes))
}

/// The event envelope around `data.object`.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    data: Data<T>,
}

#[derive(Deserialize)]
struct Data<T> {
    object: T,
}

/// Parse the envelope, check its type and object, and return the object with the version.
fn open<T: DeserializeOwned + Object>(
    ev: &Event<'_>,
    payload: &[u8],
) -> Result<(T, i64), ProjectorError> {
    let env: Envelope<T> = ev.parse(payload)?;
    ev.check_type(&env.event_type)?;
    ev.check_object(env.data.object.object(), T::NAME)?;
    Ok((env.data.object, ev.secs_version(env.created)?))
}

/// A Stripe object type and its `object` name.
trait Object {
    const NAME: &'static str;
    fn object(&self) -> &str;
}

macro_rules! object {
    ($t:ty, $name:literal) => {
        impl Object for $t {
            const NAME: &'static str = $name;
            fn object(&self) -> &str {
                &self.object
            }
        }
    };
}

/// A reference Stripe sends as an id, or as the object when the request expanded it.
struct Expandable(String);

impl<'de> Deserialize<'de> for Expandable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(String),
            Object { id: String },
        }
        match Raw::deserialize(d) {
            Ok(Raw::Id(id) | Raw::Object { id }) => Ok(Self(id)),
            Err(_) => Err(D::Error::custom(
                "expected an id or an expanded object with an id",
            )),
        }
    }
}

impl Expandable {
    fn id(&self) -> &str {
        &self.0
    }
}

fn id_of(e: Option<&Expandable>) -> Value {
    e.map_or(Value::Null, |e| json!(e.id()))
}

#[derive(Deserialize)]
struct Invoice {
    id: String,
    object: String,
    status: Option<String>,
    amount_due: i64,
    amount_paid: i64,
    amount_remaining: Option<i64>,
    currency: String,
    customer: Option<Expandable>,
    /// Before API version 2025-03-31; later versions name it under `parent`.
    subscription: Option<Expandable>,
    parent: Option<InvoiceParent>,
    number: Option<String>,
    hosted_invoice_url: Option<String>,
    attempt_count: Option<u64>,
}
object!(Invoice, "invoice");

#[derive(Deserialize)]
struct InvoiceParent {
    subscription_details: Option<SubscriptionDetails>,
}

#[derive(Deserialize)]
struct SubscriptionDetails {
    subscription: Option<Expandable>,
}

fn invoice(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (inv, version) = open::<Invoice>(ev, payload)?;
    let subscription = inv.subscription.as_ref().or_else(|| {
        inv.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .and_then(|d| d.subscription.as_ref())
    });
    let f = fields([
        ("status", json!(inv.status)),
        ("amount_due", json!(inv.amount_due)),
        ("amount_paid", json!(inv.amount_paid)),
        ("amount_remaining", json!(inv.amount_remaining)),
        ("currency", json!(inv.currency)),
        ("customer", id_of(inv.customer.as_ref())),
        ("subscription", id_of(subscription)),
        ("number", json!(inv.number)),
        ("hosted_invoice_url", json!(inv.hosted_invoice_url)),
        ("attempt_count", json!(inv.attempt_count)),
        ("last_event_type", json!(ev.event_type)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::StripeInvoice,
        &inv.id,
        version,
        f,
    )?])
}

#[derive(Deserialize)]
struct Subscription {
    id: String,
    object: String,
    status: String,
    customer: Expandable,
    /// Before API version 2025-03-31; later versions keep it per item.
    current_period_end: Option<i64>,
    cancel_at_period_end: Option<bool>,
    items: Option<List<SubscriptionItem>>,
}
object!(Subscription, "subscription");

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct SubscriptionItem {
    price: Option<Price>,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
}

fn subscription(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (sub, version) = open::<Subscription>(ev, payload)?;
    let kind = ProjectionKind::StripeSubscription;
    if ev.event_type == "customer.subscription.deleted" {
        return Ok(vec![ev.delete(kind, &sub.id, version)?]);
    }
    let items = sub.items.as_ref().map_or(&[][..], |l| &l.data[..]);
    let period_end = sub
        .current_period_end
        .or_else(|| items.iter().filter_map(|i| i.current_period_end).max());
    let price_ids: Vec<&str> = items
        .iter()
        .filter_map(|i| i.price.as_ref().map(|p| p.id.as_str()))
        .collect();
    let f = fields([
        ("status", json!(sub.status)),
        ("customer", json!(sub.customer.id())),
        ("current_period_end", json!(period_end)),
        ("cancel_at_period_end", json!(sub.cancel_at_period_end)),
        ("price_ids", json!(price_ids)),
        ("last_event_type", json!(ev.event_type)),
    ]);
    Ok(vec![ev.upsert(kind, &sub.id, version, f)?])
}

#[derive(Deserialize)]
struct CheckoutSession {
    id: String,
    object: String,
    status: Option<String>,
    payment_status: String,
    mode: String,
    customer: Option<Expandable>,
    customer_details: Option<CustomerDetails>,
    client_reference_id: Option<String>,
    subscription: Option<Expandable>,
    payment_intent: Option<Expandable>,
    amount_total: Option<i64>,
    currency: Option<String>,
}
object!(CheckoutSession, "checkout.session");

#[derive(Deserialize)]
struct CustomerDetails {
    email: Option<String>,
    name: Option<String>,
}

/// The session, and a link from its customer to the app's user (`client_reference_id`), the
/// usual way an app finds whom a Stripe customer belongs to.
fn checkout_session(
    ev: &Event<'_>,
    payload: &[u8],
) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (cs, version) = open::<CheckoutSession>(ev, payload)?;
    let email = cs
        .customer_details
        .as_ref()
        .and_then(|d| d.email.as_deref());
    let name = cs.customer_details.as_ref().and_then(|d| d.name.as_deref());
    let session = fields([
        ("status", json!(cs.status)),
        ("payment_status", json!(cs.payment_status)),
        ("mode", json!(cs.mode)),
        ("customer", id_of(cs.customer.as_ref())),
        ("customer_email", json!(email)),
        ("client_reference_id", json!(cs.client_reference_id)),
        ("subscription", id_of(cs.subscription.as_ref())),
        ("payment_intent", id_of(cs.payment_intent.as_ref())),
        ("amount_total", json!(cs.amount_total)),
        ("currency", json!(cs.currency)),
    ]);
    let mut writes = vec![ev.upsert(
        ProjectionKind::StripeCheckoutSession,
        &cs.id,
        version,
        session,
    )?];
    if let Some(customer) = &cs.customer {
        let link = fields([
            ("email", json!(email)),
            ("name", json!(name)),
            ("client_reference_id", json!(cs.client_reference_id)),
            ("checkout_session", json!(cs.id)),
            ("subscription", id_of(cs.subscription.as_ref())),
        ]);
        writes.push(ev.upsert(ProjectionKind::StripeCustomer, customer.id(), version, link)?);
    }
    Ok(writes)
}

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    object: String,
    status: String,
    amount: i64,
    amount_received: Option<i64>,
    currency: String,
    customer: Option<Expandable>,
    last_payment_error: Option<PaymentError>,
}
object!(PaymentIntent, "payment_intent");

#[derive(Deserialize)]
struct PaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

fn payment_intent(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (pi, version) = open::<PaymentIntent>(ev, payload)?;
    let error = pi.last_payment_error.as_ref();
    let f = fields([
        ("status", json!(pi.status)),
        ("amount", json!(pi.amount)),
        ("amount_received", json!(pi.amount_received)),
        ("currency", json!(pi.currency)),
        ("customer", id_of(pi.customer.as_ref())),
        ("failure_code", json!(error.and_then(|e| e.code.as_deref()))),
        (
            "decline_code",
            json!(error.and_then(|e| e.decline_code.as_deref())),
        ),
        (
            "failure_message",
            json!(error.and_then(|e| e.message.as_deref())),
        ),
        ("last_event_type", json!(ev.event_type)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::StripePaymentIntent,
        &pi.id,
        version,
        f,
    )?])
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    object: String,
    status: String,
    amount: i64,
    amount_refunded: i64,
    refunded: bool,
    currency: String,
    customer: Option<Expandable>,
    payment_intent: Option<Expandable>,
}
object!(Charge, "charge");

fn charge(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (ch, version) = open::<Charge>(ev, payload)?;
    let f = fields([
        ("status", json!(ch.status)),
        ("amount", json!(ch.amount)),
        ("amount_refunded", json!(ch.amount_refunded)),
        ("refunded", json!(ch.refunded)),
        ("currency", json!(ch.currency)),
        ("customer", id_of(ch.customer.as_ref())),
        ("payment_intent", id_of(ch.payment_intent.as_ref())),
        ("last_event_type", json!(ev.event_type)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::StripeCharge,
        &ch.id,
        version,
        f,
    )?])
}
