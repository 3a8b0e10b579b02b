//! The outbound side's identifiers: endpoints, messages and event types. Like the inbound ids
//! they are validated once, and storage keys are built only from them; none may hold `#`, the
//! separator of the keys they go into, so one id can never read as the prefix of another's key.

use std::{fmt, str::FromStr};

use crate::ids::IdError;

/// Letters, digits and `_ . : -`: what every outbound id may hold.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

const ID_BYTES: &str = "letters, digits, '_', '.', ':' and '-'";

fn check(kind: &'static str, raw: &str, max: usize) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !raw.bytes().all(is_id_byte) {
        return Err(IdError::InvalidCharacter {
            kind,
            allowed: ID_BYTES,
        });
    }
    Ok(())
}

/// `prefix` and 24 random hex digits (96 bits): unguessable and collision-free in practice.
fn generated(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    // A failing random source leaves zeros; a conditional write then refuses the duplicate.
    let _ = getrandom::fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// A partner endpoint of a tenant: `ep_` and up to 60 id characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(String);

impl EndpointId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        const KIND: &str = "endpoint id";
        check(KIND, raw, Self::MAX_LEN)?;
        if !raw.starts_with("ep_") || raw.len() == 3 {
            return Err(IdError::InvalidCharacter {
                kind: KIND,
                allowed: "'ep_' followed by letters, digits, '_', '.', ':' and '-'",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(generated("ep_"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A published message: the publisher's idempotency key (same key, same message), or a
/// generated `msg_` id. It is the `webhook-id` partners deduplicate on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        check("message id", raw, Self::MAX_LEN)?;
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random id, for a publish without an idempotency key.
    pub fn generate() -> Self {
        Self(generated("msg_"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An outbound event type (`invoice.paid`, `user.created`): dot-separated segments of id
/// characters, up to 128 characters. No `*`: that is a filter's wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        const KIND: &str = "event type";
        check(KIND, raw, Self::MAX_LEN)?;
        if raw.split('.').any(str::is_empty) {
            return Err(IdError::InvalidCharacter {
                kind: KIND,
                allowed: "dot-separated, non-empty segments",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! outbound_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $t {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

outbound_id!(EndpointId);
outbound_id!(MessageId);
outbound_id!(EventType);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_refuse_the_key_separator_and_blanks() {
        for bad in ["ep_a#b", "ep_", "ep a", "endpoint_1", ""] {
            assert!(EndpointId::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["msg#1", "msg 1", "", "é"] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(MessageId::parse(&"m".repeat(129)).is_err());
        for bad in ["invoice..paid", ".paid", "invoice.", "invoice.*", "a#b"] {
            assert!(EventType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        assert_ne!(a, b);
        assert_eq!(EndpointId::parse(a.as_str()), Ok(a));
        let m = MessageId::generate();
        assert_eq!(MessageId::parse(m.as_str()), Ok(m));
    }

    #[test]
    fn common_shapes_are_accepted() {
        for good in ["invoice.paid", "user.created", "webhook.test", "a:b-c_d"] {
            assert!(EventType::parse(good).is_ok(), "{good:?}");
        }
        assert!(MessageId::parse("order-42:created").is_ok());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = EndpointId::parse(&s);
            let _ = MessageId::parse(&s);
            let _ = EventType::parse(&s);
        }
    }
}
