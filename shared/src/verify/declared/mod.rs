//! Providers declared, not coded. Most providers sign the same way with small differences: which
//! header, which hash, hex or base64, a prefix, what is signed in which order, where a timestamp
//! is. A [`Declaration`] says exactly that, and one engine verifies, signs (for tests and the
//! CLI's samples) and reads the event's id, type and time for all of them. Adding such a provider
//! is a declaration in [`catalog`] and its test vectors, and the README's table of providers is
//! generated from the same declarations ([`catalog::markdown_table`]).
//!
//! What a declaration cannot say keeps a module of its own: Stripe, Standard Webhooks, Slack,
//! Twilio (URL and sorted form fields), Circle (keys by id), PayPal (a certificate by URL).
//!
//! The engine keeps the rules every scheme keeps: raw bytes, constant-time comparison, strict
//! decoding (one case of hex, padded base64, exact lengths), every presented signature tried
//! against every active secret, a replay window wherever a timestamp is signed, and errors that
//! name headers, never values.

pub mod catalog;
mod handshake;
mod parts;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use std::{
    cmp::Ordering,
    hash::{Hash, Hasher},
    time::SystemTime,
};

use http::HeaderMap;
use serde_json::Value;

pub use handshake::{Handshake, HandshakeAnswer, HandshakeRequest, meta_verify_token};
pub use parts::TimeUnit;

use super::{Verified, VerifyContext, VerifyError, Window, optional_header, standard};
use crate::secret::{Secret, SecretSet};

/// One provider's webhook contract, as data.
#[derive(Debug)]
pub struct Declaration {
    /// The route segment: `/webhooks/{tenant}/{name}`.
    pub name: &'static str,
    /// The provider's own name, for people.
    pub title: &'static str,
    /// Where the provider documents its signature.
    pub docs: &'static str,
    pub auth: Auth,
    /// Where the event id is; deduplication keys on it.
    pub id: IdFrom,
    pub event_type: Field,
    /// When the provider says the event happened; orders projections.
    pub created_at: TimeField,
    /// A check the provider makes before (or besides) sending events.
    pub handshake: Option<Handshake>,
}

// Two declarations are the same provider when they have the same route name.
impl PartialEq for Declaration {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Declaration {}
impl Hash for Declaration {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}
impl PartialOrd for Declaration {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Declaration {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name.cmp(other.name)
    }
}

/// How a delivery proves where it comes from.
#[derive(Debug)]
pub enum Auth {
    /// A MAC or signature over parts of the request.
    Signed(Signature),
    /// A header whose whole value is the shared secret (GitLab, Telegram, Okta). It signs
    /// nothing, so the body is deduplicated on its content.
    Token { header: &'static str },
    /// HTTP Basic authentication; the secret is `user:password` (Postmark, Chargebee).
    Basic,
    /// Every notification's `clientState` in the body is the secret (Microsoft Graph).
    ClientState,
    /// Standard Webhooks headers and signature (OpenAI, Replicate, ...).
    StandardWebhooks,
}

/// A signature: what algorithm, where it travels, how it is written, and what it covers.
#[derive(Debug)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub carrier: Carrier,
    pub encoding: Encoding,
    /// The signed bytes, in order.
    pub signed: &'static [Part],
    /// Where the signed timestamp is, when there is one: a delivery outside the replay window
    /// is refused.
    pub timestamp: Option<Stamp>,
}

/// The signing algorithm. HMACs are keyed with the secret's bytes as the provider shows them;
/// the asymmetric ones take the provider's public key as the "secret".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    /// The secret is the 32-byte public key in hex (Discord's application public key).
    Ed25519,
    /// ECDSA P-256 with SHA-256, DER signatures; the secret is the base64 DER public key
    /// (SendGrid's verification key).
    EcdsaP256,
}

/// Where the signature travels.
#[derive(Debug)]
pub enum Carrier {
    /// One header, optionally behind a prefix such as `sha256=`.
    Header {
        name: &'static str,
        prefix: &'static str,
    },
    /// One header per sender key (DocuSign's `-1`, `-2`, ...); any may match.
    Headers { names: &'static [&'static str] },
    /// `key=value` fields in one header (`t=..,v1=..`), the signature under `key`, possibly
    /// several times during the sender's rotation.
    Fields {
        header: &'static str,
        separator: char,
        key: &'static str,
    },
    /// A string field of the JSON body (Mailgun's `signature.signature`).
    Body { pointer: &'static str },
}

/// How the signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase hex only.
    Hex,
    /// Standard, padded base64.
    Base64,
}

/// One piece of signed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The raw body.
    Body,
    /// The timestamp exactly as sent.
    Timestamp,
    /// The id header exactly as sent ([`IdFrom::Header`]).
    Id,
    /// The URL the provider called (`VerifyContext::url`).
    Url,
    /// That URL with the escapes HubSpot decodes before signing (`%3A` `%2F` `%3F` `%40` `%21`
    /// `%24` `%27` `%28` `%29` `%2A` `%2C` `%3B`) decoded, and no others.
    UrlHubSpotDecoded,
    /// Fixed text such as a version tag or a separator.
    Text(&'static str),
    /// A string field of the JSON body.
    BodyField(&'static str),
}

/// Where the signed timestamp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Header {
        name: &'static str,
        unit: TimeUnit,
    },
    /// A field of the [`Carrier::Fields`] header.
    Field {
        key: &'static str,
        unit: TimeUnit,
    },
    /// A field of the JSON body (signed with it).
    Body {
        pointer: &'static str,
        unit: TimeUnit,
    },
}

/// Where the event id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFrom {
    /// A header; `signed` when the signature covers it.
    Header { name: &'static str, signed: bool },
    /// A JSON pointer into the body (a string or a number).
    Body(&'static str),
    /// No id is sent: the hex SHA-256 of the body. A provider's retry carries the same bytes.
    BodyHash,
}

/// Where a piece of metadata is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    None,
    Header(&'static str),
    /// A JSON pointer into the body (a string or a number).
    Body(&'static str),
}

/// Where the event's time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    None,
    Header(&'static str, TimeUnit),
    Body(&'static str, TimeUnit),
    /// The signed timestamp.
    Signed,
}

impl Declaration {
    /// The signature header, if any: tells an unsigned delivery from a badly signed one.
    pub fn is_signed(&self, headers: &HeaderMap) -> bool {
        match &self.auth {
            Auth::Signed(signature) => match &signature.carrier {
                Carrier::Header { name, .. } | Carrier::Fields { header: name, .. } => {
                    headers.contains_key(*name)
                }
                Carrier::Headers { names } => names.iter().any(|n| headers.contains_key(*n)),
                // A body field cannot be looked at before the body is parsed: always verified.
                Carrier::Body { .. } => true,
            },
            Auth::Token { header } => headers.contains_key(*header),
            Auth::Basic => headers.contains_key(http::header::AUTHORIZATION),
            Auth::ClientState => true,
            Auth::StandardWebhooks => {
                headers.contains_key("webhook-signature") || headers.contains_key("svix-signature")
            }
        }
    }

    /// Whether the authentication covers the body: where it does not (tokens, Basic, Mailgun's
    /// signature of a timestamp and token), the ingress deduplicates on the content too.
    pub fn covers_body(&self) -> bool {
        match &self.auth {
            Auth::Signed(signature) => signature.signed.contains(&Part::Body),
            Auth::StandardWebhooks | Auth::ClientState => true,
            Auth::Token { .. } | Auth::Basic => false,
        }
    }

    /// Whether the event id is covered by the authentication, so a captured delivery cannot be
    /// replayed under a fresh id.
    pub fn id_signed(&self) -> bool {
        match self.id {
            IdFrom::Body(_) | IdFrom::BodyHash => self.covers_body(),
            IdFrom::Header { signed, .. } => signed,
        }
    }

    /// Whether the engine can sign a delivery with the tenant's secret (see
    /// [`super::Scheme::signs_from_secret`]).
    pub fn signs_from_secret(&self) -> bool {
        match &self.auth {
            Auth::Signed(signature) => {
                !self.verifies_with_a_public_key()
                    && !matches!(signature.carrier, Carrier::Body { .. })
                    && !matches!(signature.timestamp, Some(Stamp::Body { .. }))
            }
            Auth::ClientState => false,
            _ => true,
        }
    }

    /// Whether the signature covers the URL the provider called.
    pub fn signs_the_url(&self) -> bool {
        matches!(&self.auth, Auth::Signed(s)
            if s.signed.iter().any(|p| matches!(p, Part::Url | Part::UrlHubSpotDecoded)))
    }

    /// Whether the tenant's "secret" is the provider's public key.
    pub fn verifies_with_a_public_key(&self) -> bool {
        matches!(&self.auth, Auth::Signed(s)
            if matches!(s.algorithm, Algorithm::Ed25519 | Algorithm::EcdsaP256))
    }

    pub(crate) fn verify(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        secrets: &SecretSet,
        context: &VerifyContext<'_>,
        window: Window,
    ) -> Result<Verified, VerifyError> {
        let secret = match &self.auth {
            Auth::Signed(signature) => {
                return parts::verify_signature(
                    self, signature, body, headers, secrets, context, window,
                );
            }
            Auth::StandardWebhooks => return standard::verify(body, headers, secrets, window),
            Auth::Token { header } => {
                let presented = super::single_header(headers, header)?;
                parts::match_token(secrets, window.now, presented.as_bytes())?
            }
            Auth::Basic => parts::match_basic(headers, secrets, window.now)?,
            Auth::ClientState => parts::match_client_state(body, secrets, window.now)?,
        };
        Ok(Verified {
            secret,
            key_id: None,
            event_id: self.header_id(headers),
            event_type: self.header_type(headers),
            signed_at: None,
        })
    }

    /// The headers this provider would send for `body`, for tests and the CLI's samples.
    /// Signatures inside the body (Mailgun) and Graph's client state cannot be made from
    /// headers, and asymmetric keys sign only with the provider's private key.
    pub(crate) fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        at: SystemTime,
        id: &str,
        context: &VerifyContext<'_>,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        let mut headers = match &self.auth {
            Auth::Signed(signature) => parts::sign(self, signature, body, secret, at, id, context)?,
            Auth::StandardWebhooks => standard::sign(body, secret, at, id)?,
            Auth::Token { header } => vec![((*header).to_owned(), secret.expose().to_owned())],
            Auth::Basic => vec![("authorization".to_owned(), parts::basic(secret))],
            Auth::ClientState => Err(VerifyError::UnusableSecret(
                "the client state travels in the body; put it in each notification",
            ))?,
        };
        if let IdFrom::Header { name, .. } = self.id
            && !headers.iter().any(|(n, _)| n == name)
        {
            headers.push((name.to_owned(), id.to_owned()));
        }
        if let Field::Header(name) = self.event_type {
            headers.push((name.to_owned(), "test.sample".to_owned()));
        }
        Ok(headers)
    }

    /// Whether `secret` can verify this provider's deliveries: a public key must parse, a
    /// Basic secret must be `user:password`, any other must not be empty.
    pub(crate) fn check_secret(&self, secret: &Secret) -> Result<(), VerifyError> {
        match &self.auth {
            Auth::Signed(signature) => parts::check_key(signature.algorithm, secret),
            Auth::StandardWebhooks => standard::check_secret(secret),
            Auth::Basic if !secret.expose().contains(':') => Err(VerifyError::UnusableSecret(
                "a Basic authentication secret is user:password",
            )),
            _ if secret.expose().is_empty() => {
                Err(VerifyError::UnusableSecret("the secret is empty"))
            }
            _ => Ok(()),
        }
    }

    /// A small event in the provider's shape, with `id`, a type and `now` where the
    /// declaration reads them, for the CLI's samples and the tests.
    pub fn sample_payload(&self, id: &str, now: SystemTime) -> Vec<u8> {
        let mut body = serde_json::json!({});
        if let IdFrom::Body(pointer) = self.id {
            set_pointer(&mut body, pointer, Value::String(id.to_owned()));
        }
        if let Field::Body(pointer) = self.event_type {
            set_pointer(&mut body, pointer, Value::String("hookctl.ping".to_owned()));
        }
        if let TimeField::Body(pointer, unit) = self.created_at {
            set_pointer(&mut body, pointer, Value::String(unit.format(now)));
        }
        body.to_string().into_bytes()
    }

    fn header_id(&self, headers: &HeaderMap) -> Option<String> {
        match self.id {
            IdFrom::Header { name, .. } => optional_header(headers, name),
            _ => None,
        }
    }

    fn header_type(&self, headers: &HeaderMap) -> Option<String> {
        match self.event_type {
            Field::Header(name) => optional_header(headers, name),
            _ => None,
        }
    }
}

/// A JSON value as metadata text: strings as they are, numbers in their decimal form.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Set `value` at a JSON pointer, creating objects (or arrays, for numeric segments) on the way.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let mut here = root;
    let segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next = if last { value.clone() } else { Value::Null };
        if let Ok(index) = segment.parse::<usize>() {
            if !here.is_array() {
                *here = Value::Array(Vec::new());
            }
            let Some(items) = here.as_array_mut() else {
                return;
            };
            while items.len() <= index {
                items.push(Value::Null);
            }
            if last || items[index].is_null() {
                items[index] = next;
            }
            here = &mut items[index];
        } else {
            if !here.is_object() {
                *here = Value::Object(serde_json::Map::new());
            }
            let Some(object) = here.as_object_mut() else {
                return;
            };
            let slot = object.entry((*segment).to_owned()).or_insert(Value::Null);
            if last || slot.is_null() {
                *slot = next;
            }
            here = slot;
        }
    }
}
