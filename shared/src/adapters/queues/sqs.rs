//! The queues on SQS: the events queue (one small JSON pointer per event), the processor's
//! view of it (backoff by visibility, dead-lettering at once), and the dead-letter queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry},
};

use crate::{
    aws::describe,
    message::QueueMessage,
    outbound::{
        delivery::DeliveryPointer,
        ports::{DeliveryQueue, DeliveryRetryQueue},
    },
    ports::{DeadLetter, DeadLetterQueue, EventQueue, QueueError, RetryQueue},
    retry::SQS_MAX_VISIBILITY,
};

/// How many `SendMessageBatch` calls a fan-out keeps in flight.
const SEND_BATCHES_AT_ONCE: usize = 8;

/// An SQS call that failed, named by operation and queue.
fn sqs_error<E, R>(operation: &str, queue: &str, err: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    QueueError(format!("{operation} on {queue}: {}", describe(err)))
}

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
            .map_err(|e| sqs_error("SendMessage", "the events queue", &e))?;
        Ok(())
    }
}

/// [`RetryQueue`] on the events queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsRetryQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsRetryQueue {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }
}

/// The visibility timeout for `delay`: whole seconds rounded up, so a message never comes back
/// before its backoff, capped at what SQS accepts.
fn visibility_secs(delay: Duration) -> i32 {
    let capped = delay.min(SQS_MAX_VISIBILITY);
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(secs.min(SQS_MAX_VISIBILITY.as_secs())).unwrap_or(i32::MAX)
}

#[async_trait]
impl RetryQueue for SqsRetryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_secs(delay))
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibility", "the events queue", &e))?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", "the DLQ", &e))?;
        Ok(())
    }
}

/// The deliveries queue on SQS: pointers in (publish, recovery), backoff by visibility and
/// dead-lettering for the dispatcher.
#[derive(Debug, Clone)]
pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsDeliveryQueue {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    async fn send_batch(&self, pointers: &[DeliveryPointer]) -> Result<(), QueueError> {
        let entries = pointers
            .iter()
            .enumerate()
            .map(|(i, pointer)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(pointer.to_json())
                    .message_attributes("tenant", attribute(&pointer.tenant)?)
                    .build()
                    .map_err(|e| QueueError(format!("building a batch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error("SendMessageBatch", "the deliveries queue", &e))?;
        match output.failed().first() {
            None => Ok(()),
            Some(failed) => Err(QueueError(format!(
                "SendMessageBatch on the deliveries queue: {} of {} not sent ({}: {})",
                output.failed().len(),
                pointers.len(),
                failed.code(),
                failed.message().unwrap_or("no message"),
            ))),
        }
    }

    /// Send `pointer` to the queue at `url` (named `name` in errors), visible after `delay`
    /// (SQS delays 15 minutes at most).
    async fn send_pointer(
        &self,
        url: &str,
        name: &str,
        pointer: &DeliveryPointer,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(url)
            .message_body(pointer.to_json())
            .message_attributes("tenant", attribute(&pointer.tenant)?)
            .set_delay_seconds(
                (!delay.is_zero()).then(|| i32::try_from(delay.as_secs().min(900)).unwrap_or(900)),
            )
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", name, &e))?;
        Ok(())
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn enqueue(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        self.send_pointer(
            &self.queue_url,
            "the deliveries queue",
            pointer,
            Duration::ZERO,
        )
        .await
    }

    /// One pointer is one `SendMessage`; more go ten to a `SendMessageBatch` (SQS's limit),
    /// a few batches at once, so a fan-out to a thousand endpoints is a hundred requests.
    async fn enqueue_all(&self, pointers: &[DeliveryPointer]) -> Result<(), QueueError> {
        if let [pointer] = pointers {
            return self.enqueue(pointer).await;
        }
        let batches: Vec<&[DeliveryPointer]> = pointers.chunks(10).collect();
        for group in batches.chunks(SEND_BATCHES_AT_ONCE) {
            futures_util::future::try_join_all(group.iter().map(|batch| self.send_batch(batch)))
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryRetryQueue for SqsDeliveryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_secs(delay))
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibility", "the deliveries queue", &e))?;
        Ok(())
    }

    async fn dead_letter(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        self.send_pointer(
            &self.dead_letter_url,
            "the deliveries DLQ",
            pointer,
            Duration::ZERO,
        )
        .await
    }

    async fn send_again(
        &self,
        pointer: &DeliveryPointer,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.send_pointer(&self.queue_url, "the deliveries queue", pointer, delay)
            .await
    }
}

/// [`DeadLetterQueue`] on the events queue's SQS dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn receive(&self, max: u32, hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(visibility_secs(hold))
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", "the DLQ", &e))?;
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
            .map_err(|e| sqs_error("DeleteMessage", "the DLQ", &e))?;
        Ok(())
    }

    async fn send(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", "the DLQ", &e))?;
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
            .map_err(|e| sqs_error("ChangeMessageVisibility", "the DLQ", &e))?;
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
            .map_err(|e| sqs_error("GetQueueAttributes", "the DLQ", &e))?;
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
    use super::*;

    #[test]
    fn delays_round_up_to_seconds_and_stop_at_twelve_hours() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(60)), 60);
        assert_eq!(visibility_secs(Duration::from_secs(43_200)), 43_200);
        assert_eq!(visibility_secs(Duration::from_millis(43_200_001)), 43_200);
        assert_eq!(visibility_secs(Duration::MAX), 43_200);
    }
}
