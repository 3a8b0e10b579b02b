//! Signature verification, one module per scheme behind one small interface:
//! [`Verifier::verify`]`(raw_body, headers, secrets, now) -> Result<Verified, VerifyError>`.
//!
//! Every scheme verifies the raw bytes exactly as received, compares MACs in constant time,
//! refuses empty, truncated, wrongly cased or wrongly prefixed signatures, tries every signature a
//! header carries against every active secret, and enforces a replay window where the scheme
//! signs a timestamp. Errors name what was wrong without echoing secrets or signatures, so they
//! can be logged and counted.
//!
//! Some schemes need more than the request and the tenant's shared secrets: Twilio signs the URL
//! it requested, Circle signs with keys it publishes by id, PayPal with a certificate it names by
//! URL. Those inputs travel in a [`VerifyContext`] (see there for why), and PayPal's certificate
//! fetch makes its path async: [`Verifier::verify_async`].

pub mod braintree;
pub mod circle;
pub mod declared;
mod generic;
mod github;
pub mod google_oidc;
mod keys;
mod mac;
pub mod paypal;
mod shopify;
mod slack;
mod standard;
mod stripe;
pub mod twilio;

use std::time::{Duration, SystemTime};

pub use generic::GenericHeaders;
use http::HeaderMap;
pub use keys::{PublicKey, PublicKeys};
pub use paypal::{CertificateFetchError, CertificateSource, PayPalCertificates};
use thiserror::Error;
pub use twilio::{InvalidUrl, RequestUrl};

use crate::secret::{Secret, SecretSet, SecretSlot};

/// What Google's OIDC verification needs: its signing keys, fetched, so only
/// [`Verifier::verify_async`] can reach them.
const GOOGLE_CONTEXT: &str = "Google's signing keys (verify_async with VerifyContext::google)";

/// The replay window used when a tenant configures none.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A signature scheme and the parameters it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Stripe-Signature: t=..,v1=..`: hex HMAC-SHA256 over `{t}.{body}`.
    Stripe,
    /// Standard Webhooks and Svix (Clerk, Resend): base64 HMAC-SHA256 (`v1`, `whsec_` secrets) or
    /// Ed25519 (`v1a`, `whpk_` public keys) over `{id}.{ts}.{body}`.
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    GitHub,
    /// `v0=<hex>` over `v0:{ts}:{body}`.
    Slack,
    /// Base64 HMAC-SHA256 over the body in `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Lowercase hex HMAC-SHA256 over `{timestamp}.{body}`, header names configurable.
    Generic(GenericHeaders),
    /// `X-Twilio-Signature`: base64 HMAC-SHA1 over the requested URL and the sorted form
    /// parameters (or the URL alone, with a `bodySHA256` query parameter, for JSON bodies).
    /// Needs [`VerifyContext::url`].
    Twilio,
    /// `X-Circle-Signature`: base64 DER ECDSA P-256 / SHA-256 over the body, by the public key
    /// named in `X-Circle-Key-Id`. Needs [`VerifyContext::public_keys`].
    Circle,
    /// PayPal's `paypal-transmission-sig`: SHA256withRSA over
    /// `{transmission id}|{time}|{webhook id}|{crc32(body)}` by the certificate at
    /// `paypal-cert-url`. Needs [`VerifyContext::paypal`] and [`Verifier::verify_async`].
    PayPal,
    /// `Authorization: Bearer <JWT>` signed by Google (RS256, Google's published keys), for
    /// Pub/Sub push and the rest of Google Cloud. Needs [`VerifyContext::google`].
    GoogleOidc,
    /// Braintree: `bt_signature` (public key and hex HMAC-SHA1 keyed with the SHA-1 of the
    /// private key) over `bt_payload`, both form fields of the body.
    Braintree,
    /// A provider described as data: see [`declared`].
    Declared(&'static declared::Declaration),
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
            Self::Twilio => &[twilio::SIGNATURE_HEADER],
            Self::Circle => &[circle::SIGNATURE_HEADER],
            Self::PayPal => &[paypal::SIGNATURE_HEADER],
            Self::Declared(declaration) => return declaration.is_signed(headers),
            Self::GoogleOidc => &["authorization"],
            // The signature is a form field: always verified.
            Self::Braintree => return true,
        };
        names.iter().any(|name| headers.contains_key(*name))
    }

    /// Whether [`Scheme::sign`] can make a delivery from the tenant's secret alone: not where
    /// the provider signs with a private key of its own (Circle, PayPal, Discord, SendGrid),
    /// with an identity (Google), or inside the body (Mailgun, Graph's client state).
    pub fn signs_from_secret(&self) -> bool {
        match self {
            Self::Circle | Self::PayPal | Self::GoogleOidc | Self::Braintree => false,
            Self::Declared(declaration) => declaration.signs_from_secret(),
            _ => true,
        }
    }

    /// Whether the scheme signs the URL the provider called (or, for Google, names it as the
    /// token's audience): then a tenant behind a custom domain configures its public base URL.
    pub fn signs_the_url(&self) -> bool {
        match self {
            Self::Twilio | Self::GoogleOidc => true,
            Self::Declared(declaration) => declaration.signs_the_url(),
            _ => false,
        }
    }

    /// Whether a random secret can stand for the tenant's: not where the secret is a public
    /// key or an identity the provider issues.
    pub fn secret_can_be_generated(&self) -> bool {
        match self {
            Self::Circle | Self::PayPal | Self::GoogleOidc | Self::Braintree => false,
            Self::Declared(declaration) => !declaration.verifies_with_a_public_key(),
            _ => true,
        }
    }

    /// Whether `secret` is one this scheme can verify deliveries with: a verify-only key (a
    /// Standard Webhooks `whpk_` public key) is parsed as the verifier would; any other is tried
    /// by signing an empty body, with `context` where the scheme signs part of it.
    pub fn check_secret(
        &self,
        secret: &Secret,
        at: SystemTime,
        context: &VerifyContext<'_>,
    ) -> Result<(), VerifyError> {
        match self {
            Self::StandardWebhooks => standard::check_secret(secret),
            Self::Declared(declaration) => declaration.check_secret(secret),
            Self::GoogleOidc => google_oidc::check_service_account(secret.expose()),
            Self::Braintree => braintree::check_secret(secret),
            _ => self
                .sign_with(b"", secret, at, "msg_check", context)
                .map(drop),
        }
    }

    /// Produce the headers a provider would send for `body`, for tests, benchmarks and the
    /// operator CLI's "send a sample" command. `id` is used where the scheme carries an event id
    /// in a header. A Standard Webhooks `whsk_` secret key signs `v1a`.
    pub fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        at: SystemTime,
        id: &str,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        self.sign_with(body, secret, at, id, &VerifyContext::default())
    }

    /// [`Scheme::sign`] for schemes that sign part of the context: Twilio signs
    /// [`VerifyContext::url`]. Circle and PayPal sign with private keys only the provider holds;
    /// tests and the CLI use [`circle::sign`] and [`paypal::sign`] with keys of their own.
    pub fn sign_with(
        &self,
        body: &[u8],
        secret: &Secret,
        at: SystemTime,
        id: &str,
        context: &VerifyContext<'_>,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        match self {
            Self::Stripe => Ok(stripe::sign(body, secret, at)),
            Self::StandardWebhooks => standard::sign(body, secret, at, id),
            Self::GitHub => Ok(github::sign(body, secret, id)),
            Self::Slack => Ok(slack::sign(body, secret, at)),
            Self::Shopify => Ok(shopify::sign(body, secret, id)),
            Self::Generic(names) => Ok(generic::sign(names, body, secret, at, id)),
            Self::Twilio => {
                let url = context
                    .url
                    .ok_or(VerifyError::MissingContext(twilio::URL_CONTEXT))?;
                Ok(twilio::sign(url, body, secret))
            }
            Self::Circle => Err(VerifyError::UnusableSecret(
                "Circle signs with a private key of its own; sign with circle::sign",
            )),
            Self::PayPal => Err(VerifyError::UnusableSecret(
                "PayPal signs with its certificate's private key; sign with paypal::sign",
            )),
            Self::Declared(declaration) => declaration.sign(body, secret, at, id, context),
            Self::GoogleOidc => Err(VerifyError::UnusableSecret(
                "Google signs with its own keys; the secret is the expected service account",
            )),
            Self::Braintree => Err(VerifyError::UnusableSecret(
                "Braintree signs inside the form; build it with braintree::sign",
            )),
        }
    }
}

/// Inputs that only some schemes need, beside the raw request and the tenant's shared secrets.
///
/// Why a struct beside [`Verifier::verify`] rather than more arguments to it: the symmetric
/// schemes, and every caller written for them, need none of this, so `verify` keeps its
/// signature and passes an empty context. A caller serving Twilio, Circle or PayPal builds one
/// per delivery from the request and the tenant's configuration, and calls
/// [`Verifier::verify_with`], or [`Verifier::verify_async`], the one path that reaches PayPal's
/// certificate source. A scheme whose input is missing refuses with
/// [`VerifyError::MissingContext`], a configuration error: a wiring mistake shows up as a 503
/// and an error log, never as an accepted delivery. Fields are borrowed, so building a context
/// per delivery copies nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyContext<'a> {
    /// The URL the provider requested, as it addressed it: Twilio signs it.
    pub url: Option<&'a RequestUrl>,
    /// The provider's public keys by id: Circle.
    pub public_keys: Option<&'a PublicKeys>,
    /// The tenant's PayPal webhook id and the process's certificate checker: PayPal.
    pub paypal: Option<PayPalContext<'a>>,
    /// Google's signing keys, shared by every tenant: Firebase and Google Cloud push.
    pub google: Option<&'a google_oidc::GoogleKeys>,
}

/// What PayPal verification needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct PayPalContext<'a> {
    /// The id PayPal gave the tenant's webhook subscription; PayPal signs it into every delivery,
    /// so a delivery for another subscription (even the tenant's own sandbox one) fails.
    pub webhook_id: &'a str,
    /// Certificate fetching, chain validation and the cache, shared by every tenant.
    pub certificates: &'a PayPalCertificates,
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

    /// Check that `raw_body` was signed by one of `secrets`' active secrets. Schemes that need a
    /// [`VerifyContext`] refuse with [`VerifyError::MissingContext`] here.
    pub fn verify(
        &self,
        raw_body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        self.verify_with(raw_body, headers, secrets, &VerifyContext::default(), now)
    }

    /// [`Verifier::verify`] with the inputs some schemes need besides the shared secrets. PayPal
    /// is refused with [`VerifyError::MissingContext`] once its headers parse: its certificate is
    /// fetched, which only [`Verifier::verify_async`] may do.
    pub fn verify_with(
        &self,
        raw_body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        context: &VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        let window = self.window(now);
        match &self.scheme {
            Scheme::Stripe => stripe::verify(raw_body, headers, secrets, window),
            Scheme::StandardWebhooks => standard::verify(raw_body, headers, secrets, window),
            Scheme::GitHub => github::verify(raw_body, headers, secrets, now),
            Scheme::Slack => slack::verify(raw_body, headers, secrets, window),
            Scheme::Shopify => shopify::verify(raw_body, headers, secrets, now),
            Scheme::Generic(names) => generic::verify(names, raw_body, headers, secrets, window),
            Scheme::Twilio => twilio::verify(raw_body, headers, secrets, context.url, now),
            Scheme::Circle => circle::verify(raw_body, headers, context.public_keys, now),
            Scheme::PayPal => {
                paypal::Transmission::parse(headers)?;
                Err(VerifyError::MissingContext(paypal::ASYNC_CONTEXT))
            }
            Scheme::Declared(declaration) => {
                declaration.verify(raw_body, headers, secrets, context, window)
            }
            Scheme::GoogleOidc => Err(VerifyError::MissingContext(GOOGLE_CONTEXT)),
            Scheme::Braintree => braintree::verify(raw_body, secrets, now),
        }
    }

    /// Every scheme, PayPal included: the ingress's one entry point. Only PayPal awaits anything
    /// (its certificate, on a cache miss); every other scheme runs [`Verifier::verify_with`].
    pub async fn verify_async(
        &self,
        raw_body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        context: &VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        match &self.scheme {
            Scheme::PayPal => {
                paypal::verify(raw_body, headers, context.paypal, self.window(now)).await
            }
            Scheme::GoogleOidc => google(headers, secrets, context, now).await,
            _ => self.verify_with(raw_body, headers, secrets, context, now),
        }
    }

    fn window(&self, now: SystemTime) -> Window {
        Window {
            now,
            tolerance: self.tolerance,
        }
    }
}

/// Google's OIDC push: the token's audience must be the URL Google pushed to (as the push
/// subscription's audience defaults to), and its `email` the tenant's service account (the
/// "secret"; a rotation moves to another account with the previous one kept for its grace).
async fn google(
    headers: &HeaderMap,
    secrets: &SecretSet,
    context: &VerifyContext<'_>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let keys = context
        .google
        .ok_or(VerifyError::MissingContext(GOOGLE_CONTEXT))?;
    let audience = context
        .url
        .ok_or(VerifyError::MissingContext("the URL Google pushed to"))?;
    let mut last = VerifyError::SignatureMismatch;
    for (slot, account) in secrets.active(now) {
        let expect = google_oidc::GoogleOidcExpectation::new(audience.as_str(), account.expose());
        match google_oidc::verify(headers, &expect, keys, now).await {
            Ok(verified) => {
                return Ok(Verified {
                    secret: slot,
                    ..verified
                });
            }
            // Another account may be the rotation's other one; anything else is final.
            Err(e @ VerifyError::InvalidToken("unexpected service account")) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// What a successful verification tells: which secret matched, and the metadata the scheme
/// carries in its headers (body fields are read later, by the provider's extractor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The slot of the secret or public key that matched: a key that is being retired (it has an
    /// expiry) reports `Previous`. PayPal, whose trust is a certificate chain rather than a tenant
    /// key, always reports `Current`.
    pub secret: SecretSlot,
    /// The id of the public key that matched, where the provider names its keys (Circle).
    pub key_id: Option<String>,
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
    /// The scheme needs an input the caller did not put in the [`VerifyContext`].
    #[error("verification needs {0}, which the caller did not supply")]
    MissingContext(&'static str),
    /// The delivery names a public key that is not configured (or has expired). The sender's
    /// fault as far as this request goes (anyone can send any key id), so a 401, not a 503; an
    /// operator who sees it for genuine deliveries has a key to add.
    #[error("no active public key has the delivery's key id")]
    UnknownKeyId,
    #[error("the signing certificate is not trusted: {0}")]
    UntrustedCertificate(&'static str),
    /// The certificate source failed; the provider should retry.
    #[error("the signing certificate could not be fetched")]
    CertificateUnavailable,
    /// A bearer token (Google's OIDC) broke a rule: the text names the rule, never the token.
    #[error("the token is not acceptable: {0}")]
    InvalidToken(&'static str),
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
            Self::MissingContext(_) => "missing_context",
            Self::UnknownKeyId => "unknown_key_id",
            Self::UntrustedCertificate(_) => "untrusted_certificate",
            Self::CertificateUnavailable => "certificate_unavailable",
            Self::InvalidToken(_) => "invalid_token",
        }
    }

    /// Whether the fault is ours, not the sender's: a bad secret or key in the tenant's
    /// configuration, an input the caller did not wire, or a certificate source that failed. The
    /// ingress answers 503 to these, so the provider retries once we are fixed.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Self::UnusableSecret(_) | Self::MissingContext(_) | Self::CertificateUnavailable
        )
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

/// A header that may be absent but, when present, must be single and readable: for headers
/// that steer verification, where a second copy is as suspicious as a second signature.
pub(crate) fn at_most_one_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, VerifyError> {
    if headers.contains_key(name) {
        single_header(headers, name).map(Some)
    } else {
        Ok(None)
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
            Scheme::Twilio,
            Scheme::Circle,
            Scheme::PayPal,
        ]
    }

    /// Every header name any scheme reads, so arbitrary values reach every parser.
    const NAMES: [&str; 21] = [
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
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
        "x-circle-signature",
        "x-circle-key-id",
        "paypal-transmission-sig",
        "paypal-auth-algo",
        "paypal-cert-url",
        "paypal-transmission-id",
        "paypal-transmission-time",
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
    fn is_signed_knows_every_schemes_signature_header() {
        for (scheme, name) in [
            (Scheme::Twilio, "X-Twilio-Signature"),
            (Scheme::Circle, "X-Circle-Signature"),
            (Scheme::PayPal, "PAYPAL-TRANSMISSION-SIG"),
        ] {
            assert!(scheme.is_signed(&headers(&[(name, "x")])), "{scheme:?}");
            assert!(!scheme.is_signed(&headers(&[("stripe-signature", "x")])));
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
        // The newer errors: which are ours (a 503, so the provider retries) and which the sender's.
        for (err, reason, ours) in [
            (VerifyError::MissingContext("x"), "missing_context", true),
            (VerifyError::UnknownKeyId, "unknown_key_id", false),
            (
                VerifyError::UntrustedCertificate("x"),
                "untrusted_certificate",
                false,
            ),
            (
                VerifyError::CertificateUnavailable,
                "certificate_unavailable",
                true,
            ),
        ] {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.is_configuration_error(), ours, "{reason}");
        }
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
            let url = RequestUrl::parse("https://hooks.example.com/webhooks/acme/twilio").expect("url");
            let keys = PublicKeys::new([PublicKey::new("key-1", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")]);
            let context = VerifyContext { url: Some(&url), public_keys: Some(&keys), ..Default::default() };
            for scheme in all_schemes() {
                let v = verifier(scheme);
                let _ = v.verify(&body, &h, &secrets("whsec_c2VjcmV0"), at(now));
                let _ = v.verify_with(&body, &h, &secrets("whpk_c2VjcmV0"), &context, at(now));
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
