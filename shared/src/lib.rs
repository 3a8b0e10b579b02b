//! The webhook system's library: everything the Lambda functions do that can be tested without
//! AWS lives here, behind small types and traits.
//!
//! - [`ids`]: validated identifiers (tenant, event id) that keys are built from.
//! - [`provider`]: the providers a route can name and the signature scheme each one uses.
//! - [`secret`]: signing secrets, redacted in `Debug`, with rotation.
//! - [`verify`]: signature verification, one module per scheme.
//! - [`record`]: the stored event and its status state machine.
//! - [`clock`]: injected time, so tests never sleep.
//! - [`tenant`]: a tenant's configuration for one provider.
//! - [`extract`]: event id, type and time per provider.
//! - [`ports`]: the traits use cases reach storage and queues through; [`adapters`] implement
//!   them, grouped by port (DynamoDB and SQS as deployed, memory for tests); [`aws`] is the
//!   deployed functions' entry to them.
//! - [`ingress`]: the ingress use case: verify, store, enqueue, then acknowledge.
//! - [`processor`]: the processor use case: claim, run the provider's [`projectors`], commit the
//!   [`projection`] writes with the `processed` mark in one transaction, back off on the
//!   [`retry`] schedule.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines.
//! - [`operations`]: the operators' use cases, run by the replay function: DLQ redrive, replay
//!   by id, reconcile, list, health, discard.
//! - [`outbound`]: webhooks to partners: endpoints, publishing, the dispatcher, recovery.

pub mod adapters;
pub mod aws;
pub mod batch;
pub mod clock;
pub mod directory_cache;
pub mod env;
pub mod erasure;
pub mod errors;
pub mod extract;
#[cfg(any(test, feature = "test-util"))]
pub mod fuzzing;
#[cfg(test)]
mod gameday;
pub mod ids;
pub mod ingress;
pub mod logging;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod message;
pub mod metrics;
pub mod operations;
pub mod outbound;
pub mod portal;
pub mod ports;
pub mod processor;
pub mod projection;
pub mod projectors;
pub mod provider;
pub mod record;
pub mod retry;
pub mod sealing;
pub mod secret;
pub mod shard;
pub mod tenant;
pub mod trace;
pub mod ttl_cache;
pub mod verify;
