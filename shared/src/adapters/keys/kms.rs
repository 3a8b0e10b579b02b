//! [`KeyService`] on a KMS key: `GenerateDataKey` to seal (the operator's path), `Decrypt` to
//! open (the functions that verify or sign), each with the [`SealContext`] as the encryption
//! context, so IAM and CloudTrail see whose secret it is and KMS refuses a moved value.

use async_trait::async_trait;
use aws_sdk_kms::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::DataKeySpec,
};

use crate::{
    aws::describe,
    sealing::{DATA_KEY_LEN, DataKey, KeyService, SealContext, SealError},
};

/// Codes KMS answers when the caller, the key or the context is wrong: retrying cannot help.
const REFUSALS: [&str; 6] = [
    "AccessDeniedException",
    "DisabledException",
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "KMSInvalidStateException",
    "NotFoundException",
];

/// The KMS key that seals tenants' secrets.
#[derive(Debug, Clone)]
pub struct KmsKeys {
    client: crate::aws::LazyClient<Client>,
    key_id: String,
}

impl KmsKeys {
    /// `key_id`: the key's ARN, id or alias (the template's `SecretsKey`). The client may be
    /// built on first use ([`crate::aws::LazyClient`]).
    pub fn new(
        client: impl Into<crate::aws::LazyClient<Client>>,
        key_id: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            key_id: key_id.into(),
        }
    }
}

fn kms_error<E, R>(operation: &str, err: &SdkError<E, R>) -> SealError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{operation}: {}", describe(err));
    match err.as_service_error().and_then(ProvideErrorMetadata::code) {
        Some(code) if REFUSALS.contains(&code) => SealError::Refused(text),
        _ => SealError::Unavailable(text),
    }
}

#[async_trait]
impl KeyService for KmsKeys {
    async fn data_key(&self, context: &SealContext) -> Result<DataKey, SealError> {
        let output = self
            .client
            .get()
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context.pairs().into_iter().collect()))
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", &e))?;
        let plaintext: [u8; DATA_KEY_LEN] = output
            .plaintext()
            .map(Blob::as_ref)
            .and_then(|k| k.try_into().ok())
            .ok_or(SealError::Malformed("KMS returned no 256-bit data key"))?;
        let encrypted = output
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or(SealError::Malformed("KMS returned no encrypted data key"))?;
        Ok(DataKey {
            plaintext,
            encrypted,
        })
    }

    async fn decrypt_key(
        &self,
        encrypted: &[u8],
        context: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError> {
        let output = self
            .client
            .get()
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(encrypted))
            .set_encryption_context(Some(context.pairs().into_iter().collect()))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", &e))?;
        output
            .plaintext()
            .map(Blob::as_ref)
            .and_then(|k| k.try_into().ok())
            .ok_or(SealError::Malformed("KMS returned no 256-bit data key"))
    }
}
