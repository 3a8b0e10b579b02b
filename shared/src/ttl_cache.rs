//! A bounded cache whose entries expire: what a warm function keeps of what it read lately
//! (opened secrets, tenants' policies). Thread-safe and cheap to clone (clones share it).

use std::{
    hash::Hash,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::adapters::lock;

/// At most `capacity` entries, each trusted for `ttl`; the least recently used goes first.
#[derive(Debug, Clone)]
pub struct TtlCache<K: Hash + Eq, V> {
    ttl: Duration,
    entries: Arc<Mutex<lru::LruCache<K, (V, Instant)>>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            ttl,
            entries: Arc::new(Mutex::new(lru::LruCache::new(capacity))),
        }
    }

    /// The value kept for `key`, if it was put within the lifetime (an older one is dropped).
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = lock(&self.entries);
        match entries.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: K, value: V) {
        lock(&self.entries).put(key, (value, Instant::now()));
    }

    /// Forget `key`: this function changed it, so its next read goes to the source.
    pub fn remove(&self, key: &K) {
        lock(&self.entries).pop(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_its_lifetime_and_the_least_recently_used_goes_first() {
        let cache = TtlCache::new(2, Duration::from_secs(60));
        cache.put("a", 1);
        cache.put("b", 2);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.put("c", 3);
        assert_eq!((cache.get(&"a"), cache.get(&"b")), (Some(1), None));

        let expired = TtlCache::new(2, Duration::ZERO);
        expired.put("a", 1);
        assert_eq!(expired.get(&"a"), None);
    }
}
