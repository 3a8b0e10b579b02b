//! PayPal against a certificate hierarchy made at test time (root, intermediate, leaf, and the
//! forgeries an attacker could make) and an in-memory certificate source: nothing reaches the
//! network.

use std::{
    collections::HashMap,
    sync::{
        Mutex as StdMutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use proptest::prelude::*;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize, date_time_ymd,
};

use super::*;
use crate::verify::{Scheme, Verifier, VerifyContext, test_support::*};

const URL: &str = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77";
const WEBHOOK_ID: &str = "1JE4291016473214C";
const TRANSMISSION_ID: &str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55";
const BODY: &[u8] = br#"{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0","create_time":"2025-06-01T00:00:00Z","resource_type":"sale","event_type":"PAYMENT.SALE.COMPLETED","resource":{"id":"80021663DE681814L"}}"#;
/// 2025-06-01T00:00:00Z: inside every valid certificate below.
const NOW: u64 = 1_748_736_000;

/// A CA that can issue certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: Certificate,
}

fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    let cert = match parent {
        Some(parent) => params.signed_by(&key, &parent.issuer),
        None => params.self_signed(&key),
    }
    .expect("CA certificate");
    Ca {
        issuer: Issuer::new(params, key),
        cert,
    }
}

/// A signing certificate: its PEM and the PKCS#8 of its RSA key.
struct Leaf {
    pem: String,
    key: Vec<u8>,
}

struct LeafSpec<'a> {
    san: &'a [&'a str],
    cn: &'a str,
    until: (i32, u8, u8),
    server_auth: bool,
}

const GOOD: LeafSpec<'static> = LeafSpec {
    san: &["messageverificationcerts.paypal.com"],
    cn: "messageverificationcerts.paypal.com",
    until: (2027, 1, 1),
    server_auth: true,
};

fn leaf_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("RSA key")
    })
}

fn leaf(spec: &LeafSpec<'_>, issuer: &Ca) -> Leaf {
    let key = leaf_key();
    let names: Vec<String> = spec.san.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, spec.cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.server_auth {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    }
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(spec.until.0, spec.until.1, spec.until.2);
    let cert = params.signed_by(key, &issuer.issuer).expect("leaf");
    Leaf {
        pem: cert.pem(),
        key: key.serialize_der(),
    }
}

/// The hierarchy every test shares: a root we trust, an intermediate under it, PayPal's leaf.
struct Pki {
    root: Ca,
    intermediate: Ca,
    leaf: Leaf,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = ca("Test Root CA", None);
        let intermediate = ca("Test Issuing CA", Some(&root));
        let leaf = leaf(&GOOD, &intermediate);
        Pki {
            root,
            intermediate,
            leaf,
        }
    })
}

fn bundle(leaf: &Leaf, intermediate: &Ca) -> Vec<u8> {
    format!("{}{}", leaf.pem, intermediate.cert.pem()).into_bytes()
}

/// Certificate bundles by URL, counting fetches.
#[derive(Default)]
struct Memory {
    bundles: StdMutex<HashMap<String, Result<Vec<u8>, CertificateFetchError>>>,
    fetches: AtomicUsize,
}

impl Memory {
    fn with(url: &str, answer: Result<Vec<u8>, CertificateFetchError>) -> Arc<Self> {
        let memory = Self::default();
        memory.put(url, answer);
        Arc::new(memory)
    }

    fn put(&self, url: &str, answer: Result<Vec<u8>, CertificateFetchError>) {
        self.bundles
            .lock()
            .expect("lock")
            .insert(url.to_owned(), answer);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CertificateSource for Memory {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, CertificateFetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.bundles
            .lock()
            .expect("lock")
            .get(url)
            .cloned()
            .unwrap_or(Err(CertificateFetchError::NotFound))
    }
}

fn certificates(source: Arc<Memory>) -> PayPalCertificates {
    PayPalCertificates::new(source, pki().root.cert.pem().as_bytes()).expect("anchors")
}

fn good_source() -> Arc<Memory> {
    Memory::with(URL, Ok(bundle(&pki().leaf, &pki().intermediate)))
}

fn transmit(at_secs: u64) -> Transmit<'static> {
    Transmit {
        transmission_id: TRANSMISSION_ID,
        at: at(at_secs),
        webhook_id: WEBHOOK_ID,
        cert_url: URL,
    }
}

fn signed(body: &[u8], transmit: &Transmit<'_>, key: &[u8]) -> HeaderMap {
    let pairs = sign(body, transmit, key).expect("sign");
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers(&pairs)
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn check_with(
    certs: &PayPalCertificates,
    webhook_id: &str,
    body: &[u8],
    h: &HeaderMap,
    now: u64,
) -> Result<Verified, VerifyError> {
    let context = VerifyContext {
        paypal: Some(PayPalContext {
            webhook_id,
            certificates: certs,
        }),
        ..VerifyContext::default()
    };
    run(Verifier::new(Scheme::PayPal).verify_async(body, h, &secrets("unused"), &context, at(now)))
}

fn check(certs: &PayPalCertificates, body: &[u8], h: &HeaderMap) -> Result<Verified, VerifyError> {
    check_with(certs, WEBHOOK_ID, body, h, NOW)
}

#[test]
fn a_delivery_signed_by_the_certificate_verifies() {
    // GIVEN PayPal's certificate chains to our trusted root
    let certs = certificates(good_source());
    // WHEN a delivery signed with its key arrives
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    let ok = check(&certs, BODY, &h).expect("valid");
    // THEN it verifies, with the transmission time as the signed time
    assert_eq!(ok.signed_at, Some(at(NOW)));
    assert_eq!(ok.secret, SecretSlot::Current);
}

#[test]
fn the_signed_string_is_id_time_webhook_id_and_decimal_crc32() {
    // CRC-32 (IEEE) of "123456789" is 0xCBF43926: the check value every CRC-32 lists.
    assert_eq!(
        signed_content("t-id", "2025-06-01T00:00:00Z", "WH1", b"123456789"),
        "t-id|2025-06-01T00:00:00Z|WH1|3421780262"
    );
    assert_eq!(crate::clock::rfc3339(at(NOW)), "2025-06-01T00:00:00Z");
}

#[test]
fn everything_signed_is_checked() {
    let certs = certificates(good_source());
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    // another body
    let mut tampered = BODY.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        check(&certs, &tampered, &h),
        Err(VerifyError::SignatureMismatch)
    );
    // another tenant's webhook id
    assert_eq!(
        check_with(&certs, "8PT597110X687430LKGECATA", BODY, &h, NOW),
        Err(VerifyError::SignatureMismatch)
    );
    // another transmission id or time
    for (name, value) in [
        (
            "paypal-transmission-id",
            "69cd13f0-d67a-11e5-baa3-778b53f4ae56",
        ),
        ("paypal-transmission-time", "2025-06-01T00:00:01Z"),
    ] {
        let mut changed = h.clone();
        changed.insert(name, http::HeaderValue::from_static(value));
        assert_eq!(
            check(&certs, BODY, &changed),
            Err(VerifyError::SignatureMismatch),
            "{name}"
        );
    }
}

#[test]
fn only_paypals_certificate_urls_are_fetched() {
    let bad = [
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://evil.example/v1/notifications/certs/CERT-1",
        "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://API.PAYPAL.COM/v1/notifications/certs/CERT-1",
        "https://paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com/v1/oauth2/token",
        "https://api.paypal.com/v1/notifications/certs/",
        "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
        "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
        "https://api.paypal.com/v1/notifications/certs/CERT-1#x",
        "https://api.paypal.com/v1/notifications/certs/CERT%2F1",
        "https://api.paypal.com",
    ];
    let source = good_source();
    let certs = certificates(Arc::clone(&source));
    for url in bad {
        let t = Transmit {
            cert_url: url,
            ..transmit(NOW)
        };
        let h = signed(BODY, &t, &pki().leaf.key);
        assert_eq!(
            check(&certs, BODY, &h),
            Err(VerifyError::UntrustedCertificate(
                "the certificate URL is not PayPal's"
            )),
            "{url}"
        );
    }
    assert_eq!(source.fetches(), 0, "nothing was fetched");
    for host in CERT_HOSTS {
        for port in ["", ":443"] {
            assert!(
                check_cert_url(&format!(
                    "https://{host}{port}/v1/notifications/certs/CERT-1"
                ))
                .is_ok()
            );
        }
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    // GIVEN an attacker's own CA issued a certificate in PayPal's name
    let rogue = ca("Rogue Root", None);
    let forged = leaf(&GOOD, &rogue);
    let certs = certificates(Memory::with(URL, Ok(forged.pem.clone().into_bytes())));
    // WHEN a delivery signed with its key arrives
    let h = signed(BODY, &transmit(NOW), &forged.key);
    // THEN the chain does not reach our root
    assert_eq!(
        check(&certs, BODY, &h),
        Err(VerifyError::UntrustedCertificate(
            "the chain does not end at a trusted root"
        ))
    );
    // and without its intermediate, PayPal's own leaf does not chain either
    let alone = certificates(Memory::with(URL, Ok(pki().leaf.pem.clone().into_bytes())));
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    assert!(matches!(
        check(&alone, BODY, &h),
        Err(VerifyError::UntrustedCertificate(_))
    ));
}

#[test]
fn the_leaf_must_be_paypals_and_for_server_authentication() {
    let not_paypal = "the certificate is not issued to PayPal's message verification name";
    let cases = [
        (
            LeafSpec {
                san: &["www.paypal.com"],
                cn: "messageverificationcerts.paypal.com",
                ..GOOD
            },
            Err(VerifyError::UntrustedCertificate(not_paypal)),
        ),
        (
            // The name in the CN alone: webpki reads names from SANs only.
            LeafSpec {
                san: &[],
                cn: "messageverificationcerts.paypal.com",
                ..GOOD
            },
            Err(VerifyError::UntrustedCertificate(not_paypal)),
        ),
        (
            LeafSpec {
                san: &["messageverificationcerts.sandbox.paypal.com"],
                cn: "messageverificationcerts.sandbox.paypal.com",
                ..GOOD
            },
            Ok(()),
        ),
        (
            LeafSpec {
                server_auth: false,
                ..GOOD
            },
            Err(VerifyError::UntrustedCertificate(
                "the certificate chain is invalid",
            )),
        ),
    ];
    for (spec, want) in cases {
        let issued = leaf(&spec, &pki().intermediate);
        let certs = certificates(Memory::with(URL, Ok(bundle(&issued, &pki().intermediate))));
        let h = signed(BODY, &transmit(NOW), &issued.key);
        assert_eq!(check(&certs, BODY, &h).map(drop), want, "{:?}", spec.san);
    }
}

#[test]
fn an_expired_certificate_is_refused_even_from_the_cache() {
    // GIVEN a certificate valid until 2026-01-01, fetched and cached while valid
    let short = leaf(
        &LeafSpec {
            until: (2026, 1, 1),
            ..GOOD
        },
        &pki().intermediate,
    );
    let source = Memory::with(URL, Ok(bundle(&short, &pki().intermediate)));
    let certs = certificates(Arc::clone(&source));
    let h = signed(BODY, &transmit(NOW), &short.key);
    assert!(check(&certs, BODY, &h).is_ok());
    // WHEN a delivery arrives after it expired
    let later = 1_767_312_000; // 2026-01-02
    let h = signed(BODY, &transmit(later), &short.key);
    // THEN it is refused, without fetching again
    assert_eq!(
        check_with(&certs, WEBHOOK_ID, BODY, &h, later),
        Err(VerifyError::UntrustedCertificate(
            "a certificate in the chain is outside its validity period"
        ))
    );
    assert_eq!(source.fetches(), 1);
}

#[test]
fn bundles_are_cached_by_url_within_a_bound() {
    // GIVEN a cache of two bundles
    let source = good_source();
    let urls: Vec<String> = (1..=3)
        .map(|n| format!("https://api-m.paypal.com/v1/notifications/certs/CERT-{n}"))
        .collect();
    for url in &urls {
        source.put(url, Ok(bundle(&pki().leaf, &pki().intermediate)));
    }
    let certs = certificates(Arc::clone(&source)).with_cache_capacity(2);
    let deliver = |url: &str| {
        let t = Transmit {
            cert_url: url,
            ..transmit(NOW)
        };
        check(&certs, BODY, &signed(BODY, &t, &pki().leaf.key)).expect("valid");
    };
    // WHEN the same URL is used twice, the second use is served from the cache
    deliver(&urls[0]);
    deliver(&urls[0]);
    assert_eq!(source.fetches(), 1);
    // WHEN more URLs than fit are used, the least recently used one goes
    deliver(&urls[1]);
    deliver(&urls[0]);
    deliver(&urls[2]);
    assert_eq!(certs.cache_len(), 2);
    assert_eq!(source.fetches(), 3);
    deliver(&urls[0]);
    assert_eq!(source.fetches(), 3, "urls[0] was recently used and kept");
    deliver(&urls[1]);
    assert_eq!(source.fetches(), 4, "urls[1] was evicted");
}

#[test]
fn fetch_failures_are_told_apart() {
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    // A URL PayPal does not know is the sender's problem.
    let missing = certificates(Arc::new(Memory::default()));
    let err = check(&missing, BODY, &h).expect_err("not found");
    assert_eq!(err.reason(), "untrusted_certificate");
    assert!(!err.is_configuration_error());
    // An outage is ours: 503, so PayPal retries.
    let down = certificates(Memory::with(URL, Err(CertificateFetchError::Unavailable)));
    let err = check(&down, BODY, &h).expect_err("unavailable");
    assert_eq!(err, VerifyError::CertificateUnavailable);
    assert!(err.is_configuration_error());
    // Garbage is refused and not cached.
    let source = Memory::with(URL, Ok(b"<html>not a certificate</html>".to_vec()));
    let garbage = certificates(Arc::clone(&source));
    for _ in 0..2 {
        assert_eq!(
            check(&garbage, BODY, &h),
            Err(VerifyError::UntrustedCertificate(
                "the bundle is not PEM certificates"
            ))
        );
    }
    assert_eq!(source.fetches(), 2);
    assert_eq!(garbage.cache_len(), 0);
}

#[test]
fn the_transmission_time_must_be_inside_the_window() {
    let certs = certificates(good_source());
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    assert!(check_with(&certs, WEBHOOK_ID, BODY, &h, NOW + 300).is_ok());
    assert_eq!(
        check_with(&certs, WEBHOOK_ID, BODY, &h, NOW + 301),
        Err(VerifyError::StaleTimestamp {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
    assert_eq!(
        check_with(&certs, WEBHOOK_ID, BODY, &h, NOW - 301),
        Err(VerifyError::FutureTimestamp {
            ahead_secs: 301,
            tolerance_secs: 300
        })
    );
}

#[test]
fn headers_are_checked_before_anything_is_fetched() {
    let source = good_source();
    let certs = certificates(Arc::clone(&source));
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    for name in [
        "paypal-transmission-sig",
        "paypal-auth-algo",
        "paypal-cert-url",
        "paypal-transmission-id",
        "paypal-transmission-time",
    ] {
        let mut without = h.clone();
        without.remove(name);
        assert_eq!(
            check(&certs, BODY, &without),
            Err(VerifyError::MissingHeader(name.into()))
        );
        let mut doubled = h.clone();
        let value = h.get(name).expect("present").clone();
        doubled.append(name, value);
        assert_eq!(
            check(&certs, BODY, &doubled),
            Err(VerifyError::MalformedHeader(name.into()))
        );
    }
    let mut algo = h.clone();
    algo.insert(
        "paypal-auth-algo",
        http::HeaderValue::from_static("SHA1withRSA"),
    );
    assert_eq!(
        check(&certs, BODY, &algo),
        Err(VerifyError::NoSupportedSignature("paypal-auth-algo".into()))
    );
    for (name, value) in [
        ("paypal-transmission-time", "1748736000"),
        ("paypal-transmission-time", "2025-06-01 00:00:00"),
        ("paypal-transmission-sig", "c2hvcnQ="),
        ("paypal-transmission-sig", "not base64"),
    ] {
        let mut bad = h.clone();
        bad.insert(name, http::HeaderValue::from_static(value));
        assert_eq!(
            check(&certs, BODY, &bad),
            Err(VerifyError::MalformedHeader(name.into())),
            "{value}"
        );
    }
    assert_eq!(source.fetches(), 0);
    // Errors never echo the signature.
    let err = check_with(&certs, "other", BODY, &h, NOW).expect_err("mismatch");
    let sig = h["paypal-transmission-sig"].to_str().expect("ascii");
    assert!(!format!("{err} {err:?}").contains(&sig[..20]));
}

#[test]
fn without_the_async_context_the_scheme_cannot_verify() {
    let h = signed(BODY, &transmit(NOW), &pki().leaf.key);
    // The sync path parses the headers, then says what it lacks.
    let err = verifier(Scheme::PayPal)
        .verify(BODY, &h, &secrets("unused"), at(NOW))
        .expect_err("sync");
    assert_eq!(err, VerifyError::MissingContext(ASYNC_CONTEXT));
    assert!(err.is_configuration_error());
    let err = run(Verifier::new(Scheme::PayPal).verify_async(
        BODY,
        &h,
        &secrets("unused"),
        &VerifyContext::default(),
        at(NOW),
    ))
    .expect_err("no context");
    assert_eq!(err, VerifyError::MissingContext(ASYNC_CONTEXT));
    let certs = certificates(good_source());
    assert_eq!(
        check_with(&certs, " ", BODY, &h, NOW),
        Err(VerifyError::UnusableSecret(
            "the PayPal webhook id is empty"
        ))
    );
}

#[test]
fn trust_anchors_must_be_pem_certificates() {
    let source: Arc<dyn CertificateSource> = Arc::new(Memory::default());
    assert_eq!(
        PayPalCertificates::new(Arc::clone(&source), b"").map(drop),
        Err(InvalidTrustAnchors::Empty)
    );
    assert_eq!(
        PayPalCertificates::new(
            Arc::clone(&source),
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
        .map(drop),
        Err(InvalidTrustAnchors::NotPem)
    );
    assert_eq!(
        PayPalCertificates::new(
            source,
            b"-----BEGIN CERTIFICATE-----\nd2hvb3Bz\n-----END CERTIFICATE-----\n"
        )
        .map(drop),
        Err(InvalidTrustAnchors::Unusable)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn no_header_value_or_body_makes_it_panic(
        values in proptest::collection::vec("[ -~]{0,80}", 5),
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let names = [
            "paypal-transmission-sig",
            "paypal-auth-algo",
            "paypal-cert-url",
            "paypal-transmission-id",
            "paypal-transmission-time",
        ];
        let pairs: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
        let certs = certificates(good_source());
        let _ = check(&certs, &body, &headers(&pairs));
        prop_assert!(check_cert_url(&values[2]).is_err() || values[2].starts_with("https://"));
    }
}

#[test]
fn the_async_path_can_run_inside_a_send_future() {
    // The ingress runs in async-trait (Send) futures; holding a lock across the fetch would
    // make this fail to compile.
    fn assert_send<T: Send>(_: &T) {}
    let certs = certificates(good_source());
    let h = HeaderMap::new();
    let context = VerifyContext {
        paypal: Some(PayPalContext {
            webhook_id: WEBHOOK_ID,
            certificates: &certs,
        }),
        ..VerifyContext::default()
    };
    let verifier = Verifier::new(Scheme::PayPal);
    let secrets = secrets("unused");
    let future = verifier.verify_async(BODY, &h, &secrets, &context, at(NOW));
    assert_send(&future);
    assert!(run(future).is_err());
}
