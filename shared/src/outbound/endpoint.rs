//! A partner's endpoint: where a tenant's messages go, which ones, how fast, and signed with
//! what. Its configuration is versioned (operators' edits are conditional writes); its health is
//! kept beside it and changed only by the dispatcher, so the two never overwrite each other.

use std::{
    collections::BTreeMap,
    fmt,
    num::NonZeroU32,
    str::FromStr,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderName, HeaderValue};
use thiserror::Error;

use super::{filter::EventFilter, ids::EndpointId, ssrf::EndpointUrl};
use crate::{
    ids::TenantId,
    secret::{Secret, SecretSet},
};

/// The prefix of a signing secret, as Standard Webhooks and Svix show them.
pub const SECRET_PREFIX: &str = "whsec_";
/// How many random bytes a generated secret carries (the scheme allows 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// How long a rotated-out secret keeps signing (as a second signature) unless told otherwise.
pub const DEFAULT_SECRET_OVERLAP: Duration = Duration::from_secs(24 * 60 * 60);
/// The most custom headers an endpoint may set, and their total size.
pub const MAX_CUSTOM_HEADERS: usize = 20;
pub const MAX_CUSTOM_HEADER_BYTES: usize = 4096;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 512;

/// Why an endpoint's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    #[error("signing secret must be whsec_ followed by the base64 of 24 to 64 bytes")]
    Secret,
    #[error("header {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("the value of header {0:?} is not a valid header value")]
    HeaderValue(String),
    #[error("header {0:?} is set by the dispatcher and cannot be overridden")]
    ReservedHeader(String),
    #[error(
        "at most {MAX_CUSTOM_HEADERS} custom headers of {MAX_CUSTOM_HEADER_BYTES} bytes in all"
    )]
    TooManyHeaders,
    #[error("the description is longer than {MAX_DESCRIPTION_CHARS} characters")]
    Description,
    #[error("the rate limit must be a whole number of deliveries per second, at least 1")]
    RateLimit,
}

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> Result<Secret, EndpointError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| EndpointError::Secret)?;
    Ok(Secret::new(format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(bytes)
    )))
}

/// Check a secret given by an operator (to match one a partner already has).
pub fn check_secret(secret: &Secret) -> Result<(), EndpointError> {
    let key = secret
        .expose()
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .ok_or(EndpointError::Secret)?;
    if (24..=64).contains(&key.len()) {
        Ok(())
    } else {
        Err(EndpointError::Secret)
    }
}

/// Headers the dispatcher sets on every delivery, which an endpoint's own headers may not
/// replace: the signature's, and those that frame the request.
const RESERVED_HEADERS: [&str; 9] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
];

/// An endpoint's own headers (an API key the partner's gateway wants, a routing hint). Their
/// values are kept as [`Secret`]s: partners put credentials there, so they never reach a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(BTreeMap<String, Secret>);

impl CustomHeaders {
    /// Validate names and values (lowercased names, no reserved ones, bounded in number and
    /// size).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, EndpointError> {
        let mut headers = BTreeMap::new();
        let mut bytes = 0;
        for (name, value) in pairs {
            let lower = name.trim().to_ascii_lowercase();
            HeaderName::from_str(&lower).map_err(|_| EndpointError::HeaderName(name.clone()))?;
            HeaderValue::from_str(&value).map_err(|_| EndpointError::HeaderValue(name.clone()))?;
            if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
                return Err(EndpointError::ReservedHeader(lower));
            }
            bytes += lower.len() + value.len();
            headers.insert(lower, Secret::new(value));
        }
        if headers.len() > MAX_CUSTOM_HEADERS || bytes > MAX_CUSTOM_HEADER_BYTES {
            return Err(EndpointError::TooManyHeaders);
        }
        Ok(Self(headers))
    }

    /// Parse `name: value` lines, as the CLI's `--header` takes them.
    pub fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Result<Self, EndpointError> {
        let pairs = lines
            .iter()
            .map(|line| {
                let line = line.as_ref();
                line.split_once(':')
                    .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| EndpointError::HeaderName(line.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(pairs)
    }

    /// Names and values, for a request or for sealing; never for a log.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.expose()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An endpoint's custom headers as read. Their values are sealed like the signing secrets, so
/// a reader without the key sees the names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointHeaders {
    /// Names only: read without secrets. A write leaves the stored values as they are.
    Sealed(Vec<String>),
    /// Names and values: read with secrets, or set by an operator.
    Open(CustomHeaders),
}

impl Default for EndpointHeaders {
    fn default() -> Self {
        Self::Open(CustomHeaders::default())
    }
}

impl EndpointHeaders {
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::Sealed(names) => names.iter().map(String::as_str).collect(),
            Self::Open(headers) => headers.names().collect(),
        }
    }

    /// The values, when they were read.
    pub fn opened(&self) -> Option<&CustomHeaders> {
        match self {
            Self::Sealed(_) => None,
            Self::Open(headers) => Some(headers),
        }
    }

    /// The same headers with their values dropped.
    #[must_use]
    pub fn sealed(&self) -> Self {
        Self::Sealed(self.names().into_iter().map(str::to_owned).collect())
    }
}

/// Why an endpoint receives nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// An operator or the partner turned it off.
    Operator,
    /// It answered 410 Gone: the partner says it is gone for good.
    Gone,
    /// It failed continuously for longer than the tenant allows.
    Failing,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }
}

impl fmt::Display for DisabledReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DisabledReason {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(Self::Operator),
            "gone" => Ok(Self::Gone),
            "failing" => Ok(Self::Failing),
            _ => Err(()),
        }
    }
}

/// The dispatcher's view of how an endpoint has been answering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When the current run of failures began; `None` while it answers.
    pub failing_since: Option<SystemTime>,
    /// The circuit breaker: open until then, deliveries are held and one probe goes out after.
    pub paused_until: Option<SystemTime>,
    /// Pauses opened in the current run of failures: each lasts twice the one before.
    pub pauses: u32,
    pub last_success_at: Option<SystemTime>,
    /// Set when the dispatcher (not an operator) disabled it: `gone` or `failing`.
    pub disabled: Option<(DisabledReason, SystemTime)>,
    /// It holds deliveries (it was disabled or paused): a new one waits behind them, so they
    /// are all released in order of creation.
    pub holding: bool,
    /// Since when its attempts are slow ([`super::lanes`]): its deliveries go on the slow
    /// lane until one answers fast.
    pub slow_since: Option<SystemTime>,
}

/// One partner endpoint of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tenant: TenantId,
    pub id: EndpointId,
    pub url: EndpointUrl,
    pub description: String,
    pub filter: EventFilter,
    /// Turned off by an operator (`None`: on). The dispatcher's own disabling is in
    /// [`EndpointHealth::disabled`]; either one stops deliveries.
    pub disabled_by_operator: Option<SystemTime>,
    /// Deliveries per second, across all dispatchers.
    pub rate_limit: Option<NonZeroU32>,
    /// Its custom headers; their values only when read with secrets.
    pub headers: EndpointHeaders,
    /// The signing secrets, when read with them (only the dispatcher and operators open
    /// them). A write without them leaves the stored ones as they are.
    pub secrets: Option<SecretSet>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// The stored version this was read at (0: not stored yet); writes are conditioned on it.
    pub version: u64,
    pub health: EndpointHealth,
}

impl Endpoint {
    /// A new, enabled endpoint receiving `filter`, signing with `secret`.
    pub fn new(
        tenant: TenantId,
        url: EndpointUrl,
        filter: EventFilter,
        secret: Secret,
        now: SystemTime,
    ) -> Self {
        Self {
            tenant,
            id: EndpointId::generate(),
            url,
            description: String::new(),
            filter,
            disabled_by_operator: None,
            rate_limit: None,
            headers: EndpointHeaders::default(),
            secrets: Some(SecretSet::single(secret)),
            created_at: now,
            updated_at: now,
            version: 0,
            health: EndpointHealth::default(),
        }
    }

    /// Why it receives nothing, if it does not.
    pub fn disabled(&self) -> Option<DisabledReason> {
        if self.disabled_by_operator.is_some() {
            Some(DisabledReason::Operator)
        } else {
            self.health.disabled.map(|(reason, _)| reason)
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.disabled().is_none()
    }

    /// Whether its circuit breaker holds deliveries at `now`.
    pub fn is_paused(&self, now: SystemTime) -> bool {
        self.health.paused_until.is_some_and(|until| now < until)
    }

    /// Set the description, bounded.
    pub fn describe(&mut self, description: &str) -> Result<(), EndpointError> {
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(EndpointError::Description);
        }
        description.trim().clone_into(&mut self.description);
        Ok(())
    }

    /// The endpoint as a reader without the key sees it: no secrets, header names only.
    #[must_use]
    pub fn without_secrets(self) -> Self {
        Self {
            secrets: None,
            headers: self.headers.sealed(),
            ..self
        }
    }

    /// Replace the signing secret; the old one keeps signing beside it until `overlap` has
    /// passed, so the partner can switch without missing a delivery. Needs the endpoint read
    /// with its secrets; `false` without them.
    pub fn rotate(&mut self, next: Secret, now: SystemTime, overlap: Duration) -> bool {
        match &self.secrets {
            Some(secrets) => {
                self.secrets = Some(secrets.rotate(next, now + overlap));
                true
            }
            None => false,
        }
    }
}

/// Parse a rate limit (`0` or empty: none).
pub fn parse_rate_limit(raw: &str) -> Result<Option<NonZeroU32>, EndpointError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>()
        .map(NonZeroU32::new)
        .map_err(|_| EndpointError::RateLimit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_valid_and_fresh() {
        let a = generate_secret().expect("a");
        let b = generate_secret().expect("b");
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(check_secret(&a), Ok(()));
        for bad in ["whsec_", "whsec_c2hvcnQ=", "sk_live_x", "whsec_!!"] {
            assert_eq!(
                check_secret(&Secret::new(bad)),
                Err(EndpointError::Secret),
                "{bad}"
            );
        }
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(check_secret(&Secret::new(long)), Err(EndpointError::Secret));
    }

    #[test]
    fn custom_headers_are_checked_and_cannot_override_the_signature() {
        let headers =
            CustomHeaders::parse_lines(&["X-Api-Key: abc", "x-route: eu"]).expect("headers");
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("x-api-key", "abc"), ("x-route", "eu")]
        );
        for (line, err) in [
            (
                "Webhook-Signature: v1,forged",
                EndpointError::ReservedHeader("webhook-signature".into()),
            ),
            ("host: evil", EndpointError::ReservedHeader("host".into())),
            ("bad name: x", EndpointError::HeaderName("bad name".into())),
            ("no colon", EndpointError::HeaderName("no colon".into())),
        ] {
            assert_eq!(CustomHeaders::parse_lines(&[line]), Err(err), "{line}");
        }
        assert_eq!(
            CustomHeaders::new([("x-a".to_owned(), "line\nbreak".to_owned())]),
            Err(EndpointError::HeaderValue("x-a".into()))
        );
        let many: Vec<_> = (0..=MAX_CUSTOM_HEADERS)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(CustomHeaders::new(many), Err(EndpointError::TooManyHeaders));
    }

    #[test]
    fn header_values_stay_out_of_debug_output_and_a_sealed_read_keeps_the_names_only() {
        let headers = CustomHeaders::parse_lines(&["X-Api-Key: sk_partner_123", "x-route: eu"])
            .expect("headers");
        assert!(!format!("{headers:?}").contains("sk_partner_123"));
        let open = EndpointHeaders::Open(headers.clone());
        assert_eq!(open.opened(), Some(&headers));
        let sealed = open.sealed();
        assert_eq!(sealed.names(), ["x-api-key", "x-route"]);
        assert_eq!(sealed.opened(), None);
        assert_eq!(sealed.sealed(), sealed);
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(parse_rate_limit(""), Ok(None));
        assert_eq!(parse_rate_limit("0"), Ok(None));
        assert_eq!(parse_rate_limit("25"), Ok(NonZeroU32::new(25)));
        assert_eq!(parse_rate_limit("-1"), Err(EndpointError::RateLimit));
        assert_eq!(parse_rate_limit("fast"), Err(EndpointError::RateLimit));
    }
}
