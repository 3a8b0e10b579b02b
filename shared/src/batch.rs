//! One way every queue consumer (the processor, the dispatcher) runs an SQS batch: each message
//! on its own, a bounded number at once, so a slow one holds one slot and never the others,
//! and a partial batch response that names only the messages that must come back.

use std::{future::Future, time::SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::{StreamExt, stream};

/// One queue message, as the Lambda event (or the local runner) hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// SQS's `SentTimestamp`, when the event carries it.
    pub sent_at: Option<SystemTime>,
}

impl Message {
    /// How many more times the queue hands this message over before it redrives it to its DLQ
    /// (`max_receives`, the queue's `maxReceiveCount`): 0 on its last receive.
    pub fn receives_left(&self, max_receives: u32) -> u32 {
        max_receives.saturating_sub(self.receive_count)
    }
}

/// A batch that cannot be answered message by message.
#[derive(Debug, thiserror::Error)]
#[error(
    "an SQS record has no message id, so its failure could not be reported alone; retrying the batch"
)]
pub struct MissingMessageId;

/// The messages of an SQS event (the processor's and the dispatcher's). A record without a
/// message id cannot be reported alone, so the batch is refused whole (and retried; processing is idempotent) rather than
/// reported with an empty identifier.
pub fn messages(
    event: &aws_lambda_events::event::sqs::SqsEvent,
) -> Result<Vec<Message>, MissingMessageId> {
    event
        .records
        .iter()
        .map(|record| {
            let message_id = record
                .message_id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or(MissingMessageId)?;
            Ok(Message {
                message_id,
                receipt_handle: record.receipt_handle.clone(),
                body: record.body.clone().unwrap_or_default(),
                receive_count: record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                sent_at: record
                    .attributes
                    .get("SentTimestamp")
                    .and_then(|ms| ms.parse().ok())
                    .map(crate::clock::from_unix_millis),
            })
        })
        .collect()
}

/// Handle every one of `messages`, `concurrency` at a time; each message with what its handling
/// returned, in the order they finished.
pub async fn run<'m, T, F, Fut>(
    messages: &'m [Message],
    concurrency: usize,
    handle: F,
) -> Vec<(&'m Message, T)>
where
    F: Fn(&'m Message) -> Fut,
    Fut: Future<Output = T>,
{
    stream::iter(messages)
        .map(|message| {
            let handled = handle(message);
            async move { (message, handled.await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// The Lambda side of a batch: its messages (a batch with a record that names none is refused
/// whole), `failed` run on them, and the ids it returns as the partial batch response.
pub async fn respond<F, Fut>(
    event: &SqsEvent,
    failed: F,
) -> Result<SqsBatchResponse, MissingMessageId>
where
    F: FnOnce(Vec<Message>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let messages =
        messages(event).inspect_err(|e| tracing::error!(error = %e, "refusing the batch"))?;
    let mut response = SqsBatchResponse::default();
    for id in failed(messages).await {
        response.add_failure(id);
    }
    Ok(response)
}
