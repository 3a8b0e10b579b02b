//! The portal's ports in memory, for tests.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::SystemTime,
};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    adapters::lock,
    portal::{LinkSigner, PortalError, PortalStore, StoredSession},
    ports::StoreError,
};

/// Spent nonces and sessions in maps.
#[derive(Debug, Default)]
pub struct MemoryPortalStore {
    spent: Mutex<HashSet<String>>,
    sessions: Mutex<HashMap<String, StoredSession>>,
}

impl MemoryPortalStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys sessions are kept under, for assertions.
    pub fn session_keys(&self) -> Vec<String> {
        lock(&self.sessions).keys().cloned().collect()
    }
}

#[async_trait]
impl PortalStore for MemoryPortalStore {
    async fn spend_link(&self, nonce: &str, _expires_at: SystemTime) -> Result<bool, StoreError> {
        Ok(lock(&self.spent).insert(nonce.to_owned()))
    }

    async fn put_session(&self, key: &str, session: &StoredSession) -> Result<(), StoreError> {
        lock(&self.sessions).insert(key.to_owned(), session.clone());
        Ok(())
    }

    async fn session(&self, key: &str) -> Result<Option<StoredSession>, StoreError> {
        Ok(lock(&self.sessions).get(key).cloned())
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.sessions).remove(key);
        Ok(())
    }
}

/// HMAC-SHA256 under a key held in memory, standing in for KMS.
#[derive(Debug, Clone)]
pub struct HmacLinkSigner(pub Vec<u8>);

impl HmacLinkSigner {
    fn keyed(&self) -> Result<Hmac<Sha256>, PortalError> {
        Hmac::<Sha256>::new_from_slice(&self.0).map_err(|e| PortalError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl LinkSigner for HmacLinkSigner {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, PortalError> {
        let mut mac = self.keyed()?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn verify(&self, message: &[u8], tag: &[u8]) -> Result<bool, PortalError> {
        let mut mac = self.keyed()?;
        mac.update(message);
        Ok(mac.verify_slice(tag).is_ok())
    }
}
