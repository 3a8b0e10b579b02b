//! The primitives every scheme shares: HMAC-SHA256, strict decoding of a presented signature,
//! and constant-time matching against every active secret.

use std::time::SystemTime;

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;
use crate::secret::{Secret, SecretSet, SecretSlot};

/// An HMAC-SHA256 tag.
pub(crate) type Tag = [u8; 32];

/// HMAC-SHA256 of the concatenated `parts`, so signed content is never copied into one buffer.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Tag {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Exactly 64 lowercase hex digits; uppercase, short, long or other characters are refused.
pub(crate) fn decode_lower_hex(text: &str) -> Option<Tag> {
    let lower = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(text, &mut tag).ok()?;
    Some(tag)
}

/// Standard, padded base64 of exactly 32 bytes.
pub(crate) fn decode_base64_tag(text: &str) -> Option<Tag> {
    if text.len() != 44 {
        return None;
    }
    STANDARD.decode(text).ok()?.try_into().ok()
}

pub(crate) fn encode_base64(tag: &Tag) -> String {
    STANDARD.encode(tag)
}

/// Find the active secret whose expected tag equals one of the presented `candidates`.
/// Every comparison is constant-time; `expected` computes the tag a secret would produce.
pub(crate) fn match_secret(
    secrets: &SecretSet,
    now: SystemTime,
    candidates: &[Tag],
    expected: impl Fn(&Secret) -> Result<Tag, VerifyError>,
) -> Result<SecretSlot, VerifyError> {
    for (slot, secret) in secrets.active(now) {
        let want = expected(secret)?;
        let mut found = subtle::Choice::from(0);
        for candidate in candidates {
            found |= want.ct_eq(candidate);
        }
        if bool::from(found) {
            return Ok(slot);
        }
    }
    Err(VerifyError::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_must_be_exact_lowercase() {
        let good = "a".repeat(64);
        assert!(decode_lower_hex(&good).is_some());
        assert!(decode_lower_hex(&"A".repeat(64)).is_none());
        assert!(decode_lower_hex(&"a".repeat(63)).is_none());
        assert!(decode_lower_hex(&"a".repeat(66)).is_none());
        assert!(decode_lower_hex(&format!("{}g", "a".repeat(63))).is_none());
        assert!(decode_lower_hex("").is_none());
    }

    #[test]
    fn base64_must_be_one_padded_tag() {
        let tag = [7u8; 32];
        let text = encode_base64(&tag);
        assert_eq!(decode_base64_tag(&text), Some(tag));
        assert!(decode_base64_tag(text.trim_end_matches('=')).is_none());
        assert!(decode_base64_tag(&text[..40]).is_none());
        assert!(decode_base64_tag("").is_none());
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
