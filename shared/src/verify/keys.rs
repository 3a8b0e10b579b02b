//! Public keys a provider publishes by id (Circle), with the same rotation model as secrets: a
//! key without an expiry is current; one given an expiry is being retired and stays valid until
//! then. Keys are kept as the text the provider publishes and decoded when used, so a key that
//! cannot be decoded is reported as a configuration error on the delivery that needed it, as a
//! bad secret is.

use std::time::SystemTime;

use crate::secret::SecretSlot;

/// One published public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The provider's name for the key, as deliveries name it (Circle's `X-Circle-Key-Id`).
    pub id: String,
    /// The key as the provider publishes it (Circle: base64 DER SubjectPublicKeyInfo).
    pub encoded: String,
    /// When the key stops verifying; `None` while it is current.
    pub expires_at: Option<SystemTime>,
}

impl PublicKey {
    /// A current key.
    pub fn new(id: impl Into<String>, encoded: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            encoded: encoded.into(),
            expires_at: None,
        }
    }

    /// The same key, valid only until `at`.
    pub fn expiring(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// The public keys a tenant trusts for one provider; several while the provider rotates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicKeys(Vec<PublicKey>);

impl PublicKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self(keys.into_iter().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.0.iter()
    }

    /// The keys valid at `now`, in configured order, with the slot each reports: `Previous`
    /// for a key being retired, `Current` otherwise.
    pub fn active(&self, now: SystemTime) -> impl Iterator<Item = (SecretSlot, &PublicKey)> {
        self.0.iter().filter_map(move |key| match key.expires_at {
            None => Some((SecretSlot::Current, key)),
            Some(at) if now < at => Some((SecretSlot::Previous, key)),
            Some(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::test_support::at;

    #[test]
    fn a_retiring_key_is_active_until_its_expiry() {
        let keys = PublicKeys::new([
            PublicKey::new("new", "A"),
            PublicKey::new("old", "B").expiring(at(100)),
        ]);
        let before: Vec<_> = keys
            .active(at(99))
            .map(|(s, k)| (s, k.id.as_str()))
            .collect();
        assert_eq!(
            before,
            [(SecretSlot::Current, "new"), (SecretSlot::Previous, "old")]
        );
        assert_eq!(keys.active(at(100)).count(), 1);
    }
}
