//! PayPal: each resource on PayPal's documented shapes, the refund's mark on its capture,
//! schema errors that name the field, and any arrival order ending in the latest state.

use super::*;
use crate::projectors::paypal::{CAPTURE_TYPES, DISPUTE_TYPES, SUBSCRIPTION_TYPES};

const COMPLETED: &str = PAYPAL[0].1;
const REFUNDED: &str = PAYPAL[1].1;
const DISPUTE: &str = PAYPAL[2].1;
const SUBSCRIPTION: &str = PAYPAL[3].1;

fn paypal(t: &str, payload: &str, id: &str) -> Vec<ProjectionWrite> {
    run_as(&event_key("acme", Provider::PayPal, id), t, payload)
}

/// A fixture as the event `t` at `time`, its resource in `status`.
fn as_event(fixture: &str, t: &str, time: &str, status: &str) -> String {
    edited(fixture, |v| {
        set(v, "/event_type", json!(t));
        set(v, "/create_time", json!(time));
        set(v, "/resource/status", json!(status));
    })
}

fn paypal_key(kind: ProjectionKind, id: &str) -> ProjectionKey {
    ProjectionKey::new(&TenantId::parse("acme").expect("tenant"), kind, id).expect("key")
}

#[test]
fn a_completed_capture_keeps_status_amount_and_references() {
    let w = only(Provider::PayPal, "PAYMENT.CAPTURE.COMPLETED", COMPLETED);
    assert_eq!(w.key.unsharded_pk(), "acme#paypal_capture");
    assert_eq!(w.key.sk(), "42311647XV020574X");
    assert_eq!(w.version, 1_550_181_007_940);
    assert_eq!(w.rank, 20);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("COMPLETED"));
    assert_eq!(
        f["amount"],
        json!({"currency_code": "USD", "value": "30.00"})
    );
    assert_eq!(f["invoice_id"], Value::Null);

    let with_refs = edited(COMPLETED, |v| {
        set(v, "/resource/invoice_id", json!("INV-2019-0001"));
        set(v, "/resource/custom_id", json!("order-7"));
        set(
            v,
            "/resource/supplementary_data",
            json!({"related_ids": {"order_id": "5O190127TN364715T"}}),
        );
    });
    let f = upserted(&only(
        Provider::PayPal,
        "PAYMENT.CAPTURE.COMPLETED",
        &with_refs,
    ))
    .clone();
    assert_eq!(f["invoice_id"], json!("INV-2019-0001"));
    assert_eq!(f["custom_id"], json!("order-7"));
    assert_eq!(f["order_id"], json!("5O190127TN364715T"));
}

#[test]
fn every_capture_type_projects_its_status_at_its_rank() {
    for (i, t) in CAPTURE_TYPES.iter().enumerate() {
        let status = t.rsplit('.').next().expect("suffix");
        let body = as_event(COMPLETED, t, "2019-02-14T21:50:07.940Z", status);
        let w = only(Provider::PayPal, t, &body);
        assert_eq!(upserted(&w)["status"], json!(status), "{t}");
        assert_eq!(upserted(&w)["last_event_type"], json!(t), "{t}");
        assert_eq!(w.rank, 10 + 10 * u32::try_from(i).expect("small"), "{t}");
    }
}

#[test]
fn a_refund_is_projected_naming_the_capture_its_up_link_names() {
    let writes = run(Provider::PayPal, "PAYMENT.CAPTURE.REFUNDED", REFUNDED);
    assert_eq!(writes.len(), 1, "{writes:?}");
    let refund = &writes[0];
    assert_eq!(refund.key.unsharded_pk(), "acme#paypal_refund");
    assert_eq!(refund.key.sk(), "1Y107995YT783435V");
    assert_eq!(refund.version, 1_550_182_808_370);
    let f = upserted(refund);
    assert_eq!(f["status"], json!("COMPLETED"));
    assert_eq!(f["capture_id"], json!("42311647XV020574X"));
    assert_eq!(
        f["amount"],
        json!({"currency_code": "USD", "value": "30.00"})
    );
    assert_eq!(f["invoice_id"], json!("INV-2019-0001"));
}

#[test]
fn a_reversal_is_a_refund_item_too() {
    let body = edited(REFUNDED, |v| {
        set(v, "/event_type", json!("PAYMENT.CAPTURE.REVERSED"));
    });
    let w = only(Provider::PayPal, "PAYMENT.CAPTURE.REVERSED", &body);
    assert_eq!(w.key.kind(), ProjectionKind::PayPalRefund);
    assert_eq!(
        upserted(&w)["last_event_type"],
        json!("PAYMENT.CAPTURE.REVERSED")
    );
}

#[test]
fn a_pending_refund_or_one_without_a_capture_link_is_still_a_refund() {
    let pending = edited(REFUNDED, |v| set(v, "/resource/status", json!("PENDING")));
    let w = only(Provider::PayPal, "PAYMENT.CAPTURE.REFUNDED", &pending);
    assert_eq!(w.key.kind(), ProjectionKind::PayPalRefund);
    assert_eq!(upserted(&w)["capture_id"], json!("42311647XV020574X"));

    for links in [
        json!([]),
        json!([{"href": "https://api.paypal.com/v2/payments/refunds/1Y107995YT783435V", "rel": "self"}]),
        json!([{"href": "https://api.paypal.com/v2/checkout/orders/5O190127TN364715T", "rel": "up"}]),
    ] {
        let body = edited(REFUNDED, |v| set(v, "/resource/links", links.clone()));
        let w = only(Provider::PayPal, "PAYMENT.CAPTURE.REFUNDED", &body);
        assert_eq!(upserted(&w)["capture_id"], Value::Null, "{links}");
    }
}

#[test]
fn a_refund_is_its_own_item_naming_its_capture_which_keeps_its_amount_in_every_order() {
    // A late COMPLETED at the refund's own instant, too.
    let same_instant = edited(COMPLETED, |v| {
        set(v, "/create_time", json!("2019-02-14T22:20:08.370Z"));
    });
    let events = [
        paypal("PAYMENT.CAPTURE.COMPLETED", COMPLETED, "WH-a"),
        paypal("PAYMENT.CAPTURE.REFUNDED", REFUNDED, "WH-b"),
        paypal("PAYMENT.CAPTURE.COMPLETED", &same_instant, "WH-z"),
    ];
    let store = same_state_in_every_order(&events);
    let capture = store
        .get(&paypal_key(
            ProjectionKind::PayPalCapture,
            "42311647XV020574X",
        ))
        .expect("capture");
    // The refund does not know the capture's amount: the capture keeps what captures said.
    assert_eq!(capture.fields["status"], json!("COMPLETED"));
    assert!(capture.fields["amount"].is_object());
    let refund = store
        .get(&paypal_key(
            ProjectionKind::PayPalRefund,
            "1Y107995YT783435V",
        ))
        .expect("refund");
    assert_eq!(refund.fields["capture_id"], json!("42311647XV020574X"));
}

#[test]
fn disputes_keep_status_reason_amount_and_outcome() {
    let w = only(Provider::PayPal, "CUSTOMER.DISPUTE.CREATED", DISPUTE);
    assert_eq!(w.key.unsharded_pk(), "acme#paypal_dispute");
    assert_eq!(w.key.sk(), "PP-000-042-663-135");
    assert_eq!(w.version, 1_529_588_193_000);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("OPEN"));
    assert_eq!(f["reason"], json!("MERCHANDISE_OR_SERVICE_NOT_RECEIVED"));
    assert_eq!(
        f["dispute_amount"],
        json!({"currency_code": "USD", "value": "3.00"})
    );
    assert_eq!(f["life_cycle_stage"], json!("INQUIRY"));
    assert_eq!(f["outcome"], Value::Null);

    let resolved = edited(DISPUTE, |v| {
        set(v, "/event_type", json!("CUSTOMER.DISPUTE.RESOLVED"));
        set(v, "/resource/status", json!("RESOLVED"));
        set(
            v,
            "/resource/dispute_outcome",
            json!({"outcome_code": "RESOLVED_BUYER_FAVOUR",
                   "amount_refunded": {"currency_code": "USD", "value": "3.00"}}),
        );
    });
    let w = only(Provider::PayPal, "CUSTOMER.DISPUTE.RESOLVED", &resolved);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("RESOLVED"));
    assert_eq!(f["outcome"], json!("RESOLVED_BUYER_FAVOUR"));
    assert_eq!(
        f["amount_refunded"],
        json!({"currency_code": "USD", "value": "3.00"})
    );
    assert_eq!(w.rank, 30);
}

#[test]
fn subscriptions_keep_status_plan_and_subscriber() {
    let w = only(
        Provider::PayPal,
        "BILLING.SUBSCRIPTION.ACTIVATED",
        SUBSCRIPTION,
    );
    assert_eq!(w.key.unsharded_pk(), "acme#paypal_subscription");
    assert_eq!(w.key.sk(), "I-BW452GLLEP1G");
    assert_eq!(w.version, 1_717_405_964_201);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("ACTIVE"));
    assert_eq!(f["plan_id"], json!("P-5ML4271244454362WXNWU5NQ"));
    assert_eq!(f["subscriber_email"], json!("customer@example.com"));
    assert_eq!(f["subscriber_payer_id"], json!("2J6QB8YJQSJRJ"));
    assert_eq!(f["next_billing_time"], json!("2024-07-03T10:00:00Z"));
    assert_eq!(f["failed_payments_count"], json!(0));
}

#[test]
fn a_reactivation_undoes_a_suspension_later_or_at_the_same_instant() {
    let suspended = as_event(
        SUBSCRIPTION,
        "BILLING.SUBSCRIPTION.SUSPENDED",
        "2024-07-01T00:00:00Z",
        "SUSPENDED",
    );
    for reactivated_at in ["2024-07-02T00:00:00Z", "2024-07-01T00:00:00Z"] {
        let reactivated = as_event(
            SUBSCRIPTION,
            "BILLING.SUBSCRIPTION.RE-ACTIVATED",
            reactivated_at,
            "ACTIVE",
        );
        let events = [
            paypal("BILLING.SUBSCRIPTION.ACTIVATED", SUBSCRIPTION, "WH-1"),
            // Event ids that sort the "wrong" way, so at one instant only the rank decides.
            paypal("BILLING.SUBSCRIPTION.SUSPENDED", &suspended, "WH-9"),
            paypal("BILLING.SUBSCRIPTION.RE-ACTIVATED", &reactivated, "WH-2"),
        ];
        let store = same_state_in_every_order(&events);
        let item = store.get(&events[0][0].key).expect("subscription");
        assert_eq!(item.fields["status"], json!("ACTIVE"), "{reactivated_at}");
        assert_eq!(item.source_event_id.as_str(), "WH-2");
    }
}

#[test]
fn schema_mismatches_are_permanent_and_name_the_field() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| remove(v, "/resource", "id")),
            "resource.id is missing",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| set(v, "/resource/status", json!(1))),
            "resource.status is not a string",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| set(v, "/resource/amount/value", json!(30.0))),
            "resource.amount.value is not a string",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| set(v, "/resource_type", json!("sale"))),
            "resource_type is sale, expected capture",
        ),
        (
            "PAYMENT.CAPTURE.REFUNDED",
            edited(REFUNDED, |v| set(v, "/resource_type", json!("sale"))),
            "resource_type is sale, expected capture or refund",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| set(v, "/create_time", json!("yesterday"))),
            "create_time is not an RFC 3339 time",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| remove(v, "", "resource")),
            "resource is missing",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| {
                set(v, "/resource", json!("42311647XV020574X"))
            }),
            "resource is not an object",
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            edited(COMPLETED, |v| {
                set(v, "/event_type", json!("PAYMENT.CAPTURE.DENIED"))
            }),
            "payload type is PAYMENT.CAPTURE.DENIED",
        ),
        (
            "PAYMENT.CAPTURE.REFUNDED",
            edited(REFUNDED, |v| set(v, "/resource/links", json!({}))),
            "resource.links is not an array",
        ),
        (
            "CUSTOMER.DISPUTE.CREATED",
            edited(DISPUTE, |v| remove(v, "/resource", "dispute_id")),
            "resource.dispute_id is missing",
        ),
        (
            "BILLING.SUBSCRIPTION.ACTIVATED",
            edited(SUBSCRIPTION, |v| {
                set(v, "/resource/subscriber/email_address", json!(["a"]))
            }),
            "resource.subscriber.email_address is not a string",
        ),
        (
            "BILLING.SUBSCRIPTION.ACTIVATED",
            edited(SUBSCRIPTION, |v| set(v, "/resource/id", json!(""))),
            "resource.id is empty",
        ),
        (
            "BILLING.SUBSCRIPTION.ACTIVATED",
            "[]".to_owned(),
            "the payload is not a JSON object",
        ),
    ];
    for (t, payload, expected) in cases {
        let msg = permanent(Provider::PayPal, t, &payload);
        assert_eq!(msg, format!("paypal {t}: {expected}"));
    }
    let msg = permanent(Provider::PayPal, "PAYMENT.CAPTURE.COMPLETED", "not json");
    assert!(
        msg.starts_with("paypal PAYMENT.CAPTURE.COMPLETED: expected"),
        "{msg}"
    );
}

#[test]
fn types_without_a_handler_follow_the_policy() {
    let key = acme(Provider::PayPal);
    let body = br#"{"id":"WH-1","event_type":"PAYMENT.SALE.COMPLETED","resource":{}}"#;
    let ignored = project(
        Provider::PayPal,
        Some("PAYMENT.SALE.COMPLETED"),
        body,
        &key,
        UnknownTypePolicy::Ignore,
    );
    assert_eq!(
        ignored,
        Ok(ProjectorOutcome::Ignored {
            reason: "unknown paypal event type PAYMENT.SALE.COMPLETED".to_owned()
        })
    );
    let failed = project(
        Provider::PayPal,
        Some("PAYMENT.SALE.COMPLETED"),
        body,
        &key,
        UnknownTypePolicy::Fail,
    );
    assert!(matches!(failed, Err(ProjectorError::Permanent(_))));
}

fn time(at: i64) -> String {
    format!("2024-06-03T09:12:4{at}Z")
}

proptest! {
    #[test]
    fn a_capture_ends_in_its_latest_status_in_any_arrival_order(
        picks in prop::collection::vec((0usize..CAPTURE_TYPES.len(), 0i64..2), 1..8),
        seed in any::<u64>(),
    ) {
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (k, at))| {
                let t = CAPTURE_TYPES[*k];
                let status = t.rsplit('.').next().unwrap_or_default();
                let body = as_event(COMPLETED, t, &time(*at), status);
                paypal(t, &body, &format!("WH-{i:02}"))
            })
            .collect();
        let key = paypal_key(ProjectionKind::PayPalCapture, "42311647XV020574X");
        let expected = CAPTURE_TYPES[latest_place(&picks)];
        let state = fields_after_arrival(&events, seed, &key);
        prop_assert_eq!(&state["last_event_type"], &json!(expected));
        prop_assert_eq!(&state["status"], &json!(expected.rsplit('.').next()));
    }

    #[test]
    fn a_dispute_ends_in_its_latest_status_in_any_arrival_order(
        picks in prop::collection::vec((0usize..DISPUTE_TYPES.len(), 0i64..2), 1..6),
        seed in any::<u64>(),
    ) {
        let statuses = ["OPEN", "UNDER_REVIEW", "RESOLVED"];
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (k, at))| {
                let body = as_event(DISPUTE, DISPUTE_TYPES[*k], &time(*at), statuses[*k]);
                paypal(DISPUTE_TYPES[*k], &body, &format!("WH-{i:02}"))
            })
            .collect();
        let key = paypal_key(ProjectionKind::PayPalDispute, "PP-000-042-663-135");
        let expected = DISPUTE_TYPES[latest_place(&picks)];
        let state = fields_after_arrival(&events, seed, &key);
        prop_assert_eq!(&state["last_event_type"], &json!(expected));
    }

    #[test]
    fn a_subscription_ends_in_its_latest_status_in_any_arrival_order(
        picks in prop::collection::vec((0usize..SUBSCRIPTION_TYPES.len(), 0i64..2), 1..8),
        seed in any::<u64>(),
    ) {
        let statuses = [
            "APPROVAL_PENDING", "ACTIVE", "ACTIVE", "ACTIVE", "SUSPENDED", "ACTIVE", "CANCELLED",
            "EXPIRED",
        ];
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (k, at))| {
                let t = SUBSCRIPTION_TYPES[*k];
                paypal(t, &as_event(SUBSCRIPTION, t, &time(*at), statuses[*k]), &format!("WH-{i:02}"))
            })
            .collect();
        let key = paypal_key(ProjectionKind::PayPalSubscription, "I-BW452GLLEP1G");
        let expected = SUBSCRIPTION_TYPES[latest_place(&picks)];
        let state = fields_after_arrival(&events, seed, &key);
        prop_assert_eq!(&state["last_event_type"], &json!(expected));
        prop_assert_eq!(&state["status"], &json!(statuses[latest_place(&picks)]));
    }
}
