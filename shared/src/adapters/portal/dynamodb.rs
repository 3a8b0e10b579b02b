//! Spent links and open sessions in the outbound table, under their own partitions
//! (`pk = portal#link#{nonce}` and `portal#session#{digest of the id}`, `sk = portal`), expired
//! by its TTL.
//! Reads check the expiry too: TTL deletes lazily.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::{Client, types::AttributeValue};

use crate::{
    adapters::dynamodb::{
        expression::is_conditional_failure,
        item::{Item, boolean, n, number, opt_boolean, parsed, s},
        unavailable,
    },
    clock::unix_secs,
    portal::{PortalStore, StoredSession},
    ports::StoreError,
};

/// The portal's items in the outbound table.
#[derive(Debug, Clone)]
pub struct DynamoPortalStore {
    client: Client,
    table: String,
}

impl DynamoPortalStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn key(pk: String) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s("portal"))])
}

fn session_key(digest: &str) -> Item {
    key(format!("portal#session#{digest}"))
}

#[async_trait]
impl PortalStore for DynamoPortalStore {
    async fn spend_link(&self, nonce: &str, expires_at: SystemTime) -> Result<bool, StoreError> {
        let mut item = key(format!("portal#link#{nonce}"));
        item.insert("expires_at".into(), n(unix_secs(expires_at)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("PutItem", &self.table, &e)),
        }
    }

    async fn put_session(&self, key: &str, session: &StoredSession) -> Result<(), StoreError> {
        let mut item = session_key(key);
        item.insert("tenant".into(), s(session.tenant.as_str()));
        item.insert("read_only".into(), AttributeValue::Bool(session.read_only));
        item.insert("operator".into(), AttributeValue::Bool(session.operator));
        item.insert("expires_at".into(), n(unix_secs(session.expires_at)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &self.table, &e))?;
        Ok(())
    }

    async fn session(&self, key: &str) -> Result<Option<StoredSession>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &self.table, &e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let expires: u64 = number(&item, "expires_at")?;
        Ok(Some(StoredSession {
            tenant: parsed(&item, "tenant")?,
            read_only: boolean(&item, "read_only")?,
            operator: opt_boolean(&item, "operator")?.unwrap_or(false),
            expires_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires),
        }))
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &self.table, &e))?;
        Ok(())
    }
}
