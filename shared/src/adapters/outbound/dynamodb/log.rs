//! Messages, deliveries and attempts. A delivery's status changes are conditional updates on
//! the status that was read (and, for the attempt's end, on the lease's owner); an attempt is
//! logged in the same transaction as the change it caused, so the log never misses one and
//! never shows one that did not happen.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::layout::Layout;
use super::{
    DUE_INDEX, DynamoOutboundStore, ENDPOINT_INDEX, decode_token, encode_token, endpoint_partition,
    endpoint_partitions, held_kind, key, padded, tenant_pk,
};
use crate::{
    adapters::{
        dynamodb::{
            deflate::{deflate, inflate},
            expression::{UpdateBuilder, is_conditional_failure},
            item::{
                Item, ItemError, b, boolean, bytes, millis, ms, n, number, opt_millis, opt_number,
                opt_string, parsed, put_opt, s, string,
            },
            unavailable,
        },
        lock,
    },
    clock::{unix_millis, unix_secs},
    ids::TenantId,
    outbound::{
        delivery::{
            Answered, Attempt, Delivery, DeliveryKey, DeliveryStatus, ErrorClass,
            MAX_PAYLOAD_BYTES, MessageErased, OutboundMessage, Trigger,
        },
        ids::{EndpointId, EventType, MessageId},
        ports::{
            AttemptResult, DUE_GRACE, DeliveryClaim, DeliveryLog, ErasedMessage, HeldDeliveries,
            MessageErasure, Page, PutMessage, StoredMessage,
        },
    },
    ports::{Erasure, StoreError},
};

const FANOUT: &str = "fanout";
const PENDING: &str = "pending";
const SENDING: &str = "sending";

/// How many partitions each of the due index's busy kinds (`fanout`, `pending`, `sending`) is
/// spread over: every delivery in the system writes one of them, so one partition each would
/// cap the whole outbound side near a few hundred deliveries a second.
pub const DUE_SHARDS: u8 = 16;

/// The due index's partition for `kind`, in the shard `of` (a message's or a delivery's key)
/// falls in: `pending#7`.
fn due_partition(kind: &str, of: &str) -> String {
    format!("{kind}#{}", crate::shard::shard_of(of, DUE_SHARDS))
}

/// Every partition `kind` may sit in: each shard, and the unsharded one of entries written
/// before the shards, until they move on.
fn due_partitions(kind: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(kind.to_owned()).chain((0..DUE_SHARDS).map(move |n| format!("{kind}#{n}")))
}

fn delivery_shard_key(key: &DeliveryKey) -> String {
    format!("{}#{}#{}", key.tenant, key.message_id, key.endpoint_id)
}

fn message_from_item(item: &Item) -> Result<OutboundMessage, ItemError> {
    let erased = match opt_millis(item, "erased_at")? {
        // A tombstone answers the hash it was stored with, its payload gone.
        Some(at) => Some(MessageErased {
            at,
            by: opt_string(item, "erased_by")?
                .unwrap_or_default()
                .to_owned(),
            content_hash: string(item, "content_hash")?.to_owned(),
        }),
        None => None,
    };
    Ok(OutboundMessage {
        tenant: parsed(item, "tenant")?,
        id: parsed(item, "message_id")?,
        event_type: parsed(item, "event_type")?,
        payload: match (item.get("payload_z"), item.get("payload_ref")) {
            _ if erased.is_some() => Vec::new(),
            (Some(_), _) => inflate(bytes(item, "payload_z")?, MAX_PAYLOAD_BYTES)
                .ok_or(ItemError::Invalid("payload_z"))?,
            // Loaded by `with_payload`.
            (None, Some(_)) => Vec::new(),
            (None, None) => bytes(item, "payload")?.to_vec(),
        },
        payload_location: opt_string(item, "payload_ref")?.map(str::to_owned),
        created_at: millis(item, "created_at")?,
        fanned_out: boolean(item, "fanned_out")?,
        // Messages stored before traces were kept have none (their attempts start one).
        trace: opt_string(item, "traceparent")?.and_then(|t| t.parse().ok()),
        erased,
    })
}

/// Whether an item is a delivery (an endpoint's index holds attempts too).
fn is_delivery(item: &Item) -> bool {
    item.get("sk")
        .and_then(|sk| sk.as_s().ok())
        .is_some_and(|sk| sk.starts_with("dlv#"))
}

fn delivery_from_item(item: &Item) -> Result<Delivery, ItemError> {
    Ok(Delivery {
        key: DeliveryKey {
            tenant: parsed(item, "tenant")?,
            message_id: parsed(item, "message_id")?,
            endpoint_id: parsed(item, "endpoint_id")?,
        },
        event_type: parsed(item, "event_type")?,
        status: string(item, "status")?
            .parse()
            .map_err(|()| ItemError::Invalid("status"))?,
        attempts: number(item, "attempts")?,
        created_at: millis(item, "created_at")?,
        status_at: millis(item, "status_at")?,
        next_attempt_at: opt_millis(item, "next_attempt_at")?,
        lease_until: opt_millis(item, "lease_until")?,
        last_status_code: opt_number(item, "last_status_code")?,
        last_error: opt_string(item, "last_error")?.map(str::to_owned),
        delivered_at: opt_millis(item, "delivered_at")?,
        answered: match (
            opt_number(item, "answered_status")?,
            opt_millis(item, "answered_at")?,
        ) {
            (Some(status), Some(at)) => Some(Answered { status, at }),
            _ => None,
        },
        spent: item.get("spent").is_some_and(|v| v.as_bool() == Ok(&true)),
    })
}

fn attempt_from_item(item: &Item) -> Result<Attempt, ItemError> {
    Ok(Attempt {
        key: DeliveryKey {
            tenant: parsed(item, "tenant")?,
            message_id: parsed(item, "message_id")?,
            endpoint_id: parsed(item, "endpoint_id")?,
        },
        number: number(item, "number")?,
        at: millis(item, "at")?,
        trigger: match opt_string(item, "trigger")? {
            Some("test") => Trigger::Test,
            _ => Trigger::Scheduled,
        },
        url: string(item, "url")?.to_owned(),
        status: opt_number(item, "status_code")?,
        latency: std::time::Duration::from_millis(number(item, "latency_ms")?),
        response_body: opt_string(item, "response_body")?
            .unwrap_or_default()
            .to_owned(),
        error_class: opt_string(item, "error_class")?
            .map(|c| {
                c.parse::<ErrorClass>()
                    .map_err(|()| ItemError::Invalid("error_class"))
            })
            .transpose()?,
        error: opt_string(item, "error")?.map(str::to_owned),
    })
}

/// An attempt's own attributes and its entry in the endpoint's index (`es = att#{at}#…`):
/// those of its item, and those a delivery carries of its latest attempt, so the endpoint's
/// attempts are one query over both.
fn inline_attempt(attempt: &Attempt) -> Vec<(&'static str, AttributeValue)> {
    let k = &attempt.key;
    let at = padded(unix_millis(attempt.at));
    let mut attributes = vec![
        ("number", n(attempt.number)),
        ("at", ms(attempt.at)),
        ("trigger", s(attempt.trigger.as_str())),
        ("url", s(&attempt.url)),
        ("latency_ms", n(attempt.latency.as_millis())),
        ("ek", s(endpoint_partition(k))),
        (
            "es",
            s(format!("att#{at}#{}#{:05}", k.message_id, attempt.number)),
        ),
    ];
    if let Some(code) = attempt.status {
        attributes.push(("status_code", n(code)));
    }
    if !attempt.response_body.is_empty() {
        attributes.push(("response_body", s(&attempt.response_body)));
    }
    if let Some(class) = attempt.error_class {
        attributes.push(("error_class", s(class.as_str())));
    }
    if let Some(error) = &attempt.error {
        attributes.push(("error", s(error)));
    }
    attributes
}

/// The attributes [`inline_attempt`] sets only when the attempt has them: a delivery's next
/// attempt removes what its last one left.
const INLINE_OPTIONAL: [&str; 4] = ["status_code", "response_body", "error_class", "error"];

fn attempt_item(attempt: &Attempt, expires_at: SystemTime, layout: Layout) -> Item {
    let k = &attempt.key;
    let mut item = layout.attempt_key(attempt);
    item.extend([
        ("tenant".to_owned(), s(k.tenant.as_str())),
        ("message_id".to_owned(), s(k.message_id.as_str())),
        ("endpoint_id".to_owned(), s(k.endpoint_id.as_str())),
        ("expires_at".to_owned(), n(unix_secs(expires_at))),
    ]);
    item.extend(
        inline_attempt(attempt)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    item
}

/// An error as a delivery keeps it: its start.
fn truncated(error: &str) -> String {
    error.chars().take(crate::aws::MAX_ERROR_CHARS).collect()
}

/// Where a delivery in `status` sits in the due index (`None`: not there).
fn due_entry(
    key: &DeliveryKey,
    status: DeliveryStatus,
    due_at: Option<SystemTime>,
    created_at: SystemTime,
) -> Option<(String, SystemTime)> {
    match status {
        DeliveryStatus::Pending => Some((
            due_partition(PENDING, &delivery_shard_key(key)),
            due_at.unwrap_or(created_at),
        )),
        DeliveryStatus::Sending => Some((
            due_partition(SENDING, &delivery_shard_key(key)),
            due_at.unwrap_or(created_at),
        )),
        DeliveryStatus::Held => Some((held_kind(&key.tenant, &key.endpoint_id), created_at)),
        _ => None,
    }
}

/// Set the due index's attributes for `status`, or remove them.
fn with_due(
    update: UpdateBuilder,
    key: &DeliveryKey,
    status: DeliveryStatus,
    due_at: Option<SystemTime>,
    created_at: SystemTime,
) -> UpdateBuilder {
    match due_entry(key, status, due_at, created_at) {
        Some((kind, at)) => update.set("due_kind", s(kind)).set("due_at", ms(at)),
        None => update.remove("due_kind").remove("due_at"),
    }
}

impl DynamoOutboundStore {
    /// One item, read consistently (only its key with `keys_only`).
    async fn read(&self, key: Item, keys_only: bool) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .set_projection_expression(keys_only.then(|| "pk".to_owned()))
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &self.table, &e))?;
        Ok(output.item)
    }

    /// Where a message's items are, and whether that is known (its message was found, now or
    /// before): an unknown one is treated as new.
    async fn layout(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<(Layout, bool), StoreError> {
        if let Some(layout) = self.layouts.get(tenant, id) {
            return Ok((layout, true));
        }
        for layout in Layout::BOTH {
            if self
                .read(layout.message_key(tenant, id), true)
                .await?
                .is_some()
            {
                self.layouts.remember(tenant, id, layout);
                return Ok((layout, true));
            }
        }
        Ok((Layout::PerMessage, false))
    }

    /// The key of a delivery's item, where its message's items are.
    async fn delivery_key(&self, key: &DeliveryKey) -> Result<Item, StoreError> {
        Ok(self
            .layout(&key.tenant, &key.message_id)
            .await?
            .0
            .delivery_key(key))
    }

    /// Run a conditional update: whether its condition held (a failed one is an answer, not
    /// an error).
    async fn update_if(&self, update: UpdateBuilder) -> Result<bool, StoreError> {
        match update
            .build()
            .update_item(&self.client, &self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem", &self.table, &e)),
        }
    }

    /// A delivery's item as stored, read consistently: where its message's items are, or,
    /// when no message says where (it expired), in either layout.
    async fn delivery_item(&self, key: &DeliveryKey) -> Result<Option<Item>, StoreError> {
        let (layout, known) = self.layout(&key.tenant, &key.message_id).await?;
        if let Some(item) = self.read(layout.delivery_key(key), false).await? {
            return Ok(Some(item));
        }
        if known {
            return Ok(None);
        }
        self.read(Layout::PerTenant.delivery_key(key), false).await
    }

    /// Before a delivery's next attempt replaces the last one it carries (in `item`), copy
    /// that one to an item of its own: the same key every time, so a copy made twice is one.
    /// Deliveries written before attempts moved onto them carry none.
    async fn archive_last_attempt(&self, item: &Item) -> Result<(), StoreError> {
        if !item.contains_key("number") {
            return Ok(());
        }
        let last = attempt_from_item(item)?;
        let expires_at = opt_number::<u64>(item, "expires_at")?
            .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap_or(last.at + crate::record::DEFAULT_RETENTION);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attempt_item(&last, expires_at, Layout::of(item))))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &self.table, &e))?;
        Ok(())
    }

    /// Up to `limit` of an endpoint's index entries whose `es` starts with `prefix` (from
    /// `prefix{from}` on, if given) and that `keep` keeps, newest first, across its shards
    /// and the unsharded partition of entries written before them: each partition's newest
    /// below `before` (the page token: the last entry's `es`, bound to the endpoint it lists),
    /// merged. Entries' `es` are unique, so a page never repeats or skips one.
    #[allow(clippy::too_many_arguments)]
    async fn endpoint_page(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        prefix: &str,
        from: Option<&str>,
        limit: u32,
        before: Option<&str>,
        keep: fn(&Item) -> bool,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let listed = format!("{tenant}#{endpoint}\n");
        let before = match before {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|text| text.strip_prefix(&listed).map(str::to_owned))
                    .filter(|es| es.starts_with(prefix))
                    .ok_or_else(|| StoreError::Malformed("invalid page token".into()))?,
            ),
            None => None,
        };
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let low = format!("{prefix}{}", from.unwrap_or_default());
        let high = before.clone().unwrap_or_else(|| format!("{prefix}~"));
        let partitions = endpoint_partitions(tenant, endpoint);
        let pages = futures_util::future::try_join_all(partitions.iter().map(|partition| {
            self.newest_below(partition, &low, &high, before.as_deref(), wanted + 1, keep)
        }))
        .await?;
        let mut merged: Vec<(String, Item)> = pages.into_iter().flatten().collect();
        merged.sort_by(|a, b| b.0.cmp(&a.0));
        let more = merged.len() > wanted;
        merged.truncate(wanted);
        let next = if more {
            merged
                .last()
                .map(|(es, _)| URL_SAFE_NO_PAD.encode(format!("{listed}{es}")))
        } else {
            None
        };
        Ok((merged.into_iter().map(|(_, item)| item).collect(), next))
    }

    /// One partition of the endpoint index: up to `wanted` kept entries with `es` between
    /// `low` and `high`, newest first, leaving out `high` itself when it is the page's
    /// position.
    async fn newest_below(
        &self,
        partition: &str,
        low: &str,
        high: &str,
        position: Option<&str>,
        wanted: usize,
        keep: fn(&Item) -> bool,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ENDPOINT_INDEX)
                .key_condition_expression("ek = :p AND es BETWEEN :low AND :high")
                .expression_attribute_values(":p", s(partition))
                .expression_attribute_values(":low", s(low))
                .expression_attribute_values(":high", s(high))
                .scan_index_forward(false)
                .limit(
                    i32::try_from(wanted - found.len())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", &self.table, &e))?;
            for item in output.items() {
                let es = string(item, "es")?.to_owned();
                if Some(es.as_str()) != position && keep(item) {
                    found.push((es, item.clone()));
                }
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() || found.len() >= wanted {
                return Ok(found);
            }
        }
    }

    /// Listings of a table's partitions read as one: every page of the first, then of the
    /// next, each query's items kept if `keep(listing, item)`. The page token says which
    /// listing it continues (`{n}.{its own token}`).
    async fn phased_page(
        &self,
        listings: &[(String, String)],
        limit: u32,
        after: Option<&str>,
        keep: impl Fn(usize, &Item) -> bool,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let invalid = || StoreError::Malformed("invalid page token".into());
        let (mut phase, mut inner) = match after {
            None => (0, None),
            Some(token) => {
                let (n, rest) = token.split_once('.').ok_or_else(invalid)?;
                let n: usize = n.parse().map_err(|_| invalid())?;
                (n, (!rest.is_empty()).then(|| rest.to_owned()))
            }
        };
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let mut kept = Vec::new();
        loop {
            let Some((partition, prefix)) = listings.get(phase) else {
                return Ok((kept, None));
            };
            let room = u32::try_from(wanted - kept.len()).unwrap_or(u32::MAX);
            let (items, next) = self
                .page_of(
                    None,
                    ("pk", partition.clone()),
                    ("sk", prefix.clone()),
                    None,
                    room,
                    inner.as_deref(),
                )
                .await?;
            kept.extend(items.into_iter().filter(|item| keep(phase, item)));
            match next {
                Some(next) if kept.len() >= wanted => {
                    return Ok((kept, Some(format!("{phase}.{next}"))));
                }
                Some(next) => inner = Some(next),
                None if kept.len() >= wanted && phase + 1 < listings.len() => {
                    return Ok((kept, Some(format!("{}.", phase + 1))));
                }
                None => {
                    phase += 1;
                    inner = None;
                }
            }
        }
    }

    /// The tenant's list of published event types (`pk = t#{tenant}`, `sk = types`): messages
    /// have no tenant partition to list, so a type is added there the first time a container
    /// stores one. Best effort: a failure is retried by the next message of that type.
    async fn note_type(&self, tenant: &TenantId, event_type: &EventType) {
        let seen = (tenant.clone(), event_type.clone());
        if lock(&self.noted_types).get(&seen).is_some() {
            return;
        }
        let result = UpdateBuilder::new(key(tenant_pk(tenant), "types".into()))
            .set_clause(
                "#types = list_append(if_not_exists(#types, :none), :one)",
                &["types"],
            )
            .value(":none", AttributeValue::L(Vec::new()))
            .value(":one", AttributeValue::L(vec![s(event_type.as_str())]))
            .condition("NOT contains(#types, :type)", &["types"])
            .value(":type", s(event_type.as_str()))
            .build()
            .update_item(&self.client, &self.table)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if is_conditional_failure(&e) => {}
            Err(e) => {
                tracing::warn!(error = %unavailable("UpdateItem", &self.table, &e), "event type not noted");
                return;
            }
        }
        lock(&self.noted_types).put(seen, ());
    }

    /// The event types [`Self::note_type`] noted for `tenant`.
    async fn noted_types(
        &self,
        tenant: &TenantId,
    ) -> Result<std::collections::BTreeSet<EventType>, StoreError> {
        let Some(item) = self
            .read(key(tenant_pk(tenant), "types".into()), false)
            .await?
        else {
            return Ok(std::collections::BTreeSet::new());
        };
        match item.get("types") {
            Some(AttributeValue::L(values)) => values
                .iter()
                .filter_map(|v| v.as_s().ok())
                .map(|t| EventType::parse(t).map_err(|_| ItemError::Invalid("types").into()))
                .collect(),
            _ => Ok(std::collections::BTreeSet::new()),
        }
    }

    /// The layouts a message's items may be in: its own, or both when no message says.
    async fn layouts_of(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Vec<Layout>, StoreError> {
        Ok(match self.layout(tenant, id).await? {
            (layout, true) => vec![layout],
            (_, false) => Layout::BOTH.to_vec(),
        })
    }

    /// Query a partition (`pk` or the endpoint index's `ek`) for keys starting with `prefix`,
    /// newest first, a page at a time.
    async fn page_of(
        &self,
        index: Option<&str>,
        partition: (&str, String),
        prefix: (&str, String),
        from: Option<String>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let (partition_name, partition_value) = partition;
        let (sort_name, prefix) = prefix;
        let mut start = after
            .map(|token| decode_token(token, partition_name, &partition_value))
            .transpose()?;
        let condition = match from {
            Some(_) => format!("{partition_name} = :p AND {sort_name} BETWEEN :from AND :to"),
            None => format!("{partition_name} = :p AND begins_with({sort_name}, :prefix)"),
        };
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(&condition)
                .expression_attribute_values(":p", s(&partition_value))
                .scan_index_forward(false)
                .limit(
                    i32::try_from(wanted - items.len())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .set_exclusive_start_key(start);
            query = match &from {
                Some(from) => query
                    .expression_attribute_values(":from", s(format!("{prefix}{from}")))
                    .expression_attribute_values(":to", s(format!("{prefix}~"))),
                None => query.expression_attribute_values(":prefix", s(&prefix)),
            };
            let output = query
                .send()
                .await
                .map_err(|e| unavailable("Query", &self.table, &e))?;
            items.extend(output.items().iter().cloned());
            start = output.last_evaluated_key().cloned();
            if start.is_none() || items.len() >= wanted {
                break;
            }
        }
        Ok((items, start.as_ref().and_then(encode_token)))
    }

    /// The oldest `limit` entries of a sharded `kind` due before `before`, from every shard.
    async fn due_everywhere(
        &self,
        kind: &str,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for partition in due_partitions(kind) {
            found.extend(self.due(&partition, before, limit, true).await?);
        }
        let due_at =
            |item: &Item| crate::adapters::dynamodb::item::number::<i64>(item, "due_at").ok();
        found.sort_by_key(due_at);
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    /// Keys of the due index's `kind` entries due before `before`.
    async fn due(
        &self,
        kind: &str,
        before: SystemTime,
        limit: u32,
        oldest_first: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_kind = :kind AND due_at < :before")
            .expression_attribute_values(":kind", s(kind))
            .expression_attribute_values(":before", ms(before))
            .scan_index_forward(oldest_first)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .send()
            .await
            .map_err(|e| unavailable("Query", &self.table, &e))?;
        Ok(output.items().to_vec())
    }
}

fn delivery_key_from(item: &Item) -> Result<DeliveryKey, ItemError> {
    Ok(DeliveryKey {
        tenant: parsed(item, "tenant")?,
        message_id: parsed(item, "message_id")?,
        endpoint_id: parsed(item, "endpoint_id")?,
    })
}

impl DynamoOutboundStore {
    /// The message with its payload loaded, if it refers to one kept outside; `None` if that
    /// is gone (it expired with the inbound event it relays): the message is as good as expired.
    async fn with_payload(
        &self,
        mut message: OutboundMessage,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        let Some(location) = &message.payload_location else {
            return Ok(Some(message));
        };
        let Some(bucket) = &self.payloads else {
            return Err(StoreError::Rejected(format!(
                "message {} refers to a payload kept outside, and this reader has no bucket",
                message.id
            )));
        };
        match bucket.get(location).await {
            Ok(payload) => message.payload = payload,
            Err(StoreError::Rejected(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Some(message))
    }
}

/// Erasing a message's payload (a data-subject request).
///
/// Cost: one `UpdateItem` on the message item (billed by the item before, payload included; no
/// index changes), a `Query` of the message's deliveries and attempts (keys and bodies only),
/// and one small `UpdateItem` per item that kept a partner's answer. A payload relayed by
/// reference (`payload_ref`, the inbound event's own S3 object) is never deleted here: only
/// the reference goes; the object is the inbound event's, erased with `--event`.
/// Operator actions only, never on a hot path.
#[async_trait]
impl MessageErasure for DynamoOutboundStore {
    async fn erase_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        erasure: &Erasure,
    ) -> Result<ErasedMessage, StoreError> {
        let (layout, known) = self.layout(tenant, id).await?;
        if !known {
            return Ok(ErasedMessage::NotFound);
        }
        let result = UpdateBuilder::new(layout.message_key(tenant, id))
            .set("erased_at", ms(erasure.at))
            .set("erased_by", s(&erasure.actor))
            .remove("payload")
            .remove("payload_z")
            .remove("payload_ref")
            // The key is built from the tenant; the stored tenant must agree, as a second
            // guard that no other tenant's item is ever changed.
            .condition(
                "attribute_exists(#pk) AND #tenant = :tenant",
                &["pk", "tenant"],
            )
            .value(":tenant", s(tenant.as_str()))
            .condition("attribute_not_exists(#erased_at)", &["erased_at"])
            .build()
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let before = output.attributes().ok_or_else(|| {
                    StoreError::Malformed("an erasure returned no attributes".into())
                })?;
                let mut tombstone = message_from_item(before)?;
                tombstone.erased = Some(MessageErased {
                    at: erasure.at,
                    by: erasure.actor.clone(),
                    content_hash: string(before, "content_hash")?.to_owned(),
                });
                tombstone.payload = Vec::new();
                let referenced = tombstone.payload_location.take().is_some();
                let attempts = self.clear_answers(layout, tenant, id).await?;
                Ok(ErasedMessage::Now {
                    tombstone: Box::new(tombstone),
                    referenced,
                    attempts,
                })
            }
            Err(e) if is_conditional_failure(&e) => {
                match self.read(layout.message_key(tenant, id), false).await? {
                    Some(item) if opt_string(&item, "tenant")? == Some(tenant.as_str()) => {
                        let message = message_from_item(&item)?;
                        if !message.is_erased() {
                            return Err(StoreError::Conflict(
                                "the message changed during the erasure".into(),
                            ));
                        }
                        // An erasure stopped before the answers were cleared finishes now.
                        self.clear_answers(layout, tenant, id).await?;
                        Ok(ErasedMessage::Already(Box::new(message)))
                    }
                    _ => Ok(ErasedMessage::NotFound),
                }
            }
            Err(e) => Err(unavailable("UpdateItem", &self.table, &e)),
        }
    }
}

impl DynamoOutboundStore {
    /// Remove the partner answers (`response_body`) the message's deliveries and attempts
    /// keep; how many items had one.
    async fn clear_answers(
        &self,
        layout: Layout,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<u32, StoreError> {
        let (pk, deliveries, attempts) = layout.message_items(tenant, id);
        let mut cleared = 0;
        for prefix in [deliveries, attempts] {
            // Read units are billed on whole items whatever a filter or projection keeps, so
            // the answers are picked here.
            for item in self.items_with_prefix(&pk, &prefix, true).await? {
                if !item.contains_key("response_body") {
                    continue;
                }
                let key: Item = ["pk", "sk"]
                    .into_iter()
                    .filter_map(|k| Some((k.to_owned(), item.get(k)?.clone())))
                    .collect();
                let update = UpdateBuilder::new(key)
                    .remove("response_body")
                    .condition("attribute_exists(#pk)", &["pk"]);
                if self.update_if(update).await? {
                    cleared += 1;
                }
            }
        }
        Ok(cleared)
    }
}

#[async_trait]
impl DeliveryLog for DynamoOutboundStore {
    async fn put_message(
        &self,
        message: &OutboundMessage,
        expires_at: SystemTime,
    ) -> Result<PutMessage, StoreError> {
        // A message stored unfinished is one of before pointers went first (reconcile's
        // tests make them): it goes where those were.
        let layout = if message.fanned_out {
            Layout::PerMessage
        } else {
            Layout::PerTenant
        };
        let mut item = layout.message_key(&message.tenant, &message.id);
        item.extend([
            ("tenant".to_owned(), s(message.tenant.as_str())),
            ("message_id".to_owned(), s(message.id.as_str())),
            ("event_type".to_owned(), s(message.event_type.as_str())),
            ("content_hash".to_owned(), s(message.content_hash())),
            ("created_at".to_owned(), ms(message.created_at)),
            (
                "fanned_out".to_owned(),
                AttributeValue::Bool(message.fanned_out),
            ),
            ("expires_at".to_owned(), n(unix_secs(expires_at))),
        ]);
        if let Some(trace) = &message.trace {
            item.insert("traceparent".to_owned(), s(trace.to_string()));
        }
        match (&message.payload_location, deflate(&message.payload)) {
            (Some(location), _) => item.insert("payload_ref".to_owned(), s(location)),
            (None, Some(deflated)) => item.insert("payload_z".to_owned(), b(deflated)),
            (None, None) => item.insert("payload".to_owned(), b(message.payload.clone())),
        };
        if !message.fanned_out {
            item.insert(
                "due_kind".into(),
                s(due_partition(
                    FANOUT,
                    &format!("{}#{}", message.tenant, message.id),
                )),
            );
            item.insert("due_at".into(), ms(message.created_at));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => {
                self.layouts.remember(&message.tenant, &message.id, layout);
                self.note_type(&message.tenant, &message.event_type).await;
                Ok(PutMessage::Inserted)
            }
            Err(e) if is_conditional_failure(&e) => {
                match self.message(&message.tenant, &message.id).await? {
                    Some(existing) if existing.content_hash() == message.content_hash() => {
                        Ok(PutMessage::Duplicate(Box::new(existing)))
                    }
                    Some(_) => Ok(PutMessage::Conflict),
                    // Expired between the put and the read: as good as new next time.
                    None => Err(StoreError::Unavailable(
                        "the message expired while being published; publish again".into(),
                    )),
                }
            }
            Err(e) => Err(unavailable("PutItem", &self.table, &e)),
        }
    }

    async fn message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        let layouts = match self.layouts.get(tenant, id) {
            Some(known) => vec![known],
            None => Layout::BOTH.to_vec(),
        };
        for layout in layouts {
            if let Some(item) = self.read(layout.message_key(tenant, id), false).await? {
                self.layouts.remember(tenant, id, layout);
                return self.with_payload(message_from_item(&item)?).await;
            }
        }
        Ok(None)
    }

    async fn stored_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<StoredMessage>, StoreError> {
        // Eventually consistent (half a unit each): the put's condition catches the rest, and
        // a message stored before messages had partitions of their own is old and unchanging.
        // The stored hash is compared: no payload inflated, none fetched from S3.
        for layout in Layout::BOTH {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(layout.message_key(tenant, id)))
                .send()
                .await
                .map_err(|e| unavailable("GetItem", &self.table, &e))?;
            if let Some(item) = output.item {
                return Ok(Some(StoredMessage {
                    event_type: parsed(&item, "event_type")?,
                    content_hash: string(&item, "content_hash")?.to_owned(),
                }));
            }
        }
        Ok(None)
    }

    async fn published_types(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<EventType>, StoreError> {
        let mut types = self.noted_types(tenant).await?;
        // And those of messages stored in their tenant's partition before.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :msg)")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":msg", s("msg#"))
            .projection_expression("event_type")
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).max(1))
            .send()
            .await
            .map_err(|e| unavailable("Query", &self.table, &e))?;
        for item in output.items() {
            types.insert(parsed(item, "event_type")?);
        }
        Ok(types
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn keep_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        until: SystemTime,
    ) -> Result<(), StoreError> {
        let (layout, _) = self.layout(tenant, id).await?;
        // Kept that long already, or gone: nothing to do.
        self.update_if(
            UpdateBuilder::new(layout.message_key(tenant, id))
                .set("expires_at", n(unix_secs(until)))
                .condition(
                    "attribute_exists(#pk) AND (attribute_not_exists(#expires_at) OR #expires_at < :expires_at)",
                    &["pk", "expires_at"],
                ),
        )
        .await
        .map(|_| ())
    }

    async fn mark_fanned_out(&self, tenant: &TenantId, id: &MessageId) -> Result<(), StoreError> {
        // Only a message stored unfinished is marked: one stored before pointers went first.
        self.update_if(
            UpdateBuilder::new(Layout::PerTenant.message_key(tenant, id))
                .set("fanned_out", AttributeValue::Bool(true))
                .remove("due_kind")
                .remove("due_at")
                .condition("attribute_exists(#pk)", &["pk"]),
        )
        .await
        .map(|_| ())
    }

    async fn unfinished_fan_outs(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<(TenantId, MessageId)>, StoreError> {
        self.due_everywhere(FANOUT, before, limit)
            .await?
            .iter()
            .map(|item| Ok((parsed(item, "tenant")?, parsed(item, "message_id")?)))
            .collect::<Result<_, ItemError>>()
            .map_err(StoreError::from)
    }

    async fn put_delivery_if_absent(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let k = &delivery.key;
        let mut item = self.delivery_key(k).await?;
        item.extend([
            ("tenant".to_owned(), s(k.tenant.as_str())),
            ("message_id".to_owned(), s(k.message_id.as_str())),
            ("endpoint_id".to_owned(), s(k.endpoint_id.as_str())),
            ("event_type".to_owned(), s(delivery.event_type.as_str())),
            ("status".to_owned(), s(delivery.status.as_str())),
            ("attempts".to_owned(), n(delivery.attempts)),
            ("created_at".to_owned(), ms(delivery.created_at)),
            ("status_at".to_owned(), ms(delivery.status_at)),
            ("ek".to_owned(), s(endpoint_partition(k))),
            (
                "es".to_owned(),
                s(format!(
                    "dlv#{}#{}",
                    padded(unix_millis(delivery.created_at)),
                    k.message_id
                )),
            ),
        ]);
        put_opt(
            &mut item,
            "next_attempt_at",
            delivery.next_attempt_at.map(ms),
        );
        if let Some((kind, at)) = due_entry(
            k,
            delivery.status,
            delivery.next_attempt_at,
            delivery.created_at,
        ) {
            item.insert("due_kind".into(), s(kind));
            item.insert("due_at".into(), ms(at));
        }
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

    async fn delivery(&self, key: &DeliveryKey) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .delivery_item(key)
            .await?
            .as_ref()
            .map(delivery_from_item)
            .transpose()?)
    }

    async fn claim_delivery(
        &self,
        delivery: &Delivery,
        owner: &str,
        lease_until: SystemTime,
        probe: bool,
        now: SystemTime,
    ) -> Result<DeliveryClaim, StoreError> {
        let key = &delivery.key;
        let mut condition = "attribute_not_exists(#pk) OR (#status = :pending AND \
             (attribute_not_exists(#next_attempt_at) OR #next_attempt_at <= :due_by)) OR \
             (#status = :sending AND #lease_until < :now)"
            .to_owned();
        if probe {
            condition.push_str(" OR #status = :held");
        }
        // A delivery under way is in no index: its pointer is hidden on the queue for the
        // lease, and comes back if the attempt never ends.
        let mut update = UpdateBuilder::new(self.delivery_key(key).await?)
            .set("status", s(DeliveryStatus::Sending.as_str()))
            .set("status_at", ms(now))
            .set("lease_owner", s(owner))
            .set("lease_until", ms(lease_until))
            .remove("due_kind")
            .remove("due_at")
            .set_clause(
                "#attempts = if_not_exists(#attempts, :zero) + :one",
                &["attempts"],
            )
            .value(":zero", n(0))
            .value(":one", n(1));
        // What a delivery created by this claim is made of; kept as they are otherwise.
        for (name, value) in [
            ("tenant", s(key.tenant.as_str())),
            ("message_id", s(key.message_id.as_str())),
            ("endpoint_id", s(key.endpoint_id.as_str())),
            ("event_type", s(delivery.event_type.as_str())),
            ("created_at", ms(delivery.created_at)),
        ] {
            update = update
                .set_clause(
                    &format!("#{name} = if_not_exists(#{name}, :{name})"),
                    &[name],
                )
                .value(&format!(":{name}"), value);
        }
        update = update
            .condition(
                &condition,
                &["pk", "status", "lease_until", "next_attempt_at"],
            )
            .value(":pending", s(DeliveryStatus::Pending.as_str()))
            .value(":sending", s(DeliveryStatus::Sending.as_str()))
            .value(":now", ms(now))
            .value(":due_by", ms(now + DUE_GRACE));
        if probe {
            update = update.value(":held", s(DeliveryStatus::Held.as_str()));
        }
        let result = update
            .build()
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output.attributes.ok_or_else(|| {
                    StoreError::Unavailable("the claimed delivery did not come back".into())
                })?;
                Ok(DeliveryClaim::Claimed(Box::new(delivery_from_item(&item)?)))
            }
            Err(e) if is_conditional_failure(&e) => Ok(match self.delivery(key).await? {
                Some(Delivery {
                    status: DeliveryStatus::Pending,
                    next_attempt_at: Some(due),
                    ..
                }) if due > now + DUE_GRACE => DeliveryClaim::NotDue(due),
                Some(d) => DeliveryClaim::NotNow(d.status),
                // Gone between the claim and the read (it expired): nothing to attempt.
                None => DeliveryClaim::NotNow(DeliveryStatus::Cancelled),
            }),
            Err(e) => Err(unavailable("UpdateItem", &self.table, &e)),
        }
    }

    async fn finish_attempt(
        &self,
        owner: &str,
        result: &AttemptResult,
    ) -> Result<bool, StoreError> {
        let attempt = &result.attempt;
        let k = &attempt.key;
        // A first attempt follows none (a resend archived the last one when it reset the
        // count): the happy path reads nothing here.
        if attempt.number > 1
            && let Some(item) = self.delivery_item(k).await?
        {
            self.archive_last_attempt(&item).await?;
        }
        let mut update = UpdateBuilder::new(self.delivery_key(k).await?)
            .set("status", s(result.status.as_str()))
            .set("status_at", ms(attempt.at))
            .remove("lease_owner")
            .remove("lease_until")
            .remove("answered_status")
            .remove("answered_at")
            .condition(
                "#lease_owner = :owner AND #status = :sending",
                &["lease_owner", "status"],
            )
            .value(":owner", s(owner))
            .value(":sending", s(DeliveryStatus::Sending.as_str()));
        update = with_due(
            update,
            k,
            result.status,
            result.next_attempt_at,
            result.created_at,
        );
        update = match result.next_attempt_at {
            Some(at) => update.set("next_attempt_at", ms(at)),
            None => update.remove("next_attempt_at"),
        };
        update = match attempt.status {
            Some(code) => update.set("last_status_code", n(code)),
            None => update.remove("last_status_code"),
        };
        update = match &attempt.error {
            Some(error) => update.set("last_error", s(truncated(error))),
            None => update.remove("last_error"),
        };
        if result.status == DeliveryStatus::Delivered {
            update = update.set("delivered_at", ms(attempt.at));
        }
        update = if result.spent {
            update.set("spent", AttributeValue::Bool(true))
        } else {
            update.remove("spent")
        };
        if let Some(expires_at) = result.expires_at {
            update = update.set("expires_at", n(unix_secs(expires_at)));
        }
        // The attempt itself, on the delivery: one write, and the endpoint's index entry.
        let inline = inline_attempt(attempt);
        for name in INLINE_OPTIONAL {
            if !inline.iter().any(|(set, _)| *set == name) {
                update = update.remove(name);
            }
        }
        for (name, value) in inline {
            update = update.set(name, value);
        }
        // Only the lease's own condition is checked: failing it means the lease is gone.
        self.update_if(update).await
    }

    async fn note_answered(
        &self,
        key: &DeliveryKey,
        owner: &str,
        status: u16,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        let update = UpdateBuilder::new(self.delivery_key(key).await?)
            .set("answered_status", n(status))
            .set("answered_at", ms(at))
            .condition(
                "#lease_owner = :owner AND #status = :sending",
                &["lease_owner", "status"],
            )
            .value(":owner", s(owner))
            .value(":sending", s(DeliveryStatus::Sending.as_str()));
        self.update_if(update).await
    }

    async fn log_attempt(
        &self,
        attempt: &Attempt,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attempt_item(attempt, expires_at, Layout::PerMessage)))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &self.table, &e))?;
        Ok(())
    }

    async fn move_delivery(
        &self,
        key: &DeliveryKey,
        from: &[DeliveryStatus],
        to: DeliveryStatus,
        reset_attempts: bool,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let Some(item) = self.delivery_item(key).await? else {
            return Ok(false);
        };
        let created_at = millis(&item, "created_at")?;
        if reset_attempts {
            self.archive_last_attempt(&item).await?;
        }
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut update = UpdateBuilder::new(Layout::of(&item).delivery_key(key))
            .set("status", s(to.as_str()))
            .set("status_at", ms(now))
            .remove("lease_owner")
            .remove("lease_until")
            .condition(
                &format!("#status IN ({})", placeholders.join(", ")),
                &["status"],
            );
        for (placeholder, status) in placeholders.iter().zip(from) {
            update = update.value(placeholder, s(status.as_str()));
        }
        let due = (to == DeliveryStatus::Pending).then_some(now);
        update = with_due(update, key, to, due, created_at);
        update = match due {
            Some(at) => update.set("next_attempt_at", ms(at)),
            None => update.remove("next_attempt_at"),
        };
        if reset_attempts {
            update = update.set("attempts", n(0)).remove("spent");
        }
        update = match expires_at {
            Some(at) => update.set("expires_at", n(unix_secs(at))),
            None => update.remove("expires_at"),
        };
        self.update_if(update).await
    }

    async fn deliveries_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let listings: Vec<(String, String)> = self
            .layouts_of(tenant, id)
            .await?
            .into_iter()
            .map(|layout| {
                let (pk, deliveries, _) = layout.message_items(tenant, id);
                (pk, deliveries)
            })
            .collect();
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let (items, next) = self
                .phased_page(&listings, 100, after.as_deref(), |_, _| true)
                .await?;
            for item in &items {
                found.push(delivery_from_item(item)?);
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(found),
            }
        }
    }

    async fn deliveries_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: Option<SystemTime>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Delivery>, StoreError> {
        // Deliveries carry their last attempt's entry (`att#…`, among the attempts); those
        // never attempted, and those written before, keep their creation's (`dlv#…`).
        let invalid = || StoreError::Malformed("invalid page token".into());
        let (mut phase, mut position) = match after.map(|t| t.split_once('.')) {
            None => (0, None),
            Some(Some(("a", rest))) => (0, Some(rest.to_owned())),
            Some(Some(("b", rest))) => (1, (!rest.is_empty()).then(|| rest.to_owned())),
            Some(_) => return Err(invalid()),
        };
        let from = since.map(|at| padded(unix_millis(at)));
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let mut deliveries = Vec::new();
        loop {
            let prefix = if phase == 0 { "att#" } else { "dlv#" };
            let room = u32::try_from(wanted - deliveries.len()).unwrap_or(u32::MAX);
            let (items, next) = self
                .endpoint_page(
                    tenant,
                    endpoint,
                    prefix,
                    from.as_deref(),
                    room,
                    position.as_deref(),
                    is_delivery,
                )
                .await?;
            for item in &items {
                deliveries.push(delivery_from_item(item)?);
            }
            let label = if phase == 0 { "a" } else { "b" };
            let next = match next {
                Some(next) => Some(format!("{label}.{next}")),
                None if phase == 0 => Some("b.".to_owned()),
                None => None,
            };
            match next {
                Some(token) if deliveries.len() >= wanted => {
                    return Ok(Page {
                        items: deliveries,
                        next: Some(token),
                    });
                }
                Some(token) => {
                    let (p, rest) = token.split_once('.').ok_or_else(invalid)?;
                    phase = usize::from(p == "b");
                    position = (!rest.is_empty()).then(|| rest.to_owned());
                }
                None => {
                    return Ok(Page {
                        items: deliveries,
                        next: None,
                    });
                }
            }
        }
    }

    async fn held_deliveries(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
    ) -> Result<HeldDeliveries, StoreError> {
        let mut held = Vec::new();
        let indexed = self
            .due(
                &held_kind(tenant, endpoint),
                SystemTime::now() + std::time::Duration::from_secs(86_400 * 365),
                limit,
                true,
            )
            .await?;
        let more = indexed.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
        for item in indexed {
            // The index holds keys only; the delivery is read whole and consistently.
            if let Some(d) = self.delivery(&delivery_key_from(&item)?).await?
                && d.status == DeliveryStatus::Held
            {
                held.push(d);
            }
        }
        Ok(HeldDeliveries {
            deliveries: held,
            more,
        })
    }

    async fn overdue_deliveries(
        &self,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<DeliveryKey>, StoreError> {
        let mut keys = Vec::new();
        for kind in [PENDING, SENDING] {
            for item in self.due_everywhere(kind, before, limit).await? {
                keys.push(delivery_key_from(&item)?);
            }
        }
        Ok(keys)
    }

    async fn attempts_of_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        // Each delivery's last attempt is on the delivery; the earlier ones are items.
        let mut listings = Vec::new();
        for layout in self.layouts_of(tenant, id).await? {
            let (pk, deliveries, attempts) = layout.message_items(tenant, id);
            listings.push((pk.clone(), deliveries));
            listings.push((pk, attempts));
        }
        let (items, next) = self
            .phased_page(&listings, limit, after, |n, item| {
                n % 2 == 1 || item.contains_key("number")
            })
            .await?;
        Ok(Page {
            items: items
                .iter()
                .map(attempt_from_item)
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn attempts_of_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let (items, next) = self
            .endpoint_page(tenant, endpoint, "att#", None, limit, after, |_| true)
            .await?;
        Ok(Page {
            items: items
                .iter()
                .map(attempt_from_item)
                .collect::<Result<_, _>>()?,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn attempt(number: u32, error: bool) -> Attempt {
        Attempt {
            key: DeliveryKey {
                tenant: TenantId::parse("acme").expect("tenant"),
                message_id: MessageId::parse("msg_1").expect("message"),
                endpoint_id: EndpointId::parse("ep_1").expect("endpoint"),
            },
            number,
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            trigger: Trigger::Scheduled,
            url: "https://partner.example/hooks".into(),
            status: (!error).then_some(204),
            latency: Duration::from_millis(42),
            response_body: if error { String::new() } else { "ok".into() },
            error_class: error.then_some(ErrorClass::Timeout),
            error: error.then(|| "no answer in 15 s".into()),
        }
    }

    #[test]
    fn an_attempt_reads_back_the_same_from_its_item_and_from_its_delivery() {
        for attempt in [attempt(1, false), attempt(3, true)] {
            let item = attempt_item(
                &attempt,
                UNIX_EPOCH + Duration::from_secs(1),
                Layout::PerMessage,
            );
            assert_eq!(attempt_from_item(&item), Ok(attempt.clone()));
            // A delivery carries its last attempt under the same names, with its index entry.
            let mut delivery = Layout::PerMessage.delivery_key(&attempt.key);
            delivery.extend([
                ("tenant".to_owned(), s("acme")),
                ("message_id".to_owned(), s("msg_1")),
                ("endpoint_id".to_owned(), s("ep_1")),
            ]);
            delivery.extend(
                inline_attempt(&attempt)
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value)),
            );
            assert_eq!(attempt_from_item(&delivery), Ok(attempt.clone()));
            assert_eq!(delivery["es"], item["es"]);
            let shard = crate::shard::shard_of("msg_1", super::super::ENDPOINT_SHARDS);
            assert_eq!(delivery["ek"], s(format!("acme#ep_1#{shard}")));
        }
    }

    #[test]
    fn a_later_attempt_clears_what_only_the_last_one_had() {
        let failed = inline_attempt(&attempt(2, true));
        let names: Vec<&str> = failed.iter().map(|(name, _)| *name).collect();
        let ok = inline_attempt(&attempt(3, false));
        for name in INLINE_OPTIONAL {
            let in_either = names.contains(&name) || ok.iter().any(|(n, _)| *n == name);
            assert!(in_either, "{name} is never set, so never needs clearing");
        }
    }
}
