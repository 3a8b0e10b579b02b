//! Provider handlers: pure functions from a stored event to the projection writes it causes.
//! They perform no I/O, so the processor can commit their writes atomically with the event's
//! `processed` mark, and tests can run them on bytes alone.
//!
//! Keys are built only from the event's [`EventKey`] tenant; payload fields choose entity ids
//! within that tenant, never the tenant.

mod circle;
mod clerk;
mod firebase;
mod paypal;
mod reader;
mod recorded;
mod resend;
mod stripe;
mod twilio;

use std::{fmt, str::FromStr};

use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    projection::{Change, Fields, ProjectionKey, ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::EventKey,
};

/// What to do with an event type no handler knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownTypePolicy {
    /// Mark it processed with outcome `ignored`: providers add types, and an unknown one must
    /// never be retried forever.
    #[default]
    Ignore,
    /// Treat it as a permanent error, for tenants who want to notice new types.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown-type policy must be \"ignore\" or \"fail\"")]
pub struct UnknownPolicyName;

impl FromStr for UnknownTypePolicy {
    type Err = UnknownPolicyName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ignore" => Ok(Self::Ignore),
            "fail" => Ok(Self::Fail),
            _ => Err(UnknownPolicyName),
        }
    }
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectorOutcome {
    /// Commit these with the `processed` mark. Never two writes to the same key, since one
    /// transaction cannot touch an item twice.
    Writes(Vec<ProjectionWrite>),
    /// Nothing to write; mark the event processed with this reason.
    Ignored { reason: String },
}

/// A handler failure. Every one is permanent: the same bytes fail the same way on every
/// retry, so the event goes dead at once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProjectorError {
    /// The payload does not match the provider's schema for its type, or the type is unknown
    /// and configured as fatal.
    #[error("{0}")]
    Permanent(String),
}

/// Run `provider`'s handler on a stored event. `event_type` is the type stored with the event
/// record; `key` supplies the tenant every write is scoped to and the source event id.
pub fn project(
    provider: Provider,
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    match provider {
        Provider::Stripe => stripe::project(event_type, payload, key, policy),
        Provider::Clerk => clerk::project(event_type, payload, key, policy),
        Provider::Resend => resend::project(event_type, payload, key, policy),
        Provider::Twilio => twilio::project(event_type, payload, key, policy),
        Provider::PayPal => paypal::project(event_type, payload, key, policy),
        Provider::Circle => circle::project(event_type, payload, key, policy),
        Provider::Firebase => firebase::project(event_type, payload, key, policy),
        Provider::Svix
        | Provider::StandardWebhooks
        | Provider::GitHub
        | Provider::Slack
        | Provider::Shopify
        | Provider::Generic
        | Provider::Braintree
        | Provider::Declared(_) => recorded::project(provider, event_type, payload, key),
    }
}

/// The outcome for a type `provider`'s handler does not know.
fn unknown(
    provider: Provider,
    event_type: Option<&str>,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let reason = match event_type {
        Some(t) => format!("unknown {provider} event type {}", clip(t, 100)),
        None => format!("{provider} event has no type"),
    };
    match policy {
        UnknownTypePolicy::Ignore => Ok(ProjectorOutcome::Ignored { reason }),
        UnknownTypePolicy::Fail => Err(ProjectorError::Permanent(reason)),
    }
}

/// Longest error message a handler produces: it lands in the event record and the logs.
const MAX_MESSAGE: usize = 240;

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where an event type stands in its object's life, for events of the same instant (Stripe's
/// `created` is whole seconds, so a subscription's `created` and first `updated` often share
/// one): the later in the life, the higher. Types the table does not name rank in the middle;
/// events of equal rank fall back to the event id, a stable rule, so every arrival order ends
/// in the same state.
pub fn lifecycle_rank(provider: Provider, event_type: &str) -> u32 {
    const BIRTH: u32 = 0;
    const CHANGE: u32 = 50;
    const DEATH: u32 = 100;
    match (provider, event_type) {
        // A payment attempt fails before the one that succeeds.
        (Provider::Stripe, "invoice.payment_failed" | "payment_intent.payment_failed") => 40,
        (Provider::Stripe, "invoice.paid" | "payment_intent.succeeded") => 60,
        // Resend's delivery life: sent, delayed, delivered, then what the recipient did.
        (Provider::Resend, "email.sent") => 10,
        (Provider::Resend, "email.delivery_delayed") => 20,
        (Provider::Resend, "email.delivered") => 30,
        (Provider::Resend, "email.opened") => 40,
        (Provider::Resend, "email.clicked") => 50,
        (Provider::Resend, "email.bounced") => 60,
        (Provider::Resend, "email.complained") => 70,
        // Twilio's callbacks carry no time: the status's place in the life is the order.
        (Provider::Twilio, t) => t
            .split_once('.')
            .and_then(|(kind, status)| twilio::rank(kind, status))
            .unwrap_or(CHANGE),
        // PayPal's types name the transition: their place in the resource's life.
        (Provider::PayPal, t) => paypal::rank(t).unwrap_or(CHANGE),
        (_, t) if t.ends_with(".created") || t.ends_with(".completed") => BIRTH,
        (_, t) if t.ends_with(".deleted") => DEATH,
        _ => CHANGE,
    }
}

/// One known event being handled: builds its writes and names it in errors.
struct Event<'a> {
    provider: Provider,
    event_type: &'a str,
    key: &'a EventKey,
    rank: u32,
}

impl<'a> Event<'a> {
    fn new(provider: Provider, event_type: &'a str, key: &'a EventKey) -> Self {
        Self {
            provider,
            event_type,
            key,
            rank: lifecycle_rank(provider, event_type),
        }
    }

    /// Rank by what the payload says (Circle's and Firebase's types do not name the status).
    fn with_rank(mut self, rank: u32) -> Self {
        self.rank = rank;
        self
    }

    /// A permanent error naming the provider and type.
    fn invalid(&self, what: impl fmt::Display) -> ProjectorError {
        let message = format!("{} {}: {what}", self.provider, self.event_type);
        ProjectorError::Permanent(clip(&message, MAX_MESSAGE).to_owned())
    }

    /// Parse the payload into the shape this type must have.
    fn parse<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, ProjectorError> {
        serde_json::from_slice(payload).map_err(|e| {
            // serde quotes the offending value, which may be long: keep its start and where.
            let full = e.to_string();
            if full.len() <= 160 {
                self.invalid(full)
            } else {
                let at = (e.line(), e.column());
                self.invalid(format_args!(
                    "{}... at line {} column {}",
                    clip(&full, 120),
                    at.0,
                    at.1
                ))
            }
        })
    }

    /// Refuse a payload whose own `type` disagrees with the stored one.
    fn check_type(&self, payload_type: &str) -> Result<(), ProjectorError> {
        if payload_type == self.event_type {
            Ok(())
        } else {
            Err(self.invalid(format_args!("payload type is {}", clip(payload_type, 100))))
        }
    }

    /// Refuse an object of the wrong kind (Stripe and Clerk name it in `object`).
    fn check_object(&self, found: &str, expected: &str) -> Result<(), ProjectorError> {
        if found == expected {
            Ok(())
        } else {
            Err(self.invalid(format_args!(
                "object is {}, expected {expected}",
                clip(found, 100)
            )))
        }
    }

    fn key(&self, kind: ProjectionKind, entity_id: &str) -> Result<ProjectionKey, ProjectorError> {
        ProjectionKey::new(&self.key.tenant, kind, entity_id)
            .map_err(|e| self.invalid(format_args!("{kind}: {e}")))
    }

    fn write(&self, key: ProjectionKey, version: i64, change: Change) -> ProjectionWrite {
        ProjectionWrite {
            key,
            version,
            rank: self.rank,
            source_event_id: self.key.event_id.clone(),
            change,
        }
    }

    fn upsert(
        &self,
        kind: ProjectionKind,
        entity_id: &str,
        version: i64,
        fields: Fields,
    ) -> Result<ProjectionWrite, ProjectorError> {
        Ok(self.write(self.key(kind, entity_id)?, version, Change::Upsert(fields)))
    }

    fn delete(
        &self,
        kind: ProjectionKind,
        entity_id: &str,
        version: i64,
    ) -> Result<ProjectionWrite, ProjectorError> {
        Ok(self.write(self.key(kind, entity_id)?, version, Change::Delete))
    }

    /// Unix seconds to the millisecond version.
    fn secs_version(&self, secs: i64) -> Result<i64, ProjectorError> {
        secs.checked_mul(1000)
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| self.invalid("event time is out of range"))
    }

    /// Unix milliseconds as the version.
    fn millis_version(&self, ms: i64) -> Result<i64, ProjectorError> {
        if ms >= 0 {
            Ok(ms)
        } else {
            Err(self.invalid("event time is out of range"))
        }
    }

    /// An RFC 3339 time to the millisecond version.
    fn rfc3339_version(&self, field: &str, raw: &str) -> Result<i64, ProjectorError> {
        rfc3339_millis(raw)
            .ok_or_else(|| self.invalid(format_args!("{field} is not an RFC 3339 time")))
    }
}

/// Milliseconds since the epoch of an RFC 3339 time, if it parses and is not before 1970.
fn rfc3339_millis(raw: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .filter(|ms| *ms >= 0)
}

/// Fields from name/value pairs.
fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Fields {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests;
