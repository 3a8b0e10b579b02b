//! Circle: payments, transfers and payouts in the v2 envelope, the v1 one and v1 through SNS;
//! subscription handshakes recorded; schema errors that name the field; any arrival order.

use super::*;
use crate::projectors::circle::{PAYMENT_STATUSES, PAYOUT_STATUSES, TRANSFER_STATUSES};

const PAYMENTS: &str = CIRCLE[0].1;
const TRANSFERS: &str = CIRCLE[1].1;
const PAYOUTS: &str = CIRCLE[2].1;

/// A v1 payment notification, as Circle Mint documents it: the resource named after its type.
const V1_PAYMENT: &str = r#"{
  "clientId": "c60d2d5b-203c-45bb-9f6e-93641d40a599",
  "notificationType": "payments",
  "version": 1,
  "customAttributes": {"clientId": "c60d2d5b-203c-45bb-9f6e-93641d40a599"},
  "payment": {
    "id": "b8627ae8-732b-4d25-b947-1df8f4007a29",
    "type": "payment",
    "merchantId": "fc988ed5-c129-4f70-a064-e5beb7eb8e32",
    "merchantWalletId": "212000",
    "amount": {"amount": "3.14", "currency": "USD"},
    "source": {"id": "b8627ae8-732b-4d25-b947-1df8f4007a29", "type": "card"},
    "description": "Payment",
    "status": "paid",
    "fees": {"amount": "0.12", "currency": "USD"},
    "createDate": "2020-04-10T02:13:30.000Z",
    "updateDate": "2020-04-10T02:15:30.000Z"
  }
}"#;

/// Circle Mint's SNS subscription handshake.
const SNS_CONFIRMATION: &str = r#"{
  "Type": "SubscriptionConfirmation",
  "MessageId": "ddbdcdcf-d36a-45b5-927c-da25b9b009ae",
  "Token": "2336412f37fb687f5d51e6e2425f004aed7b7526d5fae41bc257a0d80532a682",
  "TopicArn": "arn:aws:sns:us-west-2:908968368384:sandbox_platform-notifications-topic",
  "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:908968368384:sandbox_platform-notifications-topic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
  "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:908968368384:sandbox_platform-notifications-topic&Token=2336412f37fb687f",
  "Timestamp": "2020-04-10T02:13:30.000Z",
  "SignatureVersion": "1",
  "Signature": "example",
  "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-example.pem"
}"#;

/// The v1 payment wrapped as SNS delivers it: the notification is the JSON string `Message`.
fn sns_wrapped(notification: &str) -> String {
    let inner: Value = serde_json::from_str(notification).expect("JSON");
    json!({
        "Type": "Notification",
        "MessageId": "8a3f0b5e-6f2a-5c1b-9f1e-2d3c4b5a6f70",
        "TopicArn": "arn:aws:sns:us-west-2:908968368384:sandbox_platform-notifications-topic",
        "Message": inner.to_string(),
        "Timestamp": "2020-04-10T02:15:31.000Z",
        "SignatureVersion": "1",
        "Signature": "example",
    })
    .to_string()
}

fn circle(t: Option<&str>, payload: &str) -> Result<ProjectorOutcome, ProjectorError> {
    project(
        Provider::Circle,
        t,
        payload.as_bytes(),
        &acme(Provider::Circle),
        UnknownTypePolicy::Fail,
    )
}

fn writes(outcome: Result<ProjectorOutcome, ProjectorError>) -> Vec<ProjectionWrite> {
    match outcome {
        Ok(ProjectorOutcome::Writes(w)) => w,
        other => panic!("expected writes, got {other:?}"),
    }
}

#[test]
fn a_payment_keeps_status_amount_and_dates() {
    let w = only(Provider::Circle, "payments", PAYMENTS);
    assert_eq!(w.key.unsharded_pk(), "acme#circle_payment");
    assert_eq!(w.key.sk(), "b8627ae8-732b-4d25-b947-1df8f4007a29");
    // No updateDate: the createDate is the version, and the status ranks.
    assert_eq!(w.version, 1_586_484_810_000);
    assert_eq!(w.rank, 30);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("confirmed"));
    assert_eq!(f["amount"], json!({"amount": "3.14", "currency": "USD"}));
    assert_eq!(f["type"], json!("payment"));
    assert_eq!(f["error_code"], Value::Null);
    assert_eq!(f["update_date"], Value::Null);
}

#[test]
fn a_transfer_and_a_payout_are_projected() {
    let t = only(Provider::Circle, "transfers", TRANSFERS);
    assert_eq!(t.key.unsharded_pk(), "acme#circle_transfer");
    assert_eq!(t.key.sk(), "733c1e6d-9a60-4b2b-bc5c-8d1e8a4c2f2e");
    assert_eq!((t.version, t.rank), (1_586_484_810_000, 20));
    assert_eq!(upserted(&t)["status"], json!("complete"));
    assert_eq!(
        upserted(&t)["transaction_hash"],
        json!("0x4cebf8f90c9243a23c77e4ae20d4d5d3f1e8c9b1a0e4d0c5b1c7f8e2a3d4b5c6")
    );

    let p = only(Provider::Circle, "payouts", PAYOUTS);
    assert_eq!(p.key.unsharded_pk(), "acme#circle_payout");
    assert_eq!(p.key.sk(), "5b8e4a3c-2a8d-4c45-9d0b-2f1f6e4f7a10");
    // The updateDate is the version where Circle sends one.
    assert_eq!(p.version, 1_586_485_230_000);
    assert_eq!(
        upserted(&p)["amount"],
        json!({"amount": "3.14", "currency": "USD"})
    );
}

#[test]
fn every_status_ranks_in_the_order_of_its_life() {
    for (fixture, t, statuses) in [
        (PAYMENTS, "payments", &PAYMENT_STATUSES[..]),
        (TRANSFERS, "transfers", &TRANSFER_STATUSES),
        (PAYOUTS, "payouts", &PAYOUT_STATUSES),
    ] {
        let mut last = 0;
        for status in statuses {
            let body = edited(fixture, |v| set(v, "/notification/status", json!(status)));
            let w = only(Provider::Circle, t, &body);
            assert_eq!(upserted(&w)["status"], json!(status));
            assert!(w.rank > last, "{t} {status}");
            last = w.rank;
        }
        // A status Circle adds later is kept, below every known one at one instant.
        let body = edited(fixture, |v| {
            set(v, "/notification/status", json!("teleported"))
        });
        assert_eq!(only(Provider::Circle, t, &body).rank, 0);
    }
}

#[test]
fn the_v1_envelope_and_sns_delivery_project_the_same_payment() {
    let direct = writes(circle(Some("payments"), V1_PAYMENT));
    let via_sns = writes(circle(None, &sns_wrapped(V1_PAYMENT)));
    assert_eq!(direct, via_sns);
    let w = &direct[0];
    assert_eq!(w.key.sk(), "b8627ae8-732b-4d25-b947-1df8f4007a29");
    assert_eq!(w.version, 1_586_484_930_000);
    assert_eq!(upserted(w)["status"], json!("paid"));
    // The same payment in the v2 envelope lands on the same item.
    assert_eq!(w.key, only(Provider::Circle, "payments", PAYMENTS).key);
}

#[test]
fn subscription_handshakes_are_recorded_not_refused() {
    for (t, body) in [
        (None, SNS_CONFIRMATION.to_owned()),
        (
            Some("webhooks.test"),
            json!({"subscriptionId": "00000000-0000-0000-0000-000000000000",
                   "notificationId": "00000000-0000-0000-0000-000000000009",
                   "notificationType": "webhooks.test", "notification": {"hello": "world"},
                   "timestamp": "2024-01-26T18:22:19.779834211Z", "version": 2})
            .to_string(),
        ),
        (Some("webhooks"), "{}".to_owned()),
    ] {
        let w = writes(circle(t, &body));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].key.kind(), ProjectionKind::ReceivedEvent, "{t:?}");
        assert_eq!(upserted(&w[0])["provider"], json!("circle"));
    }
    let w = writes(circle(None, SNS_CONFIRMATION));
    assert_eq!(
        upserted(&w[0])["event_type"],
        json!("SubscriptionConfirmation")
    );
}

#[test]
fn notification_types_without_a_handler_follow_the_policy() {
    let body = r#"{"notificationType":"settlements","settlement":{"id":"s1"}}"#;
    let ignored = project(
        Provider::Circle,
        Some("settlements"),
        body.as_bytes(),
        &acme(Provider::Circle),
        UnknownTypePolicy::Ignore,
    );
    assert_eq!(
        ignored,
        Ok(ProjectorOutcome::Ignored {
            reason: "unknown circle event type settlements".to_owned()
        })
    );
    assert!(matches!(
        circle(Some("settlements"), body),
        Err(ProjectorError::Permanent(_))
    ));
    // An SNS notification names its type inside the message.
    let wrapped = sns_wrapped(body);
    assert_eq!(
        circle(None, &wrapped),
        Err(ProjectorError::Permanent(
            "unknown circle event type settlements".to_owned()
        ))
    );
}

#[test]
fn schema_mismatches_are_permanent_and_name_the_field() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "payments",
            edited(PAYMENTS, |v| remove(v, "/notification", "id")),
            "notification.id is missing",
        ),
        (
            "payments",
            edited(PAYMENTS, |v| set(v, "/notification/status", json!(7))),
            "notification.status is not a string",
        ),
        (
            "payments",
            edited(PAYMENTS, |v| remove(v, "/notification", "createDate")),
            "notification.updateDate and createDate are missing",
        ),
        (
            "payouts",
            edited(PAYOUTS, |v| {
                set(v, "/notification/updateDate", json!("soon"))
            }),
            "notification.updateDate is not an RFC 3339 time",
        ),
        (
            "payments",
            edited(PAYMENTS, |v| {
                set(v, "/notification/amount/amount", json!(3.5))
            }),
            "notification.amount.amount is not a string",
        ),
        (
            "transfers",
            edited(TRANSFERS, |v| remove(v, "", "notification")),
            "notification (or transfer) is missing",
        ),
        (
            "payments",
            edited(PAYMENTS, |v| set(v, "/notification", json!([]))),
            "notification is not an object",
        ),
        (
            "payments",
            edited(PAYMENTS, |v| {
                set(v, "/notificationType", json!("transfers"))
            }),
            "payload type is transfers",
        ),
        (
            "payments",
            edited(V1_PAYMENT, |v| set(v, "/payment/id", json!(""))),
            "payment.id is empty",
        ),
    ];
    for (t, payload, expected) in cases {
        let msg = permanent(Provider::Circle, t, &payload);
        assert_eq!(msg, format!("circle {t}: {expected}"));
    }
    let bad_message = json!({"Type": "Notification", "Message": "{not json"}).to_string();
    assert_eq!(
        circle(None, &bad_message),
        Err(ProjectorError::Permanent(
            "circle Notification: Message is not JSON".to_owned()
        ))
    );
    let msg = permanent(Provider::Circle, "payments", "not json");
    assert!(msg.starts_with("circle payments: expected"), "{msg}");
}

#[test]
fn a_transfer_without_update_dates_ends_complete_in_every_order() {
    // Transfers carry only createDate: every notification has one version, the rank decides.
    let pending = edited(TRANSFERS, |v| {
        set(v, "/notification/status", json!("pending"))
    });
    let events = [
        run_as(
            &event_key("acme", Provider::Circle, "n-z"),
            "transfers",
            &pending,
        ),
        run_as(
            &event_key("acme", Provider::Circle, "n-a"),
            "transfers",
            TRANSFERS,
        ),
    ];
    let store = same_state_in_every_order(&events);
    let item = store.get(&events[0][0].key).expect("transfer");
    assert_eq!(item.fields["status"], json!("complete"));
}

proptest! {
    #[test]
    fn each_kind_ends_in_its_latest_status_in_any_arrival_order(
        kind in 0usize..3,
        picks in prop::collection::vec((0usize..6, 0i64..2), 1..8),
        seed in any::<u64>(),
    ) {
        let (fixture, t, statuses) = [
            (PAYMENTS, "payments", &PAYMENT_STATUSES[..]),
            (TRANSFERS, "transfers", &TRANSFER_STATUSES),
            (PAYOUTS, "payouts", &PAYOUT_STATUSES),
        ][kind];
        let picks: Vec<(usize, i64)> =
            picks.into_iter().map(|(s, at)| (s % statuses.len(), at)).collect();
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (s, at))| {
                let body = edited(fixture, |v| {
                    set(v, "/notification/status", json!(statuses[*s]));
                    set(v, "/notification/updateDate", json!(format!("2020-04-10T02:20:3{at}Z")));
                });
                run_as(&event_key("acme", Provider::Circle, &format!("n-{i:02}")), t, &body)
            })
            .collect();
        let key = events[0][0].key.clone();
        let state = fields_after_arrival(&events, seed, &key);
        prop_assert_eq!(&state["status"], &json!(statuses[latest_place(&picks)]));
    }
}
