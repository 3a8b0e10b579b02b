//! The processor's side of the event records: a claim is one conditional update; the commit's
//! event half marks the record processed only for the lease's holder; a failure is recorded
//! only by the lease's holder. The projections half of the commit is in [`super::commit`].

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{DynamoEventStore, commit::MAX_ERROR_CHARS, record_from_item, status_change};
use crate::{
    adapters::dynamodb::{
        expression::Expression,
        item::{ms, n, parsed, s},
        unavailable,
    },
    clock::unix_secs,
    ports::{Claim, Commit, EventProcessing, EventStore, Failure, Lease, StoreError},
    projection::ProjectionWrite,
    record::{EventKey, EventRecord, EventStatus},
};

/// The claim: take a claimable event, or one whose lease has run out; count the attempt.
pub(super) fn claim_expression(key: &EventKey, lease: &Lease, now: SystemTime) -> Expression {
    use EventStatus::*;
    status_change(
        key,
        &[Received, Enqueued, Failed, Processing],
        Processing,
        now,
    )
    .set("lease_owner", s(&lease.owner))
    .set("lease_until", ms(lease.until))
    .set_clause(
        "#attempts = if_not_exists(#attempts, :zero) + :one",
        &["attempts"],
    )
    .value(":zero", n(0))
    .value(":one", n(1))
    // A `processing` record without `lease_until` counts as expired, as in memory.
    .condition(
        "#status <> :processing OR #lease_until < :now OR attribute_not_exists(#lease_until)",
        &["status", "lease_until"],
    )
    .value(":processing", s(Processing.as_str()))
    .value(":now", ms(now))
    .build()
}

/// The event's half of a commit: `processed`, on condition that the lease is still ours.
pub(super) fn processed_expression(
    key: &EventKey,
    lease: &Lease,
    outcome: &str,
    now: SystemTime,
    expires_at: Option<SystemTime>,
) -> Expression {
    let mut change = status_change(key, &[EventStatus::Processing], EventStatus::Processed, now)
        .set("outcome", s(outcome))
        .set("completed_at", ms(now))
        .remove("lease_owner")
        .remove("lease_until")
        .condition("#lease_owner = :owner", &["lease_owner"])
        .value(":owner", s(&lease.owner));
    if let Some(at) = expires_at {
        // DynamoDB's TTL reads unix seconds.
        change = change.set("expires_at", n(unix_secs(at)));
    }
    change.build()
}

/// A failed attempt, recorded by the lease's holder only.
pub(super) fn failure_expression(
    key: &EventKey,
    lease: &Lease,
    failure: &Failure,
    now: SystemTime,
) -> Expression {
    let mut change = status_change(key, &[EventStatus::Processing], failure.status, now)
        .set("last_error", s(truncate(&failure.error, MAX_ERROR_CHARS)))
        .set(
            "retry_exhausted",
            AttributeValue::Bool(failure.retry_exhausted),
        )
        .remove("lease_owner")
        .remove("lease_until")
        .condition("#lease_owner = :owner", &["lease_owner"])
        .value(":owner", s(&lease.owner));
    if failure.status == EventStatus::Dead {
        change = change.set("completed_at", ms(now));
    }
    change.build()
}

/// At most `max` characters of `text`, cut on a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
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
        let result = claim_expression(key, lease, now)
            .update_item(&self.client, &self.table)
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
                let record = self.with_payload(record_from_item(item)?).await?;
                return Ok(Claim::Claimed(Box::new(record)));
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
        let event = processed_expression(key, lease, outcome, now, expires_at);
        self.commit_with_projections(event, writes).await
    }

    async fn release_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        self.release_outside_payload(record).await;
        Ok(())
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        lease: &Lease,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if !matches!(failure.status, EventStatus::Failed | EventStatus::Dead) {
            return Err(StoreError::Rejected(format!(
                "a failure leaves an event failed or dead, not {}",
                failure.status
            )));
        }
        // Refused: another processor owns the event now (or it is gone), so the record is not
        // ours to write.
        self.change_status(failure_expression(key, lease, failure, now))
            .await
            .map(|_| ())
    }
}

/// The moves the processor's writes make: used by the memory adapter's tests too, so both
/// adapters are held to the same life.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        adapters::dynamodb::expression::test_support::assert_bound_exactly,
        clock::from_unix_millis, ids::EventId, ids::TenantId, provider::Provider,
    };

    fn event_key() -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
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

    fn failure(status: EventStatus) -> Failure {
        Failure {
            error: "boom".into(),
            status,
            retry_exhausted: status == EventStatus::Dead,
        }
    }

    #[test]
    fn event_expressions_bind_exactly_the_placeholders_they_use() {
        let now = from_unix_millis(1_700_000_000_000);
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

    /// The statuses an expression's condition accepts the record in.
    fn sources(e: &Expression) -> Vec<String> {
        let mut found: Vec<String> = e
            .values
            .iter()
            .filter(|(k, _)| k.starts_with(":from"))
            .filter_map(|(_, v)| v.as_s().ok().cloned())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_write_is_conditioned_on_a_status_the_life_allows_the_move_from() {
        let now = from_unix_millis(1_700_000_000_000);
        assert_eq!(
            sources(&claim_expression(&event_key(), &lease(), now)),
            ["enqueued", "failed", "processing", "received"]
        );
        for status in [EventStatus::Failed, EventStatus::Dead] {
            let e = failure_expression(&event_key(), &lease(), &failure(status), now);
            assert_eq!(sources(&e), ["processing"]);
        }
        let e = processed_expression(&event_key(), &lease(), "processed", now, None);
        assert_eq!(sources(&e), ["processing"]);
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
                .ends_with("REMOVE #pending_status, #lease_owner, #lease_until")
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
        assert_eq!(e.values[":last_error"], s("x".repeat(MAX_ERROR_CHARS)));
        assert!(!e.update.contains("completed_at"));
        assert!(e.update.contains("#pending_status = :pending_status"));
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
