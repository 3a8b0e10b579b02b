//! The ingress handler against DynamoDB and SQS in the emulator.

use serde_json::json;
use shared::{
    aws::{DynamoEventStore, SqsEventQueue},
    clock::ManualClock,
    ids::TenantId,
    ingress::{Ingress, IngressSettings},
    ports::EventStore,
    provider::Provider,
    record::{EventKey, EventStatus, Verification},
    secret::{Secret, SecretSlot},
    tenant::{DEFAULT_ROTATION_GRACE, ProviderConfig, UnsignedPolicy},
};

use crate::support::*;

const BODY: &[u8] = br#"{"id":"evt_it_1","object":"event","type":"invoice.paid","created":1699999990,"data":{"object":{"customer":"cus_1"}}}"#;

async fn stack_with_stripe() -> Stack {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    stack
}

fn stripe_request(secret: &str, body: &[u8], when: u64) -> lambda_http::Request {
    let mut headers = sign(&stripe(), secret, body, when, "");
    headers.push(("x-request-id".into(), "req-it-1".into()));
    request("acme", "stripe", None, &headers, body)
}

#[tokio::test]
async fn a_valid_delivery_is_stored_enqueued_then_acknowledged() {
    let stack = stack_with_stripe().await;
    let ingress = stack.ingress();

    let (status, body) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;

    assert_eq!(
        (status, body),
        (200, json!({"received": true, "id": "evt_it_1"}))
    );
    let record = stack
        .store()
        .get(&key("evt_it_1"))
        .await
        .expect("read")
        .expect("stored");
    // Written once, its pointer already on the queue.
    assert_eq!(record.status, EventStatus::Received);
    assert_eq!(record.payload, BODY);
    assert_eq!(
        record.verification,
        Verification::Verified(SecretSlot::Current)
    );
    assert_eq!(
        record.correlation.client_request_id.as_deref(),
        Some("req-it-1")
    );
    assert_eq!(record.event_type.as_deref(), Some("invoice.paid"));
    let messages = stack.drain_queue().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tenant"], "acme");
    assert_eq!(messages[0]["event_id"], "evt_it_1");
    assert_eq!(messages[0]["client_request_id"], "req-it-1");
}

#[tokio::test]
async fn a_duplicate_is_200_and_stores_nothing_more() {
    let stack = stack_with_stripe().await;
    let ingress = stack.ingress();
    call(&ingress, stripe_request(SECRET, BODY, NOW)).await;

    let (status, body) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;

    assert_eq!(status, 200);
    assert_eq!(body["duplicate"], true);
    // Each delivery's pointer goes before its put; the second names the same event, which the
    // processor finishes once.
    assert_eq!(stack.drain_queue().await.len(), 2);
}

#[tokio::test]
async fn the_same_id_with_another_payload_is_409_and_keeps_the_original() {
    let stack = stack_with_stripe().await;
    let ingress = stack.ingress();
    call(&ingress, stripe_request(SECRET, BODY, NOW)).await;
    let forged = br#"{"id":"evt_it_1","object":"event","type":"invoice.paid","created":1699999990,"data":{"object":{"customer":"cus_2"}}}"#;

    let (status, _) = call(&ingress, stripe_request(SECRET, forged, NOW)).await;

    assert_eq!(status, 409);
    let record = stack
        .store()
        .get(&key("evt_it_1"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.payload, BODY);
    // Every pointer names the original event: nothing of the forged body is kept.
    for message in stack.drain_queue().await {
        assert_eq!(message["event_id"], "evt_it_1");
    }
}

#[tokio::test]
async fn bad_stale_and_future_signatures_are_401_and_store_nothing() {
    let stack = stack_with_stripe().await;
    let ingress = stack.ingress();

    for (secret, when) in [
        ("whsec_wrong", NOW),
        (SECRET, NOW - 301),
        (SECRET, NOW + 301),
    ] {
        let (status, body) = call(&ingress, stripe_request(secret, BODY, when)).await;
        assert_eq!(
            (status, body),
            (401, json!({"error": "invalid signature"})),
            "{secret} at {when}"
        );
    }
    let (status, _) = call(&ingress, request("acme", "stripe", None, &[], BODY)).await;
    assert_eq!(status, 401);

    assert!(
        stack
            .store()
            .get(&key("evt_it_1"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn during_rotation_both_secrets_verify_and_the_record_says_which() {
    let stack = Stack::new().await;
    let mut config = stripe();
    config.rotate(
        Secret::new("whsec_it_next"),
        at(NOW),
        DEFAULT_ROTATION_GRACE,
    );
    stack.add_tenant(&config).await;
    let ingress = stack.ingress();

    let (status, _) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;
    assert_eq!(status, 200);
    let second =
        br#"{"id":"evt_it_2","object":"event","type":"invoice.paid","created":1699999991}"#;
    let (status, _) = call(&ingress, stripe_request("whsec_it_next", second, NOW)).await;
    assert_eq!(status, 200);

    let first = stack
        .store()
        .get(&key("evt_it_1"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        first.verification,
        Verification::Verified(SecretSlot::Previous)
    );
    let second = stack
        .store()
        .get(&key("evt_it_2"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        second.verification,
        Verification::Verified(SecretSlot::Current)
    );
}

#[tokio::test]
async fn unsigned_deliveries_pass_only_where_allowed_and_on_the_token_route() {
    let stack = stack_with_stripe().await;
    let mut generic = ProviderConfig::new(
        TenantId::parse("acme").expect("tenant"),
        Provider::Generic,
        Secret::new("gen_it"),
    );
    let token = "3f0c9a3be1f84c7d9e6b2a5c4d3e2f1a3f0c9a3be1f84c7d9e6b2a5c4d3e2f1a";
    generic.unsigned = UnsignedPolicy::Allow {
        token_digest: shared::tenant::TokenDigest::of(token),
    };
    stack.add_tenant(&generic).await;
    let ingress = stack.ingress();
    let body: &[u8] = br#"{"id":"evt_unsigned_1","type":"order.created"}"#;

    let (status, _) = call(&ingress, request("acme", "generic", Some(token), &[], body)).await;
    assert_eq!(status, 200);
    let stored = stack
        .store()
        .get(&EventKey {
            provider: Provider::Generic,
            ..key("evt_unsigned_1")
        })
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.verification, Verification::Unsigned);

    // Refused: no token, a wrong token, and a tenant/provider that never allowed unsigned.
    assert_eq!(
        call(&ingress, request("acme", "generic", None, &[], body))
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            &ingress,
            request("acme", "generic", Some("nope"), &[], body)
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(&ingress, request("acme", "stripe", Some(token), &[], BODY))
            .await
            .0,
        401
    );
    assert_eq!(stack.drain_queue().await.len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_unknown_tenants_answer_like_a_bad_signature() {
    let stack = stack_with_stripe().await;
    let ingress = Ingress::new(
        stack.store(),
        stack.queue(),
        stack.directory(),
        ManualClock::at_unix(NOW),
        IngressSettings {
            max_body_bytes: 64,
            ..IngressSettings::default()
        },
    );

    let (status, _) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;
    assert_eq!(status, 413);
    let small = br#"{"id":"evt_s"}"#;
    let headers = sign(&stripe(), SECRET, small, NOW, "");
    let (status, body) = call(&ingress, request("globex", "stripe", None, &headers, small)).await;
    assert_eq!((status, body), (401, json!({"error": "invalid signature"})));
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn an_sqs_outage_is_503_with_nothing_stored_and_the_provider_retry_stores_it_once() {
    let stack = stack_with_stripe().await;
    let (_, dead_sqs) = unreachable_clients().await;
    let during_outage = Ingress::new(
        stack.store(),
        SqsEventQueue::new(dead_sqs, stack.resources.events_queue_url()),
        stack.directory(),
        ManualClock::at_unix(NOW),
        IngressSettings::default(),
    );

    let (status, body) = call(&during_outage, stripe_request(SECRET, BODY, NOW)).await;
    assert_eq!(
        (status, body),
        (503, json!({"error": "temporarily unavailable"}))
    );
    // The pointer goes first: without it, nothing is stored.
    assert_eq!(stack.store().get(&key("evt_it_1")).await, Ok(None));

    // The provider retries once SQS is back: stored once, a pointer per delivery.
    let recovered = stack.ingress();
    assert_eq!(
        call(&recovered, stripe_request(SECRET, BODY, NOW)).await.0,
        200
    );
    assert_eq!(
        call(&recovered, stripe_request(SECRET, BODY, NOW)).await.0,
        200
    );
    let record = stack
        .store()
        .get(&key("evt_it_1"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.status, EventStatus::Received);
    assert_eq!(stack.drain_queue().await.len(), 2);
}

#[tokio::test]
async fn a_dynamodb_outage_is_503_and_its_pointer_names_nothing_stored() {
    let stack = stack_with_stripe().await;
    let (dead_dynamodb, _) = unreachable_clients().await;
    let ingress = Ingress::new(
        DynamoEventStore::new(dead_dynamodb, stack.resources.events_table()),
        stack.queue(),
        stack.directory(),
        ManualClock::at_unix(NOW),
        IngressSettings::default(),
    );

    let (status, _) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;

    assert_eq!(status, 503);
    // The pointer went first; the processor drops it once no ingress can still be writing
    // its record.
    assert_eq!(stack.drain_queue().await.len(), 1);
    assert_eq!(stack.store().get(&key("evt_it_1")).await, Ok(None));
}

/// The raw item under `pk` in the events table, as a GetItem returns it.
async fn raw_item(
    stack: &Stack,
    pk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    stack
        .dynamodb
        .get_item()
        .table_name(stack.resources.events_table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}

#[tokio::test]
async fn an_erased_event_loses_its_payload_and_stays_a_duplicate() {
    use shared::{
        erasure::{ErasureError, erase_event},
        ports::Erasure,
    };
    // GIVEN acme's event evt_it_1 (inline) and a large one kept in S3, both delivered
    let stack = stack_with_stripe().await;
    let ingress = stack.ingress();
    assert_eq!(
        call(&ingress, stripe_request(SECRET, BODY, NOW)).await.0,
        200
    );
    let mut large: serde_json::Value = serde_json::from_slice(&invoice("evt_big")).expect("json");
    large["data"]["object"]["description"] = incompressible(40 * 1024).into();
    let large = serde_json::to_vec(&large).expect("json");
    let headers = sign(&stripe(), SECRET, &large, NOW, "");
    let (status, answer) = call(&ingress, request("acme", "stripe", None, &headers, &large)).await;
    assert_eq!(status, 200, "{answer}");
    let location = stack
        .store()
        .get(&key("evt_big"))
        .await
        .expect("read")
        .expect("stored")
        .payload_location
        .expect("kept in S3");
    let store = stack.store();
    let erasure = Erasure {
        at: at(NOW + 60),
        actor: "dpo".into(),
    };

    // WHEN another tenant (and ids reaching past the key) ask to erase acme's event
    for (tenant, id) in [
        ("other", "evt_it_1"),
        ("acme", "acme#stripe#evt_it_1"),
        ("acme", "../acme/stripe/evt_it_1"),
        ("other", "../acme#stripe#evt_it_1"),
    ] {
        let key = EventKey {
            tenant: TenantId::parse(tenant).expect("tenant"),
            provider: Provider::Stripe,
            event_id: shared::ids::EventId::parse(id).expect("id"),
        };
        let refused = erase_event(&store, &key, &erasure, false).await;
        // THEN nothing is found and nothing changes
        assert!(
            matches!(refused, Err(ErasureError::NotFound { .. })),
            "{tenant}/{id}: {refused:?}"
        );
    }
    let before = raw_item(&stack, "acme#stripe#evt_it_1")
        .await
        .expect("item");
    assert!(before.contains_key("payload") || before.contains_key("payload_z"));

    // WHEN acme's operator erases both
    for id in ["evt_it_1", "evt_big"] {
        let report = erase_event(&store, &key(id), &erasure, false)
            .await
            .expect("erased");
        assert_eq!((report.erased, report.audited), (1, true), "{id}");
    }

    // THEN no payload attribute is left, the hash and status are, and the S3 object is gone
    for pk in ["acme#stripe#evt_it_1", "acme#stripe#evt_big"] {
        let item = raw_item(&stack, pk).await.expect("tombstone kept");
        for gone in ["payload", "payload_z", "payload_location"] {
            assert!(!item.contains_key(gone), "{pk}: {gone}");
        }
        assert!(item.contains_key("payload_hash") && item.contains_key("erased_at"));
        assert_eq!(item["erased_by"].as_s().expect("S"), "dpo");
    }
    assert_eq!(
        before["payload_hash"],
        raw_item(&stack, "acme#stripe#evt_it_1")
            .await
            .expect("item")["payload_hash"]
    );
    let object = stack
        .s3
        .get_object()
        .bucket(stack.resources.payloads_bucket())
        .key(&location)
        .send()
        .await;
    assert!(object.is_err(), "the offloaded payload is deleted");
    let tomb = store
        .get(&key("evt_big"))
        .await
        .expect("read")
        .expect("kept");
    assert!(tomb.payload.is_empty() && tomb.is_erased() && tomb.payload_location.is_none());

    // AND a redelivery of the same bytes is still a duplicate, other bytes still a conflict
    let (status, body) = call(&ingress, stripe_request(SECRET, BODY, NOW)).await;
    assert_eq!((status, body["duplicate"].clone()), (200, json!(true)));
    let (status, _) = call(&ingress, request("acme", "stripe", None, &headers, &large)).await;
    assert_eq!(status, 200);
    let forged = br#"{"id":"evt_it_1","object":"event","type":"invoice.paid","created":1699999990,"data":{"object":{"customer":"cus_2"}}}"#;
    assert_eq!(
        call(&ingress, stripe_request(SECRET, forged, NOW)).await.0,
        409
    );
    let after = raw_item(&stack, "acme#stripe#evt_it_1")
        .await
        .expect("item");
    assert!(!after.contains_key("payload") && !after.contains_key("payload_z"));
}
