//! The master key's keeper for [`crate::sealing`]: KMS as deployed, memory for tests.

pub mod kms;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use self::kms::KmsKeys;
#[cfg(any(test, feature = "test-util"))]
pub use self::memory::MemoryKeys;
