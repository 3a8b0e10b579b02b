//! The processor's view of its SQS queue: back off a message by its visibility, or send a body
//! to the dead-letter queue at once.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use super::describe;
use crate::ports::{QueueError, RetryQueue};

/// SQS's longest visibility timeout (12 hours): a longer backoff waits this long.
pub const MAX_VISIBILITY_DELAY: Duration = Duration::from_secs(43_200);

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
    let capped = delay.min(MAX_VISIBILITY_DELAY);
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(secs.min(MAX_VISIBILITY_DELAY.as_secs())).unwrap_or(i32::MAX)
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
            .map_err(|e| QueueError(format!("ChangeMessageVisibility: {}", describe(&e))))?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(format!("SendMessage to the DLQ: {}", describe(&e))))?;
        Ok(())
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
