//! The pointer message put on the queue: enough to find the event record, never the payload
//! (the record is the source of truth, and SQS messages stay small and cheap).

use serde::{Deserialize, Serialize};

use crate::record::{Correlation, EventKey};

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
}
