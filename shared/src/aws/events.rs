//! The event records in DynamoDB: one item per event, keyed `{tenant}#{provider}#{event_id}`,
//! with a GSI (`by_tenant_status`: `tenant_status`, `status_at`) for operators' listings, and a
//! sparse one (`by_pending_status`: `pending_status`, `status_at`) holding only the events that
//! wait in `received`, `enqueued` or `processing`, for reconcile. Every status change keeps
//! `tenant_status`, `status_at` and `pending_status` in step.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    operation::{put_item::PutItemError, update_item::UpdateItemError},
    types::{AttributeValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    item::{
        Item, ItemError, b, boolean, bytes, millis, ms, n, number, opt_millis, opt_number,
        opt_string, parsed, put_opt, s, string,
    },
    unavailable,
};
use crate::{
    ids::TenantId,
    ports::{EventListing, EventStore, EventSummary, PutOutcome, StoreError},
    record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
};

/// The status index: partition `tenant_status`, sort `status_at`.
pub const STATUS_INDEX: &str = "by_tenant_status";

/// The sparse index of pending events: partition `pending_status`, sort `status_at`.
pub const PENDING_INDEX: &str = "by_pending_status";

/// How many partitions each pending status is spread over, so a busy ingress never makes one
/// index partition hot. Reconcile reads them all.
pub const PENDING_SHARDS: u8 = 8;

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

/// [`EventStore`] and [`EventListing`] on the events table.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    pub(super) client: Client,
    pub(super) table: String,
    /// Where commits write projections (see `with_projections`); `None` for the ingress,
    /// which never commits.
    pub(super) projections: Option<String>,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            projections: None,
        }
    }

    fn key(key: &EventKey) -> (String, AttributeValue) {
        ("pk".to_owned(), s(event_pk(key)))
    }

    /// Count one more delivery of a stored event, for the health report. Best effort: the
    /// delivery's answer never waits on bookkeeping that failed.
    async fn count_duplicate(&self, key: &EventKey) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Item::from([Self::key(key)])))
            .update_expression("ADD duplicates :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(tenant = %key.tenant, event_id = %key.event_id,
                error = %super::describe(&err), "could not count a duplicate delivery");
        }
    }
}

/// The partition key. Tenant ids and provider names never contain `#`, so no two events share
/// a key, whatever characters the provider's event id holds.
pub(crate) fn event_pk(key: &EventKey) -> String {
    format!("{}#{}#{}", key.tenant, key.provider, key.event_id)
}

/// The status index's partition key: a tenant's events in one status.
pub(crate) fn tenant_status(tenant: &TenantId, status: EventStatus) -> String {
    format!("{tenant}#{status}")
}

/// The pending index's partition key for an event in a pending `status`: the status and a
/// shard derived from the event's key, e.g. `received#3`.
pub(crate) fn pending_partition(key: &EventKey, status: EventStatus) -> String {
    format!("{status}#{}", pending_shard(key))
}

fn pending_shard(key: &EventKey) -> u8 {
    use sha2::{Digest, Sha256};
    Sha256::digest(event_pk(key).as_bytes())[0] % PENDING_SHARDS
}

/// When the record's current status was set, as far as the record tells.
fn status_at(record: &EventRecord) -> SystemTime {
    match record.status {
        EventStatus::Enqueued => record.enqueued_at,
        EventStatus::Processed | EventStatus::Dead => record.completed_at,
        EventStatus::Discarded => record.discarded_at,
        _ => None,
    }
    .unwrap_or(record.received_at)
}

pub(crate) fn record_to_item(record: &EventRecord) -> Item {
    let key = &record.key;
    let mut item = Item::from([
        ("pk".to_owned(), s(event_pk(key))),
        ("tenant".to_owned(), s(key.tenant.as_str())),
        ("provider".to_owned(), s(key.provider.as_str())),
        ("event_id".to_owned(), s(key.event_id.as_str())),
        ("verification".to_owned(), s(record.verification.as_str())),
        ("status".to_owned(), s(record.status.as_str())),
        ("attempts".to_owned(), n(record.attempts)),
        (
            "retry_exhausted".to_owned(),
            AttributeValue::Bool(record.retry_exhausted),
        ),
        ("received_at".to_owned(), ms(record.received_at)),
        ("payload".to_owned(), b(record.payload.clone())),
        ("payload_hash".to_owned(), s(&record.payload_hash)),
        (
            "tenant_status".to_owned(),
            s(tenant_status(&key.tenant, record.status)),
        ),
        ("status_at".to_owned(), ms(status_at(record))),
    ]);
    put_opt(&mut item, "event_type", record.event_type.as_deref().map(s));
    put_opt(
        &mut item,
        "provider_created_at",
        record.provider_created_at.map(ms),
    );
    put_opt(
        &mut item,
        "request_id",
        record.correlation.request_id.as_deref().map(s),
    );
    put_opt(
        &mut item,
        "client_request_id",
        record.correlation.client_request_id.as_deref().map(s),
    );
    put_opt(&mut item, "last_error", record.last_error.as_deref().map(s));
    put_opt(&mut item, "enqueued_at", record.enqueued_at.map(ms));
    put_opt(&mut item, "completed_at", record.completed_at.map(ms));
    put_opt(
        &mut item,
        "lease_owner",
        record.lease_owner.as_deref().map(s),
    );
    put_opt(&mut item, "lease_until", record.lease_until.map(ms));
    put_opt(&mut item, "outcome", record.outcome.as_deref().map(s));
    put_opt(
        &mut item,
        "expires_at",
        record.expires_at.map(|t| n(crate::clock::unix_secs(t))),
    );
    put_opt(
        &mut item,
        "pending_status",
        record
            .status
            .is_pending()
            .then(|| s(pending_partition(key, record.status))),
    );
    put_opt(
        &mut item,
        "replay_count",
        (record.replay_count > 0).then(|| n(record.replay_count)),
    );
    put_opt(&mut item, "replayed_at", record.replayed_at.map(ms));
    put_opt(&mut item, "note", record.note.as_deref().map(s));
    put_opt(&mut item, "discarded_at", record.discarded_at.map(ms));
    put_opt(
        &mut item,
        "duplicates",
        (record.duplicates > 0).then(|| n(record.duplicates)),
    );
    item
}

/// The key, checked against `pk` so an item copied or edited by hand cannot pass for another.
pub(crate) fn key_from_item(item: &Item) -> Result<EventKey, ItemError> {
    let key = EventKey {
        tenant: parsed(item, "tenant")?,
        provider: parsed(item, "provider")?,
        event_id: parsed(item, "event_id")?,
    };
    if string(item, "pk")? != event_pk(&key) {
        return Err(ItemError::Invalid("pk"));
    }
    Ok(key)
}

pub(crate) fn record_from_item(item: &Item) -> Result<EventRecord, ItemError> {
    Ok(EventRecord {
        key: key_from_item(item)?,
        event_type: opt_string(item, "event_type")?.map(str::to_owned),
        provider_created_at: opt_millis(item, "provider_created_at")?,
        correlation: Correlation {
            request_id: opt_string(item, "request_id")?.map(str::to_owned),
            client_request_id: opt_string(item, "client_request_id")?.map(str::to_owned),
        },
        verification: Verification::from_stored(string(item, "verification")?),
        status: parsed(item, "status")?,
        attempts: number(item, "attempts")?,
        retry_exhausted: boolean(item, "retry_exhausted")?,
        last_error: opt_string(item, "last_error")?.map(str::to_owned),
        received_at: millis(item, "received_at")?,
        enqueued_at: opt_millis(item, "enqueued_at")?,
        completed_at: opt_millis(item, "completed_at")?,
        payload: bytes(item, "payload")?.to_vec(),
        payload_hash: string(item, "payload_hash")?.to_owned(),
        lease_owner: opt_string(item, "lease_owner")?.map(str::to_owned),
        lease_until: opt_millis(item, "lease_until")?,
        outcome: opt_string(item, "outcome")?.map(str::to_owned),
        expires_at: opt_number::<u64>(item, "expires_at")?
            .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
        replay_count: opt_number(item, "replay_count")?.unwrap_or(0),
        replayed_at: opt_millis(item, "replayed_at")?,
        note: opt_string(item, "note")?.map(str::to_owned),
        discarded_at: opt_millis(item, "discarded_at")?,
        duplicates: opt_number(item, "duplicates")?.unwrap_or(0),
    })
}

pub(crate) fn summary_from_item(item: &Item) -> Result<EventSummary, ItemError> {
    Ok(EventSummary {
        key: key_from_item(item)?,
        event_type: opt_string(item, "event_type")?.map(str::to_owned),
        status: parsed(item, "status")?,
        attempts: number(item, "attempts")?,
        retry_exhausted: boolean(item, "retry_exhausted")?,
        last_error: opt_string(item, "last_error")?.map(str::to_owned),
        received_at: millis(item, "received_at")?,
    })
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn put_if_absent(&self, record: &EventRecord) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record_to_item(record)))
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

    async fn mark_enqueued(&self, key: &EventKey, at: SystemTime) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Item::from([Self::key(key)])))
            .update_expression(
                "SET #status = :enqueued, enqueued_at = :at, \
                 tenant_status = :tenant_status, status_at = :at, pending_status = :pending",
            )
            .condition_expression("#status = :received")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":enqueued", s(EventStatus::Enqueued.as_str()))
            .expression_attribute_values(":received", s(EventStatus::Received.as_str()))
            .expression_attribute_values(
                ":tenant_status",
                s(tenant_status(&key.tenant, EventStatus::Enqueued)),
            )
            .expression_attribute_values(":at", ms(at))
            .expression_attribute_values(
                ":pending",
                s(pending_partition(key, EventStatus::Enqueued)),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A processor got there first (or the record is gone): nothing left to mark.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Item::from([Self::key(key)])))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", &self.table, &err))?;
        output
            .item()
            .map(record_from_item)
            .transpose()
            .map_err(StoreError::from)
    }
}

#[async_trait]
impl EventListing for DynamoEventStore {
    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        limit: u32,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut start = None;
        // A page stops at 1 MB whatever the limit, so keep reading until enough or no more.
        while found.len() < wanted {
            let remaining = i32::try_from(wanted - found.len()).unwrap_or(i32::MAX);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("tenant_status = :tenant_status")
                .expression_attribute_values(":tenant_status", s(tenant_status(tenant, status)))
                .scan_index_forward(false)
                .limit(remaining)
                .set_exclusive_start_key(start);
            // Placeholders for every name: `status` is a reserved word, and the others may be.
            let mut projection = Vec::with_capacity(SUMMARY_ATTRIBUTES.len());
            for name in SUMMARY_ATTRIBUTES {
                let placeholder = format!("#{name}");
                query = query.expression_attribute_names(&placeholder, name);
                projection.push(placeholder);
            }
            let page = query
                .projection_expression(projection.join(", "))
                .send()
                .await
                .map_err(|err| unavailable("Query", &self.table, &err))?;
            for item in page.items() {
                let summary = summary_from_item(item)?;
                // The index key includes the tenant by construction; this only guards against
                // hand-written items.
                if &summary.key.tenant != tenant || summary.status != status {
                    return Err(StoreError::Malformed(
                        "attribute `tenant_status` disagrees with `tenant` or `status`".into(),
                    ));
                }
                found.push(summary);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        found.truncate(wanted);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        clock::from_unix_millis, ids::EventId, provider::Provider, record::Verification,
        secret::SecretSlot,
    };

    fn key() -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::StandardWebhooks,
            event_id: EventId::parse("msg_#1").expect("event id"),
        }
    }

    fn minimal() -> EventRecord {
        EventRecord::received(
            key(),
            None,
            None,
            Correlation::default(),
            Verification::Unsigned,
            Vec::new(),
            from_unix_millis(1_700_000_000_001),
        )
    }

    fn full() -> EventRecord {
        let mut r = EventRecord::received(
            key(),
            Some("invoice.paid".into()),
            Some(from_unix_millis(1_699_999_999_000)),
            Correlation {
                request_id: Some("req-1".into()),
                client_request_id: Some("x-1".into()),
            },
            Verification::Verified(SecretSlot::Previous),
            vec![0, 159, 146, 150, b'{', b'}'],
            from_unix_millis(1_700_000_000_001),
        );
        r.status = EventStatus::Dead;
        r.attempts = 5;
        r.retry_exhausted = true;
        r.last_error = Some("handler failed".into());
        r.enqueued_at = Some(from_unix_millis(1_700_000_000_050));
        r.completed_at = Some(from_unix_millis(1_700_000_009_000));
        r.lease_owner = Some("worker-1".into());
        r.lease_until = Some(from_unix_millis(1_700_000_060_000));
        r.outcome = Some("permanent: bad payload".into());
        r.replay_count = 2;
        r.replayed_at = Some(from_unix_millis(1_700_000_008_000));
        r.note = Some("ops: replay after fix".into());
        r.duplicates = 3;
        r
    }

    #[test]
    fn only_pending_records_carry_the_pending_partition() {
        let mut record = minimal();
        for status in EventStatus::ALL {
            record.status = status;
            let item = record_to_item(&record);
            match item.get("pending_status") {
                Some(AttributeValue::S(p)) => {
                    assert!(status.is_pending(), "{status}");
                    let (name, shard) = p.split_once('#').expect("status#shard");
                    assert_eq!(name, status.as_str());
                    assert!(shard.parse::<u8>().expect("shard") < PENDING_SHARDS);
                }
                None => assert!(!status.is_pending(), "{status}"),
                Some(other) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn records_round_trip() {
        for record in [minimal(), full()] {
            assert_eq!(record_from_item(&record_to_item(&record)), Ok(record));
        }
    }

    #[test]
    fn the_item_carries_the_keys_the_table_and_index_need() {
        let item = record_to_item(&full());
        assert_eq!(item["pk"], s("acme#standard-webhooks#msg_#1"));
        assert_eq!(item["tenant_status"], s("acme#dead"));
        assert_eq!(item["status_at"], n(1_700_000_009_000_i64));
        assert_eq!(item["verification"], s("verified:previous"));
        assert_eq!(item["payload"], b(vec![0, 159, 146, 150, b'{', b'}']));
        let fresh = record_to_item(&minimal());
        assert_eq!(fresh["status_at"], n(1_700_000_000_001_i64));
        for absent in ["event_type", "request_id", "enqueued_at", "last_error"] {
            assert!(!fresh.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn summaries_read_the_projected_attributes() {
        let record = full();
        let projected: Item = record_to_item(&record)
            .into_iter()
            .filter(|(k, _)| SUMMARY_ATTRIBUTES.contains(&k.as_str()))
            .collect();
        assert_eq!(
            summary_from_item(&projected),
            Ok(EventSummary {
                key: record.key,
                event_type: record.event_type,
                status: EventStatus::Dead,
                attempts: 5,
                retry_exhausted: true,
                last_error: record.last_error,
                received_at: record.received_at,
            })
        );
    }

    #[test]
    fn malformed_items_are_refused_naming_the_attribute() {
        let good = record_to_item(&full());
        let cases: [(&str, Option<AttributeValue>, ItemError); 7] = [
            ("payload", None, ItemError::Missing("payload")),
            (
                "payload",
                Some(s("{}")),
                ItemError::WrongType {
                    attribute: "payload",
                    expected: "B",
                },
            ),
            ("status", Some(s("lost")), ItemError::Invalid("status")),
            ("attempts", Some(n(-1)), ItemError::Invalid("attempts")),
            (
                "provider",
                Some(s("paddle")),
                ItemError::Invalid("provider"),
            ),
            (
                "pk",
                Some(s("other#stripe#msg_#1")),
                ItemError::Invalid("pk"),
            ),
            (
                "enqueued_at",
                Some(s("yesterday")),
                ItemError::WrongType {
                    attribute: "enqueued_at",
                    expected: "N",
                },
            ),
        ];
        for (name, value, expected) in cases {
            let mut item = good.clone();
            match value {
                Some(v) => item.insert(name.to_owned(), v),
                None => item.remove(name),
            };
            assert_eq!(record_from_item(&item), Err(expected), "{name}");
        }
    }

    #[test]
    fn malformed_errors_never_carry_values() {
        let mut item = record_to_item(&full());
        item.insert("status".into(), s("sk_live_secretish"));
        let err = StoreError::from(record_from_item(&item).expect_err("refused"));
        assert!(!err.to_string().contains("secretish"), "{err}");
    }
}
