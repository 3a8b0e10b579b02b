//! Slack: `X-Slack-Signature: v0=<lowercase hex>` over `v0:{timestamp}:{body}`, with the
//! timestamp in `X-Slack-Request-Timestamp`.

use std::time::SystemTime;

use http::HeaderMap;

use super::{
    Verified, VerifyError, Window,
    mac::{Tag, decode_lower_hex, hmac_sha256, match_secret},
    single_header,
};
use crate::{
    clock::unix_secs,
    secret::{Secret, SecretSet},
};

const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const VERSION: &str = "v0";

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    window: Window,
) -> Result<Verified, VerifyError> {
    let timestamp = single_header(headers, TIMESTAMP_HEADER)?;
    let signature = single_header(headers, SIGNATURE_HEADER)?;
    let signed_at = Window::parse(TIMESTAMP_HEADER, timestamp)?;
    let hex = signature
        .strip_prefix("v0=")
        .ok_or_else(|| VerifyError::NoSupportedSignature(SIGNATURE_HEADER.to_owned()))?;
    let presented = decode_lower_hex(hex)
        .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
    let secret = match_secret(secrets, window.now, &[presented], |secret| {
        Ok(expected(secret, timestamp, body))
    })?;
    window.check(signed_at)?;
    Ok(Verified {
        secret,
        key_id: None,
        event_id: None,
        event_type: None,
        signed_at: Some(signed_at),
    })
}

fn expected(secret: &Secret, timestamp: &str, body: &[u8]) -> Tag {
    hmac_sha256(
        secret.expose().as_bytes(),
        &[VERSION.as_bytes(), b":", timestamp.as_bytes(), b":", body],
    )
}

pub(crate) fn sign(body: &[u8], secret: &Secret, at: SystemTime) -> Vec<(String, String)> {
    let ts = unix_secs(at).to_string();
    let sig = format!("v0={}", hex::encode(expected(secret, &ts, body)));
    vec![
        (TIMESTAMP_HEADER.to_owned(), ts),
        (SIGNATURE_HEADER.to_owned(), sig),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, test_support::*};

    // Slack's documented example request, signature computed with Python's hmac module.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: u64 = 1_531_420_618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebbot&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "bc33a7b8fff46fe303f20f307c19c8f69540cb2fc952bcc56232698f62fd114a";

    fn delivery(signature: &str) -> HeaderMap {
        headers(&[
            ("X-Slack-Request-Timestamp", "1531420618"),
            ("X-Slack-Signature", signature),
        ])
    }

    #[test]
    fn independent_vector_verifies() {
        let verified = verifier(Scheme::Slack)
            .verify(
                BODY,
                &delivery(&format!("v0={SIG}")),
                &secrets(SECRET),
                at(TS),
            )
            .expect("valid");
        assert_eq!(verified.signed_at, Some(at(TS)));
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(Scheme::Slack, SECRET, "another-secret");
    }

    #[test]
    fn bad_signatures_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        let unsupported = Err(VerifyError::NoSupportedSignature(SIGNATURE_HEADER.into()));
        let cases = [
            (format!("v0={}", SIG.to_uppercase()), &malformed),
            (format!("v0={}", &SIG[..60]), &malformed),
            ("v0=".to_owned(), &malformed),
            (format!("V0={SIG}"), &unsupported),
            (format!("v1={SIG}"), &unsupported),
            (
                format!("v0={}", "a".repeat(64)),
                &Err(VerifyError::SignatureMismatch),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                &verifier(Scheme::Slack).verify(BODY, &delivery(&value), &secrets(SECRET), at(TS)),
                want,
                "{value}"
            );
        }
    }
}
