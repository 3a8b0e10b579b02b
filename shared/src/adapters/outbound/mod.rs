//! The outbound side's storage: endpoints, messages, deliveries, attempts and rate-limit
//! windows. DynamoDB as deployed; memory (with a scripted HTTP transport) for tests.

pub mod dynamodb;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use self::dynamodb::{
    DUE_INDEX, DUE_SHARDS, DynamoOutboundStore, ENDPOINT_INDEX, ENDPOINT_SHARDS,
};
#[cfg(any(test, feature = "test-util"))]
pub use self::memory::{MemoryDeliveryQueue, MemoryOutboundStore, ScriptedTransport};
