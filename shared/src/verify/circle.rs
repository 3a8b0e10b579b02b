//! Circle: `X-Circle-Signature` is the base64 ASN.1 DER ECDSA P-256 / SHA-256 signature of the
//! raw body, made with the key `X-Circle-Key-Id` names. Circle publishes its keys by id (base64
//! DER SubjectPublicKeyInfo, `GET /v2/notifications/publicKey/{id}`); the tenant's configuration
//! holds the ones it trusts, several while Circle rotates, so the key id only ever selects among
//! configured keys and never brings a key of its own. Circle signs no timestamp: no replay window,
//! deliveries are deduplicated on `notificationId`.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, ParsedPublicKey,
    },
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderMap;

use super::{PublicKeys, Verified, VerifyError, single_header};

pub(crate) const SIGNATURE_HEADER: &str = "x-circle-signature";
pub(crate) const KEY_ID_HEADER: &str = "x-circle-key-id";
/// A DER ECDSA P-256 signature is at most 72 bytes; anything longer is not one.
const MAX_SIGNATURE_BYTES: usize = 72;

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    keys: Option<&PublicKeys>,
    now: std::time::SystemTime,
) -> Result<Verified, VerifyError> {
    let signature = single_header(headers, SIGNATURE_HEADER)?;
    let key_id = single_header(headers, KEY_ID_HEADER)?;
    let signature = STANDARD
        .decode(signature)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= MAX_SIGNATURE_BYTES)
        .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
    let keys = keys.ok_or(VerifyError::MissingContext("Circle's public keys"))?;

    let mut named = false;
    for (slot, key) in keys.active(now).filter(|(_, key)| key.id == key_id) {
        named = true;
        if parse_key(&key.encoded)?
            .verify_sig(body, &signature)
            .is_ok()
        {
            return Ok(Verified {
                secret: slot,
                key_id: Some(key.id.clone()),
                event_id: None,
                event_type: None,
                signed_at: None,
            });
        }
    }
    Err(if named {
        VerifyError::SignatureMismatch
    } else {
        VerifyError::UnknownKeyId
    })
}

/// Whether `encoded` is a key Circle deliveries can be verified with, for the operator's CLI
/// to refuse a bad one before it is stored.
pub fn check_key(encoded: &str) -> Result<(), VerifyError> {
    parse_key(encoded).map(drop)
}

/// A fresh P-256 public key as Circle publishes it (base64 DER), for other crates' tests.
#[cfg(any(test, feature = "test-util"))]
pub fn test_key() -> String {
    use aws_lc_rs::{encoding::AsDer, signature::KeyPair};
    let Ok(pkcs8) =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
    else {
        return String::new();
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .ok()
        .and_then(|pair| {
            pair.public_key()
                .as_der()
                .ok()
                .map(|der| STANDARD.encode(der.as_ref()))
        })
        .unwrap_or_default()
}

/// A configured key: base64 DER SubjectPublicKeyInfo of a P-256 key.
fn parse_key(encoded: &str) -> Result<ParsedPublicKey, VerifyError> {
    let unusable =
        || VerifyError::UnusableSecret("expected a Circle public key: base64 DER of a P-256 key");
    let der = STANDARD.decode(encoded.trim()).map_err(|_| unusable())?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|_| unusable())
}

/// The headers Circle would send for `body`, signed with a P-256 private key in PKCS#8 DER, for
/// tests and the CLI (Circle's own key never leaves Circle).
pub fn sign(
    body: &[u8],
    private_key_pkcs8: &[u8],
    key_id: &str,
) -> Result<Vec<(String, String)>, VerifyError> {
    let unusable = || VerifyError::UnusableSecret("expected a P-256 private key in PKCS#8 DER");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, private_key_pkcs8)
        .map_err(|_| unusable())?;
    let signature = pair
        .sign(&SystemRandom::new(), body)
        .map_err(|_| unusable())?;
    Ok(vec![
        (SIGNATURE_HEADER.to_owned(), STANDARD.encode(signature)),
        (KEY_ID_HEADER.to_owned(), key_id.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{encoding::AsDer, signature::KeyPair};
    use proptest::prelude::*;

    use super::*;
    use crate::{
        secret::SecretSlot,
        verify::{PublicKey, Scheme, VerifyContext, test_support::*},
    };

    // Circle's published example (its webhook notifications guide): key 879dc113-..., a
    // `webhooks.test` body and its signature; checked independently with Python's
    // `cryptography` (load_der_public_key(...).verify(sig, body, ECDSA(SHA256()))).
    const KEY_ID: &str = "879dc113-5ca4-4ff7-a6b7-54652083fcf8";
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESl76SZPBJemW0mJNN4KTvYkLT8bOT4UGhFhzNk3fJqf6iuPlLQLq533FelXwczJbjg2U1PHTvQTK7qOQnDL2Tg==";
    const SIG: &str = "MEQCIBlJPX7t0FDOcozsRK6qIQwik5Fq6mhAtCSSgIB/yQO7AiB9U5lVpdufKvPhk3cz4TH2f5MP7ArnmPRBmhPztpsIFQ==";
    const BODY: &[u8] = br#"{"subscriptionId":"00000000-0000-0000-0000-000000000000","notificationId":"00000000-0000-0000-0000-000000000000","notificationType":"webhooks.test","notification":{"hello":"world"},"timestamp":"2024-01-26T18:22:19.779834211Z","version":2}"#;

    fn delivery(signature: &str, key_id: &str) -> HeaderMap {
        headers(&[
            ("X-Circle-Signature", signature),
            ("X-Circle-Key-Id", key_id),
        ])
    }

    fn check(body: &[u8], h: &HeaderMap, keys: &PublicKeys) -> Result<Verified, VerifyError> {
        let context = VerifyContext {
            public_keys: Some(keys),
            ..VerifyContext::default()
        };
        verifier(Scheme::Circle).verify_with(body, h, &secrets("unused"), &context, at(1))
    }

    fn published() -> PublicKeys {
        PublicKeys::new([PublicKey::new(KEY_ID, PUBLIC_KEY)])
    }

    /// A fresh key pair: (PKCS#8 private key, base64 SPKI public key).
    fn key_pair() -> (Vec<u8>, String) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("pair");
        let spki = pair.public_key().as_der().expect("spki");
        (pkcs8.as_ref().to_vec(), STANDARD.encode(spki.as_ref()))
    }

    #[test]
    fn the_published_example_verifies() {
        // GIVEN Circle's documented key, body and signature
        let ok = check(BODY, &delivery(SIG, KEY_ID), &published()).expect("valid");
        // THEN the matching key is reported
        assert_eq!(ok.key_id.as_deref(), Some(KEY_ID));
        assert_eq!(ok.secret, SecretSlot::Current);
        assert_eq!(ok.signed_at, None);
    }

    #[test]
    fn a_changed_body_or_another_key_fails() {
        let mut newline = BODY.to_vec();
        newline.push(b'\n');
        assert_eq!(
            check(&newline, &delivery(SIG, KEY_ID), &published()),
            Err(VerifyError::SignatureMismatch)
        );
        let (_, other) = key_pair();
        let wrong_key = PublicKeys::new([PublicKey::new(KEY_ID, other)]);
        assert_eq!(
            check(BODY, &delivery(SIG, KEY_ID), &wrong_key),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn an_unknown_or_expired_key_id_is_its_own_error() {
        // GIVEN the delivery names a key the tenant does not have
        let err = check(BODY, &delivery(SIG, "attacker-key"), &published()).expect_err("unknown");
        // THEN the error says so, is the sender's fault, and does not echo the id
        assert_eq!(err, VerifyError::UnknownKeyId);
        assert_eq!(err.reason(), "unknown_key_id");
        assert!(!err.is_configuration_error());
        assert!(!err.to_string().contains("attacker"));
        let expired = PublicKeys::new([PublicKey::new(KEY_ID, PUBLIC_KEY).expiring(at(1))]);
        assert_eq!(
            check(BODY, &delivery(SIG, KEY_ID), &expired),
            Err(VerifyError::UnknownKeyId)
        );
    }

    #[test]
    fn rotation_accepts_either_configured_key() {
        // GIVEN Circle rotated to a new key and the old one is retiring
        let (new_private, new_public) = key_pair();
        let keys = PublicKeys::new([
            PublicKey::new("key-2", new_public),
            PublicKey::new(KEY_ID, PUBLIC_KEY).expiring(at(100)),
        ]);
        // WHEN deliveries arrive signed by each
        let old = check(BODY, &delivery(SIG, KEY_ID), &keys).expect("old key");
        let pairs = sign(BODY, &new_private, "key-2").expect("sign");
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let h = headers(&pairs);
        let new = check(BODY, &h, &keys).expect("new key");
        // THEN both verify, and the slot tells them apart
        assert_eq!(old.secret, SecretSlot::Previous);
        assert_eq!(new.secret, SecretSlot::Current);
        assert_eq!(new.key_id.as_deref(), Some("key-2"));
    }

    #[test]
    fn bad_headers_and_keys_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        for value in [SIG.trim_end_matches('='), "not base64!", &"A".repeat(200)] {
            assert_eq!(
                &check(BODY, &delivery(value, KEY_ID), &published()),
                &malformed
            );
        }
        let mut doubled = delivery(SIG, KEY_ID);
        doubled.append(KEY_ID_HEADER, http::HeaderValue::from_static("other"));
        assert_eq!(
            check(BODY, &doubled, &published()),
            Err(VerifyError::MalformedHeader(KEY_ID_HEADER.into()))
        );
        assert_eq!(
            check(BODY, &headers(&[("X-Circle-Signature", SIG)]), &published()),
            Err(VerifyError::MissingHeader(KEY_ID_HEADER.into()))
        );
        // A configured key that is not a P-256 key is our mistake.
        let bad = PublicKeys::new([PublicKey::new(KEY_ID, "d2hvb3Bz")]);
        let err = check(BODY, &delivery(SIG, KEY_ID), &bad).expect_err("unusable");
        assert!(err.is_configuration_error(), "{err}");
    }

    #[test]
    fn without_keys_the_scheme_cannot_verify() {
        let err = verifier(Scheme::Circle)
            .verify(BODY, &delivery(SIG, KEY_ID), &secrets("unused"), at(1))
            .expect_err("no keys");
        assert!(matches!(err, VerifyError::MissingContext(_)), "{err}");
    }

    proptest! {
        #[test]
        fn no_header_or_body_makes_it_panic(
            sig in "[ -~]{0,100}",
            id in "[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = check(&body, &delivery(&sig, &id), &published());
            let _ = check(&body, &delivery(&sig, KEY_ID), &published());
        }
    }
}
