//! Payloads at rest, deflated. DynamoDB bills every write by the item's size in 1 KB units,
//! and webhook bodies are JSON that deflates to a third or less, so a 1 KiB event's record (or
//! published message) fits one unit and a 30 KiB one a handful. An item stores `payload_z`
//! (raw deflate) when that is smaller, and `payload` as it came otherwise; items written before
//! either way are read as they are.

use std::io::{Read, Write};

use flate2::{Compression, read::DeflateDecoder, write::DeflateEncoder};

/// The payload deflated, if that makes it smaller.
pub(crate) fn deflate(payload: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = DeflateEncoder::new(
        Vec::with_capacity(payload.len() / 2),
        Compression::default(),
    );
    encoder.write_all(payload).ok()?;
    let deflated = encoder.finish().ok()?;
    (deflated.len() < payload.len()).then_some(deflated)
}

/// The payload inflated; `None` if the bytes are not a deflate stream or inflate past `max`,
/// the largest payload the item's writer stores (a corrupt or hand-made item, never a bomb in
/// memory).
pub(crate) fn inflate(deflated: &[u8], max: usize) -> Option<Vec<u8>> {
    let limit = max as u64 + 1;
    let mut payload = Vec::with_capacity(deflated.len() * 3);
    DeflateDecoder::new(deflated)
        .take(limit)
        .read_to_end(&mut payload)
        .ok()?;
    ((payload.len() as u64) < limit).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::MAX_STORED_BODY_BYTES;

    #[test]
    fn json_deflates_and_comes_back_whole() {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice","status":"paid","customer":"cus_1"}}}"#.repeat(8);
        let deflated = deflate(&body).expect("smaller");
        assert!(deflated.len() < body.len() / 3, "{}", deflated.len());
        assert_eq!(inflate(&deflated, body.len()), Some(body));
    }

    #[test]
    fn incompressible_bytes_stay_as_they_are() {
        assert_eq!(deflate(&[7]), None);
        assert_eq!(deflate(b""), None);
    }

    #[test]
    fn garbage_and_bombs_are_refused() {
        assert_eq!(inflate(b"not deflate at all \xff\xfe", 1024), None);
        let zeros = vec![0u8; MAX_STORED_BODY_BYTES + 10];
        let bomb = deflate(&zeros).expect("zeros deflate");
        assert_eq!(inflate(&bomb, MAX_STORED_BODY_BYTES), None);
    }
}
