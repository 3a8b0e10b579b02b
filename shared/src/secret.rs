//! Signing secrets. A secret never prints: `Debug` is redacted, and there is no `Display`.
//! During rotation two secrets are valid: the current one, and the previous one until its expiry.

use std::{fmt, time::SystemTime};

/// One signing secret, exactly as the provider shows it (`whsec_...`, a hex string, ...).
/// Each scheme derives its key from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's text. Call only to derive a key or to store it; never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which of a tenant's secrets verified a delivery; stored on the event so a rotation can be
/// watched until the previous secret stops being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    Current,
    Previous,
}

impl SecretSlot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }
}

/// A secret that was current before a rotation and stays valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub expires_at: SystemTime,
}

/// The secrets a delivery may be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSet {
    pub current: Secret,
    pub previous: Option<PreviousSecret>,
}

impl SecretSet {
    /// A set with one secret and no rotation under way.
    pub fn single(current: Secret) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Replace the current secret; the old one stays valid until `previous_expires_at`.
    pub fn rotate(&self, new_current: Secret, previous_expires_at: SystemTime) -> Self {
        Self {
            previous: Some(PreviousSecret {
                secret: self.current.clone(),
                expires_at: previous_expires_at,
            }),
            current: new_current,
        }
    }

    /// The secrets valid at `now`, current first.
    pub fn active(&self, now: SystemTime) -> impl Iterator<Item = (SecretSlot, &Secret)> {
        let previous = self
            .previous
            .as_ref()
            .filter(|p| now < p.expires_at)
            .map(|p| (SecretSlot::Previous, &p.secret));
        std::iter::once((SecretSlot::Current, &self.current)).chain(previous)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let set = SecretSet::single(Secret::new("whsec_supersecret"))
            .rotate(Secret::new("whsec_next"), SystemTime::UNIX_EPOCH);
        let printed = format!("{set:?}");
        assert!(
            !printed.contains("supersecret") && !printed.contains("next"),
            "{printed}"
        );
    }

    #[test]
    fn previous_secret_is_active_only_until_expiry() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let set = SecretSet::single(Secret::new("old")).rotate(Secret::new("new"), t0);
        let before: Vec<_> = set
            .active(t0 - Duration::from_secs(1))
            .map(|(s, _)| s)
            .collect();
        assert_eq!(before, [SecretSlot::Current, SecretSlot::Previous]);
        let at: Vec<_> = set.active(t0).map(|(s, _)| s).collect();
        assert_eq!(at, [SecretSlot::Current]);
    }
}
