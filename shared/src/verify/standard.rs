//! Standard Webhooks and Svix, the scheme Clerk and Resend sign with: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature` (or the same with a `svix-` prefix), base64
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the base64 part of a `whsec_` secret.
//! The signature header holds space-separated `v1,<base64>` entries; all are tried, other
//! versions (such as asymmetric `v1a`) are ignored.

use std::time::SystemTime;

use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderMap;

use super::{
    Verified, VerifyError, Window,
    mac::{Tag, decode_base64_tag, encode_base64, hmac_sha256, match_secret},
    single_header,
};
use crate::{
    clock::unix_secs,
    secret::{Secret, SecretSet},
};

/// The two header families: the standard's, and Svix's original names.
const PREFIXES: [&str; 2] = ["webhook", "svix"];
const SECRET_PREFIX: &str = "whsec_";

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

    let mut presented = Vec::new();
    let mut any_v1 = false;
    for entry in signature.split(' ').filter(|e| !e.is_empty()) {
        let (version, value) = entry
            .split_once(',')
            .ok_or_else(|| VerifyError::MalformedHeader(names.signature.clone()))?;
        if version == "v1" {
            any_v1 = true;
            presented.extend(decode_base64_tag(value));
        }
    }
    if !any_v1 {
        return Err(VerifyError::NoSupportedSignature(names.signature));
    }
    if presented.is_empty() {
        return Err(VerifyError::MalformedHeader(names.signature));
    }

    let secret = match_secret(secrets, window.now, &presented, |secret| {
        Ok(expected(&key(secret)?, id, timestamp, body))
    })?;
    window.check(signed_at)?;
    Ok(Verified {
        secret,
        event_id: Some(id.to_owned()),
        event_type: None,
        signed_at: Some(signed_at),
    })
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

pub(crate) fn sign(
    body: &[u8],
    secret: &Secret,
    at: SystemTime,
    id: &str,
) -> Result<Vec<(String, String)>, VerifyError> {
    let names = Names::with_prefix(PREFIXES[0]);
    let ts = unix_secs(at).to_string();
    let tag = expected(&key(secret)?, id, &ts, body);
    Ok(vec![
        (names.id, id.to_owned()),
        (names.timestamp, ts),
        (names.signature, format!("v1,{}", encode_base64(&tag))),
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
}
