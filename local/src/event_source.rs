//! The SQS event source mapping, emulated: what Lambda does between a queue and its function
//! (the processor on the events queue, the dispatcher on the deliveries queue). Receive a batch
//! (up to the batch size, waiting up to the batching window), hand it to the Lambda's own
//! handler as the `SqsEvent` Lambda would build, delete the
//! messages it did not report failed, and leave the failed ones for their visibility timeout.
//! A batch the handler refuses whole is left whole. Redrive to the DLQ after
//! `maxReceiveCount` is SQS's own. Several batches run at once, scaling with the backlog, as
//! Lambda runs several invocations.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use shared::{
    clock::Clock,
    outbound::{
        dispatch::Dispatcher,
        ports::{DeliveryQueue, DeliveryRetryQueue, OutboundStore, Transport},
    },
    ports::{ProcessorStore, RetryQueue},
    processor::{Jitter, Processor},
};
use tracing::warn;

/// A function an SQS event source invokes: its deployed handler.
pub trait SqsFunction {
    fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> impl Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>>;
}

impl<S, Q, C, J> SqsFunction for Processor<S, Q, C, J>
where
    S: ProcessorStore,
    Q: RetryQueue,
    C: Clock,
    J: Jitter,
{
    fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> impl Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>> {
        processor::handle(self, event)
    }
}

impl<S, Q, R, T, C, J> SqsFunction for Dispatcher<S, Q, R, T, C, J>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    R: DeliveryRetryQueue,
    T: Transport,
    C: Clock,
    J: Jitter,
{
    fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> impl Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>> {
        dispatcher::handle(self, event)
    }
}

/// How many batches Lambda's SQS event source runs at once before it scales up.
pub const STARTING_CONCURRENCY: usize = 5;
/// The template's `ProcessorMaxConcurrency` and `DispatcherMaxConcurrency` defaults: the most
/// batches each mapping runs at once.
pub const PROCESSOR_MAX_CONCURRENCY: usize = 5;
pub const DISPATCHER_MAX_CONCURRENCY: usize = 10;
/// The template's `SlowLaneMaxConcurrency` default.
pub const SLOW_LANE_MAX_CONCURRENCY: usize = 2;

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
    /// Receive one batch and hand it to `function`. An empty queue is an empty poll.
    pub async fn poll_once(
        &self,
        function: &impl SqsFunction,
        invocation: &str,
    ) -> Result<Poll, String> {
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
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| shared::aws::describe(&e))?;
        let records: Vec<SqsMessage> = received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                // The attributes the Lambda service hands the function, under its names.
                record.attributes = [
                    MessageSystemAttributeName::ApproximateReceiveCount,
                    MessageSystemAttributeName::SentTimestamp,
                ]
                .into_iter()
                .filter_map(|name| {
                    let value = m.attributes()?.get(&name)?.clone();
                    Some((name.as_str().to_owned(), value))
                })
                .collect();
                record.message_id = m.message_id;
                record.receipt_handle = m.receipt_handle;
                record.body = m.body;
                record.event_source_arn = Some(self.queue_url.clone());
                record
            })
            .collect();
        if records.is_empty() {
            return Ok(Poll::default());
        }
        let receipts: Vec<(Option<String>, Option<String>)> = records
            .iter()
            .map(|r| (r.message_id.clone(), r.receipt_handle.clone()))
            .collect();
        let mut payload = SqsEvent::default();
        payload.records = records;
        let mut context = Context::default();
        context.request_id = invocation.to_owned();
        let failed: Vec<String> = match function.invoke(LambdaEvent::new(payload, context)).await {
            Ok(response) => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            // The invocation failed: Lambda deletes nothing, every message comes back.
            Err(e) => {
                warn!(error = %e, "the function refused the batch");
                receipts.iter().filter_map(|(id, _)| id.clone()).collect()
            }
        };
        for (id, receipt) in &receipts {
            if id.as_ref().is_some_and(|id| failed.contains(id)) {
                continue;
            }
            let Some(receipt) = receipt else {
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
                warn!(message_id = ?id, error = %shared::aws::describe(&e), "could not delete a processed message");
            }
        }
        Ok(Poll {
            received: receipts.len(),
            failed: failed.len(),
        })
    }

    /// Poll until the task is dropped, as Lambda's SQS event source does: five batches at
    /// once to start with, one more poller while batches come full, one fewer while polls come
    /// back empty, never more than `max_concurrency` (the mapping's `MaximumConcurrency`) nor
    /// fewer than five. A slow batch holds its own poller only.
    pub async fn run(&self, function: &impl SqsFunction, max_concurrency: usize) {
        let max = max_concurrency.max(1);
        let target = AtomicUsize::new(STARTING_CONCURRENCY.min(max));
        let invocations = AtomicU64::new(0);
        let pollers = (0..max).map(|slot| self.poller(slot, function, &target, max, &invocations));
        futures_util::future::join_all(pollers).await;
    }

    /// One of `run`'s pollers: it polls while its slot is under the target concurrency.
    async fn poller(
        &self,
        slot: usize,
        function: &impl SqsFunction,
        target: &AtomicUsize,
        max: usize,
        invocations: &AtomicU64,
    ) {
        let floor = STARTING_CONCURRENCY.min(max);
        loop {
            if slot >= target.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let invocation = invocations.fetch_add(1, Ordering::Relaxed) + 1;
            match self
                .poll_once(function, &format!("local-{invocation}"))
                .await
            {
                Ok(poll) if poll.received >= usize::try_from(self.batch_size).unwrap_or(10) => {
                    let _ = target.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some((n + 1).min(max))
                    });
                }
                Ok(poll) if poll.received > 0 => {}
                Ok(_) => {
                    let _ = target.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1).max(floor))
                    });
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    warn!(error = %e, "polling the queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
