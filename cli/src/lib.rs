//! `hookctl`, the operators' command line: tenants' provider configuration (secrets, replay
//! window, unsigned policy), event records, signed sample deliveries, and the outbound side
//! (partner endpoints, publishing, deliveries, a local receiver).
//!
//! Every command is written against the ports in `shared::ports`, so the tests run it on the
//! in-memory adapters; [`app`] wires the DynamoDB adapters in for the binary.
//!
//! - [`args`]: the command line (clap).
//! - [`tenants`]: `tenant add | rotate | unsigned | list`.
//! - [`events`]: `events list | show`.
//! - [`erase`]: `erase`, erasing an event's payload into an audited tombstone.
//! - [`send`]: `send`, signing with `shared::verify::Scheme::sign`.
//! - [`replay`]: `replay`, the replay function's actions through `shared::replay`.
//! - [`endpoints`]: `endpoint ...`, `publish`, `deliveries ...` through `shared::outbound`.
//! - [`event_types`]: `event-type ...`, the tenant's event catalog.
//! - [`listen`]: `listen`, a local receiver that verifies outbound deliveries.
//! - [`secrets`]: generated secrets, route tokens and ids.
//! - [`output`]: tables, times, terminal-safe text, and `--output json`; [`views`]: the JSON
//!   documents.

pub mod app;
pub mod args;
pub mod endpoints;
pub mod erase;
pub mod error;
pub mod event_types;
pub mod events;
pub mod listen;
pub mod output;
pub mod portal;
pub mod replay;
pub mod secrets;
pub mod send;
pub mod tenants;
pub mod views;

pub use app::run;
pub use error::CliError;
