//! The whole pipeline against the emulator: ingress → SQS → event source mapping → processor
//! → projections, with retries, redrive and duplicates.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::event_source::{EventSourceMapping, Poll};
use shared::{
    aws::SqsRetryQueue,
    clock::SystemClock,
    message::QueueMessage,
    ports::EventStore,
    processor::{Disposition, Processor, SystemJitter},
    projection::ProjectionKind,
    record::{Correlation, EventStatus},
    retry::RetrySchedule,
};

use crate::support::*;

async fn deliver(stack: &Stack, id: &str) {
    let body = invoice(id);
    let headers = sign(&stripe(), SECRET, &body, NOW, "");
    let (status, _) = call(
        &stack.ingress(),
        request("acme", "stripe", None, &headers, &body),
    )
    .await;
    assert_eq!(status, 200, "delivery of {id}");
}

async fn processor_with(
    stack: &Stack,
    schedule: &str,
    projections_table: &str,
) -> processor::AwsProcessor {
    let sdk = local_stack::aws::sdk_config(&endpoint()).await;
    let mut config = local_stack::dev::processor_config(&stack.resources).expect("config");
    config.settings.schedule = schedule
        .parse::<RetrySchedule>()
        .expect("schedule")
        .with_jitter(0.0);
    config.projections_table = projections_table.to_owned();
    processor::build(&sdk, &config)
}

fn mapping(stack: &Stack) -> EventSourceMapping {
    EventSourceMapping {
        sqs: stack.sqs.clone(),
        queue_url: stack.resources.events_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::ZERO,
    }
}

async fn invoice_items(stack: &Stack) -> usize {
    stack
        .projections_of("acme", ProjectionKind::StripeInvoice)
        .await
        .len()
}

async fn dead_letters(stack: &Stack) -> usize {
    let out = stack
        .sqs
        .receive_message()
        .queue_url(stack.resources.dead_letter_queue_url())
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    out.messages.unwrap_or_default().len()
}

/// Deliver invoice `id` with a description of `bytes` that do not deflate much; its body.
async fn deliver_large(stack: &Stack, id: &str, bytes: usize) -> Vec<u8> {
    let mut invoice: serde_json::Value = serde_json::from_slice(&invoice(id)).expect("json");
    invoice["data"]["object"]["description"] = incompressible(bytes).into();
    let body = serde_json::to_vec(&invoice).expect("json");
    let headers = sign(&stripe(), SECRET, &body, NOW, "");
    let (status, answer) = call(
        &stack.ingress(),
        request("acme", "stripe", None, &headers, &body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    body
}

/// The tag the payload at `location` carries now.
async fn payload_state(stack: &Stack, location: &str) -> Option<String> {
    let tags = stack
        .s3
        .get_object_tagging()
        .bucket(stack.resources.payloads_bucket())
        .key(location)
        .send()
        .await
        .expect("tags");
    tags.tag_set()
        .iter()
        .find(|t| t.key() == "state")
        .map(|t| t.value().to_owned())
}

#[tokio::test]
async fn a_large_payload_is_kept_while_its_event_fails_and_let_go_once_processed() {
    // GIVEN a 40 KiB invoice that does not deflate into its record, delivered
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    deliver_large(&stack, "evt_kept", 40 * 1024).await;
    let location = stack
        .store()
        .get(&key("evt_kept"))
        .await
        .expect("read")
        .expect("record")
        .payload_location
        .expect("kept in S3");
    // Written to expire with its event: nearly every event is processed first time.
    assert_eq!(
        payload_state(&stack, &location).await.as_deref(),
        Some("done")
    );

    // WHEN its first attempt fails (no projections table), THEN it is kept
    let immediate = "0,0,0,0,0,0";
    let broken = processor_with(&stack, immediate, "no-such-table").await;
    let poll = mapping(&stack)
        .poll_once(&broken, "i-1")
        .await
        .expect("poll");
    assert_eq!(poll.failed, 1);
    assert_eq!(
        payload_state(&stack, &location).await.as_deref(),
        Some("kept")
    );

    // WHEN the retry succeeds, THEN it may expire with its record again
    let fixed = processor_with(&stack, immediate, stack.resources.projections_table()).await;
    let poll = mapping(&stack)
        .poll_once(&fixed, "i-2")
        .await
        .expect("poll");
    assert_eq!(poll.failed, 0);
    let record = stack
        .store()
        .get(&key("evt_kept"))
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert_eq!(
        payload_state(&stack, &location).await.as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn a_payload_too_large_for_its_record_goes_to_s3_and_is_processed_from_there() {
    // GIVEN a 1 MiB Stripe event (a large invoice), far over DynamoDB's 400 KB item limit
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;

    // WHEN it is delivered and processed
    let body = deliver_large(&stack, "evt_large", 1 << 20).await;
    let processor = processor_with(
        &stack,
        "0,60,300,1800,7200,43200",
        stack.resources.projections_table(),
    )
    .await;
    let poll = mapping(&stack)
        .poll_once(&processor, "invocation-1")
        .await
        .expect("poll");

    // THEN the record points to the payload instead of holding it, and it was processed
    assert_eq!(
        poll,
        Poll {
            received: 1,
            failed: 0
        }
    );
    let item = stack
        .dynamodb
        .get_item()
        .table_name(stack.resources.events_table())
        .key("pk", AttributeValue::S("acme#stripe#evt_large".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert!(!item.contains_key("payload"));
    let location = item["payload_location"].as_s().expect("location").clone();
    let record = stack
        .store()
        .get(&key("evt_large"))
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert_eq!(record.payload, body, "read back whole");
    assert_eq!(invoice_items(&stack).await, 1);

    // AND its payload is marked to expire with the record, no sooner
    let tags = stack
        .s3
        .get_object_tagging()
        .bucket(stack.resources.payloads_bucket())
        .key(&location)
        .send()
        .await
        .expect("tags");
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| (t.key(), t.value()) == shared::aws::DONE_TAG),
        "{tags:?}"
    );
}

#[tokio::test]
async fn a_signed_webhook_reaches_its_projection() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    deliver(&stack, "evt_pipe_1").await;
    let processor = processor_with(
        &stack,
        "0,60,300,1800,7200,43200",
        stack.resources.projections_table(),
    )
    .await;

    let poll = mapping(&stack)
        .poll_once(&processor, "invocation-1")
        .await
        .expect("poll");

    assert_eq!(
        poll,
        Poll {
            received: 1,
            failed: 0
        }
    );
    let record = stack
        .store()
        .get(&key("evt_pipe_1"))
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert!(record.expires_at.is_some(), "processed records expire");
    assert_eq!(invoice_items(&stack).await, 1);
    // The processed message was deleted: nothing left to receive.
    assert_eq!(
        mapping(&stack)
            .poll_once(&processor, "invocation-2")
            .await
            .expect("poll"),
        Poll::default()
    );
}

#[tokio::test]
async fn one_poison_message_in_a_batch_of_ten_is_retried_alone() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    for i in 0..9 {
        deliver(&stack, &format!("evt_batch_{i}")).await;
    }
    // A pointer to an event that has no record: it cannot succeed now.
    let poison = QueueMessage::new(&key("evt_nowhere"), &Correlation::default());
    stack
        .sqs
        .send_message()
        .queue_url(stack.resources.events_queue_url())
        .message_body(serde_json::to_string(&poison).expect("json"))
        .send()
        .await
        .expect("send poison");
    let processor = processor_with(
        &stack,
        "0,60,300,1800,7200,43200",
        stack.resources.projections_table(),
    )
    .await;

    let poll = mapping(&stack)
        .poll_once(&processor, "invocation-1")
        .await
        .expect("poll");

    assert_eq!(
        poll,
        Poll {
            received: 10,
            failed: 1
        }
    );
    for i in 0..9 {
        let record = stack
            .store()
            .get(&key(&format!("evt_batch_{i}")))
            .await
            .expect("read")
            .expect("record");
        assert_eq!(record.status, EventStatus::Processed);
    }
    // The poison message is hidden for its backoff (60 s after the first attempt).
    assert_eq!(
        mapping(&stack)
            .poll_once(&processor, "invocation-2")
            .await
            .expect("poll"),
        Poll::default()
    );
}

#[tokio::test]
async fn the_last_failed_attempt_dead_letters_the_event_before_marking_it_dead() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    deliver(&stack, "evt_doomed").await;
    // A projections table that does not exist: every commit fails, as in a downstream outage.
    let processor = processor_with(&stack, "0,0,0,0,0,0", "no-such-table").await;

    for attempt in 1..=6u32 {
        let poll = mapping(&stack)
            .poll_once(&processor, &format!("invocation-{attempt}"))
            .await
            .expect("poll");
        // Five failures come back on their backoff; the sixth gives up: its DLQ copy is
        // sent and the message deleted, not left for SQS's redrive.
        assert_eq!(
            poll,
            Poll {
                received: 1,
                failed: usize::from(attempt < 6)
            },
            "attempt {attempt}"
        );
        let record = stack
            .store()
            .get(&key("evt_doomed"))
            .await
            .expect("read")
            .expect("record");
        let expected = if attempt < 6 {
            EventStatus::Failed
        } else {
            EventStatus::Dead
        };
        assert_eq!((record.status, record.attempts), (expected, attempt));
    }
    let record = stack
        .store()
        .get(&key("evt_doomed"))
        .await
        .expect("read")
        .expect("record");
    assert!(record.retry_exhausted);
    assert!(record.last_error.is_some());

    // Nothing is left on the queue; the DLQ holds the one copy.
    assert_eq!(
        mapping(&stack)
            .poll_once(&processor, "invocation-7")
            .await
            .expect("poll"),
        Poll::default()
    );
    assert_eq!(dead_letters(&stack).await, 1);
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_apply_once() {
    // GIVEN one stored event, and a processor over the real store that counts effects
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    deliver(&stack, "evt_dup").await;
    let sdk = local_stack::aws::sdk_config(&endpoint()).await;
    let config = local_stack::dev::processor_config(&stack.resources).expect("config");
    let processor = Processor::new(
        CountingStore::new(
            stack
                .store()
                .with_projections(stack.resources.projections_table()),
        ),
        SqsRetryQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            stack.resources.events_queue_url(),
            stack.resources.dead_letter_queue_url(),
        ),
        SystemClock,
        SystemJitter,
        config.settings,
    );
    let body = serde_json::to_string(&QueueMessage::new(&key("evt_dup"), &Correlation::default()))
        .expect("json");
    let message = |n: u32| shared::processor::Message {
        message_id: format!("dup-{n}"),
        receipt_handle: None,
        body: body.clone(),
        receive_count: 1,
        sent_at: None,
    };

    // WHEN two processors race on it
    let (one, two) = (message(1), message(2));
    let (first, second) = tokio::join!(processor.process(&one), processor.process(&two));

    // THEN exactly one commits
    let outcomes = [first, second];
    assert_eq!(
        outcomes
            .iter()
            .filter(|d| **d == Disposition::Processed)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(processor.store.commits(), 1);

    // AND late duplicates change nothing: one effect (the invoice's one write), not one item
    for n in 3..6 {
        assert_eq!(
            processor.process(&message(n)).await,
            Disposition::Skipped("already processed")
        );
    }
    assert_eq!(processor.store.effects(), 1);
    assert_eq!(processor.store.commits(), 1);
    let record = stack
        .store()
        .get(&key("evt_dup"))
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, EventStatus::Processed);
    assert_eq!(invoice_items(&stack).await, 1);
}

#[tokio::test]
async fn a_record_whose_verification_was_tampered_with_is_never_applied() {
    let stack = Stack::new().await;
    stack.add_tenant(&stripe()).await;
    deliver(&stack, "evt_tampered").await;
    // Someone (a bug, a hand edit) changes the stored verification result.
    stack
        .dynamodb
        .update_item()
        .table_name(stack.resources.events_table())
        .key("pk", AttributeValue::S("acme#stripe#evt_tampered".into()))
        .update_expression("SET verification = :v")
        .expression_attribute_values(":v", AttributeValue::S("trust-me".into()))
        .send()
        .await
        .expect("tamper");
    let processor = processor_with(
        &stack,
        "0,60,300,1800,7200,43200",
        stack.resources.projections_table(),
    )
    .await;

    let poll = mapping(&stack)
        .poll_once(&processor, "invocation-1")
        .await
        .expect("poll");

    assert_eq!(
        poll,
        Poll {
            received: 1,
            failed: 0
        },
        "dead-lettered at once, not retried"
    );
    let record = stack
        .store()
        .get(&key("evt_tampered"))
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.status, EventStatus::Dead);
    assert_eq!(invoice_items(&stack).await, 0);
    assert_eq!(dead_letters(&stack).await, 1);
}
