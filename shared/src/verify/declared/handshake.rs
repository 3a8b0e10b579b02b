//! Handshakes: the checks a provider makes before (or besides) sending events, answered exactly
//! as it expects and recorded nowhere.
//!
//! A handshake the provider signs is answered only after its signature verified
//! ([`Handshake::after_auth`]). One it does not sign ([`Handshake::before_auth`]) is answered only
//! for a route the tenant configured, and, where the provider sends one, only for the tenant's
//! verify token: Meta's GET carries the token the tenant entered in Meta's dashboard (derived
//! from the tenant's app secret, see [`meta_verify_token`]), Okta's GET the same `Authorization`
//! header as its events. Echoed values are bounded and printable, so an answer can carry nothing
//! but what the provider sent.

use std::time::SystemTime;

use http::HeaderMap;
use serde_json::{Value, json};

use super::parts;
use crate::{
    secret::{Secret, SecretSet},
    verify::{VerifyError, mac::hmac_sha256},
};

/// The longest value a handshake echoes. Graph's validation tokens are the longest seen, a few
/// hundred characters.
const MAX_ECHO: usize = 2_048;

/// A provider's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Discord: a signed PING (`"type": 1`) is answered `{"type": 1}`.
    DiscordPing,
    /// Zoom: a signed `endpoint.url_validation` is answered with its `plainToken` and that
    /// token's hex HMAC-SHA256 under the secret token (`encryptedToken`).
    ZoomUrlValidation,
    /// Twitch EventSub: a signed `webhook_callback_verification` is answered with its
    /// `challenge`, as text.
    TwitchChallenge,
    /// Meta (Facebook, WhatsApp, Instagram): `GET ?hub.mode=subscribe&hub.verify_token=…&
    /// hub.challenge=…` is answered with the challenge, for the tenant's verify token only.
    MetaSubscribe,
    /// Dropbox: `GET ?challenge=…` is answered with the challenge, as text.
    DropboxChallenge,
    /// Microsoft Graph: a POST with `?validationToken=…` is answered with the token, as text.
    GraphValidation,
    /// Okta event hooks: `GET` with `X-Okta-Verification-Challenge`, carrying the hook's
    /// `Authorization` secret, is answered `{"verification": …}`.
    OktaVerification,
    /// WooCommerce: when a webhook is saved it posts an unsigned form `webhook_id=<n>` and
    /// wants a 200; that exact ping is answered and nothing else.
    WooCommercePing,
    /// Trello: a `HEAD` when a webhook is created, answered 200 with no body.
    TrelloHead,
    /// Slack: a signed `url_verification` is answered with its challenge.
    SlackUrlVerification,
    /// Braintree: `GET ?bt_challenge=<hex>` is answered `<public key>|<HMAC of it>`, which
    /// only the key's holder can compute.
    BraintreeChallenge,
}

/// The parts of a request a handshake looks at.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeRequest<'a> {
    pub method: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What the ingress answers a handshake: 200 with this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeAnswer {
    pub content_type: &'static str,
    pub body: String,
}

impl HandshakeAnswer {
    pub fn json(value: Value) -> Self {
        Self {
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    pub fn text(body: impl Into<String>) -> Self {
        Self {
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

impl Handshake {
    /// A handshake the provider does not sign. `None`: this request is not one (it goes on to
    /// verification); `Some(Err)`: it is one, and it is refused.
    pub fn before_auth(
        self,
        request: &HandshakeRequest<'_>,
        secrets: &SecretSet,
        now: SystemTime,
    ) -> Option<Result<HandshakeAnswer, VerifyError>> {
        let get = request.method.eq_ignore_ascii_case("GET");
        match self {
            Self::MetaSubscribe if get => Some(meta(request, secrets, now)),
            Self::DropboxChallenge if get => {
                let challenge = query_value(request.query, "challenge")?;
                Some(echo(&challenge, "challenge").map(HandshakeAnswer::text))
            }
            Self::GraphValidation => {
                let token = query_value(request.query, "validationToken")?;
                Some(echo(&token, "validationToken").map(HandshakeAnswer::text))
            }
            Self::OktaVerification if get => {
                const HEADER: &str = "x-okta-verification-challenge";
                let challenge = request.headers.get(HEADER)?.to_str().ok()?.to_owned();
                Some(
                    crate::verify::single_header(request.headers, "authorization")
                        .and_then(|token| parts::match_token(secrets, now, token.as_bytes()))
                        .and_then(|_| echo(&challenge, HEADER))
                        .map(|challenge| {
                            HandshakeAnswer::json(json!({ "verification": challenge }))
                        }),
                )
            }
            Self::WooCommercePing
                if !get && request.headers.get("x-wc-webhook-signature").is_none() =>
            {
                let mut fields = form_urlencoded::parse(request.body);
                let ping = matches!(
                    (fields.next(), fields.next()),
                    (Some((name, id)), None)
                        if name == "webhook_id" && !id.is_empty() && id.len() <= 20
                            && id.bytes().all(|b| b.is_ascii_digit())
                );
                ping.then(|| Ok(HandshakeAnswer::text("")))
            }
            Self::TrelloHead if request.method.eq_ignore_ascii_case("HEAD") => {
                Some(Ok(HandshakeAnswer::text("")))
            }
            Self::BraintreeChallenge if get => {
                let challenge = query_value(request.query, "bt_challenge")?;
                Some(
                    crate::verify::braintree::challenge(&secrets.current, &challenge)
                        .map(HandshakeAnswer::text),
                )
            }
            _ => None,
        }
    }

    /// A handshake the provider signs, looked at once the signature verified with `secret`.
    pub fn after_auth(
        self,
        request: &HandshakeRequest<'_>,
        secret: &Secret,
    ) -> Option<HandshakeAnswer> {
        match self {
            Self::DiscordPing => {
                let body: Value = serde_json::from_slice(request.body).ok()?;
                (body["type"].as_u64() == Some(1))
                    .then(|| HandshakeAnswer::json(json!({ "type": 1 })))
            }
            Self::ZoomUrlValidation => {
                let body: Value = serde_json::from_slice(request.body).ok()?;
                if body["event"].as_str() != Some("endpoint.url_validation") {
                    return None;
                }
                let plain = echo(body["payload"]["plainToken"].as_str()?, "plainToken").ok()?;
                let encrypted =
                    hex::encode(hmac_sha256(secret.expose().as_bytes(), &[plain.as_bytes()]));
                Some(HandshakeAnswer::json(
                    json!({ "plainToken": plain, "encryptedToken": encrypted }),
                ))
            }
            Self::TwitchChallenge => {
                let kind = request.headers.get("twitch-eventsub-message-type")?;
                if kind.as_bytes() != b"webhook_callback_verification" {
                    return None;
                }
                let body: Value = serde_json::from_slice(request.body).ok()?;
                let challenge = echo(body["challenge"].as_str()?, "challenge").ok()?;
                Some(HandshakeAnswer::text(challenge))
            }
            Self::SlackUrlVerification => crate::extract::slack_challenge(request.body)
                .map(|challenge| HandshakeAnswer::json(json!({ "challenge": challenge }))),
            _ => None,
        }
    }

    /// What the provider sends and gets, in words, for the README's table.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DiscordPing => "signed PING answered `{\"type\":1}`",
            Self::ZoomUrlValidation => {
                "`endpoint.url_validation` answered with the encrypted token"
            }
            Self::TwitchChallenge => "`webhook_callback_verification` answered with the challenge",
            Self::MetaSubscribe => "`GET hub.challenge` answered for the tenant's verify token",
            Self::DropboxChallenge => "`GET ?challenge=` echoed",
            Self::GraphValidation => "`?validationToken=` echoed",
            Self::OktaVerification => "`GET` verification challenge answered",
            Self::WooCommercePing => "unsigned `webhook_id=` ping answered 200",
            Self::TrelloHead => "`HEAD` answered 200",
            Self::SlackUrlVerification => "signed `url_verification` answered with the challenge",
            Self::BraintreeChallenge => "`GET ?bt_challenge=` answered with the key's HMAC",
        }
    }
}

/// Meta's subscription check: the token must be the tenant's verify token.
fn meta(
    request: &HandshakeRequest<'_>,
    secrets: &SecretSet,
    now: SystemTime,
) -> Result<HandshakeAnswer, VerifyError> {
    let field = |name: &'static str| {
        query_value(request.query, name).ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
    };
    if field("hub.mode")? != "subscribe" {
        return Err(VerifyError::MalformedHeader("hub.mode".to_owned()));
    }
    let presented = field("hub.verify_token")?;
    let tokens = SecretSet {
        current: Secret::new(meta_verify_token(&secrets.current)),
        previous: secrets
            .previous
            .as_ref()
            .map(|p| crate::secret::PreviousSecret {
                secret: Secret::new(meta_verify_token(&p.secret)),
                expires_at: p.expires_at,
            }),
    };
    parts::match_token(&tokens, now, presented.as_bytes())?;
    echo(&field("hub.challenge")?, "hub.challenge").map(HandshakeAnswer::text)
}

/// The verify token a tenant enters in Meta's dashboard beside this route: derived from the
/// app secret it configured here, so there is nothing more to store and it cannot be guessed.
/// `hookctl tenant show` prints it.
pub fn meta_verify_token(app_secret: &Secret) -> String {
    let tag = hmac_sha256(app_secret.expose().as_bytes(), &[b"meta-verify-token"]);
    hex::encode(&tag[..16])
}

/// The one value of `name` in a raw query, percent-decoded.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(query?.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// A value the provider asks to have echoed: not empty, bounded, printable ASCII.
fn echo(value: &str, name: &str) -> Result<String, VerifyError> {
    let printable = !value.is_empty()
        && value.len() <= MAX_ECHO
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    printable
        .then(|| value.to_owned())
        .ok_or_else(|| VerifyError::MalformedHeader(name.to_owned()))
}
