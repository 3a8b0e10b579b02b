// cargo add standardwebhooks http
use http::HeaderMap;
use standardwebhooks::Webhook;

/// Whether the delivery is genuine. Pass the body exactly as received: the signature covers its
/// bytes. The secret (whsec_...) is the endpoint's, from the portal's "Reveal secret".
pub fn verify(secret: &str, raw_body: &[u8], headers: &HeaderMap) -> bool {
    match Webhook::new(secret) {
        // Verified: handle it (drop a repeated webhook-id), then answer 2xx quickly.
        Ok(webhook) => webhook.verify(raw_body, headers).is_ok(),
        Err(_) => false,
    }
}
