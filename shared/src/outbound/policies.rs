//! Tenants' outbound policies as a warm function reads them: at most once per [`POLICY_TTL`]
//! per tenant. A policy is read for every attempt and every relayed event, so without this a
//! busy tenant's one policy item would take every function's reads (and at 10,000 deliveries
//! a second, more than a partition serves). A change takes effect within the lifetime.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{TenantPolicy, ports::EndpointStore};
use crate::{adapters::lock, ids::TenantId, ports::StoreError};

/// How long a tenant's policy is remembered.
pub const POLICY_TTL: Duration = Duration::from_secs(30);
/// How many tenants' policies one function remembers.
const REMEMBERED: usize = 10_000;

type Remembered = lru::LruCache<TenantId, (Option<TenantPolicy>, Instant)>;

/// The policies a function has read lately. Clones share them.
#[derive(Debug, Clone)]
pub struct TenantPolicies {
    read: Arc<Mutex<Remembered>>,
}

impl Default for TenantPolicies {
    fn default() -> Self {
        let size = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self {
            read: Arc::new(Mutex::new(lru::LruCache::new(size))),
        }
    }
}

impl TenantPolicies {
    /// `tenant`'s policy, read from `store` unless read within [`POLICY_TTL`].
    pub async fn get(
        &self,
        store: &impl EndpointStore,
        tenant: &TenantId,
    ) -> Result<Option<TenantPolicy>, StoreError> {
        if let Some((policy, at)) = lock(&self.read).get(tenant)
            && at.elapsed() < POLICY_TTL
        {
            return Ok(policy.clone());
        }
        let policy = store.tenant_policy(tenant).await?;
        lock(&self.read).put(tenant.clone(), (policy.clone(), Instant::now()));
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryOutboundStore;

    #[tokio::test]
    async fn a_policy_is_read_once_per_lifetime_and_an_outage_is_not_remembered() {
        let store = MemoryOutboundStore::new();
        let policies = TenantPolicies::default();
        let acme = TenantId::parse("acme").expect("tenant");
        let relaying = TenantPolicy {
            relay_inbound: true,
            ..TenantPolicy::default()
        };

        store.set_unavailable(true);
        assert!(policies.get(&store, &acme).await.is_err());
        store.set_unavailable(false);
        store
            .put_tenant_policy(&acme, &relaying)
            .await
            .expect("put");
        assert_eq!(
            policies.get(&store, &acme).await,
            Ok(Some(relaying.clone()))
        );

        // Within the lifetime, the store is not asked again.
        store.set_unavailable(true);
        assert_eq!(policies.get(&store, &acme).await, Ok(Some(relaying)));
    }
}
