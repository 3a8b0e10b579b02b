//! The webhook system's library: everything the Lambda functions do that can be tested without
//! AWS lives here, behind small types and traits.
//!
//! - [`ids`]: validated identifiers (tenant, event id) that keys are built from.
//! - [`provider`]: the providers a route can name and the signature scheme each one uses.
//! - [`secret`]: signing secrets, redacted in `Debug`, with rotation.
//! - [`verify`]: signature verification, one module per scheme.
//! - [`record`]: the stored event and its status state machine.
//! - [`clock`]: injected time, so tests never sleep.

pub mod clock;
pub mod ids;
pub mod provider;
pub mod record;
pub mod secret;
pub mod verify;
