//! The queues: the events queue the ingress and operators send pointers to, the processor's
//! view of it (backoff, dead-lettering), and the dead-letter queue operators drain. SQS as
//! deployed; memory for tests.

#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod sqs;

#[cfg(any(test, feature = "test-util"))]
pub use self::memory::{MemoryDeadLetterQueue, MemoryQueue, MemoryRetryQueue};
pub use self::sqs::{SqsDeadLetterQueue, SqsDeliveryQueue, SqsEventQueue, SqsRetryQueue};
