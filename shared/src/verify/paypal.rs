//! PayPal, verified offline: `paypal-transmission-sig` is the base64 SHA256withRSA signature of
//! `{paypal-transmission-id}|{paypal-transmission-time}|{webhook id}|{CRC32 of the body, in
//! decimal}`, made with the key of the certificate at `paypal-cert-url`. The webhook id is the
//! tenant's (PayPal never sends it), so a delivery meant for another subscription fails.
//!
//! Offline means no call to PayPal's `verify-webhook-signature` API per delivery, but the
//! certificate must still be fetched, and the URL comes from the request, so everything about it
//! is checked before it is trusted:
//!
//! - the URL is `https://` on one of PayPal's API hosts (exact match, no user info, no port but
//!   443) with a path under `/v1/notifications/certs/`, so the fetch can reach nowhere else;
//! - the PEM bundle's first certificate (the leaf) must chain, through the bundle's other
//!   certificates, to a configured trust anchor, within its validity period at the injected
//!   `now`, and be usable for TLS server authentication, as a publicly issued certificate is;
//! - the leaf must be issued to PayPal's message-verification name. PayPal's own Java SDK
//!   (`SSLUtil.validateCertificateChain`) accepted a subject CN starting `messageverificationcerts`
//!   and ending `.paypal.com`: `messageverificationcerts.paypal.com` live and
//!   `messageverificationcerts.sandbox.paypal.com` in the sandbox. We match those two names
//!   exactly, against the certificate's DNS subject alternative names: certificate path
//!   validation (webpki) matches names only there, and the CA/Browser Forum's baseline
//!   requirements oblige a public CA to repeat the CN among the SANs, so a genuine PayPal
//!   certificate carries it; a certificate with the name in its CN alone is refused.
//!
//! Fetched bundles are cached by URL in a small bounded map (PayPal uses a handful of
//! certificates at a time), and re-validated on every use, so a cached certificate still expires.
//! The transmission time must lie within the replay window.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_lc_rs::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderMap;
use rustls_pki_types::{
    CertificateDer, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
    pem::PemObject,
};
use thiserror::Error;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use webpki::{EndEntityCert, KeyUsage, aws_lc_rs as algs};

use super::{PayPalContext, Verified, VerifyError, Window, single_header};
use crate::secret::SecretSlot;

pub(crate) const SIGNATURE_HEADER: &str = "paypal-transmission-sig";
const ALGORITHM_HEADER: &str = "paypal-auth-algo";
const CERT_URL_HEADER: &str = "paypal-cert-url";
const TRANSMISSION_ID_HEADER: &str = "paypal-transmission-id";
const TRANSMISSION_TIME_HEADER: &str = "paypal-transmission-time";
const ALGORITHM: &str = "SHA256withRSA";
pub(crate) const ASYNC_CONTEXT: &str =
    "PayPal's webhook id and certificate source (Verifier::verify_async)";

/// The hosts PayPal serves its message-verification certificates from.
pub const CERT_HOSTS: [&str; 4] = [
    "api.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.paypal.com",
    "api-m.sandbox.paypal.com",
];
const CERT_PATH_PREFIX: &str = "/v1/notifications/certs/";
/// The names PayPal's signing certificates are issued to, live and sandbox.
pub const SIGNER_NAMES: [&str; 2] = [
    "messageverificationcerts.paypal.com",
    "messageverificationcerts.sandbox.paypal.com",
];
/// How many certificate bundles are kept by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 16;
/// A leaf and its intermediates fit in a few kilobytes; a larger answer is not a bundle.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;
const MAX_CHAIN_CERTS: usize = 8;
/// RSA signatures from 2048 to 8192 bits.
const SIGNATURE_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// The algorithms a chain from a public CA may be signed with.
static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
];

/// Why a certificate could not be had.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateFetchError {
    /// PayPal answered, but not with a certificate (a 4xx): the URL names nothing, and a retry
    /// will not change that.
    #[error("no certificate at that URL")]
    NotFound,
    /// The network or PayPal failed: worth a retry.
    #[error("certificate source unavailable")]
    Unavailable,
}

/// Fetches PayPal's certificate bundles. The ingress implements it with its HTTPS client; tests
/// with a map. It is only ever called with a URL that passed the host and path allowlist, and
/// should bound the response to [`MAX_BUNDLE_BYTES`] and time out quickly.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    /// GET `url` and return the PEM bundle: the signing certificate first, then intermediates.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, CertificateFetchError>;
}

/// Why trust anchors could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidTrustAnchors {
    #[error("the trust anchor bundle holds no PEM certificate")]
    Empty,
    #[error("the trust anchor bundle is not PEM certificates")]
    NotPem,
    #[error("a trust anchor is not a usable X.509 certificate")]
    Unusable,
}

/// Certificate fetching, chain validation and the cache: one per process, shared by every
/// tenant (the certificates are PayPal's, not the tenant's).
pub struct PayPalCertificates {
    source: Arc<dyn CertificateSource>,
    anchors: Vec<TrustAnchor<'static>>,
    cache: Mutex<ChainCache>,
}

impl fmt::Debug for PayPalCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalCertificates")
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

impl PayPalCertificates {
    /// `trust_anchors_pem` holds the root certificates PayPal's chain must end at: in
    /// production, the public roots of the CA that issues PayPal's certificate (DigiCert's, at
    /// the time of writing), so a certificate anyone else obtains does not chain.
    pub fn new(
        source: Arc<dyn CertificateSource>,
        trust_anchors_pem: &[u8],
    ) -> Result<Self, InvalidTrustAnchors> {
        let roots = CertificateDer::pem_slice_iter(trust_anchors_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| InvalidTrustAnchors::NotPem)?;
        if roots.is_empty() {
            return Err(InvalidTrustAnchors::Empty);
        }
        let anchors = roots
            .iter()
            .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| InvalidTrustAnchors::Unusable)?;
        Ok(Self {
            source,
            anchors,
            cache: Mutex::new(ChainCache::new(DEFAULT_CACHE_CAPACITY)),
        })
    }

    /// With trust anchors already parsed (the public roots a TLS client trusts: the same trust
    /// PayPal's HTTPS endpoints rely on, narrowed by the name check to PayPal's own
    /// certificate).
    pub fn with_anchors(
        source: Arc<dyn CertificateSource>,
        anchors: Vec<TrustAnchor<'static>>,
    ) -> Result<Self, InvalidTrustAnchors> {
        if anchors.is_empty() {
            return Err(InvalidTrustAnchors::Empty);
        }
        Ok(Self {
            source,
            anchors,
            cache: Mutex::new(ChainCache::new(DEFAULT_CACHE_CAPACITY)),
        })
    }

    /// Keep at most `capacity` bundles (at least one).
    pub fn with_cache_capacity(self, capacity: usize) -> Self {
        Self {
            cache: Mutex::new(ChainCache::new(capacity.max(1))),
            ..self
        }
    }

    /// The chain at `url`, from the cache or the source, validated at `now`.
    async fn chain(&self, url: &str, now: SystemTime) -> Result<Arc<Chain>, VerifyError> {
        if let Some(chain) = self.cached(url) {
            chain.validate(&self.anchors, now)?;
            return Ok(chain);
        }
        let bundle = self.source.fetch(url).await.map_err(|e| match e {
            CertificateFetchError::NotFound => {
                VerifyError::UntrustedCertificate("no certificate at the certificate URL")
            }
            CertificateFetchError::Unavailable => VerifyError::CertificateUnavailable,
        })?;
        let chain = Arc::new(Chain::from_pem(&bundle)?);
        // Only a chain that validates is cached, so garbage cannot evict PayPal's certificates.
        chain.validate(&self.anchors, now)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url, Arc::clone(&chain));
        }
        Ok(chain)
    }

    fn cached(&self, url: &str) -> Option<Arc<Chain>> {
        // A poisoned lock only loses the cache: fetch again.
        self.cache.lock().ok()?.get(url)
    }

    #[cfg(test)]
    fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.entries.len()).unwrap_or(0)
    }
}

/// A leaf certificate and the intermediates sent with it.
#[derive(Debug)]
struct Chain {
    leaf: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
}

impl Chain {
    fn from_pem(bundle: &[u8]) -> Result<Self, VerifyError> {
        let refuse = || VerifyError::UntrustedCertificate("the bundle is not PEM certificates");
        if bundle.len() > MAX_BUNDLE_BYTES {
            return Err(refuse());
        }
        let mut certs = CertificateDer::pem_slice_iter(bundle)
            .take(MAX_CHAIN_CERTS + 1)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| refuse())?;
        if certs.is_empty() || certs.len() > MAX_CHAIN_CERTS {
            return Err(refuse());
        }
        let leaf = certs.remove(0);
        Ok(Self {
            leaf,
            intermediates: certs,
        })
    }

    /// The leaf chains to an anchor at `now`, for server authentication, issued to PayPal's
    /// message-verification name.
    fn validate(&self, anchors: &[TrustAnchor<'_>], now: SystemTime) -> Result<(), VerifyError> {
        let leaf = self.leaf()?;
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        leaf.verify_for_usage(
            CHAIN_ALGORITHMS,
            anchors,
            &self.intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            VerifyError::UntrustedCertificate(match e {
                webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                    "a certificate in the chain is outside its validity period"
                }
                webpki::Error::UnknownIssuer => "the chain does not end at a trusted root",
                _ => "the certificate chain is invalid",
            })
        })?;
        let named = SIGNER_NAMES.iter().any(|name| {
            ServerName::try_from(*name)
                .is_ok_and(|name| leaf.verify_is_valid_for_subject_name(&name).is_ok())
        });
        if named {
            Ok(())
        } else {
            Err(VerifyError::UntrustedCertificate(
                "the certificate is not issued to PayPal's message verification name",
            ))
        }
    }

    fn leaf(&self) -> Result<EndEntityCert<'_>, VerifyError> {
        EndEntityCert::try_from(&self.leaf)
            .map_err(|_| VerifyError::UntrustedCertificate("the certificate cannot be parsed"))
    }
}

/// A few bundles by URL; the least recently used goes when a new one arrives at capacity.
#[derive(Debug)]
struct ChainCache {
    capacity: usize,
    clock: u64,
    entries: HashMap<String, (u64, Arc<Chain>)>,
}

impl ChainCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, url: &str) -> Option<Arc<Chain>> {
        self.clock += 1;
        let clock = self.clock;
        let (used, chain) = self.entries.get_mut(url)?;
        *used = clock;
        Some(Arc::clone(chain))
    }

    fn insert(&mut self, url: &str, chain: Arc<Chain>) {
        self.clock += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(url) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(url, _)| url.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(url.to_owned(), (self.clock, chain));
    }
}

/// The signed headers of one delivery, parsed and checked before anything is fetched.
#[derive(Debug)]
pub(crate) struct Transmission<'h> {
    id: &'h str,
    time: &'h str,
    signed_at: SystemTime,
    cert_url: &'h str,
    signature: Vec<u8>,
}

impl<'h> Transmission<'h> {
    pub(crate) fn parse(headers: &'h HeaderMap) -> Result<Self, VerifyError> {
        let signature = single_header(headers, SIGNATURE_HEADER)?;
        let algorithm = single_header(headers, ALGORITHM_HEADER)?;
        let cert_url = single_header(headers, CERT_URL_HEADER)?;
        let id = single_header(headers, TRANSMISSION_ID_HEADER)?;
        let time = single_header(headers, TRANSMISSION_TIME_HEADER)?;
        if algorithm != ALGORITHM {
            return Err(VerifyError::NoSupportedSignature(
                ALGORITHM_HEADER.to_owned(),
            ));
        }
        let signature = STANDARD
            .decode(signature)
            .ok()
            .filter(|s| SIGNATURE_BYTES.contains(&s.len()))
            .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
        let signed_at = parse_time(time)
            .ok_or_else(|| VerifyError::MalformedHeader(TRANSMISSION_TIME_HEADER.to_owned()))?;
        check_cert_url(cert_url)?;
        Ok(Self {
            id,
            time,
            signed_at,
            cert_url,
            signature,
        })
    }

    /// `{transmission id}|{transmission time}|{webhook id}|{crc32 of the body}`, the times and
    /// ids exactly as sent.
    fn signed_content(&self, webhook_id: &str, body: &[u8]) -> String {
        signed_content(self.id, self.time, webhook_id, body)
    }
}

fn signed_content(id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    format!("{id}|{time}|{webhook_id}|{}", crc32fast::hash(body))
}

/// An RFC 3339 time at or after the Unix epoch.
fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let nanos = u64::try_from(parsed.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// `https://`, one of PayPal's hosts exactly (port 443 at most), a certificate name under
/// `/v1/notifications/certs/` made of letters, digits, `-`, `_` and single dots: nothing a fetch
/// could be steered elsewhere with.
fn check_cert_url(url: &str) -> Result<(), VerifyError> {
    let refuse = || VerifyError::UntrustedCertificate("the certificate URL is not PayPal's");
    let rest = url.strip_prefix("https://").ok_or_else(refuse)?;
    let (authority, path) = rest.split_at(rest.find('/').ok_or_else(refuse)?);
    let host = match authority.split_once(':') {
        Some((host, "443")) => host,
        Some(_) => return Err(refuse()),
        None => authority,
    };
    if !CERT_HOSTS.contains(&host) {
        return Err(refuse());
    }
    let name = path.strip_prefix(CERT_PATH_PREFIX).ok_or_else(refuse)?;
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name_ok { Ok(()) } else { Err(refuse()) }
}

pub(crate) async fn verify(
    body: &[u8],
    headers: &HeaderMap,
    context: Option<PayPalContext<'_>>,
    window: Window,
) -> Result<Verified, VerifyError> {
    let transmission = Transmission::parse(headers)?;
    let context = context.ok_or(VerifyError::MissingContext(ASYNC_CONTEXT))?;
    let webhook_id = context.webhook_id.trim();
    if webhook_id.is_empty() {
        return Err(VerifyError::UnusableSecret(
            "the PayPal webhook id is empty",
        ));
    }
    let chain = context
        .certificates
        .chain(transmission.cert_url, window.now)
        .await?;
    let message = transmission.signed_content(webhook_id, body);
    chain
        .leaf()?
        .verify_signature(
            algs::RSA_PKCS1_2048_8192_SHA256,
            message.as_bytes(),
            &transmission.signature,
        )
        .map_err(|_| VerifyError::SignatureMismatch)?;
    window.check(transmission.signed_at)?;
    Ok(Verified {
        secret: SecretSlot::Current,
        key_id: None,
        event_id: None,
        event_type: None,
        signed_at: Some(transmission.signed_at),
    })
}

/// What a PayPal delivery carries besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    pub transmission_id: &'a str,
    pub at: SystemTime,
    pub webhook_id: &'a str,
    pub cert_url: &'a str,
}

/// The headers PayPal would send for `body`, signed with an RSA private key in PKCS#8 DER (the
/// key of the certificate at `cert_url`), for tests and the CLI against trust anchors of their
/// own.
pub fn sign(
    body: &[u8],
    transmit: &Transmit<'_>,
    private_key_pkcs8: &[u8],
) -> Result<Vec<(String, String)>, VerifyError> {
    let unusable = || VerifyError::UnusableSecret("expected an RSA private key in PKCS#8 DER");
    let pair = RsaKeyPair::from_pkcs8(private_key_pkcs8).map_err(|_| unusable())?;
    // `2024-05-01T12:00:00Z`, as PayPal writes transmission times.
    let time = crate::clock::rfc3339(transmit.at);
    let message = signed_content(transmit.transmission_id, &time, transmit.webhook_id, body);
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .map_err(|_| unusable())?;
    Ok(vec![
        (ALGORITHM_HEADER.to_owned(), ALGORITHM.to_owned()),
        (CERT_URL_HEADER.to_owned(), transmit.cert_url.to_owned()),
        (
            TRANSMISSION_ID_HEADER.to_owned(),
            transmit.transmission_id.to_owned(),
        ),
        (TRANSMISSION_TIME_HEADER.to_owned(), time),
        (SIGNATURE_HEADER.to_owned(), STANDARD.encode(signature)),
    ])
}

#[cfg(test)]
mod tests;
