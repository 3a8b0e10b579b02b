//! The processor's marks on the event records: `processed` (with the commit, whose
//! projections half is in [`super::commit`]) and failures. Each is conditioned on the record
//! being unfinished, so whichever delivery of an event finishes first wins and the others
//! change nothing.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoEventStore, commit::MAX_ERROR_CHARS, status_change};
use crate::{
    adapters::dynamodb::{
        expression::Expression,
        item::{ms, n, s},
    },
    clock::unix_secs,
    ports::{Commit, EventProcessing, Failure, StoreError},
    projection::ProjectionWrite,
    record::{EventKey, EventRecord, EventStatus},
};

/// The event's half of a commit: `processed` after `attempt` attempts, if unfinished.
pub(super) fn processed_expression(
    key: &EventKey,
    attempt: u32,
    outcome: &str,
    now: SystemTime,
    expires_at: Option<SystemTime>,
) -> Expression {
    let mut change = status_change(key, &EventStatus::UNFINISHED, EventStatus::Processed, now)
        .set("outcome", s(outcome))
        .set("completed_at", ms(now))
        .set("attempts", n(attempt))
        .remove("lease_owner")
        .remove("lease_until");
    if let Some(at) = expires_at {
        // DynamoDB's TTL reads unix seconds.
        change = change.set("expires_at", n(unix_secs(at)));
    }
    change.build()
}

/// A failed attempt, if the event is unfinished.
pub(super) fn failure_expression(
    key: &EventKey,
    attempt: u32,
    failure: &Failure,
    now: SystemTime,
) -> Expression {
    let mut change = status_change(key, &EventStatus::UNFINISHED, failure.status, now)
        .set("last_error", s(truncate(&failure.error, MAX_ERROR_CHARS)))
        .set(
            "retry_exhausted",
            AttributeValue::Bool(failure.retry_exhausted),
        )
        .set("attempts", n(attempt))
        .remove("lease_owner")
        .remove("lease_until");
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

#[async_trait]
impl EventProcessing for DynamoEventStore {
    async fn commit(
        &self,
        key: &EventKey,
        attempt: u32,
        writes: &[ProjectionWrite],
        outcome: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<Commit, StoreError> {
        let event = processed_expression(key, attempt, outcome, now, expires_at);
        self.commit_with_projections(event, writes).await
    }

    async fn release_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        self.release_outside_payload(record).await;
        Ok(())
    }

    async fn keep_payload(&self, record: &EventRecord) -> Result<(), StoreError> {
        self.keep_outside_payload(record).await
    }

    async fn record_failure(
        &self,
        key: &EventKey,
        attempt: u32,
        failure: &Failure,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if !matches!(failure.status, EventStatus::Failed | EventStatus::Dead) {
            return Err(StoreError::Rejected(format!(
                "a failure leaves an event failed or dead, not {}",
                failure.status
            )));
        }
        // Refused: the event was finished meanwhile (or is gone): nothing to note.
        self.change_status(failure_expression(key, attempt, failure, now))
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
            processed_expression(&event_key(), 1, "processed", now, None),
            processed_expression(&event_key(), 2, "processed", now, Some(now)),
            failure_expression(&event_key(), 1, &failure(EventStatus::Failed), now),
            failure_expression(&event_key(), 5, &failure(EventStatus::Dead), now),
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
    fn marks_are_written_only_on_unfinished_events() {
        let now = from_unix_millis(1_700_000_000_000);
        let unfinished = ["enqueued", "failed", "processing", "received"];
        for status in [EventStatus::Failed, EventStatus::Dead] {
            let e = failure_expression(&event_key(), 2, &failure(status), now);
            assert_eq!(sources(&e), unfinished);
            assert_eq!(e.values[":attempts"], n(2));
        }
        let e = processed_expression(&event_key(), 1, "processed", now, None);
        assert_eq!(sources(&e), unfinished);
    }

    #[test]
    fn the_commit_marks_the_event_and_sets_the_ttl_in_seconds() {
        let now = from_unix_millis(1_700_000_000_000);
        let e = processed_expression(
            &event_key(),
            3,
            "ignored: x",
            now,
            Some(from_unix_millis(1_702_592_000_999)),
        );
        assert_eq!(e.values[":expires_at"], n(1_702_592_000));
        assert!(
            e.values[":tenant_status"]
                .as_s()
                .expect("S")
                .starts_with("acme#processed#")
        );
        assert_eq!(e.values[":attempts"], n(3));
        assert!(
            e.update
                .ends_with("REMOVE #pending_status, #lease_owner, #lease_until")
        );
        let without = processed_expression(&event_key(), 1, "processed", now, None);
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
        let e = failure_expression(&event_key(), 1, &failure, SystemTime::UNIX_EPOCH);
        assert_eq!(e.values[":last_error"], s("x".repeat(MAX_ERROR_CHARS)));
        assert!(!e.update.contains("completed_at"));
        assert!(e.update.contains("#pending_status = :pending_status"));
    }
}
