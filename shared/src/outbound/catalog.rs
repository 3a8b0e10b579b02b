//! A tenant's event catalog: the event types it publishes, each with a description, a JSON
//! Schema (2020-12) for its payload, examples, and whether it is deprecated. Partners read it in
//! the portal; a publish of a registered type is checked against its schema before anything is
//! stored, so a payload that breaks the contract never reaches a partner.
//!
//! Schemas come from tenants, so they are bounded (size, depth, examples) and compiled without
//! remote references (no HTTP or file resolution is compiled in) and with linear-time `pattern`s.
//! A warm function reads a type's definition at most once per [`TYPE_TTL`].

use std::{fmt, sync::Arc, time::Duration, time::SystemTime};

use jsonschema::{PatternOptions, Validator};
use serde_json::Value;
use thiserror::Error;

use super::{Outbound, ids::EventType, ports::OutboundStore};
use crate::{
    clock::{Clock, rfc3339},
    ids::TenantId,
    ports::StoreError,
    ttl_cache::TtlCache,
};

/// The largest schema, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The deepest nesting of a schema's objects and arrays.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// How many examples a type may carry, and the largest of them.
pub const MAX_EXAMPLES: usize = 5;
pub const MAX_EXAMPLE_BYTES: usize = 16 * 1024;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;
/// How many event types a tenant may register.
pub const MAX_EVENT_TYPES: usize = 500;
/// How long a function trusts a type's definition it read: a change takes effect within it.
pub const TYPE_TTL: Duration = Duration::from_secs(30);
/// Compiled `pattern`s: a regex this large is refused (linear-time engine, bounded memory).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Why an event type's definition, or a change to it, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    #[error("invalid event type: {0}")]
    Name(String),
    #[error("the schema is larger than {MAX_SCHEMA_BYTES} bytes")]
    SchemaTooLarge,
    #[error("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")]
    SchemaTooDeep,
    #[error("the schema is not a valid JSON Schema (2020-12): {0}")]
    InvalidSchema(String),
    #[error("at most {MAX_EXAMPLES} examples of {MAX_EXAMPLE_BYTES} bytes each")]
    TooManyExamples,
    #[error("example {index} does not match the schema: {mismatch}")]
    ExampleMismatch {
        index: usize,
        mismatch: SchemaMismatch,
    },
    #[error("the description is longer than {MAX_DESCRIPTION_CHARS} characters")]
    Description,
    #[error("event type {0} is registered already")]
    Exists(EventType),
    #[error("event type {0} is not registered")]
    Unknown(EventType),
    #[error("a tenant may register at most {MAX_EVENT_TYPES} event types")]
    TooMany,
    #[error("event type {0} changed meanwhile; read it again")]
    Conflict(EventType),
    #[error("the catalog is unavailable: {0}")]
    Unavailable(String),
}

impl CatalogError {
    /// Whether the caller's request was at fault (a 4xx), rather than the service (a 503).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Where a payload first breaks its schema: the JSON pointer into the payload, the keyword that
/// failed, and the validator's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMismatch {
    pub pointer: String,
    pub keyword: String,
    pub message: String,
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "the payload"
        } else {
            &self.pointer
        };
        write!(f, "at {at}, {}: {}", self.keyword, self.message)
    }
}

/// A checked, compiled payload schema.
#[derive(Clone)]
pub struct PayloadSchema {
    document: Value,
    validator: Arc<Validator>,
}

impl fmt::Debug for PayloadSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PayloadSchema")
            .field(&self.document)
            .finish()
    }
}

impl PartialEq for PayloadSchema {
    fn eq(&self, other: &Self) -> bool {
        self.document == other.document
    }
}

impl PayloadSchema {
    /// Check `document` is a bounded, valid 2020-12 schema, and compile it.
    pub fn new(document: Value) -> Result<Self, CatalogError> {
        if document.to_string().len() > MAX_SCHEMA_BYTES {
            return Err(CatalogError::SchemaTooLarge);
        }
        if depth(&document) > MAX_SCHEMA_DEPTH {
            return Err(CatalogError::SchemaTooDeep);
        }
        jsonschema::draft202012::meta::validate(&document)
            .map_err(|e| CatalogError::InvalidSchema(e.to_string()))?;
        let validator = jsonschema::draft202012::options()
            .with_pattern_options(PatternOptions::regex().size_limit(PATTERN_SIZE_LIMIT))
            .build(&document)
            .map_err(|e| CatalogError::InvalidSchema(e.to_string()))?;
        Ok(Self {
            document,
            validator: Arc::new(validator),
        })
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The first place `payload` breaks the schema, if it does.
    pub fn check(&self, payload: &Value) -> Result<(), SchemaMismatch> {
        match self.validator.iter_errors(payload).next() {
            None => Ok(()),
            Some(error) => Err(SchemaMismatch {
                pointer: error.instance_path().to_string(),
                keyword: error.kind().keyword().to_owned(),
                message: error.to_string(),
            }),
        }
    }
}

/// How deeply `value`'s objects and arrays nest (a scalar: 0).
fn depth(value: &Value) -> usize {
    // Iterative, so a hostile document cannot exhaust the stack before it is refused.
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        if deepest > MAX_SCHEMA_DEPTH {
            return deepest;
        }
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// One event type of a tenant's catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeDefinition {
    pub tenant: TenantId,
    pub name: EventType,
    pub description: String,
    /// What its payloads must look like; `None`: anything JSON.
    pub schema: Option<PayloadSchema>,
    /// Payloads partners can look at (and the portal can send); each matches the schema.
    pub examples: Vec<Value>,
    /// Still published, but partners should move off it.
    pub deprecated: bool,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// The stored version this was read at (0: not stored yet); writes are conditioned on it.
    pub version: u64,
}

impl EventTypeDefinition {
    /// As the API answers it and `hookctl --output json` prints it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name.as_str(),
            "description": self.description,
            "schema": self.schema.as_ref().map(PayloadSchema::document),
            "examples": self.examples,
            "deprecated": self.deprecated,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        })
    }

    fn new(tenant: TenantId, name: EventType, now: SystemTime) -> Self {
        Self {
            tenant,
            name,
            description: String::new(),
            schema: None,
            examples: Vec::new(),
            deprecated: false,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Apply `change`, then check the whole: bounded, every example matching the schema.
    fn apply(&mut self, change: EventTypeChange) -> Result<(), CatalogError> {
        if let Some(description) = change.description {
            if description.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(CatalogError::Description);
            }
            self.description = description.trim().to_owned();
        }
        match change.schema {
            Some(Value::Null) => self.schema = None,
            Some(document) => self.schema = Some(PayloadSchema::new(document)?),
            None => {}
        }
        if let Some(examples) = change.examples {
            self.examples = examples;
        }
        if let Some(deprecated) = change.deprecated {
            self.deprecated = deprecated;
        }
        if self.examples.len() > MAX_EXAMPLES
            || self
                .examples
                .iter()
                .any(|e| e.to_string().len() > MAX_EXAMPLE_BYTES)
        {
            return Err(CatalogError::TooManyExamples);
        }
        if let Some(schema) = &self.schema {
            for (index, example) in self.examples.iter().enumerate() {
                schema
                    .check(example)
                    .map_err(|mismatch| CatalogError::ExampleMismatch { index, mismatch })?;
            }
        }
        Ok(())
    }
}

/// A change to an event type: `None` leaves a field as it is; a `null` schema removes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTypeChange {
    pub description: Option<String>,
    pub schema: Option<Value>,
    pub examples: Option<Vec<Value>>,
    pub deprecated: Option<bool>,
}

/// What a publish learns from the catalog about its type.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeCheck {
    /// Registered, and the payload matches (or the type has no schema).
    Registered,
    /// Not in the catalog: accepted unless the tenant publishes registered types only.
    Unregistered,
    /// Registered, and the payload breaks its schema.
    Mismatch(SchemaMismatch),
}

/// The event types a function has read lately, found or not. Clones share them.
#[derive(Debug, Clone)]
pub struct KnownTypes {
    read: TtlCache<(TenantId, EventType), Option<Arc<EventTypeDefinition>>>,
}

impl Default for KnownTypes {
    fn default() -> Self {
        Self {
            read: TtlCache::new(10_000, TYPE_TTL),
        }
    }
}

impl KnownTypes {
    async fn get(
        &self,
        store: &impl OutboundStore,
        tenant: &TenantId,
        name: &EventType,
    ) -> Result<Option<Arc<EventTypeDefinition>>, StoreError> {
        let key = (tenant.clone(), name.clone());
        if let Some(known) = self.read.get(&key) {
            return Ok(known);
        }
        let found = store.event_type(tenant, name).await?.map(Arc::new);
        self.read.put(key, found.clone());
        Ok(found)
    }

    fn forget(&self, tenant: &TenantId, name: &EventType) {
        self.read.remove(&(tenant.clone(), name.clone()));
    }
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    C: Clock,
{
    /// Add `name` to `tenant`'s catalog.
    pub async fn register_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        change: EventTypeChange,
    ) -> Result<EventTypeDefinition, CatalogError> {
        let name = EventType::parse(name).map_err(|e| CatalogError::Name(e.to_string()))?;
        if self.store.event_type_count(tenant).await? >= MAX_EVENT_TYPES {
            return Err(CatalogError::TooMany);
        }
        // One registered already fails the put's condition: `Exists`.
        let mut definition = EventTypeDefinition::new(tenant.clone(), name, self.clock.now());
        definition.apply(change)?;
        self.save(definition, CatalogError::Exists).await
    }

    /// Change a registered type (deprecating it is a change too).
    pub async fn update_event_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
        change: EventTypeChange,
    ) -> Result<EventTypeDefinition, CatalogError> {
        let mut definition = self.event_type(tenant, name).await?;
        definition.apply(change)?;
        definition.updated_at = self.clock.now();
        self.save(definition, CatalogError::Conflict).await
    }

    /// One registered type, read now (not from what this function remembers).
    pub async fn event_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
    ) -> Result<EventTypeDefinition, CatalogError> {
        self.store
            .event_type(tenant, name)
            .await?
            .ok_or_else(|| CatalogError::Unknown(name.clone()))
    }

    /// `tenant`'s catalog, by name.
    pub async fn event_types(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<EventTypeDefinition>, CatalogError> {
        let mut types = self.store.event_types(tenant).await?;
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(types)
    }

    async fn save(
        &self,
        mut definition: EventTypeDefinition,
        conflict: fn(EventType) -> CatalogError,
    ) -> Result<EventTypeDefinition, CatalogError> {
        match self.store.put_event_type(&definition).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(conflict(definition.name)),
            Err(e) => return Err(e.into()),
        }
        self.known_types
            .forget(&definition.tenant, &definition.name);
        definition.version += 1;
        Ok(definition)
    }

    /// What the catalog says of publishing `payload` as `name`.
    pub(crate) async fn check_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
        payload: &[u8],
    ) -> Result<TypeCheck, StoreError> {
        let Some(definition) = self.known_types.get(&self.store, tenant, name).await? else {
            return Ok(TypeCheck::Unregistered);
        };
        let Some(schema) = &definition.schema else {
            return Ok(TypeCheck::Registered);
        };
        let Ok(payload) = serde_json::from_slice::<Value>(payload) else {
            // The caller checked it is JSON; a body that is not cannot match.
            return Ok(TypeCheck::Mismatch(SchemaMismatch {
                pointer: String::new(),
                keyword: "type".into(),
                message: "the payload is not JSON".into(),
            }));
        };
        Ok(match schema.check(&payload) {
            Ok(()) => TypeCheck::Registered,
            Err(mismatch) => TypeCheck::Mismatch(mismatch),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn invoice_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["id", "amount"],
            "properties": {
                "id": {"type": "string", "pattern": "^inv_[a-z0-9]+$"},
                "amount": {"type": "integer", "minimum": 0},
                "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
            }
        })
    }

    #[test]
    fn a_payload_that_breaks_the_schema_is_named_by_pointer_and_keyword() {
        let schema = PayloadSchema::new(invoice_schema()).expect("valid");
        assert_eq!(schema.check(&json!({"id": "inv_1", "amount": 5})), Ok(()));
        for (payload, pointer, keyword) in [
            (json!({"id": "inv_1", "amount": -1}), "/amount", "minimum"),
            (json!({"id": "inv_1", "amount": "5"}), "/amount", "type"),
            (json!({"id": "INV", "amount": 1}), "/id", "pattern"),
            (json!({"amount": 1}), "", "required"),
            (
                json!({"id": "inv_1", "amount": 1, "lines": [{"sku": "a"}, {}]}),
                "/lines/1",
                "required",
            ),
            (json!([1, 2]), "", "type"),
        ] {
            let mismatch = schema.check(&payload).expect_err("mismatch");
            assert_eq!(
                (mismatch.pointer.as_str(), mismatch.keyword.as_str()),
                (pointer, keyword),
                "{payload}: {mismatch}"
            );
        }
    }

    #[test]
    fn schemas_that_are_invalid_remote_too_large_or_too_deep_are_refused_with_the_reason() {
        for (document, expected) in [
            (json!({"type": "strnig"}), "InvalidSchema"),
            (json!({"minimum": "five"}), "InvalidSchema"),
            (json!("not a schema"), "InvalidSchema"),
            (
                json!({"$ref": "https://schemas.example/invoice.json"}),
                "InvalidSchema",
            ),
            (
                json!({"type": "string", "pattern": "(unclosed"}),
                "InvalidSchema",
            ),
        ] {
            let refused = PayloadSchema::new(document.clone()).expect_err("refused");
            assert!(
                format!("{refused:?}").starts_with(expected),
                "{document}: {refused:?}"
            );
        }
        let mut deep = json!({"type": "object"});
        for _ in 0..MAX_SCHEMA_DEPTH {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert_eq!(
            PayloadSchema::new(deep).map(|_| ()),
            Err(CatalogError::SchemaTooDeep)
        );
        let huge = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert_eq!(
            PayloadSchema::new(huge).map(|_| ()),
            Err(CatalogError::SchemaTooLarge)
        );
        // A local reference is fine.
        let local = json!({
            "$defs": {"money": {"type": "integer"}},
            "properties": {"amount": {"$ref": "#/$defs/money"}}
        });
        let schema = PayloadSchema::new(local).expect("local refs resolve");
        assert_eq!(
            schema.check(&json!({"amount": 1.5})).map_err(|m| m.pointer),
            Err("/amount".to_owned())
        );
    }

    #[test]
    fn depth_counts_nesting_and_stops_early_on_hostile_documents() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": 2}]})), 3);
        let mut hostile = json!(0);
        for _ in 0..1_000 {
            hostile = json!([hostile]);
        }
        assert_eq!(depth(&hostile), MAX_SCHEMA_DEPTH + 1);
    }

    #[test]
    fn examples_must_match_the_schema_and_stay_bounded() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let name = EventType::parse("invoice.paid").expect("type");
        let mut definition = EventTypeDefinition::new(tenant, name, SystemTime::UNIX_EPOCH);
        let refused = definition.apply(EventTypeChange {
            schema: Some(invoice_schema()),
            examples: Some(vec![
                json!({"id": "inv_1", "amount": 1}),
                json!({"id": "inv_2"}),
            ]),
            ..EventTypeChange::default()
        });
        assert!(
            matches!(refused, Err(CatalogError::ExampleMismatch { index: 1, ref mismatch }) if mismatch.keyword == "required"),
            "{refused:?}"
        );
        let too_many = definition.apply(EventTypeChange {
            schema: Some(Value::Null),
            examples: Some(vec![json!({}); MAX_EXAMPLES + 1]),
            ..EventTypeChange::default()
        });
        assert_eq!(too_many, Err(CatalogError::TooManyExamples));
        let long = definition.apply(EventTypeChange {
            description: Some("d".repeat(MAX_DESCRIPTION_CHARS + 1)),
            ..EventTypeChange::default()
        });
        assert_eq!(long, Err(CatalogError::Description));
    }
}
