//! GitHub: `X-Hub-Signature-256: sha256=<lowercase hex>`, HMAC-SHA256 over the body. GitHub
//! signs no timestamp, so replays are stopped by idempotency on `X-GitHub-Delivery`.

use std::time::SystemTime;

use http::HeaderMap;

use super::{
    Verified, VerifyError,
    mac::{Tag, decode_lower_hex, hmac_sha256, match_secret},
    optional_header, single_header,
};
use crate::secret::{Secret, SecretSet};

const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const DELIVERY_HEADER: &str = "x-github-delivery";
const EVENT_HEADER: &str = "x-github-event";
const PREFIX: &str = "sha256=";

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let header = single_header(headers, SIGNATURE_HEADER)?;
    let hex = header
        .strip_prefix(PREFIX)
        .ok_or_else(|| VerifyError::NoSupportedSignature(SIGNATURE_HEADER.to_owned()))?;
    let presented = decode_lower_hex(hex)
        .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
    let secret = match_secret(secrets, now, &[presented], |secret| {
        Ok(expected(secret, body))
    })?;
    Ok(Verified {
        secret,
        key_id: None,
        event_id: optional_header(headers, DELIVERY_HEADER),
        event_type: optional_header(headers, EVENT_HEADER),
        signed_at: None,
    })
}

fn expected(secret: &Secret, body: &[u8]) -> Tag {
    hmac_sha256(secret.expose().as_bytes(), &[body])
}

pub(crate) fn sign(body: &[u8], secret: &Secret, id: &str) -> Vec<(String, String)> {
    vec![
        (
            SIGNATURE_HEADER.to_owned(),
            format!("{PREFIX}{}", hex::encode(expected(secret, body))),
        ),
        (DELIVERY_HEADER.to_owned(), id.to_owned()),
        (EVENT_HEADER.to_owned(), "ping".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, test_support::*};

    // The example in GitHub's "Validating webhook deliveries" guide.
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn delivery(signature: &str) -> HeaderMap {
        headers(&[
            ("X-Hub-Signature-256", signature),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-GitHub-Event", "push"),
        ])
    }

    #[test]
    fn published_vector_verifies_and_yields_delivery_and_event() {
        let verified = verifier(Scheme::GitHub)
            .verify(
                BODY,
                &delivery(&format!("sha256={SIG}")),
                &secrets(SECRET),
                at(1),
            )
            .expect("valid");
        assert_eq!(
            verified.event_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(verified.event_type.as_deref(), Some("push"));
        assert_eq!(verified.signed_at, None);
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(Scheme::GitHub, SECRET, "another secret");
    }

    #[test]
    fn bad_signatures_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        let unsupported = Err(VerifyError::NoSupportedSignature(SIGNATURE_HEADER.into()));
        let cases = [
            (format!("sha256={}", SIG.to_uppercase()), &malformed),
            (format!("sha256={}", &SIG[..62]), &malformed),
            ("sha256=".to_owned(), &malformed),
            (format!("SHA256={SIG}"), &unsupported),
            (format!("sha1={SIG}"), &unsupported),
            (SIG.to_owned(), &unsupported),
            (
                format!("sha256={}", "f".repeat(64)),
                &Err(VerifyError::SignatureMismatch),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                &verifier(Scheme::GitHub).verify(BODY, &delivery(&value), &secrets(SECRET), at(1)),
                want,
                "{value}"
            );
        }
    }
}
