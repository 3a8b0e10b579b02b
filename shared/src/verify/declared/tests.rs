//! The engine, checked per declaration: every declared HMAC provider passes the battery every
//! scheme passes (round trip, tampering, rotation, window, required headers); the special ones
//! (tokens, Basic, client state, Ed25519, ECDSA, a signature in the body) and the handshakes get
//! tests of their own. The providers' published vectors are in `vectors.rs`.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{catalog::ALL, *};
use crate::{
    extract::extract,
    provider::Provider,
    secret::SecretSlot,
    verify::{RequestUrl, Scheme, mac::hmac_sha256, test_support::*},
};

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "declared-test-secret-0123456789";
const OTHER: &str = "another-secret-9876543210";

fn url() -> RequestUrl {
    RequestUrl::parse("https://hooks.example.com/webhooks/acme/square").expect("url")
}

/// Whether the shared battery applies: a signature over the body the engine can make itself.
fn signs_body_with_a_shared_secret(declaration: &Declaration) -> bool {
    match &declaration.auth {
        Auth::Signed(signature) => {
            matches!(
                signature.algorithm,
                Algorithm::HmacSha1 | Algorithm::HmacSha256
            ) && signature.signed.contains(&Part::Body)
                && !matches!(signature.carrier, Carrier::Body { .. })
                && !matches!(signature.timestamp, Some(Stamp::Body { .. }))
        }
        Auth::StandardWebhooks => true,
        _ => false,
    }
}

#[test]
fn every_declared_hmac_provider_passes_the_battery() {
    let url = url();
    let context = VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    let mut checked = 0;
    for declaration in ALL
        .iter()
        .copied()
        .filter(|d| signs_body_with_a_shared_secret(d))
    {
        let (secret, other) = match declaration.auth {
            Auth::StandardWebhooks => (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk=",
            ),
            _ => (SECRET, OTHER),
        };
        common_battery_in(Scheme::Declared(declaration), secret, other, &context);
        checked += 1;
    }
    assert!(checked >= 30, "{checked} declarations took the battery");
}

#[test]
fn every_declared_provider_yields_an_id_type_and_time_from_a_delivery_it_signed() {
    let url = url();
    let context = VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    for declaration in ALL
        .iter()
        .copied()
        .filter(|d| signs_body_with_a_shared_secret(d))
    {
        let secret = match declaration.auth {
            Auth::StandardWebhooks => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            _ => SECRET,
        };
        let body = declaration.sample_payload("evt_sample_1", at(NOW));
        let pairs = Scheme::Declared(declaration)
            .sign_with(
                &body,
                &Secret::new(secret),
                at(NOW),
                "evt_sample_1",
                &context,
            )
            .expect("sign");
        let mut borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let time = NOW.to_string();
        if let TimeField::Header(name, _) = declaration.created_at {
            borrowed.push((name, &time));
        }
        let h = headers(&borrowed);
        let meta = extract(Provider::Declared(declaration), &h, &body, None)
            .unwrap_or_else(|e| panic!("{}: {e}", declaration.name));
        let name = declaration.name;
        match declaration.id {
            IdFrom::BodyHash => assert_eq!(meta.event_id.as_str().len(), 64, "{name}"),
            _ => assert_eq!(meta.event_id.as_str(), "evt_sample_1", "{name}"),
        }
        if !matches!(declaration.event_type, Field::None) {
            assert!(meta.event_type.is_some(), "{name}: no type");
        }
        if !matches!(declaration.created_at, TimeField::None) {
            assert_eq!(meta.created_at, Some(at(NOW)), "{name}: time");
        }
    }
}

#[test]
fn declarations_are_well_formed() {
    for d in ALL {
        assert!(
            d.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            d.name
        );
        assert!(d.docs.starts_with("https://"), "{}", d.name);
        if let Auth::Signed(signature) = &d.auth {
            // What the signature needs must be declared: a timestamp part needs a stamp, an id
            // part an id header.
            if signature.signed.contains(&Part::Timestamp) {
                assert!(signature.timestamp.is_some(), "{}", d.name);
            }
            if signature.signed.contains(&Part::Id) {
                assert!(
                    matches!(d.id, IdFrom::Header { signed: true, .. }),
                    "{}",
                    d.name
                );
            }
            if let Some(Stamp::Field { .. }) = signature.timestamp {
                assert!(
                    matches!(signature.carrier, Carrier::Fields { .. }),
                    "{}",
                    d.name
                );
            }
            // Header names are lowercase, as `HeaderMap` looks them up.
            let names: Vec<&str> = match &signature.carrier {
                Carrier::Header { name, .. } | Carrier::Fields { header: name, .. } => vec![name],
                Carrier::Headers { names } => names.to_vec(),
                Carrier::Body { .. } => vec![],
            };
            for name in names {
                assert_eq!(name, name.to_ascii_lowercase(), "{}", d.name);
            }
        }
        // An id taken from a header the signature does not cover is deduplicated on content.
        if let IdFrom::Header { signed: true, .. } = d.id {
            assert!(
                matches!(&d.auth, Auth::StandardWebhooks)
                    || matches!(&d.auth, Auth::Signed(s) if s.signed.contains(&Part::Id)),
                "{}: an id called signed must be signed",
                d.name
            );
        }
    }
}

#[test]
fn the_readme_lists_every_declared_provider_as_generated() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    let table = catalog::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's table of declared providers is out of date; replace it with:\n{table}"
    );
}

#[test]
fn hex_must_be_lowercase_and_prefixes_exact() {
    let verifier = verifier(Scheme::Declared(&catalog::BITBUCKET));
    let body = br#"{"push":{}}"#;
    let tag = hex::encode(hmac_sha256(SECRET.as_bytes(), &[body]));
    let ok = headers(&[("x-hub-signature", &format!("sha256={tag}"))]);
    assert!(
        verifier
            .verify(body, &ok, &secrets(SECRET), at(NOW))
            .is_ok()
    );
    let upper = headers(&[("x-hub-signature", &format!("sha256={}", tag.to_uppercase()))]);
    assert_eq!(
        verifier.verify(body, &upper, &secrets(SECRET), at(NOW)),
        Err(VerifyError::MalformedHeader("x-hub-signature".into()))
    );
    let wrong_prefix = headers(&[("x-hub-signature", &format!("sha1={tag}"))]);
    assert_eq!(
        verifier.verify(body, &wrong_prefix, &secrets(SECRET), at(NOW)),
        Err(VerifyError::NoSupportedSignature("x-hub-signature".into()))
    );
    let short = headers(&[("x-hub-signature", &format!("sha256={}", &tag[..62]))]);
    assert_eq!(
        verifier.verify(body, &short, &secrets(SECRET), at(NOW)),
        Err(VerifyError::MalformedHeader("x-hub-signature".into()))
    );
}

#[test]
fn fields_headers_take_any_of_several_signatures_and_refuse_a_flood() {
    // PagerDuty sends one v1 per active secret during its rotation.
    let verifier = verifier(Scheme::Declared(&catalog::PAGERDUTY));
    let body = br#"{"event":{"id":"01DEN","event_type":"incident.triggered"}}"#;
    let good = hex::encode(hmac_sha256(SECRET.as_bytes(), &[body]));
    let other = hex::encode(hmac_sha256(OTHER.as_bytes(), &[body]));
    let both = headers(&[("x-pagerduty-signature", &format!("v1={other},v1={good}"))]);
    assert!(
        verifier
            .verify(body, &both, &secrets(SECRET), at(NOW))
            .is_ok()
    );
    let flood = vec![format!("v1={other}"); 9].join(",");
    assert_eq!(
        verifier.verify(
            body,
            &headers(&[("x-pagerduty-signature", &flood)]),
            &secrets(SECRET),
            at(NOW)
        ),
        Err(VerifyError::MalformedHeader("x-pagerduty-signature".into()))
    );
    let none = headers(&[("x-pagerduty-signature", &format!("v0={good}"))]);
    assert_eq!(
        verifier.verify(body, &none, &secrets(SECRET), at(NOW)),
        Err(VerifyError::NoSupportedSignature(
            "x-pagerduty-signature".into()
        ))
    );
}

#[test]
fn a_token_is_compared_whole_and_signs_nothing() {
    let verifier = verifier(Scheme::Declared(&catalog::GITLAB));
    let body = br#"{"object_kind":"push"}"#;
    let ok = headers(&[("x-gitlab-token", SECRET), ("x-gitlab-event", "Push Hook")]);
    let verified = verifier
        .verify(body, &ok, &secrets(SECRET), at(NOW))
        .expect("token");
    assert_eq!(verified.event_type.as_deref(), Some("Push Hook"));
    for wrong in [&SECRET[..SECRET.len() - 1], "", OTHER] {
        let h = headers(&[("x-gitlab-token", wrong)]);
        assert!(
            verifier
                .verify(body, &h, &secrets(SECRET), at(NOW))
                .is_err(),
            "{wrong:?}"
        );
    }
    // The body is not covered: the ingress deduplicates such deliveries on their content.
    assert!(!catalog::GITLAB.covers_body() && !catalog::GITLAB.id_signed());
    let meta = extract(Provider::Declared(&catalog::GITLAB), &ok, body, None).expect("meta");
    assert!(!meta.id_signed);
}

#[test]
fn basic_authentication_takes_user_and_password_in_any_scheme_case() {
    let verifier = verifier(Scheme::Declared(&catalog::POSTMARK));
    let secret = "hooks:s3cr3t-password";
    let body = br#"{"RecordType":"Delivery","MessageID":"m-1"}"#;
    let encoded = STANDARD.encode(secret);
    for scheme_word in ["Basic", "basic", "BASIC"] {
        let h = headers(&[("authorization", &format!("{scheme_word} {encoded}"))]);
        assert!(
            verifier.verify(body, &h, &secrets(secret), at(NOW)).is_ok(),
            "{scheme_word}"
        );
    }
    let bearer = headers(&[("authorization", &format!("Bearer {encoded}"))]);
    assert_eq!(
        verifier.verify(body, &bearer, &secrets(secret), at(NOW)),
        Err(VerifyError::NoSupportedSignature("authorization".into()))
    );
    let wrong = headers(&[(
        "authorization",
        &format!("Basic {}", STANDARD.encode("hooks:nope")),
    )]);
    assert_eq!(
        verifier.verify(body, &wrong, &secrets(secret), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    let garbage = headers(&[("authorization", "Basic %%%")]);
    assert_eq!(
        verifier.verify(body, &garbage, &secrets(secret), at(NOW)),
        Err(VerifyError::MalformedHeader("authorization".into()))
    );
    assert!(
        Scheme::Declared(&catalog::POSTMARK)
            .check_secret(&Secret::new("no-colon"), at(NOW), &VerifyContext::default())
            .is_err()
    );
}

#[test]
fn graph_notifications_carry_the_client_state_in_every_item() {
    let verifier = verifier(Scheme::Declared(&catalog::MSGRAPH));
    let body = |states: &[&str]| {
        let items: Vec<Value> = states
            .iter()
            .map(|s| json!({"clientState": s, "changeType": "created", "resource": "Users/1"}))
            .collect();
        json!({ "value": items }).to_string().into_bytes()
    };
    let none = HeaderMap::new();
    assert!(
        verifier
            .verify(&body(&[SECRET, SECRET]), &none, &secrets(SECRET), at(NOW))
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&body(&[SECRET, OTHER]), &none, &secrets(SECRET), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    assert!(
        verifier
            .verify(&body(&[]), &none, &secrets(SECRET), at(NOW))
            .is_err()
    );
    assert!(
        verifier
            .verify(b"not json", &none, &secrets(SECRET), at(NOW))
            .is_err()
    );
}

#[test]
fn discord_verifies_ed25519_by_the_application_public_key() {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    let public = hex::encode(pair.public_key().as_ref());
    let body = br#"{"id":"1234","type":2,"data":{"name":"deploy"}}"#;
    let ts = NOW.to_string();
    let signature = hex::encode(pair.sign(&[ts.as_bytes(), body].concat()).as_ref());
    let verifier = verifier(Scheme::Declared(&catalog::DISCORD));
    let h = headers(&[
        ("x-signature-ed25519", &signature),
        ("x-signature-timestamp", &ts),
    ]);
    let verified = verifier
        .verify(body, &h, &secrets(&public), at(NOW))
        .expect("ed25519");
    assert_eq!(verified.signed_at, Some(at(NOW)));
    let mut tampered = body.to_vec();
    tampered[7] ^= 1;
    assert_eq!(
        verifier.verify(&tampered, &h, &secrets(&public), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    assert!(matches!(
        verifier.verify(body, &h, &secrets(&public), at(NOW + 301)),
        Err(VerifyError::StaleTimestamp { .. })
    ));
    // A secret that is not a public key is the operator's mistake, said as such.
    assert!(matches!(
        verifier.verify(body, &h, &secrets("not-a-key"), at(NOW)),
        Err(VerifyError::UnusableSecret(_))
    ));
    assert!(
        Scheme::Declared(&catalog::DISCORD)
            .check_secret(&Secret::new(&public), at(NOW), &VerifyContext::default())
            .is_ok()
    );
    let meta = extract(Provider::Declared(&catalog::DISCORD), &h, body, None).expect("meta");
    assert_eq!(
        (meta.event_id.as_str(), meta.event_type.as_deref()),
        ("1234", Some("2"))
    );
}

#[test]
fn sendgrid_verifies_ecdsa_by_its_verification_key() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("pair");
    let public = STANDARD.encode(pair.public_key().as_der().expect("der").as_ref());
    let body = br#"[{"email":"a@example.com","event":"delivered","sg_event_id":"e1","timestamp":1700000000}]"#;
    let ts = NOW.to_string();
    let signature = STANDARD.encode(
        pair.sign(&rng, &[ts.as_bytes(), body].concat())
            .expect("sign")
            .as_ref(),
    );
    let verifier = verifier(Scheme::Declared(&catalog::SENDGRID));
    let h = headers(&[
        ("x-twilio-email-event-webhook-signature", &signature),
        ("x-twilio-email-event-webhook-timestamp", &ts),
    ]);
    assert!(
        verifier
            .verify(body, &h, &secrets(&public), at(NOW))
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&body[1..], &h, &secrets(&public), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    let meta = extract(Provider::Declared(&catalog::SENDGRID), &h, body, None).expect("meta");
    assert_eq!(meta.event_type.as_deref(), Some("delivered"));
    assert_eq!(meta.created_at, Some(at(NOW)));
}

#[test]
fn mailgun_signs_a_timestamp_and_token_inside_the_body() {
    let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
    let ts = NOW.to_string();
    let signature = hex::encode(hmac_sha256(
        SECRET.as_bytes(),
        &[ts.as_bytes(), token.as_bytes()],
    ));
    let body = |signature: &str| {
        json!({
            "signature": {"timestamp": ts, "token": token, "signature": signature},
            "event-data": {"id": "CPgfbmQMTCKtHW6uIWtuVe", "event": "delivered", "timestamp": 1700000000.25}
        })
        .to_string()
        .into_bytes()
    };
    let verifier = verifier(Scheme::Declared(&catalog::MAILGUN));
    let none = HeaderMap::new();
    assert!(
        verifier
            .verify(&body(&signature), &none, &secrets(SECRET), at(NOW))
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&body(&"0".repeat(64)), &none, &secrets(SECRET), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    assert!(matches!(
        verifier.verify(&body(&signature), &none, &secrets(SECRET), at(NOW + 600)),
        Err(VerifyError::StaleTimestamp { .. })
    ));
    assert_eq!(
        verifier.verify(b"{}", &none, &secrets(SECRET), at(NOW)),
        Err(VerifyError::MissingHeader(
            "body field /signature/signature".into()
        ))
    );
    // The signature does not cover the event data: deduplicated on content as well.
    assert!(!catalog::MAILGUN.id_signed());
    let meta = extract(
        Provider::Declared(&catalog::MAILGUN),
        &none,
        &body(&signature),
        None,
    )
    .expect("meta");
    assert_eq!(meta.event_id.as_str(), "CPgfbmQMTCKtHW6uIWtuVe");
    assert_eq!(
        meta.created_at,
        Some(at(NOW) + std::time::Duration::from_millis(250))
    );
}

#[test]
fn schemes_that_sign_the_url_need_it() {
    let verifier = verifier(Scheme::Declared(&catalog::SQUARE));
    let body = br#"{"event_id":"e1","type":"payment.updated"}"#;
    let url = url();
    let signature = STANDARD.encode(hmac_sha256(
        SECRET.as_bytes(),
        &[url.as_str().as_bytes(), body],
    ));
    let h = headers(&[("x-square-hmacsha256-signature", &signature)]);
    let context = VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    assert!(
        verifier
            .verify_with(body, &h, &secrets(SECRET), &context, at(NOW))
            .is_ok()
    );
    assert!(matches!(
        verifier.verify(body, &h, &secrets(SECRET), at(NOW)),
        Err(VerifyError::MissingContext(_))
    ));
    let elsewhere =
        RequestUrl::parse("https://hooks.example.com/webhooks/other/square").expect("url");
    let moved = VerifyContext {
        url: Some(&elsewhere),
        ..Default::default()
    };
    assert_eq!(
        verifier.verify_with(body, &h, &secrets(SECRET), &moved, at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn hubspot_signs_its_uri_with_a_fixed_set_of_escapes_decoded() {
    let verifier = verifier(Scheme::Declared(&catalog::HUBSPOT));
    let url = RequestUrl::parse("https://hooks.example.com/webhooks/acme/hubspot?a=%3Ab%2fc%20d")
        .expect("url");
    let body = br#"[{"eventId":1,"subscriptionType":"contact.creation"}]"#;
    let ts = (NOW * 1000).to_string();
    let signed = "POSThttps://hooks.example.com/webhooks/acme/hubspot?a=:b/c%20d".to_owned()
        + std::str::from_utf8(body).expect("utf-8")
        + &ts;
    let signature = STANDARD.encode(hmac_sha256(SECRET.as_bytes(), &[signed.as_bytes()]));
    let h = headers(&[
        ("x-hubspot-signature-v3", &signature),
        ("x-hubspot-request-timestamp", &ts),
    ]);
    let context = VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    assert!(
        verifier
            .verify_with(body, &h, &secrets(SECRET), &context, at(NOW))
            .is_ok()
    );
}

fn request<'a>(
    method: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> HandshakeRequest<'a> {
    HandshakeRequest {
        method,
        query,
        headers,
        body,
    }
}

#[test]
fn zoom_url_validation_is_answered_with_the_encrypted_token() {
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let none = HeaderMap::new();
    let answer = Handshake::ZoomUrlValidation
        .after_auth(&request("POST", None, &none, body), &Secret::new(SECRET))
        .expect("answered");
    let expected = hex::encode(hmac_sha256(SECRET.as_bytes(), &[b"qgg8vlvZRS6UYooatFL8Aw"]));
    assert_eq!(
        serde_json::from_str::<Value>(&answer.body).expect("json"),
        json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected})
    );
    assert_eq!(answer.content_type, "application/json");
    let event = br#"{"event":"meeting.started","payload":{}}"#;
    assert!(
        Handshake::ZoomUrlValidation
            .after_auth(&request("POST", None, &none, event), &Secret::new(SECRET))
            .is_none()
    );
}

#[test]
fn discord_ping_and_twitch_challenge_are_answered() {
    let none = HeaderMap::new();
    let ping = Handshake::DiscordPing
        .after_auth(
            &request("POST", None, &none, br#"{"type":1,"id":"1"}"#),
            &Secret::new(SECRET),
        )
        .expect("pong");
    assert_eq!(ping.body, r#"{"type":1}"#);
    assert!(
        Handshake::DiscordPing
            .after_auth(
                &request("POST", None, &none, br#"{"type":2,"id":"1"}"#),
                &Secret::new(SECRET)
            )
            .is_none()
    );

    let verification = headers(&[(
        "twitch-eventsub-message-type",
        "webhook_callback_verification",
    )]);
    let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"channel.follow"}}"#;
    let answer = Handshake::TwitchChallenge
        .after_auth(
            &request("POST", None, &verification, body),
            &Secret::new(SECRET),
        )
        .expect("challenge");
    assert_eq!(answer.body, "pogchamp-kappa-360noscope-vohiyo");
    assert!(answer.content_type.starts_with("text/plain"));
    let notification = headers(&[("twitch-eventsub-message-type", "notification")]);
    assert!(
        Handshake::TwitchChallenge
            .after_auth(
                &request("POST", None, &notification, body),
                &Secret::new(SECRET)
            )
            .is_none()
    );
}

#[test]
fn meta_answers_its_get_only_for_the_tenant_s_verify_token() {
    let none = HeaderMap::new();
    let set = secrets(SECRET);
    let token = meta_verify_token(&Secret::new(SECRET));
    let query = format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444");
    let answer = Handshake::MetaSubscribe
        .before_auth(&request("GET", Some(&query), &none, b""), &set, at(NOW))
        .expect("a handshake")
        .expect("answered");
    assert_eq!(answer.body, "1158201444");
    for bad in [
        "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        &format!("hub.mode=unsubscribe&hub.verify_token={token}&hub.challenge=1"),
        &format!("hub.mode=subscribe&hub.verify_token={token}"),
        &format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=%0A"),
    ] {
        let refused = Handshake::MetaSubscribe
            .before_auth(&request("GET", Some(bad), &none, b""), &set, at(NOW))
            .expect("a handshake");
        assert!(refused.is_err(), "{bad}");
    }
    // A rotation keeps the previous secret's token valid until it expires.
    let rotated = set.rotate(Secret::new(OTHER), at(NOW + 60));
    assert!(
        Handshake::MetaSubscribe
            .before_auth(&request("GET", Some(&query), &none, b""), &rotated, at(NOW))
            .expect("a handshake")
            .is_ok()
    );
    // A POST is an event, not the handshake.
    assert!(
        Handshake::MetaSubscribe
            .before_auth(&request("POST", Some(&query), &none, b"{}"), &set, at(NOW))
            .is_none()
    );
}

#[test]
fn dropbox_graph_and_okta_handshakes() {
    let none = HeaderMap::new();
    let set = secrets(SECRET);
    let dropbox = Handshake::DropboxChallenge
        .before_auth(
            &request("GET", Some("challenge=abc123"), &none, b""),
            &set,
            at(NOW),
        )
        .expect("handshake")
        .expect("answer");
    assert_eq!(dropbox.body, "abc123");

    let graph = Handshake::GraphValidation
        .before_auth(
            &request(
                "POST",
                Some("validationToken=Validation%3A%20Testing%20client"),
                &none,
                b"",
            ),
            &set,
            at(NOW),
        )
        .expect("handshake")
        .expect("answer");
    assert_eq!(graph.body, "Validation: Testing client");
    assert!(
        Handshake::GraphValidation
            .before_auth(&request("POST", None, &none, b"{}"), &set, at(NOW))
            .is_none()
    );

    let okta = headers(&[
        ("x-okta-verification-challenge", "X1y2Z3"),
        ("authorization", SECRET),
    ]);
    let answer = Handshake::OktaVerification
        .before_auth(&request("GET", None, &okta, b""), &set, at(NOW))
        .expect("handshake")
        .expect("answer");
    assert_eq!(answer.body, r#"{"verification":"X1y2Z3"}"#);
    let stranger = headers(&[
        ("x-okta-verification-challenge", "X1y2Z3"),
        ("authorization", OTHER),
    ]);
    assert_eq!(
        Handshake::OktaVerification
            .before_auth(&request("GET", None, &stranger, b""), &set, at(NOW))
            .expect("handshake"),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn woocommerce_s_unsigned_ping_and_trello_s_head_are_answered_and_nothing_else() {
    let none = HeaderMap::new();
    let set = secrets(SECRET);
    let ping = Handshake::WooCommercePing
        .before_auth(
            &request("POST", None, &none, b"webhook_id=42"),
            &set,
            at(NOW),
        )
        .expect("a ping")
        .expect("answered");
    assert_eq!(ping.body, "");
    for not_a_ping in [
        &b"webhook_id=42&x=1"[..],
        b"webhook_id=abc",
        b"{\"id\":1}",
        b"",
    ] {
        assert!(
            Handshake::WooCommercePing
                .before_auth(&request("POST", None, &none, not_a_ping), &set, at(NOW))
                .is_none()
        );
    }
    let signed = headers(&[("x-wc-webhook-signature", "abc")]);
    assert!(
        Handshake::WooCommercePing
            .before_auth(
                &request("POST", None, &signed, b"webhook_id=42"),
                &set,
                at(NOW)
            )
            .is_none()
    );
    assert!(
        Handshake::TrelloHead
            .before_auth(&request("HEAD", None, &none, b""), &set, at(NOW))
            .is_some()
    );
    assert!(
        Handshake::TrelloHead
            .before_auth(&request("POST", None, &none, b"{}"), &set, at(NOW))
            .is_none()
    );
}

#[test]
fn a_rotation_s_previous_secret_is_reported() {
    let verifier = verifier(Scheme::Declared(&catalog::GITLAB));
    let rotated = secrets(SECRET).rotate(Secret::new(OTHER), at(NOW + 60));
    let h = headers(&[("x-gitlab-token", SECRET)]);
    assert_eq!(
        verifier
            .verify(b"{}", &h, &rotated, at(NOW))
            .expect("previous")
            .secret,
        SecretSlot::Previous
    );
    assert!(verifier.verify(b"{}", &h, &rotated, at(NOW + 61)).is_err());
}
