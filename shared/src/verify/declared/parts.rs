//! The declared engine's moving parts: reading presented signatures and timestamps, building the
//! signed content, and matching it against the tenant's active secrets in constant time.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, ParsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{Algorithm, Carrier, Declaration, Encoding, IdFrom, Part, Signature, Stamp, text_of};
use crate::{
    secret::{Secret, SecretSet, SecretSlot},
    verify::{Verified, VerifyContext, VerifyError, Window, single_header},
};

/// At most this many signatures are tried from one delivery: a sender rotating keys sends two
/// or three, and a flood of them would only cost us work.
const MAX_PRESENTED: usize = 8;

/// What a declaration that signs the URL needs from the caller.
const URL_CONTEXT: &str = "the URL the provider requested";

/// A DER ECDSA P-256 signature is at most 72 bytes.
const MAX_DER_SIGNATURE: usize = 72;

/// How a timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Decimal Unix seconds.
    Secs,
    /// Decimal Unix milliseconds.
    Millis,
    /// RFC 3339 (fractions of a second allowed).
    Rfc3339,
}

impl TimeUnit {
    /// Read a timestamp as sent; `None` when it is not one (or is beyond year 9999).
    pub fn parse(self, raw: &str) -> Option<SystemTime> {
        let digits = || {
            (!raw.is_empty() && raw.len() <= 16 && raw.bytes().all(|b| b.is_ascii_digit()))
                .then(|| raw.parse::<u64>().ok())
                .flatten()
        };
        let at = match self {
            Self::Secs => SystemTime::UNIX_EPOCH + Duration::from_secs(digits()?),
            Self::Millis => SystemTime::UNIX_EPOCH + Duration::from_millis(digits()?),
            Self::Rfc3339 => OffsetDateTime::parse(raw, &Rfc3339).ok()?.into(),
        };
        let latest = SystemTime::UNIX_EPOCH + crate::extract::LATEST_EVENT_TIME;
        (at <= latest).then_some(at)
    }

    /// Write `at` as a provider would.
    pub(crate) fn format(self, at: SystemTime) -> String {
        match self {
            Self::Secs => crate::clock::unix_secs(at).to_string(),
            Self::Millis => crate::clock::unix_millis(at).to_string(),
            Self::Rfc3339 => crate::clock::rfc3339(at),
        }
    }
}

/// The request as the engine reads it: headers, raw body, and the body as JSON when a
/// declaration signs or carries body fields.
struct Request<'a> {
    body: &'a [u8],
    headers: &'a HeaderMap,
    json: Option<Value>,
}

impl<'a> Request<'a> {
    fn new(signature: &Signature, body: &'a [u8], headers: &'a HeaderMap) -> Self {
        let reads_body = matches!(signature.carrier, Carrier::Body { .. })
            || matches!(signature.timestamp, Some(Stamp::Body { .. }))
            || signature
                .signed
                .iter()
                .any(|p| matches!(p, Part::BodyField(_)));
        Self {
            body,
            headers,
            json: reads_body
                .then(|| serde_json::from_slice(body).ok())
                .flatten(),
        }
    }

    /// A string (or number) field of the body; its absence is named like a missing header.
    fn body_field(&self, pointer: &str) -> Result<String, VerifyError> {
        self.json
            .as_ref()
            .and_then(|json| json.pointer(pointer))
            .and_then(text_of)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| VerifyError::MissingHeader(format!("body field {pointer}")))
    }

    /// The `key=value` fields of a [`Carrier::Fields`] header.
    fn fields(
        &self,
        header: &str,
        separator: char,
    ) -> Result<Vec<(&'a str, &'a str)>, VerifyError> {
        single_header(self.headers, header)?
            .split(separator)
            .map(|item| {
                item.trim()
                    .split_once('=')
                    .ok_or_else(|| VerifyError::MalformedHeader(header.to_owned()))
            })
            .collect()
    }
}

pub(super) fn verify_signature(
    declaration: &Declaration,
    signature: &Signature,
    body: &[u8],
    headers: &HeaderMap,
    secrets: &SecretSet,
    context: &VerifyContext<'_>,
    window: Window,
) -> Result<Verified, VerifyError> {
    let request = Request::new(signature, body, headers);
    let presented = presented(signature, &request)?;
    let timestamp = timestamp(signature, &request)?;
    let content = content(
        declaration,
        signature,
        &request,
        timestamp.as_ref().map(|t| t.0.as_str()),
        context,
    )?;
    let secret = match_signature(
        signature.algorithm,
        secrets,
        window.now,
        &content,
        &presented,
    )?;
    let signed_at = timestamp.map(|(_, at)| at);
    if let Some(at) = signed_at {
        window.check(at)?;
    }
    Ok(Verified {
        secret,
        key_id: None,
        event_id: declaration.header_id(headers),
        event_type: declaration.header_type(headers),
        signed_at,
    })
}

/// The signatures the delivery presents, decoded strictly.
fn presented(signature: &Signature, request: &Request<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let (texts, named): (Vec<Cow<'_, str>>, String) = match &signature.carrier {
        Carrier::Header { name, prefix } => {
            let value = single_header(request.headers, name)?;
            let text = value
                .strip_prefix(prefix)
                .ok_or_else(|| VerifyError::NoSupportedSignature((*name).to_owned()))?;
            (vec![Cow::Borrowed(text)], (*name).to_owned())
        }
        Carrier::Headers { names } => {
            let mut texts = Vec::new();
            for name in *names {
                if request.headers.contains_key(*name) {
                    texts.push(Cow::Borrowed(single_header(request.headers, name)?));
                }
            }
            let first = names.first().copied().unwrap_or_default();
            if texts.is_empty() {
                return Err(VerifyError::MissingHeader(first.to_owned()));
            }
            (texts, first.to_owned())
        }
        Carrier::Fields {
            header,
            separator,
            key,
        } => {
            let texts: Vec<_> = request
                .fields(header, *separator)?
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| Cow::Borrowed(v))
                .collect();
            if texts.is_empty() {
                return Err(VerifyError::NoSupportedSignature((*header).to_owned()));
            }
            (texts, (*header).to_owned())
        }
        Carrier::Body { pointer } => (
            vec![Cow::Owned(request.body_field(pointer)?)],
            format!("body field {pointer}"),
        ),
    };
    if texts.len() > MAX_PRESENTED {
        return Err(VerifyError::MalformedHeader(named));
    }
    let decoded = texts
        .iter()
        .map(|text| decode(signature.algorithm, signature.encoding, text));
    if matches!(signature.carrier, Carrier::Fields { .. }) {
        // Several signatures in one header (a rotation, or a version we do not read): those
        // that do not decode are passed over, as the providers' own libraries do.
        let readable: Vec<_> = decoded.flatten().collect();
        return (!readable.is_empty())
            .then_some(readable)
            .ok_or(VerifyError::MalformedHeader(named));
    }
    decoded
        .collect::<Option<Vec<_>>>()
        .ok_or(VerifyError::MalformedHeader(named))
}

/// Strict decoding: lowercase hex or padded standard base64, of the algorithm's exact length.
fn decode(algorithm: Algorithm, encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    let bytes = match encoding {
        Encoding::Hex => {
            let lower = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !lower {
                return None;
            }
            hex::decode(text).ok()?
        }
        Encoding::Base64 => STANDARD.decode(text).ok()?,
    };
    let fits = match algorithm {
        Algorithm::HmacSha1 => bytes.len() == 20,
        Algorithm::HmacSha256 => bytes.len() == 32,
        Algorithm::Ed25519 => bytes.len() == 64,
        Algorithm::EcdsaP256 => (8..=MAX_DER_SIGNATURE).contains(&bytes.len()),
    };
    fits.then_some(bytes)
}

/// The signed timestamp as sent, and as a time.
fn timestamp(
    signature: &Signature,
    request: &Request<'_>,
) -> Result<Option<(String, SystemTime)>, VerifyError> {
    let Some(stamp) = signature.timestamp else {
        return Ok(None);
    };
    let (raw, unit, named) = match stamp {
        Stamp::Header { name, unit } => (
            single_header(request.headers, name)?.to_owned(),
            unit,
            name.to_owned(),
        ),
        Stamp::Field { key, unit } => {
            let Carrier::Fields {
                header, separator, ..
            } = signature.carrier
            else {
                return Err(VerifyError::MissingContext(
                    "a fields header for the timestamp",
                ));
            };
            let mut values = request
                .fields(header, separator)?
                .into_iter()
                .filter(|(k, _)| *k == key);
            let raw = values
                .next()
                .ok_or_else(|| VerifyError::MalformedHeader(header.to_owned()))?;
            if values.next().is_some() {
                return Err(VerifyError::MalformedHeader(header.to_owned()));
            }
            (raw.1.to_owned(), unit, header.to_owned())
        }
        Stamp::Body { pointer, unit } => (
            request.body_field(pointer)?,
            unit,
            format!("body field {pointer}"),
        ),
    };
    let at = unit
        .parse(&raw)
        .ok_or(VerifyError::MalformedHeader(named))?;
    Ok(Some((raw, at)))
}

/// The signed content, part by part, borrowed where it can be.
fn content<'r>(
    declaration: &Declaration,
    signature: &Signature,
    request: &'r Request<'_>,
    timestamp: Option<&str>,
    context: &VerifyContext<'_>,
) -> Result<Vec<Cow<'r, [u8]>>, VerifyError> {
    signature
        .signed
        .iter()
        .map(|part| {
            Ok(match part {
                Part::Body => Cow::Borrowed(request.body),
                Part::Text(text) => Cow::Borrowed(text.as_bytes()),
                Part::Timestamp => Cow::Owned(
                    timestamp
                        .ok_or(VerifyError::MissingContext("a declared timestamp"))?
                        .as_bytes()
                        .to_vec(),
                ),
                Part::Id => match declaration.id {
                    IdFrom::Header { name, .. } => {
                        Cow::Borrowed(single_header(request.headers, name)?.as_bytes())
                    }
                    _ => return Err(VerifyError::MissingContext("a declared id header")),
                },
                Part::Url => Cow::Owned(
                    context
                        .url
                        .ok_or(VerifyError::MissingContext(URL_CONTEXT))?
                        .as_str()
                        .as_bytes()
                        .to_vec(),
                ),
                Part::UrlHubSpotDecoded => Cow::Owned(
                    hubspot_decoded(
                        context
                            .url
                            .ok_or(VerifyError::MissingContext(URL_CONTEXT))?
                            .as_str(),
                    )
                    .into_bytes(),
                ),
                Part::BodyField(pointer) => Cow::Owned(request.body_field(pointer)?.into_bytes()),
            })
        })
        .collect()
}

/// HubSpot's v3 signature covers the URI with a fixed set of escapes decoded (its docs' list),
/// each in either case of hex; every other escape stays as sent.
fn hubspot_decoded(url: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3).map(str::to_ascii_uppercase);
        match escape.and_then(|e| DECODED.iter().find(|(code, _)| *code == e)) {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The slot of the active secret (or public key) whose signature is among `presented`.
fn match_signature(
    algorithm: Algorithm,
    secrets: &SecretSet,
    now: SystemTime,
    content: &[Cow<'_, [u8]>],
    presented: &[Vec<u8>],
) -> Result<SecretSlot, VerifyError> {
    for (slot, secret) in secrets.active(now) {
        let matched = match algorithm {
            Algorithm::HmacSha1 | Algorithm::HmacSha256 => {
                let want = mac(algorithm, secret.expose().as_bytes(), content);
                let mut found = subtle::Choice::from(0);
                for candidate in presented {
                    found |= want.as_slice().ct_eq(candidate);
                }
                bool::from(found)
            }
            Algorithm::Ed25519 | Algorithm::EcdsaP256 => {
                let key = public_key(algorithm, secret)?;
                let message = content.concat();
                presented
                    .iter()
                    .any(|candidate| key.verify_sig(&message, candidate).is_ok())
            }
        };
        if matched {
            return Ok(slot);
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// HMAC of the concatenated parts, never copied into one buffer.
fn mac(algorithm: Algorithm, key: &[u8], content: &[Cow<'_, [u8]>]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], content: &[Cow<'_, [u8]>]) -> Vec<u8> {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for part in content {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::HmacSha1 => run::<Hmac<Sha1>>(key, content),
        _ => run::<Hmac<Sha256>>(key, content),
    }
}

/// The provider's public key from the tenant's "secret".
fn public_key(algorithm: Algorithm, secret: &Secret) -> Result<ParsedPublicKey, VerifyError> {
    let text = secret.expose().trim();
    match algorithm {
        Algorithm::Ed25519 => hex::decode(text)
            .ok()
            .filter(|key| key.len() == 32)
            .and_then(|key| ParsedPublicKey::new(&ED25519, key).ok())
            .ok_or(VerifyError::UnusableSecret(
                "expected the 32-byte Ed25519 public key in hex",
            )),
        _ => STANDARD
            .decode(text)
            .ok()
            .and_then(|der| ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).ok())
            .ok_or(VerifyError::UnusableSecret(
                "expected the base64 DER of a P-256 public key",
            )),
    }
}

pub(super) fn check_key(algorithm: Algorithm, secret: &Secret) -> Result<(), VerifyError> {
    match algorithm {
        Algorithm::Ed25519 | Algorithm::EcdsaP256 => public_key(algorithm, secret).map(drop),
        _ if secret.expose().is_empty() => Err(VerifyError::UnusableSecret("the secret is empty")),
        _ => Ok(()),
    }
}

pub(super) fn sign(
    declaration: &Declaration,
    signature: &Signature,
    body: &[u8],
    secret: &Secret,
    at: SystemTime,
    id: &str,
    context: &VerifyContext<'_>,
) -> Result<Vec<(String, String)>, VerifyError> {
    if matches!(
        signature.algorithm,
        Algorithm::Ed25519 | Algorithm::EcdsaP256
    ) {
        return Err(VerifyError::UnusableSecret(
            "the provider signs with its private key; this secret is its public key",
        ));
    }
    if matches!(signature.carrier, Carrier::Body { .. })
        || matches!(signature.timestamp, Some(Stamp::Body { .. }))
    {
        return Err(VerifyError::UnusableSecret(
            "the provider signs inside the body; build the body with its signature",
        ));
    }
    let stamp_text = signature.timestamp.map(|stamp| match stamp {
        Stamp::Header { unit, .. } | Stamp::Field { unit, .. } | Stamp::Body { unit, .. } => {
            unit.format(at)
        }
    });
    let mut headers: Vec<(String, String)> = Vec::new();
    if let IdFrom::Header { name, .. } = declaration.id {
        headers.push((name.to_owned(), id.to_owned()));
    }
    if let Some(Stamp::Header { name, .. }) = signature.timestamp
        && let Some(text) = &stamp_text
    {
        headers.push((name.to_owned(), text.clone()));
    }
    let map: HeaderMap = headers
        .iter()
        .filter_map(|(n, v)| Some((n.parse().ok()?, v.parse().ok()?)))
        .collect();
    let request = Request {
        body,
        headers: &map,
        json: serde_json::from_slice(body).ok(),
    };
    let content = content(
        declaration,
        signature,
        &request,
        stamp_text.as_deref(),
        context,
    )?;
    let tag = mac(signature.algorithm, secret.expose().as_bytes(), &content);
    let text = match signature.encoding {
        Encoding::Hex => hex::encode(tag),
        Encoding::Base64 => STANDARD.encode(tag),
    };
    match &signature.carrier {
        Carrier::Header { name, prefix } => {
            headers.push(((*name).to_owned(), format!("{prefix}{text}")))
        }
        Carrier::Headers { names } => {
            let name = names.first().copied().unwrap_or_default();
            headers.push((name.to_owned(), text));
        }
        Carrier::Fields {
            header,
            separator,
            key,
        } => {
            let value = match (signature.timestamp, &stamp_text) {
                (Some(Stamp::Field { key: ts_key, .. }), Some(ts)) => {
                    format!("{ts_key}={ts}{separator}{key}={text}")
                }
                _ => format!("{key}={text}"),
            };
            headers.push(((*header).to_owned(), value));
        }
        Carrier::Body { .. } => unreachable!("refused above"),
    }
    Ok(headers)
}

/// A token compared in constant time, whatever its length: both sides are hashed first.
pub(super) fn match_token(
    secrets: &SecretSet,
    now: SystemTime,
    presented: &[u8],
) -> Result<SecretSlot, VerifyError> {
    let presented = Sha256::digest(presented);
    for (slot, secret) in secrets.active(now) {
        let want = Sha256::digest(secret.expose().as_bytes());
        if bool::from(want.as_slice().ct_eq(presented.as_slice())) {
            return Ok(slot);
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// `Authorization: Basic base64(user:password)`, the scheme word in any case (RFC 7617).
pub(super) fn match_basic(
    headers: &HeaderMap,
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<SecretSlot, VerifyError> {
    const NAME: &str = "authorization";
    let value = single_header(headers, NAME)?;
    let malformed = || VerifyError::MalformedHeader(NAME.to_owned());
    let (scheme, credentials) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::NoSupportedSignature(NAME.to_owned()));
    }
    let decoded = STANDARD
        .decode(credentials.trim())
        .map_err(|_| malformed())?;
    match_token(secrets, now, &decoded)
}

pub(super) fn basic(secret: &Secret) -> String {
    format!("Basic {}", STANDARD.encode(secret.expose()))
}

/// Microsoft Graph: every notification in `value` carries the client state the subscription
/// was created with, and all of them must be the same active secret.
pub(super) fn match_client_state(
    body: &[u8],
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<SecretSlot, VerifyError> {
    const FIELD: &str = "body field value[].clientState";
    let json: Value =
        serde_json::from_slice(body).map_err(|_| VerifyError::MissingHeader(FIELD.to_owned()))?;
    let states = json["value"]
        .as_array()
        .filter(|items| !items.is_empty())
        .and_then(|items| {
            items
                .iter()
                .map(|item| item["clientState"].as_str())
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| VerifyError::MissingHeader(FIELD.to_owned()))?;
    let mut matched = None;
    for state in states {
        let slot = match_token(secrets, now, state.as_bytes())?;
        if matched.is_some_and(|first| first != slot) {
            return Err(VerifyError::SignatureMismatch);
        }
        matched = Some(slot);
    }
    matched.ok_or(VerifyError::SignatureMismatch)
}
