//! Shopify: `X-Shopify-Hmac-Sha256: <base64>`, HMAC-SHA256 over the body keyed with the app's
//! client secret. No timestamp is signed, so replays are stopped by idempotency on
//! `X-Shopify-Webhook-Id`.

use std::time::SystemTime;

use http::HeaderMap;

use super::{
    Verified, VerifyError,
    mac::{Tag, decode_base64_tag, encode_base64, hmac_sha256, match_secret},
    optional_header, single_header,
};
use crate::secret::{Secret, SecretSet};

const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";
const ID_HEADER: &str = "x-shopify-webhook-id";
const TOPIC_HEADER: &str = "x-shopify-topic";

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let signature = single_header(headers, SIGNATURE_HEADER)?;
    let presented = decode_base64_tag(signature)
        .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
    let secret = match_secret(secrets, now, &[presented], |secret| {
        Ok(expected(secret, body))
    })?;
    Ok(Verified {
        secret,
        key_id: None,
        event_id: optional_header(headers, ID_HEADER),
        event_type: optional_header(headers, TOPIC_HEADER),
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
            encode_base64(&expected(secret, body)),
        ),
        (ID_HEADER.to_owned(), id.to_owned()),
        (TOPIC_HEADER.to_owned(), "orders/create".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, test_support::*};

    // Computed with Python: base64(hmac.new(b"shpss_test_secret", BODY, sha256).digest()).
    const SECRET: &str = "shpss_test_secret";
    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    const SIG: &str = "LnwdZPLBbdjkBwPD/lDL1/rYEGby/GHPtL1aAH6Dxjc=";

    fn delivery(signature: &str) -> HeaderMap {
        headers(&[
            ("X-Shopify-Hmac-Sha256", signature),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-Topic", "orders/create"),
        ])
    }

    #[test]
    fn independent_vector_verifies_and_yields_id_and_topic() {
        let verified = verifier(Scheme::Shopify)
            .verify(BODY, &delivery(SIG), &secrets(SECRET), at(1))
            .expect("valid");
        assert_eq!(
            verified.event_id.as_deref(),
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
        );
        assert_eq!(verified.event_type.as_deref(), Some("orders/create"));
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(Scheme::Shopify, SECRET, "shpss_other");
    }

    #[test]
    fn bad_signatures_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        let cases = [
            (&SIG[..40], &malformed),
            (SIG.trim_end_matches('='), &malformed),
            (
                "sha256=LnwdZPLBbdjkBwPD/lDL1/rYEGby/GHPtL1aAH6Dxjc=",
                &malformed,
            ),
            (
                "MnwdZPLBbdjkBwPD/lDL1/rYEGby/GHPtL1aAH6Dxjc=",
                &Err(VerifyError::SignatureMismatch),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                &verifier(Scheme::Shopify).verify(BODY, &delivery(value), &secrets(SECRET), at(1)),
                want,
                "{value}"
            );
        }
    }
}
