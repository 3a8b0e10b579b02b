//! Standard Webhooks and Svix, the scheme Clerk and Resend sign with: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature` (or the same with a `svix-` prefix), base64
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the base64 part of a `whsec_` secret.
//! The signature header holds space-separated `<version>,<base64>` entries; all are tried.
//!
//! The standard also has an asymmetric version, `v1a`: Ed25519 over the same content, verified
//! with the sender's public key, `whpk_` + base64 of its 32 bytes (the signer keeps `whsk_` +
//! base64 of the 64-byte seed and public key, as Svix serialises them). A tenant's secrets may
//! be either kind, told apart by prefix as the standard intends, so rotating from a shared
//! secret to a public key (or back) is an ordinary rotation, and a header may carry `v1` and
//! `v1a` entries side by side. An entry counts only if an active secret can check its version:
//! `v1a` entries are ignored while the tenant has no public key, `v1` entries while it has no
//! shared secret. Ed25519 verification is aws-lc-rs's.

use std::time::SystemTime;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{
    Verified, VerifyError, Window,
    mac::{Tag, decode_base64_tag, encode_base64, hmac_sha256},
    single_header,
};
use crate::{
    clock::unix_secs,
    secret::{Secret, SecretSet, SecretSlot},
};

/// The two header families: the standard's, and Svix's original names.
const PREFIXES: [&str; 2] = ["webhook", "svix"];
const SECRET_PREFIX: &str = "whsec_";
const PUBLIC_KEY_PREFIX: &str = "whpk_";
const SIGNING_KEY_PREFIX: &str = "whsk_";
const ED25519_SIGNATURE_BYTES: usize = 64;

struct Names {
    id: String,
    timestamp: String,
    signature: String,
}

impl Names {
    fn with_prefix(prefix: &str) -> Self {
        Self {
            id: format!("{prefix}-id"),
            timestamp: format!("{prefix}-timestamp"),
            signature: format!("{prefix}-signature"),
        }
    }

    /// The family the delivery uses: the first whose id header is present.
    fn detect(headers: &HeaderMap) -> Self {
        let prefix = PREFIXES
            .into_iter()
            .find(|p| headers.contains_key(format!("{p}-id").as_str()))
            .unwrap_or(PREFIXES[0]);
        Self::with_prefix(prefix)
    }
}

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    window: Window,
) -> Result<Verified, VerifyError> {
    let names = Names::detect(headers);
    let id = single_header(headers, &names.id)?;
    let timestamp = single_header(headers, &names.timestamp)?;
    let signature = single_header(headers, &names.signature)?;
    let signed_at = Window::parse(&names.timestamp, timestamp)?;

    let (symmetric, asymmetric) =
        secrets
            .active(window.now)
            .fold((false, false), |(sym, asym), (_, secret)| {
                let a = is_asymmetric(secret);
                (sym || !a, asym || a)
            });
    let mut tags = Vec::new();
    let mut signatures = Vec::new();
    let mut any_supported = false;
    for entry in signature.split(' ').filter(|e| !e.is_empty()) {
        let (version, value) = entry
            .split_once(',')
            .ok_or_else(|| VerifyError::MalformedHeader(names.signature.clone()))?;
        match version {
            "v1" if symmetric => {
                any_supported = true;
                tags.extend(decode_base64_tag(value));
            }
            "v1a" if asymmetric => {
                any_supported = true;
                signatures.extend(decode_ed25519_signature(value));
            }
            _ => {}
        }
    }
    if !any_supported {
        return Err(VerifyError::NoSupportedSignature(names.signature));
    }
    if tags.is_empty() && signatures.is_empty() {
        return Err(VerifyError::MalformedHeader(names.signature));
    }

    let secret = match_any(secrets, window.now, id, timestamp, body, &tags, &signatures)?;
    window.check(signed_at)?;
    Ok(Verified {
        secret,
        key_id: None,
        event_id: Some(id.to_owned()),
        event_type: None,
        signed_at: Some(signed_at),
    })
}

/// The first active secret that verifies one of the presented entries of its kind: `v1` tags
/// compared in constant time, `v1a` signatures checked with the public key.
fn match_any(
    secrets: &SecretSet,
    now: SystemTime,
    id: &str,
    timestamp: &str,
    body: &[u8],
    tags: &[Tag],
    signatures: &[[u8; ED25519_SIGNATURE_BYTES]],
) -> Result<SecretSlot, VerifyError> {
    let mut content = None;
    for (slot, secret) in secrets.active(now) {
        let matched = if is_asymmetric(secret) {
            let key = verifying_key(secret)?;
            let content = content.get_or_insert_with(|| signed_content(id, timestamp, body));
            signatures
                .iter()
                .any(|signature| key.verify_sig(content, signature).is_ok())
        } else {
            let want = expected(&key(secret)?, id, timestamp, body);
            let mut found = subtle::Choice::from(0);
            for tag in tags {
                found |= want.ct_eq(tag);
            }
            bool::from(found)
        };
        if matched {
            return Ok(slot);
        }
    }
    Err(VerifyError::SignatureMismatch)
}

fn is_asymmetric(secret: &Secret) -> bool {
    let text = secret.expose();
    text.starts_with(PUBLIC_KEY_PREFIX) || text.starts_with(SIGNING_KEY_PREFIX)
}

/// Standard, padded base64 of exactly one Ed25519 signature.
fn decode_ed25519_signature(text: &str) -> Option<[u8; ED25519_SIGNATURE_BYTES]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat()
}

/// The public key of a `whpk_` secret, or of the pair in a `whsk_` one.
fn verifying_key(secret: &Secret) -> Result<ParsedPublicKey, VerifyError> {
    let text = secret.expose();
    let raw = match text.strip_prefix(PUBLIC_KEY_PREFIX) {
        Some(encoded) => STANDARD
            .decode(encoded)
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or(UNUSABLE_PUBLIC_KEY)?,
        None => signing_key(secret)?.public_key().as_ref().to_vec(),
    };
    ParsedPublicKey::new(&ED25519, raw).map_err(|_| UNUSABLE_PUBLIC_KEY)
}

const UNUSABLE_PUBLIC_KEY: VerifyError =
    VerifyError::UnusableSecret("expected whpk_ followed by base64 of a 32-byte Ed25519 key");

/// The key pair of a `whsk_` secret: base64 of the 32-byte seed followed by the 32-byte public
/// key (which must belong to the seed), or of the seed alone.
fn signing_key(secret: &Secret) -> Result<Ed25519KeyPair, VerifyError> {
    let unusable = VerifyError::UnusableSecret(
        "expected whsk_ followed by base64 of an Ed25519 seed and public key",
    );
    let encoded = secret
        .expose()
        .strip_prefix(SIGNING_KEY_PREFIX)
        .ok_or_else(|| unusable.clone())?;
    let bytes = STANDARD.decode(encoded).map_err(|_| unusable.clone())?;
    match bytes.len() {
        64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..]),
        32 => Ed25519KeyPair::from_seed_unchecked(&bytes),
        _ => return Err(unusable),
    }
    .map_err(|_| unusable)
}

/// The HMAC key: the base64 after an optional `whsec_` prefix.
fn key(secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    let text = secret.expose();
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    STANDARD
        .decode(encoded)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or(VerifyError::UnusableSecret(
            "expected whsec_ followed by base64",
        ))
}

fn expected(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Tag {
    hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
}

/// Whether `secret` is a key deliveries can be verified with: a `whpk_` public key is parsed as
/// the verifier parses it (it verifies but cannot sign); any other is tried by signing.
pub(crate) fn check_secret(secret: &Secret) -> Result<(), VerifyError> {
    if secret.expose().starts_with(PUBLIC_KEY_PREFIX) {
        return verifying_key(secret).map(drop);
    }
    sign(b"", secret, SystemTime::UNIX_EPOCH, "msg_check").map(drop)
}

pub(crate) fn sign(
    body: &[u8],
    secret: &Secret,
    at: SystemTime,
    id: &str,
) -> Result<Vec<(String, String)>, VerifyError> {
    let names = Names::with_prefix(PREFIXES[0]);
    let ts = unix_secs(at).to_string();
    let text = secret.expose();
    let signature = if text.starts_with(SIGNING_KEY_PREFIX) {
        let signature = signing_key(secret)?.sign(&signed_content(id, &ts, body));
        format!("v1a,{}", STANDARD.encode(signature.as_ref()))
    } else if text.starts_with(PUBLIC_KEY_PREFIX) {
        return Err(VerifyError::UnusableSecret(
            "a whpk_ public key verifies but cannot sign; sign with the whsk_ key",
        ));
    } else {
        let tag = expected(&key(secret)?, id, &ts, body);
        format!("v1,{}", encode_base64(&tag))
    };
    Ok(vec![
        (names.id, id.to_owned()),
        (names.timestamp, ts),
        (names.signature, signature),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        secret::SecretSlot,
        verify::{Scheme, test_support::*},
    };

    // The example published with the Svix / Standard Webhooks libraries (checked with Python).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn delivery(prefix: &str, signature: &str) -> HeaderMap {
        let ts = TS.to_string();
        headers(&[
            (&format!("{prefix}-id"), ID),
            (&format!("{prefix}-timestamp"), &ts),
            (&format!("{prefix}-signature"), signature),
        ])
    }

    #[test]
    fn published_vector_verifies_with_both_header_families() {
        for prefix in ["webhook", "svix", "Svix", "WEBHOOK"] {
            let verified = verifier(Scheme::StandardWebhooks)
                .verify(BODY, &delivery(prefix, SIG), &secrets(SECRET), at(TS))
                .expect(prefix);
            assert_eq!(verified.secret, SecretSlot::Current);
            assert_eq!(verified.event_id.as_deref(), Some(ID));
        }
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(
            Scheme::StandardWebhooks,
            SECRET,
            "whsec_dGhlIG90aGVyIHNlY3JldA==",
        );
    }

    #[test]
    fn any_of_several_signatures_matches() {
        let wrong = format!("v1,{}", encode_base64(&[0; 32]));
        for value in [
            format!("{wrong} {SIG}"),
            format!("{SIG} {wrong}"),
            format!("v1a,c2lnbmF0dXJl {SIG}"),
            format!("v2,{} {SIG}", encode_base64(&[1; 32])),
        ] {
            let result = verifier(Scheme::StandardWebhooks).verify(
                BODY,
                &delivery("webhook", &value),
                &secrets(SECRET),
                at(TS),
            );
            assert!(result.is_ok(), "{value}: {result:?}");
        }
    }

    #[test]
    fn bad_signatures_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader("webhook-signature".into()));
        let unsupported = Err(VerifyError::NoSupportedSignature(
            "webhook-signature".into(),
        ));
        let b64 = SIG.trim_start_matches("v1,");
        let cases = [
            (format!("v1,{}", &b64[..43]), &malformed),
            (format!("v1,{}", b64.trim_end_matches('=')), &malformed),
            ("v1,".to_owned(), &malformed),
            (b64.to_owned(), &malformed),
            (format!("V1,{b64}"), &unsupported),
            (format!("v1a,{b64}"), &unsupported),
            (
                format!("v1,{}", b64.replacen('g', "h", 1)),
                &Err(VerifyError::SignatureMismatch),
            ),
        ];
        let v = verifier(Scheme::StandardWebhooks);
        for (value, want) in cases {
            assert_eq!(
                &v.verify(BODY, &delivery("webhook", &value), &secrets(SECRET), at(TS)),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn the_id_is_signed() {
        let mut h = delivery("webhook", SIG);
        h.insert("webhook-id", http::HeaderValue::from_static("msg_other"));
        assert_eq!(
            verifier(Scheme::StandardWebhooks).verify(BODY, &h, &secrets(SECRET), at(TS)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_is_a_configuration_error() {
        let err = verifier(Scheme::StandardWebhooks)
            .verify(
                BODY,
                &delivery("webhook", SIG),
                &secrets("whsec_***"),
                at(TS),
            )
            .expect_err("unusable");
        assert!(err.is_configuration_error());
    }

    // The asymmetric example from Svix's server tests (the spec's header example carries the
    // same v1a signature): the key pair, and the v1a signature of the v1 vector's content.
    // Checked independently with Python's `cryptography` (Ed25519PublicKey.verify).
    const SIGNING_KEY: &str = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    const PUBLIC_KEY: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    const SIG_V1A: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";

    fn with_previous(current: &str, previous: &str) -> SecretSet {
        secrets(previous).rotate(Secret::new(current), at(TS + 60))
    }

    #[test]
    fn the_published_v1a_vector_verifies_with_the_public_key() {
        // GIVEN a tenant that trusts the sender's whpk_ public key
        // WHEN the published v1a delivery arrives
        let ok = verifier(Scheme::StandardWebhooks)
            .verify(
                BODY,
                &delivery("webhook", SIG_V1A),
                &secrets(PUBLIC_KEY),
                at(TS),
            )
            .expect("valid");
        // THEN it verifies, reporting the id and time as v1 does
        assert_eq!(ok.secret, SecretSlot::Current);
        assert_eq!(ok.event_id.as_deref(), Some(ID));
        assert_eq!(ok.signed_at, Some(at(TS)));
        // and a tenant holding the signing key itself verifies too
        assert!(
            verifier(Scheme::StandardWebhooks)
                .verify(
                    BODY,
                    &delivery("svix", SIG_V1A),
                    &secrets(SIGNING_KEY),
                    at(TS)
                )
                .is_ok()
        );
    }

    #[test]
    fn v1a_signing_reproduces_the_published_signature() {
        // Ed25519 is deterministic, so signing the same content gives the same bytes.
        let h = Scheme::StandardWebhooks
            .sign(BODY, &Secret::new(SIGNING_KEY), at(TS), ID)
            .expect("sign");
        assert_eq!(h[2], ("webhook-signature".to_owned(), SIG_V1A.to_owned()));
        let err = Scheme::StandardWebhooks
            .sign(BODY, &Secret::new(PUBLIC_KEY), at(TS), ID)
            .expect_err("a public key cannot sign");
        assert!(err.is_configuration_error());
    }

    #[test]
    fn v1_and_v1a_entries_mix_and_either_key_may_match() {
        let mixed = format!("{SIG} {SIG_V1A}");
        let v = verifier(Scheme::StandardWebhooks);
        let h = delivery("webhook", &mixed);
        // GIVEN a tenant rotating from a shared secret to a public key, or back
        let to_public = with_previous(PUBLIC_KEY, SECRET);
        let to_shared = with_previous(SECRET, PUBLIC_KEY);
        // THEN a header with both entries verifies with the current key of either kind
        assert_eq!(
            v.verify(BODY, &h, &to_public, at(TS)).map(|o| o.secret),
            Ok(SecretSlot::Current)
        );
        assert_eq!(
            v.verify(BODY, &h, &to_shared, at(TS)).map(|o| o.secret),
            Ok(SecretSlot::Current)
        );
        // and a header with only the old kind verifies with the previous key until it expires
        let old_only = delivery("webhook", SIG);
        assert_eq!(
            v.verify(BODY, &old_only, &to_public, at(TS))
                .map(|o| o.secret),
            Ok(SecretSlot::Previous)
        );
        assert_eq!(
            v.verify(BODY, &old_only, &to_public, at(TS + 60)),
            Err(VerifyError::NoSupportedSignature(
                "webhook-signature".into()
            ))
        );
    }

    #[test]
    fn v1a_is_refused_when_anything_signed_changes() {
        let v = verifier(Scheme::StandardWebhooks);
        let keys = secrets(PUBLIC_KEY);
        let mut tampered = BODY.to_vec();
        tampered[3] ^= 1;
        assert_eq!(
            v.verify(&tampered, &delivery("webhook", SIG_V1A), &keys, at(TS)),
            Err(VerifyError::SignatureMismatch)
        );
        let mut other_id = delivery("webhook", SIG_V1A);
        other_id.insert("webhook-id", http::HeaderValue::from_static("msg_other"));
        assert_eq!(
            v.verify(BODY, &other_id, &keys, at(TS)),
            Err(VerifyError::SignatureMismatch)
        );
        let b64 = SIG_V1A.trim_start_matches("v1a,");
        let malformed = Err(VerifyError::MalformedHeader("webhook-signature".into()));
        for value in [
            format!("v1a,{}", &b64[..86]),
            format!("v1a,{}", b64.trim_end_matches('=')),
            "v1a,".to_owned(),
        ] {
            assert_eq!(
                v.verify(BODY, &delivery("webhook", &value), &keys, at(TS)),
                malformed,
                "{value}"
            );
        }
        // A v1 entry means nothing to a tenant that has only a public key.
        assert_eq!(
            v.verify(BODY, &delivery("webhook", SIG), &keys, at(TS)),
            Err(VerifyError::NoSupportedSignature(
                "webhook-signature".into()
            ))
        );
    }

    #[test]
    fn a_verify_only_public_key_is_checked_by_parsing_it_not_by_signing() {
        assert_eq!(check_secret(&Secret::new(PUBLIC_KEY)), Ok(()));
        assert_eq!(check_secret(&Secret::new(SIGNING_KEY)), Ok(()));
        for bad in ["whpk_***", "whpk_c2hvcnQ=", "whsk_c2hvcnQ="] {
            let err = check_secret(&Secret::new(bad)).expect_err("unusable");
            assert!(err.is_configuration_error(), "{bad}: {err}");
        }
    }

    #[test]
    fn an_unusable_public_key_is_a_configuration_error() {
        for bad in ["whpk_***", "whpk_c2hvcnQ=", "whsk_c2hvcnQ="] {
            let err = verifier(Scheme::StandardWebhooks)
                .verify(BODY, &delivery("webhook", SIG_V1A), &secrets(bad), at(TS))
                .expect_err("unusable");
            assert!(err.is_configuration_error(), "{bad}: {err}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
        // A whsk_ whose public half belongs to another seed is refused, not trusted.
        let mismatched = format!("whsk_{}", STANDARD.encode([[7u8; 32], [1u8; 32]].concat()));
        assert!(
            verifier(Scheme::StandardWebhooks)
                .verify(
                    BODY,
                    &delivery("webhook", SIG_V1A),
                    &secrets(&mismatched),
                    at(TS)
                )
                .expect_err("inconsistent pair")
                .is_configuration_error()
        );
    }

    #[test]
    fn common_battery_v1a() {
        crate::verify::test_support::common_battery(
            Scheme::StandardWebhooks,
            SIGNING_KEY,
            "whsk_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
        );
    }
}
