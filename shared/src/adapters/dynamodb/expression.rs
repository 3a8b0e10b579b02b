//! DynamoDB expressions, built only through placeholders: every attribute name goes through a
//! `#name` (`status` is a reserved word, and projection field names come from handlers), every
//! value through a `:value`. No name or value is ever spliced into an expression's text.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    error::{BuildError, ProvideErrorMetadata, SdkError},
    operation::update_item::builders::UpdateItemFluentBuilder,
    types::{AttributeValue, TransactWriteItem, Update},
};

use super::item::Item;
use crate::ports::StoreError;

/// One conditional update's parts.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expression {
    pub key: Item,
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: Item,
}

impl Expression {
    /// The `UpdateItem` request, ready to send.
    pub fn update_item(self, client: &Client, table: &str) -> UpdateItemFluentBuilder {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(self.update)
            .condition_expression(self.condition)
            .set_expression_attribute_names(non_empty(self.names))
            .set_expression_attribute_values(non_empty(self.values))
    }

    /// The same update as one item of a `TransactWriteItems`.
    pub fn transact_update(&self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key.clone()))
            .update_expression(&self.update)
            .condition_expression(&self.condition)
            .set_expression_attribute_names(non_empty(self.names.clone()))
            .set_expression_attribute_values(non_empty(self.values.clone()))
            .build()
            .map_err(|e| building("TransactWriteItems", &e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// An update put together clause by clause: `SET`s, `REMOVE`s and conditions (joined with
/// `AND`), with the placeholders each clause uses bound as it is added.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpdateBuilder {
    key: Item,
    sets: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: Item,
}

impl UpdateBuilder {
    pub fn new(key: Item) -> Self {
        Self {
            key,
            ..Self::default()
        }
    }

    /// `#attribute = :attribute`.
    pub fn set(self, attribute: &str, value: AttributeValue) -> Self {
        let clause = format!("#{attribute} = :{attribute}");
        self.set_clause(&clause, &[attribute])
            .value(&format!(":{attribute}"), value)
    }

    /// A `SET` clause written by hand (`#a = if_not_exists(#a, :zero) + :one`), with the
    /// names it uses; bind its values with [`Self::value`].
    pub fn set_clause(mut self, clause: &str, attributes: &[&str]) -> Self {
        self.sets.push(clause.to_owned());
        self.names.extend(names(attributes));
        self
    }

    pub fn remove(mut self, attribute: &str) -> Self {
        self.removes.push(format!("#{attribute}"));
        self.names.extend(names(&[attribute]));
        self
    }

    /// One more condition, `AND`ed with the others.
    pub fn condition(mut self, clause: &str, attributes: &[&str]) -> Self {
        self.conditions.push(format!("({clause})"));
        self.names.extend(names(attributes));
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn build(self) -> Expression {
        let mut update = String::new();
        if !self.sets.is_empty() {
            update.push_str("SET ");
            update.push_str(&self.sets.join(", "));
        }
        if !self.removes.is_empty() {
            if !update.is_empty() {
                update.push(' ');
            }
            update.push_str("REMOVE ");
            update.push_str(&self.removes.join(", "));
        }
        Expression {
            key: self.key,
            update,
            condition: self.conditions.join(" AND "),
            names: self.names,
            values: self.values,
        }
    }
}

/// `#name → name` for the adapter's own attribute names.
pub(crate) fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

/// DynamoDB refuses empty placeholder maps; absent is the way to say "none".
pub(crate) fn non_empty<V>(map: HashMap<String, V>) -> Option<HashMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

/// Whether a call failed only because its condition did not hold: an answer, not an outage.
pub(crate) fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// A request the SDK refused to build: our bug, never the input's, and permanent.
pub(crate) fn building(operation: &str, err: &BuildError) -> StoreError {
    StoreError::Rejected(format!("building the {operation} request: {err}"))
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeSet;

    use super::Expression;

    /// The `#name` and `:value` placeholders an expression's text uses.
    pub fn placeholders(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut names = BTreeSet::new();
        let mut values = BTreeSet::new();
        let mut chars = text.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if c != '#' && c != ':' {
                continue;
            }
            let mut end = start + 1;
            while let Some(&(i, next)) = chars.peek() {
                if next.is_ascii_alphanumeric() || next == '_' {
                    end = i + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = text[start..end].to_owned();
            if c == '#' {
                names.insert(token);
            } else {
                values.insert(token);
            }
        }
        (names, values)
    }

    /// DynamoDB refuses a placeholder that is bound but unused, or used but unbound.
    pub fn assert_bound_exactly(e: &Expression) {
        let (names, values) = placeholders(&format!("{} {}", e.update, e.condition));
        assert_eq!(names, e.names.keys().cloned().collect(), "{}", e.update);
        assert_eq!(values, e.values.keys().cloned().collect(), "{}", e.update);
    }
}
