//! Validated identifiers. Storage keys are built only from these types, so a key can never be
//! shaped by an unchecked string (and never by a payload field).

use std::{fmt, str::FromStr};

use thiserror::Error;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may only contain {allowed}")]
    InvalidCharacter {
        kind: &'static str,
        allowed: &'static str,
    },
}

/// A tenant: lowercase ASCII letters, digits, `-` and `_`, 1 to 64 characters. It appears in
/// URLs and in every key of that tenant's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        const KIND: &str = "tenant id";
        check_len(KIND, raw, Self::MAX_LEN)?;
        let ok = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(IdError::InvalidCharacter {
                kind: KIND,
                allowed: "lowercase letters, digits, '-' and '_'",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A provider's event id (`evt_...`, `msg_...`, a delivery GUID): printable ASCII without
/// spaces, 1 to 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        const KIND: &str = "event id";
        check_len(KIND, raw, Self::MAX_LEN)?;
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::InvalidCharacter {
                kind: KIND,
                allowed: "printable ASCII without spaces",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_len(kind: &'static str, raw: &str, max: usize) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    Ok(())
}

macro_rules! string_id {
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

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(TenantId);
string_id!(EventId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tenant_accepts_slug() {
        assert_eq!(
            TenantId::parse("acme-prod_1").map(|t| t.to_string()),
            Ok("acme-prod_1".into())
        );
    }

    #[test]
    fn tenant_refuses_what_could_shape_a_key() {
        for bad in ["Acme", "acme#b", "acme/b", "a b", "", "é"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            TenantId::parse(&"a".repeat(65)),
            Err(IdError::TooLong {
                kind: "tenant id",
                max: 64
            })
        );
    }

    #[test]
    fn event_id_accepts_provider_shapes() {
        for good in [
            "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ] {
            assert!(EventId::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn event_id_refuses_blank_control_and_long() {
        assert_eq!(EventId::parse(""), Err(IdError::Empty { kind: "event id" }));
        assert!(EventId::parse("evt 1").is_err());
        assert!(EventId::parse("evt\n1").is_err());
        assert!(EventId::parse(&"x".repeat(257)).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = TenantId::parse(&s);
            let _ = EventId::parse(&s);
        }
    }
}
