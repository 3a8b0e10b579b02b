//! The event records: [`DynamoEventStore`] as deployed, [`MemoryEventStore`] for tests.

pub mod dynamodb;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use self::dynamodb::{
    DONE_TAG, DynamoEventStore, INLINE_PAYLOAD_BYTES, MAX_ERROR_CHARS, PENDING_INDEX,
    PENDING_SHARDS, STATUS_INDEX, STATUS_SHARDS, SUMMARY_ATTRIBUTES,
};
#[cfg(any(test, feature = "test-util"))]
pub use self::memory::MemoryEventStore;
