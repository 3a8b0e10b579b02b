//! The processor's side of the event records on DynamoDB: a claim is one conditional update; a
//! commit writes the projections and the `processed` mark in one `TransactWriteItems`
//! conditioned on the lease; a failure is recorded only by the lease's holder.
//!
//! Projection items (`pk`, `sk`) hold `version` (N: the provider's event time in ms),
//! `deleted` (BOOL), `source_event_id` (S) and the handler's fields as top-level attributes.
//! An upsert over a live item merges its fields in; a new item, a history entry, a tombstone
//! and an upsert over a tombstone replace the whole item. So a tombstone keeps only the key,
//! `version`, `deleted = true` and `source_event_id`, exactly as [`MemoryProjections`] does, and
//! a strictly newer update starts the entity over instead of reviving its old fields.
//!
//! [`MemoryProjections`]: crate::projection::MemoryProjections

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    config::AsyncSleep,
    error::BuildError,
    operation::{transact_write_items::TransactWriteItemsError, update_item::UpdateItemError},
    types::{
        AttributeValue, CancellationReason, KeysAndAttributes, Put, ReturnValue,
        ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
    },
};
use serde_json::Value;

use super::{
    DynamoEventStore,
    events::{event_pk, pending_partition, record_from_item, tenant_status},
    item::{Item, ms, n, number, opt_boolean, parsed, s, string},
    unavailable,
};
use crate::{
    clock::unix_secs,
    ids::EventId,
    ports::{Claim, Commit, EventProcessing, EventStore, Failure, Lease, StoreError},
    projection::{Change, ProjectionKey, ProjectionWrite, RESERVED_ATTRIBUTES, applies_over},
    record::{EventKey, EventStatus},
};

/// DynamoDB's cap on the items of one transaction; the event's own update takes one.
const TRANSACTION_LIMIT: usize = 100;

/// How many times a commit re-reads and retries when a projection item changed under it.
/// Contention on one entity is rare (one entity's events arrive far apart), so a commit that
/// keeps losing is better retried by the queue, after its backoff.
const COMMIT_ATTEMPTS: usize = 3;

/// How many `BatchGetItem` calls a commit spends on keys DynamoDB left unprocessed.
const READ_ROUNDS: u32 = 4;

/// Longest `last_error` stored: enough to diagnose, small next to the 400 KB item limit.
pub const MAX_ERROR_CHARS: usize = 1000;

impl DynamoEventStore {
    /// The table commits write projections to. Without it, a commit with writes is refused.
    pub fn with_projections(mut self, table: impl Into<String>) -> Self {
        self.projections = Some(table.into());
        self
    }

    fn event_key(key: &EventKey) -> Item {
        Item::from([("pk".to_owned(), s(event_pk(key)))])
    }

    /// The version and tombstone flag of each item, with strongly consistent reads.
    async fn read_stored(
        &self,
        table: &str,
        keys: &[&ProjectionKey],
    ) -> Result<HashMap<ProjectionKey, Stored>, StoreError> {
        let mut by_id: HashMap<(String, String), &ProjectionKey> = keys
            .iter()
            .map(|k| ((k.pk(), k.sk().to_owned()), *k))
            .collect();
        let mut pending: Vec<Item> = keys.iter().map(|k| projection_key(k)).collect();
        let mut stored = HashMap::with_capacity(keys.len());
        for round in 0..READ_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                // Unprocessed keys mean throttling: back off before asking again.
                if let Some(sleep) = self.client.config().sleep_impl() {
                    sleep.sleep(Duration::from_millis(50 << round)).await;
                }
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .projection_expression("#pk, #sk, #version, #deleted")
                .set_expression_attribute_names(Some(names(&["pk", "sk", "version", "deleted"])))
                .build()
                .map_err(|e| building("BatchGetItem", &e))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|err| unavailable("BatchGetItem", table, &err))?;
            let found = output.responses().and_then(|r| r.get(table));
            for item in found.into_iter().flatten() {
                let id = (
                    string(item, "pk")?.to_owned(),
                    string(item, "sk")?.to_owned(),
                );
                let Some(key) = by_id.remove(&id) else {
                    return Err(StoreError::Malformed(
                        "BatchGetItem returned an item that was not asked for".into(),
                    ));
                };
                stored.insert(
                    key.clone(),
                    Stored {
                        version: number(item, "version")?,
                        deleted: opt_boolean(item, "deleted")?.unwrap_or(false),
                    },
                );
            }
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "BatchGetItem on {table}: keys still unprocessed after {READ_ROUNDS} calls"
            )));
        }
        Ok(stored)
    }

    /// The commit when no projection item changes (no writes, or all of them stale): one
    /// conditional update, half the cost of a one-item transaction.
    async fn mark_processed(
        &self,
        event: Expression,
        skipped: usize,
    ) -> Result<Commit, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event.key))
            .update_expression(event.update)
            .condition_expression(event.condition)
            .set_expression_attribute_names(non_empty(event.names))
            .set_expression_attribute_values(non_empty(event.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Committed {
                applied: 0,
                skipped,
            }),
            Err(err) if is_conditional_failure(&err) => Ok(Commit::LeaseLost),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }
}

fn is_conditional_failure<R>(err: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> bool {
    matches!(
        err.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn building(operation: &str, err: &BuildError) -> StoreError {
    StoreError::Unavailable(format!("building the {operation} request: {err}"))
}

/// `#name → name` for the adapter's own attribute names.
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

/// DynamoDB refuses empty placeholder maps; absent is the way to say "none".
fn non_empty<V>(map: HashMap<String, V>) -> Option<HashMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

fn projection_key(key: &ProjectionKey) -> Item {
    Item::from([
        ("pk".to_owned(), s(key.pk())),
        ("sk".to_owned(), s(key.sk())),
    ])
}

/// A handler's JSON value as a DynamoDB attribute. Numbers keep serde_json's text, so integers
/// (amounts, millisecond times) are stored exactly; `null` is stored as `NULL`, as the memory
/// store keeps it.
pub(crate) fn json_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(json_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), json_attribute(v)))
                .collect(),
        ),
    }
}

/// One conditional write's parts. Every attribute name goes through a placeholder (`status`
/// is a reserved word, and field names come from handlers), every value through a value
/// placeholder: no name or value is ever spliced into an expression's text.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expression {
    key: Item,
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

impl Expression {
    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }
}

/// The claim: take a claimable event, or one whose lease has run out.
fn claim_expression(key: &EventKey, lease: &Lease, now: SystemTime) -> Expression {
    Expression {
        key: DynamoEventStore::event_key(key),
        update: "SET #status = :processing, #lease_owner = :owner, #lease_until = :until, \
                 #attempts = if_not_exists(#attempts, :zero) + :one, \
                 #tenant_status = :tenant_status, #status_at = :now, #pending_status = :pending"
            .into(),
        // A `processing` record without `lease_until` counts as expired, as in memory.
        condition: "attribute_exists(#pk) AND (#status IN (:received, :enqueued, :failed) \
                    OR (#status = :processing AND \
                    (#lease_until < :now OR attribute_not_exists(#lease_until))))"
            .into(),
        names: names(&[
            "pk",
            "status",
            "lease_owner",
            "lease_until",
            "attempts",
            "tenant_status",
            "status_at",
            "pending_status",
        ]),
        values: Item::new(),
    }
    .value(":processing", s(EventStatus::Processing.as_str()))
    .value(
        ":pending",
        s(pending_partition(key, EventStatus::Processing)),
    )
    .value(":received", s(EventStatus::Received.as_str()))
    .value(":enqueued", s(EventStatus::Enqueued.as_str()))
    .value(":failed", s(EventStatus::Failed.as_str()))
    .value(":owner", s(&lease.owner))
    .value(":until", ms(lease.until))
    .value(":now", ms(now))
    .value(":zero", n(0))
    .value(":one", n(1))
    .value(
        ":tenant_status",
        s(tenant_status(&key.tenant, EventStatus::Processing)),
    )
}

/// The event's half of a commit: `processed`, on condition that the lease is still ours.
fn processed_expression(
    key: &EventKey,
    lease: &Lease,
    outcome: &str,
    now: SystemTime,
    expires_at: Option<SystemTime>,
) -> Expression {
    let mut attributes = vec![
        "status",
        "outcome",
        "completed_at",
        "tenant_status",
        "status_at",
        "lease_owner",
        "lease_until",
        "pending_status",
    ];
    let mut update = String::from(
        "SET #status = :processed, #outcome = :outcome, #completed_at = :now, \
         #tenant_status = :tenant_status, #status_at = :now",
    );
    if expires_at.is_some() {
        attributes.push("expires_at");
        update.push_str(", #expires_at = :expires_at");
    }
    update.push_str(" REMOVE #lease_owner, #lease_until, #pending_status");
    let mut expression = Expression {
        key: DynamoEventStore::event_key(key),
        update,
        condition: "#status = :processing AND #lease_owner = :owner".into(),
        names: names(&attributes),
        values: Item::new(),
    }
    .value(":processed", s(EventStatus::Processed.as_str()))
    .value(":processing", s(EventStatus::Processing.as_str()))
    .value(":outcome", s(outcome))
    .value(":now", ms(now))
    .value(":owner", s(&lease.owner))
    .value(
        ":tenant_status",
        s(tenant_status(&key.tenant, EventStatus::Processed)),
    );
    if let Some(at) = expires_at {
        // DynamoDB's TTL reads unix seconds.
        expression = expression.value(":expires_at", n(unix_secs(at)));
    }
    expression
}

/// A failed attempt, recorded by the lease's holder only.
fn failure_expression(
    key: &EventKey,
    lease: &Lease,
    failure: &Failure,
    now: SystemTime,
) -> Expression {
    let dead = failure.status == EventStatus::Dead;
    let mut attributes = vec![
        "status",
        "last_error",
        "retry_exhausted",
        "tenant_status",
        "status_at",
        "lease_owner",
        "lease_until",
        "pending_status",
    ];
    let mut update = String::from(
        "SET #status = :status, #last_error = :error, #retry_exhausted = :exhausted, \
         #tenant_status = :tenant_status, #status_at = :now",
    );
    if dead {
        attributes.push("completed_at");
        update.push_str(", #completed_at = :now");
    }
    update.push_str(" REMOVE #lease_owner, #lease_until, #pending_status");
    Expression {
        key: DynamoEventStore::event_key(key),
        update,
        condition: "#lease_owner = :owner".into(),
        names: names(&attributes),
        values: Item::new(),
    }
    .value(":status", s(failure.status.as_str()))
    .value(":error", s(truncate(&failure.error, MAX_ERROR_CHARS)))
    .value(":exhausted", AttributeValue::Bool(failure.retry_exhausted))
    .value(":now", ms(now))
    .value(":owner", s(&lease.owner))
    .value(
        ":tenant_status",
        s(tenant_status(&key.tenant, failure.status)),
    )
}

/// At most `max` characters of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
}

/// What a projection item held when the commit read it: what its write is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    version: i64,
    deleted: bool,
}

/// The net effect of one commit's writes on one item: its writes folded in order by
/// [`applies_over`], as [`MemoryProjections::apply_all`] applies them one by one (a transaction
/// may touch an item once).
///
/// [`MemoryProjections::apply_all`]: crate::projection::MemoryProjections::apply_all
#[derive(Debug, Clone, PartialEq)]
struct ItemWrite<'a> {
    key: &'a ProjectionKey,
    /// What the item held when read (`None`: absent).
    read: Option<Stored>,
    version: i64,
    source_event_id: &'a EventId,
    deleted: bool,
    /// Replace the whole item rather than merge `fields` into it.
    replace: bool,
    fields: BTreeMap<&'a str, &'a Value>,
}

/// The items a commit writes, and how many of its writes made it in.
#[derive(Debug, Clone, PartialEq)]
struct Plan<'a> {
    items: Vec<ItemWrite<'a>>,
    applied: usize,
}

fn plan<'a>(writes: &'a [ProjectionWrite], stored: &HashMap<ProjectionKey, Stored>) -> Plan<'a> {
    let mut items: Vec<ItemWrite<'a>> = Vec::new();
    let mut slots: HashMap<&ProjectionKey, usize> = HashMap::new();
    let mut applied = 0;
    for write in writes {
        let read = stored.get(&write.key).copied();
        let slot = slots.get(&write.key).copied();
        let current = match slot.and_then(|i| items.get(i)) {
            Some(item) => Some(Stored {
                version: item.version,
                deleted: item.deleted,
            }),
            None => read,
        };
        if !applies_over(
            current.map(|c| c.version),
            current.is_some_and(|c| c.deleted),
            write,
        ) {
            continue;
        }
        applied += 1;
        let index = slot.unwrap_or_else(|| {
            items.push(ItemWrite {
                key: &write.key,
                read,
                version: write.version,
                source_event_id: &write.source_event_id,
                deleted: read.is_some_and(|r| r.deleted),
                replace: read.is_none_or(|r| r.deleted),
                fields: BTreeMap::new(),
            });
            slots.insert(&write.key, items.len() - 1);
            items.len() - 1
        });
        let Some(item) = items.get_mut(index) else {
            continue;
        };
        item.version = write.version;
        item.source_event_id = &write.source_event_id;
        match &write.change {
            Change::Upsert(fields) => {
                if item.deleted {
                    item.fields.clear();
                    item.replace = true;
                }
                item.deleted = false;
                item.fields
                    .extend(fields.iter().map(|(k, v)| (k.as_str(), v)));
            }
            Change::Delete => {
                item.deleted = true;
                item.fields.clear();
                item.replace = true;
            }
            Change::Append(fields) => {
                item.deleted = false;
                item.fields = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
                item.replace = true;
            }
        }
    }
    Plan { items, applied }
}

/// Refuse, before any I/O, what DynamoDB would refuse mid-way or what would break the item's
/// bookkeeping: reserved or empty field names, and more items than one transaction holds.
fn check_writes(writes: &[ProjectionWrite]) -> Result<Vec<&ProjectionKey>, StoreError> {
    for write in writes {
        let fields = match &write.change {
            Change::Upsert(fields) | Change::Append(fields) => fields,
            Change::Delete => continue,
        };
        for name in fields.keys() {
            if name.is_empty() || RESERVED_ATTRIBUTES.contains(&name.as_str()) {
                return Err(StoreError::Unavailable(format!(
                    "a {} projection write sets the field `{name}`, which is empty or reserved",
                    write.key.kind()
                )));
            }
        }
    }
    let mut keys: Vec<&ProjectionKey> = writes.iter().map(|w| &w.key).collect();
    keys.sort();
    keys.dedup();
    if keys.len() >= TRANSACTION_LIMIT {
        return Err(StoreError::Unavailable(format!(
            "a commit touching {} projection items exceeds DynamoDB's {TRANSACTION_LIMIT}-item \
             transaction (the event's update takes one)",
            keys.len()
        )));
    }
    Ok(keys)
}

/// The condition that the item still holds what the commit read, so a concurrent newer write
/// cancels the transaction instead of being overwritten. "Not deleted" is read as the reader
/// reads it: anything but `deleted = true`.
fn unchanged_condition(read: Option<Stored>, expression: &mut Expression) {
    let Some(read) = read else {
        expression.condition = "attribute_not_exists(#pk)".into();
        expression.names.extend(names(&["pk"]));
        return;
    };
    expression.condition = if read.deleted {
        "#version = :read_version AND #deleted = :true"
    } else {
        "#version = :read_version AND (attribute_not_exists(#deleted) OR #deleted <> :true)"
    }
    .into();
    expression.names.extend(names(&["version", "deleted"]));
    expression
        .values
        .insert(":read_version".into(), n(read.version));
    expression
        .values
        .insert(":true".into(), AttributeValue::Bool(true));
}

/// One item's transaction entry: a `Put` when the item is replaced, else an `Update` that
/// merges the fields in.
fn projection_entry(table: &str, write: &ItemWrite<'_>) -> Result<TransactWriteItem, StoreError> {
    let mut expression = Expression::default();
    unchanged_condition(write.read, &mut expression);
    if write.replace {
        let mut item: Item = write
            .fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json_attribute(value)))
            .collect();
        item.extend(projection_key(write.key));
        item.insert("version".into(), n(write.version));
        item.insert("deleted".into(), AttributeValue::Bool(write.deleted));
        item.insert("source_event_id".into(), s(write.source_event_id.as_str()));
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(expression.condition)
            .set_expression_attribute_names(non_empty(expression.names))
            .set_expression_attribute_values(non_empty(expression.values))
            .build()
            .map_err(|e| building("TransactWriteItems", &e))?;
        return Ok(TransactWriteItem::builder().put(put).build());
    }
    let mut sets = Vec::with_capacity(write.fields.len() + 3);
    for (i, (name, value)) in write.fields.iter().enumerate() {
        let (name_placeholder, value_placeholder) = (format!("#f{i}"), format!(":f{i}"));
        sets.push(format!("{name_placeholder} = {value_placeholder}"));
        expression
            .names
            .insert(name_placeholder, (*name).to_owned());
        expression
            .values
            .insert(value_placeholder, json_attribute(value));
    }
    sets.extend(
        [
            "#version = :version",
            "#source_event_id = :source_event_id",
            "#deleted = :false",
        ]
        .map(str::to_owned),
    );
    expression
        .names
        .extend(names(&["version", "source_event_id", "deleted"]));
    expression
        .values
        .insert(":version".into(), n(write.version));
    expression
        .values
        .insert(":source_event_id".into(), s(write.source_event_id.as_str()));
    expression
        .values
        .insert(":false".into(), AttributeValue::Bool(false));
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(projection_key(write.key)))
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(expression.condition)
        .set_expression_attribute_names(non_empty(expression.names))
        .set_expression_attribute_values(non_empty(expression.values))
        .build()
        .map_err(|e| building("TransactWriteItems", &e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Why a commit's transaction was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cancelled {
    /// The event's condition failed: the lease is gone.
    LeaseLost,
    /// A projection item changed since it was read, or another transaction held an item:
    /// read again and retry.
    Contended,
    /// Anything else (throttling, validation): the codes, for the error.
    Other(String),
}

/// Classify the reasons, in item order (item 0 is the event's update).
fn cancelled(reasons: &[CancellationReason]) -> Cancelled {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    if reasons.first().and_then(CancellationReason::code) == Some("ConditionalCheckFailed") {
        return Cancelled::LeaseLost;
    }
    let failed: Vec<String> = reasons.iter().map(code).filter(|c| c != "None").collect();
    if !failed.is_empty()
        && failed
            .iter()
            .all(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
    {
        return Cancelled::Contended;
    }
    Cancelled::Other(if failed.is_empty() {
        "no reasons given".into()
    } else {
        failed.join(", ")
    })
}

/// What a claim refused found, and says so.
fn refused_claim(status: EventStatus, table: &str) -> Result<Claim, StoreError> {
    match status {
        EventStatus::Processed => Ok(Claim::AlreadyProcessed),
        EventStatus::Processing => Ok(Claim::Busy),
        EventStatus::Dead => Ok(Claim::Unclaimable(EventStatus::Dead)),
        EventStatus::Discarded => Ok(Claim::Unclaimable(EventStatus::Discarded)),
        // The record changed between the refusal and the read: let the queue try again.
        EventStatus::Received | EventStatus::Enqueued | EventStatus::Failed => {
            Err(StoreError::Unavailable(format!(
                "UpdateItem on {table}: the claim was refused, then the record read as {status}"
            )))
        }
    }
}

#[async_trait]
impl EventProcessing for DynamoEventStore {
    async fn claim(
        &self,
        key: &EventKey,
        lease: &Lease,
        now: SystemTime,
    ) -> Result<Claim, StoreError> {
        let claim = claim_expression(key, lease, now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim.key))
            .update_expression(claim.update)
            .condition_expression(claim.condition)
            .set_expression_attribute_names(non_empty(claim.names))
            .set_expression_attribute_values(non_empty(claim.values))
            .return_values(ReturnValue::AllNew)
            // The refusing item comes back with the refusal: no second read to say why.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(output) => {
                let item = output.attributes().ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "UpdateItem on {}: the claimed record did not come back",
                        self.table
                    ))
                })?;
                return Ok(Claim::Claimed(Box::new(record_from_item(item)?)));
            }
            Err(err) => err,
        };
        let Some(UpdateItemError::ConditionalCheckFailedException(refused)) =
            err.as_service_error()
        else {
            return Err(unavailable("UpdateItem", &self.table, &err));
        };
        let status = match refused.item() {
            Some(item) => parsed(item, "status")?,
            // No item came back: none exists, unless it appeared since; a consistent read says.
            None => match self.get(key).await? {
                None => return Ok(Claim::Missing),
                Some(record) => record.status,
            },
        };
        refused_claim(status, &self.table)
    }

    async fn commit(
        &self,
        key: &EventKey,
        lease: &Lease,
        writes: &[ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError> {
        let keys = check_writes(writes)?;
        let event = processed_expression(key, lease, outcome, now, expires_at);
        if writes.is_empty() {
            return self.mark_processed(event, 0).await;
        }
        let Some(projections) = self.projections.as_deref() else {
            return Err(StoreError::Unavailable(
                "no projections table configured".into(),
            ));
        };
        let event_entry = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(event.key.clone()))
                    .update_expression(&event.update)
                    .condition_expression(&event.condition)
                    .set_expression_attribute_names(non_empty(event.names.clone()))
                    .set_expression_attribute_values(non_empty(event.values.clone()))
                    .build()
                    .map_err(|e| building("TransactWriteItems", &e))?,
            )
            .build();
        for _ in 0..COMMIT_ATTEMPTS {
            let stored = self.read_stored(projections, &keys).await?;
            let plan = plan(writes, &stored);
            if plan.items.is_empty() {
                return self.mark_processed(event, writes.len()).await;
            }
            let mut entries = Vec::with_capacity(plan.items.len() + 1);
            entries.push(event_entry.clone());
            for item in &plan.items {
                entries.push(projection_entry(projections, item)?);
            }
            // The SDK gives the request an idempotency token and keeps it across its own
            // retries, so a commit whose response was lost is not applied twice, nor
            // mistaken for a lost lease when re-sent.
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(entries))
                .send()
                .await;
            let err = match result {
                Ok(_) => {
                    return Ok(Commit::Committed {
                        applied: plan.applied,
                        skipped: writes.len() - plan.applied,
                    });
                }
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                err.as_service_error()
            else {
                return Err(unavailable("TransactWriteItems", &self.table, &err));
            };
            match cancelled(cancel.cancellation_reasons()) {
                Cancelled::LeaseLost => return Ok(Commit::LeaseLost),
                Cancelled::Contended => continue,
                Cancelled::Other(codes) => {
                    return Err(StoreError::Unavailable(format!(
                        "TransactWriteItems on {} and {projections}: cancelled ({codes})",
                        self.table
                    )));
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "TransactWriteItems on {} and {projections}: projection items kept changing; \
             gave up after {COMMIT_ATTEMPTS} attempts",
            self.table
        )))
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        lease: &Lease,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if !matches!(failure.status, EventStatus::Failed | EventStatus::Dead) {
            return Err(StoreError::Unavailable(format!(
                "a failure leaves an event failed or dead, not {}",
                failure.status
            )));
        }
        let update = failure_expression(key, lease, failure, now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update)
            .condition_expression(update.condition)
            .set_expression_attribute_names(non_empty(update.names))
            .set_expression_attribute_values(non_empty(update.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another processor owns the event now (or it is gone): its record is not ours.
            Err(err) if is_conditional_failure(&err) => Ok(()),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::{
        clock::from_unix_millis,
        ids::TenantId,
        projection::{Fields, MemoryProjections, ProjectionKind},
        provider::Provider,
    };

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn event_key() -> EventKey {
        EventKey {
            tenant: tenant(),
            provider: Provider::Stripe,
            event_id: EventId::parse("evt_1").expect("id"),
        }
    }

    fn lease() -> Lease {
        Lease {
            owner: "req-1/msg-1".into(),
            until: from_unix_millis(1_700_000_060_000),
        }
    }

    fn pkey(id: &str) -> ProjectionKey {
        ProjectionKey::new(&tenant(), ProjectionKind::StripeCustomer, id).expect("key")
    }

    fn write(id: &str, version: i64, change: Change) -> ProjectionWrite {
        ProjectionWrite {
            key: pkey(id),
            version,
            source_event_id: EventId::parse(&format!("evt_{version}")).expect("id"),
            change,
        }
    }

    fn upsert(id: &str, version: i64, pairs: &[(&str, Value)]) -> ProjectionWrite {
        let fields: Fields = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        write(id, version, Change::Upsert(fields))
    }

    /// The `#name` and `:value` placeholders an expression's text uses.
    fn placeholders(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
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
    fn assert_bound_exactly(e: &Expression) {
        let (names, values) = placeholders(&format!("{} {}", e.update, e.condition));
        assert_eq!(names, e.names.keys().cloned().collect(), "{}", e.update);
        assert_eq!(values, e.values.keys().cloned().collect(), "{}", e.update);
    }

    #[test]
    fn json_values_become_attributes() {
        let value = json!({
            "s": "text", "i": 42, "big": 9_007_199_254_740_993_u64, "neg": -7, "f": 1.5,
            "t": true, "null": null, "list": [1, "a", null], "map": {"inner": {"x": false}}
        });
        let AttributeValue::M(map) = json_attribute(&value) else {
            panic!("an object is a map")
        };
        assert_eq!(map["s"], s("text"));
        assert_eq!(map["i"], AttributeValue::N("42".into()));
        assert_eq!(map["big"], AttributeValue::N("9007199254740993".into()));
        assert_eq!(map["neg"], AttributeValue::N("-7".into()));
        assert_eq!(map["f"], AttributeValue::N("1.5".into()));
        assert_eq!(map["t"], AttributeValue::Bool(true));
        assert_eq!(map["null"], AttributeValue::Null(true));
        assert_eq!(
            map["list"],
            AttributeValue::L(vec![n(1), s("a"), AttributeValue::Null(true)])
        );
        assert_eq!(
            map["map"],
            AttributeValue::M(HashMap::from([(
                "inner".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "x".to_owned(),
                    AttributeValue::Bool(false)
                )]))
            )]))
        );
    }

    #[test]
    fn event_expressions_bind_exactly_the_placeholders_they_use() {
        let now = from_unix_millis(1_700_000_000_000);
        let failure = |status| Failure {
            error: "boom".into(),
            status,
            retry_exhausted: status == EventStatus::Dead,
        };
        for e in [
            claim_expression(&event_key(), &lease(), now),
            processed_expression(&event_key(), &lease(), "processed", now, None),
            processed_expression(&event_key(), &lease(), "processed", now, Some(now)),
            failure_expression(&event_key(), &lease(), &failure(EventStatus::Failed), now),
            failure_expression(&event_key(), &lease(), &failure(EventStatus::Dead), now),
        ] {
            assert_bound_exactly(&e);
            assert_eq!(e.key["pk"], s("acme#stripe#evt_1"));
        }
    }

    #[test]
    fn the_commit_marks_the_event_and_sets_the_ttl_in_seconds() {
        let now = from_unix_millis(1_700_000_000_000);
        let e = processed_expression(
            &event_key(),
            &lease(),
            "ignored: x",
            now,
            Some(from_unix_millis(1_702_592_000_999)),
        );
        assert_eq!(e.values[":expires_at"], n(1_702_592_000));
        assert_eq!(e.values[":tenant_status"], s("acme#processed"));
        assert_eq!(e.values[":owner"], s("req-1/msg-1"));
        assert!(
            e.update
                .ends_with("REMOVE #lease_owner, #lease_until, #pending_status")
        );
        let without = processed_expression(&event_key(), &lease(), "processed", now, None);
        assert!(!without.update.contains("expires_at"));
    }

    #[test]
    fn errors_are_truncated_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 2), "éé");
        let failure = Failure {
            error: "x".repeat(5000),
            status: EventStatus::Failed,
            retry_exhausted: false,
        };
        let e = failure_expression(&event_key(), &lease(), &failure, SystemTime::UNIX_EPOCH);
        assert_eq!(e.values[":error"], s("x".repeat(MAX_ERROR_CHARS)));
        assert!(!e.update.contains("completed_at"));
    }

    fn entry(write: &ItemWrite<'_>) -> TransactWriteItem {
        projection_entry("projections", write).expect("entry")
    }

    fn expression_of(entry: &TransactWriteItem) -> Expression {
        if let Some(update) = entry.update() {
            return Expression {
                key: update.key().clone(),
                update: update.update_expression().to_owned(),
                condition: update.condition_expression().unwrap_or_default().to_owned(),
                names: update
                    .expression_attribute_names()
                    .cloned()
                    .unwrap_or_default(),
                values: update
                    .expression_attribute_values()
                    .cloned()
                    .unwrap_or_default(),
            };
        }
        let put = entry.put().expect("put or update");
        Expression {
            key: put.item().clone(),
            update: String::new(),
            condition: put.condition_expression().unwrap_or_default().to_owned(),
            names: put
                .expression_attribute_names()
                .cloned()
                .unwrap_or_default(),
            values: put
                .expression_attribute_values()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn an_update_over_a_live_item_merges_fields_through_placeholders() {
        let writes = [upsert(
            "cus_1",
            20,
            &[("status", json!("active")), ("a.b c", json!(1))],
        )];
        let stored = HashMap::from([(
            pkey("cus_1"),
            Stored {
                version: 10,
                deleted: false,
            },
        )]);
        let plan = plan(&writes, &stored);
        assert_eq!(plan.applied, 1);
        let e = expression_of(&entry(&plan.items[0]));
        assert_bound_exactly(&e);
        // Field names and values never appear in the expression's text.
        assert!(!e.update.contains("status") && !e.update.contains("a.b"));
        assert_eq!(
            e.update,
            "SET #f0 = :f0, #f1 = :f1, #version = :version, \
             #source_event_id = :source_event_id, #deleted = :false"
        );
        assert_eq!(e.names["#f0"], "a.b c");
        assert_eq!(e.values[":f1"], s("active"));
        assert_eq!(
            e.condition,
            "#version = :read_version AND (attribute_not_exists(#deleted) OR #deleted <> :true)"
        );
        assert_eq!(e.values[":read_version"], n(10));
        assert_eq!(e.key["pk"], s("acme#stripe_customer"));
        assert_eq!(e.key["sk"], s("cus_1"));
    }

    #[test]
    fn new_items_tombstones_and_history_are_puts() {
        let writes = [
            upsert("new", 5, &[("status", json!("active"))]),
            write("gone", 7, Change::Delete),
            write(
                "hist",
                3,
                Change::Append(Fields::from([("type".to_owned(), json!("a"))])),
            ),
        ];
        let stored = HashMap::from([(
            pkey("gone"),
            Stored {
                version: 6,
                deleted: false,
            },
        )]);
        let plan = plan(&writes, &stored);
        assert_eq!(plan.applied, 3);
        let puts: Vec<Expression> = plan
            .items
            .iter()
            .map(|w| expression_of(&entry(w)))
            .collect();
        for e in &puts {
            assert_bound_exactly(e);
        }
        assert_eq!(puts[0].condition, "attribute_not_exists(#pk)");
        assert_eq!(puts[0].key["status"], s("active"));
        assert_eq!(puts[0].key["deleted"], AttributeValue::Bool(false));
        assert_eq!(puts[0].key["source_event_id"], s("evt_5"));
        // The tombstone keeps only its bookkeeping.
        let mut attributes: Vec<&str> = puts[1].key.keys().map(String::as_str).collect();
        attributes.sort_unstable();
        assert_eq!(
            attributes,
            ["deleted", "pk", "sk", "source_event_id", "version"]
        );
        assert_eq!(puts[1].key["deleted"], AttributeValue::Bool(true));
        assert_eq!(puts[1].values[":read_version"], n(6));
        assert_eq!(puts[2].key["type"], s("a"));
    }

    #[test]
    fn stale_writes_are_skipped_by_the_versioning_rule() {
        let writes = [
            upsert("newer", 10, &[("status", json!("old"))]),
            upsert("tomb", 10, &[("status", json!("back"))]),
            write("hist", 1, Change::Append(Fields::new())),
            upsert("fresh", 1, &[]),
        ];
        let stored = HashMap::from([
            (
                pkey("newer"),
                Stored {
                    version: 11,
                    deleted: false,
                },
            ),
            (
                pkey("tomb"),
                Stored {
                    version: 10,
                    deleted: true,
                },
            ),
            (
                pkey("hist"),
                Stored {
                    version: 1,
                    deleted: false,
                },
            ),
        ]);
        let plan = plan(&writes, &stored);
        assert_eq!(plan.applied, 1);
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].key, &pkey("fresh"));
    }

    #[test]
    fn an_update_over_a_tombstone_starts_the_item_over() {
        let writes = [upsert("cus_1", 11, &[("status", json!("active"))])];
        let stored = HashMap::from([(
            pkey("cus_1"),
            Stored {
                version: 10,
                deleted: true,
            },
        )]);
        let plan = plan(&writes, &stored);
        let e = expression_of(&entry(&plan.items[0]));
        assert_bound_exactly(&e);
        assert_eq!(e.condition, "#version = :read_version AND #deleted = :true");
        assert_eq!(e.key["deleted"], AttributeValue::Bool(false));
        assert_eq!(e.key["status"], s("active"));
    }

    #[test]
    fn several_writes_to_one_item_fold_as_the_memory_store_applies_them() {
        let writes = [
            upsert("c", 5, &[("a", json!(1)), ("b", json!(1))]),
            upsert("c", 4, &[("a", json!("stale"))]),
            upsert("c", 6, &[("b", json!(2))]),
            write("c", 7, Change::Delete),
            upsert("c", 7, &[("a", json!("too late"))]),
            upsert("c", 8, &[("z", json!(true))]),
        ];
        let stored = HashMap::from([(
            pkey("c"),
            Stored {
                version: 3,
                deleted: false,
            },
        )]);
        let plan = plan(&writes, &stored);
        let mut memory = MemoryProjections::new();
        memory.apply(&upsert("c", 3, &[]));
        let applied = memory.apply_all(&writes);
        assert_eq!(plan.applied, applied);
        assert_eq!(plan.items.len(), 1);
        let folded = &plan.items[0];
        let expected = memory.get(&pkey("c")).expect("item");
        assert_eq!(folded.version, expected.version);
        assert_eq!(folded.deleted, expected.deleted);
        assert!(folded.replace, "a delete in between wipes the old fields");
        assert_eq!(folded.read, stored.get(&pkey("c")).copied());
        let fields: Fields = folded
            .fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
            .collect();
        assert_eq!(fields, expected.fields);
    }

    #[test]
    fn reserved_or_empty_field_names_and_oversized_commits_are_refused() {
        for name in ["version", "pk", ""] {
            let writes = [upsert("c", 1, &[(name, json!(1))])];
            let err = check_writes(&writes).expect_err("refused");
            assert!(err.to_string().contains("stripe_customer"), "{err}");
        }
        // With the event's own update, 99 items fill a transaction.
        let many: Vec<ProjectionWrite> =
            (0..100).map(|i| upsert(&format!("c{i}"), 1, &[])).collect();
        assert!(
            check_writes(&many)
                .expect_err("too many")
                .to_string()
                .contains("100")
        );
        assert_eq!(check_writes(&many[..99]).expect("fits").len(), 99);
        // Writes to one item count once.
        let same: Vec<ProjectionWrite> = (0..150).map(|v| upsert("c", v, &[])).collect();
        assert_eq!(check_writes(&same).expect("one item").len(), 1);
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellations_are_classified_by_item() {
        let none = || reason("None");
        let ccf = || reason("ConditionalCheckFailed");
        assert_eq!(cancelled(&[ccf(), none()]), Cancelled::LeaseLost);
        assert_eq!(cancelled(&[ccf(), ccf()]), Cancelled::LeaseLost);
        assert_eq!(cancelled(&[none(), ccf()]), Cancelled::Contended);
        assert_eq!(
            cancelled(&[reason("TransactionConflict"), none()]),
            Cancelled::Contended
        );
        assert_eq!(
            cancelled(&[none(), reason("ThrottlingError"), ccf()]),
            Cancelled::Other("ThrottlingError, ConditionalCheckFailed".into())
        );
        assert_eq!(cancelled(&[]), Cancelled::Other("no reasons given".into()));
    }

    #[test]
    fn refused_claims_say_why() {
        assert_eq!(
            refused_claim(EventStatus::Processed, "t"),
            Ok(Claim::AlreadyProcessed)
        );
        assert_eq!(refused_claim(EventStatus::Processing, "t"), Ok(Claim::Busy));
        assert_eq!(
            refused_claim(EventStatus::Dead, "t"),
            Ok(Claim::Unclaimable(EventStatus::Dead))
        );
        assert!(refused_claim(EventStatus::Failed, "t").is_err());
    }
}
