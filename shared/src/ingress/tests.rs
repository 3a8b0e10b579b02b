//! The ingress use case on in-memory adapters: one test per outcome, GIVEN / WHEN / THEN.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::*;
use crate::record::EventStatus;
use crate::{
    clock::ManualClock,
    memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
    record::Verification,
    secret::{Secret, SecretSlot},
    tenant::{DEFAULT_ROTATION_GRACE, ProviderConfig, TokenDigest, UnsignedPolicy},
};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "whsec_stripe_test";
const BODY: &[u8] =
    br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1699999990}"#;

type MemoryIngress = Ingress<MemoryEventStore, MemoryQueue, MemoryDirectory, ManualClock>;

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn stripe_config() -> ProviderConfig {
    ProviderConfig::new(acme(), Provider::Stripe, Secret::new(SECRET))
}

fn ingress_with(configs: Vec<ProviderConfig>) -> MemoryIngress {
    Ingress::new(
        MemoryEventStore::new(),
        MemoryQueue::new(),
        MemoryDirectory::with(configs),
        ManualClock::at_unix(NOW),
        IngressSettings::default(),
    )
}

fn ingress() -> MemoryIngress {
    ingress_with(vec![stripe_config()])
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn signed(config: &ProviderConfig, secret: &str, body: &[u8], when: u64) -> HeaderMap {
    let pairs = config
        .verifier()
        .scheme
        .sign(body, &Secret::new(secret), at(when), "evt_1")
        .expect("sign");
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(&value).expect("value"),
        );
    }
    headers
}

fn delivery<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        tenant: "acme",
        provider: "stripe",
        path_token: None,
        headers,
        body,
        correlation: Correlation {
            request_id: Some("apigw-1".into()),
            client_request_id: Some("req-1".into()),
            trace: None,
        },
        host: Some("hooks.example.com"),
        method: "POST",
        path_and_query: Some("/webhooks/acme/stripe"),
    }
}

fn evt(id: &str) -> EventId {
    EventId::parse(id).expect("id")
}

#[tokio::test]
async fn a_valid_delivery_is_stored_enqueued_and_acknowledged() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);

    let outcome = ingress.handle(delivery(&headers, BODY)).await;

    assert_eq!(
        outcome,
        Outcome::Accepted {
            event_id: evt("evt_1")
        }
    );
    assert_eq!(outcome.status_code(), 200);
    assert_eq!(outcome.body(), json!({"received": true, "id": "evt_1"}));
    let records = ingress.store.all();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    // Written once: its pointer went to the queue before it.
    assert_eq!(record.status, EventStatus::Received);
    assert_eq!(record.payload, BODY);
    assert_eq!(record.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(record.provider_created_at, Some(at(1_699_999_990)));
    assert_eq!(
        record.verification,
        Verification::Verified(SecretSlot::Current)
    );
    assert_eq!(
        record.correlation.client_request_id.as_deref(),
        Some("req-1")
    );
    let sent = ingress.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].tenant.as_str(), sent[0].event_id.as_str()),
        ("acme", "evt_1")
    );
    assert_eq!(sent[0].request_id.as_deref(), Some("apigw-1"));
}

#[tokio::test]
async fn a_duplicate_is_acknowledged_and_stores_nothing_twice() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    ingress.handle(delivery(&headers, BODY)).await;

    let outcome = ingress.handle(delivery(&headers, BODY)).await;

    assert_eq!(
        outcome,
        Outcome::Duplicate {
            event_id: evt("evt_1")
        }
    );
    assert_eq!(outcome.status_code(), 200);
    // Its pointer was sent before the store said duplicate: the processor finds the event
    // finished (or finishes it) and changes nothing.
    assert_eq!(ingress.queue.sent().len(), 2);
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn the_same_id_with_other_bytes_is_a_conflict_and_changes_nothing() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    ingress.handle(delivery(&headers, BODY)).await;
    let other =
        br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1699999999,"x":1}"#;
    let other_headers = signed(&stripe_config(), SECRET, other, NOW);

    let outcome = ingress.handle(delivery(&other_headers, other)).await;

    assert_eq!(
        outcome,
        Outcome::Conflict {
            event_id: evt("evt_1")
        }
    );
    assert_eq!(outcome.status_code(), 409);
    assert_eq!(ingress.store.all()[0].payload, BODY);
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn bad_signatures_and_windows_are_401_and_store_nothing() {
    let ingress = ingress();
    let cases = [
        signed(&stripe_config(), "whsec_wrong", BODY, NOW),
        signed(&stripe_config(), SECRET, BODY, NOW - 301),
        signed(&stripe_config(), SECRET, BODY, NOW + 301),
        HeaderMap::new(),
    ];
    for headers in &cases {
        let outcome = ingress.handle(delivery(headers, BODY)).await;
        assert_eq!(outcome.status_code(), 401, "{outcome:?}");
        assert_eq!(outcome.body(), json!({"error": "invalid signature"}));
    }
    let mut tampered = BODY.to_vec();
    tampered.extend_from_slice(b" ");
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    assert_eq!(
        ingress
            .handle(delivery(&headers, &tampered))
            .await
            .status_code(),
        401
    );
    assert!(ingress.store.all().is_empty());
    assert!(ingress.queue.sent().is_empty());
}

#[tokio::test]
async fn the_previous_secret_works_until_it_expires() {
    let mut config = stripe_config();
    config.rotate(Secret::new("whsec_new"), at(NOW), DEFAULT_ROTATION_GRACE);
    let ingress = ingress_with(vec![config.clone()]);
    let by_old = signed(&config, SECRET, BODY, NOW);

    assert!(matches!(
        ingress.handle(delivery(&by_old, BODY)).await,
        Outcome::Accepted { .. }
    ));
    assert_eq!(
        ingress.store.all()[0].verification,
        Verification::Verified(SecretSlot::Previous)
    );

    let later = NOW + DEFAULT_ROTATION_GRACE.as_secs() + 1;
    ingress.clock.set(at(later));
    let body2 = br#"{"id":"evt_2","type":"invoice.paid","created":1}"#;
    let old_again = signed(&config, SECRET, body2, later);
    assert_eq!(
        ingress
            .handle(delivery(&old_again, body2))
            .await
            .status_code(),
        401
    );
    let by_new = signed(&config, "whsec_new", body2, later);
    assert!(matches!(
        ingress.handle(delivery(&by_new, body2)).await,
        Outcome::Accepted { .. }
    ));
}

fn unsigned_generic() -> ProviderConfig {
    let mut config = ProviderConfig::new(acme(), Provider::Generic, Secret::new("gen_secret"));
    config.unsigned = UnsignedPolicy::Allow {
        token_digest: TokenDigest::of("tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    };
    config
}

fn generic_delivery<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
    token: Option<&'a str>,
) -> Delivery<'a> {
    Delivery {
        provider: "generic",
        path_token: token,
        ..delivery(headers, body)
    }
}

#[tokio::test]
async fn unsigned_is_accepted_only_on_the_token_route_of_a_tenant_that_allowed_it() {
    let ingress = ingress_with(vec![unsigned_generic(), stripe_config()]);
    let body: &[u8] = br#"{"id":"evt_u1","type":"ping"}"#;
    let none = HeaderMap::new();
    let token = Some("tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0");

    let accepted = ingress.handle(generic_delivery(&none, body, token)).await;
    assert_eq!(
        accepted,
        Outcome::Accepted {
            event_id: evt("evt_u1")
        }
    );
    assert_eq!(ingress.store.all()[0].verification, Verification::Unsigned);

    // Without the token, or with a wrong one, the delivery must be signed / the route is unknown.
    assert_eq!(
        ingress
            .handle(generic_delivery(&none, body, None))
            .await
            .status_code(),
        401
    );
    let wrong = Some("tok_9f8e7d6c5b4a39281706f5e4d3c2b1a1");
    assert_eq!(
        ingress.handle(generic_delivery(&none, body, wrong)).await,
        Outcome::UnknownRoute(UnknownRoute::UnknownToken)
    );

    // A signature that is present is verified, never ignored.
    let bad = signed(&unsigned_generic(), "wrong", body, NOW);
    assert_eq!(
        ingress
            .handle(generic_delivery(&bad, body, token))
            .await
            .status_code(),
        401
    );

    // A tenant that did not allow unsigned has no token route at all.
    let stripe_token = Delivery {
        path_token: token,
        ..delivery(&none, BODY)
    };
    assert_eq!(
        ingress.handle(stripe_token).await,
        Outcome::UnknownRoute(UnknownRoute::UnknownToken)
    );
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413_before_any_lookup() {
    let ingress = ingress();
    let body = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let headers = signed(&stripe_config(), SECRET, &body, NOW);

    let outcome = ingress.handle(delivery(&headers, &body)).await;

    assert_eq!(
        outcome,
        Outcome::PayloadTooLarge {
            limit: DEFAULT_MAX_BODY_BYTES
        }
    );
    assert_eq!(outcome.status_code(), 413);
    assert_eq!(ingress.directory.reads(), 0);
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn unknown_tenants_and_providers_are_answered_exactly_like_a_bad_signature() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    let bad_signature = ingress
        .handle(delivery(
            &signed(&stripe_config(), "wrong", BODY, NOW),
            BODY,
        ))
        .await;
    for (tenant, provider, why) in [
        ("globex", "stripe", UnknownRoute::UnknownTenant),
        ("acme", "github", UnknownRoute::UnknownTenant),
        ("acme", "no-such-provider", UnknownRoute::UnknownProvider),
        ("ACME", "stripe", UnknownRoute::InvalidTenant),
        ("a#b", "stripe", UnknownRoute::InvalidTenant),
    ] {
        let d = Delivery {
            tenant,
            provider,
            ..delivery(&headers, BODY)
        };
        let outcome = ingress.handle(d).await;
        assert_eq!(outcome, Outcome::UnknownRoute(why), "{tenant}/{provider}");
        // The same status, body and headers as a bad signature: nothing to enumerate by.
        assert_eq!(outcome.status_code(), bad_signature.status_code());
        assert_eq!(outcome.body(), bad_signature.body());
        assert_eq!(outcome.retry_after(), bad_signature.retry_after());
    }
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn a_body_without_an_event_id_is_400_with_a_specific_message() {
    let ingress = ingress();
    for body in [
        &b"{not json"[..],
        br#"{"type":"invoice.paid"}"#,
        br#"{"id":""}"#,
    ] {
        let headers = signed(&stripe_config(), SECRET, body, NOW);
        let outcome = ingress.handle(delivery(&headers, body)).await;
        assert_eq!(outcome.status_code(), 400, "{outcome:?}");
        assert!(
            outcome.body()["error"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn a_queue_outage_is_503_with_nothing_stored_and_the_provider_retry_stores_it_once() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    ingress.queue.set_unavailable(true);

    let outcome = ingress.handle(delivery(&headers, BODY)).await;

    assert_eq!(outcome, Outcome::Unavailable);
    assert_eq!(outcome.retry_after(), Some(5));
    assert!(ingress.store.all().is_empty());

    ingress.queue.set_unavailable(false);
    let retry = ingress.handle(delivery(&headers, BODY)).await;
    assert_eq!(
        retry,
        Outcome::Accepted {
            event_id: evt("evt_1")
        }
    );
    assert_eq!(ingress.queue.sent().len(), 1);
    assert_eq!(ingress.store.all()[0].status, EventStatus::Received);
    let again = ingress.handle(delivery(&headers, BODY)).await;
    assert_eq!(
        again,
        Outcome::Duplicate {
            event_id: evt("evt_1")
        }
    );
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn a_store_outage_is_503_and_its_pointer_names_nothing_stored() {
    let ingress = ingress();
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    ingress.store.set_unavailable(true);

    assert_eq!(
        ingress.handle(delivery(&headers, BODY)).await,
        Outcome::Unavailable
    );
    // The pointer went first; with no record behind it, the processor drops it once the
    // ingress can no longer be writing one (the provider retries the delivery meanwhile).
    assert_eq!(ingress.queue.sent().len(), 1);
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn a_directory_outage_is_503() {
    let ingress = ingress();
    ingress.directory.set_unavailable(true);
    let headers = signed(&stripe_config(), SECRET, BODY, NOW);
    assert_eq!(
        ingress.handle(delivery(&headers, BODY)).await.status_code(),
        503
    );
}

#[tokio::test]
async fn an_unusable_tenant_secret_is_our_fault_503_not_401() {
    let config = ProviderConfig::new(acme(), Provider::Clerk, Secret::new("whsec_!!!"));
    let ingress = ingress_with(vec![config]);
    let mut headers = HeaderMap::new();
    headers.insert("svix-id", HeaderValue::from_static("msg_1"));
    headers.insert("svix-timestamp", HeaderValue::from_static("1700000000"));
    headers.insert(
        "svix-signature",
        HeaderValue::from_static("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    );
    let d = Delivery {
        provider: "clerk",
        ..delivery(&headers, b"{}")
    };
    let outcome = ingress.handle(d).await;
    assert_eq!(outcome.status_code(), 503);
    assert!(ingress.store.all().is_empty());
}

// --- providers whose signatures need more than a shared secret ---------------------------

fn header_map(pairs: Vec<(String, String)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(&value).expect("value"),
        );
    }
    headers
}

fn config_for(provider: Provider, secret: &str) -> ProviderConfig {
    ProviderConfig::new(
        TenantId::parse("acme").expect("tenant"),
        provider,
        Secret::new(secret),
    )
}

#[tokio::test]
async fn slacks_url_verification_is_answered_with_its_challenge_and_stored_nowhere() {
    // GIVEN Slack's Request URL check, signed with the app's signing secret
    let slack = config_for(Provider::Slack, "slack_signing_secret");
    let ingress = ingress_with(vec![slack.clone()]);
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let headers = signed(&slack, "slack_signing_secret", body, NOW);

    // WHEN it arrives
    let outcome = ingress
        .handle(Delivery {
            provider: "slack",
            ..delivery(&headers, body)
        })
        .await;

    // THEN the challenge goes back, 200, and nothing is stored or enqueued
    assert_eq!(outcome.status_code(), 200);
    assert_eq!(
        outcome.body(),
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert!(ingress.store.all().is_empty());
    assert!(ingress.queue.sent().is_empty());

    // AND an unsigned (or mis-signed) challenge is refused like any other delivery
    let forged = signed(&slack, "someone_else", body, NOW);
    let refused = ingress
        .handle(Delivery {
            provider: "slack",
            ..delivery(&forged, body)
        })
        .await;
    assert_eq!(refused.status_code(), 401);
}

#[tokio::test]
async fn twilio_is_verified_over_the_url_it_called_rebuilt_from_the_request() {
    let twilio = config_for(Provider::Twilio, "twilio_auth_token");
    let mut behind_domain = twilio.clone();
    behind_domain.tenant = TenantId::parse("globex").expect("tenant");
    behind_domain.public_base_url = Some("https://hooks.globex.example/".into());
    let ingress = ingress_with(vec![twilio, behind_domain]);
    let body = b"AccountSid=AC1&MessageSid=SM1&MessageStatus=delivered&To=%2B15550100";

    for (tenant, signed_url, host) in [
        // The request's own host.
        (
            "acme",
            "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/acme/twilio?x=1",
            "abc.execute-api.us-east-1.amazonaws.com",
        ),
        // A custom domain in front: the tenant's public base URL, whatever host API
        // Gateway saw.
        (
            "globex",
            "https://hooks.globex.example/webhooks/globex/twilio?x=1",
            "abc.execute-api.us-east-1.amazonaws.com",
        ),
    ] {
        let url = RequestUrl::parse(signed_url).expect("url");
        let headers = header_map(crate::verify::twilio::sign(
            &url,
            body,
            &Secret::new("twilio_auth_token"),
        ));
        let path = format!("/webhooks/{tenant}/twilio?x=1");
        let outcome = ingress
            .handle(Delivery {
                tenant,
                provider: "twilio",
                host: Some(host),
                method: "POST",
                path_and_query: Some(&path),
                ..delivery(&headers, body)
            })
            .await;
        assert!(
            matches!(outcome, Outcome::Accepted { ref event_id } if event_id.as_str() == "SM1:delivered"),
            "{tenant}: {outcome:?}"
        );

        // Signed for another URL (a replay to another route): refused.
        let elsewhere = format!("/webhooks/{tenant}/twilio?x=2");
        let outcome = ingress
            .handle(Delivery {
                tenant,
                provider: "twilio",
                host: Some(host),
                method: "POST",
                path_and_query: Some(&elsewhere),
                ..delivery(&headers, body)
            })
            .await;
        assert_eq!(outcome.status_code(), 401, "{tenant}");
    }
}

#[tokio::test]
async fn circle_is_verified_with_the_tenants_public_keys_by_id() {
    use aws_lc_rs::{
        encoding::AsDer,
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
    };
    use base64::{Engine, engine::general_purpose::STANDARD};

    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("pair");
    let public = STANDARD.encode(pair.public_key().as_der().expect("der").as_ref());
    let mut circle = config_for(Provider::Circle, "");
    circle.public_keys =
        crate::verify::PublicKeys::new([crate::verify::PublicKey::new("key-1", public)]);
    let ingress = ingress_with(vec![circle]);
    let body = br#"{"notificationId":"n-1","notificationType":"payments","version":2}"#;

    let headers =
        header_map(crate::verify::circle::sign(body, pkcs8.as_ref(), "key-1").expect("signed"));
    let outcome = ingress
        .handle(Delivery {
            provider: "circle",
            ..delivery(&headers, body)
        })
        .await;
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");

    let unknown =
        header_map(crate::verify::circle::sign(body, pkcs8.as_ref(), "key-9").expect("signed"));
    let outcome = ingress
        .handle(Delivery {
            provider: "circle",
            ..delivery(&unknown, br#"{"notificationId":"n-2"}"#)
        })
        .await;
    assert_eq!(outcome.status_code(), 401);
}

#[tokio::test]
async fn paypal_without_a_certificate_checker_is_a_503_never_an_acceptance() {
    use base64::Engine;
    let mut paypal = config_for(Provider::PayPal, "");
    paypal.paypal_webhook_id = Some("WH-1".into());
    let ingress = ingress_with(vec![paypal]);
    let headers = header_map(vec![
        ("paypal-transmission-id".into(), "t-1".into()),
        (
            "paypal-transmission-time".into(),
            "2023-11-14T22:13:20Z".into(),
        ),
        // A signature of RSA-2048's length: well formed, so only the missing checker refuses.
        (
            "paypal-transmission-sig".into(),
            base64::engine::general_purpose::STANDARD.encode([7u8; 256]),
        ),
        ("paypal-auth-algo".into(), "SHA256withRSA".into()),
        (
            "paypal-cert-url".into(),
            "https://api.paypal.com/v1/notifications/certs/CERT-1".into(),
        ),
    ]);
    let outcome = ingress
        .handle(Delivery {
            provider: "paypal",
            ..delivery(&headers, br#"{"id":"WH-EVT-1"}"#)
        })
        .await;
    assert_eq!(outcome.status_code(), 503);
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn a_captured_delivery_replayed_under_a_fresh_id_is_a_duplicate_of_the_first() {
    // GIVEN a GitHub delivery (its id header is not signed) stored once
    let github = config_for(Provider::GitHub, "gh_secret");
    let ingress = ingress_with(vec![github.clone()]);
    let body = br#"{"action":"opened","number":7}"#;
    let mut headers = signed(&github, "gh_secret", body, NOW);
    headers.insert("x-github-delivery", HeaderValue::from_static("d-first"));
    headers.insert("x-github-event", HeaderValue::from_static("pull_request"));
    let first = ingress
        .handle(Delivery {
            provider: "github",
            ..delivery(&headers, body)
        })
        .await;
    assert!(matches!(first, Outcome::Accepted { .. }), "{first:?}");

    // WHEN someone replays the same signed bytes with a fresh delivery id
    headers.insert("x-github-delivery", HeaderValue::from_static("d-forged"));
    let replayed = ingress
        .handle(Delivery {
            provider: "github",
            ..delivery(&headers, body)
        })
        .await;

    // THEN it is the first one's duplicate: nothing new is stored or enqueued
    assert_eq!(
        replayed,
        Outcome::Duplicate {
            event_id: evt("d-first")
        }
    );
    assert_eq!(ingress.store.all().len(), 1);
    assert_eq!(ingress.queue.sent().len(), 1);

    // AND other content under a fresh id is a new event
    let other = br#"{"action":"closed","number":7}"#;
    let mut headers = signed(&github, "gh_secret", other, NOW);
    headers.insert("x-github-delivery", HeaderValue::from_static("d-second"));
    let second = ingress
        .handle(Delivery {
            provider: "github",
            ..delivery(&headers, other)
        })
        .await;
    assert!(matches!(second, Outcome::Accepted { .. }), "{second:?}");
}

#[tokio::test]
async fn content_noted_by_an_attempt_that_never_stored_its_record_does_not_block_a_retry() {
    // GIVEN an attempt that noted its content, then failed to store its record (an outage)
    let github = config_for(Provider::GitHub, "gh_secret");
    let ingress = ingress_with(vec![github.clone()]);
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    let mut headers = signed(&github, "gh_secret", body, NOW);
    headers.insert("x-github-delivery", HeaderValue::from_static("d-lost"));
    let key = EventKey {
        tenant: acme(),
        provider: Provider::GitHub,
        event_id: evt("d-lost"),
    };
    let content = hex::encode(Sha256::digest(body));
    assert_eq!(
        ingress
            .store
            .claim_content(&key, &content, None, at(NOW + 60))
            .await,
        Ok(ContentClaim::Claimed)
    );

    // WHEN the provider redelivers it under a new id
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_static("d-redelivered"),
    );
    let outcome = ingress
        .handle(Delivery {
            provider: "github",
            ..delivery(&headers, body)
        })
        .await;

    // THEN it is stored: nothing was acknowledged for the lost attempt
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
}

fn declared(name: &str) -> Provider {
    name.parse().expect("a declared provider")
}

#[tokio::test]
async fn a_declared_provider_is_verified_stored_and_deduplicated_like_any_other() {
    // GIVEN a tenant receiving Paddle, and a delivery signed as Paddle signs
    let paddle = config_for(declared("paddle"), "pdl_ntf_secret");
    let ingress = ingress_with(vec![paddle.clone()]);
    let body = br#"{"event_id":"evt_01h8bkrjns","event_type":"transaction.completed","occurred_at":"2023-11-14T22:13:10Z","data":{}}"#;
    let headers = signed(&paddle, "pdl_ntf_secret", body, NOW);
    let paddle_delivery = || Delivery {
        provider: "paddle",
        path_and_query: Some("/webhooks/acme/paddle"),
        ..delivery(&headers, body)
    };

    // WHEN it arrives twice
    let first = ingress.handle(paddle_delivery()).await;
    let second = ingress.handle(paddle_delivery()).await;

    // THEN it is stored once with the id, type and time Paddle's body carries
    assert_eq!(
        first,
        Outcome::Accepted {
            event_id: evt("evt_01h8bkrjns")
        }
    );
    assert_eq!(
        second,
        Outcome::Duplicate {
            event_id: evt("evt_01h8bkrjns")
        }
    );
    let records = ingress.store.all();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].event_type.as_deref(),
        Some("transaction.completed")
    );
    assert_eq!(records[0].provider_created_at, Some(at(NOW - 10)));

    // AND a tampered body is a 401 that stores nothing
    let mut tampered = body.to_vec();
    tampered[12] ^= 1;
    let refused = ingress
        .handle(Delivery {
            provider: "paddle",
            ..delivery(&headers, &tampered)
        })
        .await;
    assert_eq!(refused.status_code(), 401);
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn zoom_url_validation_is_answered_after_its_signature_and_stored_nowhere() {
    // GIVEN Zoom's endpoint check, signed with the app's secret token
    let zoom = config_for(declared("zoom"), "zoom_secret_token");
    let ingress = ingress_with(vec![zoom.clone()]);
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let headers = signed(&zoom, "zoom_secret_token", body, NOW);

    // WHEN it arrives
    let outcome = ingress
        .handle(Delivery {
            provider: "zoom",
            ..delivery(&headers, body)
        })
        .await;

    // THEN the token and its HMAC go back as JSON, and nothing is stored
    let Outcome::Handshake(answer) = &outcome else {
        panic!("not a handshake: {outcome:?}");
    };
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(outcome.body()["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert!(ingress.store.all().is_empty() && ingress.queue.sent().is_empty());

    // AND the same check signed by anyone else is a 401
    let forged = signed(&zoom, "guess", body, NOW);
    let refused = ingress
        .handle(Delivery {
            provider: "zoom",
            ..delivery(&forged, body)
        })
        .await;
    assert_eq!(refused.status_code(), 401);
}

#[tokio::test]
async fn meta_s_subscription_get_is_answered_for_the_verify_token_only() {
    // GIVEN a tenant receiving WhatsApp, whose verify token follows its app secret
    let whatsapp = config_for(declared("whatsapp"), "meta_app_secret");
    let ingress = ingress_with(vec![whatsapp]);
    let token = crate::verify::declared::meta_verify_token(&Secret::new("meta_app_secret"));
    let none = HeaderMap::new();
    let (ingress, none) = (&ingress, &none);
    let get = |query: String| async move {
        let path = format!("/webhooks/acme/whatsapp?{query}");
        ingress
            .handle(Delivery {
                provider: "whatsapp",
                method: "GET",
                path_and_query: Some(&path),
                ..delivery(none, b"")
            })
            .await
    };

    // WHEN Meta checks with the right token, THEN the challenge goes back as text
    let answered = get(format!(
        "hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(
        answered,
        Outcome::Handshake(crate::verify::declared::HandshakeAnswer::text("1158201444"))
    );
    // AND with another token, or none, it is a 401
    let refused = get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1".to_owned()).await;
    assert_eq!(refused.status_code(), 401);
    assert_eq!(get(String::new()).await.status_code(), 401);
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn a_get_on_a_provider_without_a_get_handshake_is_405_and_an_unknown_route_still_401() {
    let ingress = ingress();
    let none = HeaderMap::new();
    let get = ingress
        .handle(Delivery {
            method: "GET",
            ..delivery(&none, b"")
        })
        .await;
    assert_eq!(get, Outcome::MethodNotAllowed);
    assert_eq!(get.status_code(), 405);
    // The route is checked first: a GET cannot tell configured tenants from others.
    let unknown = ingress
        .handle(Delivery {
            tenant: "globex",
            method: "GET",
            ..delivery(&none, b"")
        })
        .await;
    assert_eq!(unknown.status_code(), 401);
}

#[tokio::test]
async fn a_declared_delivery_replayed_under_a_fresh_unsigned_id_is_a_duplicate() {
    // GIVEN Sentry, whose signature covers the body but not its `request-id` header
    let sentry = config_for(declared("sentry"), "sentry_client_secret");
    let ingress = ingress_with(vec![sentry.clone()]);
    let body = br#"{"action":"created","data":{"issue":{"id":"1"}}}"#;
    let send = |request_id: &'static str| {
        let mut headers = signed(&sentry, "sentry_client_secret", body, NOW);
        headers.insert("request-id", HeaderValue::from_static(request_id));
        let ingress = &ingress;
        async move {
            ingress
                .handle(Delivery {
                    provider: "sentry",
                    ..delivery(&headers, body)
                })
                .await
        }
    };
    assert_eq!(
        send("req-1").await,
        Outcome::Accepted {
            event_id: evt("req-1")
        }
    );
    // WHEN the same signed bytes come again under another id, THEN it is the first's duplicate
    assert_eq!(
        send("req-2").await,
        Outcome::Duplicate {
            event_id: evt("req-1")
        }
    );
    assert_eq!(ingress.store.all().len(), 1);
}

/// A Pub/Sub push of an FCM delivery row, as Google sends it, with its delivery attempt.
fn firebase_push(attempt: u32) -> Vec<u8> {
    use base64::Engine;
    let row = json!({"event": "MESSAGE_DELIVERED", "message_id": "0:1700000000%abc",
                     "event_timestamp": "2023-11-14T22:13:15Z", "sdk_platform": "ANDROID"});
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(row.to_string()),
            "messageId": "9876543210", "publishTime": "2023-11-14T22:13:16Z",
            "attributes": {},
        },
        "subscription": "projects/acme/subscriptions/fcm-status",
        "deliveryAttempt": attempt,
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_firebase_push_is_verified_by_google_s_token_and_a_redelivery_is_a_duplicate() {
    use crate::verify::google_oidc::{GoogleKeys, GoogleOidcExpectation, StaticJwks, TestSigner};
    // GIVEN a tenant expecting pushes from its service account, and Google's keys
    const ACCOUNT: &str = "push@acme-prod.iam.gserviceaccount.com";
    const URL: &str = "https://hooks.example.com/webhooks/acme/firebase";
    let firebase = config_for(Provider::Firebase, ACCOUNT);
    let signer = TestSigner::generate("kid-1");
    let keys = GoogleKeys::new(Arc::new(StaticJwks::new(
        crate::verify::google_oidc::jwks(&[signer.jwk()]),
        None,
    )));
    let ingress = ingress_with(vec![firebase]).with_google(Arc::new(keys));
    let token = |account: &str, audience: &str| {
        let claims = crate::verify::google_oidc::google_claims(
            &GoogleOidcExpectation::new(audience, account),
            NOW,
        );
        header_map(vec![(
            "authorization".into(),
            format!("Bearer {}", signer.sign(&claims)),
        )])
    };
    let push = |headers: HeaderMap, body: Vec<u8>| {
        let ingress = &ingress;
        async move {
            ingress
                .handle(Delivery {
                    provider: "firebase",
                    path_and_query: Some("/webhooks/acme/firebase"),
                    ..delivery(&headers, &body)
                })
                .await
        }
    };

    // WHEN Google pushes, and pushes the same message again as its second attempt
    let first = push(token(ACCOUNT, URL), firebase_push(1)).await;
    let again = push(token(ACCOUNT, URL), firebase_push(2)).await;

    // THEN it is stored once, under Pub/Sub's message id, typed by the FCM row
    assert_eq!(
        first,
        Outcome::Accepted {
            event_id: evt("9876543210")
        }
    );
    assert_eq!(
        again,
        Outcome::Duplicate {
            event_id: evt("9876543210")
        }
    );
    let records = ingress.store.all();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_type.as_deref(), Some("MESSAGE_DELIVERED"));

    // AND a token for another audience or another account is a 401; no token at all too
    let elsewhere = push(
        token(ACCOUNT, "https://evil.example.com/webhooks/acme/firebase"),
        firebase_push(1),
    )
    .await;
    assert_eq!(elsewhere.status_code(), 401);
    let stranger = push(
        token("intruder@other.iam.gserviceaccount.com", URL),
        firebase_push(1),
    )
    .await;
    assert_eq!(stranger.status_code(), 401);
    assert_eq!(
        push(HeaderMap::new(), firebase_push(1)).await.status_code(),
        401
    );
    assert_eq!(ingress.store.all().len(), 1);
}

#[tokio::test]
async fn firebase_without_google_s_keys_is_our_503_not_an_acceptance() {
    let ingress = ingress_with(vec![config_for(
        Provider::Firebase,
        "push@acme-prod.iam.gserviceaccount.com",
    )]);
    let headers = header_map(vec![("authorization".into(), "Bearer a.b.c".into())]);
    let body = firebase_push(1);
    let outcome = ingress
        .handle(Delivery {
            provider: "firebase",
            ..delivery(&headers, &body)
        })
        .await;
    assert_eq!(outcome.status_code(), 503);
    assert!(ingress.store.all().is_empty());
}

#[tokio::test]
async fn braintree_s_destination_challenge_is_answered_with_the_key_s_hmac() {
    let secret = "merchant_public:merchant_private";
    let ingress = ingress_with(vec![config_for(Provider::Braintree, secret)]);
    let none = HeaderMap::new();
    let challenge = |query: &'static str| {
        let ingress = &ingress;
        let none = &none;
        async move {
            ingress
                .handle(Delivery {
                    provider: "braintree",
                    method: "GET",
                    path_and_query: Some(query),
                    ..delivery(none, b"")
                })
                .await
        }
    };
    let answered =
        challenge("/webhooks/acme/braintree?bt_challenge=20f9f8ed05f77439fe955c977e4c8a53").await;
    let expected = crate::verify::braintree::challenge(
        &Secret::new(secret),
        "20f9f8ed05f77439fe955c977e4c8a53",
    )
    .expect("answer");
    assert_eq!(
        answered,
        Outcome::Handshake(crate::verify::declared::HandshakeAnswer::text(expected))
    );
    assert_eq!(
        challenge("/webhooks/acme/braintree?bt_challenge=nothex")
            .await
            .status_code(),
        401
    );
    assert_eq!(
        challenge("/webhooks/acme/braintree").await.status_code(),
        405
    );

    // AND a notification signed as Braintree signs is stored under its payload's hash
    let xml = br#"<notification><timestamp type="datetime">2023-11-14T22:13:20Z</timestamp><kind>check</kind><subject></subject></notification>"#;
    let body = crate::verify::braintree::sign(xml, &Secret::new(secret)).expect("form");
    let stored = ingress
        .handle(Delivery {
            provider: "braintree",
            ..delivery(&none, &body)
        })
        .await;
    assert!(matches!(stored, Outcome::Accepted { .. }), "{stored:?}");
    assert_eq!(ingress.store.all()[0].event_type.as_deref(), Some("check"));
    assert_eq!(ingress.store.all()[0].provider_created_at, Some(at(NOW)));
}
