//! One integration-test binary: the real functions, through the real AWS SDK clients, against
//! the local AWS emulator that `make test` starts. Every test provisions its own tables and
//! queues under a unique prefix, so tests run in parallel and never see each other's data.

mod cost;
mod gameday;
mod ingress;
mod interop;
mod local_runner;
mod outbound;
mod pipeline;
mod portal;
mod ports;
mod processing;
mod provisioning;
mod replay;
mod security;
mod support;
mod template;
