//! The adapters of the ports, grouped by the port they serve: each folder holds every backend
//! of one port family side by side, so a new backend is one new file beside its siblings.
//!
//! - [`events`]: the event records (DynamoDB; memory for tests).
//! - [`queues`]: the events queue, the processor's retry queue and the dead-letter queue (SQS;
//!   memory for tests).
//! - [`tenants`]: tenants' provider configuration and names (DynamoDB; memory for tests).
//! - [`keys`]: the master key that seals secrets (KMS; memory for tests).
//! - [`outbound`]: partner endpoints, published messages, deliveries and attempts (DynamoDB;
//!   memory for tests), whose queue is under [`queues`].
//!
//! - [`portal`]: the portal's spent links and sessions (DynamoDB, the outbound table) and its
//!   links' MACs (KMS); memory for tests.
//!
//! [`faults`] wraps any of them to inject failures, timeouts, delays and lost responses, for
//! the gameday tests.
//!
//! [`dynamodb`] holds what the DynamoDB adapters share: reading items by attribute name, and
//! building expressions only through placeholders.
//!
//! The memory adapters compile only for tests (`cfg(test)` or the `test-util` feature that the
//! other crates' dev-dependencies enable): a release build cannot wire one by mistake.

pub(crate) mod dynamodb;
pub mod events;
#[cfg(any(test, feature = "test-util"))]
pub mod faults;
pub mod keys;
pub mod outbound;
pub mod portal;
pub mod queues;
pub mod tenants;

/// A switch that makes a memory adapter answer as if its service were down.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub(crate) struct Outage(std::sync::atomic::AtomicBool);

#[cfg(any(test, feature = "test-util"))]
impl Outage {
    pub(crate) fn set(&self, down: bool) {
        self.0.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Err("simulated outage".to_owned())
        } else {
            Ok(())
        }
    }
}

/// A poisoned lock still holds consistent data here: every critical section is one step.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
