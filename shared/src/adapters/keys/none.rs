//! A key service that refuses every request: for functions that read endpoints or tenants but
//! never seal or open a secret (the publish API, the replay function). Their IAM roles have no
//! KMS permission either; this makes the code say so too.

use async_trait::async_trait;

use crate::sealing::{DATA_KEY_LEN, DataKey, KeyService, SealContext, SealError};

/// Refuses to seal or open anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoKeys;

const REFUSAL: &str = "this function never seals or opens secrets";

#[async_trait]
impl KeyService for NoKeys {
    async fn data_key(&self, _: &SealContext) -> Result<DataKey, SealError> {
        Err(SealError::Refused(REFUSAL.into()))
    }

    async fn decrypt_key(
        &self,
        _: &[u8],
        _: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError> {
        Err(SealError::Refused(REFUSAL.into()))
    }
}
