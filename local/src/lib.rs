//! The local stack: the same functions, against an AWS emulator instead of AWS.
//!
//! - [`template`] reads the tables and queues out of template.yaml, so the local resources and
//!   the deployed ones come from one definition and cannot drift.
//! - [`provision`] creates them in the emulator under a prefix (tests isolate themselves by it).
//! - [`server`] serves the ingress over HTTP, standing in for API Gateway.
//! - [`coldstart`] measures the release bootstraps' cold starts against a stand-in for the
//!   Lambda Runtime API.
//! - [`cost`] prices every AWS call of a flow with the services' billing rules (`make cost`).
//! - [`fault_proxy`] sits between the SDK and the emulator to drop, delay or fail chosen calls,
//!   and counts them (the gameday tests and the calls-per-event figures).

pub mod aws;
pub mod coldstart;
pub mod cost;
pub mod dev;
pub mod event_source;
pub mod fault_proxy;
pub mod provision;
pub mod server;
pub mod template;
