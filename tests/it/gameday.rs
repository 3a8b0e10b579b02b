//! Gameday against the emulator: the real ingress and processor, through the real SDK clients,
//! with a fault proxy between them and the emulator that drops, throttles, fails and loses the
//! answers of chosen AWS calls, so the adapters and the SDK's retries meet what a deployment
//! meets. The same promises on in-memory adapters, at 10,000 events, are `shared`'s gameday.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{StreamExt, stream};
use local_stack::{
    event_source::EventSourceMapping,
    fault_proxy::{FaultProxy, ProxyFault},
};
use shared::{ports::EventStore, record::EventStatus, retry::RetrySchedule};

use crate::support::*;

/// The pipeline with every AWS call through the proxy.
struct Proxied {
    stack: Stack,
    proxy: FaultProxy,
    ingress: ingress::AwsIngress,
    processor: processor::AwsProcessor,
    mapping: EventSourceMapping,
}

/// A short visibility timeout and lease, so a message whose delete or receive answer was lost
/// comes back in seconds, not minutes (test setup only: the template keeps its own).
const VISIBILITY_SECS: i32 = 3;

impl Proxied {
    async fn new() -> Self {
        Self::with_visibility(VISIBILITY_SECS).await
    }

    async fn with_visibility(visibility_secs: i32) -> Self {
        let stack = Stack::new().await;
        stack.add_tenant(&stripe()).await;
        stack
            .sqs
            .set_queue_attributes()
            .queue_url(stack.resources.events_queue_url())
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .send()
            .await
            .expect("visibility");
        let proxy = FaultProxy::start(&endpoint()).await.expect("proxy");
        let sdk = local_stack::aws::sdk_config(&proxy.url).await;
        let ingress = ingress::build(&sdk, &local_stack::dev::ingress_config(&stack.resources));
        let mut config = local_stack::dev::processor_config(&stack.resources).expect("config");
        config.settings.schedule = "0,1,1,1,1,1"
            .parse::<RetrySchedule>()
            .expect("schedule")
            .with_jitter(0.0);
        config.settings.lease =
            Duration::from_secs(u64::try_from(visibility_secs - 1).unwrap_or(2).max(2));
        // One commit at a time: the emulator rolls a cancelled transaction back by restoring a
        // table snapshot, which can erase a concurrent commit (DynamoDB does not).
        config.settings.concurrency = 1;
        let processor = processor::build(&sdk, &config);
        let mapping = EventSourceMapping {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_url: stack.resources.events_queue_url().to_owned(),
            batch_size: 10,
            batching_window: Duration::ZERO,
        };
        Self {
            stack,
            proxy,
            ingress,
            processor,
            mapping,
        }
    }

    /// Deliver `id` until the ingress answers 2xx, as Stripe retries a 5xx (signed now: the
    /// deployed ingress reads the machine's clock).
    async fn deliver(&self, id: &str) -> u32 {
        let body = invoice(id);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(NOW, |d| d.as_secs());
        let headers = sign(&stripe(), SECRET, &body, now, "");
        for attempt in 1..=10 {
            let (status, answer) = call(
                &self.ingress,
                request("acme", "stripe", None, &headers, &body),
            )
            .await;
            match status {
                200 => return attempt,
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                other => panic!("{id}: {other} {answer}"),
            }
        }
        panic!("{id} not accepted in 10 tries")
    }

    /// Poll until every one of `ids` is processed, within `deadline`.
    async fn process_all(&self, ids: &[String], deadline: Duration) {
        let start = Instant::now();
        let mut invocation = 0;
        loop {
            invocation += 1;
            let poll = self
                .mapping
                .poll_once(&self.processor, &format!("gameday-{invocation}"))
                .await;
            if matches!(poll, Ok(ref p) if p.received > 0) {
                continue;
            }
            if self.unprocessed(ids).await.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "not processed within {deadline:?}: {:?}",
                self.unprocessed(ids).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The events of `ids` not (yet) processed, with their status.
    async fn unprocessed(&self, ids: &[String]) -> Vec<(String, Option<EventStatus>)> {
        let store = self.stack.store();
        stream::iter(ids)
            .map(|id| {
                let store = &store;
                async move {
                    let status = store
                        .get(&key(id))
                        .await
                        .ok()
                        .flatten()
                        .map(|record| record.status);
                    (id.clone(), status)
                }
            })
            .buffer_unordered(16)
            .filter(|(_, status)| std::future::ready(*status != Some(EventStatus::Processed)))
            .collect()
            .await
    }

    /// THEN each event applied once: one invoice item per event, nothing on either queue.
    async fn assert_applied_once(&self, ids: &[String]) {
        assert_eq!(self.unprocessed(ids).await, Vec::new());
        assert_eq!(self.invoice_items().await, ids.len(), "one item per event");
        assert_eq!(
            self.visible(self.stack.resources.dead_letter_queue_url())
                .await,
            0,
            "nothing dead-lettered"
        );
    }

    async fn invoice_items(&self) -> usize {
        self.stack
            .projections_of("acme", shared::projection::ProjectionKind::StripeInvoice)
            .await
            .len()
    }

    async fn visible(&self, queue_url: &str) -> u64 {
        self.stack
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes")
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("evt_{prefix}{i:05}")).collect()
}

/// Calls per event, as `operation: calls / events`.
fn per_event(calls: &BTreeMap<String, u64>, events: usize) -> String {
    let total: u64 = calls.values().sum();
    let each: Vec<String> = calls
        .iter()
        .map(|(op, n)| format!("{op} {:.2}", *n as f64 / events as f64))
        .collect();
    format!(
        "{:.2} calls per event ({})",
        total as f64 / events as f64,
        each.join(", ")
    )
}

#[tokio::test]
async fn dropped_throttled_failed_and_lost_aws_calls_lose_nothing_and_apply_nothing_twice() {
    let p = Proxied::new().await;
    let operations = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:TransactWriteItems",
        "dynamodb:BatchGetItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "kms:Decrypt",
    ];
    let faults = [
        ProxyFault::Drop,
        ProxyFault::Throttle,
        ProxyFault::ServerError,
        ProxyFault::LoseResponse,
        ProxyFault::Delay(Duration::from_millis(300)),
    ];
    for operation in operations {
        for fault in faults {
            p.proxy.inject(operation, fault, 1);
        }
    }
    let ids = ids("proxy", 30);

    // WHEN webhooks arrive (in fours) and the processor drains the queue, faults in the way
    let tries: Vec<u32> = stream::iter(&ids)
        .map(|id| p.deliver(id))
        .buffer_unordered(4)
        .collect()
        .await;
    p.process_all(&ids, Duration::from_secs(90)).await;

    // THEN every fault met a call, and still each event is applied once
    assert!(
        p.proxy.injected() >= 40,
        "faults reached: {}",
        p.proxy.injected()
    );
    p.assert_applied_once(&ids).await;
    println!(
        "gameday through the fault proxy: {} events, {} faults injected, {} provider retries",
        ids.len(),
        p.proxy.injected(),
        tries.iter().map(|t| t - 1).sum::<u32>()
    );
}

#[tokio::test]
async fn aws_calls_per_event_are_counted_for_the_cost_figures() {
    // A visibility long enough that no message comes back while the machine is busy: every
    // call counted is an event's own.
    let p = Proxied::with_visibility(120).await;
    let ids = ids("calls", 20);
    // Warm the tenant cache, as a running function has it.
    p.deliver("evt_calls_warmup").await;
    p.process_all(&["evt_calls_warmup".to_owned()], Duration::from_secs(30))
        .await;
    p.proxy.reset_counts();

    for id in &ids {
        p.deliver(id).await;
    }
    let ingress = p.proxy.calls();
    p.proxy.reset_counts();
    p.process_all(&ids, Duration::from_secs(60)).await;
    let mut processor = p.proxy.calls();
    // Empty polls while waiting are the event source mapping's, not the events'.
    processor.remove("sqs:ReceiveMessage");

    println!("ingress: {}", per_event(&ingress, ids.len()));
    println!("processor: {}", per_event(&processor, ids.len()));
    // Per event: the queue send, then the conditional put.
    assert_eq!(
        ingress.values().sum::<u64>(),
        2 * ids.len() as u64,
        "{ingress:?}"
    );
    // Per event: read, read projections, look the new invoice up under its unsharded key
    // (where an older version kept it), the projection's conditional put, the processed mark,
    // the delete (the relay's policy read is cached per tenant).
    assert_eq!(
        processor.values().sum::<u64>(),
        6 * ids.len() as u64,
        "{processor:?}"
    );
}

#[tokio::test]
async fn five_hundred_events_through_the_emulator_under_faults_are_each_applied_once() {
    const EVENTS: usize = 500;
    let p = Proxied::new().await;
    // Every 50th call of each kind fails one way or another; every 100th put loses its answer.
    p.proxy
        .inject_every("dynamodb:PutItem", ProxyFault::LoseResponse, 100);
    p.proxy
        .inject_every("dynamodb:UpdateItem", ProxyFault::Throttle, 50);
    p.proxy
        .inject_every("dynamodb:TransactWriteItems", ProxyFault::ServerError, 50);
    p.proxy
        .inject_every("sqs:SendMessage", ProxyFault::Drop, 50);
    p.proxy
        .inject_every("sqs:DeleteMessage", ProxyFault::LoseResponse, 50);
    let ids = ids("load", EVENTS);
    let started = Instant::now();

    // A fifth delivered twice, eight at a time.
    let sends: Vec<&String> = ids.iter().chain(ids.iter().step_by(5)).collect::<Vec<_>>();
    let tries: Vec<u32> = stream::iter(sends.iter())
        .map(|id| p.deliver(id))
        .buffer_unordered(8)
        .collect()
        .await;
    let ingested = started.elapsed();
    p.process_all(&ids, Duration::from_secs(420)).await;

    p.assert_applied_once(&ids).await;
    println!(
        "emulator load: {EVENTS} events ({} deliveries with duplicates, {} provider retries), \
         {} faults injected; ingested in {ingested:.1?}, all processed in {:.1?}",
        sends.len(),
        tries.iter().map(|t| t - 1).sum::<u32>(),
        p.proxy.injected(),
        started.elapsed()
    );
}
