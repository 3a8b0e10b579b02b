//! Google-signed OIDC tokens: how Google Cloud authenticates the calls it makes (Pub/Sub push
//! subscriptions, and through them Firebase and Eventarc; Cloud Tasks and Cloud Scheduler HTTP
//! targets). The request carries `Authorization: Bearer <JWT>`; nothing signs the body, so the
//! token says who called and for whom, and the body is trusted because the caller is.
//!
//! The token is a JWS in compact form, `base64url(header).base64url(claims).base64url(signature)`,
//! and is accepted when:
//!
//! - the header names `alg` exactly `RS256` (`none`, `HS256` and every other algorithm are
//!   refused before any key is looked up, so a token cannot pick how it is checked: the classic
//!   HMAC-with-the-public-key confusion has nothing to grab) and a `kid`, and has no `crit`;
//! - the signature is RSASSA-PKCS1-v1_5 / SHA-256 over the ASCII `header.claims`, by the key of
//!   that `kid` in Google's published key set (<https://www.googleapis.com/oauth2/v3/certs>);
//! - `iss` is `accounts.google.com` or `https://accounts.google.com`;
//! - `aud` is exactly the audience the tenant configured (Pub/Sub's default is the push URL);
//! - `email` is exactly the tenant's service account and `email_verified` is `true` (Google
//!   issues tokens to every service account; only the email says it is the tenant's);
//! - `exp` has not passed, and neither `iat` nor `nbf` (if present) lies in the future, each
//!   within [`LEEWAY`]; `exp` is at most [`MAX_TOKEN_LIFETIME`] after `iat`.
//!
//! Google's keys ([`GoogleKeys`]) are one cache per process, shared by every tenant, refreshed
//! from a [`JwksSource`] as the response's `Cache-Control: max-age` says (bounded), with a limit
//! on refetches an unknown `kid` can cause and stale keys served for a while when Google cannot
//! be reached; see there. Errors name the rule that failed, never the token.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::{Verified, VerifyError, single_header};
use crate::secret::SecretSlot;

/// Where Google publishes the keys its OIDC tokens are signed with, as a JWKS.
pub const CERTS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The issuers Google's tokens name (both forms occur).
pub const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// The only algorithm accepted.
pub const ALGORITHM: &str = "RS256";
const AUTHORIZATION: &str = "authorization";

/// How far our clock may disagree with Google's: `exp` may have passed, and `iat` or `nbf` lie
/// ahead, by this much. Google's Python library allows none unless asked
/// (`clock_skew_in_seconds=0`); a Lambda's clock is NTP-synchronised, so a few seconds cover
/// real skew without stretching a token's hour-long life in any way that matters.
pub const LEEWAY: Duration = Duration::from_secs(10);
/// Google's tokens live an hour; a token claiming to live longer than a day was not made by it.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A Google ID token is about a kilobyte; anything beyond this is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Google's key set is a few kilobytes; a larger answer is not one.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// The shortest a fetched key set is trusted, whatever `max-age` says (Google's is typically
/// hours), and how long without one.
pub const MIN_JWKS_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The longest a fetched key set is trusted, whatever `max-age` says.
pub const MAX_JWKS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// At most one fetch per this interval, whatever the tokens name: an attacker sending unknown
/// key ids cannot make us fetch per request, and a failing source is not hammered.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long after they should have been refreshed the last keys keep serving while Google's
/// key endpoint cannot be reached; after that the delivery is answered 503 and Google retries.
/// Google's set lists old and new keys side by side across a rotation, so an hour of stale
/// keys serves genuine tokens while bounding how long a withdrawn key stays trusted.
pub const STALE_GRACE: Duration = Duration::from_secs(3600);
/// Google publishes two or three keys at a time.
const MAX_KEYS: usize = 16;
const MAX_KID_BYTES: usize = 128;
/// RSA signatures from 2048 to 8192 bits.
const SIGNATURE_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;
/// Year 9999: a time claim beyond is not a time.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// What a tenant configures for Google's calls: whom the token must be for, and from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleOidcExpectation {
    /// The `aud` claim, exactly: the push endpoint's URL unless the subscription sets another.
    pub audience: String,
    /// The `email` claim, exactly: the service account the subscription authenticates as.
    pub service_account: String,
}

impl GoogleOidcExpectation {
    pub fn new(audience: impl Into<String>, service_account: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            service_account: service_account.into(),
        }
    }

    /// An empty expectation would match an empty claim: a configuration error, not a pass.
    fn check(&self) -> Result<(), VerifyError> {
        if self.audience.trim().is_empty() {
            return Err(VerifyError::UnusableSecret(
                "the Google OIDC audience is empty",
            ));
        }
        if self.service_account.trim().is_empty() {
            return Err(VerifyError::UnusableSecret(
                "the Google OIDC service account is empty",
            ));
        }
        Ok(())
    }
}

/// Whether `account` can be a tenant's expected service account: one address, `name@domain`,
/// printable, as Google's `email` claim carries it (`push@project.iam.gserviceaccount.com`).
pub fn check_service_account(account: &str) -> Result<(), VerifyError> {
    let plausible = account.len() <= 254
        && account.bytes().all(|b| b.is_ascii_graphic())
        && matches!(account.split_once('@'), Some((name, domain))
            if !name.is_empty() && domain.contains('.') && !domain.contains('@'));
    plausible.then_some(()).ok_or(VerifyError::UnusableSecret(
        "expected the service account's email, e.g. push@project.iam.gserviceaccount.com",
    ))
}

/// Check the bearer token of a call Google Cloud made: the signature by Google's key, then the
/// claims against `expect` at `now`. The slot is always `Current` (the trust is Google's key
/// set, not a tenant key); `key_id` is the token's `kid`, `signed_at` its `iat`.
pub async fn verify(
    headers: &HeaderMap,
    expect: &GoogleOidcExpectation,
    keys: &GoogleKeys,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    expect.check()?;
    let token = bearer_token(single_header(headers, AUTHORIZATION)?)?;
    let token = UnverifiedToken::parse(token)?;
    let key = keys.key(&token.kid, now).await?;
    key.verify_sig(token.signing_input.as_bytes(), &token.signature)
        .map_err(|_| VerifyError::SignatureMismatch)?;
    // Claims are read only once they are known to be Google's.
    let signed_at = Claims::parse(&token.claims)?.check(expect, now)?;
    Ok(Verified {
        secret: SecretSlot::Current,
        key_id: Some(token.kid),
        event_id: None,
        event_type: None,
        signed_at: Some(signed_at),
    })
}

/// The token of `Bearer <token>`: the scheme in any case (RFC 6750 / 7235), the token exact.
fn bearer_token(value: &str) -> Result<&str, VerifyError> {
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::NoSupportedSignature(AUTHORIZATION.to_owned()));
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(VerifyError::MalformedHeader(AUTHORIZATION.to_owned()));
    }
    Ok(token)
}

/// A token split and decoded, its header checked, its signature not yet.
pub(crate) struct UnverifiedToken<'t> {
    kid: String,
    /// `header.claims`, as sent: what the signature covers.
    signing_input: &'t str,
    claims: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The JOSE header fields read; anything else is ignored (`typ` included), as RFC 7515 allows.
#[derive(Deserialize)]
struct Header {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

impl<'t> UnverifiedToken<'t> {
    /// Three base64url (unpadded, canonical) segments, at most [`MAX_TOKEN_BYTES`] in all; the
    /// header names `RS256` and a key id. Never panics, whatever `token` holds.
    pub(crate) fn parse(token: &'t str) -> Result<Self, VerifyError> {
        let malformed = || VerifyError::MalformedHeader(AUTHORIZATION.to_owned());
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(malformed());
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or_else(malformed)?;
        if claims.contains('.') {
            return Err(malformed());
        }
        let decode = |segment: &str| URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed());
        let header: Header = json_object(&decode(header)?).ok_or_else(malformed)?;
        // The algorithm is decided here, not by the token: before any key is looked up.
        if !matches!(&header.alg, Some(Value::String(alg)) if alg == ALGORITHM) {
            return Err(VerifyError::InvalidToken("unsupported algorithm"));
        }
        if header.crit.is_some() {
            return Err(VerifyError::InvalidToken("unsupported critical header"));
        }
        let kid = match header.kid {
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => kid,
            Some(_) => return Err(malformed()),
            None => return Err(VerifyError::InvalidToken("missing key id")),
        };
        let claims_bytes = decode(claims)?;
        let signature = decode(signature)?;
        if !SIGNATURE_BYTES.contains(&signature.len()) {
            return Err(malformed());
        }
        Ok(Self {
            kid,
            signing_input,
            claims: claims_bytes,
            signature,
        })
    }
}

/// `json` as `T`, if it is an object: serde would also fill a struct from an array, by position.
fn json_object<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    if json.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// The claims checked, as sent: each kept as JSON so a wrong type fails its own rule.
#[derive(Deserialize)]
struct Claims {
    iss: Option<Value>,
    aud: Option<Value>,
    email: Option<Value>,
    email_verified: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
}

impl Claims {
    /// A JSON object; a repeated claim is refused (parsers disagree on which copy counts).
    fn parse(json: &[u8]) -> Result<Self, VerifyError> {
        json_object(json).ok_or(VerifyError::InvalidToken(
            "the claims are not a JSON object",
        ))
    }

    /// Every rule, at `now`; the issue time when all hold.
    fn check(
        &self,
        expect: &GoogleOidcExpectation,
        now: SystemTime,
    ) -> Result<SystemTime, VerifyError> {
        if !ISSUERS.iter().any(|issuer| claim_is(&self.iss, issuer)) {
            return Err(VerifyError::InvalidToken("wrong issuer"));
        }
        if !claim_is(&self.aud, &expect.audience) {
            return Err(VerifyError::InvalidToken("wrong audience"));
        }
        if !claim_is(&self.email, &expect.service_account) {
            return Err(VerifyError::InvalidToken("unexpected service account"));
        }
        if !matches!(&self.email_verified, Some(Value::Bool(true)))
            && !claim_is(&self.email_verified, "true")
        {
            return Err(VerifyError::InvalidToken("email not verified"));
        }
        let exp = numeric_date(&self.exp, "missing or malformed expiry (exp)")?;
        let iat = numeric_date(&self.iat, "missing or malformed issue time (iat)")?;
        let tolerance_secs = LEEWAY.as_secs();
        // Expiry measured like a replay window: how long ago the token stopped being valid.
        if let Ok(age) = now.duration_since(exp)
            && age > LEEWAY
        {
            return Err(VerifyError::StaleTimestamp {
                age_secs: age.as_secs(),
                tolerance_secs,
            });
        }
        let not_before = match &self.nbf {
            None => None,
            Some(_) => Some(numeric_date(&self.nbf, "malformed not-before (nbf)")?),
        };
        for start in [Some(iat), not_before].into_iter().flatten() {
            if let Ok(ahead) = start.duration_since(now)
                && ahead > LEEWAY
            {
                return Err(VerifyError::FutureTimestamp {
                    ahead_secs: ahead.as_secs(),
                    tolerance_secs,
                });
            }
        }
        if exp.duration_since(iat).unwrap_or_default() > MAX_TOKEN_LIFETIME {
            return Err(VerifyError::InvalidToken("lifetime longer than a day"));
        }
        Ok(iat)
    }
}

/// Whether `claim` is the string `expected`, exactly.
fn claim_is(claim: &Option<Value>, expected: &str) -> bool {
    matches!(claim, Some(Value::String(value)) if value == expected)
}

/// A JWT NumericDate: seconds since the epoch, an integer or (as RFC 7519 allows) a fraction,
/// which is truncated.
fn numeric_date(claim: &Option<Value>, rule: &'static str) -> Result<SystemTime, VerifyError> {
    let secs = match claim {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f <= MAX_NUMERIC_DATE as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    secs.filter(|secs| *secs <= MAX_NUMERIC_DATE)
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or(VerifyError::InvalidToken(rule))
}

/// A fetched key set, as the source returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksResponse {
    /// The JWKS JSON document.
    pub body: Vec<u8>,
    /// The response's `Cache-Control: max-age` ([`max_age`]); `None` if it had none.
    pub max_age: Option<Duration>,
}

/// The key set could not be had: the network or Google failed, or the answer was not a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("Google's signing keys could not be fetched")]
pub struct JwksUnavailable;

/// Fetches Google's key set. The ingress implements it over HTTPS from [`CERTS_URL`] alone
/// (bounding the answer to [`MAX_JWKS_BYTES`] and timing out quickly); tests with
/// `StaticJwks` (feature `test-util`).
#[async_trait]
pub trait JwksSource: Send + Sync {
    async fn fetch(&self) -> Result<JwksResponse, JwksUnavailable>;
}

/// The `max-age` of a response's `Cache-Control` headers: the smallest if several are given,
/// `None` with none, or with `no-cache` or `no-store`.
pub fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut shortest: Option<u64> = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',').map(str::trim) {
            if directive.eq_ignore_ascii_case("no-cache")
                || directive.eq_ignore_ascii_case("no-store")
            {
                return None;
            }
            let Some((name, secs)) = directive.split_once('=') else {
                continue;
            };
            let secs = secs.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("max-age")
                && !secs.is_empty()
                && secs.len() <= 10
                && secs.bytes().all(|b| b.is_ascii_digit())
                && let Ok(secs) = secs.parse::<u64>()
            {
                shortest = Some(shortest.map_or(secs, |s| s.min(secs)));
            }
        }
    }
    shortest.map(Duration::from_secs)
}

/// Google's signing keys by `kid`: one per process, shared by every tenant.
///
/// - A fetched set is trusted for its `max-age`, bounded to [`MIN_JWKS_LIFETIME`] ..=
///   [`MAX_JWKS_LIFETIME`] (the minimum when it gives none), then fetched again on the next use.
/// - An unknown `kid` on a fresh set fetches again (Google may have just rotated), but at most
///   one fetch happens per [`REFETCH_INTERVAL`], whatever tokens name: a second unknown `kid`
///   within it is refused as [`VerifyError::UnknownKeyId`] without a fetch.
/// - When a fetch fails, the last keys keep serving until [`STALE_GRACE`] after they should have
///   been refreshed (stale-while-revalidate); past it, or with no keys at all, or for a `kid`
///   the stale set lacks, the answer is [`VerifyError::CertificateUnavailable`] (a 503: Google
///   retries). A failed fetch is retried at most once per [`REFETCH_INTERVAL`].
/// - Only RSA keys for signatures (`use` `sig` or absent, `alg` `RS256` or absent) are kept; a
///   set with none, or not JSON, counts as a failed fetch and replaces nothing.
///
/// The clock is the `now` each verification is given. One fetch runs at a time: callers that
/// need one wait for it and then read what it brought.
pub struct GoogleKeys {
    source: Arc<dyn JwksSource>,
    cache: RwLock<KeyCache>,
    /// Held across a fetch, so concurrent misses cause one.
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for GoogleKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("GoogleKeys")
            .field("kids", &cache.keys.keys().collect::<Vec<_>>())
            .field("fresh_until", &cache.fresh_until)
            .finish_non_exhaustive()
    }
}

impl GoogleKeys {
    /// Nothing is fetched until the first token needs a key.
    pub fn new(source: Arc<dyn JwksSource>) -> Self {
        Self {
            source,
            cache: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The key `kid` names, from the cache or a fetch, at `now`.
    async fn key(&self, kid: &str, now: SystemTime) -> Result<ParsedPublicKey, VerifyError> {
        match self.read().lookup(kid, now) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(err) => return Err(err),
            Lookup::Fetch => {}
        }
        let _one_fetch_at_a_time = self.refresh.lock().await;
        // Another caller may have fetched while this one waited.
        match self.read().lookup(kid, now) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(err) => return Err(err),
            Lookup::Fetch => {}
        }
        let fetched =
            self.source.fetch().await.and_then(|response| {
                parse_jwks(&response.body).map(|keys| (keys, response.max_age))
            });
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        match fetched {
            Ok((keys, max_age)) => {
                cache.replace(keys, max_age, now);
                cache
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or(VerifyError::UnknownKeyId)
            }
            Err(JwksUnavailable) => {
                tracing::warn!("Google's OIDC signing keys could not be fetched");
                cache.last_attempt = Some(Attempt { at: now, ok: false });
                cache.stale(kid, now)
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        // A panic elsewhere cannot leave the map half-written (it is replaced whole).
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: HashMap<String, ParsedPublicKey>,
    /// When the keys stop being fresh; `None` before the first successful fetch.
    fresh_until: Option<SystemTime>,
    last_attempt: Option<Attempt>,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: SystemTime,
    ok: bool,
}

enum Lookup {
    Found(ParsedPublicKey),
    Refused(VerifyError),
    Fetch,
}

impl KeyCache {
    fn lookup(&self, kid: &str, now: SystemTime) -> Lookup {
        let recent = self.last_attempt.filter(|attempt| {
            // A clock that went backwards does not block fetching: at most one extra fetch.
            matches!(now.duration_since(attempt.at), Ok(since) if since < REFETCH_INTERVAL)
        });
        let fresh = self.fresh_until.is_some_and(|until| now < until);
        match (fresh, self.keys.get(kid), recent) {
            (true, Some(key), _) => Lookup::Found(key.clone()),
            (_, _, None) => Lookup::Fetch,
            // Fresh keys, a fetch within the interval that brought none of this id.
            (true, None, Some(Attempt { ok: true, .. })) => {
                Lookup::Refused(VerifyError::UnknownKeyId)
            }
            // The source failed within the interval: what the stale keys can do.
            (_, _, Some(_)) => match self.stale(kid, now) {
                Ok(key) => Lookup::Found(key),
                Err(err) => Lookup::Refused(err),
            },
        }
    }

    /// What the keys can still do after a failed fetch: serve within the grace.
    fn stale(&self, kid: &str, now: SystemTime) -> Result<ParsedPublicKey, VerifyError> {
        let within_grace = self
            .fresh_until
            .and_then(|until| until.checked_add(STALE_GRACE))
            .is_some_and(|limit| now < limit);
        match self.keys.get(kid) {
            Some(key) if within_grace => Ok(key.clone()),
            _ => Err(VerifyError::CertificateUnavailable),
        }
    }

    fn replace(
        &mut self,
        keys: HashMap<String, ParsedPublicKey>,
        max_age: Option<Duration>,
        now: SystemTime,
    ) {
        let lifetime = max_age.map_or(MIN_JWKS_LIFETIME, |age| {
            age.clamp(MIN_JWKS_LIFETIME, MAX_JWKS_LIFETIME)
        });
        self.keys = keys;
        self.fresh_until = now.checked_add(lifetime);
        self.last_attempt = Some(Attempt { at: now, ok: true });
    }
}

/// The RSA signing keys of a JWKS by `kid` (the first of a repeated id); a document that is not
/// a key set, or holds no usable key, is refused.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, ParsedPublicKey>, JwksUnavailable> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksUnavailable);
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|_| JwksUnavailable)?;
    let mut keys = HashMap::new();
    for (kid, key) in jwks.keys.iter().filter_map(parse_jwk).take(MAX_KEYS) {
        keys.entry(kid).or_insert(key);
    }
    if keys.is_empty() {
        Err(JwksUnavailable)
    } else {
        Ok(keys)
    }
}

/// One JWK, if it is an RSA key for RS256 signatures.
fn parse_jwk(jwk: &Value) -> Option<(String, ParsedPublicKey)> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let absent_or =
        |name: &str, expected: &str| jwk.get(name).is_none() || text(name) == Some(expected);
    if text("kty") != Some("RSA") || !absent_or("use", "sig") || !absent_or("alg", ALGORITHM) {
        return None;
    }
    let kid = text("kid").filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_BYTES)?;
    let component = |name: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(text(name)?).ok()?;
        // Big-endian without leading zeros, as aws-lc-rs requires.
        let start = bytes.iter().position(|b| *b != 0)?;
        Some(bytes[start..].to_vec())
    };
    let components = RsaPublicKeyComponents {
        n: component("n")?,
        e: component("e")?,
    };
    let key = components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()?;
    Some((kid.to_owned(), key))
}

/// The stages a signature guards, run without it, for the fuzz target: the token's parser and,
/// on whatever claims it decodes, the claim rules at `now`.
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn unsigned_stages(token: &str, expect: &GoogleOidcExpectation, now: SystemTime) {
    if let Ok(parsed) = UnverifiedToken::parse(token)
        && let Ok(claims) = Claims::parse(&parsed.claims)
    {
        let _ = claims.check(expect, now);
    }
}

/// A [`JwksSource`] in memory: serves a set (or fails) as told and counts its fetches.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct StaticJwks {
    answer: std::sync::Mutex<Result<JwksResponse, JwksUnavailable>>,
    fetches: std::sync::atomic::AtomicUsize,
}

#[cfg(any(test, feature = "test-util"))]
impl StaticJwks {
    /// Serves `body` with `max_age`.
    pub fn new(body: impl Into<Vec<u8>>, max_age: Option<Duration>) -> Self {
        Self {
            answer: std::sync::Mutex::new(Ok(JwksResponse {
                body: body.into(),
                max_age,
            })),
            fetches: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// From now on, serve `body` with `max_age`.
    pub fn serve(&self, body: impl Into<Vec<u8>>, max_age: Option<Duration>) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Ok(JwksResponse {
            body: body.into(),
            max_age,
        });
    }

    /// From now on, fail.
    pub fn fail(&self) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Err(JwksUnavailable);
    }

    /// How many fetches were made.
    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<JwksResponse, JwksUnavailable> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An RSA key that signs tokens as Google would, for tests, the fuzz target and interop checks
/// (Google's own keys never leave Google).
#[cfg(any(test, feature = "test-util"))]
pub struct TestSigner {
    kid: String,
    pair: aws_lc_rs::signature::RsaKeyPair,
}

#[cfg(any(test, feature = "test-util"))]
impl fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl TestSigner {
    /// A fresh 2048-bit key named `kid`.
    pub fn generate(kid: &str) -> Self {
        let pair = aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("RSA key generation");
        Self {
            kid: kid.to_owned(),
            pair,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as Google publishes its keys.
    pub fn jwk(&self) -> Value {
        let (n, e) = self.public_components();
        serde_json::json!({
            "kty": "RSA", "alg": ALGORITHM, "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
        })
    }

    /// The modulus and exponent, big-endian without leading zeros, read from the PKCS#1
    /// `RSAPublicKey` DER aws-lc-rs gives.
    pub fn public_components(&self) -> (Vec<u8>, Vec<u8>) {
        use aws_lc_rs::signature::KeyPair;
        let der = self.pair.public_key().as_ref();
        let parsed = der_element(der, 0x30).and_then(|(sequence, _)| {
            let (n, rest) = der_element(sequence, 0x02)?;
            let (e, _) = der_element(rest, 0x02)?;
            let strip = |v: &[u8]| v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..].to_vec();
            Some((strip(n), strip(e)))
        });
        parsed.expect("aws-lc-rs writes a PKCS#1 RSAPublicKey")
    }

    /// The private key, PKCS#8 PEM (what google-auth's `RSASigner.from_string` reads).
    pub fn private_key_pem(&self) -> String {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let der: Pkcs8V1Der<'static> = self.pair.as_der().expect("PKCS#8 encoding");
        pem("PRIVATE KEY", der.as_ref())
    }

    /// The public key, SubjectPublicKeyInfo PEM.
    pub fn public_key_pem(&self) -> String {
        use aws_lc_rs::{
            encoding::{AsDer, PublicKeyX509Der},
            signature::KeyPair,
        };
        let der: PublicKeyX509Der<'static> =
            self.pair.public_key().as_der().expect("SPKI encoding");
        pem("PUBLIC KEY", der.as_ref())
    }

    /// A token for `claims` with the header Google sends (`alg`, `kid`, `typ`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"});
        self.sign_with_header(&header, claims)
    }

    /// A token with any header, signed RS256 regardless of what the header says.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A JWKS document of `keys` (JWKs).
#[cfg(any(test, feature = "test-util"))]
pub fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::json!({ "keys": keys }).to_string().into_bytes()
}

/// The claims Google puts in a push token for `expect`, issued at `iat` for an hour.
#[cfg(any(test, feature = "test-util"))]
pub fn google_claims(expect: &GoogleOidcExpectation, iat: u64) -> Value {
    serde_json::json!({
        "aud": expect.audience,
        "azp": "113774264463038321964",
        "email": expect.service_account,
        "email_verified": true,
        "exp": iat + 3600,
        "iat": iat,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    })
}

/// One DER element with `tag`: its content and what follows.
#[cfg(any(test, feature = "test-util"))]
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if found != tag {
        return None;
    }
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (len, rest) = rest.split_at(octets);
        (
            len.iter().fold(0, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(any(test, feature = "test-util"))]
fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use futures_util::FutureExt;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::Sha256;

    use super::*;
    use crate::verify::test_support::{at, headers};

    const NOW: u64 = 1_750_000_000;
    const KID: &str = "6f8e1c2d9a0b7e3f4c5d6e7f8091a2b3c4d5e6f7";

    fn signer() -> &'static TestSigner {
        static SIGNER: OnceLock<TestSigner> = OnceLock::new();
        SIGNER.get_or_init(|| TestSigner::generate(KID))
    }

    fn other_signer() -> &'static TestSigner {
        static SIGNER: OnceLock<TestSigner> = OnceLock::new();
        SIGNER.get_or_init(|| TestSigner::generate("other-kid"))
    }

    fn expect() -> GoogleOidcExpectation {
        GoogleOidcExpectation::new(
            "https://hooks.example.com/webhooks/acme/pubsub",
            "pubsub-push@acme-prod.iam.gserviceaccount.com",
        )
    }

    fn claims() -> Value {
        google_claims(&expect(), NOW - 5)
    }

    /// Claims with `edit` applied.
    fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut claims = claims();
        if let Value::Object(map) = &mut claims {
            edit(map);
        }
        claims
    }

    fn source() -> Arc<StaticJwks> {
        Arc::new(StaticJwks::new(
            jwks(&[signer().jwk()]),
            Some(Duration::from_secs(600)),
        ))
    }

    fn bearer(token: &str) -> HeaderMap {
        headers(&[("Authorization", &format!("Bearer {token}"))])
    }

    /// Run `verify` to completion: the static source never waits.
    fn check_at(h: &HeaderMap, keys: &GoogleKeys, now: u64) -> Result<Verified, VerifyError> {
        verify(h, &expect(), keys, at(now))
            .now_or_never()
            .expect("an in-memory source is ready at once")
    }

    fn check(h: &HeaderMap) -> Result<Verified, VerifyError> {
        check_at(h, &GoogleKeys::new(source()), NOW)
    }

    fn key_at(keys: &GoogleKeys, kid: &str, now: u64) -> Result<(), VerifyError> {
        keys.key(kid, at(now))
            .now_or_never()
            .expect("ready")
            .map(drop)
    }

    fn invalid(rule: &'static str) -> Result<Verified, VerifyError> {
        Err(VerifyError::InvalidToken(rule))
    }

    #[test]
    fn a_token_google_would_send_passes() {
        // GIVEN a token signed by a published key, with the claims a push subscription sends
        let token = signer().sign(&claims());
        // WHEN it is verified
        let verified = check(&bearer(&token)).expect("valid");
        // THEN the key and the issue time are reported
        assert_eq!(verified.secret, SecretSlot::Current);
        assert_eq!(verified.key_id.as_deref(), Some(KID));
        assert_eq!(verified.signed_at, Some(at(NOW - 5)));
        // AND the scheme word is case-insensitive, the other issuer form and a string
        // `email_verified` are accepted, and an integer-valued float time is read
        let other_form = signer().sign(&claims_with(|c| {
            c.insert("iss".into(), "accounts.google.com".into());
            c.insert("email_verified".into(), "true".into());
            c.insert("nbf".into(), (NOW - 5).into());
            c.insert("exp".into(), ((NOW + 100) as f64).into());
        }));
        let h = headers(&[("authorization", &format!("bEaReR {other_form}"))]);
        assert!(check(&h).is_ok());
    }

    #[test]
    fn each_claim_rule_is_enforced() {
        let cases: Vec<(&str, Value, Result<Verified, VerifyError>)> = vec![
            (
                "wrong audience",
                claims_with(|c| {
                    c.insert("aud".into(), "https://hooks.example.com/other".into());
                }),
                invalid("wrong audience"),
            ),
            (
                "audience as a list",
                claims_with(|c| {
                    c.insert("aud".into(), serde_json::json!([expect().audience]));
                }),
                invalid("wrong audience"),
            ),
            (
                "wrong issuer",
                claims_with(|c| {
                    c.insert("iss".into(), "https://evil.example.com".into());
                }),
                invalid("wrong issuer"),
            ),
            (
                "issuer missing",
                claims_with(|c| {
                    c.remove("iss");
                }),
                invalid("wrong issuer"),
            ),
            (
                "another service account",
                claims_with(|c| {
                    c.insert(
                        "email".into(),
                        "attacker@evil-project.iam.gserviceaccount.com".into(),
                    );
                }),
                invalid("unexpected service account"),
            ),
            (
                "service account in another case",
                claims_with(|c| {
                    c.insert(
                        "email".into(),
                        expect().service_account.to_uppercase().into(),
                    );
                }),
                invalid("unexpected service account"),
            ),
            (
                "email not verified",
                claims_with(|c| {
                    c.insert("email_verified".into(), false.into());
                }),
                invalid("email not verified"),
            ),
            (
                "email_verified missing",
                claims_with(|c| {
                    c.remove("email_verified");
                }),
                invalid("email not verified"),
            ),
            (
                "email_verified the string false",
                claims_with(|c| {
                    c.insert("email_verified".into(), "false".into());
                }),
                invalid("email not verified"),
            ),
            (
                "expired",
                claims_with(|c| {
                    c.insert("iat".into(), (NOW - 3700).into());
                    c.insert("exp".into(), (NOW - 100).into());
                }),
                Err(VerifyError::StaleTimestamp {
                    age_secs: 100,
                    tolerance_secs: 10,
                }),
            ),
            (
                "issued in the future",
                claims_with(|c| {
                    c.insert("iat".into(), (NOW + 60).into());
                }),
                Err(VerifyError::FutureTimestamp {
                    ahead_secs: 60,
                    tolerance_secs: 10,
                }),
            ),
            (
                "not yet valid",
                claims_with(|c| {
                    c.insert("nbf".into(), (NOW + 120).into());
                }),
                Err(VerifyError::FutureTimestamp {
                    ahead_secs: 120,
                    tolerance_secs: 10,
                }),
            ),
            (
                "exp missing",
                claims_with(|c| {
                    c.remove("exp");
                }),
                invalid("missing or malformed expiry (exp)"),
            ),
            (
                "iat a string",
                claims_with(|c| {
                    c.insert("iat".into(), NOW.to_string().into());
                }),
                invalid("missing or malformed issue time (iat)"),
            ),
            (
                "exp beyond year 9999",
                claims_with(|c| {
                    c.insert("exp".into(), u64::MAX.into());
                }),
                invalid("missing or malformed expiry (exp)"),
            ),
            (
                "nbf negative",
                claims_with(|c| {
                    c.insert("nbf".into(), (-1).into());
                }),
                invalid("malformed not-before (nbf)"),
            ),
            (
                "a week-long token",
                claims_with(|c| {
                    c.insert("exp".into(), (NOW + 7 * 86_400).into());
                }),
                invalid("lifetime longer than a day"),
            ),
        ];
        for (name, claims, expected) in cases {
            let token = signer().sign(&claims);
            assert_eq!(check(&bearer(&token)), expected, "{name}");
        }
    }

    #[test]
    fn claims_must_be_one_json_object_without_repeated_names() {
        let header = serde_json::json!({"alg": "RS256", "kid": KID});
        let sign_raw = |claims: &str| {
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let mut signature = vec![0; signer().pair.public_modulus_len()];
            signer()
                .pair
                .sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    signing_input.as_bytes(),
                    &mut signature,
                )
                .expect("sign");
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
        };
        let good = claims().to_string();
        let repeated = good.replacen('{', r#"{"aud":"https://elsewhere.example.com","#, 1);
        let positional = format!(
            r#"["https://accounts.google.com","{}","{}",true,{},{}]"#,
            expect().audience,
            expect().service_account,
            NOW + 3600,
            NOW
        );
        for (claims, name) in [
            (repeated, "repeated aud"),
            (positional, "an array"),
            ("null".into(), "null"),
        ] {
            assert_eq!(
                check(&bearer(&sign_raw(&claims))),
                invalid("the claims are not a JSON object"),
                "{name}"
            );
        }
        assert!(check(&bearer(&sign_raw(&good))).is_ok());
    }

    #[test]
    fn the_leeway_is_ten_seconds_each_way() {
        let keys = GoogleKeys::new(source());
        let token = signer().sign(&claims_with(|c| {
            c.insert("iat".into(), NOW.into());
            c.insert("exp".into(), (NOW + 3600).into());
        }));
        let h = bearer(&token);
        assert!(check_at(&h, &keys, NOW + 3610).is_ok());
        assert!(check_at(&h, &keys, NOW + 3611).is_err());
        assert!(check_at(&h, &keys, NOW - 10).is_ok());
        assert!(check_at(&h, &keys, NOW - 11).is_err());
    }

    #[test]
    fn algorithms_other_than_rs256_are_refused_before_any_key_lookup() {
        let source = source();
        let keys = GoogleKeys::new(source.clone());
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());

        // `alg: none`, with and without a signature.
        let none = encode(&serde_json::json!({"alg": "none", "kid": KID, "typ": "JWT"}));
        let unsigned = format!("{none}.{}.", encode(&claims()));
        assert_eq!(
            check_at(&bearer(&unsigned), &keys, NOW),
            invalid("unsupported algorithm")
        );
        let signed_none =
            signer().sign_with_header(&serde_json::json!({"alg": "none", "kid": KID}), &claims());
        assert_eq!(
            check_at(&bearer(&signed_none), &keys, NOW),
            invalid("unsupported algorithm")
        );

        // HS256 keyed with the public key's published bytes: the confusion attack. Each form an
        // attacker might guess the verifier uses as the HMAC key.
        let header = encode(&serde_json::json!({"alg": "HS256", "kid": KID, "typ": "JWT"}));
        let signing_input = format!("{header}.{}", encode(&claims()));
        let (n, _) = signer().public_components();
        for secret in [
            signer().public_key_pem().into_bytes(),
            signer().jwk().to_string().into_bytes(),
            n,
        ] {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key size");
            mac.update(signing_input.as_bytes());
            let token = format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert_eq!(
                check_at(&bearer(&token), &keys, NOW),
                invalid("unsupported algorithm")
            );
        }

        // Other spellings and types of the algorithm.
        for alg in [
            serde_json::json!("rs256"),
            serde_json::json!("RS384"),
            serde_json::json!("PS256"),
            serde_json::json!("ES256"),
            serde_json::json!(["RS256"]),
            serde_json::json!(null),
        ] {
            let token =
                signer().sign_with_header(&serde_json::json!({"alg": alg, "kid": KID}), &claims());
            assert_eq!(
                check_at(&bearer(&token), &keys, NOW),
                invalid("unsupported algorithm"),
                "{alg}"
            );
        }
        assert_eq!(source.fetches(), 0, "no key was looked up");
    }

    #[test]
    fn the_header_must_name_a_key_and_no_critical_extension() {
        let no_kid = signer().sign_with_header(&serde_json::json!({"alg": "RS256"}), &claims());
        assert_eq!(check(&bearer(&no_kid)), invalid("missing key id"));
        let crit = signer().sign_with_header(
            &serde_json::json!({"alg": "RS256", "kid": KID, "crit": ["exp"], "exp": 1}),
            &claims(),
        );
        assert_eq!(
            check(&bearer(&crit)),
            invalid("unsupported critical header")
        );
        let as_array = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"["RS256","{KID}"]"#)),
            URL_SAFE_NO_PAD.encode(claims().to_string()),
            URL_SAFE_NO_PAD.encode([1u8; 256]),
        );
        assert_eq!(
            check(&bearer(&as_array)),
            Err(VerifyError::MalformedHeader("authorization".into()))
        );
        let numeric_kid =
            signer().sign_with_header(&serde_json::json!({"alg": "RS256", "kid": 7}), &claims());
        assert_eq!(
            check(&bearer(&numeric_kid)),
            Err(VerifyError::MalformedHeader("authorization".into()))
        );
    }

    #[test]
    fn a_token_from_an_unpublished_key_is_refused() {
        // GIVEN a token signed by a key Google never published, under an unknown kid
        let token = other_signer().sign(&claims());
        assert_eq!(check(&bearer(&token)), Err(VerifyError::UnknownKeyId));
        // AND under a published kid
        let impostor = TestSigner {
            kid: KID.to_owned(),
            pair: aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("key"),
        };
        assert_eq!(
            check(&bearer(&impostor.sign(&claims()))),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_a_minute() {
        // GIVEN a fresh cache
        let source = source();
        let keys = GoogleKeys::new(source.clone());
        key_at(&keys, KID, NOW).expect("first fetch");
        assert_eq!(source.fetches(), 1);
        // WHEN two unknown kids arrive within a minute of the fetch
        assert_eq!(
            key_at(&keys, "unknown-1", NOW + 1),
            Err(VerifyError::UnknownKeyId)
        );
        assert_eq!(
            key_at(&keys, "unknown-2", NOW + 59),
            Err(VerifyError::UnknownKeyId)
        );
        // THEN no refetch happened
        assert_eq!(source.fetches(), 1);
        // AND after a minute, one unknown kid refetches, and the next within a minute does not
        assert_eq!(
            key_at(&keys, "unknown-3", NOW + 61),
            Err(VerifyError::UnknownKeyId)
        );
        assert_eq!(
            key_at(&keys, "unknown-4", NOW + 62),
            Err(VerifyError::UnknownKeyId)
        );
        assert_eq!(source.fetches(), 2);
        // AND a key Google has just published is found on that refetch
        source.serve(
            jwks(&[signer().jwk(), other_signer().jwk()]),
            Some(Duration::from_secs(600)),
        );
        key_at(&keys, "other-kid", NOW + 130).expect("rotated in");
        assert_eq!(source.fetches(), 3);
        // AND known keys are served from the cache meanwhile
        key_at(&keys, KID, NOW + 131).expect("cached");
        assert_eq!(source.fetches(), 3);
    }

    #[test]
    fn the_cache_honours_max_age_within_bounds() {
        for (max_age, lifetime) in [
            (Some(600), 600),
            (Some(10), MIN_JWKS_LIFETIME.as_secs()),
            (None, MIN_JWKS_LIFETIME.as_secs()),
            (Some(30 * 86_400), MAX_JWKS_LIFETIME.as_secs()),
        ] {
            let source = Arc::new(StaticJwks::new(
                jwks(&[signer().jwk()]),
                max_age.map(Duration::from_secs),
            ));
            let keys = GoogleKeys::new(source.clone());
            key_at(&keys, KID, NOW).expect("fetched");
            key_at(&keys, KID, NOW + lifetime - 1).expect("cached");
            assert_eq!(source.fetches(), 1, "{max_age:?} still fresh");
            key_at(&keys, KID, NOW + lifetime).expect("refetched");
            assert_eq!(source.fetches(), 2, "{max_age:?} expired");
            key_at(&keys, KID, NOW + lifetime + 1).expect("cached again");
            assert_eq!(source.fetches(), 2, "{max_age:?} fresh again");
        }
    }

    #[test]
    fn a_failing_source_is_bridged_by_stale_keys_for_the_grace_then_fails() {
        // GIVEN keys fetched with a 10-minute lifetime, then a source that fails
        let source = source();
        let keys = GoogleKeys::new(source.clone());
        key_at(&keys, KID, NOW).expect("fetched");
        source.fail();
        // WHEN the keys expire, the refetch fails, and the stale keys serve
        key_at(&keys, KID, NOW + 700).expect("stale within the grace");
        assert_eq!(source.fetches(), 2);
        // AND the failing source is not asked again within the minute
        key_at(&keys, KID, NOW + 730).expect("stale, no fetch");
        assert_eq!(source.fetches(), 2);
        // AND a kid the stale set lacks is a 503, not a 401: Google may have rotated
        assert_eq!(
            key_at(&keys, "other-kid", NOW + 731),
            Err(VerifyError::CertificateUnavailable)
        );
        key_at(&keys, KID, NOW + 800).expect("stale, fetch failed again");
        assert_eq!(source.fetches(), 3);
        // THEN past the grace, the delivery fails with a retryable error
        let end = NOW + 600 + STALE_GRACE.as_secs();
        key_at(&keys, KID, end - 1).expect("last second of the grace");
        assert_eq!(
            key_at(&keys, KID, end),
            Err(VerifyError::CertificateUnavailable)
        );
        assert!(VerifyError::CertificateUnavailable.is_configuration_error());
        // AND once the source recovers, keys are fetched again
        source.serve(jwks(&[signer().jwk()]), Some(Duration::from_secs(600)));
        key_at(&keys, KID, end + 60).expect("recovered");
    }

    #[test]
    fn an_unknown_kid_on_a_fresh_cache_with_a_failing_source_is_a_503() {
        let source = source();
        let keys = GoogleKeys::new(source.clone());
        key_at(&keys, KID, NOW).expect("fetched");
        source.fail();
        assert_eq!(
            key_at(&keys, "new-kid", NOW + 100),
            Err(VerifyError::CertificateUnavailable)
        );
        assert_eq!(
            key_at(&keys, "new-kid", NOW + 101),
            Err(VerifyError::CertificateUnavailable)
        );
        assert_eq!(source.fetches(), 2);
        key_at(&keys, KID, NOW + 102).expect("fresh keys still serve");
    }

    #[test]
    fn without_any_keys_a_failing_source_is_a_503_and_retried_once_a_minute() {
        let source = source();
        source.fail();
        let keys = GoogleKeys::new(source.clone());
        let token = signer().sign(&claims());
        assert_eq!(
            check_at(&bearer(&token), &keys, NOW),
            Err(VerifyError::CertificateUnavailable)
        );
        assert_eq!(
            key_at(&keys, KID, NOW + 30),
            Err(VerifyError::CertificateUnavailable)
        );
        assert_eq!(source.fetches(), 1);
        source.serve(jwks(&[signer().jwk()]), None);
        key_at(&keys, KID, NOW + 60).expect("retried after a minute");
        assert_eq!(source.fetches(), 2);
    }

    #[test]
    fn only_rsa_signing_keys_are_kept_and_a_set_without_any_replaces_nothing() {
        let mut enc = signer().jwk();
        enc["use"] = "enc".into();
        let mut es = signer().jwk();
        es["alg"] = "ES256".into();
        let mut ec = signer().jwk();
        ec["kty"] = "EC".into();
        let mut bare = signer().jwk();
        if let Value::Object(map) = &mut bare {
            map.remove("use");
            map.remove("alg");
        }
        assert!(parse_jwks(&jwks(&[enc.clone(), es.clone(), ec.clone()])).is_err());
        assert_eq!(
            parse_jwks(&jwks(&[enc, es, ec, bare])).map(|k| k.len()),
            Ok(1)
        );
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(b"{\"keys\": []}").is_err());
        let mut small = signer().jwk();
        small["n"] = URL_SAFE_NO_PAD.encode([0xc5; 64]).into();
        // aws-lc-rs parses a 512-bit key but refuses to verify with it.
        if let Ok(keys) = parse_jwks(&jwks(&[small])) {
            let token = signer().sign(&claims());
            let parsed = UnverifiedToken::parse(&token).expect("parses");
            assert!(keys.values().all(|k| {
                k.verify_sig(parsed.signing_input.as_bytes(), &parsed.signature)
                    .is_err()
            }));
        }

        // A broken set arriving at refresh leaves the good keys serving (as stale ones).
        let source = source();
        let keys = GoogleKeys::new(source.clone());
        key_at(&keys, KID, NOW).expect("fetched");
        source.serve(
            b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}".to_vec(),
            None,
        );
        key_at(&keys, KID, NOW + 700).expect("stale keys");
        assert_eq!(source.fetches(), 2);
    }

    #[test]
    fn tampering_is_refused() {
        let token = signer().sign(&claims());
        let (signing_input, signature) = token.rsplit_once('.').expect("three segments");
        let (header, _) = signing_input.split_once('.').expect("three segments");

        // Another payload under the same signature.
        let forged_claims = claims_with(|c| {
            c.insert(
                "email".into(),
                "attacker@evil.iam.gserviceaccount.com".into(),
            );
        });
        let forged = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(forged_claims.to_string())
        );
        assert_eq!(check(&bearer(&forged)), Err(VerifyError::SignatureMismatch));

        // One signature byte flipped.
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        bytes[17] ^= 1;
        let flipped = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            check(&bearer(&flipped)),
            Err(VerifyError::SignatureMismatch)
        );

        // The last character's spare bits changed: not canonical base64url, refused.
        let mut spare = token.clone();
        let last = spare.pop().expect("non-empty");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet
            .iter()
            .position(|c| *c as char == last)
            .expect("b64");
        spare.push(alphabet[index ^ 1] as char);
        assert!(check(&bearer(&spare)).is_err());

        // Truncated anywhere.
        let malformed = Err(VerifyError::MalformedHeader("authorization".into()));
        for cut in [
            1,
            10,
            header.len(),
            signing_input.len(),
            signing_input.len() + 1,
            token.len() - 4,
        ] {
            assert_eq!(check(&bearer(&token[..cut])), malformed, "cut at {cut}");
        }
        // Extra segments, padding, whitespace, and a huge token.
        for bad in [
            format!("{token}.x"),
            format!("{token}="),
            format!("{header}.{signature}"),
            format!("{signing_input}.{signature} x"),
            format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES)),
        ] {
            assert_eq!(check(&bearer(&bad)), malformed);
        }
    }

    #[test]
    fn the_authorization_header_is_one_bearer_token() {
        let token = signer().sign(&claims());
        assert_eq!(
            check(&HeaderMap::new()),
            Err(VerifyError::MissingHeader("authorization".into()))
        );
        let twice = headers(&[
            ("authorization", &format!("Bearer {token}")),
            ("Authorization", &format!("Bearer {token}")),
        ]);
        assert_eq!(
            check(&twice),
            Err(VerifyError::MalformedHeader("authorization".into()))
        );
        for value in [
            format!("Basic {token}"),
            token.clone(),
            format!("Bearer:{token}"),
            "Basic dXNlcjpwYXNz".to_owned(),
        ] {
            assert_eq!(
                check(&headers(&[("authorization", &value)])),
                Err(VerifyError::NoSupportedSignature("authorization".into())),
                "{value}"
            );
        }
        for value in ["Bearer", "Bearer  ", "Bearer a\tb"] {
            assert_eq!(
                check(&headers(&[("authorization", value)])),
                Err(VerifyError::MalformedHeader("authorization".into())),
                "{value}"
            );
        }
        // Several spaces after the scheme are allowed (RFC 7235: 1*SP); the token is exact.
        assert!(check(&headers(&[("authorization", &format!("Bearer   {token}"))])).is_ok());
    }

    #[test]
    fn an_empty_expectation_is_a_configuration_error() {
        let token = signer().sign(&claims());
        for expect in [
            GoogleOidcExpectation::new("", "sa@x.iam.gserviceaccount.com"),
            GoogleOidcExpectation::new("https://x", " "),
        ] {
            let err = verify(
                &bearer(&token),
                &expect,
                &GoogleKeys::new(source()),
                at(NOW),
            )
            .now_or_never()
            .expect("ready")
            .expect_err("empty");
            assert!(err.is_configuration_error(), "{err}");
        }
    }

    #[test]
    fn errors_name_the_rule_never_the_token() {
        let token = signer().sign(&claims_with(|c| {
            c.insert("aud".into(), "https://hooks.example.com/secret-path".into());
        }));
        let err = check(&bearer(&token)).expect_err("wrong audience");
        assert_eq!(err.reason(), "invalid_token");
        let text = format!("{err} {err:?}");
        assert_eq!(
            err.to_string(),
            "the token is not acceptable: wrong audience"
        );
        for part in token.split('.') {
            assert!(!text.contains(part), "{text}");
        }
        assert!(!text.contains("secret-path"));
        let parsed = UnverifiedToken::parse(&token).expect("parses");
        assert!(!format!("{parsed:?}").contains(token.split('.').nth(1).expect("claims")));
    }

    #[test]
    fn cache_control_max_age_is_read() {
        let cases: [(&[&str], Option<u64>); 7] = [
            (
                &["public, max-age=19869, must-revalidate, no-transform"],
                Some(19_869),
            ),
            (&["MAX-AGE = \"60\""], Some(60)),
            (&["max-age=600", "max-age=300"], Some(300)),
            (&["public"], None),
            (&["max-age=-1"], None),
            (&["max-age=600, no-cache"], None),
            (&["max-age=99999999999999999999"], None),
        ];
        for (values, expected) in cases {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("cache-control", *v)).collect();
            assert_eq!(
                max_age(&headers(&pairs)),
                expected.map(Duration::from_secs),
                "{values:?}"
            );
        }
        assert_eq!(max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn concurrent_misses_cause_one_fetch() {
        let source = source();
        let keys = Arc::new(GoogleKeys::new(source.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let keys = Arc::clone(&keys);
                    tokio::spawn(async move { keys.key(KID, at(NOW)).await.map(drop) })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.expect("joined"), Ok(()));
            }
        });
        assert_eq!(source.fetches(), 1);
    }

    #[test]
    fn random_bytes_as_a_token_never_panic() {
        let keys = GoogleKeys::new(source());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let token = signer().sign(&claims());
        for round in 0..2000 {
            let len = (next() % 1200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = UnverifiedToken::parse(&text);
            // Mutations of a genuine token reach the later stages.
            let mut mutated = token.clone().into_bytes();
            let at_byte = (next() as usize) % mutated.len();
            mutated[at_byte] = b"AZaz09-_.="[(next() % 10) as usize];
            let mutated = String::from_utf8_lossy(&mutated).into_owned();
            let verdict = check_at(&bearer(&mutated), &keys, NOW);
            if mutated != token {
                assert!(verdict.is_err(), "round {round}: {mutated}");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_and_claims_never_panic(
            token in "[ -~]{0,400}",
            segments in proptest::collection::vec("[A-Za-z0-9_-]{0,80}", 0..5),
            claims in crate::fuzzing::strategies::hostile_value(),
            now in 0u64..=u64::MAX / 2,
        ) {
            let _ = UnverifiedToken::parse(&token);
            let _ = UnverifiedToken::parse(&segments.join("."));
            let json = serde_json::to_vec(&claims).unwrap_or_default();
            if let Ok(parsed) = Claims::parse(&json) {
                let when = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(now));
                let _ = parsed.check(&expect(), when.unwrap_or(SystemTime::UNIX_EPOCH));
            }
            let keys = GoogleKeys::new(source());
            let unsigned = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"x"}"#),
                URL_SAFE_NO_PAD.encode(&json),
                URL_SAFE_NO_PAD.encode([7u8; 256]),
            );
            if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {unsigned}")) {
                let mut h = HeaderMap::new();
                h.insert(http::header::AUTHORIZATION, value);
                prop_assert!(check_at(&h, &keys, NOW).is_err());
            }
        }
    }
}
