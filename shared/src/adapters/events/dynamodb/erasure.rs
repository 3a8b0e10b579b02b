//! Erasing payloads (a data-subject request): the record becomes a tombstone and every erasure
//! leaves an audit item.
//!
//! Cost: one `UpdateItem` on the record (billed by the item before, payload included; it
//! touches no index, since neither `tenant_status` nor `pending_status` changes); for a payload
//! kept in S3, a `DeleteObject` and a second small `UpdateItem` dropping the location; one
//! `PutItem` of about 200 bytes for the audit item. Operator actions only, never on a hot path.
//!
//! The record is marked erased first, so from that moment no processor, replay or redrive
//! uses it; the S3 object is deleted after, and its location dropped last: an erasure that
//! stops between the two leaves the location on the tombstone, and running it again finishes.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use sha2::{Digest, Sha256};

use super::{DynamoEventStore, item_key, record_from_item};
use crate::{
    adapters::dynamodb::{
        expression::{UpdateBuilder, is_conditional_failure},
        item::{ms, n, s},
        unavailable,
    },
    clock::unix_millis,
    ports::{Erased, Erasure, ErasureAudit, EventErasure, StoreError},
    record::{EventKey, EventRecord},
};

/// An audit item's key: `#` first, which no tenant id holds, so it is never an event's (nor a
/// content note's, which start `#content#`). Tenant, then the time and a digest of what was
/// erased, so two erasures never share a key.
pub(crate) fn erasure_pk(audit: &ErasureAudit) -> String {
    let digest = hex::encode(Sha256::digest(
        format!("{}\n{}", audit.actor, audit.target).as_bytes(),
    ));
    format!(
        "#audit#{}#erase#{}#{}",
        audit.tenant,
        unix_millis(audit.at),
        &digest[..16]
    )
}

impl DynamoEventStore {
    /// Delete a tombstone's lingering S3 object, then drop its location.
    async fn finish_erasure(&self, mut record: EventRecord) -> Result<EventRecord, StoreError> {
        let Some(location) = record.payload_location.take() else {
            return Ok(record);
        };
        let bucket = self.payloads.as_ref().ok_or_else(no_bucket)?;
        bucket.delete(&location).await?;
        UpdateBuilder::new(item_key(&record.key))
            .remove("payload_location")
            .condition("attribute_exists(#pk)", &["pk"])
            .build()
            .update_item(&self.client, &self.table)
            .send()
            .await
            .map_err(|err| unavailable("UpdateItem", &self.table, &err))?;
        Ok(record)
    }

    /// The record as stored, without loading an outside payload.
    async fn stored(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", &self.table, &err))?;
        Ok(output.item().map(record_from_item).transpose()?)
    }
}

fn no_bucket() -> StoreError {
    StoreError::Rejected(
        "the payload is kept in the payloads bucket, and no bucket is configured \
         (pass --payloads-bucket or set PAYLOADS_BUCKET); nothing was erased"
            .into(),
    )
}

#[async_trait]
impl EventErasure for DynamoEventStore {
    async fn erase_payload(&self, key: &EventKey, erasure: &Erasure) -> Result<Erased, StoreError> {
        let mut change = UpdateBuilder::new(item_key(key))
            .set("erased_at", ms(erasure.at))
            .set("erased_by", s(&erasure.actor))
            .remove("payload")
            .remove("payload_z")
            // The key is built from the tenant; the stored tenant must agree, as a second
            // guard that no other tenant's item is ever changed.
            .condition(
                "attribute_exists(#pk) AND #tenant = :tenant",
                &["pk", "tenant"],
            )
            .value(":tenant", s(key.tenant.as_str()))
            .condition("attribute_not_exists(#erased_at)", &["erased_at"]);
        if self.payloads.is_none() {
            // Without the bucket an outside payload could not be deleted: change nothing.
            change = change.condition(
                "attribute_not_exists(#payload_location)",
                &["payload_location"],
            );
        }
        let result = change
            .build()
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let record = output
                    .attributes()
                    .map(record_from_item)
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::Malformed("an erasure returned no attributes".into())
                    })?;
                let offloaded = record.payload_location.is_some();
                Ok(Erased::Now {
                    tombstone: Box::new(self.finish_erasure(record).await?),
                    offloaded,
                })
            }
            Err(err) if is_conditional_failure(&err) => match self.stored(key).await? {
                None => Ok(Erased::NotFound),
                Some(record) if record.key.tenant != key.tenant => Ok(Erased::NotFound),
                Some(record) if record.is_erased() => Ok(Erased::Already(Box::new(
                    self.finish_erasure(record).await?,
                ))),
                Some(record) if record.payload_location.is_some() && self.payloads.is_none() => {
                    Err(no_bucket())
                }
                Some(_) => Err(StoreError::Conflict(
                    "the record changed during the erasure".into(),
                )),
            },
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }

    async fn record_erasure(&self, audit: &ErasureAudit) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(erasure_pk(audit)))
            .item("kind", s("erasure"))
            .item("erased_tenant", s(audit.tenant.as_str()))
            .item("actor", s(&audit.actor))
            .item("target", s(&audit.target))
            .item("items", n(audit.items))
            .item("at", ms(audit.at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| unavailable("PutItem", &self.table, &err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::from_unix_millis, ids::TenantId};

    #[test]
    fn audit_keys_are_tenant_scoped_and_never_an_events() {
        let audit = ErasureAudit {
            tenant: TenantId::parse("acme").expect("tenant"),
            at: from_unix_millis(1_700_000_000_000),
            actor: "jo".into(),
            target: "event stripe/evt_#1/../x".into(),
            items: 1,
        };
        let pk = erasure_pk(&audit);
        assert!(pk.starts_with("#audit#acme#erase#1700000000000#"), "{pk}");
        assert!(!pk.contains("evt_") && !pk.contains(".."), "{pk}");
        let other = ErasureAudit {
            target: "event stripe/evt_2".into(),
            ..audit
        };
        assert_ne!(erasure_pk(&other), pk);
    }
}
