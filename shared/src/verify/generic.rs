//! Generic HMAC-SHA256, the contract for providers without a scheme of their own: lowercase hex
//! HMAC-SHA256 over `{timestamp}.{body}`, sent in configurable headers (by default
//! `X-Webhook-Signature` and `X-Webhook-Timestamp`), inside the replay window.

use std::time::SystemTime;

use http::HeaderMap;

use super::{
    Verified, VerifyError, Window,
    mac::{Tag, decode_lower_hex, hmac_sha256, match_secret},
    optional_header, single_header,
};
use crate::{
    clock::unix_secs,
    secret::{Secret, SecretSet},
};

/// The header names a generic provider uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericHeaders {
    pub signature: String,
    pub timestamp: String,
    /// Where the event id travels, if in a header; otherwise it is read from the body.
    pub id: Option<String>,
}

impl Default for GenericHeaders {
    fn default() -> Self {
        Self {
            signature: "x-webhook-signature".to_owned(),
            timestamp: "x-webhook-timestamp".to_owned(),
            id: Some("x-webhook-id".to_owned()),
        }
    }
}

pub(crate) fn verify(
    names: &GenericHeaders,
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    window: Window,
) -> Result<Verified, VerifyError> {
    let timestamp = single_header(headers, &names.timestamp)?;
    let signature = single_header(headers, &names.signature)?;
    let signed_at = Window::parse(&names.timestamp, timestamp)?;
    let presented = decode_lower_hex(signature)
        .ok_or_else(|| VerifyError::MalformedHeader(names.signature.clone()))?;
    let secret = match_secret(secrets, window.now, &[presented], |secret| {
        Ok(expected(secret, timestamp, body))
    })?;
    window.check(signed_at)?;
    Ok(Verified {
        secret,
        key_id: None,
        event_id: names
            .id
            .as_deref()
            .and_then(|n| optional_header(headers, n)),
        event_type: None,
        signed_at: Some(signed_at),
    })
}

fn expected(secret: &Secret, timestamp: &str, body: &[u8]) -> Tag {
    hmac_sha256(
        secret.expose().as_bytes(),
        &[timestamp.as_bytes(), b".", body],
    )
}

pub(crate) fn sign(
    names: &GenericHeaders,
    body: &[u8],
    secret: &Secret,
    at: SystemTime,
    id: &str,
) -> Vec<(String, String)> {
    let ts = unix_secs(at).to_string();
    let sig = hex::encode(expected(secret, &ts, body));
    let mut headers = vec![
        (names.timestamp.clone(), ts),
        (names.signature.clone(), sig),
    ];
    headers.extend(names.id.clone().map(|name| (name, id.to_owned())));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, test_support::*};

    // Computed with Python: hmac.new(b"gen_test_secret", b"1700000000." + BODY, sha256).hexdigest().
    const SECRET: &str = "gen_test_secret";
    const TS: u64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_42","type":"payment.settled"}"#;
    const SIG: &str = "79aac90c5e6ecf8f848a3bd104bab8ed14847b14554fa8b2c6b017ede7cd011b";

    fn scheme() -> Scheme {
        Scheme::Generic(GenericHeaders::default())
    }

    #[test]
    fn independent_vector_verifies() {
        let h = headers(&[
            ("X-Webhook-Timestamp", "1700000000"),
            ("X-Webhook-Signature", SIG),
            ("X-Webhook-Id", "evt_42"),
        ]);
        let verified = verifier(scheme())
            .verify(BODY, &h, &secrets(SECRET), at(TS))
            .expect("valid");
        assert_eq!(verified.event_id.as_deref(), Some("evt_42"));
    }

    #[test]
    fn header_names_are_configurable() {
        let names = GenericHeaders {
            signature: "omni-signature".into(),
            timestamp: "omni-timestamp".into(),
            id: None,
        };
        let h = headers(&[("Omni-Timestamp", "1700000000"), ("Omni-Signature", SIG)]);
        assert!(
            verifier(Scheme::Generic(names.clone()))
                .verify(BODY, &h, &secrets(SECRET), at(TS))
                .is_ok()
        );
        assert_eq!(
            verifier(scheme()).verify(BODY, &h, &secrets(SECRET), at(TS)),
            Err(VerifyError::MissingHeader("x-webhook-timestamp".into()))
        );
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(scheme(), SECRET, "gen_other_secret");
    }

    #[test]
    fn bad_signatures_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader("x-webhook-signature".into()));
        let cases = [
            (SIG.to_uppercase(), &malformed),
            (SIG[..63].to_owned(), &malformed),
            (format!("sha256={SIG}"), &malformed),
            (format!("v1={SIG}"), &malformed),
            ("0".repeat(64), &Err(VerifyError::SignatureMismatch)),
        ];
        for (value, want) in cases {
            let h = headers(&[
                ("X-Webhook-Timestamp", "1700000000"),
                ("X-Webhook-Signature", &value),
            ]);
            assert_eq!(
                &verifier(scheme()).verify(BODY, &h, &secrets(SECRET), at(TS)),
                want,
                "{value}"
            );
        }
        let stale = headers(&[
            ("X-Webhook-Timestamp", "1700000000.5"),
            ("X-Webhook-Signature", SIG),
        ]);
        assert_eq!(
            verifier(scheme()).verify(BODY, &stale, &secrets(SECRET), at(TS)),
            Err(VerifyError::MalformedHeader("x-webhook-timestamp".into()))
        );
    }
}
