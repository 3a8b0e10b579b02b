//! The partner portal's access: one-time links and the sessions they open.
//!
//! An operator runs `hookctl portal link TENANT`: a link carrying its tenant, whether it is
//! read-only, when it expires and a random nonce, authenticated with an HMAC computed by KMS
//! (`GenerateMac`; the key never leaves KMS, so no signing secret sits in any environment). The
//! portal checks the MAC (`VerifyMac`), the expiry, and spends the nonce with a conditional put,
//! so a link opens one session, once. The expiry is checked against the server's own bound too:
//! a link that claims to live past 24 hours from now opens nothing, whoever signed it. The
//! session is a random id in an `HttpOnly`, `Secure`, `SameSite=Strict` cookie; the store keeps
//! only a digest of it (with the tenant, the read-only flag and the expiry), and the CSRF token
//! is derived from the id, never stored, so a table reader or a restored backup holds nothing
//! that rides a live session. Every page reads its tenant from the session and nowhere else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::{clock::Clock, ids::TenantId, ports::StoreError};

/// The longest a link (and the session it opens) may live.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3_600);
/// A link's lifetime when the operator names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3_600);

/// What a link grants, as signed (the tenant is parsed again when the link is used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LinkClaims {
    tenant: String,
    read_only: bool,
    /// An operator's session: the tenant's received events, health and DLQ too.
    #[serde(default)]
    operator: bool,
    /// Unix seconds after which the link opens nothing.
    expires_at: u64,
    /// How long the session it opens lasts, in seconds.
    session_secs: u64,
    /// Spent on first use.
    nonce: String,
}

/// What a link grants besides its tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// May look at everything it can see and change nothing.
    pub read_only: bool,
    /// An operator of the tenant (the received events, their health, the DLQ), not only a
    /// partner (endpoints and deliveries).
    pub operator: bool,
}

/// An open portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The cookie's value: 32 random bytes, hex.
    pub id: String,
    pub tenant: TenantId,
    pub read_only: bool,
    pub operator: bool,
    /// Every state-changing form carries it.
    pub csrf: String,
    pub expires_at: SystemTime,
}

/// What the store keeps of a session: neither its id (the cookie's value) nor its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub tenant: TenantId,
    pub read_only: bool,
    pub operator: bool,
    pub expires_at: SystemTime,
}

/// The key a session is stored under: a digest of its id.
pub fn session_key(id: &str) -> String {
    digest("session", id)
}

/// A session's CSRF token: a digest of its id under another label, so the stored key does not
/// give it away.
fn csrf_token(id: &str) -> String {
    digest("csrf", id)
}

fn digest(label: &str, id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    hex::encode(hasher.finalize())
}

impl Session {
    fn from_stored(id: &str, stored: StoredSession) -> Self {
        Self {
            id: id.to_owned(),
            tenant: stored.tenant,
            read_only: stored.read_only,
            operator: stored.operator,
            csrf: csrf_token(id),
            expires_at: stored.expires_at,
        }
    }

    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Why a link or a session was refused. The portal shows each as a page saying so.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortalError {
    #[error("this link is not a portal link")]
    Malformed,
    #[error("this link was not issued by this deployment")]
    BadSignature,
    #[error("this link has expired: ask for a new one")]
    Expired,
    #[error("this link was already used: ask for a new one")]
    Used,
    #[error("a link may live between 1 minute and 24 hours")]
    BadTtl,
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Computes and checks links' MACs (KMS as deployed).
#[async_trait]
pub trait LinkSigner: Send + Sync + std::fmt::Debug {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, PortalError>;
    /// Whether `mac` is `message`'s MAC; the comparison is the signer's, in constant time.
    async fn verify(&self, message: &[u8], mac: &[u8]) -> Result<bool, PortalError>;
}

/// Where spent links and open sessions are kept. Sessions go by [`session_key`], never by id.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Spend `nonce` (kept until `expires_at`): `false` if it was spent before.
    async fn spend_link(&self, nonce: &str, expires_at: SystemTime) -> Result<bool, StoreError>;
    async fn put_session(&self, key: &str, session: &StoredSession) -> Result<(), StoreError>;
    async fn session(&self, key: &str) -> Result<Option<StoredSession>, StoreError>;
    async fn delete_session(&self, key: &str) -> Result<(), StoreError>;
}

/// Links and sessions over their ports.
#[derive(Debug)]
pub struct PortalAccess<S, L, C> {
    pub store: S,
    pub signer: L,
    pub clock: C,
}

impl<S: PortalStore, L: LinkSigner, C: Clock> PortalAccess<S, L, C> {
    pub fn new(store: S, signer: L, clock: C) -> Self {
        Self {
            store,
            signer,
            clock,
        }
    }

    /// A one-time link token for `tenant`, valid for `ttl` (the session it opens lasts as
    /// long).
    pub async fn link(
        &self,
        tenant: &TenantId,
        grant: Grant,
        ttl: Duration,
    ) -> Result<String, PortalError> {
        if ttl < Duration::from_secs(60) || ttl > MAX_TTL {
            return Err(PortalError::BadTtl);
        }
        let claims = LinkClaims {
            tenant: tenant.as_str().to_owned(),
            read_only: grant.read_only,
            operator: grant.operator,
            expires_at: unix(self.clock.now() + ttl),
            session_secs: ttl.as_secs(),
            nonce: random_hex(16)?,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| PortalError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let mac = self.signer.mac(payload.as_bytes()).await?;
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac)))
    }

    /// Whether a link would open a session now (its MAC, its expiry), without spending it:
    /// what the page a link lands on checks before offering to open the portal.
    pub async fn check(&self, token: &str) -> Result<(), PortalError> {
        self.claims(token).await.map(|_| ())
    }

    /// Exchange a link token for a new session: the MAC, then the expiry, then the nonce.
    pub async fn exchange(&self, token: &str) -> Result<Session, PortalError> {
        let (claims, tenant) = self.claims(token).await?;
        let link_expiry = UNIX_EPOCH + Duration::from_secs(claims.expires_at);
        if !self.store.spend_link(&claims.nonce, link_expiry).await? {
            return Err(PortalError::Used);
        }
        let id = random_hex(32)?;
        let stored = StoredSession {
            tenant,
            read_only: claims.read_only,
            operator: claims.operator,
            expires_at: self.clock.now() + Duration::from_secs(claims.session_secs).min(MAX_TTL),
        };
        self.store.put_session(&session_key(&id), &stored).await?;
        Ok(Session::from_stored(&id, stored))
    }

    /// A link's claims and tenant, if its MAC is this deployment's and it is live now.
    async fn claims(&self, token: &str) -> Result<(LinkClaims, TenantId), PortalError> {
        let (payload, mac) = token.split_once('.').ok_or(PortalError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| PortalError::Malformed)?;
        if payload.len() > 1_024 || mac.is_empty() || mac.len() > 64 {
            return Err(PortalError::Malformed);
        }
        if !self.signer.verify(payload.as_bytes(), &mac).await? {
            return Err(PortalError::BadSignature);
        }
        let claims: LinkClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(PortalError::Malformed)?;
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| PortalError::Malformed)?;
        let now = unix(self.clock.now());
        if now >= claims.expires_at {
            return Err(PortalError::Expired);
        }
        // The server's bound, whatever the link claims: at most a day from now.
        if claims.expires_at - now > MAX_TTL.as_secs() {
            return Err(PortalError::BadTtl);
        }
        Ok((claims, tenant))
    }

    /// The live session with cookie value `id`, if any.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, PortalError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .store
            .session(&session_key(id))
            .await?
            .filter(|s| s.expires_at > self.clock.now())
            .map(|stored| Session::from_stored(id, stored)))
    }

    pub async fn sign_out(&self, session: &Session) -> Result<(), PortalError> {
        Ok(self.store.delete_session(&session_key(&session.id)).await?)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A random value for the login page's double-submit check (its cookie and its form).
pub fn login_check() -> Result<String, PortalError> {
    random_hex(16)
}

/// `n` random bytes, hex; an error rather than a weak id if the system has no randomness.
fn random_hex(n: usize) -> Result<String, PortalError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| PortalError::Unavailable(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests;
