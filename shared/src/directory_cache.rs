//! A short-lived cache in front of the tenant directory, so a warm ingress does not read
//! DynamoDB on every delivery. Misses are cached too, so a flood of requests for an unknown
//! tenant costs one read per TTL; errors are never cached.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    clock::Clock,
    ids::TenantId,
    ports::{StoreError, TenantDirectory},
    provider::Provider,
    tenant::ProviderConfig,
};

type Entry = (SystemTime, Option<ProviderConfig>);

/// Caches `D`'s answers for `ttl`. A rotated secret is picked up within one TTL, which is why
/// the previous secret stays valid far longer than that.
#[derive(Debug)]
pub struct CachedDirectory<D> {
    inner: D,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<(TenantId, Provider), Entry>>,
}

impl<D> CachedDirectory<D> {
    pub fn new(inner: D, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
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
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((expires_at, config)) = entries.get(&key)
                && now < *expires_at
            {
                return Ok(config.clone());
            }
        }
        let fresh = self.inner.provider_config(tenant, provider).await?;
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (now + self.ttl, fresh.clone()));
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

    #[tokio::test]
    async fn hits_and_misses_are_cached_for_the_ttl_errors_are_not() {
        let clock = Arc::new(ManualClock::at_unix(1_000));
        let config = ProviderConfig::new(tenant(), Provider::Stripe, Secret::new("whsec_x"));
        let cache = CachedDirectory::new(
            MemoryDirectory::with([config]),
            Duration::from_secs(60),
            clock.clone(),
        );

        assert!(
            cache
                .provider_config(&tenant(), Provider::Stripe)
                .await
                .expect("ok")
                .is_some()
        );
        assert!(
            cache
                .provider_config(&tenant(), Provider::Stripe)
                .await
                .expect("ok")
                .is_some()
        );
        assert!(
            cache
                .provider_config(&tenant(), Provider::GitHub)
                .await
                .expect("ok")
                .is_none()
        );
        assert!(
            cache
                .provider_config(&tenant(), Provider::GitHub)
                .await
                .expect("ok")
                .is_none()
        );
        assert_eq!(cache.inner().reads(), 2);

        clock.advance(Duration::from_secs(61));
        cache.inner().set_unavailable(true);
        assert!(
            cache
                .provider_config(&tenant(), Provider::Stripe)
                .await
                .is_err()
        );
        cache.inner().set_unavailable(false);
        assert!(
            cache
                .provider_config(&tenant(), Provider::Stripe)
                .await
                .expect("ok")
                .is_some()
        );
        assert_eq!(cache.inner().reads(), 4);
    }
}
