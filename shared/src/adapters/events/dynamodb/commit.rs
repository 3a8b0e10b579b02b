//! The projections half of a commit: the handler's writes and the event's `processed` mark.
//! Writes to several items commit with the mark in one `TransactWriteItems`; one item's write
//! goes alone, then the mark: it is conditioned on what the item held when read, so a retry
//! after a failure between the two finds it applied and skips it (a transaction would bill
//! both items twice for no gain).
//!
//! Projection items (`pk`, `sk`) hold `version` (N: the provider's event time in ms), `rank`
//! (N: the provider's ordering hint within one instant), `source_event_id` (S), `deleted`
//! (BOOL) and the handler's fields as top-level attributes. An upsert over a live item merges
//! its fields in; a new item, a history entry, a tombstone and an upsert over a tombstone
//! replace the whole item. So a tombstone keeps only the key, the order and `deleted = true`,
//! exactly as [`MemoryProjections`] does, and a strictly newer update starts the entity over
//! instead of reviving its old fields.
//!
//! Items are keyed in their entity's shard ([`ProjectionKey::pk`]). One an older version wrote
//! under the unsharded key ([`ProjectionKey::unsharded_pk`]) is copied to its shard the first
//! time its entity changes, then changed there: a stack upgraded with items in place keeps
//! their order and fields, with no migration to run.
//!
//! [`MemoryProjections`]: crate::projection::MemoryProjections

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use aws_sdk_dynamodb::{
    config::AsyncSleep,
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        AttributeValue, CancellationReason, KeysAndAttributes, Put, TransactWriteItem, Update,
    },
};
use serde_json::Value;

use super::DynamoEventStore;
use crate::{
    adapters::dynamodb::{
        expression::{Expression, building, is_conditional_failure, names, non_empty},
        item::{Item, n, number, opt_boolean, opt_number, s, string},
        unavailable,
    },
    ports::{Commit, StoreError},
    projection::{Change, Order, ProjectionKey, ProjectionWrite, applies_over, check_writes},
};

/// How many times a commit re-reads and retries when a projection item changed under it.
/// Contention on one entity is rare (one entity's events arrive far apart), so a commit that
/// keeps losing is better retried by the queue, after its backoff.
const COMMIT_ATTEMPTS: usize = 3;

/// How many `BatchGetItem` calls a commit spends on keys DynamoDB left unprocessed.
const READ_ROUNDS: u32 = 4;

/// Longest `last_error` stored: enough to diagnose, small next to the 400 KB item limit.
pub const MAX_ERROR_CHARS: usize = 1000;

impl DynamoEventStore {
    /// Commit `writes` with the event's `processed` mark (`event`): the mark alone when no
    /// projection item changes, the item's write then the mark when one changes, else one
    /// transaction; re-read and retried a few times when an item changed under it.
    pub(super) async fn commit_with_projections(
        &self,
        event: Expression,
        writes: &[ProjectionWrite],
    ) -> Result<Commit, StoreError> {
        let keys = check_writes(writes).map_err(|e| StoreError::Rejected(e.to_string()))?;
        if writes.is_empty() {
            return self.mark_processed(event, 0).await;
        }
        let Some(projections) = self.projections.as_deref() else {
            return Err(StoreError::Rejected(
                "no projections table configured".into(),
            ));
        };
        let event_entry = event.transact_update(&self.table)?;
        for _ in 0..COMMIT_ATTEMPTS {
            let stored = self.read_stored(projections, &keys).await?;
            let plan = plan(writes, &stored);
            if plan.items.is_empty() {
                return self.mark_processed(event, writes.len()).await;
            }
            if let [item] = plan.items.as_slice() {
                if !self
                    .write_alone(projection_entry(projections, item)?)
                    .await?
                {
                    continue;
                }
                return match self.mark_processed(event, 0).await? {
                    Commit::Committed { .. } => Ok(Commit::Committed {
                        applied: plan.applied,
                        skipped: writes.len() - plan.applied,
                    }),
                    finished => Ok(finished),
                };
            }
            let mut entries = Vec::with_capacity(plan.items.len() + 1);
            entries.push(event_entry.clone());
            for item in &plan.items {
                entries.push(projection_entry(projections, item)?);
            }
            // The SDK gives the request an idempotency token and keeps it across its own
            // retries, so a commit whose response was lost is not applied twice, nor
            // mistaken for a finished event when re-sent.
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
                Cancelled::Finished => return Ok(Commit::Finished),
                Cancelled::Contended => continue,
                Cancelled::Refused(codes) => {
                    return Err(StoreError::Rejected(format!(
                        "TransactWriteItems on {} and {projections}: refused ({codes})",
                        self.table
                    )));
                }
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

    /// The order and tombstone flag of each item, with strongly consistent reads; an item
    /// found only under its unsharded key is copied to its shard first.
    async fn read_stored(
        &self,
        table: &str,
        keys: &[&ProjectionKey],
    ) -> Result<HashMap<ProjectionKey, Stored>, StoreError> {
        let found = self
            .batch_get(
                table,
                keys.iter().map(|k| projection_key(k)).collect(),
                true,
            )
            .await?;
        let mut stored = stored_by_key(keys, &found, ProjectionKey::pk)?;
        let absent: Vec<&ProjectionKey> = keys
            .iter()
            .copied()
            .filter(|k| !stored.contains_key(*k))
            .collect();
        if absent.is_empty() {
            return Ok(stored);
        }
        let legacy = self
            .batch_get(table, absent.iter().map(|k| legacy_key(k)).collect(), false)
            .await?;
        for (key, item) in matched(&absent, &legacy, ProjectionKey::unsharded_pk)? {
            let mut copy = item.clone();
            copy.insert("pk".to_owned(), s(key.pk()));
            // Absent from the shard when read: if it is there now, another commit moved it,
            // and this one's conditional write finds out and reads again.
            let entry = TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(copy))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(|e| building("PutItem", &e))?,
                )
                .build();
            if self.write_alone(entry).await? {
                stored.insert(key.clone(), stored_of(item)?);
            }
        }
        Ok(stored)
    }

    /// Every item of `keys` that exists, read in as many `BatchGetItem` rounds as unprocessed
    /// keys need. `consistent`: strongly consistent reads of the order attributes only;
    /// otherwise whole items, eventually consistent (unsharded items are never written now).
    async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut pending = keys;
        let mut found = Vec::new();
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
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(consistent);
            if consistent {
                request = request
                    .projection_expression("#pk, #sk, #version, #rank, #source_event_id, #deleted")
                    .set_expression_attribute_names(Some(names(&[
                        "pk",
                        "sk",
                        "version",
                        "rank",
                        "source_event_id",
                        "deleted",
                    ])));
            }
            let request = request.build().map_err(|e| building("BatchGetItem", &e))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|err| unavailable("BatchGetItem", table, &err))?;
            if let Some(items) = output.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
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
        Ok(found)
    }

    /// One projection item's write, outside a transaction; `false` when its condition found the
    /// item changed since it was read.
    async fn write_alone(&self, entry: TransactWriteItem) -> Result<bool, StoreError> {
        let result = if let Some(put) = entry.put() {
            self.client
                .put_item()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(put.expression_attribute_names().cloned())
                .set_expression_attribute_values(put.expression_attribute_values().cloned())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| {
                    (
                        is_conditional_failure(&err),
                        unavailable("PutItem", put.table_name(), &err),
                    )
                })
        } else if let Some(update) = entry.update() {
            self.client
                .update_item()
                .table_name(update.table_name())
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| {
                    (
                        is_conditional_failure(&err),
                        unavailable("UpdateItem", update.table_name(), &err),
                    )
                })
        } else {
            return Err(StoreError::Rejected(
                "a projection write is a put or an update".into(),
            ));
        };
        match result {
            Ok(()) => Ok(true),
            Err((true, _)) => Ok(false),
            Err((false, e)) => Err(e),
        }
    }

    /// The commit when no projection item changes (no writes, or all of them stale): one
    /// conditional update, half the cost of a one-item transaction.
    async fn mark_processed(
        &self,
        event: Expression,
        skipped: usize,
    ) -> Result<Commit, StoreError> {
        let result = event.update_item(&self.client, &self.table).send().await;
        match result {
            Ok(_) => Ok(Commit::Committed {
                applied: 0,
                skipped,
            }),
            Err(err) if is_conditional_failure(&err) => Ok(Commit::Finished),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }
}

fn projection_key(key: &ProjectionKey) -> Item {
    Item::from([
        ("pk".to_owned(), s(key.pk())),
        ("sk".to_owned(), s(key.sk())),
    ])
}

fn legacy_key(key: &ProjectionKey) -> Item {
    Item::from([
        ("pk".to_owned(), s(key.unsharded_pk())),
        ("sk".to_owned(), s(key.sk())),
    ])
}

/// Each found item with the key it answers, the key's partition named by `pk`.
fn matched<'a>(
    keys: &[&'a ProjectionKey],
    found: &'a [Item],
    pk: fn(&ProjectionKey) -> String,
) -> Result<Vec<(&'a ProjectionKey, &'a Item)>, StoreError> {
    let mut by_id: HashMap<(String, &str), &ProjectionKey> =
        keys.iter().map(|k| ((pk(k), k.sk()), *k)).collect();
    found
        .iter()
        .map(|item| {
            let id = (string(item, "pk")?.to_owned(), string(item, "sk")?);
            by_id.remove(&id).map(|key| (key, item)).ok_or_else(|| {
                StoreError::Malformed("BatchGetItem returned an item that was not asked for".into())
            })
        })
        .collect()
}

fn stored_by_key(
    keys: &[&ProjectionKey],
    found: &[Item],
    pk: fn(&ProjectionKey) -> String,
) -> Result<HashMap<ProjectionKey, Stored>, StoreError> {
    matched(keys, found, pk)?
        .into_iter()
        .map(|(key, item)| Ok((key.clone(), stored_of(item)?)))
        .collect()
}

fn stored_of(item: &Item) -> Result<Stored, StoreError> {
    Ok(Stored {
        version: number(item, "version")?,
        // Items written before ranks existed rank lowest.
        rank: opt_number(item, "rank")?.unwrap_or(0),
        source_event_id: string(item, "source_event_id")?.to_owned(),
        deleted: opt_boolean(item, "deleted")?.unwrap_or(false),
    })
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

/// What a projection item held when the commit read it: what its write is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    version: i64,
    rank: u32,
    source_event_id: String,
    deleted: bool,
}

impl Stored {
    fn order(&self) -> Order<'_> {
        (self.version, self.rank, &self.source_event_id)
    }
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
    rank: u32,
    source_event_id: &'a str,
    deleted: bool,
    /// Replace the whole item rather than merge `fields` into it.
    replace: bool,
    fields: BTreeMap<&'a str, &'a Value>,
}

impl ItemWrite<'_> {
    fn order(&self) -> Order<'_> {
        (self.version, self.rank, self.source_event_id)
    }
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
        let read = stored.get(&write.key);
        let slot = slots.get(&write.key).copied();
        let current = match slot.and_then(|i| items.get(i)) {
            Some(item) => Some(item.order()),
            None => read.map(Stored::order),
        };
        if !applies_over(current, write) {
            continue;
        }
        applied += 1;
        let index = slot.unwrap_or_else(|| {
            items.push(ItemWrite {
                key: &write.key,
                read: read.cloned(),
                version: write.version,
                rank: write.rank,
                source_event_id: write.source_event_id.as_str(),
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
        item.rank = write.rank;
        item.source_event_id = write.source_event_id.as_str();
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

/// The condition that the item still holds what the commit read, so a concurrent newer write
/// cancels the transaction instead of being overwritten. "Not deleted" is read as the reader
/// reads it: anything but `deleted = true`; a missing rank as the reader reads it: 0.
fn unchanged_condition(read: Option<&Stored>, expression: &mut Expression) {
    let Some(read) = read else {
        expression.condition = "attribute_not_exists(#pk)".into();
        expression.names.extend(names(&["pk"]));
        return;
    };
    let deleted = if read.deleted {
        "#deleted = :true"
    } else {
        "(attribute_not_exists(#deleted) OR #deleted <> :true)"
    };
    let rank = if read.rank == 0 {
        "(attribute_not_exists(#rank) OR #rank = :read_rank)"
    } else {
        "#rank = :read_rank"
    };
    expression.condition = format!(
        "#version = :read_version AND {rank} AND #source_event_id = :read_source AND {deleted}"
    );
    expression
        .names
        .extend(names(&["version", "rank", "source_event_id", "deleted"]));
    expression
        .values
        .insert(":read_version".into(), n(read.version));
    expression.values.insert(":read_rank".into(), n(read.rank));
    expression
        .values
        .insert(":read_source".into(), s(&read.source_event_id));
    expression
        .values
        .insert(":true".into(), AttributeValue::Bool(true));
}

/// One item's transaction entry: a `Put` when the item is replaced, else an `Update` that
/// merges the fields in.
fn projection_entry(table: &str, write: &ItemWrite<'_>) -> Result<TransactWriteItem, StoreError> {
    let mut expression = Expression::default();
    unchanged_condition(write.read.as_ref(), &mut expression);
    if write.replace {
        let mut item: Item = write
            .fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json_attribute(value)))
            .collect();
        item.extend(projection_key(write.key));
        item.insert("version".into(), n(write.version));
        item.insert("rank".into(), n(write.rank));
        item.insert("deleted".into(), AttributeValue::Bool(write.deleted));
        item.insert("source_event_id".into(), s(write.source_event_id));
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
            "#rank = :rank",
            "#source_event_id = :source_event_id",
            "#deleted = :false",
        ]
        .map(str::to_owned),
    );
    expression
        .names
        .extend(names(&["version", "rank", "source_event_id", "deleted"]));
    expression
        .values
        .insert(":version".into(), n(write.version));
    expression.values.insert(":rank".into(), n(write.rank));
    expression
        .values
        .insert(":source_event_id".into(), s(write.source_event_id));
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
    /// The event's condition failed: it was finished meanwhile.
    Finished,
    /// A projection item changed since it was read, or another transaction held an item:
    /// read again and retry.
    Contended,
    /// DynamoDB refused the request itself (an item too large, an invalid value): permanent.
    Refused(String),
    /// Anything else (throttling, a conflict with an outside write): the codes, for the error.
    Other(String),
}

/// Classify the reasons, in item order (item 0 is the event's update).
fn cancelled(reasons: &[CancellationReason]) -> Cancelled {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    if reasons.first().and_then(CancellationReason::code) == Some("ConditionalCheckFailed") {
        return Cancelled::Finished;
    }
    let failed: Vec<String> = reasons.iter().map(code).filter(|c| c != "None").collect();
    if !failed.is_empty()
        && failed
            .iter()
            .all(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
    {
        return Cancelled::Contended;
    }
    if failed.iter().any(|c| c == "ValidationError") {
        return Cancelled::Refused(failed.join(", "));
    }
    Cancelled::Other(if failed.is_empty() {
        "no reasons given".into()
    } else {
        failed.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        adapters::dynamodb::expression::test_support::assert_bound_exactly,
        ids::{EventId, TenantId},
        projection::{Fields, MemoryProjections, ProjectionKind},
    };

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    /// What a read found: an item last written by event `evt_{version}` at rank 0.
    fn stored(version: i64, deleted: bool) -> Stored {
        Stored {
            version,
            rank: 0,
            source_event_id: format!("evt_{version}"),
            deleted,
        }
    }

    fn pkey(id: &str) -> ProjectionKey {
        ProjectionKey::new(&tenant(), ProjectionKind::StripeCustomer, id).expect("key")
    }

    fn write(id: &str, version: i64, change: Change) -> ProjectionWrite {
        ProjectionWrite {
            key: pkey(id),
            version,
            rank: 0,
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
        let stored = HashMap::from([(pkey("cus_1"), stored(10, false))]);
        let plan = plan(&writes, &stored);
        assert_eq!(plan.applied, 1);
        let e = expression_of(&entry(&plan.items[0]));
        assert_bound_exactly(&e);
        // Field names and values never appear in the expression's text.
        assert!(!e.update.contains("status") && !e.update.contains("a.b"));
        assert_eq!(
            e.update,
            "SET #f0 = :f0, #f1 = :f1, #version = :version, #rank = :rank, \
             #source_event_id = :source_event_id, #deleted = :false"
        );
        assert_eq!(e.names["#f0"], "a.b c");
        assert_eq!(e.values[":f1"], s("active"));
        assert_eq!(
            e.condition,
            "#version = :read_version AND (attribute_not_exists(#rank) OR #rank = :read_rank) \
             AND #source_event_id = :read_source \
             AND (attribute_not_exists(#deleted) OR #deleted <> :true)"
        );
        assert_eq!(e.values[":read_version"], n(10));
        assert_eq!(
            e.key["pk"],
            s(format!(
                "acme#stripe_customer#{}",
                crate::projection::projection_shard("cus_1")
            ))
        );
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
        let stored = HashMap::from([(pkey("gone"), stored(6, false))]);
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
            ["deleted", "pk", "rank", "sk", "source_event_id", "version"]
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
            (pkey("newer"), stored(11, false)),
            (pkey("tomb"), stored(10, true)),
            (pkey("hist"), stored(1, false)),
        ]);
        let plan = plan(&writes, &stored);
        assert_eq!(plan.applied, 1);
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].key, &pkey("fresh"));
    }

    #[test]
    fn an_update_over_a_tombstone_starts_the_item_over() {
        let writes = [upsert("cus_1", 11, &[("status", json!("active"))])];
        let stored = HashMap::from([(pkey("cus_1"), stored(10, true))]);
        let plan = plan(&writes, &stored);
        let e = expression_of(&entry(&plan.items[0]));
        assert_bound_exactly(&e);
        assert_eq!(
            e.condition,
            "#version = :read_version AND (attribute_not_exists(#rank) OR #rank = :read_rank) \
             AND #source_event_id = :read_source AND #deleted = :true"
        );
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
        let stored = HashMap::from([(pkey("c"), stored(3, false))]);
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
        assert_eq!(folded.read.as_ref(), stored.get(&pkey("c")));
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
        assert_eq!(cancelled(&[ccf(), none()]), Cancelled::Finished);
        assert_eq!(cancelled(&[ccf(), ccf()]), Cancelled::Finished);
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
}
