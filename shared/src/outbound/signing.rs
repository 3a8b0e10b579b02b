//! Standard Webhooks signatures on outbound deliveries, so partners verify with the official
//! `standardwebhooks` or `svix` libraries unchanged: `webhook-id` (the message id, the same on
//! every retry and endpoint), `webhook-timestamp` (this attempt's), and `webhook-signature`
//! with one `v1,<base64>` entry per active secret (two while a rotated-out secret is still
//! valid, so a partner switches secrets without a gap).

use std::time::SystemTime;

use crate::{
    secret::SecretSet,
    verify::{Scheme, VerifyError},
};

/// The headers that sign `body` as message `id` at `at`.
pub fn sign(
    secrets: &SecretSet,
    id: &str,
    at: SystemTime,
    body: &[u8],
) -> Result<Vec<(String, String)>, VerifyError> {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(3);
    let mut signatures = Vec::with_capacity(2);
    for (_, secret) in secrets.active(at) {
        for (name, value) in Scheme::StandardWebhooks.sign(body, secret, at, id)? {
            if name == "webhook-signature" {
                signatures.push(value);
            } else if !headers.iter().any(|(n, _)| *n == name) {
                headers.push((name, value));
            }
        }
    }
    headers.push(("webhook-signature".to_owned(), signatures.join(" ")));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::secret::{Secret, SecretSlot};

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQgb2YgMzIgYnl0ZXMh";

    fn header_map(pairs: &[(String, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                )
            })
            .collect()
    }

    fn verifies_with(headers: &HeaderMap, body: &[u8], secret: &str, at: SystemTime) -> bool {
        crate::verify::Verifier::new(Scheme::StandardWebhooks)
            .verify(body, headers, &SecretSet::single(Secret::new(secret)), at)
            .is_ok()
    }

    #[test]
    fn one_entry_per_active_secret_and_each_verifies() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = br#"{"type":"invoice.paid"}"#;
        let rotated = SecretSet::single(Secret::new(OLD))
            .rotate(Secret::new(NEW), at + Duration::from_secs(60));
        let headers = sign(&rotated, "msg_1", at, body).expect("signed");
        let map = header_map(&headers);
        assert_eq!(map["webhook-id"], "msg_1");
        assert_eq!(map["webhook-timestamp"], "1700000000");
        assert_eq!(
            map["webhook-signature"]
                .to_str()
                .expect("text")
                .split(' ')
                .count(),
            2
        );
        assert!(verifies_with(&map, body, OLD, at));
        assert!(verifies_with(&map, body, NEW, at));
        assert_eq!(
            rotated.active(at).next().map(|(s, _)| s),
            Some(SecretSlot::Current)
        );

        // Once the overlap has passed, only the new secret signs.
        let later = at + Duration::from_secs(61);
        let map = header_map(&sign(&rotated, "msg_1", later, body).expect("signed"));
        assert!(verifies_with(&map, body, NEW, later));
        assert!(!verifies_with(&map, body, OLD, later));
    }
}
