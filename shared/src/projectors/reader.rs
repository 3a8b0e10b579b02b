//! A JSON object read field by field, so a schema error names the field's path
//! (`resource.amount.value is not a string`): serde's own messages name the expected type but
//! not where it was missing. Used by the handlers whose payloads nest the resource under a
//! provider-chosen name (PayPal, Circle, Firebase's Pub/Sub envelope).

use serde_json::{Map, Value, json};

use super::{Event, ProjectorError};

pub(super) struct Reader<'e, 'v> {
    ev: &'e Event<'e>,
    /// Where this object sits, `""` for the payload itself.
    path: String,
    map: &'v Map<String, Value>,
}

impl<'e, 'v> Reader<'e, 'v> {
    /// The payload's top object.
    pub(super) fn root(ev: &'e Event<'e>, value: &'v Value) -> Result<Self, ProjectorError> {
        match value {
            Value::Object(map) => Ok(Self {
                ev,
                path: String::new(),
                map,
            }),
            _ => Err(ev.invalid("the payload is not a JSON object")),
        }
    }

    /// An object's fields, named from `path`.
    pub(super) fn object_at(
        ev: &'e Event<'e>,
        path: &str,
        value: &'v Value,
    ) -> Result<Self, ProjectorError> {
        match value {
            Value::Object(map) => Ok(Self {
                ev,
                path: path.to_owned(),
                map,
            }),
            _ => Err(ev.invalid(format_args!("{path} is not an object"))),
        }
    }

    /// The full path of field `name`.
    pub(super) fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub(super) fn error(&self, name: &str, what: &str) -> ProjectorError {
        self.ev.invalid(format_args!("{} {what}", self.path(name)))
    }

    /// The field's value; `None` when absent or `null`, which providers use alike.
    pub(super) fn get(&self, name: &str) -> Option<&'v Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string that must be present and not empty.
    pub(super) fn string(&self, name: &str) -> Result<&'v str, ProjectorError> {
        match self.opt_string(name)? {
            Some("") => Err(self.error(name, "is empty")),
            Some(s) => Ok(s),
            None => Err(self.error(name, "is missing")),
        }
    }

    pub(super) fn opt_string(&self, name: &str) -> Result<Option<&'v str>, ProjectorError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(name, "is not a string")),
        }
    }

    pub(super) fn opt_u64(&self, name: &str) -> Result<Option<u64>, ProjectorError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(name, "is not a whole number")),
        }
    }

    pub(super) fn object(&self, name: &str) -> Result<Reader<'e, 'v>, ProjectorError> {
        self.opt_object(name)?
            .ok_or_else(|| self.error(name, "is missing"))
    }

    pub(super) fn opt_object(&self, name: &str) -> Result<Option<Reader<'e, 'v>>, ProjectorError> {
        self.get(name)
            .map(|v| Reader::object_at(self.ev, &self.path(name), v))
            .transpose()
    }

    /// An array's items; an absent or `null` array is empty.
    pub(super) fn array(&self, name: &str) -> Result<&'v [Value], ProjectorError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.error(name, "is not an array")),
        }
    }

    /// A money object of two strings (PayPal's `{currency_code, value}`, Circle's `{amount,
    /// currency}`), kept as it is; `null` when absent.
    pub(super) fn money(&self, name: &str, fields: [&str; 2]) -> Result<Value, ProjectorError> {
        let Some(money) = self.opt_object(name)? else {
            return Ok(Value::Null);
        };
        let mut kept = Map::new();
        for field in fields {
            kept.insert(field.to_owned(), json!(money.string(field)?));
        }
        Ok(Value::Object(kept))
    }
}
