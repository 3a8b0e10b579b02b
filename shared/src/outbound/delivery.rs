//! Published messages, their deliveries (one per message and endpoint) and every attempt of
//! each: the outbound side's records, and the pointer the deliveries queue carries.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    ids::{EndpointId, EventType, MessageId},
    ssrf::EndpointUrl,
};
use crate::{ids::TenantId, trace::TraceParent};

/// The largest payload a message may carry: well inside a DynamoDB item, and more than any
/// partner wants in one webhook.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// How much of a partner's answer an attempt keeps.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// A message published for a tenant's partners: stored once, delivered to every endpoint that
/// subscribed to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub tenant: TenantId,
    pub id: MessageId,
    pub event_type: EventType,
    /// The JSON body partners receive, byte for byte.
    pub payload: Vec<u8>,
    /// Where `payload` is kept when it is too large for the message's item: the S3 object of
    /// the inbound event it relays. Stores load the payload back whenever they return it.
    pub payload_location: Option<String>,
    pub created_at: SystemTime,
    /// Whether every delivery has been created. Until then reconcile finishes the fan-out.
    pub fanned_out: bool,
    /// The publish's trace context: every attempt sends a child of it as `traceparent`.
    pub trace: Option<TraceParent>,
    /// Set once an operator erased its payload (`hookctl erase --message`): the message is a
    /// tombstone, `payload` empty, never sent again.
    pub erased: Option<MessageErased>,
}

/// Who erased a message's payload, when, and the content hash it had: kept so a repeated
/// publish of the same content is still a duplicate, and other content still a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageErased {
    pub at: SystemTime,
    pub by: String,
    pub content_hash: String,
}

impl OutboundMessage {
    /// Hex SHA-256 of the type and payload: what a repeated publish is compared on. A
    /// tombstone answers the hash its payload had.
    pub fn content_hash(&self) -> String {
        match &self.erased {
            Some(erased) => erased.content_hash.clone(),
            None => content_hash(&self.event_type, &self.payload),
        }
    }

    pub fn is_erased(&self) -> bool {
        self.erased.is_some()
    }
}

pub fn content_hash(event_type: &EventType, payload: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event_type.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(payload);
    hex::encode(hasher.finalize())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (the first, or a retry), with a pointer on the queue.
    Pending,
    /// An attempt is under way, by the holder of the lease.
    Sending,
    /// Its endpoint is disabled or paused: kept, off the queue, released in order of creation
    /// when the endpoint takes deliveries again.
    Held,
    /// The endpoint answered 2xx.
    Delivered,
    /// The schedule is spent: on the deliveries DLQ, waiting for an operator.
    Dead,
    /// Its endpoint was deleted.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Sending,
        Self::Held,
        Self::Delivered,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to it without an operator.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(())
    }
}

/// Which delivery: a message to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    pub tenant: TenantId,
    pub message_id: MessageId,
    pub endpoint_id: EndpointId,
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.tenant, self.message_id, self.endpoint_id
        )
    }
}

/// One message's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub key: DeliveryKey,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made; the retry schedule counts these.
    pub attempts: u32,
    pub created_at: SystemTime,
    /// When it entered its status.
    pub status_at: SystemTime,
    /// When the next attempt is due (pending), for reconcile to find a lost pointer.
    pub next_attempt_at: Option<SystemTime>,
    pub lease_until: Option<SystemTime>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<SystemTime>,
    /// The partner accepted an attempt whose finishing write failed: the next claim finishes
    /// the delivery from this note instead of posting again.
    pub answered: Option<Answered>,
    /// Its schedule is spent, but its copy could not be put on the deliveries DLQ yet: the next
    /// claim copies it and marks it dead, without posting again.
    pub spent: bool,
}

/// A partner's 2xx, noted on its delivery when the attempt could not be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub status: u16,
    pub at: SystemTime,
}

impl Delivery {
    /// A new delivery of `message` to `endpoint`: pending, or held if the endpoint takes no
    /// deliveries now.
    pub fn new(
        message: &OutboundMessage,
        endpoint: &EndpointId,
        held: bool,
        now: SystemTime,
    ) -> Self {
        Self {
            key: DeliveryKey {
                tenant: message.tenant.clone(),
                message_id: message.id.clone(),
                endpoint_id: endpoint.clone(),
            },
            event_type: message.event_type.clone(),
            status: if held {
                DeliveryStatus::Held
            } else {
                DeliveryStatus::Pending
            },
            attempts: 0,
            created_at: now,
            status_at: now,
            next_attempt_at: (!held).then_some(now),
            lease_until: None,
            last_status_code: None,
            last_error: None,
            delivered_at: None,
            answered: None,
            spent: false,
        }
    }
}

/// What kind of failure an attempt met, for operators and for the health figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// No answer within the attempt's timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The TLS handshake failed (a bad certificate, a protocol mismatch).
    Tls,
    /// The host name did not resolve.
    Dns,
    /// The endpoint answered with a status other than 2xx.
    HttpStatus,
    /// The SSRF guard refused where the URL leads.
    Refused,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::HttpStatus => "http_status",
            Self::Refused => "refused",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorClass {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Timeout,
            Self::Connection,
            Self::Tls,
            Self::Dns,
            Self::HttpStatus,
            Self::Refused,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or(())
    }
}

/// What one HTTP exchange with an endpoint gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// The `Retry-After` of a 429 or 503, if it parsed.
    pub retry_after: Option<Duration>,
    /// The start of the answer's body (up to [`MAX_RESPONSE_BYTES`]), as text.
    pub body: String,
    pub latency: Duration,
    /// Set unless the endpoint answered 2xx.
    pub error: Option<(ErrorClass, String)>,
}

impl Exchange {
    pub fn is_success(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The dispatcher, on the retry schedule.
    Scheduled,
    /// An operator's or partner's test event.
    Test,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Test => "test",
        }
    }
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub key: DeliveryKey,
    /// 1 for the first attempt.
    pub number: u32,
    pub at: SystemTime,
    pub trigger: Trigger,
    pub url: String,
    pub status: Option<u16>,
    pub latency: Duration,
    pub response_body: String,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
}

impl Attempt {
    pub fn new(
        key: &DeliveryKey,
        number: u32,
        at: SystemTime,
        trigger: Trigger,
        url: &EndpointUrl,
        exchange: &Exchange,
    ) -> Self {
        Self {
            key: key.clone(),
            number,
            at,
            trigger,
            // Kept, listed and shown to the partner: never the query string's tokens.
            url: url.redacted(),
            status: exchange.status,
            latency: exchange.latency,
            response_body: exchange.body.clone(),
            error_class: exchange.error.as_ref().map(|(class, _)| *class),
            error: exchange.error.as_ref().map(|(_, text)| text.clone()),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error_class.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What the deliveries queue carries: which delivery, never the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPointer {
    pub tenant: String,
    pub message_id: String,
    pub endpoint_id: String,
    /// Sent by reconcile to try a paused endpoint again: goes out although the circuit is
    /// open, and closes it on success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// The type of the message the publish that sent it stored, which its endpoint subscribed
    /// to: a publish that lost to another with the same id and another type sent pointers the
    /// stored message is not for. Absent from pointers of deliveries created at publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The rate-limit slot reserved for it (unix milliseconds): it goes when that comes,
    /// without reserving again ([`super::rate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
}

impl DeliveryPointer {
    pub fn new(key: &DeliveryKey) -> Self {
        Self {
            tenant: key.tenant.to_string(),
            message_id: key.message_id.to_string(),
            endpoint_id: key.endpoint_id.to_string(),
            probe: false,
            event_type: None,
            slot: None,
        }
    }

    /// The pointer a publish sends for a delivery its dispatcher creates.
    pub fn published(key: &DeliveryKey, event_type: &EventType) -> Self {
        Self {
            event_type: Some(event_type.to_string()),
            ..Self::new(key)
        }
    }

    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    /// The delivery it names, if every part is a valid id.
    pub fn key(&self) -> Option<DeliveryKey> {
        Some(DeliveryKey {
            tenant: TenantId::parse(&self.tenant).ok()?,
            message_id: MessageId::parse(&self.message_id).ok()?,
            endpoint_id: EndpointId::parse(&self.endpoint_id).ok()?,
        })
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and a bool always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("done".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn a_pointer_round_trips_and_refuses_bad_ids() {
        let key = DeliveryKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            message_id: MessageId::parse("msg_1").expect("message"),
            endpoint_id: EndpointId::parse("ep_1").expect("endpoint"),
        };
        let pointer = DeliveryPointer::new(&key);
        let json = pointer.to_json();
        assert!(!json.contains("probe"), "{json}");
        let back = DeliveryPointer::parse(&json).expect("parsed");
        assert_eq!(back.key(), Some(key));
        let mut bad = back;
        bad.tenant = "Acme#1".into();
        assert_eq!(bad.key(), None);
        assert_eq!(DeliveryPointer::parse("{not json"), None);
    }

    #[test]
    fn the_content_hash_covers_type_and_payload() {
        let paid = EventType::parse("invoice.paid").expect("type");
        let sent = EventType::parse("invoice.sent").expect("type");
        assert_eq!(content_hash(&paid, b"{}"), content_hash(&paid, b"{}"));
        assert_ne!(content_hash(&paid, b"{}"), content_hash(&sent, b"{}"));
        assert_ne!(content_hash(&paid, b"{}"), content_hash(&paid, b"{ }"));
    }
}
