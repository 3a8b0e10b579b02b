//! What can go wrong, in words an operator can act on. No message carries a secret, a route
//! token or a payload.

use std::{io, path::PathBuf};

use shared::{
    ids::{EventId, TenantId},
    ports::StoreError,
    provider::Provider,
    verify::VerifyError,
};
use thiserror::Error;

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Changed(what),
            other => Self::Store(other),
        }
    }
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{what} is not set: pass --{flag} or set {env}")]
    MissingSetting {
        what: &'static str,
        flag: &'static str,
        env: &'static str,
    },

    /// Another operator changed the configuration between this command's read and its write:
    /// nothing was written.
    #[error("{0}; nothing was written, run the command again")]
    Changed(String),

    #[error(transparent)]
    Store(StoreError),

    #[error("tenant {tenant} has no {provider} configuration")]
    ConfigNotFound {
        tenant: TenantId,
        provider: Provider,
    },

    #[error(
        "tenant {tenant} already has a {provider} configuration; \
         use `hookctl tenant rotate` to change its secret"
    )]
    ConfigExists {
        tenant: TenantId,
        provider: Provider,
    },

    #[error("{what} does not apply to {provider}")]
    NotForProvider {
        what: &'static str,
        provider: Provider,
    },

    #[error(
        "{provider} verifies with a key or identity the provider issues: pass it with --secret"
    )]
    SecretRequired { provider: Provider },

    #[error("Circle deliveries are verified with Circle's public keys: pass --public-key ID=KEY")]
    MissingPublicKey,

    #[error("the secret is malformed: {0}")]
    MalformedSecret(&'static str),

    #[error("the new secret is the current one; a rotation needs a different secret")]
    SameSecret,

    #[error("the secret cannot be used with the {scheme} scheme: {source}")]
    UnusableSecret {
        scheme: &'static str,
        #[source]
        source: VerifyError,
    },

    #[error("no event {provider}/{event_id} for tenant {tenant}")]
    EventNotFound {
        tenant: TenantId,
        provider: Provider,
        event_id: EventId,
    },

    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),

    #[error("cannot read the payload {}: {source}", path.display())]
    ReadPayload {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("cannot sign the request: {0}")]
    Sign(String),

    #[error("POST {url} failed: {reason}")]
    Http { url: String, reason: String },

    #[error("POST {url} got no answer within {secs}s")]
    Timeout { url: String, secs: u64 },

    #[error("the endpoint answered {status}")]
    Rejected { status: u16 },

    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),

    #[error("cannot read the action {}: {source}", path.display())]
    ReadAction {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An erasure found nothing (nothing changed), or erased without its audit record.
    #[error("{0}")]
    Erasure(String),

    /// The replay action was refused (bad input) or could not run (an outage).
    #[error("replay: {0}")]
    Replay(String),

    /// An outbound command was refused (bad input, an unknown endpoint) or could not run.
    #[error("{0}")]
    Outbound(String),

    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
}
