//! Helpers and the checks every scheme must pass, shared by the scheme modules' tests.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    Scheme, Verified, Verifier, VerifyContext, VerifyError,
    declared::{Auth, Field, IdFrom},
};
use crate::secret::{Secret, SecretSet, SecretSlot};

pub fn at(unix_secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs)
}

pub fn secrets(current: &str) -> SecretSet {
    SecretSet::single(Secret::new(current))
}

pub fn verifier(scheme: Scheme) -> Verifier {
    Verifier::new(scheme)
}

/// Headers from (name, value) pairs; names in any case, repeated names appended.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        map.append(
            name,
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

fn signed_headers(
    scheme: &Scheme,
    body: &[u8],
    secret: &str,
    when: u64,
    context: &VerifyContext<'_>,
) -> HeaderMap {
    let pairs = scheme
        .sign_with(body, &Secret::new(secret), at(when), "evt_battery", context)
        .expect("sign");
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers(&borrowed)
}

/// Whether the scheme signs a timestamp, and so enforces a replay window.
fn has_timestamp(scheme: &Scheme) -> bool {
    match scheme {
        Scheme::Declared(declaration) => match &declaration.auth {
            Auth::Signed(signature) => signature.timestamp.is_some(),
            Auth::StandardWebhooks => true,
            _ => false,
        },
        _ => !matches!(scheme, Scheme::GitHub | Scheme::Shopify | Scheme::Twilio),
    }
}

/// The behaviour every scheme owes, checked through its own `sign` (the independent vectors
/// live in each module's tests).
pub fn common_battery(scheme: Scheme, secret: &str, other_secret: &str) {
    common_battery_in(scheme, secret, other_secret, &VerifyContext::default());
}

/// [`common_battery`] for a scheme that signs part of a [`VerifyContext`].
pub fn common_battery_in(
    scheme: Scheme,
    secret: &str,
    other_secret: &str,
    context: &VerifyContext<'_>,
) {
    const NOW: u64 = 1_700_000_000;
    let body: &[u8] = br#"{"id":"evt_battery","type":"test.event","n":1}"#;
    let v = Contextual {
        verifier: verifier(scheme.clone()),
        context,
    };
    let signed_headers = |scheme: &Scheme, body: &[u8], secret: &str, when: u64| {
        signed_headers(scheme, body, secret, when, context)
    };
    let h = signed_headers(&scheme, body, secret, NOW);

    // Round trip.
    let ok: Verified = v
        .verify(body, &h, &secrets(secret), at(NOW))
        .expect("round trip");
    assert_eq!(ok.secret, SecretSlot::Current);

    // One byte changed in the body, or a trailing newline, fails.
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        v.verify(&tampered, &h, &secrets(secret), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    assert_eq!(
        v.verify(&with_newline, &h, &secrets(secret), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );

    // The wrong secret fails.
    assert_eq!(
        v.verify(body, &h, &secrets(other_secret), at(NOW)),
        Err(VerifyError::SignatureMismatch)
    );

    // Rotation: a delivery signed with the previous secret passes until that secret expires.
    let rotated = secrets(secret).rotate(Secret::new(other_secret), at(NOW + 60));
    let by_previous = v
        .verify(body, &h, &rotated, at(NOW))
        .expect("previous secret still valid");
    assert_eq!(by_previous.secret, SecretSlot::Previous);
    let by_current = v
        .verify(
            body,
            &signed_headers(&scheme, body, other_secret, NOW),
            &rotated,
            at(NOW),
        )
        .expect("new current secret");
    assert_eq!(by_current.secret, SecretSlot::Current);
    if has_timestamp(&scheme) {
        let late = signed_headers(&scheme, body, secret, NOW + 100);
        assert_eq!(
            v.verify(body, &late, &rotated, at(NOW + 100)),
            Err(VerifyError::SignatureMismatch)
        );
    } else {
        assert_eq!(
            v.verify(body, &h, &rotated, at(NOW + 61)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    // Replay window, both directions, with its edges inside.
    if has_timestamp(&scheme) {
        assert!(v.verify(body, &h, &secrets(secret), at(NOW + 300)).is_ok());
        assert!(v.verify(body, &h, &secrets(secret), at(NOW - 300)).is_ok());
        assert_eq!(
            v.verify(body, &h, &secrets(secret), at(NOW + 301)),
            Err(VerifyError::StaleTimestamp {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            v.verify(body, &h, &secrets(secret), at(NOW - 301)),
            Err(VerifyError::FutureTimestamp {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        let wide = Contextual {
            verifier: v.verifier.clone().with_tolerance(Duration::from_secs(600)),
            context,
        };
        assert!(
            wide.verify(body, &h, &secrets(secret), at(NOW + 500))
                .is_ok()
        );
    }

    // Every header the scheme sends is required, and none may be repeated.
    for name in h.keys() {
        if is_metadata_only(&scheme, name.as_str()) {
            continue;
        }
        let mut without = h.clone();
        without.remove(name);
        assert_eq!(
            v.verify(body, &without, &secrets(secret), at(NOW)),
            Err(VerifyError::MissingHeader(name.as_str().to_owned())),
            "{name} removed"
        );
        let mut doubled = h.clone();
        let value = h.get(name).expect("present").clone();
        doubled.append(name.clone(), value);
        assert_eq!(
            v.verify(body, &doubled, &secrets(secret), at(NOW)),
            Err(VerifyError::MalformedHeader(name.as_str().to_owned())),
            "{name} doubled"
        );
    }

    // Header names match in any case (HTTP/2 and API Gateway lower-case them).
    let upper: Vec<(String, String)> = h
        .iter()
        .map(|(n, val)| {
            (
                n.as_str().to_ascii_uppercase(),
                val.to_str().expect("ascii").to_owned(),
            )
        })
        .collect();
    let upper: Vec<(&str, &str)> = upper
        .iter()
        .map(|(n, val)| (n.as_str(), val.as_str()))
        .collect();
    assert!(
        v.verify(body, &headers(&upper), &secrets(secret), at(NOW))
            .is_ok()
    );

    // An error never echoes a signature value or the secret.
    for err in [
        v.verify(&tampered, &h, &secrets(secret), at(NOW))
            .expect_err("mismatch"),
        v.verify(body, &HeaderMap::new(), &secrets(secret), at(NOW))
            .expect_err("missing"),
    ] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(secret), "{text}");
        for value in h.values() {
            let value = value.to_str().expect("ascii");
            assert!(value.len() < 20 || !text.contains(value), "{text}");
        }
    }
}

/// A verifier with the context its scheme needs, so the battery reads the same for every scheme.
struct Contextual<'c> {
    verifier: Verifier,
    context: &'c VerifyContext<'c>,
}

impl Contextual<'_> {
    fn verify(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        self.verifier
            .verify_with(body, headers, secrets, self.context, now)
    }
}

/// Headers that carry metadata (id, type, topic) rather than anything verification needs; the
/// ingress refuses a delivery whose event id it cannot find.
fn is_metadata_only(scheme: &Scheme, name: &str) -> bool {
    if let Scheme::Declared(declaration) = scheme {
        let id = matches!(declaration.id, IdFrom::Header { name: n, signed: false } if n == name);
        let event_type = matches!(declaration.event_type, Field::Header(n) if n == name);
        return id || event_type;
    }
    matches!(
        name,
        "x-github-event"
            | "x-github-delivery"
            | "x-shopify-topic"
            | "x-shopify-webhook-id"
            | "x-webhook-id"
    )
}
