//! Links' MACs by KMS (`GenerateMac` / `VerifyMac`, HMAC-SHA256 under the template's
//! `PortalLinkKey`): the key never leaves KMS, and only `hookctl` (generate) and the portal
//! (verify) are allowed to use it.

use async_trait::async_trait;
use aws_sdk_kms::{Client, primitives::Blob, types::MacAlgorithmSpec};

use crate::portal::{LinkSigner, PortalError};

/// The HMAC key in KMS.
#[derive(Debug, Clone)]
pub struct KmsLinkSigner {
    client: Client,
    key_id: String,
}

impl KmsLinkSigner {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl LinkSigner for KmsLinkSigner {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, PortalError> {
        let output = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|e| PortalError::Unavailable(crate::aws::describe(&e)))?;
        output
            .mac
            .map(Blob::into_inner)
            .ok_or_else(|| PortalError::Unavailable("GenerateMac returned no MAC".into()))
    }

    async fn verify(&self, message: &[u8], mac: &[u8]) -> Result<bool, PortalError> {
        let result = self
            .client
            .verify_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .mac(Blob::new(mac))
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.mac_valid),
            // KMS answers a wrong MAC with KMSInvalidMacException, not `false`.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_kms_invalid_mac_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(PortalError::Unavailable(crate::aws::describe(&e))),
        }
    }
}
