//! The master key's keeper for [`crate::sealing`]: KMS as deployed, memory for tests, and
//! [`NoKeys`] for functions that must never touch a secret.

pub mod kms;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod none;

pub use self::kms::KmsKeys;
#[cfg(any(test, feature = "test-util"))]
pub use self::memory::MemoryKeys;
pub use self::none::NoKeys;
