//! A short-lived, bounded cache in front of the tenant directory, so a warm ingress reads
//! DynamoDB (and asks KMS to open secrets) a few times per TTL, not on every delivery.
//!
//! It is bounded: the least recently used entry goes when it is full, so a flood of requests
//! for made-up tenants cannot grow a warm instance's memory. Misses are cached only briefly
//! (a made-up name costs one read per [`MISS_TTL`], and a tenant added a moment later is seen
//! soon); errors are never cached.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use lru::LruCache;

use crate::{
    clock::Clock,
    ids::TenantId,
    ports::{StoreError, TenantDirectory},
    provider::Provider,
    tenant::ProviderConfig,
};

/// How many configurations a warm instance keeps at most: a few MB at worst.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How long an answer of "no such configuration" is trusted.
pub const MISS_TTL: Duration = Duration::from_secs(5);

type Entry = (SystemTime, Option<ProviderConfig>);

/// Caches `D`'s answers for `ttl` (misses for at most [`MISS_TTL`]). A rotated secret is
/// picked up within one TTL, which is why the previous secret stays valid far longer than that.
#[derive(Debug)]
pub struct CachedDirectory<D> {
    inner: D,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<LruCache<(TenantId, Provider), Entry>>,
}

impl<D> CachedDirectory<D> {
    pub fn new(inner: D, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(inner, ttl, clock, DEFAULT_CAPACITY)
    }

    /// A cache of at most `capacity` entries (at least one).
    pub fn with_capacity(inner: D, ttl: Duration, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner,
            ttl,
            clock,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// How many entries are held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<(TenantId, Provider), Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl<D: TenantDirectory> TenantDirectory for CachedDirectory<D> {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError> {
        let now = self.clock.now();
        let key = (tenant.clone(), provider);
        if let Some((expires_at, config)) = self.lock().get(&key)
            && now < *expires_at
        {
            return Ok(config.clone());
        }
        let fresh = self.inner.provider_config(tenant, provider).await?;
        let ttl = if fresh.is_some() {
            self.ttl
        } else {
            self.ttl.min(MISS_TTL)
        };
        let expires_at = now.checked_add(ttl).unwrap_or(now);
        self.lock().put(key, (expires_at, fresh.clone()));
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::ManualClock, memory::MemoryDirectory, secret::Secret};

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    async fn found(cache: &CachedDirectory<MemoryDirectory>, provider: Provider) -> bool {
        cache
            .provider_config(&tenant(), provider)
            .await
            .expect("ok")
            .is_some()
    }

    #[tokio::test]
    async fn hits_are_cached_for_the_ttl_misses_briefly_errors_not_at_all() {
        let clock = Arc::new(ManualClock::at_unix(1_000));
        let config = ProviderConfig::new(tenant(), Provider::Stripe, Secret::new("whsec_x"));
        let cache = CachedDirectory::new(
            MemoryDirectory::with([config]),
            Duration::from_secs(60),
            clock.clone(),
        );

        assert!(found(&cache, Provider::Stripe).await);
        assert!(found(&cache, Provider::Stripe).await);
        assert!(!found(&cache, Provider::GitHub).await);
        assert!(!found(&cache, Provider::GitHub).await);
        assert_eq!(cache.inner().reads(), 2);

        // A miss is asked again after a few seconds; a hit is not.
        clock.advance(MISS_TTL + Duration::from_secs(1));
        assert!(found(&cache, Provider::Stripe).await);
        assert!(!found(&cache, Provider::GitHub).await);
        assert_eq!(cache.inner().reads(), 3);

        clock.advance(Duration::from_secs(61));
        cache.inner().set_unavailable(true);
        assert!(
            cache
                .provider_config(&tenant(), Provider::Stripe)
                .await
                .is_err()
        );
        cache.inner().set_unavailable(false);
        assert!(found(&cache, Provider::Stripe).await);
        assert_eq!(cache.inner().reads(), 5);
    }

    #[tokio::test]
    async fn a_million_unknown_tenants_leave_the_cache_bounded_and_the_known_one_served() {
        let clock = Arc::new(ManualClock::at_unix(1_000));
        let config = ProviderConfig::new(tenant(), Provider::Stripe, Secret::new("whsec_x"));
        let cache = CachedDirectory::with_capacity(
            MemoryDirectory::with([config]),
            Duration::from_secs(60),
            clock,
            1_000,
        );
        for i in 0..1_000_000u32 {
            let made_up = TenantId::parse(&format!("t{i}")).expect("tenant");
            let answer = cache
                .provider_config(&made_up, Provider::Stripe)
                .await
                .expect("ok");
            assert!(answer.is_none());
            if i % 100_000 == 0 {
                assert!(found(&cache, Provider::Stripe).await);
            }
        }
        assert_eq!(cache.len(), 1_000);
        assert!(found(&cache, Provider::Stripe).await);
    }
}
