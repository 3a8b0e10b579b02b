//! Tenant configurations in a map, for fast unit tests.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;

use crate::{
    adapters::{Outage, lock},
    ids::TenantId,
    ports::{StoreError, TenantAdmin, TenantDirectory, TenantNames},
    provider::Provider,
    tenant::ProviderConfig,
};

/// Tenant configurations in a map.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    configs: Mutex<HashMap<(TenantId, Provider), ProviderConfig>>,
    outage: Outage,
    reads: AtomicUsize,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(configs: impl IntoIterator<Item = ProviderConfig>) -> Self {
        let directory = Self::default();
        {
            let mut map = lock(&directory.configs);
            for config in configs {
                // Stored, so at least version 1, as a real store would have it.
                let version = config.version.max(1);
                map.insert(
                    (config.tenant.clone(), config.provider),
                    ProviderConfig { version, ..config },
                );
            }
        }
        directory
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// How many lookups reached this directory (to test caching in front of it).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TenantDirectory for MemoryDirectory {
    async fn provider_config(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<ProviderConfig>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.outage.check().map_err(StoreError::Unavailable)?;
        Ok(lock(&self.configs)
            .get(&(tenant.clone(), provider))
            .cloned())
    }
}

#[async_trait]
impl TenantAdmin for MemoryDirectory {
    async fn put_config(&self, config: &ProviderConfig) -> Result<(), StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        let mut configs = lock(&self.configs);
        let key = (config.tenant.clone(), config.provider);
        let stored = configs.get(&key).map(|c| c.version);
        if stored != (config.version > 0).then_some(config.version) {
            return Err(config.write_conflict());
        }
        let next = ProviderConfig {
            version: config.version + 1,
            ..config.clone()
        };
        configs.insert(key, next);
        Ok(())
    }

    async fn list_configs(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ProviderConfig>, StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        let mut configs: Vec<ProviderConfig> = lock(&self.configs)
            .values()
            .filter(|c| tenant.is_none_or(|t| &c.tenant == t))
            .cloned()
            .collect();
        configs.sort_by(|a, b| (&a.tenant, a.provider).cmp(&(&b.tenant, b.provider)));
        Ok(configs)
    }
}

#[async_trait]
impl TenantNames for MemoryDirectory {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        self.outage.check().map_err(StoreError::Unavailable)?;
        let mut tenants: Vec<TenantId> =
            lock(&self.configs).keys().map(|(t, _)| t.clone()).collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }
}
