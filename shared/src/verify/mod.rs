//! Signature verification, one module per scheme behind one small interface:
//! [`Verifier::verify`]`(raw_body, headers, secrets, now) -> Result<Verified, VerifyError>`.
//!
//! Every scheme verifies the raw bytes exactly as received, compares MACs in constant time,
//! refuses empty, truncated, wrongly cased or wrongly prefixed signatures, tries every signature a
//! header carries against every active secret, and enforces a replay window where the scheme
//! signs a timestamp. Errors name what was wrong without echoing secrets or signatures, so they
//! can be logged and counted.

mod generic;
mod github;
mod mac;
mod shopify;
mod slack;
mod standard;
mod stripe;

use std::time::{Duration, SystemTime};

pub use generic::GenericHeaders;
use http::HeaderMap;
use thiserror::Error;

use crate::secret::{Secret, SecretSet, SecretSlot};

/// The replay window used when a tenant configures none.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A signature scheme and the parameters it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Stripe-Signature: t=..,v1=..`: hex HMAC-SHA256 over `{t}.{body}`.
    Stripe,
    /// Standard Webhooks and Svix (Clerk, Resend): base64 HMAC-SHA256 over `{id}.{ts}.{body}`.
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    GitHub,
    /// `v0=<hex>` over `v0:{ts}:{body}`.
    Slack,
    /// Base64 HMAC-SHA256 over the body in `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Lowercase hex HMAC-SHA256 over `{timestamp}.{body}`, header names configurable.
    Generic(GenericHeaders),
}

impl Scheme {
    /// Whether the delivery carries this scheme's signature header at all. Used only to tell
    /// an unsigned delivery from a badly signed one: a signature that is present is always
    /// verified, never ignored.
    pub fn is_signed(&self, headers: &HeaderMap) -> bool {
        let names: &[&str] = match self {
            Self::Stripe => &[stripe::SIGNATURE_HEADER],
            Self::StandardWebhooks => &["webhook-signature", "svix-signature"],
            Self::GitHub => &["x-hub-signature-256"],
            Self::Slack => &["x-slack-signature"],
            Self::Shopify => &["x-shopify-hmac-sha256"],
            Self::Generic(names) => return headers.contains_key(names.signature.as_str()),
        };
        names.iter().any(|name| headers.contains_key(*name))
    }

    /// Produce the headers a provider would send for `body`, for tests, benchmarks and the
    /// operator CLI's "send a sample" command. `id` is used where the scheme carries an event id
    /// in a header.
    pub fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        at: SystemTime,
        id: &str,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        match self {
            Self::Stripe => Ok(stripe::sign(body, secret, at)),
            Self::StandardWebhooks => standard::sign(body, secret, at, id),
            Self::GitHub => Ok(github::sign(body, secret, id)),
            Self::Slack => Ok(slack::sign(body, secret, at)),
            Self::Shopify => Ok(shopify::sign(body, secret, id)),
            Self::Generic(names) => Ok(generic::sign(names, body, secret, at, id)),
        }
    }
}

/// A scheme with its replay window: what a tenant's provider configuration turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub scheme: Scheme,
    /// How far a signed timestamp may lie from `now`, in the past or the future.
    pub tolerance: Duration,
}

impl Verifier {
    pub fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Check that `raw_body` was signed by one of `secrets`' active secrets.
    pub fn verify(
        &self,
        raw_body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        let window = Window {
            now,
            tolerance: self.tolerance,
        };
        match &self.scheme {
            Scheme::Stripe => stripe::verify(raw_body, headers, secrets, window),
            Scheme::StandardWebhooks => standard::verify(raw_body, headers, secrets, window),
            Scheme::GitHub => github::verify(raw_body, headers, secrets, now),
            Scheme::Slack => slack::verify(raw_body, headers, secrets, window),
            Scheme::Shopify => shopify::verify(raw_body, headers, secrets, now),
            Scheme::Generic(names) => generic::verify(names, raw_body, headers, secrets, window),
        }
    }
}

/// What a successful verification tells: which secret matched, and the metadata the scheme
/// carries in its headers (body fields are read later, by the provider's extractor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub secret: SecretSlot,
    /// The event id, where the scheme sends it in a header (`webhook-id`, `X-GitHub-Delivery`, ...).
    pub event_id: Option<String>,
    /// The event type, where the scheme sends it in a header (`X-GitHub-Event`, ...).
    pub event_type: Option<String>,
    /// The signed timestamp, where the scheme has one.
    pub signed_at: Option<SystemTime>,
}

/// Why a delivery was refused. The text names headers and numbers, never secret material or
/// signature values, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(String),
    #[error("malformed header {0}")]
    MalformedHeader(String),
    #[error("header {0} carries no signature of a supported version")]
    NoSupportedSignature(String),
    #[error("signed timestamp is {age_secs}s old, beyond the {tolerance_secs}s replay window")]
    StaleTimestamp { age_secs: u64, tolerance_secs: u64 },
    #[error(
        "signed timestamp is {ahead_secs}s in the future, beyond the {tolerance_secs}s replay window"
    )]
    FutureTimestamp {
        ahead_secs: u64,
        tolerance_secs: u64,
    },
    #[error("no signature matches an active secret")]
    SignatureMismatch,
    #[error("the configured secret cannot be used with this scheme: {0}")]
    UnusableSecret(&'static str),
}

impl VerifyError {
    /// A short, stable label for metrics and alarms.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader(_) => "malformed_header",
            Self::NoSupportedSignature(_) => "no_supported_signature",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::FutureTimestamp { .. } => "future_timestamp",
            Self::SignatureMismatch => "signature_mismatch",
            Self::UnusableSecret(_) => "unusable_secret",
        }
    }

    /// Whether the fault is ours (a bad secret in the tenant's configuration), not the sender's.
    pub fn is_configuration_error(&self) -> bool {
        matches!(self, Self::UnusableSecret(_))
    }
}

/// `now` and the replay window, for schemes that sign a timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub now: SystemTime,
    pub tolerance: Duration,
}

impl Window {
    /// Parse the Unix-seconds timestamp a scheme signs; a malformed one blames `header`.
    pub fn parse(header: &str, raw: &str) -> Result<SystemTime, VerifyError> {
        parse_unix_secs(raw)
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .ok_or_else(|| VerifyError::MalformedHeader(header.to_owned()))
    }

    /// Check a signed time lies within the window. Called after the signature matched, so a
    /// stale error means an authentic but replayed (or clock-skewed) delivery.
    pub fn check(&self, signed_at: SystemTime) -> Result<(), VerifyError> {
        let tolerance_secs = self.tolerance.as_secs();
        match self.now.duration_since(signed_at) {
            Ok(age) if age > self.tolerance => Err(VerifyError::StaleTimestamp {
                age_secs: age.as_secs(),
                tolerance_secs,
            }),
            Err(ahead) if ahead.duration() > self.tolerance => Err(VerifyError::FutureTimestamp {
                ahead_secs: ahead.duration().as_secs(),
                tolerance_secs,
            }),
            _ => Ok(()),
        }
    }
}

/// Decimal seconds, digits only (no sign, no spaces), at most 12 digits so it cannot overflow.
fn parse_unix_secs(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// The one value of header `name`: missing, repeated, empty or non-ASCII values are refused,
/// because a second copy of a signature header is a smuggling attempt, not a rotation.
pub(crate) fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<&'h str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader(name.to_owned()));
    }
    match value.to_str() {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim()),
        _ => Err(VerifyError::MalformedHeader(name.to_owned())),
    }
}

/// An optional metadata header; absent, repeated or unreadable counts as absent.
pub(crate) fn optional_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{test_support::*, *};

    fn all_schemes() -> Vec<Scheme> {
        vec![
            Scheme::Stripe,
            Scheme::StandardWebhooks,
            Scheme::GitHub,
            Scheme::Slack,
            Scheme::Shopify,
            Scheme::Generic(GenericHeaders::default()),
        ]
    }

    /// Every header name any scheme reads, so arbitrary values reach every parser.
    const NAMES: [&str; 12] = [
        "stripe-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-signature",
        "x-hub-signature-256",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "x-shopify-hmac-sha256",
        "x-webhook-signature",
        "x-webhook-timestamp",
        "x-github-delivery",
    ];

    #[test]
    fn an_empty_request_is_refused_by_every_scheme() {
        for scheme in all_schemes() {
            let err = verifier(scheme.clone())
                .verify(b"", &HeaderMap::new(), &secrets("whsec_c2VjcmV0"), at(1))
                .expect_err("no headers");
            assert_eq!(err.reason(), "missing_header", "{scheme:?}");
        }
    }

    #[test]
    fn reasons_are_stable_labels() {
        let err = VerifyError::StaleTimestamp {
            age_secs: 301,
            tolerance_secs: 300,
        };
        assert_eq!(err.reason(), "stale_timestamp");
        assert_eq!(
            err.to_string(),
            "signed timestamp is 301s old, beyond the 300s replay window"
        );
    }

    proptest! {
        #[test]
        fn no_header_value_or_body_makes_a_parser_panic(
            values in proptest::collection::vec("[ -~]{0,120}", NAMES.len()),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in 0u64..4_000_000_000,
        ) {
            let pairs: Vec<(&str, &str)> = NAMES.iter().copied().zip(values.iter().map(String::as_str)).collect();
            let h = headers(&pairs);
            for scheme in all_schemes() {
                let _ = verifier(scheme).verify(&body, &h, &secrets("whsec_c2VjcmV0"), at(now));
            }
        }

        #[test]
        fn signature_shaped_garbage_never_verifies(
            hex in "[0-9a-f]{64}",
            ts in 1_600_000_000u64..1_800_000_000,
        ) {
            let stripe = headers(&[("stripe-signature", &format!("t={ts},v1={hex}"))]);
            prop_assert_eq!(
                verifier(Scheme::Stripe).verify(b"{}", &stripe, &secrets("whsec_x"), at(ts)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }
}
