//! Tenants' event catalogs: one item per type beside the tenant's endpoints
//! (`t#{tenant}` / `type#{name}`), its schema and examples as JSON text. Written by operators
//! and partners rarely, read by publishers once per type and lifetime.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::{DynamoOutboundStore, key, tenant_pk};
use crate::{
    adapters::dynamodb::{
        expression::is_conditional_failure,
        item::{Item, ItemError, ms, n, number, opt_boolean, opt_millis, opt_string, parsed, s},
        unavailable,
    },
    ids::TenantId,
    outbound::{
        catalog::{EventTypeDefinition, PayloadSchema},
        ids::EventType,
        ports::EventTypeStore,
    },
    ports::StoreError,
};

const PREFIX: &str = "type#";

fn type_key(tenant: &TenantId, name: &EventType) -> Item {
    key(tenant_pk(tenant), format!("{PREFIX}{name}"))
}

fn definition_from_item(item: &Item) -> Result<EventTypeDefinition, ItemError> {
    let schema = opt_string(item, "schema")?
        .map(|text| {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|document| PayloadSchema::new(document).ok())
                .ok_or(ItemError::Invalid("schema"))
        })
        .transpose()?;
    let examples = match opt_string(item, "examples")? {
        Some(text) => serde_json::from_str(text).map_err(|_| ItemError::Invalid("examples"))?,
        None => Vec::new(),
    };
    Ok(EventTypeDefinition {
        tenant: parsed(item, "tenant")?,
        name: parsed(item, "name")?,
        description: opt_string(item, "description")?
            .unwrap_or_default()
            .to_owned(),
        schema,
        examples,
        deprecated: opt_boolean(item, "deprecated")?.unwrap_or(false),
        created_at: opt_millis(item, "created_at")?.unwrap_or(std::time::UNIX_EPOCH),
        updated_at: opt_millis(item, "updated_at")?.unwrap_or(std::time::UNIX_EPOCH),
        version: number(item, "version")?,
    })
}

#[async_trait]
impl EventTypeStore for DynamoOutboundStore {
    async fn put_event_type(&self, definition: &EventTypeDefinition) -> Result<(), StoreError> {
        let mut item = type_key(&definition.tenant, &definition.name);
        item.insert("tenant".into(), s(definition.tenant.as_str()));
        item.insert("name".into(), s(definition.name.as_str()));
        item.insert("description".into(), s(&definition.description));
        if let Some(schema) = &definition.schema {
            item.insert("schema".into(), s(schema.document().to_string()));
        }
        if !definition.examples.is_empty() {
            item.insert(
                "examples".into(),
                s(Value::from(definition.examples.clone()).to_string()),
            );
        }
        item.insert(
            "deprecated".into(),
            AttributeValue::Bool(definition.deprecated),
        );
        item.insert("created_at".into(), ms(definition.created_at));
        item.insert("updated_at".into(), ms(definition.updated_at));
        item.insert("version".into(), n(definition.version + 1));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if definition.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :read")
                .expression_attribute_values(":read", n(definition.version))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::Conflict(format!(
                "event type {}",
                definition.name
            ))),
            Err(e) => Err(unavailable("PutItem", &self.table, &e)),
        }
    }

    async fn event_type(
        &self,
        tenant: &TenantId,
        name: &EventType,
    ) -> Result<Option<EventTypeDefinition>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(type_key(tenant, name)))
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &self.table, &e))?;
        Ok(output.item.as_ref().map(definition_from_item).transpose()?)
    }

    async fn event_types(&self, tenant: &TenantId) -> Result<Vec<EventTypeDefinition>, StoreError> {
        self.tenant_items(tenant, PREFIX, false)
            .await?
            .iter()
            .map(|item| Ok(definition_from_item(item)?))
            .collect()
    }

    async fn event_type_count(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        self.tenant_item_count(tenant, PREFIX).await
    }
}
