//! Tenants' outbound policies as a warm function reads them: at most once per [`POLICY_TTL`]
//! per tenant. A policy is read for every attempt and every relayed event, so without this a
//! busy tenant's one policy item would take every function's reads (and at 10,000 deliveries
//! a second, more than a partition serves). A change takes effect within the lifetime.

use std::time::Duration;

use super::{TenantPolicy, ports::EndpointStore};
use crate::{ids::TenantId, ports::StoreError, ttl_cache::TtlCache};

/// How long a tenant's policy is remembered.
pub const POLICY_TTL: Duration = Duration::from_secs(30);
/// How many tenants' policies one function remembers.
const REMEMBERED: usize = 10_000;

/// The policies a function has read lately. Clones share them.
#[derive(Debug, Clone)]
pub struct TenantPolicies {
    read: TtlCache<TenantId, Option<TenantPolicy>>,
}

impl Default for TenantPolicies {
    fn default() -> Self {
        Self {
            read: TtlCache::new(REMEMBERED, POLICY_TTL),
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
        if let Some(policy) = self.read.get(tenant) {
            return Ok(policy);
        }
        let policy = store.tenant_policy(tenant).await?;
        self.read.put(tenant.clone(), policy.clone());
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
