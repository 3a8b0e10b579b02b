//! The master key in memory, for tests: binds the context exactly as KMS does, so a value moved
//! between items does not open.

use async_trait::async_trait;

use crate::sealing::{DATA_KEY_LEN, DataKey, Envelope, KeyService, SealContext, SealError, Sealed};

/// A key service with a master key in memory, for tests and the local stack's unit tests: it
/// binds the context exactly as KMS does, so a value moved between items does not open.
#[derive(Debug, Default)]
pub struct MemoryKeys {
    master: [u8; DATA_KEY_LEN],
    decrypts: std::sync::atomic::AtomicUsize,
}

impl MemoryKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many data keys were decrypted: what the cache in front of it must keep low.
    pub fn decrypts(&self) -> usize {
        self.decrypts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyService for MemoryKeys {
    async fn data_key(&self, context: &SealContext) -> Result<DataKey, SealError> {
        let mut plaintext = [0u8; DATA_KEY_LEN];
        getrandom::fill(&mut plaintext)
            .map_err(|_| SealError::Unavailable("no randomness".into()))?;
        let sealed = Envelope::new(FixedKey(self.master))
            .seal(&plaintext, context)
            .await?;
        Ok(DataKey {
            plaintext,
            encrypted: sealed.0.into_bytes(),
        })
    }

    async fn decrypt_key(
        &self,
        encrypted: &[u8],
        context: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError> {
        self.decrypts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = std::str::from_utf8(encrypted).map_err(|_| SealError::Malformed("key"))?;
        let plain = Envelope::new(FixedKey(self.master))
            .open(&Sealed::from_stored(text)?, context)
            .await
            .map_err(|_| SealError::Refused("the encryption context does not match".into()))?;
        plain
            .try_into()
            .map_err(|_| SealError::Malformed("data key length"))
    }
}

/// The innermost layer of [`MemoryKeys`]: the master key used directly as the data key.
#[derive(Debug)]
struct FixedKey([u8; DATA_KEY_LEN]);

#[async_trait]
impl KeyService for FixedKey {
    async fn data_key(&self, _: &SealContext) -> Result<DataKey, SealError> {
        Ok(DataKey {
            plaintext: self.0,
            encrypted: Vec::new(),
        })
    }

    async fn decrypt_key(
        &self,
        _: &[u8],
        _: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError> {
        Ok(self.0)
    }
}
