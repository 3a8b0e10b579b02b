//! The SQS event source mapping, emulated: what Lambda does between the queue and the
//! processor. Receive a batch (up to the batch size, waiting up to the batching window), hand
//! it to the processor, delete the messages it did not report failed, and leave the failed
//! ones for their visibility timeout. Redrive to the DLQ after `maxReceiveCount` is SQS's own.

use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use shared::{
    clock::Clock,
    ports::{EventProcessing, EventStore, RetryQueue},
    processor::{Jitter, Message, Processor},
};
use tracing::warn;

/// How the mapping polls: the template's `BatchSize` and `MaximumBatchingWindowInSeconds`.
#[derive(Debug, Clone)]
pub struct EventSourceMapping {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub batch_size: i32,
    pub batching_window: Duration,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Poll {
    pub received: usize,
    pub failed: usize,
}

impl EventSourceMapping {
    /// Receive one batch and process it. An empty queue is an empty poll.
    pub async fn poll_once<S, Q, C, J>(
        &self,
        processor: &Processor<S, Q, C, J>,
        invocation: &str,
    ) -> Result<Poll, String>
    where
        S: EventStore + EventProcessing,
        Q: RetryQueue,
        C: Clock,
        J: Jitter,
    {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(
                i32::try_from(self.batching_window.as_secs())
                    .unwrap_or(20)
                    .min(20),
            )
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| shared::aws::describe(&e))?;
        let messages: Vec<Message> = received
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Some(Message {
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect();
        if messages.is_empty() {
            return Ok(Poll::default());
        }
        let failed = processor.process_batch(&messages, invocation).await;
        for message in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
            let Some(receipt) = &message.receipt_handle else {
                continue;
            };
            if let Err(e) = self
                .sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
            {
                warn!(message_id = %message.message_id, error = %shared::aws::describe(&e), "could not delete a processed message");
            }
        }
        Ok(Poll {
            received: messages.len(),
            failed: failed.len(),
        })
    }

    /// Poll until the task is dropped.
    pub async fn run<S, Q, C, J>(&self, processor: &Processor<S, Q, C, J>)
    where
        S: EventStore + EventProcessing,
        Q: RetryQueue,
        C: Clock,
        J: Jitter,
    {
        let mut invocation = 0u64;
        loop {
            invocation += 1;
            match self
                .poll_once(processor, &format!("local-{invocation}"))
                .await
            {
                Ok(poll) if poll.received > 0 => {}
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => {
                    warn!(error = %e, "polling the queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
