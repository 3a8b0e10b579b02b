//! A tenant's configuration for one provider: its secrets, replay window and unsigned policy.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    ids::TenantId,
    provider::Provider,
    secret::{Secret, SecretSet},
    verify::{DEFAULT_TOLERANCE, GenericHeaders, PublicKeys, Scheme, Verifier},
};

/// How long a rotated-out secret stays valid unless the operator says otherwise.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether deliveries without a signature are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsignedPolicy {
    /// The default: a delivery must be signed.
    Refuse,
    /// Unsigned deliveries are accepted on the route that carries the unguessable token whose
    /// digest this is (`/webhooks/{tenant}/{provider}/{token}`), and raise a security metric. A
    /// delivery that does carry a signature is still verified and never falls back to unsigned.
    /// Only the digest is stored: the table never holds a working token.
    Allow { token_digest: TokenDigest },
}

/// The SHA-256 of an unsigned-route token. The token is 256 random bits, so its digest cannot
/// be reversed, and comparing digests in constant time leaks nothing about the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Read a stored lowercase-hex digest.
    pub fn from_hex(hex_text: &str) -> Option<Self> {
        let bytes = hex::decode(hex_text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `token` is the one this digest was made from, in constant time.
    pub fn matches(&self, token: &str) -> bool {
        !token.is_empty() && bool::from(Self::of(token).0.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

/// One tenant's configuration for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub tenant: TenantId,
    pub provider: Provider,
    pub secrets: SecretSet,
    pub tolerance: Duration,
    pub unsigned: UnsignedPolicy,
    /// Header names for the generic scheme; `None` means the defaults.
    pub generic_headers: Option<GenericHeaders>,
    /// Twilio signs the URL it called: the public base URL (`https://hooks.example.com`) when a
    /// custom domain fronts the API, else the request's own host is used.
    pub public_base_url: Option<String>,
    /// The provider's public keys by id (Circle), several during a rotation. Sealed at rest like
    /// a secret, so no one with write access to the table can swap in their own.
    pub public_keys: PublicKeys,
    /// PayPal: the id of the tenant's webhook subscription, which PayPal signs into every
    /// delivery.
    pub paypal_webhook_id: Option<String>,
    /// The stored version this configuration was read at (0: not stored yet). A write is
    /// conditioned on it, so two operators' changes never silently undo each other.
    pub version: u64,
}

impl ProviderConfig {
    /// A signed-only configuration with the default window.
    pub fn new(tenant: TenantId, provider: Provider, secret: Secret) -> Self {
        Self {
            tenant,
            provider,
            secrets: SecretSet::single(secret),
            tolerance: DEFAULT_TOLERANCE,
            unsigned: UnsignedPolicy::Refuse,
            generic_headers: None,
            public_base_url: None,
            public_keys: PublicKeys::default(),
            paypal_webhook_id: None,
            version: 0,
        }
    }

    /// What a write of this configuration meets when its condition fails: a configuration
    /// exists already (`version` 0), or another write landed since it was read.
    pub fn write_conflict(&self) -> crate::ports::StoreError {
        crate::ports::StoreError::Conflict(format!(
            "{}/{}: {}",
            self.tenant,
            self.provider,
            if self.version == 0 {
                "a configuration exists already"
            } else {
                "the configuration changed since it was read"
            }
        ))
    }

    /// The verifier for this provider's scheme and this tenant's window.
    pub fn verifier(&self) -> Verifier {
        let scheme = match (self.provider.default_scheme(), &self.generic_headers) {
            (Scheme::Generic(_), Some(names)) => Scheme::Generic(names.clone()),
            (scheme, _) => scheme,
        };
        Verifier::new(scheme).with_tolerance(self.tolerance)
    }

    /// Make `new_secret` current; the old one stays valid for `grace`.
    pub fn rotate(&mut self, new_secret: Secret, now: SystemTime, grace: Duration) {
        self.secrets = self.secrets.rotate(new_secret, now + grace);
    }

    /// Whether an unsigned delivery on a route carrying `token` is acceptable. Digests are
    /// compared in constant time; no token, or a policy of refusal, is never acceptable.
    pub fn admits_unsigned(&self, token: Option<&str>) -> bool {
        match (&self.unsigned, token) {
            (UnsignedPolicy::Allow { token_digest }, Some(given)) => token_digest.matches(given),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProviderConfig {
        ProviderConfig::new(
            TenantId::parse("acme").expect("tenant"),
            Provider::Generic,
            Secret::new("s1"),
        )
    }

    #[test]
    fn unsigned_is_refused_by_default() {
        assert!(!config().admits_unsigned(Some("anything")));
        assert!(!config().admits_unsigned(None));
    }

    #[test]
    fn unsigned_needs_the_exact_token() {
        let mut c = config();
        c.unsigned = UnsignedPolicy::Allow {
            token_digest: TokenDigest::of("tok_0123456789abcdef"),
        };
        assert!(c.admits_unsigned(Some("tok_0123456789abcdef")));
        for wrong in [
            None,
            Some(""),
            Some("tok_0123456789abcdeF"),
            Some("tok_0123456789abcde"),
        ] {
            assert!(!c.admits_unsigned(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn a_digest_round_trips_through_hex_and_never_prints() {
        let digest = TokenDigest::of("tok_0123456789abcdef");
        assert_eq!(
            TokenDigest::from_hex(&digest.to_hex()),
            Some(digest.clone())
        );
        assert_eq!(TokenDigest::from_hex("abc"), None);
        assert_eq!(format!("{digest:?}"), "TokenDigest(<redacted>)");
        assert!(!digest.matches(""));
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_period() {
        let mut c = config();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        c.rotate(Secret::new("s2"), now, DEFAULT_ROTATION_GRACE);
        assert_eq!(c.secrets.current, Secret::new("s2"));
        let previous = c.secrets.previous.as_ref().expect("previous kept");
        assert_eq!(previous.secret, Secret::new("s1"));
        assert_eq!(previous.expires_at, now + DEFAULT_ROTATION_GRACE);
    }

    #[test]
    fn generic_header_names_reach_the_verifier() {
        let mut c = config();
        let names = GenericHeaders {
            signature: "x-sig".into(),
            timestamp: "x-ts".into(),
            id: None,
        };
        c.generic_headers = Some(names.clone());
        assert_eq!(c.verifier().scheme, Scheme::Generic(names));
    }
}
