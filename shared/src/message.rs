//! The pointer message put on the queue: enough to find the event record, never the payload
//! (the record is the source of truth, and SQS messages stay small and cheap).

use serde::{Deserialize, Serialize};

use crate::{
    ids::{EventId, TenantId},
    provider::Provider,
    record::{Correlation, EventKey},
};

/// What the processor receives for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub tenant: String,
    pub provider: String,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// How many times an operator has replayed this event; 0 for the original delivery.
    #[serde(default)]
    pub replay_count: u32,
}

impl QueueMessage {
    pub fn new(key: &EventKey, correlation: &Correlation) -> Self {
        Self {
            tenant: key.tenant.to_string(),
            provider: key.provider.to_string(),
            event_id: key.event_id.to_string(),
            request_id: correlation.request_id.clone(),
            client_request_id: correlation.client_request_id.clone(),
            replay_count: 0,
        }
    }

    /// Parse a queue message body into a pointer, if it is one.
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    /// The event this pointer names, if every part is a valid id: the one reading of a
    /// pointer's key, for the processor and the DLQ redrive alike.
    pub fn key(&self) -> Option<EventKey> {
        Some(EventKey {
            tenant: TenantId::parse(&self.tenant).ok()?,
            provider: self.provider.parse::<Provider>().ok()?,
            event_id: EventId::parse(&self.event_id).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_to_its_key() {
        let key = EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse("evt_1").expect("id"),
        };
        let body =
            serde_json::to_string(&QueueMessage::new(&key, &Correlation::default())).expect("json");
        assert_eq!(QueueMessage::parse(&body).and_then(|m| m.key()), Some(key));
    }

    #[test]
    fn invalid_pointers_have_no_key() {
        for body in [
            "",
            "{}",
            r#"{"tenant":"a#b","provider":"stripe","event_id":"e"}"#,
            r#"{"tenant":"acme","provider":"nope","event_id":"e"}"#,
            r#"{"tenant":"acme","provider":"stripe","event_id":""}"#,
        ] {
            assert_eq!(
                QueueMessage::parse(body).and_then(|m| m.key()),
                None,
                "{body}"
            );
        }
    }
}
