//! Stable shards for the partition keys a busy tenant or endpoint would otherwise concentrate
//! (the status index, projections, the outbound due index).

use sha2::{Digest, Sha256};

/// The shard of `key` among `shards`: the first byte of its SHA-256, modulo `shards` (at most
/// 256, evenly spread when it divides 256). Fixed by the key alone, so every writer and reader
/// finds the same partition without asking anyone.
pub fn shard_of(key: &str, shards: u8) -> u8 {
    Sha256::digest(key.as_bytes())[0] % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_lands_in_the_same_shard_and_keys_spread_over_all() {
        assert_eq!(shard_of("acme#evt_1", 16), shard_of("acme#evt_1", 16));
        let seen: std::collections::BTreeSet<u8> =
            (0..400).map(|n| shard_of(&format!("k{n}"), 16)).collect();
        assert_eq!(seen.len(), 16);
    }
}
