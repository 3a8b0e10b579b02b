//! Reading and writing DynamoDB attribute maps. Every adapter goes through these helpers, so a
//! malformed item is always refused with the name of the attribute at fault, and never with
//! its value (which may be a secret or a payload).

use std::{collections::HashMap, fmt::Display, str::FromStr, time::SystemTime};

use aws_sdk_dynamodb::{primitives::Blob, types::AttributeValue};
use thiserror::Error;

use crate::{
    clock::{from_unix_millis, unix_millis},
    ports::StoreError,
};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Why an item could not become a domain value. Names the attribute, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ItemError {
    #[error("attribute `{0}` is missing")]
    Missing(&'static str),
    #[error("attribute `{attribute}` is not of type {expected}")]
    WrongType {
        attribute: &'static str,
        expected: &'static str,
    },
    #[error("attribute `{0}` has an invalid value")]
    Invalid(&'static str),
}

impl From<ItemError> for StoreError {
    fn from(e: ItemError) -> Self {
        StoreError::Malformed(e.to_string())
    }
}

/// The attribute, treating an explicit `NULL` like an absent one: both mean "not set".
fn present<'a>(item: &'a Item, name: &str) -> Option<&'a AttributeValue> {
    item.get(name)
        .filter(|v| !matches!(v, AttributeValue::Null(_)))
}

pub(crate) fn opt_string<'a>(
    item: &'a Item,
    name: &'static str,
) -> Result<Option<&'a str>, ItemError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(_) => Err(ItemError::WrongType {
            attribute: name,
            expected: "S",
        }),
    }
}

pub(crate) fn string<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, ItemError> {
    opt_string(item, name)?.ok_or(ItemError::Missing(name))
}

/// A string attribute parsed into `T` (an id, a status, ...).
pub(crate) fn parsed<T: FromStr>(item: &Item, name: &'static str) -> Result<T, ItemError> {
    string(item, name)?
        .parse()
        .map_err(|_| ItemError::Invalid(name))
}

pub(crate) fn opt_number<T: FromStr>(
    item: &Item,
    name: &'static str,
) -> Result<Option<T>, ItemError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| ItemError::Invalid(name)),
        Some(_) => Err(ItemError::WrongType {
            attribute: name,
            expected: "N",
        }),
    }
}

pub(crate) fn number<T: FromStr>(item: &Item, name: &'static str) -> Result<T, ItemError> {
    opt_number(item, name)?.ok_or(ItemError::Missing(name))
}

pub(crate) fn opt_millis(item: &Item, name: &'static str) -> Result<Option<SystemTime>, ItemError> {
    Ok(opt_number::<i64>(item, name)?.map(from_unix_millis))
}

pub(crate) fn millis(item: &Item, name: &'static str) -> Result<SystemTime, ItemError> {
    opt_millis(item, name)?.ok_or(ItemError::Missing(name))
}

pub(crate) fn opt_boolean(item: &Item, name: &'static str) -> Result<Option<bool>, ItemError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ItemError::WrongType {
            attribute: name,
            expected: "BOOL",
        }),
    }
}

pub(crate) fn boolean(item: &Item, name: &'static str) -> Result<bool, ItemError> {
    opt_boolean(item, name)?.ok_or(ItemError::Missing(name))
}

pub(crate) fn bytes<'a>(item: &'a Item, name: &'static str) -> Result<&'a [u8], ItemError> {
    match present(item, name) {
        None => Err(ItemError::Missing(name)),
        Some(AttributeValue::B(b)) => Ok(b.as_ref()),
        Some(_) => Err(ItemError::WrongType {
            attribute: name,
            expected: "B",
        }),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A time as unix milliseconds.
pub(crate) fn ms(at: SystemTime) -> AttributeValue {
    n(unix_millis(at))
}

pub(crate) fn b(value: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

/// Set `name` only when there is a value: absent attributes cost nothing and read back as `None`.
pub(crate) fn put_opt(item: &mut Item, name: &str, value: Option<AttributeValue>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn null_reads_as_absent() {
        let it = item(&[("a", AttributeValue::Null(true))]);
        assert_eq!(opt_string(&it, "a"), Ok(None));
        assert_eq!(opt_number::<u32>(&it, "a"), Ok(None));
        assert_eq!(string(&it, "a"), Err(ItemError::Missing("a")));
    }

    #[test]
    fn wrong_types_and_values_name_the_attribute() {
        let it = item(&[("a", n(1)), ("b", s("x")), ("c", n("1.5"))]);
        assert_eq!(
            string(&it, "a"),
            Err(ItemError::WrongType {
                attribute: "a",
                expected: "S"
            })
        );
        assert_eq!(
            boolean(&it, "b"),
            Err(ItemError::WrongType {
                attribute: "b",
                expected: "BOOL"
            })
        );
        assert_eq!(number::<u32>(&it, "c"), Err(ItemError::Invalid("c")));
        assert_eq!(
            StoreError::from(ItemError::Invalid("c")),
            StoreError::Malformed("attribute `c` has an invalid value".into())
        );
    }

    #[test]
    fn times_are_unix_millis() {
        let at = from_unix_millis(1_700_000_000_123);
        let it = item(&[("t", ms(at))]);
        assert_eq!(it.get("t"), Some(&n("1700000000123")));
        assert_eq!(millis(&it, "t"), Ok(at));
    }
}
