//! Secrets sealed by the application before they reach a table: envelope encryption.
//!
//! Each sealed value gets its own 256-bit data key from a [`KeyService`] (KMS as deployed),
//! which returns it in the clear and encrypted under the master key. The value is encrypted
//! with AES-256-GCM under the clear key, which is then dropped; the item stores only the
//! encrypted key, the nonce and the ciphertext. Opening asks the key service to decrypt the
//! data key, which IAM grants only to the functions that verify or sign.
//!
//! A [`SealContext`] names where the value belongs (tenant, scope, field). It is the KMS
//! encryption context *and* the AES-GCM associated data, so a sealed value copied to another
//! tenant's item, another provider or another field does not open, whichever layer checks it.
//! A reader with `dynamodb:Scan`, or anyone restoring a backup, sees no secret.

use std::{collections::BTreeMap, fmt};

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use thiserror::Error;

use crate::ids::TenantId;

/// The prefix of a sealed value's stored text, so a format change can be told apart.
const VERSION: &str = "sealed:v1:";

/// Length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// Where a sealed value belongs. Every part is bound into the encryption.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealContext {
    pub tenant: TenantId,
    /// What the value configures within the tenant: a provider (`stripe`), an outbound
    /// endpoint (`endpoint:ep_...`).
    pub scope: String,
    /// Which value of it: `secret_current`, `secret_previous`, `public_keys`, ...
    pub field: String,
}

impl SealContext {
    pub fn new(tenant: &TenantId, scope: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            tenant: tenant.clone(),
            scope: scope.into(),
            field: field.into(),
        }
    }

    /// The KMS encryption context: visible in CloudTrail, so an operator sees whose secret a
    /// decrypt was for.
    pub fn pairs(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("tenant".to_owned(), self.tenant.to_string()),
            ("scope".to_owned(), self.scope.clone()),
            ("field".to_owned(), self.field.clone()),
        ])
    }

    /// The AES-GCM associated data: the same pairs, length-prefixed so no two contexts share
    /// an encoding.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        for (name, value) in self.pairs() {
            for part in [name.as_bytes(), value.as_bytes()] {
                aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
                aad.extend_from_slice(part);
            }
        }
        aad
    }
}

/// A sealed value as stored: `sealed:v1:` and the base64 of the encrypted data key's length (2
/// bytes), the encrypted data key, the nonce and the ciphertext with its tag. `Debug` shows
/// only its size.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub(crate) String);

impl Sealed {
    /// A stored text, checked for the format's prefix only (opening checks the rest).
    pub fn from_stored(text: impl Into<String>) -> Result<Self, SealError> {
        let text = text.into();
        if text.starts_with(VERSION) {
            Ok(Self(text))
        } else {
            Err(SealError::Malformed("not a sealed value"))
        }
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Why a value could not be sealed or opened. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    /// The key service could not answer (an outage, throttling): retrying may pass.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// The key service refused: no permission, a disabled key, or an encryption context that
    /// does not match (a value moved to another item).
    #[error("key service refused: {0}")]
    Refused(String),
    /// The stored text is not a sealed value, or was altered.
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
    /// The ciphertext does not open under its data key and context: altered, or moved.
    #[error("sealed value does not open in this context")]
    WrongContext,
}

/// A fresh data key: in the clear for one use, and encrypted for the item.
pub struct DataKey {
    pub plaintext: [u8; DATA_KEY_LEN],
    pub encrypted: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.plaintext.fill(0);
    }
}

/// The master key's keeper: KMS as deployed, a local key in tests.
#[async_trait]
pub trait KeyService: Send + Sync {
    /// A new data key, its encrypted form bound to `context`.
    async fn data_key(&self, context: &SealContext) -> Result<DataKey, SealError>;

    /// The clear data key of `encrypted`, if `context` is the one it was made for.
    async fn decrypt_key(
        &self,
        encrypted: &[u8],
        context: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError>;
}

/// A shared key service is a key service: functions hold one behind an `Arc<dyn KeyService>`.
#[async_trait]
impl<K: KeyService + ?Sized> KeyService for std::sync::Arc<K> {
    async fn data_key(&self, context: &SealContext) -> Result<DataKey, SealError> {
        (**self).data_key(context).await
    }

    async fn decrypt_key(
        &self,
        encrypted: &[u8],
        context: &SealContext,
    ) -> Result<[u8; DATA_KEY_LEN], SealError> {
        (**self).decrypt_key(encrypted, context).await
    }
}

/// Seal and open with a [`KeyService`].
#[derive(Debug, Clone)]
pub struct Envelope<K> {
    keys: K,
}

impl<K: KeyService> Envelope<K> {
    pub fn new(keys: K) -> Self {
        Self { keys }
    }

    /// Encrypt `plaintext` for `context`.
    pub async fn seal(&self, plaintext: &[u8], context: &SealContext) -> Result<Sealed, SealError> {
        let key = self.keys.data_key(context).await?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|_| SealError::Unavailable("no randomness for a nonce".into()))?;
        let mut ciphertext = plaintext.to_vec();
        cipher(&key.plaintext)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.associated_data()),
                &mut ciphertext,
            )
            .map_err(|_| SealError::Malformed("encryption failed"))?;
        let length = u16::try_from(key.encrypted.len())
            .map_err(|_| SealError::Malformed("encrypted data key too long"))?;
        let mut blob = Vec::with_capacity(2 + key.encrypted.len() + NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&length.to_be_bytes());
        blob.extend_from_slice(&key.encrypted);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(Sealed(format!("{VERSION}{}", STANDARD.encode(blob))))
    }

    /// Decrypt `sealed`, which must have been sealed for `context`.
    pub async fn open(&self, sealed: &Sealed, context: &SealContext) -> Result<Vec<u8>, SealError> {
        let blob = sealed
            .0
            .strip_prefix(VERSION)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .ok_or(SealError::Malformed("not base64"))?;
        let (length, rest) = blob
            .split_first_chunk::<2>()
            .ok_or(SealError::Malformed("truncated"))?;
        let length = usize::from(u16::from_be_bytes(*length));
        if rest.len() < length + NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed("truncated"));
        }
        let (encrypted_key, rest) = rest.split_at(length);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let mut key = self.keys.decrypt_key(encrypted_key, context).await?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SealError::Malformed("bad nonce"))?;
        let mut buffer = ciphertext.to_vec();
        let opened = cipher(&key).and_then(|c| {
            c.open_in_place(nonce, Aad::from(context.associated_data()), &mut buffer)
                .map(|plain| plain.len())
                .map_err(|_| SealError::WrongContext)
        });
        key.fill(0);
        let length = opened?;
        buffer.truncate(length);
        Ok(buffer)
    }
}

fn cipher(key: &[u8; DATA_KEY_LEN]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Malformed("bad data key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::keys::MemoryKeys;

    fn context(tenant: &str, scope: &str, field: &str) -> SealContext {
        SealContext::new(&TenantId::parse(tenant).expect("tenant"), scope, field)
    }

    #[tokio::test]
    async fn a_sealed_value_opens_in_its_context_only() {
        let envelope = Envelope::new(MemoryKeys::new());
        let here = context("acme", "stripe", "secret_current");
        let sealed = envelope.seal(b"whsec_abc", &here).await.expect("sealed");
        assert!(!sealed.as_str().contains("whsec_abc"));
        assert!(!format!("{sealed:?}").contains(sealed.as_str()));
        assert_eq!(
            envelope.open(&sealed, &here).await,
            Ok(b"whsec_abc".to_vec())
        );
        for elsewhere in [
            context("globex", "stripe", "secret_current"),
            context("acme", "github", "secret_current"),
            context("acme", "stripe", "secret_previous"),
        ] {
            assert!(
                envelope.open(&sealed, &elsewhere).await.is_err(),
                "{elsewhere:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_seal_is_fresh_and_tampering_is_caught() {
        let envelope = Envelope::new(MemoryKeys::new());
        let here = context("acme", "stripe", "secret_current");
        let a = envelope.seal(b"same", &here).await.expect("a");
        let b = envelope.seal(b"same", &here).await.expect("b");
        assert_ne!(a, b, "a fresh data key and nonce each time");
        let mut blob = STANDARD
            .decode(a.as_str().trim_start_matches(VERSION))
            .expect("base64");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = Sealed(format!("{VERSION}{}", STANDARD.encode(blob)));
        assert_eq!(
            envelope.open(&tampered, &here).await,
            Err(SealError::WrongContext)
        );
        for junk in ["sealed:v1:", "sealed:v1:AAAA", "sealed:v1:!!"] {
            assert!(matches!(
                envelope.open(&Sealed(junk.into()), &here).await,
                Err(SealError::Malformed(_))
            ));
        }
        assert!(Sealed::from_stored("whsec_plain").is_err());
    }
}
