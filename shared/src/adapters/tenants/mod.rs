//! Tenants' provider configuration (secrets included) and their names. DynamoDB as deployed;
//! memory for tests.

pub mod dynamodb;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use self::dynamodb::{DynamoTenantDirectory, DynamoTenantNames};
#[cfg(any(test, feature = "test-util"))]
pub use self::memory::MemoryDirectory;
