//! Operators' changes to event records (requeue, discard), reconcile's reads of the sparse
//! pending index, and paged and windowed reads of the status index.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::query::builders::QueryFluentBuilder,
    types::{AttributeValue, ReturnValue},
};

use super::{
    DynamoEventStore, PENDING_INDEX, PENDING_SHARDS, STATUS_INDEX,
    commit::MAX_ERROR_CHARS,
    marks::truncate,
    record_from_item,
    records::{key_from_item, summary_from_item},
    status_change, tenant_status_partitions,
};
use crate::{
    adapters::dynamodb::{
        expression::{Expression, is_conditional_failure},
        item::{Item, ItemError, millis, ms, n, number, opt_millis, opt_number, parsed, s, string},
        unavailable,
    },
    clock::{unix_millis, unix_secs},
    ids::TenantId,
    operations::{decode_page_token, encode_page_token},
    ports::{
        EventHistory, EventPage, EventRecovery, EventTimeline, OperatorMark, PendingEvent,
        PendingEvents, Requeue, StoreError,
    },
    record::{EventKey, EventRecord, EventStatus},
};

/// The update that puts an event back to `enqueued` from `from`.
pub(crate) fn requeue_expression(
    key: &EventKey,
    from: EventStatus,
    how: Requeue,
    mark: &OperatorMark,
) -> Expression {
    let mut change = status_change(key, &[from], EventStatus::Enqueued, mark.at)
        .set("enqueued_at", ms(mark.at))
        .set("note", s(&mark.note))
        // A replayed event must not expire before it is processed again; the commit sets
        // the TTL.
        .remove("expires_at")
        .remove("lease_owner")
        .remove("lease_until")
        .remove("completed_at");
    if how == Requeue::Replay {
        change = change
            .set_clause(
                "#replay_count = if_not_exists(#replay_count, :zero) + :one",
                &["replay_count"],
            )
            .value(":zero", n(0))
            .value(":one", n(1))
            .set("replayed_at", ms(mark.at))
            .set("attempts", n(0))
            .set("retry_exhausted", AttributeValue::Bool(false));
    }
    if from == EventStatus::Processing {
        change = change
            .condition(
                "attribute_not_exists(#lease_until) OR #lease_until < :now",
                &["lease_until"],
            )
            .value(":now", ms(mark.at));
    }
    change.build()
}

/// The update that resolves a dead event without processing it.
pub(crate) fn discard_expression(
    key: &EventKey,
    mark: &OperatorMark,
    expires_at: Option<SystemTime>,
) -> Expression {
    let mut change = status_change(key, &[EventStatus::Dead], EventStatus::Discarded, mark.at)
        .set("discarded_at", ms(mark.at))
        .set("note", s(&mark.note));
    if let Some(at) = expires_at {
        change = change.set("expires_at", n(unix_secs(at)));
    }
    change.build()
}

/// The update that gives up on a `processing` event its dead processor left behind.
pub(crate) fn dead_expression(key: &EventKey, reason: &str, mark: &OperatorMark) -> Expression {
    status_change(key, &[EventStatus::Processing], EventStatus::Dead, mark.at)
        .set("last_error", s(truncate(reason, MAX_ERROR_CHARS)))
        .set("retry_exhausted", AttributeValue::Bool(true))
        .set("completed_at", ms(mark.at))
        .set("note", s(&mark.note))
        .remove("lease_owner")
        .remove("lease_until")
        .condition(
            "attribute_not_exists(#lease_until) OR #lease_until < :now",
            &["lease_until"],
        )
        .value(":now", ms(mark.at))
        .build()
}

#[async_trait]
impl EventRecovery for DynamoEventStore {
    async fn mark_requeued(
        &self,
        key: &EventKey,
        from: EventStatus,
        how: Requeue,
        mark: &OperatorMark,
    ) -> Result<Option<EventRecord>, StoreError> {
        let result = requeue_expression(key, from, how, mark)
            .update_item(&self.client, &self.table)
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

    async fn mark_dead(
        &self,
        key: &EventKey,
        reason: &str,
        mark: &OperatorMark,
    ) -> Result<bool, StoreError> {
        self.change_status(dead_expression(key, reason, mark)).await
    }

    async fn mark_discarded(
        &self,
        key: &EventKey,
        mark: &OperatorMark,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let result = discard_expression(key, mark, expires_at)
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                // A discarded event's outside payload expires with its record.
                if let Some(record) = output.attributes().map(record_from_item).transpose()? {
                    self.release_outside_payload(&record).await;
                }
                Ok(true)
            }
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
    async fn pending_between(
        &self,
        status: EventStatus,
        from: SystemTime,
        before: SystemTime,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let (from, last) = (unix_millis(from), unix_millis(before) - 1);
        if !status.is_pending() || last < from {
            return Ok(Vec::new());
        }
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        // Each shard's oldest `limit`, then the oldest `limit` of them all.
        let shards = (0..PENDING_SHARDS).map(|shard| format!("{status}#{shard}"));
        let mut found = self
            .query_each_partition(
                shards,
                wanted,
                |partition| {
                    self.client
                        .query()
                        .table_name(&self.table)
                        .index_name(PENDING_INDEX)
                        .key_condition_expression(
                            "pending_status = :p AND status_at BETWEEN :from AND :last",
                        )
                        .expression_attribute_values(":p", s(partition))
                        .expression_attribute_values(":from", n(from))
                        .expression_attribute_values(":last", n(last))
                        .scan_index_forward(true)
                },
                pending_from_item,
            )
            .await?;
        found.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
        found.truncate(wanted);
        Ok(found)
    }
}

impl DynamoEventStore {
    /// Up to `wanted` items from each of `partitions`, in the order `query` asks for, page by
    /// page: the caller merges them.
    async fn query_each_partition<T, E>(
        &self,
        partitions: impl IntoIterator<Item = String>,
        wanted: usize,
        query: impl Fn(&str) -> QueryFluentBuilder,
        parse: impl Fn(&Item) -> Result<T, E>,
    ) -> Result<Vec<T>, StoreError>
    where
        StoreError: From<E>,
    {
        let mut found = Vec::new();
        for partition in partitions {
            let mut start = None;
            let mut taken = 0;
            loop {
                let output = query(&partition)
                    .limit(i32::try_from(wanted - taken).unwrap_or(i32::MAX).max(1))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|err| unavailable("Query", &self.table, &err))?;
                for item in output.items() {
                    found.push(parse(item)?);
                    taken += 1;
                }
                start = output.last_evaluated_key().cloned();
                if start.is_none() || taken >= wanted {
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// A position in a status listing: newest first, ties by `pk`, descending.
type Position = (i64, String);

impl DynamoEventStore {
    /// The entries of one status index partition after `cursor`, newest first: at least
    /// `wanted + 1` where the partition has them (so the caller knows whether more follow),
    /// and every entry tied with the `wanted`-th's time, so no tie is cut in two.
    async fn newest_in(
        &self,
        partition: &str,
        cursor: Option<&Position>,
        wanted: usize,
    ) -> Result<Vec<(Position, Item)>, StoreError> {
        let mut found: Vec<(Position, Item)> = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .expression_attribute_values(":ts", s(partition))
                .scan_index_forward(false)
                .limit(
                    i32::try_from((wanted + 1).saturating_sub(found.len()))
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                .set_exclusive_start_key(start);
            query = match cursor {
                Some((at, _)) => query
                    .key_condition_expression("tenant_status = :ts AND status_at <= :at")
                    .expression_attribute_values(":at", n(*at)),
                None => query.key_condition_expression("tenant_status = :ts"),
            };
            let output = query
                .send()
                .await
                .map_err(|err| unavailable("Query", &self.table, &err))?;
            for item in output.items() {
                let position = (number(item, "status_at")?, string(item, "pk")?.to_owned());
                if cursor.is_some_and(|c| position >= *c) {
                    continue;
                }
                if found.len() > wanted
                    && found.get(wanted - 1).is_some_and(|(p, _)| p.0 > position.0)
                {
                    return Ok(found);
                }
                found.push((position, item.clone()));
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
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
        let cursor = match after {
            None => None,
            Some(token) => {
                let (at, pk) = decode_page_token(token, tenant)
                    .ok_or_else(|| StoreError::Malformed("invalid page token".into()))?;
                Some((at, pk.to_owned()))
            }
        };
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        // Each partition's next entries, then the newest of them all.
        let mut found = Vec::new();
        for partition in tenant_status_partitions(tenant, status) {
            found.extend(self.newest_in(&partition, cursor.as_ref(), wanted).await?);
        }
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let more = found.len() > wanted;
        found.truncate(wanted);
        let next = more
            .then(|| found.last().map(|((at, pk), _)| encode_page_token(*at, pk)))
            .flatten();
        let events = found
            .iter()
            .map(|(_, item)| summary_from_item(item))
            .collect::<Result<_, _>>()?;
        Ok(EventPage { events, next })
    }

    async fn in_status_since(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        since: std::time::SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        self.in_status(tenant, status, Window::Since(since), limit)
            .await
    }

    async fn in_status_before(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        before: std::time::SystemTime,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        self.in_status(tenant, status, Window::Before(before), limit)
            .await
    }
}

/// A side of a time in the status index: at or after it (newest first), or before it (oldest
/// first).
#[derive(Clone, Copy)]
enum Window {
    Since(std::time::SystemTime),
    Before(std::time::SystemTime),
}

impl DynamoEventStore {
    /// Up to `limit` of the tenant's events in `status` on one side of a time, over every
    /// partition of the status index.
    async fn in_status(
        &self,
        tenant: &TenantId,
        status: EventStatus,
        window: Window,
        limit: u32,
    ) -> Result<Vec<EventTimeline>, StoreError> {
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let (condition, at, oldest_first) = match window {
            Window::Since(at) => ("tenant_status = :ts AND status_at >= :at", at, false),
            Window::Before(at) => ("tenant_status = :ts AND status_at < :at", at, true),
        };
        let mut found = self
            .query_each_partition(
                tenant_status_partitions(tenant, status),
                wanted,
                |partition| {
                    self.client
                        .query()
                        .table_name(&self.table)
                        .index_name(STATUS_INDEX)
                        .key_condition_expression(condition)
                        .expression_attribute_values(":ts", s(partition))
                        .expression_attribute_values(":at", n(unix_millis(at)))
                        .scan_index_forward(oldest_first)
                },
                timeline_from_item,
            )
            .await?;
        // The `limit` nearest the time's side of them all.
        found.sort_by(|a, b| (a.status_at, &a.key).cmp(&(b.status_at, &b.key)));
        if !oldest_first {
            found.reverse();
        }
        found.truncate(wanted);
        Ok(found)
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
    fn requeue_expressions_bind_exactly_what_they_use() {
        let mark = OperatorMark {
            at: from_unix_millis(1_700_000_000_000),
            note: "ops".into(),
        };
        for from in [
            EventStatus::Dead,
            EventStatus::Processing,
            EventStatus::Failed,
        ] {
            for how in [Requeue::Replay, Requeue::Reconcile] {
                let e = requeue_expression(&key(), from, how, &mark);
                assert_bound_exactly(&e);
                assert_eq!(e.values[":from0"], s(from.as_str()));
                assert!(e.update.contains("#expires_at"));
                assert_eq!(how == Requeue::Replay, e.update.contains("#replay_count"));
            }
        }
        let e = discard_expression(&key(), &mark, Some(mark.at));
        assert_bound_exactly(&e);
        assert_eq!(e.values[":from0"], s("dead"));
        let e = dead_expression(&key(), "stopped", &mark);
        assert_bound_exactly(&e);
        assert_eq!(e.values[":from0"], s("processing"));
    }
}
