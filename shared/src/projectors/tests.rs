//! Handler tests: every type on the providers' documented shapes (events/payloads), schema
//! mismatches, unknown types, tenant isolation, and out-of-order delivery.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{
    ids::{EventId, TenantId},
    projection::{MemoryProjections, RESERVED_ATTRIBUTES},
};

macro_rules! fixture {
    ($provider:literal, $name:literal) => {
        include_str!(concat!(
            "../../../events/payloads/",
            $provider,
            "/",
            $name,
            ".json"
        ))
    };
}

const STRIPE: [(&str, &str); 9] = [
    ("invoice.paid", fixture!("stripe", "invoice.paid")),
    (
        "invoice.payment_failed",
        fixture!("stripe", "invoice.payment_failed"),
    ),
    (
        "customer.subscription.created",
        fixture!("stripe", "customer.subscription.created"),
    ),
    (
        "customer.subscription.updated",
        fixture!("stripe", "customer.subscription.updated"),
    ),
    (
        "customer.subscription.deleted",
        fixture!("stripe", "customer.subscription.deleted"),
    ),
    (
        "checkout.session.completed",
        fixture!("stripe", "checkout.session.completed"),
    ),
    (
        "payment_intent.succeeded",
        fixture!("stripe", "payment_intent.succeeded"),
    ),
    ("payment_intent.payment_failed", PAYMENT_INTENT_FAILED),
    ("charge.refunded", fixture!("stripe", "charge.refunded")),
];

/// A `payment_intent.payment_failed` event in the shape of Stripe's API reference.
const PAYMENT_INTENT_FAILED: &str = r#"{
  "id": "evt_3PayloadIntentFail0001",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1717258120,
  "data": {
    "object": {
      "id": "pi_3PayloadIntent0002",
      "object": "payment_intent",
      "amount": 2000,
      "amount_received": 0,
      "client_secret": "pi_3PayloadIntent0002_secret_example",
      "currency": "usd",
      "customer": "cus_PayloadCustomer1",
      "last_payment_error": {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "type": "card_error"
      },
      "status": "requires_payment_method"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": { "id": null, "idempotency_key": null },
  "type": "payment_intent.payment_failed"
}"#;

const CLERK: [(&str, &str); 6] = [
    ("user.created", fixture!("clerk", "user.created")),
    ("user.updated", fixture!("clerk", "user.updated")),
    ("user.deleted", fixture!("clerk", "user.deleted")),
    ("session.created", fixture!("clerk", "session.created")),
    (
        "organization.created",
        fixture!("clerk", "organization.created"),
    ),
    (
        "organizationMembership.created",
        fixture!("clerk", "organizationMembership.created"),
    ),
];

const RESEND: [(&str, &str); 7] = [
    ("email.sent", fixture!("resend", "email.sent")),
    ("email.delivered", fixture!("resend", "email.delivered")),
    (
        "email.delivery_delayed",
        fixture!("resend", "email.delivery_delayed"),
    ),
    ("email.opened", fixture!("resend", "email.opened")),
    ("email.clicked", fixture!("resend", "email.clicked")),
    ("email.bounced", fixture!("resend", "email.bounced")),
    ("email.complained", fixture!("resend", "email.complained")),
];

const PAYPAL: [(&str, &str); 4] = [
    (
        "PAYMENT.CAPTURE.COMPLETED",
        fixture!("paypal", "PAYMENT.CAPTURE.COMPLETED"),
    ),
    (
        "PAYMENT.CAPTURE.REFUNDED",
        fixture!("paypal", "PAYMENT.CAPTURE.REFUNDED"),
    ),
    (
        "CUSTOMER.DISPUTE.CREATED",
        fixture!("paypal", "CUSTOMER.DISPUTE.CREATED"),
    ),
    (
        "BILLING.SUBSCRIPTION.ACTIVATED",
        fixture!("paypal", "BILLING.SUBSCRIPTION.ACTIVATED"),
    ),
];

const CIRCLE: [(&str, &str); 3] = [
    ("payments", fixture!("circle", "payments")),
    ("transfers", fixture!("circle", "transfers")),
    ("payouts", fixture!("circle", "payouts")),
];

fn every_fixture() -> impl Iterator<Item = (Provider, &'static str, &'static str)> {
    let s = STRIPE.iter().map(|(t, p)| (Provider::Stripe, *t, *p));
    let c = CLERK.iter().map(|(t, p)| (Provider::Clerk, *t, *p));
    let r = RESEND.iter().map(|(t, p)| (Provider::Resend, *t, *p));
    let pp = PAYPAL.iter().map(|(t, p)| (Provider::PayPal, *t, *p));
    let ci = CIRCLE.iter().map(|(t, p)| (Provider::Circle, *t, *p));
    let fb = [(
        Provider::Firebase,
        "MESSAGE_DELIVERED",
        firebase::DELIVERED_PUSH,
    )];
    s.chain(c).chain(r).chain(pp).chain(ci).chain(fb)
}

fn event_key(tenant: &str, provider: Provider, id: &str) -> EventKey {
    EventKey {
        tenant: TenantId::parse(tenant).expect("tenant"),
        provider,
        event_id: EventId::parse(id).expect("event id"),
    }
}

fn acme(provider: Provider) -> EventKey {
    event_key("acme", provider, "msg_test_0001")
}

fn run_as(key: &EventKey, t: &str, payload: &str) -> Vec<ProjectionWrite> {
    match project(
        key.provider,
        Some(t),
        payload.as_bytes(),
        key,
        UnknownTypePolicy::Ignore,
    ) {
        Ok(ProjectorOutcome::Writes(w)) => w,
        other => panic!("{t}: expected writes, got {other:?}"),
    }
}

fn run(provider: Provider, t: &str, payload: &str) -> Vec<ProjectionWrite> {
    run_as(&acme(provider), t, payload)
}

fn only(provider: Provider, t: &str, payload: &str) -> ProjectionWrite {
    let mut writes = run(provider, t, payload);
    assert_eq!(writes.len(), 1, "{t}: {writes:?}");
    writes.remove(0)
}

fn upserted(w: &ProjectionWrite) -> &Fields {
    match &w.change {
        Change::Upsert(f) => f,
        other => panic!("expected an upsert, got {other:?}"),
    }
}

fn permanent(provider: Provider, t: &str, payload: &str) -> String {
    match project(
        provider,
        Some(t),
        payload.as_bytes(),
        &acme(provider),
        UnknownTypePolicy::Ignore,
    ) {
        Err(ProjectorError::Permanent(msg)) => msg,
        other => panic!("{t}: expected a permanent error, got {other:?}"),
    }
}

/// A fixture with one change made through `edit`.
fn edited(payload: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(payload).expect("fixture is JSON");
    edit(&mut v);
    v.to_string()
}

fn remove(v: &mut Value, pointer: &str, field: &str) {
    v.pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .expect("object")
        .remove(field);
}

/// Set the field at `pointer`, adding it if absent.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, field) = pointer.rsplit_once('/').expect("pointer");
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("object")
        .insert(field.to_owned(), value);
}

// ---------------------------------------------------------------------------------------------
// Stripe

#[test]
fn stripe_invoice_paid_projects_the_invoice() {
    let w = only(Provider::Stripe, "invoice.paid", STRIPE[0].1);
    assert_eq!(w.key.unsharded_pk(), "acme#stripe_invoice");
    assert_eq!(w.key.sk(), "in_1PayloadInvoice0001");
    assert_eq!(w.version, 1_717_171_717_000);
    assert_eq!(w.source_event_id.as_str(), "msg_test_0001");
    let f = upserted(&w);
    assert_eq!(f["status"], json!("paid"));
    assert_eq!(f["amount_paid"], json!(2000));
    assert_eq!(f["customer"], json!("cus_PayloadCustomer1"));
    assert_eq!(f["subscription"], json!("sub_1PayloadSubscr0001"));
    assert_eq!(f["last_event_type"], json!("invoice.paid"));
}

#[test]
fn stripe_invoice_payment_failed_projects_the_open_invoice() {
    let w = only(Provider::Stripe, "invoice.payment_failed", STRIPE[1].1);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("open"));
    assert_eq!(f["amount_remaining"], json!(2000));
    assert_eq!(f["attempt_count"], json!(1));
}

#[test]
fn stripe_invoice_finds_the_subscription_under_parent_in_newer_api_versions() {
    let payload = edited(STRIPE[0].1, |v| {
        remove(v, "/data/object", "subscription");
        set(
            v,
            "/data/object/parent",
            json!({"type": "subscription_details",
                   "subscription_details": {"subscription": "sub_basil"}}),
        );
    });
    let w = only(Provider::Stripe, "invoice.paid", &payload);
    assert_eq!(upserted(&w)["subscription"], json!("sub_basil"));
}

#[test]
fn stripe_subscription_created_projects_status_period_and_prices() {
    let w = only(
        Provider::Stripe,
        "customer.subscription.created",
        STRIPE[2].1,
    );
    assert_eq!(w.key.unsharded_pk(), "acme#stripe_subscription");
    assert_eq!(w.key.sk(), "sub_1PayloadSubscr0001");
    let f = upserted(&w);
    assert_eq!(f["status"], json!("active"));
    assert_eq!(f["customer"], json!("cus_PayloadCustomer1"));
    assert_eq!(f["current_period_end"], json!(1_717_171_700));
    assert_eq!(f["price_ids"], json!(["price_1PayloadPriceBasic"]));
}

#[test]
fn stripe_subscription_reads_the_period_from_items_in_newer_api_versions() {
    let payload = edited(STRIPE[2].1, |v| {
        remove(v, "/data/object", "current_period_end");
        set(
            v,
            "/data/object/items/data/0/current_period_end",
            json!(1_800_000_000),
        );
    });
    let w = only(Provider::Stripe, "customer.subscription.created", &payload);
    assert_eq!(upserted(&w)["current_period_end"], json!(1_800_000_000));
}

#[test]
fn stripe_subscription_updated_keeps_the_same_fields() {
    let w = only(
        Provider::Stripe,
        "customer.subscription.updated",
        STRIPE[3].1,
    );
    let f = upserted(&w);
    assert_eq!(f["cancel_at_period_end"], json!(true));
    assert_eq!(f["price_ids"], json!([]));
    assert_eq!(w.version, 1_717_171_717_000);
}

#[test]
fn stripe_subscription_deleted_leaves_a_tombstone() {
    let w = only(
        Provider::Stripe,
        "customer.subscription.deleted",
        STRIPE[4].1,
    );
    assert_eq!(w.key.sk(), "sub_1PayloadSubscr0001");
    assert_eq!(w.change, Change::Delete);
    assert_eq!(w.version, 1_719_763_717_000);
}

#[test]
fn stripe_checkout_session_projects_the_session_and_links_the_customer() {
    let writes = run(Provider::Stripe, "checkout.session.completed", STRIPE[5].1);
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].key.unsharded_pk(), "acme#stripe_checkout_session");
    assert_eq!(upserted(&writes[0])["payment_status"], json!("paid"));
    assert_eq!(writes[1].key.unsharded_pk(), "acme#stripe_customer");
    assert_eq!(writes[1].key.sk(), "cus_PayloadCustomer1");
    let link = upserted(&writes[1]);
    assert_eq!(link["client_reference_id"], json!("user_2PayloadUser0001"));
    assert_eq!(link["email"], json!("jenny.rosen@example.com"));
    assert_eq!(
        link["checkout_session"],
        json!("cs_test_a1PayloadCheckoutSession0001")
    );
}

#[test]
fn stripe_checkout_session_without_a_customer_links_nothing() {
    let payload = edited(STRIPE[5].1, |v| {
        set(v, "/data/object/customer", Value::Null)
    });
    let w = only(Provider::Stripe, "checkout.session.completed", &payload);
    assert_eq!(upserted(&w)["customer"], Value::Null);
}

#[test]
fn stripe_expanded_references_yield_their_id() {
    let payload = edited(STRIPE[0].1, |v| {
        set(
            v,
            "/data/object/customer",
            json!({"id": "cus_expanded", "object": "customer", "email": "x@example.com"}),
        );
    });
    let w = only(Provider::Stripe, "invoice.paid", &payload);
    assert_eq!(upserted(&w)["customer"], json!("cus_expanded"));
}

#[test]
fn stripe_payment_intents_project_status_and_failure() {
    let ok = only(Provider::Stripe, "payment_intent.succeeded", STRIPE[6].1);
    assert_eq!(ok.key.unsharded_pk(), "acme#stripe_payment_intent");
    assert_eq!(upserted(&ok)["status"], json!("succeeded"));
    assert_eq!(upserted(&ok)["failure_code"], Value::Null);
    let failed = only(
        Provider::Stripe,
        "payment_intent.payment_failed",
        PAYMENT_INTENT_FAILED,
    );
    let f = upserted(&failed);
    assert_eq!(f["status"], json!("requires_payment_method"));
    assert_eq!(f["failure_code"], json!("card_declined"));
    assert_eq!(f["decline_code"], json!("insufficient_funds"));
    assert!(
        !f.values().any(|v| v.to_string().contains("secret")),
        "the client secret is never kept"
    );
}

#[test]
fn stripe_charge_refunded_projects_the_refund() {
    let w = only(Provider::Stripe, "charge.refunded", STRIPE[8].1);
    assert_eq!(w.key.unsharded_pk(), "acme#stripe_charge");
    let f = upserted(&w);
    assert_eq!(f["amount_refunded"], json!(2000));
    assert_eq!(f["refunded"], json!(true));
    assert_eq!(f["payment_intent"], json!("pi_3PayloadIntent0001"));
}

#[test]
fn stripe_schema_mismatches_are_permanent_and_name_the_type() {
    let cases: Vec<(&str, String)> = vec![
        (
            "invoice.paid",
            edited(STRIPE[0].1, |v| remove(v, "/data/object", "id")),
        ),
        (
            "invoice.paid",
            edited(STRIPE[0].1, |v| {
                set(v, "/data/object/object", json!("charge"))
            }),
        ),
        (
            "invoice.paid",
            edited(STRIPE[0].1, |v| {
                set(v, "/data/object/amount_paid", json!("2000"))
            }),
        ),
        (
            "invoice.paid",
            edited(STRIPE[0].1, |v| set(v, "/type", json!("invoice.voided"))),
        ),
        (
            "invoice.paid",
            edited(STRIPE[0].1, |v| set(v, "/created", json!(-1))),
        ),
        (
            "customer.subscription.updated",
            edited(STRIPE[3].1, |v| remove(v, "/data/object", "status")),
        ),
        (
            "customer.subscription.deleted",
            edited(STRIPE[4].1, |v| remove(v, "/data", "object")),
        ),
        (
            "checkout.session.completed",
            edited(STRIPE[5].1, |v| set(v, "/data/object/customer", json!(42))),
        ),
        (
            "payment_intent.succeeded",
            edited(STRIPE[6].1, |v| set(v, "/data/object/id", json!(""))),
        ),
        (
            "charge.refunded",
            edited(STRIPE[8].1, |v| {
                remove(v, "/data/object", "amount_refunded")
            }),
        ),
        ("charge.refunded", "not json".to_owned()),
        ("charge.refunded", "[]".to_owned()),
    ];
    for (t, payload) in cases {
        let msg = permanent(Provider::Stripe, t, &payload);
        assert!(msg.starts_with(&format!("stripe {t}: ")), "{msg}");
        assert!(msg.len() <= MAX_MESSAGE, "{msg}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let cases = [
        (
            edited(STRIPE[0].1, |v| {
                set(v, "/data/object/object", json!("charge"))
            }),
            "stripe invoice.paid: object is charge, expected invoice",
        ),
        (
            edited(STRIPE[0].1, |v| set(v, "/created", json!(-1))),
            "stripe invoice.paid: event time is out of range",
        ),
        (
            edited(STRIPE[0].1, |v| set(v, "/type", json!("invoice.voided"))),
            "stripe invoice.paid: payload type is invoice.voided",
        ),
    ];
    for (payload, expected) in cases {
        assert_eq!(
            permanent(Provider::Stripe, "invoice.paid", &payload),
            expected
        );
    }
    let msg = permanent(
        Provider::Stripe,
        "invoice.paid",
        &edited(STRIPE[0].1, |v| set(v, "/data/object/customer", json!(42))),
    );
    assert!(
        msg.starts_with("stripe invoice.paid: expected an id or an expanded object with an id"),
        "{msg}"
    );
}

#[test]
fn long_offending_values_are_clipped_in_messages() {
    let payload = edited(STRIPE[0].1, |v| {
        set(v, "/data/object/amount_paid", json!("9".repeat(5000)));
    });
    let msg = permanent(Provider::Stripe, "invoice.paid", &payload);
    assert!(msg.len() <= MAX_MESSAGE, "{} bytes", msg.len());
}

// ---------------------------------------------------------------------------------------------
// Unknown types

#[test]
fn unknown_types_are_ignored_by_default_and_fatal_when_configured() {
    for provider in [
        Provider::Stripe,
        Provider::Clerk,
        Provider::Resend,
        Provider::PayPal,
        Provider::Circle,
    ] {
        let key = acme(provider);
        let payload = br#"{"type":"brand.new","created":1,"timestamp":1,"data":{}}"#;
        let ignored = project(
            provider,
            Some("brand.new"),
            payload,
            &key,
            UnknownTypePolicy::default(),
        );
        assert_eq!(
            ignored,
            Ok(ProjectorOutcome::Ignored {
                reason: format!("unknown {provider} event type brand.new")
            })
        );
        let failed = project(
            provider,
            Some("brand.new"),
            payload,
            &key,
            UnknownTypePolicy::Fail,
        );
        assert!(
            matches!(failed, Err(ProjectorError::Permanent(_))),
            "{failed:?}"
        );
        let untyped = project(provider, None, payload, &key, UnknownTypePolicy::Ignore);
        assert!(
            matches!(untyped, Ok(ProjectorOutcome::Ignored { .. })),
            "{untyped:?}"
        );
    }
}

#[test]
fn unknown_type_policy_parses_from_configuration() {
    assert_eq!("ignore".parse(), Ok(UnknownTypePolicy::Ignore));
    assert_eq!("fail".parse(), Ok(UnknownTypePolicy::Fail));
    assert_eq!("Fail".parse::<UnknownTypePolicy>(), Err(UnknownPolicyName));
}

// ---------------------------------------------------------------------------------------------
// Clerk

#[test]
fn clerk_user_created_projects_primary_email_and_names() {
    let w = only(Provider::Clerk, "user.created", CLERK[0].1);
    assert_eq!(w.key.unsharded_pk(), "acme#clerk_user");
    assert_eq!(w.key.sk(), "user_2PayloadUser0001");
    assert_eq!(w.version, 1_717_171_717_123);
    let f = upserted(&w);
    assert_eq!(f["primary_email"], json!("example@example.org"));
    assert_eq!(f["first_name"], json!("Example"));
    assert_eq!(f["username"], Value::Null);
}

#[test]
fn clerk_user_updated_replaces_names() {
    let w = only(Provider::Clerk, "user.updated", CLERK[1].1);
    assert_eq!(upserted(&w)["last_name"], json!("Renamed"));
    assert_eq!(upserted(&w)["username"], json!("example"));
}

#[test]
fn clerk_user_without_a_primary_email_projects_null() {
    let payload = edited(CLERK[0].1, |v| {
        set(v, "/data/primary_email_address_id", json!("idn_gone"));
    });
    let w = only(Provider::Clerk, "user.created", &payload);
    assert_eq!(upserted(&w)["primary_email"], Value::Null);
}

#[test]
fn clerk_user_deleted_leaves_a_tombstone() {
    let w = only(Provider::Clerk, "user.deleted", CLERK[2].1);
    assert_eq!(w.key.sk(), "user_2PayloadUser0001");
    assert_eq!(w.change, Change::Delete);
    assert_eq!(w.version, 1_719_763_717_789);
}

#[test]
fn clerk_session_organization_and_membership_are_projected() {
    let s = only(Provider::Clerk, "session.created", CLERK[3].1);
    assert_eq!(s.key.unsharded_pk(), "acme#clerk_session");
    assert_eq!(upserted(&s)["user_id"], json!("user_2PayloadUser0001"));
    assert_eq!(upserted(&s)["status"], json!("active"));

    let o = only(Provider::Clerk, "organization.created", CLERK[4].1);
    assert_eq!(o.key.unsharded_pk(), "acme#clerk_organization");
    assert_eq!(upserted(&o)["slug"], json!("acme-inc"));

    let m = only(
        Provider::Clerk,
        "organizationMembership.created",
        CLERK[5].1,
    );
    assert_eq!(m.key.unsharded_pk(), "acme#clerk_membership");
    assert_eq!(m.key.sk(), "orgmem_2PayloadMember01");
    let f = upserted(&m);
    assert_eq!(f["organization_id"], json!("org_2PayloadOrg00001"));
    assert_eq!(f["user_id"], json!("user_2PayloadUser0001"));
    assert_eq!(f["role"], json!("org:admin"));
}

#[test]
fn clerk_schema_mismatches_are_permanent() {
    let cases: Vec<(&str, String)> = vec![
        (
            "user.created",
            edited(CLERK[0].1, |v| remove(v, "/data", "id")),
        ),
        (
            "user.created",
            edited(CLERK[0].1, |v| set(v, "/data/object", json!("session"))),
        ),
        (
            "user.updated",
            edited(CLERK[1].1, |v| remove(v, "", "timestamp")),
        ),
        (
            "user.deleted",
            edited(CLERK[2].1, |v| set(v, "/data/deleted", json!(false))),
        ),
        (
            "session.created",
            edited(CLERK[3].1, |v| remove(v, "/data", "user_id")),
        ),
        (
            "organization.created",
            edited(CLERK[4].1, |v| remove(v, "/data", "name")),
        ),
        (
            "organizationMembership.created",
            edited(CLERK[5].1, |v| remove(v, "/data", "public_user_data")),
        ),
    ];
    for (t, payload) in cases {
        let msg = permanent(Provider::Clerk, t, &payload);
        assert!(msg.starts_with(&format!("clerk {t}: ")), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Resend

#[test]
fn resend_events_update_the_latest_status_and_append_history() {
    for (t, payload) in RESEND {
        let writes = run(Provider::Resend, t, payload);
        assert_eq!(writes.len(), 2, "{t}");
        let (latest, entry) = (&writes[0], &writes[1]);
        assert_eq!(latest.key.unsharded_pk(), "acme#resend_email");
        assert_eq!(latest.key.sk(), "56761188-7520-42d8-8898-ff6fc54ce618");
        let status = t.trim_start_matches("email.");
        assert_eq!(upserted(latest)["status"], json!(status));
        assert_eq!(entry.key.unsharded_pk(), "acme#resend_email_event");
        assert_eq!(
            entry.key.sk(),
            format!(
                "56761188-7520-42d8-8898-ff6fc54ce618#{}#msg_test_0001",
                latest.version
            )
        );
        assert!(matches!(&entry.change, Change::Append(f) if f["type"] == json!(t)));
    }
}

#[test]
fn resend_version_is_created_at_in_millis() {
    let writes = run(Provider::Resend, "email.sent", RESEND[0].1);
    // 2024-06-01T12:00:00.412Z
    assert_eq!(writes[0].version, 1_717_243_200_412);
}

#[test]
fn resend_bounce_and_click_details_are_kept_without_the_readers_address() {
    let bounced = run(Provider::Resend, "email.bounced", RESEND[5].1);
    let bounce = &upserted(&bounced[0])["bounce"];
    assert_eq!(bounce["type"], json!("Permanent"));
    assert_eq!(bounce["sub_type"], json!("Suppressed"));

    let clicked = run(Provider::Resend, "email.clicked", RESEND[4].1);
    let f = upserted(&clicked[0]);
    assert_eq!(
        f["click"]["link"],
        json!("https://example.com/confirm?token=example")
    );
    assert_eq!(f["bounce"], Value::Null);
    assert!(
        !serde_json::to_string(&clicked[1].change_fields())
            .expect("json")
            .contains("198.51.100.24")
    );
    assert!(
        !serde_json::to_string(f)
            .expect("json")
            .contains("198.51.100.24")
    );
}

#[test]
fn resend_schema_mismatches_are_permanent() {
    let cases: Vec<(&str, String)> = vec![
        (
            "email.sent",
            edited(RESEND[0].1, |v| set(v, "/created_at", json!("yesterday"))),
        ),
        (
            "email.sent",
            edited(RESEND[0].1, |v| remove(v, "/data", "email_id")),
        ),
        (
            "email.sent",
            edited(RESEND[0].1, |v| set(v, "/data/email_id", json!("a#b"))),
        ),
        (
            "email.sent",
            edited(RESEND[0].1, |v| set(v, "/data/to", json!("x@example.com"))),
        ),
        (
            "email.opened",
            edited(RESEND[3].1, |v| set(v, "/type", json!("email.sent"))),
        ),
    ];
    for (t, payload) in cases {
        let msg = permanent(Provider::Resend, t, &payload);
        assert!(msg.starts_with(&format!("resend {t}: ")), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded providers

#[test]
fn recorded_providers_keep_type_and_time_per_provider_and_id() {
    let key = event_key(
        "acme",
        Provider::GitHub,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    );
    let w = run_as(&key, "ping", fixture!("github", "ping"));
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key.unsharded_pk(), "acme#received_event");
    assert_eq!(w[0].key.sk(), "github#72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(w[0].version, 0);
    assert_eq!(upserted(&w[0])["event_type"], json!("ping"));
    assert_eq!(upserted(&w[0])["provider"], json!("github"));

    let key = event_key("acme", Provider::Generic, "evt_generic_sample_0001");
    let w = run_as(&key, "order.shipped", fixture!("generic", "sample"));
    assert_eq!(w[0].key.sk(), "generic#evt_generic_sample_0001");
    assert_eq!(w[0].version, 1_717_171_717_000);
}

#[test]
fn recorded_providers_read_their_body_times() {
    let sw = br#"{"type":"invoice.created","timestamp":"2024-06-01T12:00:00.412Z","data":{}}"#;
    let slack = br#"{"type":"event_callback","event_id":"Ev1","event_time":1717171717}"#;
    for (provider, body, version) in [
        (Provider::StandardWebhooks, &sw[..], 1_717_243_200_412),
        (Provider::Svix, &sw[..], 1_717_243_200_412),
        (Provider::Slack, &slack[..], 1_717_171_717_000),
        (Provider::Shopify, &b"{}"[..], 0),
    ] {
        let key = acme(provider);
        let out = project(provider, Some("x"), body, &key, UnknownTypePolicy::Fail);
        let Ok(ProjectorOutcome::Writes(w)) = out else {
            panic!("{provider}: {out:?}");
        };
        assert_eq!(w[0].version, version, "{provider}");
    }
}

#[test]
fn recorded_providers_accept_any_body_and_no_type() {
    let key = acme(Provider::GitHub);
    let out = project(
        Provider::GitHub,
        None,
        b"payload=%7B%7D",
        &key,
        UnknownTypePolicy::Fail,
    );
    let Ok(ProjectorOutcome::Writes(w)) = out else {
        panic!("{out:?}");
    };
    assert_eq!(upserted(&w[0])["event_type"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Properties of every handler's writes

#[test]
fn writes_use_distinct_keys_and_no_reserved_names() {
    for (provider, t, payload) in every_fixture() {
        let writes = run(provider, t, payload);
        let keys: BTreeSet<_> = writes.iter().map(|w| &w.key).collect();
        assert_eq!(
            keys.len(),
            writes.len(),
            "{t}: one transaction, one write per item"
        );
        for w in &writes {
            for name in w.change_fields().keys() {
                assert!(!RESERVED_ATTRIBUTES.contains(&name.as_str()), "{t}: {name}");
            }
        }
    }
}

#[test]
fn every_kind_is_upserted_with_one_field_set() {
    // So merging fields equals replacing the item, whatever order events arrive in.
    let mut sets: BTreeMap<ProjectionKind, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (provider, t, payload) in every_fixture() {
        for w in run(provider, t, payload) {
            if let Change::Upsert(f) = &w.change {
                sets.entry(w.key.kind())
                    .or_default()
                    .insert(f.keys().cloned().collect());
            }
        }
    }
    for (kind, field_sets) in sets {
        assert_eq!(field_sets.len(), 1, "{kind}: {field_sets:?}");
    }
}

impl ProjectionWrite {
    fn change_fields(&self) -> Fields {
        match &self.change {
            Change::Upsert(f) | Change::Append(f) => f.clone(),
            Change::Delete => Fields::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation

#[test]
fn the_same_stripe_customer_under_two_tenants_stays_two_records() {
    let mut store = MemoryProjections::new();
    for tenant in ["acme", "globex"] {
        let key = event_key(tenant, Provider::Stripe, "evt_1PayloadCheckout000001");
        store.apply_all(&run_as(&key, "checkout.session.completed", STRIPE[5].1));
    }
    let customers: Vec<_> = store
        .iter()
        .filter(|(k, _)| k.kind() == ProjectionKind::StripeCustomer)
        .map(|(k, _)| k.unsharded_pk())
        .collect();
    assert_eq!(
        customers,
        ["acme#stripe_customer", "globex#stripe_customer"]
    );
    assert_eq!(store.len(), 4);
}

#[test]
fn a_payload_naming_another_tenant_changes_nothing_of_theirs() {
    let mut store = MemoryProjections::new();
    let globex = event_key("globex", Provider::Stripe, "evt_globex");
    store.apply_all(&run_as(&globex, "invoice.paid", STRIPE[0].1));
    let before: Vec<_> = store.iter().map(|(k, i)| (k.clone(), i.clone())).collect();

    let hostile = edited(STRIPE[0].1, |v| {
        set(v, "/tenant", json!("globex"));
        set(v, "/account", json!("globex"));
        set(v, "/data/object/tenant", json!("globex"));
        set(v, "/data/object/metadata", json!({"tenant": "globex"}));
        set(v, "/data/object/id", json!("globex#stripe_invoice"));
        set(v, "/data/object/amount_paid", json!(1));
    });
    let acme_key = event_key("acme", Provider::Stripe, "evt_acme");
    let writes = run_as(&acme_key, "invoice.paid", &hostile);
    for w in &writes {
        assert_eq!(w.key.tenant().as_str(), "acme");
        assert!(w.key.pk().starts_with("acme#"), "{}", w.key);
    }
    store.apply_all(&writes);
    for (k, item) in &before {
        assert_eq!(store.get(k), Some(item), "globex's {k} changed");
    }
    assert_eq!(store.len(), before.len() + writes.len());
}

// ---------------------------------------------------------------------------------------------
// Out-of-order delivery

/// One arrival order of `n` events, picked by `seed` (a deterministic Fisher-Yates shuffle, so
/// a failing case reproduces from its seed).
fn arrival_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..order.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        order.swap(
            i,
            usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(0),
        );
    }
    order
}

/// The fields `key` holds after `events` arrive in the order `seed` picks.
fn fields_after_arrival(events: &[Vec<ProjectionWrite>], seed: u64, key: &ProjectionKey) -> Fields {
    let mut store = MemoryProjections::new();
    for i in arrival_order(events.len(), seed) {
        store.apply_all(&events[i]);
    }
    store.get(key).expect("item").fields.clone()
}

/// Of events given as (place in the life, time), event `i` having the id that sorts `i`-th:
/// the place of the latest in (time, place, id), the state every arrival order must leave.
fn latest_place(picks: &[(usize, i64)]) -> usize {
    picks
        .iter()
        .enumerate()
        .max_by_key(|(i, (place, at))| (*at, *place, *i))
        .map_or(0, |(_, (place, _))| *place)
}

/// Every order of `n` items (Heap's algorithm), deterministically.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        heap(k - 1, a, out);
        for i in 0..k - 1 {
            if k.is_multiple_of(2) {
                a.swap(i, k - 1);
            } else {
                a.swap(0, k - 1);
            }
            heap(k - 1, a, out);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

/// Apply each event's writes in every order; assert one final state and return it.
fn same_state_in_every_order(events: &[Vec<ProjectionWrite>]) -> MemoryProjections {
    let orders = permutations(events.len());
    let mut first: Option<MemoryProjections> = None;
    for order in &orders {
        let mut store = MemoryProjections::new();
        for &i in order {
            store.apply_all(&events[i]);
        }
        match &first {
            None => first = Some(store),
            Some(expected) => assert_eq!(&store, expected, "order {order:?}"),
        }
    }
    first.unwrap_or_default()
}

fn stripe_event(t: &str, payload: &str, id: &str) -> Vec<ProjectionWrite> {
    run_as(&event_key("acme", Provider::Stripe, id), t, payload)
}

#[test]
fn permutations_are_all_distinct_orders() {
    let p = permutations(4);
    assert_eq!(p.len(), 24);
    assert_eq!(p.iter().collect::<BTreeSet<_>>().len(), 24);
}

#[test]
fn subscription_events_in_any_order_end_in_the_newest_state() {
    let past_due = edited(STRIPE[3].1, |v| {
        set(v, "/created", json!(1_718_000_000));
        set(v, "/data/object/status", json!("past_due"));
    });
    let events = [
        stripe_event("customer.subscription.created", STRIPE[2].1, "evt_a"),
        stripe_event("customer.subscription.updated", STRIPE[3].1, "evt_b"),
        stripe_event("customer.subscription.updated", &past_due, "evt_c"),
    ];
    let store = same_state_in_every_order(&events);
    let item = store.get(&events[2][0].key).expect("subscription");
    assert_eq!(item.fields["status"], json!("past_due"));
    assert_eq!(item.version, 1_718_000_000_000);
    assert_eq!(item.source_event_id.as_str(), "evt_c");
}

#[test]
fn a_subscription_created_and_updated_in_one_second_ends_updated_in_every_order() {
    // GIVEN Stripe's whole-second `created`: both events carry the same second
    let second = 1_718_000_000;
    let created = edited(STRIPE[2].1, |v| {
        set(v, "/created", json!(second));
        set(v, "/data/object/status", json!("incomplete"));
    });
    let updated = edited(STRIPE[3].1, |v| {
        set(v, "/created", json!(second));
        set(v, "/data/object/status", json!("active"));
    });
    // Event ids that sort the "wrong" way, so only the lifecycle rank can decide.
    let events = [
        stripe_event("customer.subscription.created", &created, "evt_z"),
        stripe_event("customer.subscription.updated", &updated, "evt_a"),
    ];
    let mut store = same_state_in_every_order(&events);
    let key = events[1][0].key.clone();
    assert_eq!(
        store.get(&key).expect("item").fields["status"],
        json!("active")
    );

    // WHEN an operator force-replays the `created` event, THEN nothing flips.
    assert_eq!(store.apply_all(&events[0]), 0);
    assert_eq!(
        store.get(&key).expect("item").fields["status"],
        json!("active")
    );
}

proptest! {
    #[test]
    fn any_arrival_order_of_same_second_stripe_events_ends_in_one_state(
        picks in prop::collection::vec((0usize..5, 0i64..2, 0u8..4), 2..6),
        seed in any::<u64>(),
    ) {
        // Subscription and invoice events of one object, two possible seconds, four statuses.
        let statuses = ["incomplete", "active", "past_due", "canceled"];
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (kind, second, status))| {
                let (t, fixture) = [STRIPE[2], STRIPE[3], STRIPE[4], STRIPE[0], STRIPE[1]][*kind];
                let body = edited(fixture, |v| {
                    set(v, "/created", json!(1_718_000_000 + second));
                    set(v, "/data/object/status", json!(statuses[usize::from(*status)]));
                });
                stripe_event(t, &body, &format!("evt_{i:02}"))
            })
            .collect();
        let mut in_order = MemoryProjections::new();
        for e in &events {
            in_order.apply_all(e);
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            order.swap(i, usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(0));
        }
        let mut shuffled = MemoryProjections::new();
        for &i in &order {
            shuffled.apply_all(&events[i]);
        }
        // Forced replays of everything, in the first order again, change nothing.
        for e in &events {
            shuffled.apply_all(e);
        }
        prop_assert_eq!(in_order, shuffled);
    }
}

#[test]
fn subscription_deletion_wins_in_any_order() {
    let late_update = edited(STRIPE[3].1, |v| {
        // Sent before the deletion, delivered whenever.
        set(v, "/created", json!(1_719_763_716));
        set(v, "/data/object/status", json!("past_due"));
    });
    let same_second_update = edited(STRIPE[3].1, |v| {
        set(v, "/created", json!(1_719_763_717));
    });
    let events = [
        stripe_event("customer.subscription.created", STRIPE[2].1, "evt_a"),
        stripe_event("customer.subscription.updated", STRIPE[3].1, "evt_b"),
        stripe_event("customer.subscription.deleted", STRIPE[4].1, "evt_d"),
        stripe_event("customer.subscription.updated", &late_update, "evt_e"),
        stripe_event(
            "customer.subscription.updated",
            &same_second_update,
            "evt_f",
        ),
    ];
    let store = same_state_in_every_order(&events);
    let item = store.get(&events[2][0].key).expect("tombstone");
    assert!(item.deleted);
    assert!(item.fields.is_empty());
    assert_eq!(item.version, 1_719_763_717_000);
}

#[test]
fn clerk_user_events_in_any_order_end_deleted_and_never_resurrect() {
    let clerk = |t: &str, payload: &str, id: &str| {
        run_as(&event_key("acme", Provider::Clerk, id), t, payload)
    };
    let late_update = edited(CLERK[1].1, |v| {
        set(v, "/timestamp", json!(1_719_763_717_000_i64));
        set(v, "/data/first_name", json!("Late"));
    });
    let events = [
        clerk("user.created", CLERK[0].1, "msg_a"),
        clerk("user.updated", CLERK[1].1, "msg_b"),
        clerk("user.deleted", CLERK[2].1, "msg_c"),
        clerk("user.updated", &late_update, "msg_d"),
    ];
    let store = same_state_in_every_order(&events);
    let item = store.get(&events[2][0].key).expect("tombstone");
    assert!(item.deleted);

    let alive = same_state_in_every_order(&events[..2]);
    let user = alive.get(&events[1][0].key).expect("user");
    assert_eq!(user.fields["last_name"], json!("Renamed"));
}

#[test]
fn resend_events_in_any_order_keep_the_latest_status_and_the_whole_history() {
    let events: Vec<_> = RESEND
        .iter()
        .enumerate()
        .map(|(i, (t, payload))| {
            let key = event_key("acme", Provider::Resend, &format!("msg_{i}"));
            run_as(&key, t, payload)
        })
        .collect();
    let store = same_state_in_every_order(&events);
    let latest = store.get(&events[0][0].key).expect("email");
    assert_eq!(latest.fields["status"], json!("complained"));
    let history = store
        .iter()
        .filter(|(k, _)| k.kind() == ProjectionKind::ResendEmailEvent)
        .map(|(_, item)| item.fields["type"].clone())
        .collect::<Vec<_>>();
    // Key order is time order.
    assert_eq!(
        history,
        [
            "email.sent",
            "email.delivered",
            "email.bounced",
            "email.opened",
            "email.clicked",
            "email.delivery_delayed",
            "email.complained",
        ]
        .map(|t| json!(t))
    );
}

#[test]
fn a_replayed_event_changes_nothing() {
    let mut store = MemoryProjections::new();
    for (provider, t, payload) in every_fixture() {
        store.apply_all(&run(provider, t, payload));
    }
    let once = store.clone();
    for (provider, t, payload) in every_fixture() {
        store.apply_all(&run(provider, t, payload));
    }
    assert_eq!(store, once);
}

// ---------------------------------------------------------------------------------------------
// No input makes a handler panic

const TYPES: [&str; 31] = [
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "checkout.session.completed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "user.created",
    "user.updated",
    "user.deleted",
    "session.created",
    "organization.created",
    "organizationMembership.created",
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.complained",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.REFUNDED",
    "CUSTOMER.DISPUTE.RESOLVED",
    "BILLING.SUBSCRIPTION.RE-ACTIVATED",
    "payments",
    "transfers",
    "MESSAGE_DELIVERED",
    "push",
    "brand.new",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z#_.:0-9-]{0,12}".prop_map(Value::from),
        Just(json!("2024-06-01T12:00:00.412Z")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let names = prop_oneof![
            Just("id".to_owned()),
            Just("object".to_owned()),
            Just("status".to_owned()),
            Just("customer".to_owned()),
            Just("email_id".to_owned()),
            Just("deleted".to_owned()),
            Just("resource".to_owned()),
            Just("notification".to_owned()),
            Just("message".to_owned()),
            Just("data".to_owned()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(names, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn no_bytes_make_a_handler_panic(
        body in prop::collection::vec(any::<u8>(), 0..256),
        t in prop::sample::select(&TYPES[..]),
    ) {
        for provider in Provider::all() {
            let key = acme(provider);
            let _ = project(provider, Some(t), &body, &key, UnknownTypePolicy::Fail);
            let _ = project(provider, None, &body, &key, UnknownTypePolicy::Ignore);
        }
    }

    #[test]
    fn no_json_shape_makes_a_handler_panic(
        data in json_value(),
        time in json_value(),
        t in prop::sample::select(&TYPES[..]),
    ) {
        let body = json!({
            "type": t, "created": time, "timestamp": time, "created_at": time,
            "data": {"object": data.clone()},
        });
        let flat = json!({"type": t, "created": time, "timestamp": time, "data": data});
        // PayPal's, Circle's and Pub/Sub's envelopes around the same arbitrary resource.
        let paypal = json!({
            "event_type": t, "create_time": time, "resource_type": "capture",
            "resource": data.clone(),
        });
        let circle = json!({"notificationType": t, "notification": data.clone()});
        let push = json!({"message": {"data": data.clone()}, "subscription": "s"});
        for provider in Provider::all() {
            let key = acme(provider);
            for b in [&body, &flat, &paypal, &circle, &push] {
                let bytes = b.to_string().into_bytes();
                if let Ok(ProjectorOutcome::Writes(w)) =
                    project(provider, Some(t), &bytes, &key, UnknownTypePolicy::Fail)
                {
                    prop_assert!(w.iter().all(|w| w.key.tenant().as_str() == "acme"));
                    prop_assert!(w.iter().all(|w| w.version >= 0));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PayPal, Circle and Firebase, one file each

mod circle;
mod firebase;
mod paypal;
