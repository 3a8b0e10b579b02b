//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 over `{t}.{body}`
//! keyed with the whole `whsec_...` string. Every `v1` entry is tried (Stripe sends several while
//! an endpoint secret is being rolled); `v0` and unknown schemes are ignored.

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

pub(crate) const SIGNATURE_HEADER: &str = "stripe-signature";

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    window: Window,
) -> Result<Verified, VerifyError> {
    let header = single_header(headers, SIGNATURE_HEADER)?;
    let malformed = || VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned());

    let mut timestamp = None;
    let mut presented = Vec::new();
    let mut any_v1 = false;
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or_else(malformed)?;
        match key {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "t" => return Err(malformed()),
            "v1" => {
                any_v1 = true;
                presented.extend(decode_lower_hex(value));
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(malformed)?;
    let signed_at = Window::parse(SIGNATURE_HEADER, timestamp)?;
    if !any_v1 {
        return Err(VerifyError::NoSupportedSignature(
            SIGNATURE_HEADER.to_owned(),
        ));
    }
    if presented.is_empty() {
        return Err(malformed());
    }

    let secret = match_secret(secrets, window.now, &presented, |secret| {
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
        &[timestamp.as_bytes(), b".", body],
    )
}

pub(crate) fn sign(body: &[u8], secret: &Secret, at: SystemTime) -> Vec<(String, String)> {
    let t = unix_secs(at).to_string();
    let v1 = hex::encode(expected(secret, &t, body));
    vec![(SIGNATURE_HEADER.to_owned(), format!("t={t},v1={v1}"))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        secret::SecretSlot,
        verify::{Scheme, test_support::*},
    };

    // Computed with Python's hmac module:
    // hmac.new(b"whsec_test_secret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    const BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000}"#;
    const SECRET: &str = "whsec_test_secret";
    const TS: u64 = 1_700_000_000;
    const SIG: &str = "41da23d93534f7d7d0d533391b027cf2615dc843045a24d7eab0a2581bb98103";

    fn header(value: &str) -> HeaderMap {
        headers(&[("Stripe-Signature", value)])
    }

    #[test]
    fn independent_vector_verifies() {
        let h = header(&format!("t={TS},v1={SIG}"));
        let verified = verifier(Scheme::Stripe)
            .verify(BODY, &h, &secrets(SECRET), at(TS))
            .expect("valid");
        assert_eq!(verified.secret, SecretSlot::Current);
        assert_eq!(verified.signed_at, Some(at(TS)));
    }

    #[test]
    fn common_battery() {
        crate::verify::test_support::common_battery(Scheme::Stripe, SECRET, "whsec_other");
    }

    #[test]
    fn any_of_several_v1_entries_matches() {
        let wrong = "0".repeat(64);
        for value in [
            format!("t={TS},v1={wrong},v1={SIG}"),
            format!("t={TS},v1={SIG},v1={wrong}"),
            format!("t={TS},v0={wrong},v1={SIG},scheme=x"),
        ] {
            assert!(
                verifier(Scheme::Stripe)
                    .verify(BODY, &header(&value), &secrets(SECRET), at(TS))
                    .is_ok(),
                "{value}"
            );
        }
    }

    #[test]
    fn bad_signatures_are_refused() {
        let v = verifier(Scheme::Stripe);
        let s = secrets(SECRET);
        let mismatch = Err(VerifyError::SignatureMismatch);
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        let cases = [
            (format!("t={TS},v1={}", SIG.to_uppercase()), &malformed),
            (format!("t={TS},v1={}", &SIG[..63]), &malformed),
            (format!("t={TS},v1="), &malformed),
            (
                format!("t={TS},V1={SIG}"),
                &Err(VerifyError::NoSupportedSignature(SIGNATURE_HEADER.into())),
            ),
            (
                format!("t={TS},v0={SIG}"),
                &Err(VerifyError::NoSupportedSignature(SIGNATURE_HEADER.into())),
            ),
            (format!("v1={SIG}"), &malformed),
            (format!("t={TS},t={TS},v1={SIG}"), &malformed),
            (format!("t=x{TS},v1={SIG}"), &malformed),
            (format!("t=-{TS},v1={SIG}"), &malformed),
            (format!("t={TS};v1={SIG}"), &malformed),
            (format!("t={},v1={SIG}", TS + 1), &mismatch),
            (format!("t={TS},v1={}", "0".repeat(64)), &mismatch),
        ];
        for (value, want) in cases {
            assert_eq!(
                &v.verify(BODY, &header(&value), &s, at(TS)),
                want,
                "{value}"
            );
        }
    }
}
