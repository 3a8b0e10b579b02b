//! The stored event and its life: `received → processed`, with `failed` (will retry) and
//! `dead`; `enqueued` after an operator's replay, and `processing` in records written before
//! processors stopped taking leases.
//! Moves are functions that refuse what the life does not allow, so no code path can, say,
//! resurrect a processed event by accident.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime},
};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{
    ids::{EventId, TenantId},
    provider::Provider,
    secret::SecretSlot,
    trace::TraceParent,
};

/// How long processed and discarded records are kept when the deployment says nothing
/// (`RETENTION_DAYS`); failed and dead ones never expire.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// [`DEFAULT_RETENTION_DAYS`] as a duration.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(DEFAULT_RETENTION_DAYS * 24 * 60 * 60);

/// The longest retention a deployment may ask for: ten years, well inside what a TTL and
/// `SystemTime` arithmetic hold.
pub const MAX_RETENTION_DAYS: u64 = 3_650;

/// Where an event sits in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    /// Stored; its pointer message was sent before the record was written, so it is on the
    /// queue.
    Received,
    /// Put back on the queue by an operator (replay, redrive) or by reconcile.
    Enqueued,
    /// A processor held a lease on it: records written before the processor stopped taking
    /// leases. New processors finish it like any other unfinished record.
    Processing,
    /// Its effects are committed. Final, unless an operator forces a replay.
    Processed,
    /// The last attempt failed; the queue will deliver it again.
    Failed,
    /// Retries are exhausted or the error is permanent; waits for an operator.
    Dead,
    /// An operator resolved a dead event without processing it. Final; kept for audit until
    /// its retention runs out.
    Discarded,
}

/// A move the life does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("an event cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: EventStatus,
    pub to: EventStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown event status")]
pub struct UnknownStatus;

impl EventStatus {
    pub const ALL: [EventStatus; 7] = [
        Self::Received,
        Self::Enqueued,
        Self::Processing,
        Self::Processed,
        Self::Failed,
        Self::Dead,
        Self::Discarded,
    ];

    /// The statuses an event waits in for the queue or a processor: what reconcile watches.
    /// `failed` waits for the queue's redelivery; if its message is lost (an outage on its last
    /// receive), reconcile is what finds it. A new record's `received` is in no index: its
    /// pointer was on the queue before the record was written (see [`Self::is_indexed`]).
    pub const PENDING: [EventStatus; 4] = [
        Self::Received,
        Self::Enqueued,
        Self::Processing,
        Self::Failed,
    ];

    /// The statuses an operator calls stuck: waiting for a first attempt, or in one.
    pub const STUCK: [EventStatus; 3] = [Self::Received, Self::Enqueued, Self::Processing];

    /// The statuses a processor finishes an event from (processed, failed or dead). There is
    /// no claim: every effect is idempotent, so two deliveries of one event racing each other
    /// change nothing twice, and the first mark wins.
    pub const UNFINISHED: [EventStatus; 4] = [
        Self::Received,
        Self::Enqueued,
        Self::Failed,
        Self::Processing,
    ];

    /// Whether the event waits for the queue or a processor (see [`Self::PENDING`]).
    pub fn is_pending(self) -> bool {
        Self::PENDING.contains(&self)
    }

    /// Whether records in this status carry the index attributes (the status index, and the
    /// pending index for pending ones). Every status but `received`: a new event is written
    /// once, with no index entry, and the first index entry it gets is the one it ends in.
    /// Records stored before this rule keep their `received` entries until they move on.
    pub fn is_indexed(self) -> bool {
        self != Self::Received
    }

    /// The statuses an event may reach `to` from: the life, read backwards. Adapters condition
    /// every status write on the record being in one of these.
    pub fn sources(to: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Enqueued => "enqueued",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Discarded => "discarded",
        }
    }

    /// Whether the life allows going from `self` to `to`.
    pub fn can_become(self, to: Self) -> bool {
        use EventStatus::*;
        matches!(
            (self, to),
            // A processor finishes, fails, or gives up; reconcile re-enqueues (records of
            // the old layout: `received` before its enqueue was confirmed, `processing` left
            // by a processor that died).
            (Received | Enqueued | Processing | Failed, Processed | Failed | Dead | Enqueued)
                // Records of the old layout: confirmed on the queue, then leased.
                | (Received, Processing)
                | (Enqueued | Processing | Failed, Processing)
                // Operators replay dead events, and processed ones only by force.
                | (Dead | Processed, Enqueued)
                // Or resolve a dead one without processing it.
                | (Dead, Discarded)
        )
    }

    /// The status after a move, or why the move is refused.
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

/// How the delivery was authenticated. Only these two outcomes are ever stored: a failed
/// verification is refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The signature matched this secret.
    Verified(SecretSlot),
    /// The tenant allowed unsigned deliveries for this provider, and this one carried none.
    Unsigned,
    /// Anything else found in storage (a bug, or a hand-edited item). Never processed.
    Unrecognized,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified(SecretSlot::Current) => "verified:current",
            Self::Verified(SecretSlot::Previous) => "verified:previous",
            Self::Unsigned => "unsigned",
            Self::Unrecognized => "unrecognized",
        }
    }

    /// Whether the processor may apply an event authenticated this way.
    pub fn permits_processing(self) -> bool {
        !matches!(self, Self::Unrecognized)
    }
}

impl Verification {
    /// Read a stored value; anything unknown is [`Verification::Unrecognized`], so the
    /// processor's gate sees it instead of a storage error hiding it.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "verified:current" => Self::Verified(SecretSlot::Current),
            "verified:previous" => Self::Verified(SecretSlot::Previous),
            "unsigned" => Self::Unsigned,
            _ => Self::Unrecognized,
        }
    }
}

/// What identifies an event: built from the route and the provider's id, never from payload
/// fields that name a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub tenant: TenantId,
    pub provider: Provider,
    pub event_id: EventId,
}

/// The ids that tie an event to the request that brought it, kept through every replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// API Gateway's request id.
    pub request_id: Option<String>,
    /// The sender's `X-Request-Id`, if any.
    pub client_request_id: Option<String>,
    /// The ingress's span of the event's trace: a child of the provider's `traceparent`, or
    /// the first span of a new trace. The processor's span and a relay's deliveries continue it.
    pub trace: Option<TraceParent>,
}

/// The stored event: the source of truth for its life, whatever the queues hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub key: EventKey,
    pub event_type: Option<String>,
    /// When the provider says the event happened (Stripe `created`, ...), for ordering.
    pub provider_created_at: Option<SystemTime>,
    pub correlation: Correlation,
    pub verification: Verification,
    pub status: EventStatus,
    /// When the record entered `status`: what listings sort by and reconcile measures.
    pub status_at: SystemTime,
    pub attempts: u32,
    pub retry_exhausted: bool,
    pub last_error: Option<String>,
    pub received_at: SystemTime,
    pub enqueued_at: Option<SystemTime>,
    pub completed_at: Option<SystemTime>,
    pub payload: Vec<u8>,
    /// Hex SHA-256 of `payload`: a redelivery with the same id must carry the same bytes.
    pub payload_hash: String,
    /// Where a payload too large for the record is kept (the DynamoDB adapter's S3 object);
    /// `None` when the record holds it. Stores load it back whenever they return a record.
    pub payload_location: Option<String>,
    /// The processor holding the event, while `processing`.
    pub lease_owner: Option<String>,
    pub lease_until: Option<SystemTime>,
    /// How processing ended: `processed`, `ignored` (unknown type), or the permanent error.
    pub outcome: Option<String>,
    /// When DynamoDB may delete the record (processed and discarded records only; failed and
    /// dead ones are kept until an operator acts).
    pub expires_at: Option<SystemTime>,
    /// How many times an operator re-enqueued the event (redrive, replay); 0 if never.
    pub replay_count: u32,
    pub replayed_at: Option<SystemTime>,
    /// Who did what and why, from the last operator action that touched the event.
    pub note: Option<String>,
    /// When an operator discarded the event.
    pub discarded_at: Option<SystemTime>,
    /// How many more times the provider delivered the same event after it was stored.
    pub duplicates: u32,
    /// When an operator erased the payload (a data-subject request): the record is then a
    /// tombstone, its `payload` empty and `payload_location` gone, its key, status, times and
    /// `payload_hash` kept so a redelivery is still known as a duplicate (or a conflict).
    pub erased_at: Option<SystemTime>,
    /// Who erased it (the operator named by `hookctl erase --actor`).
    pub erased_by: Option<String>,
}

impl EventRecord {
    /// A freshly accepted delivery.
    #[allow(clippy::too_many_arguments)]
    pub fn received(
        key: EventKey,
        event_type: Option<String>,
        provider_created_at: Option<SystemTime>,
        correlation: Correlation,
        verification: Verification,
        payload: Vec<u8>,
        now: SystemTime,
    ) -> Self {
        Self {
            key,
            event_type,
            provider_created_at,
            correlation,
            verification,
            status: EventStatus::Received,
            status_at: now,
            attempts: 0,
            retry_exhausted: false,
            last_error: None,
            received_at: now,
            enqueued_at: None,
            completed_at: None,
            payload_hash: payload_hash(&payload),
            payload,
            payload_location: None,
            lease_owner: None,
            lease_until: None,
            outcome: None,
            expires_at: None,
            replay_count: 0,
            replayed_at: None,
            note: None,
            discarded_at: None,
            duplicates: 0,
            erased_at: None,
            erased_by: None,
        }
    }

    /// Whether the payload was erased: the record is a tombstone, never to be processed or
    /// replayed (there is nothing left to apply).
    pub fn is_erased(&self) -> bool {
        self.erased_at.is_some()
    }

    /// Move to `to` at `at`, or refuse without changing anything. The one place a record's
    /// status and the time it entered it change together.
    pub fn enter(&mut self, to: EventStatus, at: SystemTime) -> Result<(), IllegalTransition> {
        self.status = self.status.transition(to)?;
        self.status_at = at;
        Ok(())
    }
}

/// Why an erased event is neither processed nor replayed: what processors, replays and
/// redrives say about it.
pub const ERASED_REASON: &str = "erased: its payload was erased by an operator";

/// Hex SHA-256 of a payload.
pub fn payload_hash(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventStatus::*;

    fn record() -> EventRecord {
        EventRecord::received(
            EventKey {
                tenant: TenantId::parse("acme").expect("tenant"),
                provider: Provider::Stripe,
                event_id: EventId::parse("evt_1").expect("id"),
            },
            Some("invoice.paid".into()),
            None,
            Correlation::default(),
            Verification::Verified(SecretSlot::Current),
            b"{}".to_vec(),
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn the_happy_path_is_legal() {
        let mut r = record();
        r.enter(Processed, SystemTime::UNIX_EPOCH).expect("legal");
        assert_eq!(r.status, Processed);
        // And the old layout's, for records stored before it changed.
        let mut r = record();
        for next in [Enqueued, Processing, Processed] {
            r.enter(next, SystemTime::UNIX_EPOCH).expect("legal");
        }
        assert_eq!(r.status, Processed);
    }

    #[test]
    fn retries_and_death_are_legal() {
        let mut r = record();
        for next in [
            Failed, Failed, Dead, Enqueued, Failed, Processed, Enqueued, Processed,
        ] {
            r.enter(next, SystemTime::UNIX_EPOCH).expect("legal");
        }
    }

    #[test]
    fn only_dead_events_are_discarded_and_discarded_is_final() {
        let mut r = record();
        for next in [Enqueued, Processing, Dead, Discarded] {
            r.enter(next, SystemTime::UNIX_EPOCH).expect("legal");
        }
        for to in EventStatus::ALL {
            assert!(!Discarded.can_become(to), "discarded -> {to}");
        }
        for from in [Received, Enqueued, Processing, Processed, Failed] {
            assert!(!from.can_become(Discarded), "{from} -> discarded");
        }
    }

    #[test]
    fn illegal_moves_are_refused_and_change_nothing() {
        let illegal = [
            (Enqueued, Received),
            (Processed, Processing),
            (Processed, Failed),
            (Processed, Dead),
            (Dead, Processing),
            (Dead, Processed),
            (Dead, Failed),
            (Discarded, Processed),
        ];
        for (from, to) in illegal {
            let mut r = record();
            r.status = from;
            assert_eq!(
                r.enter(to, SystemTime::UNIX_EPOCH),
                Err(IllegalTransition { from, to })
            );
            assert_eq!(r.status, from);
        }
    }

    #[test]
    fn nothing_returns_to_received() {
        for from in EventStatus::ALL {
            assert!(!from.can_become(Received), "{from} -> received");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in EventStatus::ALL {
            assert_eq!(s.as_str().parse::<EventStatus>(), Ok(s));
        }
        for v in [
            Verification::Unsigned,
            Verification::Verified(SecretSlot::Previous),
        ] {
            assert_eq!(Verification::from_stored(v.as_str()), v);
            assert!(v.permits_processing());
        }
        assert_eq!(
            Verification::from_stored("verified"),
            Verification::Unrecognized
        );
        assert!(!Verification::Unrecognized.permits_processing());
    }

    #[test]
    fn payload_hash_is_sha256_hex() {
        // printf '{}' | sha256sum
        assert_eq!(
            record().payload_hash,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
