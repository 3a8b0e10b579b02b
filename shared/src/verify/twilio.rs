//! Twilio: `X-Twilio-Signature` is base64 HMAC-SHA1, keyed with the account's auth token, over
//! the full URL Twilio requested followed by the POST parameters sorted by name, each name
//! followed by its value. A JSON body is not form-encoded: Twilio then puts `bodySHA256` (the hex
//! SHA-256 of the raw body) in the URL's query, signs the URL alone, and the receiver checks the
//! hash. Twilio signs no timestamp, so there is no replay window: deliveries are deduplicated on
//! their id instead.
//!
//! The details follow Twilio's official helper library (`RequestValidator.validate`), because
//! that is what Twilio's own signer is tested against: the URL is tried both with and without
//! its port (Twilio's signer is inconsistent about `:443`), a parameter sent several times has
//! its distinct values sorted, and a webhook signed with a SharedKey
//! (`X-Twilio-Webhooks-Signature-Settings: key=...,algorithm=HMAC_SHA256`) uses HMAC-SHA256.
//! The auth token and a secondary token being rotated in are the tenant's two secrets.
//!
//! Twilio signs what it requested, and only the caller knows that: API Gateway hands the
//! ingress a host, a path and a raw query, and a tenant may publish a custom domain instead. So
//! the URL is an explicit input, a [`RequestUrl`], never reconstructed here.

use std::collections::{BTreeMap, BTreeSet};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::{Verified, VerifyError, at_most_one_header, optional_header, single_header};
use crate::secret::{Secret, SecretSet};

pub(crate) const SIGNATURE_HEADER: &str = "x-twilio-signature";
const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";
/// Twilio's id for a delivery, the same on every retry of it.
pub const IDEMPOTENCY_HEADER: &str = "i-twilio-idempotency-token";
/// The query parameter carrying the hex SHA-256 of a body that is not form-encoded.
pub const BODY_HASH_PARAMETER: &str = "bodySHA256";
pub(crate) const URL_CONTEXT: &str = "the URL Twilio requested";

/// Why a string is not a URL Twilio could have requested.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidUrl {
    #[error("the URL must start with https:// or http://")]
    Scheme,
    #[error("the URL's host is missing or not a plain DNS name with an optional port")]
    Authority,
    #[error("the URL's path or query holds spaces, control characters or a fragment")]
    PathOrQuery,
}

/// The absolute URL a provider requested, exactly as it addressed it: scheme, host, optional
/// port, path and raw query, byte for byte (no percent-decoding or re-encoding, which would
/// change what was signed). Fragments, user info and IP-literal hosts are refused; an empty
/// query (`...?`) is dropped, as Twilio's library does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl {
    text: String,
    /// `scheme://` and `host[:port]` end here; the path and query follow.
    authority_end: usize,
    scheme_len: usize,
}

impl RequestUrl {
    /// Read an absolute `https://` or `http://` URL.
    pub fn parse(url: &str) -> Result<Self, InvalidUrl> {
        let (scheme, rest) = url.split_once("://").ok_or(InvalidUrl::Scheme)?;
        if scheme != "https" && scheme != "http" {
            return Err(InvalidUrl::Scheme);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        check_authority(authority)?;
        let path_and_query = path_and_query.strip_suffix('?').unwrap_or(path_and_query);
        let clean = path_and_query
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#');
        if !clean {
            return Err(InvalidUrl::PathOrQuery);
        }
        let scheme_len = scheme.len() + "://".len();
        Ok(Self {
            text: format!("{scheme}://{authority}{path_and_query}"),
            authority_end: scheme_len + authority.len(),
            scheme_len,
        })
    }

    /// The URL an HTTPS request for `host` (as in the `Host` header: `name[:port]`), `path` and
    /// `raw_query` (without `?`, exactly as received) was made to.
    pub fn https(host: &str, path: &str, raw_query: Option<&str>) -> Result<Self, InvalidUrl> {
        let query = raw_query
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        Self::parse(&format!("https://{host}{path}{query}"))
    }

    /// This URL with `bodySHA256=<hex SHA-256 of body>` appended to its query, as Twilio
    /// requests a URL for a JSON body. For tests and the CLI.
    pub fn with_body_sha256(&self, body: &[u8]) -> Self {
        let separator = if self.query().is_some() { '&' } else { '?' };
        let text = format!(
            "{}{separator}{BODY_HASH_PARAMETER}={}",
            self.text,
            hex::encode(Sha256::digest(body))
        );
        Self { text, ..*self }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn scheme(&self) -> &str {
        &self.text[..self.scheme_len - "://".len()]
    }

    fn authority(&self) -> &str {
        &self.text[self.scheme_len..self.authority_end]
    }

    fn path_and_query(&self) -> &str {
        &self.text[self.authority_end..]
    }

    fn query(&self) -> Option<&str> {
        self.path_and_query().split_once('?').map(|(_, q)| q)
    }

    /// The first `bodySHA256` value of the query, as the official library reads it.
    fn body_sha256(&self) -> Option<String> {
        form_urlencoded::parse(self.query()?.as_bytes())
            .find(|(name, _)| name == BODY_HASH_PARAMETER)
            .map(|(_, value)| value.into_owned())
    }

    /// The URL without its port, and with it (the scheme's default when none is given): the two
    /// spellings Twilio's signer may have used.
    fn port_variants(&self) -> [String; 2] {
        let authority = self.authority();
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, port.to_owned()),
            None if self.scheme() == "https" => (authority, "443".to_owned()),
            None => (authority, "80".to_owned()),
        };
        let (scheme, rest) = (self.scheme(), self.path_and_query());
        [
            format!("{scheme}://{host}{rest}"),
            format!("{scheme}://{host}:{port}{rest}"),
        ]
    }
}

/// A DNS name (letters, digits, `-`, `.`) and an optional decimal port.
fn check_authority(authority: &str) -> Result<(), InvalidUrl> {
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(InvalidUrl::Authority)
    }
}

/// The MAC a request says it was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha1,
    Sha256,
}

impl Algorithm {
    /// HMAC-SHA1 unless the settings header names another algorithm, as the official library
    /// reads it: comma-separated `name=value` pairs, names trimmed, the value case-insensitive.
    fn from_headers(headers: &HeaderMap) -> Result<Self, VerifyError> {
        let Some(settings) = at_most_one_header(headers, SETTINGS_HEADER)? else {
            return Ok(Self::Sha1);
        };
        let named = settings.split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            (name.trim() == "algorithm" && !value.trim().is_empty()).then(|| value.trim())
        });
        match named.map(str::to_ascii_uppercase).as_deref() {
            None | Some("HMAC_SHA1") => Ok(Self::Sha1),
            Some("HMAC_SHA256") => Ok(Self::Sha256),
            Some(_) => Err(VerifyError::NoSupportedSignature(
                SETTINGS_HEADER.to_owned(),
            )),
        }
    }

    fn tag_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Standard, padded base64 of exactly one tag.
    fn decode(self, text: &str) -> Option<Vec<u8>> {
        let tag = STANDARD.decode(text).ok()?;
        (tag.len() == self.tag_len()).then_some(tag)
    }

    fn mac(self, key: &[u8], url: &str, params: &Params) -> Vec<u8> {
        match self {
            Self::Sha1 => mac_over::<Hmac<Sha1>>(key, url, params),
            Self::Sha256 => mac_over::<Hmac<Sha256>>(key, url, params),
        }
    }
}

/// Parameter names in byte order (the code point order Python sorts by), each with its distinct
/// values in the same order.
type Params = BTreeMap<String, BTreeSet<String>>;

fn mac_over<M: Mac + hmac::digest::KeyInit>(key: &[u8], url: &str, params: &Params) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <M as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(url.as_bytes());
    for (name, values) in params {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    mac.finalize().into_bytes().to_vec()
}

/// What the signature covers beside the URL: the form parameters, or nothing when the URL
/// carries the body's hash (which is then checked on its own).
struct Signed {
    params: Params,
    body_hash_matches: bool,
}

impl Signed {
    fn of(url: &RequestUrl, body: &[u8]) -> Self {
        match url.body_sha256() {
            Some(presented) => {
                let expected = hex::encode(Sha256::digest(body));
                Self {
                    params: Params::new(),
                    body_hash_matches: bool::from(expected.as_bytes().ct_eq(presented.as_bytes())),
                }
            }
            None => {
                let mut params = Params::new();
                for (name, value) in form_urlencoded::parse(body) {
                    params
                        .entry(name.into_owned())
                        .or_default()
                        .insert(value.into_owned());
                }
                Self {
                    params,
                    body_hash_matches: true,
                }
            }
        }
    }
}

pub(crate) fn verify(
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    url: Option<&RequestUrl>,
    now: std::time::SystemTime,
) -> Result<Verified, VerifyError> {
    let signature = single_header(headers, SIGNATURE_HEADER)?;
    let algorithm = Algorithm::from_headers(headers)?;
    let presented = algorithm
        .decode(signature)
        .ok_or_else(|| VerifyError::MalformedHeader(SIGNATURE_HEADER.to_owned()))?;
    let url = url.ok_or(VerifyError::MissingContext(URL_CONTEXT))?;
    let signed = Signed::of(url, body);
    let variants = url.port_variants();

    for (slot, secret) in secrets.active(now) {
        let key = secret.expose().as_bytes();
        let mut found = subtle::Choice::from(0);
        for variant in &variants {
            found |= algorithm
                .mac(key, variant, &signed.params)
                .ct_eq(&presented);
        }
        // Both must hold, as in the official library: the URL's hash is signed, the body is not.
        if bool::from(found) && signed.body_hash_matches {
            return Ok(Verified {
                secret: slot,
                key_id: None,
                event_id: optional_header(headers, IDEMPOTENCY_HEADER),
                event_type: None,
                signed_at: None,
            });
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// The header Twilio would send for `body` posted to `url` with `secret` as the auth token:
/// HMAC-SHA1 over the URL exactly as given. A JSON body needs a URL made with
/// [`RequestUrl::with_body_sha256`].
pub fn sign(url: &RequestUrl, body: &[u8], secret: &Secret) -> Vec<(String, String)> {
    let signed = Signed::of(url, body);
    let tag = Algorithm::Sha1.mac(secret.expose().as_bytes(), url.as_str(), &signed.params);
    vec![(SIGNATURE_HEADER.to_owned(), STANDARD.encode(tag))]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        secret::SecretSlot,
        verify::{Scheme, VerifyContext, test_support::*},
    };

    // Vectors computed with Twilio's official Python helper library, twilio 9.13.0:
    // RequestValidator("12345").compute_signature(url, params[, "HMAC_SHA256"]) and
    // compute_hash(body), with params parsed from the form body (blank values kept).
    const TOKEN: &str = "12345";
    const DOCS_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const DOCS_BODY: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
    const DOCS_SIG: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    /// The same request signed over `https://mycompany.com:443/myapp.php?foo=1&bar=2`.
    const DOCS_SIG_WITH_PORT: &str = "EpDEmp1PyjDYp77YxYU3GILBWzE=";

    const URL: &str = "https://hooks.example.com/webhooks/acme/twilio";
    /// Repeated names, a repeated value, a blank value, `+` for space, UTF-8, and names whose
    /// byte order differs from their case-insensitive order.
    const MESSY_BODY: &[u8] = b"To=%2B15005550006&Body=Hello+w%C3%B6rld&MediaUrl=b&MediaUrl=a&MediaUrl=b&Empty=&a=1&B=2&MessageSid=SM0123456789abcdef0123456789abcdef&MessageStatus=delivered";
    const MESSY_SIG: &str = "GsfGE0MI4/Qh4RXEb709EwIxvRA=";
    const MESSY_SIG_SHA256: &str = "EtrJ0dd0fkyw8L9U2FMHRMmP9j2CUv4fVjYCm1/P4oY=";

    const JSON_BODY: &[u8] = br#"{"property": "value", "boolean": true}"#;
    const JSON_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const JSON_SIG: &str = "u5Q/FBr8TxvpZZEtV6MWVtlqZH8=";

    fn url(text: &str) -> RequestUrl {
        RequestUrl::parse(text).expect("test URL")
    }

    fn check(body: &[u8], h: &HeaderMap, at_url: &str) -> Result<Verified, VerifyError> {
        let u = url(at_url);
        let context = VerifyContext {
            url: Some(&u),
            ..VerifyContext::default()
        };
        verifier(Scheme::Twilio).verify_with(body, h, &secrets(TOKEN), &context, at(1))
    }

    fn signed(signature: &str) -> HeaderMap {
        headers(&[("X-Twilio-Signature", signature)])
    }

    #[test]
    fn the_official_librarys_vectors_verify() {
        // GIVEN requests signed by Twilio's own helper library
        // WHEN they are verified against the URL the library was given
        // THEN each passes
        assert!(check(DOCS_BODY, &signed(DOCS_SIG), DOCS_URL).is_ok());
        assert!(check(MESSY_BODY, &signed(MESSY_SIG), URL).is_ok());
        let json_url = format!("{URL}?bodySHA256={JSON_HASH}");
        assert!(check(JSON_BODY, &signed(JSON_SIG), &json_url).is_ok());
        let sha256 = headers(&[
            ("X-Twilio-Signature", MESSY_SIG_SHA256),
            (
                "X-Twilio-Webhooks-Signature-Settings",
                "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
            ),
        ]);
        assert!(check(MESSY_BODY, &sha256, URL).is_ok());
    }

    #[test]
    fn the_port_may_be_present_on_either_side() {
        // GIVEN a signature over the URL with :443, and one without
        // WHEN each is checked against both spellings of the URL
        // THEN all four pass, as the official library's validate() does
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        for sig in [DOCS_SIG, DOCS_SIG_WITH_PORT] {
            for at_url in [DOCS_URL, with_port] {
                assert!(
                    check(DOCS_BODY, &signed(sig), at_url).is_ok(),
                    "{sig} {at_url}"
                );
            }
        }
        // The portless spelling drops any port, as the official library's remove_port does:
        // the host, path and query stay signed, the port never was a boundary.
        let other = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(check(DOCS_BODY, &signed(DOCS_SIG), other).is_ok());
        assert_eq!(
            check(DOCS_BODY, &signed(DOCS_SIG_WITH_PORT), other),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn everything_signed_is_checked() {
        // The URL's path and query, each parameter, and the algorithm are all covered.
        let cases: [(&[u8], &str, &str); 4] = [
            (
                DOCS_BODY,
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                DOCS_SIG,
            ),
            (DOCS_BODY, "https://mycompany.com/myapp.php", DOCS_SIG),
            (
                DOCS_BODY,
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                DOCS_SIG,
            ),
            (&DOCS_BODY[..DOCS_BODY.len() - 1], DOCS_URL, DOCS_SIG),
        ];
        for (body, at_url, sig) in cases {
            assert_eq!(
                check(body, &signed(sig), at_url),
                Err(VerifyError::SignatureMismatch),
                "{at_url}"
            );
        }
        // Parameter order in the body does not matter: Twilio sorts before signing.
        let reordered = b"To=%2B18005551212&From=%2B12349013030&Digits=1234&Caller=%2B12349013030&CallSid=CA1234567890ABCDE";
        assert!(check(reordered, &signed(DOCS_SIG), DOCS_URL).is_ok());
    }

    #[test]
    fn a_json_body_must_match_its_signed_hash() {
        // GIVEN the URL carries the signed hash of the body
        let json_url = format!("{URL}?bodySHA256={JSON_HASH}");
        // WHEN the body is changed, or the hash is spelled in capitals
        // THEN verification fails even though the URL's signature is right
        assert_eq!(
            check(
                br#"{"property": "value", "boolean": false}"#,
                &signed(JSON_SIG),
                &json_url
            ),
            Err(VerifyError::SignatureMismatch)
        );
        let upper = format!("{URL}?bodySHA256={}", JSON_HASH.to_uppercase());
        assert_eq!(
            check(JSON_BODY, &signed(JSON_SIG), &upper),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn bad_signatures_and_settings_are_refused() {
        let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        for value in [
            DOCS_SIG.trim_end_matches('='),
            &DOCS_SIG[..20],
            "sha1=0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
            MESSY_SIG_SHA256,
        ] {
            assert_eq!(
                &check(DOCS_BODY, &signed(value), DOCS_URL),
                &malformed,
                "{value}"
            );
        }
        let unknown = headers(&[
            ("X-Twilio-Signature", DOCS_SIG),
            ("X-Twilio-Webhooks-Signature-Settings", "algorithm=HMAC_MD5"),
        ]);
        assert_eq!(
            check(DOCS_BODY, &unknown, DOCS_URL),
            Err(VerifyError::NoSupportedSignature(SETTINGS_HEADER.into()))
        );
        let doubled = headers(&[
            ("X-Twilio-Signature", DOCS_SIG),
            (
                "X-Twilio-Webhooks-Signature-Settings",
                "algorithm=HMAC_SHA1",
            ),
            (
                "X-Twilio-Webhooks-Signature-Settings",
                "algorithm=HMAC_SHA256",
            ),
        ]);
        assert_eq!(
            check(DOCS_BODY, &doubled, DOCS_URL),
            Err(VerifyError::MalformedHeader(SETTINGS_HEADER.into()))
        );
    }

    #[test]
    fn without_a_url_the_scheme_cannot_verify() {
        // GIVEN a caller that did not pass the URL
        let err = verifier(Scheme::Twilio)
            .verify(DOCS_BODY, &signed(DOCS_SIG), &secrets(TOKEN), at(1))
            .expect_err("no URL");
        // THEN it is our wiring that is wrong, not the sender
        assert_eq!(err, VerifyError::MissingContext(URL_CONTEXT));
        assert!(err.is_configuration_error());
    }

    #[test]
    fn the_secondary_token_verifies_during_rotation() {
        // GIVEN the auth token was rotated and the old one is kept until t=100
        let rotated = SecretSet {
            current: Secret::new("new-token"),
            previous: Some(crate::secret::PreviousSecret {
                secret: Secret::new(TOKEN),
                expires_at: at(100),
            }),
        };
        let u = url(DOCS_URL);
        let context = VerifyContext {
            url: Some(&u),
            ..VerifyContext::default()
        };
        let v = verifier(Scheme::Twilio);
        let ok = v
            .verify_with(DOCS_BODY, &signed(DOCS_SIG), &rotated, &context, at(1))
            .expect("previous token");
        assert_eq!(ok.secret, SecretSlot::Previous);
        assert_eq!(
            v.verify_with(DOCS_BODY, &signed(DOCS_SIG), &rotated, &context, at(100)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn the_idempotency_token_is_reported() {
        let mut h = signed(DOCS_SIG);
        h.insert(
            IDEMPOTENCY_HEADER,
            http::HeaderValue::from_static("AC0123-1700000000-abcd"),
        );
        let ok = check(DOCS_BODY, &h, DOCS_URL).expect("valid");
        assert_eq!(ok.event_id.as_deref(), Some("AC0123-1700000000-abcd"));
    }

    #[test]
    fn sign_reproduces_the_official_vectors() {
        let token = Secret::new(TOKEN);
        assert_eq!(sign(&url(DOCS_URL), DOCS_BODY, &token)[0].1, DOCS_SIG);
        let json_url = url(URL).with_body_sha256(JSON_BODY);
        assert_eq!(json_url.as_str(), format!("{URL}?bodySHA256={JSON_HASH}"));
        assert_eq!(sign(&json_url, JSON_BODY, &token)[0].1, JSON_SIG);
    }

    #[test]
    fn common_battery() {
        let u = url(URL);
        let context = VerifyContext {
            url: Some(&u),
            ..VerifyContext::default()
        };
        common_battery_in(Scheme::Twilio, TOKEN, "another-token", &context);
    }

    #[test]
    fn urls_are_taken_as_given_or_refused() {
        assert_eq!(
            RequestUrl::https(
                "hooks.example.com",
                "/webhooks/acme/twilio",
                Some("a=1&b=%20")
            )
            .expect("url")
            .as_str(),
            "https://hooks.example.com/webhooks/acme/twilio?a=1&b=%20"
        );
        assert_eq!(
            RequestUrl::https("hooks.example.com:8443", "/x", Some(""))
                .expect("url")
                .as_str(),
            "https://hooks.example.com:8443/x"
        );
        assert_eq!(url("https://h.example/p?").as_str(), "https://h.example/p");
        for (bad, why) in [
            ("ftp://h.example/p", InvalidUrl::Scheme),
            ("h.example/p", InvalidUrl::Scheme),
            ("https://user@h.example/p", InvalidUrl::Authority),
            ("https://h.example:443x/p", InvalidUrl::Authority),
            ("https://[::1]/p", InvalidUrl::Authority),
            ("https:///p", InvalidUrl::Authority),
            ("https://h.example/p#frag", InvalidUrl::PathOrQuery),
            ("https://h.example/a b", InvalidUrl::PathOrQuery),
        ] {
            assert_eq!(RequestUrl::parse(bad), Err(why), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn no_url_header_or_body_makes_it_panic(
            path in "[ -~]{0,40}",
            sig in "[ -~]{0,40}",
            settings in "[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let h = headers(&[
                ("x-twilio-signature", &sig),
                ("x-twilio-webhooks-signature-settings", &settings),
            ]);
            if let Ok(u) = RequestUrl::parse(&format!("https://h.example{path}")) {
                let context = VerifyContext { url: Some(&u), ..VerifyContext::default() };
                let _ = verifier(Scheme::Twilio).verify_with(&body, &h, &secrets(TOKEN), &context, at(1));
            }
        }
    }
}
