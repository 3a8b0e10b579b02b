//! Firebase: FCM delivery rows in Pub/Sub push envelopes, both base64 alphabets, both time
//! forms, rows that are not delivery data, schema errors that name the field, and any arrival
//! order.

use base64::{Engine, engine::general_purpose};

use super::*;
use crate::projectors::firebase::{ACCEPTED, DELIVERED, ERRORS};

/// A push of one `MESSAGE_DELIVERED` row of FCM's BigQuery export, whose data decodes to:
/// `{"event_timestamp":"2024-06-01T12:00:00.412345Z","project_number":123456789012,
/// "message_id":"0:1717243200412345%31bd1c9631bd1c96","instance_id":"fWl8Lr5dRUq3bVmKZf2lQx",
/// "message_type":"DISPLAY_NOTIFICATION","sdk_platform":"ANDROID","app_name":"com.example.app",
/// "collapse_key":"","priority":10,"ttl":2419200,"topic":"","bulk_id":"",
/// "device_recently_active":true,"event":"MESSAGE_DELIVERED","analytics_label":"spring_campaign"}`
pub(super) const DELIVERED_PUSH: &str = r#"{
  "message": {
    "attributes": {"eventType": "MESSAGE_DELIVERED"},
    "data": "eyJldmVudF90aW1lc3RhbXAiOiIyMDI0LTA2LTAxVDEyOjAwOjAwLjQxMjM0NVoiLCJwcm9qZWN0X251bWJlciI6MTIzNDU2Nzg5MDEyLCJtZXNzYWdlX2lkIjoiMDoxNzE3MjQzMjAwNDEyMzQ1JTMxYmQxYzk2MzFiZDFjOTYiLCJpbnN0YW5jZV9pZCI6ImZXbDhMcjVkUlVxM2JWbUtaZjJsUXgiLCJtZXNzYWdlX3R5cGUiOiJESVNQTEFZX05PVElGSUNBVElPTiIsInNka19wbGF0Zm9ybSI6IkFORFJPSUQiLCJhcHBfbmFtZSI6ImNvbS5leGFtcGxlLmFwcCIsImNvbGxhcHNlX2tleSI6IiIsInByaW9yaXR5IjoxMCwidHRsIjoyNDE5MjAwLCJ0b3BpYyI6IiIsImJ1bGtfaWQiOiIiLCJkZXZpY2VfcmVjZW50bHlfYWN0aXZlIjp0cnVlLCJldmVudCI6Ik1FU1NBR0VfREVMSVZFUkVEIiwiYW5hbHl0aWNzX2xhYmVsIjoic3ByaW5nX2NhbXBhaWduIn0=",
    "messageId": "2070443601311540",
    "message_id": "2070443601311540",
    "publishTime": "2024-06-01T12:00:01.234Z",
    "publish_time": "2024-06-01T12:00:01.234Z"
  },
  "subscription": "projects/example-project/subscriptions/fcm-delivery-push"
}"#;

const MESSAGE_ID: &str = "0:1717243200412345%31bd1c9631bd1c96";

/// The delivered row, decoded.
fn row() -> Value {
    let push: Value = serde_json::from_str(DELIVERED_PUSH).expect("JSON");
    let data = push["message"]["data"].as_str().expect("data");
    let bytes = general_purpose::STANDARD.decode(data).expect("base64");
    serde_json::from_slice(&bytes).expect("row")
}

/// A push carrying `row` as its data, base64-encoded by `engine`.
fn push_with(row: &Value, engine: &impl Engine) -> String {
    edited(DELIVERED_PUSH, |v| {
        set(v, "/message/data", json!(engine.encode(row.to_string())));
    })
}

fn push(row: &Value) -> String {
    push_with(row, &general_purpose::STANDARD)
}

/// The delivered row with `edit` applied.
fn row_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut r = row();
    edit(&mut r);
    r
}

fn firebase(t: Option<&str>, payload: &str, id: &str) -> Result<ProjectorOutcome, ProjectorError> {
    project(
        Provider::Firebase,
        t,
        payload.as_bytes(),
        &event_key("acme", Provider::Firebase, id),
        UnknownTypePolicy::Fail,
    )
}

fn firebase_writes(t: &str, payload: &str, id: &str) -> Vec<ProjectionWrite> {
    match firebase(Some(t), payload, id) {
        Ok(ProjectorOutcome::Writes(w)) => w,
        other => panic!("expected writes, got {other:?}"),
    }
}

#[test]
fn a_delivery_row_keeps_status_platform_app_and_label() {
    let w = only(Provider::Firebase, "MESSAGE_DELIVERED", DELIVERED_PUSH);
    assert_eq!(w.key.unsharded_pk(), "acme#firebase_message");
    assert_eq!(w.key.sk(), MESSAGE_ID);
    assert_eq!(w.version, 1_717_243_200_412);
    assert_eq!(w.rank, 30);
    let f = upserted(&w);
    assert_eq!(f["status"], json!("delivered"));
    assert_eq!(f["error"], Value::Null);
    assert_eq!(f["last_event"], json!("MESSAGE_DELIVERED"));
    assert_eq!(f["sdk_platform"], json!("ANDROID"));
    assert_eq!(f["app_name"], json!("com.example.app"));
    assert_eq!(f["analytics_label"], json!("spring_campaign"));
    assert_eq!(f["instance_id"], json!("fWl8Lr5dRUq3bVmKZf2lQx"));
    assert_eq!(f["project_number"], json!("123456789012"));
    assert_eq!(f["message_type"], json!("DISPLAY_NOTIFICATION"));
}

#[test]
fn every_event_has_its_status_and_rank() {
    let mut cases = vec![(ACCEPTED, "accepted", 10), (DELIVERED, "delivered", 30)];
    cases.extend(ERRORS.iter().map(|e| (*e, "failed", 20)));
    for (event, status, rank) in cases {
        let body = push(&row_with(|r| set(r, "/event", json!(event))));
        let w = firebase_writes(event, &body, "m1");
        assert_eq!(w[0].rank, rank, "{event}");
        let f = upserted(&w[0]);
        assert_eq!(f["status"], json!(status), "{event}");
        let error = if status == "failed" {
            json!(event)
        } else {
            Value::Null
        };
        assert_eq!(f["error"], error, "{event}");
    }
}

#[test]
fn both_base64_alphabets_with_or_without_padding_are_read() {
    // A label that makes standard base64 use '+' and '/' (URL-safe: '-' and '_'), and padding.
    let r = row_with(|r| set(r, "/analytics_label", json!("??>>~~ü")));
    let standard = general_purpose::STANDARD.encode(r.to_string());
    assert!(standard.contains(['+', '/']) && standard.ends_with('='));
    let expected = firebase_writes("MESSAGE_DELIVERED", &push(&r), "m1");
    for engine in [
        general_purpose::URL_SAFE,
        general_purpose::URL_SAFE_NO_PAD,
        general_purpose::STANDARD_NO_PAD,
    ] {
        let body = push_with(&r, &engine);
        assert_eq!(firebase_writes("MESSAGE_DELIVERED", &body, "m1"), expected);
    }
}

#[test]
fn event_times_may_be_rfc3339_or_unix_microseconds() {
    for at in [
        json!("2024-06-01T12:00:00.412345Z"),
        json!(1_717_243_200_412_345_i64),
        json!("1717243200412345"),
    ] {
        let body = push(&row_with(|r| set(r, "/event_timestamp", at.clone())));
        let w = firebase_writes("MESSAGE_DELIVERED", &body, "m1");
        assert_eq!(w[0].version, 1_717_243_200_412, "{at}");
    }
}

#[test]
fn the_rows_own_event_decides_over_the_stored_type() {
    // The stored type came from an attribute that disagrees: the row is what happened.
    let body = push(&row_with(|r| set(r, "/event", json!(ACCEPTED))));
    let w = firebase_writes("MESSAGE_DELIVERED", &body, "m1");
    assert_eq!(upserted(&w[0])["status"], json!("accepted"));
    let w = firebase_writes("anything", &body, "m1");
    assert_eq!(upserted(&w[0])["status"], json!("accepted"));
}

#[test]
fn pushes_that_are_not_delivery_rows_follow_the_unknown_type_policy() {
    let no_data = edited(DELIVERED_PUSH, |v| remove(v, "/message", "data"));
    let empty_data = edited(DELIVERED_PUSH, |v| set(v, "/message/data", json!("")));
    let cases = [
        (
            Some("google.firebase.remoteconfig.v1.updated"),
            no_data,
            "google.firebase.remoteconfig.v1.updated",
        ),
        (Some("x.y"), empty_data, "x.y"),
        (Some("x.y"), push(&json!({"foo": 1})), "x.y"),
        (Some("x.y"), push(&json!([1, 2])), "x.y"),
        (
            Some("x.y"),
            push(&row_with(|r| set(r, "/event", json!("MESSAGE_OPENED")))),
            "MESSAGE_OPENED",
        ),
    ];
    for (t, body, named) in cases {
        let ignored = project(
            Provider::Firebase,
            t,
            body.as_bytes(),
            &acme(Provider::Firebase),
            UnknownTypePolicy::Ignore,
        );
        assert_eq!(
            ignored,
            Ok(ProjectorOutcome::Ignored {
                reason: format!("unknown firebase event type {named}")
            })
        );
        assert!(matches!(
            firebase(t, &body, "m1"),
            Err(ProjectorError::Permanent(_))
        ));
    }
}

#[test]
fn schema_mismatches_are_permanent_and_name_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            edited(DELIVERED_PUSH, |v| set(v, "/message/data", json!("***"))),
            "MESSAGE_DELIVERED: message.data is not base64",
        ),
        (
            edited(DELIVERED_PUSH, |v| {
                set(
                    v,
                    "/message/data",
                    json!(general_purpose::STANDARD.encode("not json")),
                )
            }),
            "MESSAGE_DELIVERED: message.data is not JSON",
        ),
        (
            edited(DELIVERED_PUSH, |v| set(v, "/message/data", json!(42))),
            "MESSAGE_DELIVERED: message.data is not a string",
        ),
        (
            edited(DELIVERED_PUSH, |v| remove(v, "", "message")),
            "MESSAGE_DELIVERED: message is missing",
        ),
        (
            push(&row_with(|r| remove(r, "", "message_id"))),
            "MESSAGE_DELIVERED: message.data.message_id is missing",
        ),
        (
            push(&row_with(|r| set(r, "/message_id", json!(12)))),
            "MESSAGE_DELIVERED: message.data.message_id is not a string",
        ),
        (
            push(&row_with(|r| set(r, "/event_timestamp", json!("noon")))),
            "MESSAGE_DELIVERED: message.data.event_timestamp is not an RFC 3339 time or Unix \
             microseconds",
        ),
        (
            push(&row_with(|r| set(r, "/event_timestamp", json!(-1)))),
            "MESSAGE_DELIVERED: message.data.event_timestamp is not an RFC 3339 time or Unix \
             microseconds",
        ),
        (
            push(&row_with(|r| remove(r, "", "event_timestamp"))),
            "MESSAGE_DELIVERED: message.data.event_timestamp is missing",
        ),
        (
            push(&row_with(|r| set(r, "/sdk_platform", json!(1)))),
            "MESSAGE_DELIVERED: message.data.sdk_platform is not a string",
        ),
        (
            push(&row_with(|r| set(r, "/project_number", json!([1])))),
            "MESSAGE_DELIVERED: message.data.project_number is not a number",
        ),
        (
            "[]".to_owned(),
            "MESSAGE_DELIVERED: the payload is not a JSON object",
        ),
    ];
    for (payload, expected) in cases {
        let msg = permanent(Provider::Firebase, "MESSAGE_DELIVERED", &payload);
        assert_eq!(msg, format!("firebase {expected}"));
    }
}

proptest! {
    #[test]
    fn a_message_ends_in_its_latest_status_in_any_arrival_order(
        picks in prop::collection::vec((0usize..3, 0usize..ERRORS.len(), 0i64..2), 1..8),
        seed in any::<u64>(),
    ) {
        // Places in the life: accepted, an error, delivered.
        let events: Vec<Vec<ProjectionWrite>> = picks
            .iter()
            .enumerate()
            .map(|(i, (place, error, at))| {
                let event = [ACCEPTED, ERRORS[*error], DELIVERED][*place];
                let body = push(&row_with(|r| {
                    set(r, "/event", json!(event));
                    set(r, "/event_timestamp", json!(1_717_243_200_000_000_i64 + at * 1000));
                }));
                firebase_writes(event, &body, &format!("m-{i:02}"))
            })
            .collect();
        let places: Vec<(usize, i64)> = picks.iter().map(|(p, _, at)| (*p, *at)).collect();
        let key = events[0][0].key.clone();
        let state = fields_after_arrival(&events, seed, &key);
        let expected = ["accepted", "failed", "delivered"][latest_place(&places)];
        prop_assert_eq!(&state["status"], &json!(expected));
        // The very event is the latest one: errors of one place differ in name.
        let (i, _) = places
            .iter()
            .enumerate()
            .max_by_key(|(i, (place, at))| (*at, *place, *i))
            .unwrap_or((0, &(0, 0)));
        let (place, error, _) = picks[i];
        let event = [ACCEPTED, ERRORS[error], DELIVERED][place];
        prop_assert_eq!(&state["last_event"], &json!(event));
    }
}
