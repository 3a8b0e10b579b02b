//! The replay function's side of DynamoDB and SQS: operators' conditional changes to event
//! records, the pending index for reconcile, paged and windowed reads of the status index, the
//! dead-letter queue, and tenant names.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, Select},
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::{
    DynamoEventStore,
    events::{
        PENDING_INDEX, PENDING_SHARDS, STATUS_INDEX, event_pk, key_from_item, pending_partition,
        record_from_item, summary_from_item, tenant_status,
    },
    item::{Item, ItemError, millis, ms, n, number, opt_millis, opt_number, parsed, s, string},
    unavailable,
};
use crate::{
    clock::unix_millis,
    ids::TenantId,
    ports::{
        DeadLetter, DeadLetterQueue, EventHistory, EventPage, EventReplay, EventTimeline,
        OperatorMark, PendingEvent, PendingEvents, QueueError, Requeue, StoreError, TenantNames,
    },
    record::{EventKey, EventRecord, EventStatus},
    replay::{decode_page_token, encode_page_token},
};

fn placeholders(names: &[&str]) -> HashMap<String, String> {
    names
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

fn is_conditional_failure<R>(err: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> bool {
    matches!(
        err.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// The update that puts an event back to `enqueued`: its text, names and values.
pub(crate) fn requeue_expression(
    key: &EventKey,
    from: EventStatus,
    how: Requeue,
    mark: &OperatorMark,
) -> (String, String, HashMap<String, String>, Item) {
    let mut names = vec![
        "status",
        "enqueued_at",
        "tenant_status",
        "status_at",
        "pending_status",
        "note",
        "expires_at",
        "lease_owner",
        "lease_until",
        "completed_at",
    ];
    let mut values = Item::from([
        (":enqueued".to_owned(), s(EventStatus::Enqueued.as_str())),
        (":from".to_owned(), s(from.as_str())),
        (":at".to_owned(), ms(mark.at)),
        (
            ":tenant_status".to_owned(),
            s(tenant_status(&key.tenant, EventStatus::Enqueued)),
        ),
        (
            ":pending".to_owned(),
            s(pending_partition(key, EventStatus::Enqueued)),
        ),
        (":note".to_owned(), s(&mark.note)),
    ]);
    let mut update = String::from(
        "SET #status = :enqueued, #enqueued_at = :at, #tenant_status = :tenant_status, \
         #status_at = :at, #pending_status = :pending, #note = :note",
    );
    if how == Requeue::Replay {
        names.extend(["replay_count", "replayed_at", "attempts", "retry_exhausted"]);
        update.push_str(
            ", #replay_count = if_not_exists(#replay_count, :zero) + :one, #replayed_at = :at, \
             #attempts = :zero, #retry_exhausted = :false",
        );
        values.insert(":zero".into(), n(0));
        values.insert(":one".into(), n(1));
        values.insert(":false".into(), AttributeValue::Bool(false));
    }
    // A replayed event must not expire before it is processed again; the commit sets the TTL.
    update.push_str(" REMOVE #expires_at, #lease_owner, #lease_until, #completed_at");
    let condition = if from == EventStatus::Processing {
        "#status = :from AND (attribute_not_exists(#lease_until) OR #lease_until < :at)"
    } else {
        "#status = :from"
    };
    (update, condition.to_owned(), placeholders(&names), values)
}

#[async_trait]
impl EventReplay for DynamoEventStore {
    async fn mark_requeued(
        &self,
        key: &EventKey,
        from: EventStatus,
        how: Requeue,
        mark: &OperatorMark,
    ) -> Result<Option<EventRecord>, StoreError> {
        let (update, condition, names, values) = requeue_expression(key, from, how, mark);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(event_pk(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes()
                .map(record_from_item)
                .transpose()
                .map_err(StoreError::from),
            Err(err) if is_conditional_failure(&err) => Ok(None),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }

    async fn mark_discarded(
        &self,
        key: &EventKey,
        mark: &OperatorMark,
        expires_at: Option<std::time::SystemTime>,
    ) -> Result<bool, StoreError> {
        let mut update = String::from(
            "SET #status = :discarded, #tenant_status = :tenant_status, #status_at = :at, \
             #discarded_at = :at, #note = :note",
        );
        let mut names = vec![
            "status",
            "tenant_status",
            "status_at",
            "discarded_at",
            "note",
        ];
        let mut values = Item::from([
            (":discarded".to_owned(), s(EventStatus::Discarded.as_str())),
            (":dead".to_owned(), s(EventStatus::Dead.as_str())),
            (
                ":tenant_status".to_owned(),
                s(tenant_status(&key.tenant, EventStatus::Discarded)),
            ),
            (":at".to_owned(), ms(mark.at)),
            (":note".to_owned(), s(&mark.note)),
        ]);
        if let Some(at) = expires_at {
            update.push_str(", #expires_at = :expires_at");
            names.push("expires_at");
            values.insert(":expires_at".into(), n(crate::clock::unix_secs(at)));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(event_pk(key)))
            .update_expression(update)
            .condition_expression("#status = :dead")
            .set_expression_attribute_names(Some(placeholders(&names)))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_failure(&err) => Ok(false),
            Err(err) => Err(unavailable("UpdateItem", &self.table, &err)),
        }
    }
}

fn pending_from_item(item: &Item) -> Result<PendingEvent, ItemError> {
    Ok(PendingEvent {
        key: key_from_item(item)?,
        status: parsed(item, "status")?,
        since: millis(item, "status_at")?,
        attempts: opt_number(item, "attempts")?.unwrap_or(0),
        lease_until: opt_millis(item, "lease_until")?,
    })
}

fn timeline_from_item(item: &Item) -> Result<EventTimeline, ItemError> {
    Ok(EventTimeline {
        key: key_from_item(item)?,
        status: parsed(item, "status")?,
        status_at: millis(item, "status_at")?,
        attempts: number(item, "attempts")?,
        received_at: millis(item, "received_at")?,
        enqueued_at: opt_millis(item, "enqueued_at")?,
        completed_at: opt_millis(item, "completed_at")?,
        duplicates: opt_number(item, "duplicates")?.unwrap_or(0),
    })
}

#[async_trait]
impl PendingEvents for DynamoEventStore {
    async fn pending_before(
        &self,
        status: EventStatus,
        before: std::time::SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        if !status.is_pending() {
            return Ok(Vec::new());
        }
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        // Each shard's oldest `limit`, then the oldest `limit` of them all.
        for shard in 0..PENDING_SHARDS {
            let partition = format!("{status}#{shard}");
            let mut start = None;
            let mut from_shard = 0;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(PENDING_INDEX)
                    .key_condition_expression("pending_status = :p AND status_at < :before")
                    .expression_attribute_values(":p", s(&partition))
                    .expression_attribute_values(":before", ms(before))
                    .scan_index_forward(true)
                    .limit(
                        i32::try_from(wanted - from_shard)
                            .unwrap_or(i32::MAX)
                            .max(1),
                    )
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|err| unavailable("Query", &self.table, &err))?;
                for item in output.items() {
                    found.push(pending_from_item(item)?);
                    from_shard += 1;
                }
                start = output.last_evaluated_key().cloned();
                if start.is_none() || from_shard >= wanted {
                    break;
                }
            }
        }
        found.sort_by_key(|p| p.since);
        found.truncate(wanted);
        Ok(found)
    }
}

#[async_trait]
impl EventHistory for DynamoEventStore {
    async fn page_by_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        limit: u32,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        let partition = tenant_status(tenant, status);
        let mut start = match after {
            None => None,
            Some(token) => {
                let (at, pk) = decode_page_token(token, tenant)
                    .ok_or_else(|| StoreError::Malformed("invalid page token".into()))?;
                Some(Item::from([
                    ("tenant_status".to_owned(), s(&partition)),
                    ("status_at".to_owned(), n(at)),
                    ("pk".to_owned(), s(pk)),
                ]))
            }
        };
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut events = Vec::new();
        let mut last: Option<(i64, String)> = None;
        // A page stops at 1 MB whatever the limit: read on until enough or no more.
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("tenant_status = :ts")
                .expression_attribute_values(":ts", s(&partition))
                .scan_index_forward(false)
                .limit(
                    i32::try_from(wanted - events.len())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| unavailable("Query", &self.table, &err))?;
            for item in output.items() {
                events.push(summary_from_item(item)?);
                last = Some((number(item, "status_at")?, string(item, "pk")?.to_owned()));
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() || events.len() >= wanted {
                break;
            }
        }
        // DynamoDB may say "more" when the last page ended exactly at the end; the next
        // page is then empty, which is harmless.
        let next = start
            .is_some()
            .then_some(last)
            .flatten()
            .map(|(at, pk)| encode_page_token(at, &pk));
        Ok(EventPage { events, next })
    }

    async fn in_status_since(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        since: std::time::SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("tenant_status = :ts AND status_at >= :since")
                .expression_attribute_values(":ts", s(tenant_status(tenant, status)))
                .expression_attribute_values(":since", n(unix_millis(since)))
                .scan_index_forward(false)
                .limit(
                    i32::try_from(wanted - found.len())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| unavailable("Query", &self.table, &err))?;
            for item in output.items() {
                found.push(timeline_from_item(item)?);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() || found.len() >= wanted {
                break;
            }
        }
        Ok(found)
    }
}

/// Tenant names from the tenants table, reading only the `tenant` attribute (never secrets).
#[derive(Debug, Clone)]
pub struct DynamoTenantNames {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoTenantNames {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl TenantNames for DynamoTenantNames {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        let mut tenants = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#tenant")
                .expression_attribute_names("#tenant", "tenant")
                .select(Select::SpecificAttributes)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| unavailable("Scan", &self.table, &err))?;
            for item in output.items() {
                tenants.push(parsed::<TenantId>(item, "tenant")?);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }
}

/// [`DeadLetterQueue`] on the events queue's SQS dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn sqs_error<E, R>(operation: &str, err: &aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    QueueError(format!("{operation} on the DLQ: {}", super::describe(err)))
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn receive(&self, max: u32, hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(hold.as_secs().min(43_200)).unwrap_or(43_200))
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", &e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(DeadLetter {
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| sqs_error("DeleteMessage", &e))?;
        Ok(())
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibility", &e))?;
        Ok(())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", &e))?;
        let attributes = output.attributes.unwrap_or_default();
        let read = |name: &QueueAttributeName| {
            attributes
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(read(&QueueAttributeName::ApproximateNumberOfMessages)
            + read(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{clock::from_unix_millis, ids::EventId, provider::Provider};

    fn key() -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse("evt_1").expect("id"),
        }
    }

    fn tokens(text: &str, lead: char) -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#' || c == ':'))
            .filter(|t| t.starts_with(lead))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn requeue_expressions_bind_exactly_what_they_use() {
        let mark = OperatorMark {
            at: from_unix_millis(1_700_000_000_000),
            note: "ops".into(),
        };
        for from in [EventStatus::Dead, EventStatus::Processing] {
            for how in [Requeue::Replay, Requeue::Reconcile] {
                let (update, condition, names, values) =
                    requeue_expression(&key(), from, how, &mark);
                let text = format!("{update} {condition}");
                assert_eq!(
                    tokens(&text, '#'),
                    names.keys().cloned().collect::<BTreeSet<_>>(),
                    "{text}"
                );
                assert_eq!(
                    tokens(&text, ':'),
                    values.keys().cloned().collect::<BTreeSet<_>>(),
                    "{text}"
                );
                assert!(update.contains("REMOVE #expires_at"));
                assert_eq!(how == Requeue::Replay, update.contains("#replay_count"));
            }
        }
    }
}
