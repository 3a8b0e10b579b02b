//! The portal's links and sessions: spent links and open sessions in the outbound table,
//! links' MACs by KMS; memory and a local HMAC for tests.

mod dynamodb;
mod kms;
#[cfg(any(test, feature = "test-util"))]
mod memory;

pub use dynamodb::DynamoPortalStore;
pub use kms::KmsLinkSigner;
#[cfg(any(test, feature = "test-util"))]
pub use memory::{HmacLinkSigner, MemoryPortalStore};
