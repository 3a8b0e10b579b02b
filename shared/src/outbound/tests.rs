//! The outbound use cases on in-memory adapters, with a manual clock and a scripted transport:
//! publishing, fan-out, the dispatcher's schedule and health rules, recovery.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    admin::{AdminError, EndpointChange},
    delivery::{DeliveryStatus, ErrorClass, Exchange},
    dispatch::{Dispatched, Dispatcher, names},
    endpoint::{DisabledReason, Endpoint},
    ids::EndpointId,
    ports::{DeliveryLog, EndpointStore},
    publish::PublishRequest,
    ssrf::{EgressPolicy, StaticResolver},
    *,
};
use crate::{
    clock::ManualClock,
    ids::TenantId,
    memory::{MemoryDeadLetterQueue, MemoryDeliveryQueue, MemoryOutboundStore, ScriptedTransport},
    metrics::CapturedMetrics,
    processor::{Message, NoJitter},
    secret::{Secret, SecretSet},
    verify::{Scheme, Verifier},
};

const NOW: u64 = 1_750_000_000;
const PAYLOAD: &[u8] = br#"{"id":"inv_1","amount":4200}"#;

type TestDispatcher = Dispatcher<
    MemoryOutboundStore,
    Arc<MemoryDeliveryQueue>,
    Arc<MemoryDeliveryQueue>,
    ScriptedTransport,
    ManualClock,
    NoJitter,
>;

struct World {
    d: TestDispatcher,
    queue: Arc<MemoryDeliveryQueue>,
    metrics: Arc<CapturedMetrics>,
}

fn world() -> World {
    world_with(OutboundSettings::default())
}

fn world_with(settings: OutboundSettings) -> World {
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let metrics = CapturedMetrics::new();
    let resolver = StaticResolver::default()
        .with("a.example", &[ip("93.184.216.34")])
        .with("b.example", &[ip("93.184.216.35")])
        .with("c.example", &[ip("93.184.216.36")])
        .with("local.example", &[ip("127.0.0.1")])
        .with("metadata.example", &[ip("169.254.169.254")]);
    let outbound = Outbound::new(
        MemoryOutboundStore::new(),
        queue.clone(),
        ManualClock::at_unix(NOW),
        settings,
    )
    .with_metrics(metrics.clone())
    .with_resolver(Arc::new(resolver));
    World {
        d: Dispatcher::new(outbound, queue.clone(), ScriptedTransport::new(), NoJitter),
        queue,
        metrics,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

impl World {
    fn outbound(&self) -> &Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock> {
        &self.d.outbound
    }

    fn clock(&self) -> &ManualClock {
        &self.d.outbound.clock
    }

    fn store(&self) -> &MemoryOutboundStore {
        &self.d.outbound.store
    }

    async fn endpoint(&self, url: &str, filter: &[&str]) -> Endpoint {
        self.outbound()
            .add_endpoint(
                &acme(),
                EndpointChange {
                    url: Some(url.to_owned()),
                    filter: Some(filter.iter().map(|f| (*f).to_owned()).collect()),
                    ..EndpointChange::default()
                },
                None,
            )
            .await
            .expect("endpoint added")
    }

    async fn publish(&self, event_type: &str, key: &str) -> Published {
        self.outbound()
            .publish(PublishRequest {
                tenant: &acme(),
                event_type,
                payload: PAYLOAD,
                idempotency_key: Some(key),
            })
            .await
            .expect("published")
    }

    /// An endpoint limited to `per_second` deliveries a second.
    async fn limited_endpoint(&self, url: &str, per_second: &str) -> Endpoint {
        let endpoint = self.endpoint(url, &[]).await;
        self.outbound()
            .update_endpoint(
                &acme(),
                &endpoint.id,
                EndpointChange {
                    rate_limit: Some(per_second.into()),
                    ..EndpointChange::default()
                },
            )
            .await
            .expect("updated")
    }

    /// Publish to the one endpoint there is; the key of its delivery (created by the
    /// dispatcher's first claim).
    async fn publish_to_one(&self, event_type: &str, key: &str) -> delivery::DeliveryKey {
        let published = self.publish(event_type, key).await;
        let endpoints = self.store().endpoints(&acme()).await.expect("endpoints");
        assert_eq!(endpoints.len(), 1, "one endpoint");
        delivery::DeliveryKey {
            tenant: acme(),
            message_id: published.message_id,
            endpoint_id: endpoints[0].id.clone(),
        }
    }

    /// Dispatch every pointer on the queue once, as SQS would hand them over.
    async fn dispatch_all(&self) -> Vec<Dispatched> {
        let mut outcomes = Vec::new();
        for (n, pointer) in self.queue.drain().into_iter().enumerate() {
            let message = Message {
                message_id: format!("sqs-{n}"),
                receipt_handle: Some(format!("rh-{n}")),
                body: pointer.to_json(),
                receive_count: 1,
                sent_at: None,
            };
            outcomes.push(self.d.dispatch(&message, &format!("worker/{n}")).await);
        }
        outcomes
    }

    /// Dispatch one delivery's pointer again (as SQS does after the delay).
    async fn redeliver(&self, key: &delivery::DeliveryKey) -> Dispatched {
        let message = Message {
            message_id: "again".into(),
            receipt_handle: Some("rh-again".into()),
            body: delivery::DeliveryPointer::new(key).to_json(),
            receive_count: 2,
            sent_at: None,
        };
        self.d.dispatch(&message, "worker/again").await
    }

    /// Dispatch a delivery's pointer again once it is due, as SQS brings it back after the
    /// delay its last attempt set.
    async fn redeliver_when_due(&self, key: &delivery::DeliveryKey) -> Dispatched {
        use crate::clock::Clock;
        let due = self
            .deliveries()
            .into_iter()
            .find(|d| &d.key == key)
            .and_then(|d| d.next_attempt_at);
        let now = self.clock().now();
        if let Some(wait) = due.and_then(|due| due.duration_since(now).ok()) {
            self.clock().advance(wait);
        }
        self.redeliver(key).await
    }

    async fn health(&self, endpoint: &EndpointId) -> endpoint::EndpointHealth {
        self.store()
            .endpoint(&acme(), endpoint)
            .await
            .expect("read")
            .expect("endpoint")
            .health
    }

    fn deliveries(&self) -> Vec<delivery::Delivery> {
        self.store().all_deliveries()
    }

    fn metric_count(&self, name: &str) -> usize {
        self.metrics
            .lines()
            .iter()
            .filter(|l| l.contains(&format!("\"{name}\":1")))
            .count()
    }
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(n, v)| {
            (
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_message_goes_to_every_matching_endpoint_once() {
    let w = world();
    let invoices = w.endpoint("https://a.example/hooks", &["invoice.*"]).await;
    let users = w
        .endpoint("https://b.example/hooks", &["user.created"])
        .await;
    let all = w.endpoint("https://c.example/hooks", &[]).await;

    let published = w.publish("invoice.paid", "order-1").await;

    assert_eq!(published.deliveries, 2);
    assert!(!published.duplicate);
    // One pointer per subscribed endpoint; each delivery is created by its first claim.
    let mut targets: Vec<EndpointId> = w
        .queue
        .sent()
        .into_iter()
        .filter_map(|p| p.key().map(|k| k.endpoint_id))
        .collect();
    targets.sort();
    let mut expected = vec![invoices.id.clone(), all.id.clone()];
    expected.sort();
    assert_eq!(targets, expected);
    assert!(!targets.contains(&users.id));
    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Delivered, Dispatched::Delivered]
    );
    assert_eq!(w.deliveries().len(), 2);

    // The same key and bytes again: a duplicate, and nothing goes out.
    let again = w.publish("invoice.paid", "order-1").await;
    assert!(again.duplicate);
    assert_eq!(again.deliveries, 2);
    assert!(w.queue.drain().is_empty());

    // The same key with other bytes is a conflict, and changes nothing.
    let conflict = w
        .outbound()
        .publish(PublishRequest {
            tenant: &acme(),
            event_type: "user.created",
            payload: br#"{"id":"inv_2"}"#,
            idempotency_key: Some("order-1"),
        })
        .await;
    assert!(matches!(conflict, Err(PublishError::Conflict(_))));
    assert!(w.queue.drain().is_empty());
    assert_eq!(w.deliveries().len(), 2);
    assert_eq!(w.d.transport.requests().len(), 2);
}

#[tokio::test]
async fn a_pointer_of_a_publish_that_lost_to_another_type_delivers_nothing() {
    // GIVEN two publishes of one id at once with other types: both sent pointers, one stored
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.publish("invoice.paid", "order-race").await;
    let key = delivery::DeliveryKey {
        tenant: acme(),
        message_id: ids::MessageId::parse("order-race").expect("id"),
        endpoint_id: endpoint.id,
    };
    let loser = Message {
        message_id: "loser".into(),
        receipt_handle: None,
        body: delivery::DeliveryPointer::published(
            &key,
            &ids::EventType::parse("user.created").expect("type"),
        )
        .to_json(),
        receive_count: 1,
        sent_at: None,
    };

    // WHEN the loser's pointer comes, THEN it delivers nothing; the winner's delivers once
    assert_eq!(
        w.d.dispatch(&loser, "worker/loser").await,
        Dispatched::Skipped("another message's pointer")
    );
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);
    assert_eq!(w.d.transport.requests().len(), 1);
}

#[tokio::test]
async fn bad_publishes_are_refused_with_their_reason() {
    let w = world();
    let publish = |event_type: &'static str, payload: &'static [u8], key: Option<&'static str>| {
        let outbound = w.outbound();
        async move {
            outbound
                .publish(PublishRequest {
                    tenant: &acme(),
                    event_type,
                    payload,
                    idempotency_key: key,
                })
                .await
        }
    };
    assert!(matches!(
        publish("invoice.*", b"{}", None).await,
        Err(PublishError::EventType(_))
    ));
    assert!(matches!(
        publish("invoice.paid", b"{nope", None).await,
        Err(PublishError::NotJson(_))
    ));
    assert!(matches!(
        publish("invoice.paid", b"{}", Some("a#b")).await,
        Err(PublishError::MessageId(_))
    ));
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(delivery::MAX_PAYLOAD_BYTES)
    );
    let refused = w
        .outbound()
        .publish(PublishRequest {
            tenant: &acme(),
            event_type: "invoice.paid",
            payload: big.as_bytes(),
            idempotency_key: None,
        })
        .await;
    assert_eq!(refused, Err(PublishError::TooLarge));
    assert!(w.deliveries().is_empty());
}

#[tokio::test]
async fn a_publish_whose_pointers_are_not_all_sent_stores_nothing_and_its_retry_delivers_once() {
    let w = world();
    for host in ["a", "b", "c"] {
        w.endpoint(&format!("https://{host}.example/"), &[]).await;
    }
    // GIVEN the queue refuses the pointers: the publish fails, and stores no message
    w.queue.set_unavailable(true);
    let failed = w
        .outbound()
        .publish(PublishRequest {
            tenant: &acme(),
            event_type: "invoice.paid",
            payload: PAYLOAD,
            idempotency_key: Some("order-7"),
        })
        .await;
    assert!(matches!(failed, Err(PublishError::Unavailable(_))));
    let id = ids::MessageId::parse("order-7").expect("id");
    assert_eq!(w.store().message(&acme(), &id).await, Ok(None));

    // WHEN the publisher retries with the same key, THEN every endpoint gets it once
    w.queue.set_unavailable(false);
    let published = w.publish("invoice.paid", "order-7").await;
    assert!(!published.duplicate);
    assert_eq!(published.deliveries, 3);
    assert_eq!(w.queue.sent().len(), 3, "one pointer per endpoint");
    assert_eq!(w.dispatch_all().await, vec![Dispatched::Delivered; 3]);
    assert_eq!(w.d.transport.requests().len(), 3);
}

#[tokio::test]
async fn a_pointer_whose_message_is_not_stored_waits_for_its_publish_then_is_dropped() {
    // GIVEN a pointer sent by a publish that has not stored its message (yet, or ever)
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let key = delivery::DeliveryKey {
        tenant: acme(),
        message_id: ids::MessageId::parse("order-unstored").expect("id"),
        endpoint_id: endpoint.id,
    };
    let pointer = |sent_ago: u64| Message {
        message_id: "unstored".into(),
        receipt_handle: Some("rh".into()),
        body: delivery::DeliveryPointer::published(
            &key,
            &ids::EventType::parse("invoice.paid").expect("type"),
        )
        .to_json(),
        receive_count: 1,
        sent_at: Some(UNIX_EPOCH + Duration::from_secs(NOW - sent_ago)),
    };

    // WHEN it comes while its publish may still be writing, THEN it comes back soon
    assert!(matches!(
        w.d.dispatch(&pointer(1), "worker/1").await,
        Dispatched::Later(_)
    ));
    // WHEN it is older than any publish takes, THEN it is dropped: nothing was accepted
    assert_eq!(
        w.d.dispatch(&pointer(20 * 60), "worker/2").await,
        Dispatched::Skipped("no such message")
    );
    assert!(w.d.transport.requests().is_empty());
    assert!(w.deliveries().is_empty());
}

#[tokio::test]
async fn reconcile_finishes_a_fan_out_stored_unfinished_before_pointers_went_first() {
    // GIVEN a message stored the way publishes stored them before: unfinished, no delivery
    let w = world();
    w.endpoint("https://a.example/", &[]).await;
    let message = delivery::OutboundMessage {
        payload_location: None,
        tenant: acme(),
        id: ids::MessageId::parse("order-8").expect("id"),
        event_type: ids::EventType::parse("invoice.paid").expect("type"),
        payload: b"{}".to_vec(),
        created_at: UNIX_EPOCH + Duration::from_secs(NOW),
        fanned_out: false,
        trace: None,
        erased: None,
    };
    w.store()
        .put_message(&message, UNIX_EPOCH + Duration::from_secs(NOW + 86_400))
        .await
        .expect("stored");
    w.clock()
        .advance(recovery::FAN_OUT_GRACE + Duration::from_secs(1));

    let report = w.outbound().reconcile(100).await.expect("reconcile");

    assert_eq!(report.fan_outs_finished, 1);
    assert_eq!(w.queue.sent().len(), 1);
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);
}

#[tokio::test]
async fn deliveries_are_signed_so_the_standard_webhooks_scheme_verifies_both_secrets() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let old = endpoint.secrets.clone().expect("secret").current;
    let rotated = w
        .outbound()
        .rotate_secret(&acme(), &endpoint.id, None)
        .await
        .expect("rotated");
    let new = rotated.secrets.clone().expect("secrets").current;
    let published = w.publish("invoice.paid", "order-2").await;

    let outcomes = w.dispatch_all().await;

    assert_eq!(outcomes, [Dispatched::Delivered]);
    let request = w.d.transport.requests().pop().expect("a request");
    let map = headers(&request.headers);
    assert_eq!(map["webhook-id"], published.message_id.as_str());
    for secret in [old, new] {
        Verifier::new(Scheme::StandardWebhooks)
            .verify(
                &request.body,
                &map,
                &SecretSet::single(secret),
                UNIX_EPOCH + Duration::from_secs(NOW),
            )
            .expect("verifies with either secret");
    }
    let delivered = &w.deliveries()[0];
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 1);
    let attempts = w.store().all_attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(200));
    assert_eq!(w.metric_count(names::DELIVERED), 1);
}

#[tokio::test]
async fn a_2xx_survives_finishing_writes_that_fail_for_a_moment() {
    // GIVEN a delivery whose finishing write is refused twice (throttled, a conflict)
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    w.publish("invoice.paid", "order-finish").await;
    w.store().fail_finishes(2);

    // WHEN it is dispatched, THEN the third try records it: delivered, posted once
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);
    assert_eq!(w.d.transport.requests().len(), 1);
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Delivered);
    assert_eq!(w.store().all_attempts().len(), 1);
}

#[tokio::test]
async fn a_2xx_that_cannot_be_recorded_is_noted_and_never_posted_again() {
    // GIVEN a delivery whose finishing write fails every time this attempt
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let key = w.publish_to_one("invoice.paid", "order-noted").await;
    w.store().fail_finishes(3);

    // WHEN it is dispatched, THEN the message comes back, with the partner's answer noted
    assert!(matches!(
        w.dispatch_all().await.as_slice(),
        [Dispatched::Later(_)]
    ));
    let noted = &w.deliveries()[0];
    assert_eq!(noted.status, DeliveryStatus::Sending);
    assert_eq!(noted.answered.map(|a| a.status), Some(200));

    // WHEN the message comes back after the lease, THEN the delivery is finished from the
    // note: delivered, logged once, and the partner was posted to once only
    w.clock()
        .advance(OutboundSettings::default().lease + Duration::from_secs(1));
    assert_eq!(w.redeliver(&key).await, Dispatched::Delivered);
    assert_eq!(w.d.transport.requests().len(), 1);
    let delivered = &w.deliveries()[0];
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.answered, None);
    let attempts = w.store().all_attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(200));
    let health = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint")
        .health;
    assert!(health.last_success_at.is_some());
}

#[tokio::test]
async fn a_health_update_failing_after_a_2xx_never_sends_it_again() {
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    w.publish("invoice.paid", "order-health").await;
    w.store().fail_successes(1);

    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);

    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Delivered);
    assert_eq!(w.d.transport.requests().len(), 1);
}

#[tokio::test]
async fn an_expired_message_is_dead_without_an_attempt_or_a_mark_against_the_endpoint() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    // GIVEN a delivery waiting for its retry when its message expires
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-gone").await;
    w.dispatch_all().await;
    w.store()
        .reset_health(&acme(), &endpoint.id)
        .await
        .expect("reset");
    w.store().forget_message(&acme(), &key.message_id);

    // WHEN its pointer comes back, THEN it is dead: no attempt, nothing against the endpoint
    assert_eq!(w.redeliver_when_due(&key).await, Dispatched::Dead);

    assert_eq!(w.d.transport.requests().len(), 1, "only the first attempt");
    assert_eq!(w.store().all_attempts().len(), 1);
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Dead);
    assert_eq!(w.queue.dead_letters().len(), 1);
    assert_eq!(w.health(&endpoint.id).await.consecutive_failures, 0);
    assert_eq!(w.metric_count(names::DELIVERY_DEAD), 1);
}

#[tokio::test]
async fn a_store_that_refuses_a_delivery_for_good_sends_it_to_the_dlq_not_round_again() {
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    w.publish("invoice.paid", "order-refused").await;
    w.store().set_refusing(true);

    assert_eq!(w.dispatch_all().await, [Dispatched::Dead]);

    assert!(w.d.transport.requests().is_empty());
    assert_eq!(w.queue.dead_letters().len(), 1);
    assert!(w.queue.delays().is_empty(), "not sent round again");
}

/// GIVEN in `w` one published message to an endpoint that fails its first attempt, then
/// answers 200.
async fn failing_once(w: World, key: &str) -> (World, delivery::DeliveryKey) {
    w.endpoint("https://a.example/in", &[]).await;
    w.d.transport.script(
        "https://a.example/in",
        vec![
            ScriptedTransport::status(500),
            ScriptedTransport::status(200),
        ],
    );
    let delivery = w.publish_to_one("invoice.paid", key).await;
    (w, delivery)
}

#[tokio::test]
async fn an_early_pointer_makes_no_early_attempt() {
    // GIVEN a delivery whose first attempt failed: the next is due in 5 s
    let (w, key) = failing_once(world(), "order-early").await;
    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Retry(Duration::from_secs(5))]
    );

    // WHEN an extra pointer (reconcile, a resend) comes before then, THEN no attempt: it goes
    // away until the delivery is due
    assert_eq!(
        w.redeliver(&key).await,
        Dispatched::Later(Duration::from_secs(5))
    );
    assert_eq!(w.d.transport.requests().len(), 1);
    assert_eq!(w.deliveries()[0].attempts, 1);

    // WHEN it is due, THEN the attempt is made
    w.clock().advance(Duration::from_secs(5));
    assert_eq!(w.redeliver(&key).await, Dispatched::Delivered);
    assert_eq!(w.d.transport.requests().len(), 2);
}

#[tokio::test]
async fn a_wait_longer_than_sqs_hides_a_message_is_chained() {
    // GIVEN a schedule whose second attempt waits the full 12 hours
    let settings = OutboundSettings {
        schedule: "0,43200".parse().expect("schedule"),
        ..OutboundSettings::default()
    };
    let (w, key) = failing_once(world_with(settings), "order-long").await;

    // WHEN it fails, THEN its message is hidden no longer than SQS allows from its receive
    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Retry(Duration::from_secs(43_200))]
    );
    let hidden = w.queue.delays().last().expect("a delay").1;
    assert!(hidden < Duration::from_secs(43_200), "{hidden:?}");

    // WHEN it comes back that early, THEN it is hidden again for the rest, and the attempt
    // is made when due
    w.clock().advance(hidden);
    assert_eq!(
        w.redeliver(&key).await,
        Dispatched::Later(Duration::from_secs(43_200) - hidden)
    );
    assert_eq!(w.d.transport.requests().len(), 1);
    w.clock().advance(Duration::from_secs(43_200) - hidden);
    assert_eq!(w.redeliver(&key).await, Dispatched::Delivered);
}

#[tokio::test]
async fn failures_follow_the_schedule_then_go_dead_to_the_dlq() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-3").await;

    let first = w.dispatch_all().await;
    let mut delays = vec![first[0].clone()];
    let schedule = default_schedule();
    for _ in 1..schedule.max_attempts() {
        // The health rules would pause the endpoint; this test is about the schedule alone.
        w.store()
            .reset_health(&acme(), &endpoint.id)
            .await
            .expect("reset");
        delays.push(w.redeliver_when_due(&key).await);
    }

    let expected: Vec<Dispatched> = DEFAULT_DELIVERY_SCHEDULE[1..]
        .iter()
        .map(|secs| Dispatched::Retry(Duration::from_secs(*secs)))
        .chain([Dispatched::Dead])
        .collect();
    assert_eq!(delays, expected);
    let dead = &w.deliveries()[0];
    assert_eq!(dead.status, DeliveryStatus::Dead);
    assert_eq!(dead.attempts, schedule.max_attempts());
    assert_eq!(w.queue.dead_letters().len(), 1);
    assert_eq!(w.store().all_attempts().len(), 8);
    assert_eq!(w.metric_count(names::DELIVERY_DEAD), 1);
    // A dead delivery's pointer coming back changes nothing.
    assert_eq!(
        w.redeliver(&key).await,
        Dispatched::Skipped("final already")
    );
}

#[tokio::test]
async fn retry_after_is_honoured_but_never_past_the_schedule() {
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    let busy = |secs| Exchange {
        retry_after: Some(Duration::from_secs(secs)),
        ..ScriptedTransport::status(429)
    };
    w.d.transport
        .script("https://a.example/in", vec![busy(2), busy(3_600)]);
    let key = w.publish_to_one("invoice.paid", "order-4").await;

    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Retry(Duration::from_secs(2))]
    );
    // 3600 s asked, but the schedule's next step is 300 s.
    assert_eq!(
        w.redeliver_when_due(&key).await,
        Dispatched::Retry(Duration::from_secs(300))
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_holds_its_deliveries_until_enabled() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(410)]);
    w.publish("invoice.paid", "order-5").await;
    assert_eq!(w.dispatch_all().await, [Dispatched::Held]);
    let stored = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert_eq!(stored.disabled(), Some(DisabledReason::Gone));
    assert_eq!(w.metric_count(names::ENDPOINT_DISABLED), 1);

    // Published while disabled: held at once, never discarded.
    w.clock().advance(Duration::from_secs(1));
    w.publish("invoice.sent", "order-6").await;
    assert!(w.queue.drain().is_empty());
    assert!(
        w.deliveries()
            .iter()
            .all(|d| d.status == DeliveryStatus::Held)
    );

    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(204)]);
    w.outbound()
        .set_enabled(&acme(), &endpoint.id, true)
        .await
        .expect("enabled");
    let released: Vec<String> = w
        .queue
        .sent()
        .iter()
        .map(|p| p.message_id.clone())
        .collect();
    assert_eq!(released, ["order-5", "order-6"], "in order of creation");
    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Delivered, Dispatched::Delivered]
    );
}

#[tokio::test]
async fn failures_in_flight_together_open_one_short_pause_and_the_next_doubles_it() {
    // GIVEN twenty deliveries out at once to an endpoint that starts failing (a blip)
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(503)]);
    for n in 0..20 {
        w.publish("invoice.paid", &format!("blip-{n}")).await;
    }
    let batch: Vec<Message> = w
        .queue
        .drain()
        .into_iter()
        .enumerate()
        .map(|(n, pointer)| Message {
            message_id: format!("sqs-{n}"),
            receipt_handle: Some(format!("rh-{n}")),
            body: pointer.to_json(),
            receive_count: 1,
            sent_at: None,
        })
        .collect();

    // WHEN they all fail
    w.d.dispatch_batch(&batch, "worker").await;

    // THEN one pause opened, of the first length, however many failed in flight
    let blip = w.health(&endpoint.id).await;
    assert!(blip.consecutive_failures >= 10, "{blip:?}");
    assert_eq!(blip.pauses, 1);
    assert_eq!(
        blip.paused_until,
        Some(w.clock_now() + OutboundSettings::default().pause)
    );
    assert_eq!(w.metric_count(names::ENDPOINT_PAUSED), 1);

    // WHEN the probe after it fails too, THEN the next pause is twice as long
    w.clock().advance(OutboundSettings::default().pause);
    w.outbound().reconcile(100).await.expect("reconcile");
    let probes = w.queue.drain();
    w.queue.enqueue_all(probes).await;
    w.dispatch_all().await;
    let again = w.health(&endpoint.id).await;
    assert_eq!(again.pauses, 2);
    assert_eq!(
        again.paused_until,
        Some(w.clock_now() + OutboundSettings::default().pause * 2)
    );
}

#[tokio::test]
async fn a_releaser_racing_another_never_leaves_held_deliveries_without_their_mark() {
    // GIVEN five deliveries held while their endpoint was paused, the pause now over
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let pause = Duration::from_secs(60);
    w.store()
        .pause(&acme(), &endpoint.id, w.clock_now() + pause, w.clock_now())
        .await
        .expect("paused");
    for n in 0..5 {
        w.publish("invoice.paid", &format!("held-{n}")).await;
    }
    w.clock().advance(pause);

    // WHEN a releaser of three finds two of its page released by another meanwhile
    w.store().race_next_held(2);
    let released = w
        .outbound()
        .release_held(&acme(), &endpoint.id, 3)
        .await
        .expect("released");

    // THEN its short list does not make it clear the endpoint's mark: the two still held are
    // found by the next reconcile
    assert_eq!(released, 1);
    let held = || {
        w.deliveries()
            .into_iter()
            .filter(|d| d.status == DeliveryStatus::Held)
            .count()
    };
    assert_eq!(held(), 2);
    let report = w.outbound().reconcile(10).await.expect("reconcile");
    assert_eq!(report.held_released, 2, "{report:?}");
    assert_eq!(held(), 0);
}

#[tokio::test]
async fn disabled_endpoints_holding_deliveries_never_hide_a_recovered_one() {
    // GIVEN more disabled endpoints holding deliveries than one reconcile acts on
    let w = world();
    for n in 0..12 {
        let idle = w.endpoint(&format!("https://b.example/{n}"), &[]).await;
        w.outbound()
            .set_enabled(&acme(), &idle.id, false)
            .await
            .expect("disabled");
        w.store()
            .mark_holding(&acme(), &idle.id, w.clock_now())
            .await
            .expect("holding");
    }
    // AND, listed after them, one endpoint that held a delivery while paused, its pause over
    w.clock().advance(Duration::from_secs(1));
    let recovered = w.endpoint("https://c.example/in", &[]).await;
    let pause = Duration::from_secs(60);
    w.store()
        .pause(&acme(), &recovered.id, w.clock_now() + pause, w.clock_now())
        .await
        .expect("paused");
    w.publish("invoice.paid", "behind-the-idle").await;
    let held = w
        .deliveries()
        .into_iter()
        .filter(|d| d.key.endpoint_id == recovered.id && d.status == DeliveryStatus::Held)
        .count();
    assert_eq!(held, 1);
    w.clock().advance(pause);

    // WHEN reconcile acts on at most 5 endpoints
    let report = w.outbound().reconcile(5).await.expect("reconcile");

    // THEN it passed over the disabled ones and released the recovered endpoint's delivery
    assert_eq!(report.held_released, 1, "{report:?}");
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit_and_a_probe_closes_it() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(503)]);
    for n in 0..5 {
        w.publish("invoice.paid", &format!("fail-{n}")).await;
    }
    w.dispatch_all().await;
    let paused = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("e");
    assert!(paused.is_paused(w.clock_now()));
    assert_eq!(w.metric_count(names::ENDPOINT_PAUSED), 1);

    // While paused, new deliveries are held at once, not attempted.
    w.publish("invoice.paid", "while-paused").await;
    assert!(w.queue.drain().is_empty());
    let held = w
        .deliveries()
        .into_iter()
        .filter(|d| d.status == DeliveryStatus::Held)
        .count();
    assert_eq!(held, 1);
    let attempts_before = w.store().all_attempts().len();

    // After the pause, reconcile sends one probe; it succeeds and the rest follow in order.
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(200)]);
    w.clock().advance(Duration::from_secs(61));
    let report = w.outbound().reconcile(100).await.expect("reconcile");
    assert_eq!(report.probes_sent, 1);
    let probe = w.queue.drain();
    assert!(probe[0].probe);
    w.queue.enqueue_all(probe).await;
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);
    assert_eq!(w.store().all_attempts().len(), attempts_before + 1);
    let healthy = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("e");
    assert_eq!(healthy.health.consecutive_failures, 0);
    assert!(w.queue.sent().is_empty() || w.queue.sent().iter().all(|p| !p.probe));
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-9").await;
    w.dispatch_all().await;
    w.clock().advance(w.outbound().settings.disable_after);

    assert_eq!(w.redeliver(&key).await, Dispatched::Held);

    let disabled = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("e");
    assert_eq!(disabled.disabled(), Some(DisabledReason::Failing));
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Held);
}

#[tokio::test]
async fn a_rate_limited_backlog_reserves_slots_and_waits_in_line_without_spending_attempts() {
    // GIVEN five messages at once to an endpoint limited to two a second
    let w = world();
    w.limited_endpoint("https://a.example/in", "2").await;
    for n in 1..=5 {
        w.publish("invoice.paid", &format!("r-{n}")).await;
    }

    // WHEN they are dispatched
    let outcomes = w.dispatch_all().await;

    // THEN a second's worth goes now; each other one reserves the next free slot (half a
    // second apart) and a copy of its pointer carrying it comes back then, unattempted
    let secs = Duration::from_secs;
    assert_eq!(
        outcomes,
        [
            Dispatched::Delivered,
            Dispatched::Delivered,
            Dispatched::SentAgain(secs(1)),
            Dispatched::SentAgain(secs(2)),
            Dispatched::SentAgain(secs(2)),
        ]
    );
    assert_eq!(w.d.transport.requests().len(), 2);
    assert_eq!(
        w.deliveries().len(),
        2,
        "the others' deliveries not even created"
    );
    let reserved = w.queue.sent();
    let slots: Vec<Option<i64>> = reserved.iter().map(|p| p.slot).collect();
    let at = |millis: u64| Some(i64::try_from(NOW * 1000 + millis).expect("time"));
    assert_eq!(slots, [at(1000), at(1500), at(2000)]);

    // WHEN one comes back before its slot, THEN it waits for it without reserving again
    let early = w.dispatch_all().await;
    assert_eq!(early[0], Dispatched::Later(secs(1)));

    // WHEN they come back at their slots, THEN they go without reserving again: a message
    // published then finds the next free slot right after theirs, not behind another three
    w.clock().advance(secs(2));
    w.queue.enqueue_all(reserved).await;
    w.publish("invoice.paid", "r-6").await;
    assert_eq!(
        w.dispatch_all().await,
        vec![Dispatched::Delivered; 4],
        "r-6's slot is 2.5 s: within the second to come"
    );
    assert_eq!(w.d.transport.requests().len(), 6);
}

#[tokio::test]
async fn a_rate_limit_slot_admits_one_attempt_and_a_retry_reserves_its_own() {
    // GIVEN a pointer holding its slot, to an endpoint that fails
    let w = world();
    w.limited_endpoint("https://a.example/in", "1").await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "r-1").await;
    w.queue.drain();
    let reserved = delivery::DeliveryPointer {
        slot: Some(i64::try_from(NOW).expect("time") * 1000),
        ..delivery::DeliveryPointer::new(&key)
    };
    w.queue.enqueue_all(vec![reserved]).await;

    // WHEN it is attempted and fails
    let outcome = w.dispatch_all().await;

    // THEN the retry is a fresh pointer without the slot, sent to come back on the schedule
    assert!(
        matches!(outcome[..], [Dispatched::SentAgain(_)]),
        "{outcome:?}"
    );
    let retry = w.queue.drain();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].slot, None);
    assert_eq!(retry[0].key(), Some(key));
    assert_eq!(w.deliveries()[0].attempts, 1);
}

#[tokio::test]
async fn resend_recover_and_redrive_start_dead_deliveries_over() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-10").await;
    w.dispatch_all().await;
    for _ in 1..8 {
        w.store()
            .reset_health(&acme(), &endpoint.id)
            .await
            .expect("reset");
        w.redeliver_when_due(&key).await;
    }
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Dead);

    // Recover: a dry run changes nothing; the real one starts over with a fresh schedule.
    let since = UNIX_EPOCH + Duration::from_secs(NOW - 60);
    let dry = w
        .outbound()
        .recover_failed(&acme(), &endpoint.id, since, true)
        .await
        .expect("dry");
    assert_eq!((dry.matched, dry.requeued), (1, 1));
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Dead);
    let done = w
        .outbound()
        .recover_failed(&acme(), &endpoint.id, since, false)
        .await
        .expect("run");
    assert_eq!(done.requeued, 1);
    let pending = &w.deliveries()[0];
    assert_eq!(
        (pending.status, pending.attempts),
        (DeliveryStatus::Pending, 0)
    );

    // Resend of a delivered message starts it over too.
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(200)]);
    w.dispatch_all().await;
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Delivered);
    let resent = w
        .outbound()
        .resend(&acme(), &key.message_id, None, false)
        .await
        .expect("resend");
    assert_eq!(resent.requeued, 1);
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);

    // The DLQ copy of the first death: its delivery moved on, so redrive only deletes it.
    let dlq = MemoryDeadLetterQueue::new();
    for pointer in w.queue.dead_letters() {
        dlq.push(pointer.to_json());
    }
    let redriven = w
        .outbound()
        .redrive_dead_letters(&dlq, 10, false)
        .await
        .expect("redrive");
    assert_eq!(
        (redriven.matched, redriven.requeued, redriven.skipped),
        (1, 0, 1)
    );
    assert!(dlq.visible().is_empty());
}

#[tokio::test]
async fn the_ssrf_guard_refuses_internal_urls_at_registration_and_at_send() {
    let w = world();
    for url in [
        "https://metadata.example/latest",
        "https://local.example/",
        "https://169.254.169.254/",
        "http://a.example/",
    ] {
        let refused = w
            .outbound()
            .add_endpoint(
                &acme(),
                EndpointChange {
                    url: Some(url.into()),
                    ..EndpointChange::default()
                },
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(AdminError::Url(_))),
            "{url}: {refused:?}"
        );
    }
    assert!(w.store().endpoints(&acme()).await.expect("list").is_empty());
    let _ = EgressPolicy::PUBLIC;
}

#[tokio::test]
async fn bad_endpoint_changes_are_refused_and_concurrent_edits_conflict() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let bad_filter = w
        .outbound()
        .update_endpoint(
            &acme(),
            &endpoint.id,
            EndpointChange {
                filter: Some(vec!["invoice.*.paid".into()]),
                ..EndpointChange::default()
            },
        )
        .await;
    assert!(matches!(bad_filter, Err(AdminError::Filter(_))));
    let unknown = EndpointId::parse("ep_missing").expect("id");
    assert!(matches!(
        w.outbound().set_enabled(&acme(), &unknown, false).await,
        Err(AdminError::UnknownEndpoint(_))
    ));

    // Two operators read version 1; the second write finds version 2 and changes nothing.
    let read = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("e");
    let mut first = read.clone();
    first.description = "first".into();
    w.store().put_endpoint(&first).await.expect("first write");
    let mut second = read;
    second.description = "second".into();
    assert!(matches!(
        w.store().put_endpoint(&second).await,
        Err(crate::ports::StoreError::Conflict(_))
    ));
    let stored = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("e");
    assert_eq!(stored.description, "first");
}

#[tokio::test]
async fn a_test_event_goes_out_at_once_and_is_logged() {
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport.script(
        "https://a.example/in",
        vec![Exchange {
            body: "thanks".into(),
            ..ScriptedTransport::status(202)
        }],
    );

    let attempt =
        w.d.test_endpoint(&acme(), &endpoint.id, None, None)
            .await
            .expect("sent")
            .expect("endpoint exists");

    assert_eq!(attempt.status, Some(202));
    assert_eq!(attempt.response_body, "thanks");
    let body: serde_json::Value =
        serde_json::from_slice(&w.d.transport.requests()[0].body).expect("json");
    assert_eq!(body["type"], "webhook.test");
    let logged = w
        .store()
        .attempts_of_endpoint(&acme(), &endpoint.id, 10, None)
        .await
        .expect("log");
    assert_eq!(logged.items, [attempt]);
    assert!(w.deliveries().is_empty(), "a test is not a delivery");
}

#[tokio::test]
async fn a_network_failure_is_an_attempt_with_its_class() {
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    w.d.transport.script(
        "https://a.example/in",
        vec![Exchange {
            status: None,
            retry_after: None,
            body: String::new(),
            latency: Duration::from_secs(15),
            error: Some((ErrorClass::Timeout, "no answer within 15 s".into())),
        }],
    );
    w.publish("invoice.paid", "order-11").await;

    assert_eq!(
        w.dispatch_all().await,
        [Dispatched::Retry(Duration::from_secs(5))]
    );
    let attempt = &w.store().all_attempts()[0];
    assert_eq!(attempt.error_class, Some(ErrorClass::Timeout));
    assert_eq!(
        w.deliveries()[0].last_error.as_deref(),
        Some("no answer within 15 s")
    );
}

impl World {
    fn clock_now(&self) -> SystemTime {
        crate::clock::Clock::now(self.clock())
    }
}

impl MemoryDeliveryQueue {
    async fn enqueue_all(&self, pointers: Vec<delivery::DeliveryPointer>) {
        for pointer in pointers {
            ports::DeliveryQueue::enqueue(self, &pointer)
                .await
                .expect("enqueued");
        }
    }
}

#[test]
fn pauses_double_per_pause_and_are_capped() {
    let settings = OutboundSettings::default();
    assert_eq!(settings.pause_for(0), Duration::from_secs(60));
    assert_eq!(settings.pause_for(1), Duration::from_secs(120));
    assert_eq!(settings.pause_for(100), settings.max_pause);
    let _ = Secret::new("x");
}

#[tokio::test]
async fn deleting_an_endpoint_cancels_every_delivery_it_held_past_one_page() {
    // GIVEN an endpoint switched off while 501 messages were published to it: all held
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.outbound()
        .set_enabled(&acme(), &endpoint.id, false)
        .await
        .expect("disabled");
    for n in 0..501 {
        w.publish("invoice.paid", &format!("held-{n}")).await;
    }
    assert_eq!(w.deliveries().len(), 501);

    // WHEN it is deleted
    w.outbound()
        .delete_endpoint(&acme(), &endpoint.id)
        .await
        .expect("deleted");

    // THEN none is left held: nothing would ever find them
    assert!(
        w.deliveries()
            .iter()
            .all(|d| d.status == DeliveryStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_dlq_copy_that_fails_after_the_last_attempt_is_made_later_without_posting_again() {
    // GIVEN a delivery on its last attempt (two in all) to an endpoint that fails
    let w = world_with(OutboundSettings {
        schedule: "0,0".parse().expect("schedule"),
        ..OutboundSettings::default()
    });
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-spent").await;
    w.dispatch_all().await;
    w.store()
        .reset_health(&acme(), &endpoint.id)
        .await
        .expect("reset");

    // WHEN the last attempt fails while the DLQ refuses its copy, THEN it comes back soon
    w.queue.set_unavailable(true);
    assert!(matches!(
        w.redeliver_when_due(&key).await,
        Dispatched::Retry(_)
    ));
    assert_eq!(w.d.transport.requests().len(), 2);
    assert!(w.queue.dead_letters().is_empty());

    // WHEN it comes back with the DLQ answering, THEN it is copied and dead, not posted again
    w.queue.set_unavailable(false);
    assert_eq!(w.redeliver_when_due(&key).await, Dispatched::Dead);
    assert_eq!(w.d.transport.requests().len(), 2, "no third POST");
    assert_eq!(w.queue.dead_letters().len(), 1);
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Dead);
    assert_eq!(w.store().all_attempts().len(), 2);
}

#[tokio::test]
async fn a_pointer_near_the_queues_limits_is_sent_again_fresh_instead_of_coming_back() {
    // GIVEN a pointer to a rate-limited endpoint, its reserved slot a second away
    let w = world();
    w.limited_endpoint("https://a.example/in", "1").await;
    w.publish("invoice.paid", "first").await;
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);
    let key = w.publish_to_one("invoice.paid", "limited").await;
    w.queue.drain();
    let reserved = delivery::DeliveryPointer {
        slot: Some(i64::try_from(NOW + 1).expect("time") * 1000),
        ..delivery::DeliveryPointer::new(&key)
    };
    let pointer = |receive_count: u32, sent_ago: u64| Message {
        message_id: "limited".into(),
        receipt_handle: Some("rh".into()),
        body: reserved.to_json(),
        receive_count,
        sent_at: Some(UNIX_EPOCH + Duration::from_secs(NOW - sent_ago)),
    };

    // WHEN it comes early in its life, THEN it comes back on the queue as usual
    assert_eq!(
        w.d.dispatch(&pointer(3, 60), "worker/1").await,
        Dispatched::Later(Duration::from_secs(1))
    );
    assert!(w.queue.sent().is_empty());
    // WHEN it is on its last receives, or a day old, THEN a fresh copy goes on the queue and
    // this one is let go: no false dead letter, nothing dropped by the queue's retention
    for (receives, age) in [(99, 60), (5, 25 * 3600)] {
        assert_eq!(
            w.d.dispatch(&pointer(receives, age), "worker/2").await,
            Dispatched::SentAgain(Duration::from_secs(1))
        );
        assert!(!Dispatched::SentAgain(Duration::ZERO).is_failure());
    }
    assert_eq!(w.queue.drain().len(), 2);
    assert_eq!(w.d.transport.requests().len(), 1);
}

#[tokio::test]
async fn a_message_published_while_older_ones_are_held_goes_out_after_them() {
    // GIVEN an endpoint paused by its circuit while two messages were published: both held
    use crate::clock::Clock;
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let now = w.clock().now();
    w.store()
        .pause(&acme(), &endpoint.id, now + Duration::from_secs(60), now)
        .await
        .expect("paused");
    for key in ["older-1", "older-2"] {
        w.publish("invoice.paid", key).await;
        w.clock().advance(Duration::from_secs(1));
    }
    assert!(w.queue.drain().is_empty());

    // WHEN the pause is over and a third is published before the held ones are released
    w.clock().advance(Duration::from_secs(120));
    w.publish("invoice.paid", "newer").await;

    // THEN it is held behind them, and all three are released in order of creation
    assert!(w.queue.drain().is_empty(), "not ahead of the held ones");
    w.outbound()
        .release_held(&acme(), &endpoint.id, 100)
        .await
        .expect("released");
    let released: Vec<String> = w.queue.drain().into_iter().map(|p| p.message_id).collect();
    assert_eq!(released, ["older-1", "older-2", "newer"]);
    assert!(
        !w.health(&endpoint.id).await.holding,
        "none left: the mark is gone"
    );
}

#[tokio::test]
async fn a_delivery_that_waits_keeps_its_message_as_long() {
    use crate::clock::Clock;
    // GIVEN a retry due in the message's second half of life (a day's retention, 10 h steps)
    let retention = Duration::from_secs(86_400);
    let w = world_with(OutboundSettings {
        schedule: "0,36000,36000".parse().expect("schedule"),
        retention,
        ..OutboundSettings::default()
    });
    w.endpoint("https://a.example/in", &[]).await;
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-late").await;
    let published_at = w.clock().now();

    // WHEN its first attempt fails, THEN nothing: the retry is due in the first half
    w.dispatch_all().await;
    assert_eq!(w.store().kept_until(&acme(), &key.message_id), None);
    // WHEN its second fails too, THEN the message is kept a retention past the third
    w.redeliver_when_due(&key).await;
    let due = published_at + Duration::from_secs(72_000);
    assert_eq!(
        w.store().kept_until(&acme(), &key.message_id),
        Some(due + retention)
    );
}

#[tokio::test]
async fn a_delivery_held_by_the_dispatcher_keeps_its_message_a_retention_from_then() {
    use crate::clock::Clock;
    // GIVEN a message published to an endpoint switched off before its pointer is taken
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let key = w.publish_to_one("invoice.paid", "order-held").await;
    w.clock().advance(Duration::from_secs(3_600));
    w.outbound()
        .set_enabled(&acme(), &endpoint.id, false)
        .await
        .expect("disabled");

    // WHEN the dispatcher holds it, THEN its message is kept a retention from the hold
    assert_eq!(w.dispatch_all().await, [Dispatched::Held]);
    assert_eq!(
        w.store().kept_until(&acme(), &key.message_id),
        Some(w.clock().now() + OutboundSettings::default().retention)
    );
}

#[tokio::test]
async fn a_slow_endpoint_goes_to_the_slow_lane_and_back_when_it_answers_fast() {
    use crate::outbound::dispatch::SlowLane;
    // GIVEN a main-lane dispatcher with a slow lane, and an endpoint that answers in 6 s
    let mut w = world();
    let slow_queue = Arc::new(MemoryDeliveryQueue::new());
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    let slowly = Exchange {
        latency: Duration::from_secs(6),
        ..ScriptedTransport::status(200)
    };
    w.d.transport.script(
        "https://a.example/in",
        vec![slowly, ScriptedTransport::status(200)],
    );
    let lane = SlowLane::new(slow_queue.clone());
    w.d.slow_lane = Some(lane.clone());

    // WHEN its first delivery takes 6 s, THEN it is delivered and the endpoint marked slow
    w.publish("invoice.paid", "first").await;
    let first = w.queue.drain().remove(0);
    assert_eq!(
        w.d.dispatch(&as_message(&first), "main/1").await,
        Dispatched::Delivered
    );
    let marked = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert!(marked.health.slow_since.is_some());

    // WHEN the next comes to the main lane, THEN it goes to the slow lane unattempted
    w.publish("invoice.paid", "second").await;
    let second = w.queue.drain().remove(0);
    assert_eq!(
        w.d.dispatch(&as_message(&second), "main/2").await,
        Dispatched::Diverted
    );
    assert!(!Dispatched::Diverted.is_failure());
    assert_eq!(w.d.transport.requests().len(), 1);
    let diverted = slow_queue.drain();
    assert_eq!(diverted, [second]);

    // WHEN the slow lane (a dispatcher without one) delivers it fast, THEN the mark is cleared
    w.d.slow_lane = None;
    assert_eq!(
        w.d.dispatch(&as_message(&diverted[0]), "slow/1").await,
        Dispatched::Delivered
    );
    let recovered = w
        .store()
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert_eq!(recovered.health.slow_since, None);
    w.d.slow_lane = Some(lane);
    w.publish("invoice.paid", "third").await;
    let third = w.queue.drain().remove(0);
    assert_eq!(
        w.d.dispatch(&as_message(&third), "main/3").await,
        Dispatched::Delivered
    );
    assert!(slow_queue.sent().is_empty(), "back on the main lane");
}

fn as_message(pointer: &delivery::DeliveryPointer) -> Message {
    Message {
        message_id: format!("sqs-{}", pointer.message_id),
        receipt_handle: Some(format!("rh-{}", pointer.message_id)),
        body: pointer.to_json(),
        receive_count: 1,
        sent_at: None,
    }
}

#[tokio::test]
async fn a_publish_to_a_tenant_with_no_endpoint_and_no_policy_is_refused_and_keeps_nothing() {
    let w = world();
    let request = |tenant| PublishRequest {
        tenant,
        event_type: "invoice.paid",
        payload: PAYLOAD,
        idempotency_key: Some("typo-1"),
    };
    let typo = TenantId::parse("acmee").expect("tenant");

    let refused = w.outbound().publish(request(&typo)).await;

    assert_eq!(refused, Err(PublishError::UnknownTenant(typo.clone())));
    assert!(refused.as_ref().is_err_and(PublishError::is_client_error));
    assert!(w.queue.sent().is_empty());
    assert!(w.store().all_messages().is_empty());

    // A tenant with a policy (and no endpoint yet) exists: its message is kept, for no one.
    w.store()
        .put_tenant_policy(&typo, &TenantPolicy::default())
        .await
        .expect("policy");
    let kept = w
        .outbound()
        .publish(request(&typo))
        .await
        .expect("published");
    assert_eq!(kept.deliveries, 0);
}

#[tokio::test]
async fn an_attempt_is_recorded_without_the_urls_query_string_and_posted_with_it() {
    let w = world();
    w.endpoint("https://a.example/in?token=s3cret", &[]).await;
    w.publish("invoice.paid", "q-1").await;

    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);

    let posted = w.d.transport.requests();
    assert!(
        posted[0].url.as_str().contains("token=s3cret"),
        "the partner's own URL"
    );
    let attempts = w.store().all_attempts();
    assert_eq!(attempts[0].url, "https://a.example/in?…");
}

#[tokio::test]
async fn a_tenant_has_at_most_its_limit_of_endpoints() {
    let w = world_with(OutboundSettings {
        max_endpoints: 2,
        ..OutboundSettings::default()
    });
    w.endpoint("https://a.example/1", &[]).await;
    w.endpoint("https://a.example/2", &[]).await;

    let refused = w
        .outbound()
        .add_endpoint(
            &acme(),
            EndpointChange {
                url: Some("https://a.example/3".into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await;

    assert_eq!(
        refused.as_ref().err(),
        Some(&AdminError::TooManyEndpoints(2))
    );
    assert!(refused.is_err_and(|e| e.is_client_error()));
    assert_eq!(w.store().endpoints(&acme()).await.expect("read").len(), 2);
    // Another tenant has its own allowance.
    let globex = TenantId::parse("globex").expect("tenant");
    w.outbound()
        .add_endpoint(
            &globex,
            EndpointChange {
                url: Some("https://a.example/g".into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("globex's first");
}

#[tokio::test]
async fn each_attempt_continues_the_publish_s_trace_in_a_traceparent_header() {
    // GIVEN a message published as a span of the caller's trace
    let w = world();
    w.endpoint("https://a.example/in", &[]).await;
    let caller: crate::trace::TraceParent =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .expect("traceparent");
    w.outbound()
        .publish_traced(
            PublishRequest {
                tenant: &acme(),
                event_type: "invoice.paid",
                payload: PAYLOAD,
                idempotency_key: Some("traced-1"),
            },
            caller.child(),
        )
        .await
        .expect("published");

    // WHEN it is delivered, and a test event is sent
    assert_eq!(w.dispatch_all().await, [Dispatched::Delivered]);

    // THEN the request carries the caller's trace id in a span of its own, outside the signature
    let request = w.d.transport.requests().pop().expect("a request");
    let map = headers(&request.headers);
    let sent: crate::trace::TraceParent = map["traceparent"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a valid traceparent");
    assert_eq!(sent.trace_id(), caller.trace_id());
    assert_ne!(sent.span_id(), caller.span_id());
    let stored = w
        .store()
        .message(&acme(), &ids::MessageId::parse("traced-1").expect("id"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.trace.map(|t| t.trace_id()), Some(caller.trace_id()));
}

mod catalog {
    use serde_json::json;

    use super::*;
    use crate::outbound::{
        PublishError, TenantPolicy,
        catalog::{EventTypeChange, TypeCheck},
        ids::EventType,
    };

    fn publish<'a>(
        tenant: &'a TenantId,
        event_type: &'a str,
        payload: &'a [u8],
        key: &'a str,
    ) -> PublishRequest<'a> {
        PublishRequest {
            tenant,
            event_type,
            payload,
            idempotency_key: Some(key),
        }
    }

    #[tokio::test]
    async fn a_payload_that_breaks_its_types_schema_is_refused_and_nothing_is_stored_or_sent() {
        // GIVEN an endpoint and a registered type whose amount must be a whole number
        let w = world();
        w.endpoint("https://a.example/in", &[]).await;
        let schema = json!({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}});
        w.outbound()
            .register_event_type(
                &acme(),
                "invoice.paid",
                EventTypeChange {
                    schema: Some(schema),
                    ..EventTypeChange::default()
                },
            )
            .await
            .expect("registered");

        // WHEN a payload breaks it
        let refused = w
            .outbound()
            .publish(publish(
                &acme(),
                "invoice.paid",
                br#"{"amount":"42"}"#,
                "order-1",
            ))
            .await;

        // THEN the publish names where, and nothing is stored or queued
        assert!(
            matches!(&refused, Err(PublishError::SchemaMismatch { mismatch, .. }) if mismatch.pointer == "/amount" && mismatch.keyword == "type"),
            "{refused:?}"
        );
        assert!(refused.as_ref().is_err_and(PublishError::is_client_error));
        assert!(w.queue.sent().is_empty());
        let id = crate::outbound::ids::MessageId::parse("order-1").expect("id");
        assert_eq!(w.store().stored_message(&acme(), &id).await, Ok(None));

        // AND a matching payload, and any payload of an unregistered type, go out
        w.outbound()
            .publish(publish(&acme(), "invoice.paid", PAYLOAD, "order-2"))
            .await
            .expect("matches");
        w.outbound()
            .publish(publish(
                &acme(),
                "invoice.voided",
                br#"{"anything":true}"#,
                "order-3",
            ))
            .await
            .expect("unregistered types are accepted by default");
        assert_eq!(w.queue.sent().len(), 2);
    }

    #[tokio::test]
    async fn a_tenant_can_allow_registered_types_only() {
        let w = world();
        w.endpoint("https://a.example/in", &[]).await;
        w.store()
            .put_tenant_policy(
                &acme(),
                &TenantPolicy {
                    registered_types_only: true,
                    ..TenantPolicy::default()
                },
            )
            .await
            .expect("policy");
        w.outbound()
            .register_event_type(&acme(), "invoice.paid", EventTypeChange::default())
            .await
            .expect("registered");

        let unregistered = w
            .outbound()
            .publish(publish(&acme(), "invoice.voided", PAYLOAD, "order-1"))
            .await;
        assert_eq!(
            unregistered,
            Err(PublishError::UnregisteredType(
                EventType::parse("invoice.voided").expect("type")
            ))
        );
        w.outbound()
            .publish(publish(&acme(), "invoice.paid", PAYLOAD, "order-2"))
            .await
            .expect("registered, with no schema: any JSON");
    }

    #[tokio::test]
    async fn a_change_takes_effect_at_once_here_and_within_the_lifetime_elsewhere() {
        // GIVEN two publishers sharing a store, both of which read the type (no schema yet)
        let w = world();
        let other = Outbound::new(
            w.store().clone(),
            w.queue.clone(),
            ManualClock::at_unix(NOW),
            OutboundSettings::default(),
        );
        let paid = EventType::parse("invoice.paid").expect("type");
        w.outbound()
            .register_event_type(&acme(), "invoice.paid", EventTypeChange::default())
            .await
            .expect("registered");
        for o in [w.outbound(), &other] {
            assert_eq!(
                o.check_type(&acme(), &paid, b"{}").await,
                Ok(TypeCheck::Registered)
            );
        }

        // WHEN one of them gives it a schema
        w.outbound()
            .update_event_type(
                &acme(),
                &paid,
                EventTypeChange {
                    schema: Some(json!({"required": ["id"]})),
                    ..EventTypeChange::default()
                },
            )
            .await
            .expect("updated");

        // THEN that one checks against it at once; the other, once its memory expires
        assert!(matches!(
            w.outbound().check_type(&acme(), &paid, b"{}").await,
            Ok(TypeCheck::Mismatch(_))
        ));
        assert_eq!(
            other.check_type(&acme(), &paid, b"{}").await,
            Ok(TypeCheck::Registered),
            "remembered for up to catalog::TYPE_TTL"
        );
    }
}

#[tokio::test]
async fn an_erased_message_is_never_sent_again_and_stays_a_duplicate() {
    use crate::{
        erasure::erase_message, memory::MemoryEventStore, ports::Erasure, record::ERASED_REASON,
    };
    let w = world();
    let endpoint = w.endpoint("https://a.example/in", &[]).await;
    // GIVEN a delivery waiting for its retry, its failed attempt keeping the partner's answer
    w.d.transport
        .script("https://a.example/in", vec![ScriptedTransport::status(500)]);
    let key = w.publish_to_one("invoice.paid", "order-erased").await;
    w.dispatch_all().await;
    w.store()
        .reset_health(&acme(), &endpoint.id)
        .await
        .expect("reset");
    assert_eq!(w.store().all_attempts()[0].response_body, "status 500");

    // WHEN an operator erases the message
    let audits = MemoryEventStore::new();
    let erasure = Erasure {
        at: UNIX_EPOCH + Duration::from_secs(NOW + 1),
        actor: "dpo".into(),
    };
    let report = erase_message(
        w.store(),
        &audits,
        &acme(),
        &key.message_id,
        &erasure,
        false,
    )
    .await
    .expect("erased");

    // THEN its payload and the attempt's answer are gone, the erasure audited
    assert_eq!((report.erased, report.answers_cleared), (1, Some(1)));
    let tomb = w
        .store()
        .message(&acme(), &key.message_id)
        .await
        .expect("read")
        .expect("kept");
    assert!(tomb.payload.is_empty() && tomb.is_erased());
    assert_eq!(tomb.erased.as_ref().map(|e| e.by.as_str()), Some("dpo"));
    assert!(w.store().all_attempts()[0].response_body.is_empty());
    let audited = audits.erasures();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].target, format!("message {}", key.message_id));

    // AND its pointer coming back cancels it: no POST, no DLQ copy, nothing against health
    assert_eq!(
        w.redeliver_when_due(&key).await,
        Dispatched::Skipped(ERASED_REASON)
    );
    assert_eq!(w.d.transport.requests().len(), 1, "only the first attempt");
    assert_eq!(w.deliveries()[0].status, DeliveryStatus::Cancelled);
    assert!(w.queue.dead_letters().is_empty());
    assert_eq!(w.health(&endpoint.id).await.consecutive_failures, 0);

    // AND a repeated publish of the same content is a duplicate, other content a conflict
    assert!(w.publish("invoice.paid", "order-erased").await.duplicate);
    assert!(w.queue.drain().is_empty(), "a duplicate sends nothing");
    let other = w
        .outbound()
        .publish(PublishRequest {
            tenant: &acme(),
            event_type: "invoice.paid",
            payload: br#"{"id":"inv_2"}"#,
            idempotency_key: Some("order-erased"),
        })
        .await;
    assert!(matches!(other, Err(PublishError::Conflict(_))));

    // AND a resend, or a recovery of its delivery, is refused with the reason
    let resend = w
        .outbound()
        .resend(&acme(), &key.message_id, None, false)
        .await
        .expect_err("refused");
    assert!(resend.to_string().contains(ERASED_REASON), "{resend}");
    let since = UNIX_EPOCH + Duration::from_secs(NOW - 60);
    let recovered = w
        .outbound()
        .recover_failed(&acme(), &endpoint.id, since, false)
        .await
        .expect("recover");
    assert_eq!(recovered.requeued, 0);

    // AND erasing again changes nothing more, and says so
    let twice = erase_message(
        w.store(),
        &audits,
        &acme(),
        &key.message_id,
        &erasure,
        false,
    )
    .await
    .expect("again");
    assert_eq!((twice.erased, twice.already_erased), (0, 1));
}
