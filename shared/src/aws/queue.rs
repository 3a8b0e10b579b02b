//! The events queue on SQS: one small JSON pointer message per event.

use async_trait::async_trait;
use aws_sdk_sqs::{Client, types::MessageAttributeValue};

use super::describe;
use crate::{
    message::QueueMessage,
    ports::{EventQueue, QueueError},
};

/// [`EventQueue`] on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// A `String` message attribute. Tenant and provider travel as attributes too, so tools (and
/// later, subscription filters) can select messages without parsing bodies.
fn attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError(format!("building a message attribute: {e}")))
}

#[async_trait]
impl EventQueue for SqsEventQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError(format!("encoding the message: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("tenant", attribute(&message.tenant)?)
            .message_attributes("provider", attribute(&message.provider)?)
            .send()
            .await
            .map_err(|e| QueueError(format!("SendMessage: {}", describe(&e))))?;
        Ok(())
    }
}
