//! The event records in DynamoDB: one item per event, keyed `{tenant}#{provider}#{event_id}`,
//! with a GSI (`by_tenant_status`: `tenant_status`, `status_at`) for operators' listings, and a
//! sparse one (`by_pending_status`: `pending_status`, `status_at`) holding only the events that
//! wait in `enqueued`, `processing` or `failed`, for reconcile.
//!
//! Both indexes are sparse and sharded. A new record is written once, with no index attribute
//! (its pointer is on the queue already), so an event processed first time costs one index
//! write, the entry it ends in; and every index partition key names a shard of the tenant's
//! status (`acme#processed#5`), so one busy tenant spreads over [`STATUS_SHARDS`] partitions.
//! Listings read every shard, and the unsharded partition that records stored before the
//! shards keep until they move on.
//!
//! Every status change goes through [`status_change`]: it keeps `tenant_status`, `status_at`
//! and `pending_status` in step with `status`, and conditions the write on the record being in
//! a status the life allows the move from, so the table enforces the same state machine as
//! [`EventStatus::can_become`].
//!
//! - [`records`]: record ↔ item.
//! - [`marks`]: the processor's `processed` and failure marks.
//! - [`commit`]: the projections transaction.
//! - [`operations`]: operators' requeues and discards, the pending and status indexes.
//! - [`erasure`]: erasing payloads into tombstones, and the erasures' audit records.

mod commit;
mod erasure;
mod marks;
mod operations;
pub(crate) mod payloads;
mod records;

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client, operation::put_item::PutItemError, types::ReturnValuesOnConditionCheckFailure,
};

use self::payloads::PayloadBucket;
pub(crate) use self::records::{record_from_item, record_to_item};
pub use self::{
    commit::MAX_ERROR_CHARS,
    payloads::{DONE_TAG, INLINE_PAYLOAD_BYTES},
};
use crate::{
    adapters::dynamodb::{
        expression::{Expression, UpdateBuilder, is_conditional_failure},
        item::{Item, ms, n, s},
        unavailable,
    },
    aws::describe,
    clock::unix_secs,
    ids::{EventId, TenantId},
    ports::{ContentClaim, EventStore, PutOutcome, StoreError},
    record::{EventKey, EventRecord, EventStatus},
};

/// The status index: partition `tenant_status`, sort `status_at`.
pub const STATUS_INDEX: &str = "by_tenant_status";

/// The sparse index of pending events: partition `pending_status`, sort `status_at`.
pub const PENDING_INDEX: &str = "by_pending_status";

/// How many partitions each pending status is spread over, so a busy ingress never makes one
/// index partition hot. Reconcile reads them all.
pub const PENDING_SHARDS: u8 = 8;

/// How many partitions each tenant's status is spread over in the status index: a tenant
/// taking 3,000 events/s writes under 400 units/s to each.
pub const STATUS_SHARDS: u8 = 8;

/// The attributes a listing reads. The status index must project at least these (an `INCLUDE`
/// projection of the non-key ones keeps payloads out of the index).
pub const SUMMARY_ATTRIBUTES: [&str; 10] = [
    "pk",
    "tenant",
    "provider",
    "event_id",
    "event_type",
    "status",
    "attempts",
    "retry_exhausted",
    "last_error",
    "received_at",
];

/// The event-record ports on the events table.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    pub(super) client: Client,
    pub(super) table: String,
    /// Where commits write projections (see `with_projections`); `None` for the ingress,
    /// which never commits.
    pub(super) projections: Option<String>,
    /// Where payloads over [`INLINE_PAYLOAD_BYTES`] go (see `with_payloads`); without it such
    /// a payload is refused.
    pub(super) payloads: Option<PayloadBucket>,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            projections: None,
            payloads: None,
        }
    }

    /// Keep payloads over [`INLINE_PAYLOAD_BYTES`] in `bucket`.
    pub fn with_payloads(
        mut self,
        client: impl Into<crate::aws::LazyClient<aws_sdk_s3::Client>>,
        bucket: impl Into<String>,
    ) -> Self {
        self.payloads = Some(PayloadBucket::new(client, bucket));
        self
    }

    /// The record with its payload loaded, if it is kept outside.
    pub(super) async fn with_payload(
        &self,
        mut record: EventRecord,
    ) -> Result<EventRecord, StoreError> {
        // A reader without the bucket (an operator listing records) gets the record without
        // its payload; the functions that need payloads are always given the bucket.
        // An erased record's object is gone (or going): it has nothing to load.
        if let (Some(location), Some(bucket), false) =
            (&record.payload_location, &self.payloads, record.is_erased())
        {
            record.payload = bucket.get(location).await?;
        }
        Ok(record)
    }

    /// Keep an outside payload from expiring while its event is failed or dead.
    pub(super) async fn keep_outside_payload(
        &self,
        record: &EventRecord,
    ) -> Result<(), StoreError> {
        match (&record.payload_location, &self.payloads) {
            (Some(location), Some(bucket)) => bucket.keep(location).await,
            _ => Ok(()),
        }
    }

    /// Tag an outside payload for expiry; best effort (an untagged payload only lingers).
    pub(super) async fn release_outside_payload(&self, record: &EventRecord) {
        if let (Some(location), Some(bucket)) = (&record.payload_location, &self.payloads)
            && let Err(e) = bucket.release(location).await
        {
            tracing::warn!(error = %e, "could not mark a payload for expiry");
        }
    }

    /// The table commits write projections to. Without it, a commit with writes is refused.
    pub fn with_projections(mut self, table: impl Into<String>) -> Self {
        self.projections = Some(table.into());
        self
    }

    /// Send a status change; `Ok(false)` when its condition refused it (the record moved on).
    async fn change_status(&self, change: Expression) -> Result<bool, StoreError> {
        match change.update_item(&self.client, &self.table).send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_failure(&err) => Ok(false),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }

    /// Count one more delivery of a stored event, for the health report. Best effort: the
    /// delivery's answer never waits on bookkeeping that failed.
    async fn count_duplicate(&self, key: &EventKey) {
        let result = UpdateBuilder::new(item_key(key))
            .set_clause(
                "#duplicates = if_not_exists(#duplicates, :zero) + :one",
                &["duplicates"],
            )
            .value(":zero", n(0))
            .value(":one", n(1))
            .condition("attribute_exists(#pk)", &["pk"])
            .build()
            .update_item(&self.client, &self.table)
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(tenant = %key.tenant, event_id = %key.event_id,
                error = %describe(&err), "could not count a duplicate delivery");
        }
    }
}

/// The partition key. Tenant ids and provider names never contain `#`, so no two events share
/// a key, whatever characters the provider's event id holds.
pub(crate) fn event_pk(key: &EventKey) -> String {
    format!("{}#{}#{}", key.tenant, key.provider, key.event_id)
}

/// A content note's key: `#` first, which no tenant id holds, so it can never be an event's.
/// It carries none of the index attributes, so no listing or reconcile sees it.
pub(crate) fn content_pk(key: &EventKey, content: &str) -> String {
    format!("#content#{}#{}#{content}", key.tenant, key.provider)
}

/// The item key of an event record.
pub(crate) fn item_key(key: &EventKey) -> Item {
    Item::from([("pk".to_owned(), s(event_pk(key)))])
}

/// The status index's partition key for an event in `status`: its tenant, the status and a
/// shard derived from the event's key, e.g. `acme#failed#3`.
pub(crate) fn tenant_status(key: &EventKey, status: EventStatus) -> String {
    format!("{}#{status}#{}", key.tenant, shard(key, STATUS_SHARDS))
}

/// Every status index partition a tenant's events in `status` may sit in: each shard, and the
/// unsharded one of records stored before the shards.
pub(crate) fn tenant_status_partitions(tenant: &TenantId, status: EventStatus) -> Vec<String> {
    std::iter::once(format!("{tenant}#{status}"))
        .chain((0..STATUS_SHARDS).map(|shard| format!("{tenant}#{status}#{shard}")))
        .collect()
}

/// The pending index's partition key for an event in a pending `status`: the status and a
/// shard derived from the event's key, e.g. `failed#3`.
pub(crate) fn pending_partition(key: &EventKey, status: EventStatus) -> String {
    format!("{status}#{}", shard(key, PENDING_SHARDS))
}

/// A shard of `shards`, fixed by the event's key.
fn shard(key: &EventKey, shards: u8) -> u8 {
    crate::shard::shard_of(&event_pk(key), shards)
}

/// The move of an event from one of `from` to `to` at `at`: sets the status and the index
/// attributes that follow it, and conditions the write on the status it moves from. Only the
/// moves the life allows are kept from `from`; callers add their own clauses and conditions.
pub(crate) fn status_change(
    key: &EventKey,
    from: &[EventStatus],
    to: EventStatus,
    at: SystemTime,
) -> UpdateBuilder {
    let mut change = UpdateBuilder::new(item_key(key))
        .set("status", s(to.as_str()))
        .set("tenant_status", s(tenant_status(key, to)))
        .set("status_at", ms(at));
    change = if to.is_pending() {
        change.set("pending_status", s(pending_partition(key, to)))
    } else {
        change.remove("pending_status")
    };
    let sources: Vec<EventStatus> = from.iter().copied().filter(|f| f.can_become(to)).collect();
    if sources.is_empty() {
        // No allowed source: a condition no record meets (statuses are never empty).
        return change
            .condition("#status = :from_none", &["status"])
            .value(":from_none", s(""));
    }
    let placeholders: Vec<String> = (0..sources.len()).map(|i| format!(":from{i}")).collect();
    change = change.condition(
        &format!("#status IN ({})", placeholders.join(", ")),
        &["status"],
    );
    for (placeholder, status) in placeholders.iter().zip(&sources) {
        change = change.value(placeholder, s(status.as_str()));
    }
    change
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError> {
        // The payload is deflated once, here; one too large for its record goes first to S3,
        // so the record never points at nothing.
        let mut item = record_to_item(record);
        if records::inline_payload_bytes(&item) > INLINE_PAYLOAD_BYTES {
            let bucket = self.payloads.as_ref().ok_or_else(|| {
                StoreError::Rejected(format!(
                    "a payload over {INLINE_PAYLOAD_BYTES} bytes, and no payload bucket configured"
                ))
            })?;
            let location = PayloadBucket::location(&record.key, &record.payload_hash);
            bucket.put(&location, &record.payload).await?;
            item = record_to_item(&EventRecord {
                payload: Vec::new(),
                payload_location: Some(location),
                ..record.clone()
            });
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            // The existing item comes back with the refusal: no second read on duplicates.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(PutOutcome::Inserted),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(refused)) = err.as_service_error()
        else {
            return Err(unavailable("PutItem", &self.table, &err));
        };
        let existing = match refused.item() {
            Some(item) => record_from_item(item)?,
            None => self.get(&record.key).await?.ok_or_else(|| {
                // Gone between the check and the read (deleted or expired): the provider's
                // retry will store it afresh.
                StoreError::Unavailable(format!(
                    "PutItem on {}: the existing record vanished after the conditional check",
                    self.table
                ))
            })?,
        };
        self.count_duplicate(&record.key).await;
        Ok(PutOutcome::Existing(Box::new(existing)))
    }

    async fn claim_content(
        &self,
        key: &EventKey,
        content: &str,
        replacing: Option<&EventId>,
        expires_at: SystemTime,
    ) -> Result<ContentClaim, StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(content_pk(key, content)))
            .item("event_id", s(key.event_id.as_str()))
            .item("expires_at", n(unix_secs(expires_at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#event_id", "event_id")
            .expression_attribute_values(":mine", s(key.event_id.as_str()));
        request = match replacing {
            Some(stale) => request
                .condition_expression(
                    "attribute_not_exists(#pk) OR #event_id = :mine OR #event_id = :stale",
                )
                .expression_attribute_values(":stale", s(stale.as_str())),
            None => request.condition_expression("attribute_not_exists(#pk) OR #event_id = :mine"),
        };
        let err = match request.send().await {
            Ok(_) => return Ok(ContentClaim::Claimed),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(refused)) = err.as_service_error()
        else {
            return Err(unavailable("PutItem", &self.table, &err));
        };
        let owner = refused
            .item()
            .and_then(|item| item.get("event_id"))
            .and_then(|v| v.as_s().ok())
            .and_then(|id| EventId::parse(id).ok())
            .ok_or_else(|| {
                StoreError::Malformed("a content note without a valid event id".into())
            })?;
        Ok(ContentClaim::Seen(owner))
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", &self.table, &err))?;
        match output.item().map(record_from_item).transpose()? {
            Some(record) => Ok(Some(self.with_payload(record).await?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        adapters::dynamodb::expression::test_support::assert_bound_exactly,
        clock::from_unix_millis, ids::EventId, provider::Provider,
    };

    fn key() -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse("evt_1").expect("id"),
        }
    }

    #[test]
    fn a_status_change_moves_the_index_attributes_and_checks_the_source() {
        let at = from_unix_millis(1_700_000_000_000);
        let e = status_change(&key(), &[EventStatus::Received], EventStatus::Enqueued, at).build();
        assert_bound_exactly(&e);
        assert_eq!(e.values[":from0"], s("received"));
        let partition = e.values[":tenant_status"].as_s().expect("S").clone();
        let (status, shard) = partition.rsplit_once('#').expect("shard");
        assert_eq!(status, "acme#enqueued");
        assert!(shard.parse::<u8>().expect("shard") < STATUS_SHARDS);
        assert!(
            tenant_status_partitions(&key().tenant, EventStatus::Enqueued).contains(&partition)
        );
        assert!(e.update.contains("#pending_status = :pending_status"));
        let done = status_change(
            &key(),
            &[EventStatus::Processing],
            EventStatus::Processed,
            at,
        )
        .build();
        assert_bound_exactly(&done);
        assert!(done.update.ends_with("REMOVE #pending_status"));
    }

    #[test]
    fn moves_the_life_forbids_are_dropped_from_the_condition() {
        let at = from_unix_millis(0);
        let e = status_change(
            &key(),
            &[EventStatus::Processed, EventStatus::Dead],
            EventStatus::Discarded,
            at,
        )
        .build();
        assert_bound_exactly(&e);
        assert_eq!(e.values[":from0"], s("dead"));
        assert!(!e.values.values().any(|v| v == &s("processed")));
    }
}
