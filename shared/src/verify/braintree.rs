//! Braintree: the notification is a form, `bt_signature=<public key>|<hex HMAC-SHA1>[&...]`
//! and `bt_payload=<base64 XML>`, the HMAC keyed with the SHA-1 of the tenant's private key
//! over the payload (or the payload and a newline, as Braintree's own libraries accept). The
//! tenant's secret is `PUBLIC_KEY:PRIVATE_KEY`. Braintree checks a new destination with a
//! `GET ?bt_challenge=<hex>`, answered `<public key>|<HMAC of the challenge>` ([`challenge`]).
//! Nothing is signed in a header and no time is signed: replays are stopped by the event id,
//! the hash of the signed payload.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{Verified, VerifyError};
use crate::secret::{Secret, SecretSet};

pub(crate) const SIGNATURE_FIELD: &str = "form field bt_signature";
pub(crate) const PAYLOAD_FIELD: &str = "form field bt_payload";

/// The payload and signature fields of a notification form, each present once.
pub fn fields(body: &[u8]) -> Result<(String, String), VerifyError> {
    let mut signature = None;
    let mut payload = None;
    for (name, value) in form_urlencoded::parse(body) {
        let (slot, label) = match name.as_ref() {
            "bt_signature" => (&mut signature, SIGNATURE_FIELD),
            "bt_payload" => (&mut payload, PAYLOAD_FIELD),
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(VerifyError::MalformedHeader(label.to_owned()));
        }
    }
    let signature = signature.ok_or_else(|| VerifyError::MissingHeader(SIGNATURE_FIELD.into()))?;
    let payload = payload.ok_or_else(|| VerifyError::MissingHeader(PAYLOAD_FIELD.into()))?;
    let base64ish = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n');
    if payload.is_empty() || !payload.bytes().all(base64ish) {
        return Err(VerifyError::MalformedHeader(PAYLOAD_FIELD.into()));
    }
    Ok((signature, payload))
}

pub(crate) fn verify(
    body: &[u8],
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let (signature, payload) = fields(body)?;
    for (slot, secret) in secrets.active(now) {
        let (public, private) = keys(secret)?;
        let Some(presented) = signature
            .split('&')
            .filter_map(|pair| pair.split_once('|'))
            .find(|(key, _)| *key == public)
            .map(|(_, sig)| sig)
        else {
            continue;
        };
        let Some(presented) = decode_hex(presented) else {
            return Err(VerifyError::MalformedHeader(SIGNATURE_FIELD.into()));
        };
        let with_newline = format!("{payload}\n");
        let matched = [payload.as_str(), with_newline.as_str()]
            .iter()
            .any(|content| bool::from(mac(private, content.as_bytes()).ct_eq(&presented)));
        if matched {
            return Ok(Verified {
                secret: slot,
                key_id: Some(public.to_owned()),
                event_id: None,
                event_type: None,
                signed_at: None,
            });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// The answer to Braintree's destination check: `<public key>|<hex HMAC of the challenge>`,
/// for a challenge of 20 to 32 lowercase hex digits (as Braintree's libraries require).
pub fn challenge(secret: &Secret, challenge: &str) -> Result<String, VerifyError> {
    let hex_digits = challenge
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !(20..=32).contains(&challenge.len()) || !hex_digits {
        return Err(VerifyError::MalformedHeader("bt_challenge".into()));
    }
    let (public, private) = keys(secret)?;
    Ok(format!(
        "{public}|{}",
        hex::encode(mac(private, challenge.as_bytes()))
    ))
}

/// A notification form for `payload_xml`, signed as Braintree signs: for tests and samples.
pub fn sign(payload_xml: &[u8], secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    use base64::Engine;
    let (public, private) = keys(secret)?;
    // Braintree's payload is MIME base64: lines of 76 characters, each ending in a newline.
    let encoded = base64::engine::general_purpose::STANDARD.encode(payload_xml);
    let mut payload = String::new();
    for line in encoded.as_bytes().chunks(76) {
        payload.push_str(std::str::from_utf8(line).unwrap_or_default());
        payload.push('\n');
    }
    let signature = format!("{public}|{}", hex::encode(mac(private, payload.as_bytes())));
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_signature", &signature)
        .append_pair("bt_payload", &payload)
        .finish()
        .into_bytes())
}

pub(crate) fn check_secret(secret: &Secret) -> Result<(), VerifyError> {
    keys(secret).map(drop)
}

/// `PUBLIC_KEY:PRIVATE_KEY`, both non-empty, the public key without the signature's separators.
fn keys(secret: &Secret) -> Result<(&str, &str), VerifyError> {
    secret
        .expose()
        .split_once(':')
        .filter(|(public, private)| {
            !public.is_empty() && !private.is_empty() && !public.contains(['|', '&'])
        })
        .ok_or(VerifyError::UnusableSecret(
            "expected Braintree's PUBLIC_KEY:PRIVATE_KEY",
        ))
}

/// HMAC-SHA1 keyed with the SHA-1 of the private key, as Braintree's `Crypto.sha1_hmac_hash`.
fn mac(private: &str, content: &[u8]) -> [u8; 20] {
    let key = Sha1::digest(private.as_bytes());
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// Exactly 40 lowercase hex digits.
fn decode_hex(text: &str) -> Option<[u8; 20]> {
    let lower = text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut out = [0u8; 20];
    (lower && hex::decode_to_slice(text, &mut out).is_ok()).then_some(out)
}

/// The notification's kind and time, read from the decoded XML without an XML parser: the
/// payload is signed, and only two plain elements are looked at.
pub fn kind_and_time(payload: &str) -> (Option<String>, Option<String>) {
    use base64::Engine;
    let compact: String = payload.chars().filter(|c| *c != '\n').collect();
    let Ok(xml) = base64::engine::general_purpose::STANDARD.decode(compact) else {
        return (None, None);
    };
    let xml = String::from_utf8_lossy(&xml);
    let element = |open: &str| {
        let start = xml.find(open)? + open.len();
        let end = start + xml[start..].find('<')?;
        let text = xml[start..end].trim();
        (!text.is_empty() && text.len() <= 100).then(|| text.to_owned())
    };
    (element("<kind>"), element("<timestamp type=\"datetime\">"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, test_support::*};

    const SECRET: &str = "integration_public_key:integration_private_key";
    const XML: &[u8] = br#"<notification><timestamp type="datetime">2023-11-14T22:13:20Z</timestamp><kind>subscription_charged_successfully</kind><subject></subject></notification>"#;

    #[test]
    fn a_signed_notification_verifies_and_a_tampered_one_does_not() {
        let secret = Secret::new(SECRET);
        let body = sign(XML, &secret).expect("sign");
        let verifier = verifier(Scheme::Braintree);
        let none = http::HeaderMap::new();
        let verified = verifier
            .verify(&body, &none, &secrets(SECRET), at(1))
            .expect("verifies");
        assert_eq!(verified.key_id.as_deref(), Some("integration_public_key"));

        let (signature, payload) = fields(&body).expect("fields");
        let tampered = form_urlencoded::Serializer::new(String::new())
            .append_pair("bt_signature", &signature)
            .append_pair("bt_payload", &format!("Q{}", &payload[1..]))
            .finish();
        assert_eq!(
            verifier.verify(tampered.as_bytes(), &none, &secrets(SECRET), at(1)),
            Err(VerifyError::SignatureMismatch)
        );
        // Another merchant's key pair: no signature for our public key.
        assert_eq!(
            verifier.verify(&body, &none, &secrets("other_public:other_private"), at(1)),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verifier.verify(b"bt_payload=abc", &none, &secrets(SECRET), at(1)),
            Err(VerifyError::MissingHeader(SIGNATURE_FIELD.into()))
        );
        assert_eq!(
            verifier.verify(
                b"bt_signature=a%7Cb&bt_payload=%3Cxml%3E",
                &none,
                &secrets(SECRET),
                at(1)
            ),
            Err(VerifyError::MalformedHeader(PAYLOAD_FIELD.into()))
        );
        assert_eq!(
            kind_and_time(&payload).0.as_deref(),
            Some("subscription_charged_successfully")
        );
    }

    #[test]
    fn the_challenge_is_answered_with_the_public_key_and_its_hmac() {
        let answer =
            challenge(&Secret::new(SECRET), "20f9f8ed05f77439fe955c977e4c8a53").expect("answer");
        let (public, digest) = answer.split_once('|').expect("pair");
        assert_eq!(public, "integration_public_key");
        assert_eq!(digest.len(), 40);
        for bad in [
            "short",
            "20F9F8ED05F77439FE955C977E4C8A53",
            "20f9f8ed05f77439fe955c977e4c8a53ff",
        ] {
            assert!(challenge(&Secret::new(SECRET), bad).is_err(), "{bad}");
        }
        assert!(check_secret(&Secret::new("no-colon")).is_err());
    }
}
