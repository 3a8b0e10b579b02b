//! Outbound webhooks against the emulator and real HTTP receivers on loopback: the DynamoDB
//! and SQS adapters, the hyper transport behind the SSRF guard, the dispatcher Lambda's handler
//! through the emulated event source, the replay function's recovery actions, and signatures
//! checked by the official standardwebhooks and svix libraries.

use std::{
    collections::HashMap,
    convert::Infallible,
    io::Write,
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aws_sdk_dynamodb::types::AttributeValue;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt};
use local_stack::{
    event_source::EventSourceMapping,
    fault_proxy::{FaultProxy, ProxyFault},
};
use serde_json::{Value, json};
use shared::{
    aws::{DynamoOutboundStore, KmsKeys, SqsDeadLetterQueue, SqsDeliveryQueue},
    clock::SystemClock,
    ids::TenantId,
    outbound::{
        Outbound, OutboundSettings,
        admin::EndpointChange,
        delivery::{
            Attempt, Delivery, DeliveryKey, DeliveryPointer, DeliveryStatus, ErrorClass, Exchange,
            OutboundMessage, Trigger,
        },
        dispatch::{Dispatched, Dispatcher, SlowLane},
        endpoint::Endpoint,
        ids::{EventType, MessageId},
        ports::{AttemptResult, DeliveryClaim, DeliveryLog, EndpointStore, RateLimiter},
        ssrf::{EgressPolicy, EndpointUrl, StaticResolver},
        transport::HttpTransport,
    },
    processor::{Message, NoJitter},
    retry::RetrySchedule,
};
use tokio::{net::TcpListener, sync::Notify};

use crate::support::Stack;

type ItDispatcher = Dispatcher<
    DynamoOutboundStore,
    SqsDeliveryQueue,
    SqsDeliveryQueue,
    HttpTransport,
    SystemClock,
    NoJitter,
>;

/// What a receiver does with each request.
#[derive(Clone)]
enum Behaviour {
    Answer(u16),
    /// Hold the request until notified, then answer 200.
    HoldUntil(Arc<Notify>),
}

/// One request a receiver got: its headers and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// An HTTP receiver on loopback that records every request.
#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let receiver = Self {
            address: listener.local_addr().expect("address"),
            seen: Arc::default(),
            arrived: Arc::new(Notify::new()),
        };
        let this = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let this = this.clone();
                        let behaviour = behaviour.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(n, v)| {
                                    (n.to_string(), v.to_str().unwrap_or_default().to_owned())
                                })
                                .collect();
                            this.seen
                                .lock()
                                .expect("lock")
                                .push((headers, body.to_vec()));
                            this.arrived.notify_waiters();
                            let status = match behaviour {
                                Behaviour::Answer(status) => status,
                                Behaviour::HoldUntil(release) => {
                                    release.notified().await;
                                    200
                                }
                            };
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"thanks")));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.address)
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn settings(schedule: &str, egress: EgressPolicy) -> OutboundSettings {
    OutboundSettings {
        schedule: schedule.parse::<RetrySchedule>().expect("schedule"),
        attempt_timeout: Duration::from_secs(3),
        egress,
        ..OutboundSettings::default()
    }
}

impl Stack {
    fn outbound_store(&self) -> DynamoOutboundStore {
        DynamoOutboundStore::new(
            self.dynamodb.clone(),
            self.resources.outbound_table(),
            Arc::new(KmsKeys::new(self.kms.clone(), self.resources.secrets_key())),
        )
    }

    fn delivery_queue(&self) -> SqsDeliveryQueue {
        SqsDeliveryQueue::new(
            self.sqs.clone(),
            self.resources.deliveries_queue_url(),
            self.resources.deliveries_dlq_url(),
        )
    }

    /// The dispatcher as deployed, with `settings` and a resolver that knows `names`.
    fn dispatcher(&self, settings: OutboundSettings, names: StaticResolver) -> ItDispatcher {
        self.dispatcher_over(self.outbound_store(), settings, names)
    }

    /// The same over `store` (one whose calls pass a fault proxy).
    fn dispatcher_over(
        &self,
        store: DynamoOutboundStore,
        settings: OutboundSettings,
        names: StaticResolver,
    ) -> ItDispatcher {
        let resolver = Arc::new(names);
        let transport =
            HttpTransport::with_resolver(settings.egress, resolver.clone()).expect("transport");
        Dispatcher::new(
            Outbound::new(store, self.delivery_queue(), SystemClock, settings)
                .with_resolver(resolver),
            self.delivery_queue(),
            transport,
            NoJitter,
        )
    }

    fn deliveries_mapping(&self) -> EventSourceMapping {
        EventSourceMapping {
            sqs: self.sqs.clone(),
            queue_url: self.resources.deliveries_queue_url().to_owned(),
            batch_size: 10,
            batching_window: Duration::from_secs(0),
        }
    }

    async fn add_endpoint(&self, d: &ItDispatcher, url: &str, filter: &[&str]) -> Endpoint {
        d.outbound
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
}

/// The caller's trace every publish through the API continues.
const CALLER_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Publish through the API Lambda's own handler, as API Gateway hands it a request.
async fn publish_via_api(d: &ItDispatcher, body: &Value) -> (u16, Value) {
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/tenants/acme/messages")
        .header("traceparent", CALLER_TRACE)
        .body(Body::Text(body.to_string()))
        .expect("request")
        .with_path_parameters(HashMap::from([("tenant".to_owned(), "acme".to_owned())]));
    let response = api::handle(&d.outbound, request).await.expect("answered");
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (
        response.status().as_u16(),
        serde_json::from_str(&text).expect("json"),
    )
}

/// An item of the outbound table as stored, by its keys.
async fn raw_item(stack: &Stack, pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
    stack
        .dynamodb
        .get_item()
        .table_name(stack.resources.outbound_table())
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .send()
        .await
        .expect("get")
        .item
}

fn verify_officially(secret: &str, headers: &[(String, String)], body: &[u8]) -> Value {
    let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!("INTEROP_PYTHON is not set: run the tests with `make test`, which installs the providers' libraries")
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/verify_outbound.py");
    let mut command = Command::new(python);
    command.arg(script);
    let case = json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8(body.to_vec()).expect("utf-8"),
    });
    verdict(command, &case)
}

/// Run `command` with `case` on its standard input; the JSON verdict it prints.
fn verdict(mut command: Command, case: &Value) -> Value {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the verifier runs");
    writeln!(child.stdin.take().expect("stdin"), "{case}").expect("write");
    let output = child.wait_with_output().expect("ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a verdict")
}

#[tokio::test]
async fn a_published_message_reaches_every_matching_endpoint_signed_for_the_official_libraries() {
    // GIVEN two receivers, one subscribed to invoices, one to users, and a rotated secret
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let invoices = Receiver::start(Behaviour::Answer(200)).await;
    let users = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack
        .add_endpoint(&d, &invoices.url(), &["invoice.*"])
        .await;
    stack
        .add_endpoint(&d, &users.url(), &["user.created"])
        .await;
    let first_secret = endpoint.secrets.clone().expect("secret").current;
    let rotated = d
        .outbound
        .rotate_secret(&acme(), &endpoint.id, None)
        .await
        .expect("rotated");
    let second_secret = rotated.secrets.expect("secrets").current;

    // The table holds the secret sealed, never in the clear.
    let raw = stack
        .dynamodb
        .scan()
        .table_name(stack.resources.outbound_table())
        .send()
        .await
        .expect("scan");
    assert!(!format!("{:?}", raw.items()).contains(first_secret.expose()));

    // WHEN the user's service publishes twice with one key, and the dispatcher runs
    let message = json!({"event_type": "invoice.paid", "payload": {"id": "inv_1", "amount": 4200}, "idempotency_key": "order-1"});
    let (status, published) = publish_via_api(&d, &message).await;
    assert_eq!(
        (status, published["deliveries"].as_u64()),
        (202, Some(1)),
        "{published}"
    );
    let (status, again) = publish_via_api(&d, &message).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    let poll = stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");

    // THEN one request reached the invoice receiver, none the other, and both libraries verify
    // it with either secret during the rotation
    assert_eq!((poll.received, poll.failed), (1, 0));
    assert!(users.requests().is_empty());
    let requests = invoices.requests();
    assert_eq!(requests.len(), 1, "delivered once despite two publishes");
    let (headers, body) = &requests[0];
    assert_eq!(
        body,
        message["payload"].to_string().as_bytes(),
        "the payload, byte for byte"
    );
    for secret in [&first_secret, &second_secret] {
        let verdict = verify_officially(secret.expose(), headers, body);
        assert_eq!(
            verdict,
            json!({"standardwebhooks": "ok", "svix": "ok"}),
            "{verdict}"
        );
    }
    let tampered = verify_officially(second_secret.expose(), headers, b"{\"id\":\"inv_2\"}");
    assert_ne!(tampered["standardwebhooks"], "ok");

    let log = d
        .outbound
        .store
        .attempts_of_endpoint(&acme(), &endpoint.id, 10, None)
        .await
        .expect("log");
    assert_eq!(log.items.len(), 1);
    assert_eq!(
        (log.items[0].status, log.items[0].response_body.as_str()),
        (Some(200), "thanks")
    );
}

#[tokio::test]
async fn a_2xx_is_not_posted_again_when_recording_it_fails() {
    // GIVEN a receiver answering 200, and the dispatcher's table calls passing a fault proxy
    let stack = Stack::new().await;
    let proxy = FaultProxy::start(&crate::support::endpoint())
        .await
        .expect("proxy");
    let proxied = local_stack::aws::sdk_config(&proxy.url).await;
    let store = DynamoOutboundStore::new(
        aws_sdk_dynamodb::Client::new(&proxied),
        stack.resources.outbound_table(),
        Arc::new(KmsKeys::new(
            stack.kms.clone(),
            stack.resources.secrets_key(),
        )),
    );
    let d = stack.dispatcher_over(
        store,
        OutboundSettings {
            lease: Duration::from_secs(1),
            ..settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT)
        },
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &[]).await;
    let message = json!({"event_type": "invoice.paid", "payload": {"id": "inv_9"}, "idempotency_key": "order-9"});
    let (status, published) = publish_via_api(&d, &message).await;
    assert_eq!(status, 202, "{published}");

    // WHEN every write that would record the attempt fails while it is dispatched
    proxy.inject_matching(
        "dynamodb:UpdateItem",
        "latency_ms",
        ProxyFault::ServerError,
        1_000,
    );
    let poll = stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");
    assert_eq!((poll.received, poll.failed), (1, 1));
    assert_eq!(receiver.requests().len(), 1);

    // AND its pointer comes back after the lease, with DynamoDB answering again
    proxy.clear();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let key = DeliveryKey {
        tenant: acme(),
        message_id: MessageId::parse("order-9").expect("id"),
        endpoint_id: endpoint.id.clone(),
    };
    let again = Message {
        message_id: "again".into(),
        receipt_handle: None,
        body: DeliveryPointer::new(&key).to_json(),
        receive_count: 2,
        sent_at: None,
    };
    assert_eq!(
        d.dispatch(&again, "dispatch-2").await,
        Dispatched::Delivered
    );

    // THEN the partner was posted to once, and the delivery is recorded delivered
    assert_eq!(receiver.requests().len(), 1);
    let delivery = d
        .outbound
        .store
        .delivery(&key)
        .await
        .expect("read")
        .expect("delivery");
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.answered, None);
}

#[tokio::test]
async fn a_delivery_is_created_by_its_first_claim_and_claimed_again_only_when_due_on_dynamodb() {
    // GIVEN a message published a moment ago: its delivery exists only once it is claimed
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let endpoint = stack.add_endpoint(&d, "http://127.0.0.1:9/in", &[]).await;
    let message =
        json!({"event_type": "invoice.paid", "payload": {"n": 1}, "idempotency_key": "due-1"});
    assert_eq!(publish_via_api(&d, &message).await.0, 202);
    let store = &d.outbound.store;
    let stored = store
        .message(&acme(), &MessageId::parse("due-1").expect("id"))
        .await
        .expect("read")
        .expect("message");
    // Whole milliseconds, as the store keeps times.
    let now = shared::clock::from_unix_millis(shared::clock::unix_millis(SystemTime::now()));
    let new = Delivery::new(&stored, &endpoint.id, false, now);
    assert_eq!(store.delivery(&new.key).await.expect("read"), None);

    // WHEN it is claimed, THEN it is created under the lease, its first attempt counted
    let lease = now + Duration::from_secs(60);
    let Ok(DeliveryClaim::Claimed(claimed)) =
        store.claim_delivery(&new, "first", lease, false, now).await
    else {
        panic!("the first claim creates the delivery");
    };
    assert_eq!(
        (claimed.status, claimed.attempts),
        (DeliveryStatus::Sending, 1)
    );
    assert_eq!(claimed.created_at, new.created_at);
    // WHEN a second pointer claims it under that lease, THEN not
    assert_eq!(
        store
            .claim_delivery(&new, "second", lease, false, now)
            .await,
        Ok(DeliveryClaim::NotNow(DeliveryStatus::Sending))
    );

    // GIVEN the attempt failed, the next one due in an hour
    let due = now + Duration::from_secs(3600);
    let failed = Exchange {
        status: Some(500),
        retry_after: None,
        body: String::new(),
        latency: Duration::from_millis(5),
        error: Some((ErrorClass::HttpStatus, "500".into())),
    };
    let attempt = Attempt::new(
        &new.key,
        1,
        now,
        Trigger::Scheduled,
        &EndpointUrl::parse("http://127.0.0.1:9/in", EgressPolicy::LOCAL_DEVELOPMENT).expect("url"),
        &failed,
    );
    let result = AttemptResult {
        attempt,
        created_at: claimed.created_at,
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(due),
        expires_at: None,
        // As when its schedule is spent and the DLQ copy failed: the next claim sees it.
        spent: true,
    };
    assert_eq!(store.finish_attempt("first", &result).await, Ok(true));

    // WHEN it is claimed a minute before it is due, THEN not, and the answer says when
    let early = due - Duration::from_secs(60);
    let lease = due + Duration::from_secs(60);
    assert!(matches!(
        store.claim_delivery(&new, "early", lease, false, early).await,
        Ok(DeliveryClaim::NotDue(at)) if at == due
    ));
    // WHEN it is claimed when due, THEN it is, counting the second attempt
    assert!(matches!(
        store.claim_delivery(&new, "on-time", lease, false, due).await,
        Ok(DeliveryClaim::Claimed(d)) if d.attempts == 2 && d.spent
    ));
}

#[tokio::test]
async fn reconcile_finds_due_work_in_every_shard_of_the_due_index() {
    // GIVEN deliveries pending (spread over the shards by their keys) and a fan-out left
    // unfinished, on DynamoDB
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let endpoint = stack.add_endpoint(&d, "http://127.0.0.1:9/in", &[]).await;
    let store = &d.outbound.store;
    let now = std::time::SystemTime::now();
    for n in 0..6 {
        let message = OutboundMessage {
            payload_location: None,
            tenant: acme(),
            id: MessageId::parse(&format!("due-{n}")).expect("id"),
            event_type: EventType::parse("invoice.paid").expect("type"),
            payload: b"{}".to_vec(),
            created_at: now,
            fanned_out: true,
            trace: None,
            erased: None,
        };
        // Pending for its retry: the only way a delivery is in the due index now.
        let delivery = Delivery::new(&message, &endpoint.id, false, now);
        assert_eq!(store.put_delivery_if_absent(&delivery).await, Ok(true));
    }
    let unfinished = OutboundMessage {
        payload_location: None,
        tenant: acme(),
        id: MessageId::parse("half-done").expect("id"),
        event_type: EventType::parse("invoice.paid").expect("type"),
        payload: b"{}".to_vec(),
        created_at: now,
        fanned_out: false,
        trace: None,
        erased: None,
    };
    store
        .put_message(&unfinished, now + Duration::from_secs(3_600))
        .await
        .expect("stored");

    // WHEN reconcile's reads look for what is due by an hour from now
    let later = now + Duration::from_secs(3_600);
    let overdue = store.overdue_deliveries(later, 10).await.expect("due");
    let fan_outs = store
        .unfinished_fan_outs(later, 10)
        .await
        .expect("fan-outs");

    // THEN every pending delivery is found, whichever shard it sits in, and the fan-out
    assert_eq!(overdue.len(), 6, "{overdue:?}");
    assert_eq!(fan_outs, [(acme(), unfinished.id.clone())]);
    // AND a limit takes the oldest across the shards
    assert_eq!(
        store.overdue_deliveries(later, 2).await.expect("due").len(),
        2
    );
}

#[tokio::test]
async fn a_failing_endpoint_goes_dead_to_the_dlq_and_the_replay_function_redrives_it() {
    let stack = Stack::new().await;
    // Two attempts, no delay: the schedule runs without waiting.
    let d = stack.dispatcher(
        settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let broken = Receiver::start(Behaviour::Answer(500)).await;
    let endpoint = stack.add_endpoint(&d, &broken.url(), &[]).await;
    let (status, _) = publish_via_api(
        &d,
        &json!({"event_type": "invoice.paid", "payload": {}, "idempotency_key": "order-2"}),
    )
    .await;
    assert_eq!(status, 202);

    let mapping = stack.deliveries_mapping();
    let first = mapping.poll_once(&d, "dispatch-1").await.expect("poll");
    assert_eq!(first.failed, 1, "the first failure comes back");
    let second = mapping.poll_once(&d, "dispatch-2").await.expect("poll");
    assert_eq!(
        (second.received, second.failed),
        (1, 0),
        "the last failure is dead, not retried"
    );

    let deliveries = d
        .outbound
        .store
        .deliveries_of_endpoint(&acme(), &endpoint.id, None, 10, None)
        .await
        .expect("list");
    assert_eq!(deliveries.items[0].status, DeliveryStatus::Dead);
    assert_eq!(deliveries.items[0].attempts, 2);
    // A dead delivery's record expires like a delivered one's (its copy waits on the DLQ).
    let raw = raw_item(&stack, "m#acme#order-2", &format!("dlv#{}", endpoint.id)).await;
    assert!(
        raw.as_ref()
            .is_some_and(|item| item.contains_key("expires_at")),
        "{raw:?}"
    );
    assert_eq!(broken.requests().len(), 2);

    // The operator's console event, through the replay function as deployed.
    let replay = replay::build(
        &local_stack::aws::sdk_config(&crate::support::endpoint()).await,
        &replay_config(&stack),
    );
    let dry = replay
        .run_json(json!({"action": "deliveries_redrive", "dry_run": true}))
        .await
        .expect("dry run");
    assert_eq!(
        (dry["matched"].as_u64(), dry["requeued"].as_u64()),
        (Some(1), Some(1)),
        "{dry}"
    );
    let done = replay
        .run_json(json!({"action": "deliveries_redrive", "dry_run": false}))
        .await
        .expect("redrive");
    assert_eq!(done["requeued"], 1, "{done}");
    let restarted = d
        .outbound
        .store
        .deliveries_of_endpoint(&acme(), &endpoint.id, None, 10, None)
        .await
        .expect("list");
    assert_eq!(
        (restarted.items[0].status, restarted.items[0].attempts),
        (DeliveryStatus::Pending, 0)
    );
    let dlq = SqsDeadLetterQueue::new(stack.sqs.clone(), stack.resources.deliveries_dlq_url());
    assert_eq!(
        shared::ports::DeadLetterQueue::depth(&dlq)
            .await
            .expect("depth"),
        0
    );
    let bad = replay
        .run_json(json!({"action": "resend", "tenant": "Acme", "message_id": "x", "dry_run": true}))
        .await
        .expect("answered");
    assert!(bad["error"].is_string(), "{bad}");
}

fn replay_config(stack: &Stack) -> replay::Config {
    let r = &stack.resources;
    let env: HashMap<&str, String> = HashMap::from([
        ("EVENTS_TABLE", r.events_table().to_owned()),
        ("TENANTS_TABLE", r.tenants_table().to_owned()),
        ("EVENTS_QUEUE_URL", r.events_queue_url().to_owned()),
        (
            "DEAD_LETTER_QUEUE_URL",
            r.dead_letter_queue_url().to_owned(),
        ),
        ("PAYLOADS_BUCKET", r.payloads_bucket().to_owned()),
        ("OUTBOUND_TABLE", r.outbound_table().to_owned()),
        ("DELIVERIES_QUEUE_URL", r.deliveries_queue_url().to_owned()),
        ("DELIVERIES_DLQ_URL", r.deliveries_dlq_url().to_owned()),
    ]);
    replay::Config::from_lookup(|name| env.get(name).cloned()).expect("config")
}

#[tokio::test]
async fn the_guard_refuses_internal_addresses_again_at_connect_time() {
    // GIVEN endpoints stored pointing inside (as a DNS answer that changed after registration
    // would): a name resolving to loopback, and one to the instance metadata address
    let stack = Stack::new().await;
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let names = StaticResolver::default()
        .with("rebound.example", &["127.0.0.1".parse().expect("ip")])
        .with(
            "metadata.example",
            &["169.254.169.254".parse().expect("ip")],
        );
    let d = stack.dispatcher(settings("0", EgressPolicy::PUBLIC), names);
    let port = receiver.address.port();
    for host in ["rebound.example", "metadata.example"] {
        let url = EndpointUrl::parse(
            &format!("https://{host}:{port}/hooks"),
            EgressPolicy::PUBLIC,
        )
        .expect("url");
        let endpoint = Endpoint::new(
            acme(),
            url,
            Default::default(),
            shared::outbound::endpoint::generate_secret().expect("secret"),
            std::time::SystemTime::now(),
        );
        d.outbound
            .store
            .put_endpoint(&endpoint)
            .await
            .expect("stored");
    }
    publish_via_api(&d, &json!({"event_type": "invoice.paid", "payload": {}})).await;

    // WHEN the dispatcher attempts them
    stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");

    // THEN nothing connected, and each attempt is logged as refused, with its reason
    assert!(receiver.requests().is_empty());
    for endpoint in d
        .outbound
        .store
        .endpoints(&acme())
        .await
        .expect("endpoints")
    {
        let log = d
            .outbound
            .store
            .attempts_of_endpoint(&acme(), &endpoint.id, 10, None)
            .await
            .expect("log");
        let attempt = &log.items[0];
        assert_eq!(
            attempt.error_class,
            Some(ErrorClass::Refused),
            "{attempt:?}"
        );
        assert!(
            attempt
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("resolves to"),
            "{attempt:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_a_fast_one() {
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0,5", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let release = Arc::new(Notify::new());
    let slow = Receiver::start(Behaviour::HoldUntil(release.clone())).await;
    let fast = Receiver::start(Behaviour::Answer(200)).await;
    stack.add_endpoint(&d, &slow.url(), &[]).await;
    stack.add_endpoint(&d, &fast.url(), &[]).await;
    publish_via_api(&d, &json!({"event_type": "invoice.paid", "payload": {}})).await;

    // The fast endpoint's request arrives while the slow one still holds its connection; only
    // then is the slow one released. Sequential delivery would wait here until the timeout.
    let mapping = stack.deliveries_mapping();
    let dispatching = mapping.poll_once(&d, "dispatch-1");
    let watching = async {
        while fast.requests().is_empty() {
            let arrived = fast.arrived.notified();
            if fast.requests().is_empty() {
                arrived.await;
            }
        }
        release.notify_waiters();
    };
    let (poll, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(dispatching, watching)
    })
    .await
    .expect("the fast endpoint was reached while the slow one held");
    let poll = poll.expect("poll");
    assert_eq!(poll.received, 2);
    assert_eq!(fast.requests().len(), 1);
}

#[tokio::test]
async fn the_outbound_store_pages_holds_and_limits_on_dynamodb() {
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &[]).await;
    let store = &d.outbound.store;

    // Held while disabled, released in order of creation when enabled.
    d.outbound
        .set_enabled(&acme(), &endpoint.id, false)
        .await
        .expect("disabled");
    for n in 0..3 {
        publish_via_api(&d, &json!({"event_type": "invoice.paid", "payload": {"n": n}, "idempotency_key": format!("held-{n}")})).await;
    }
    let held = store
        .held_deliveries(&acme(), &endpoint.id, 10)
        .await
        .expect("held");
    assert_eq!(held.deliveries.len(), 3);
    // The index page was not full: none held past these.
    assert!(!held.more);
    let first_two = store
        .held_deliveries(&acme(), &endpoint.id, 2)
        .await
        .expect("held");
    assert_eq!((first_two.deliveries.len(), first_two.more), (2, true));
    // The endpoint says so when read: a new message waits behind them.
    let read = store
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert!(read.health.holding);
    assert_eq!(
        store
            .holding_endpoints(10, None)
            .await
            .expect("holding")
            .items,
        [(acme(), endpoint.id.clone())]
    );
    d.outbound
        .set_enabled(&acme(), &endpoint.id, true)
        .await
        .expect("enabled");
    assert!(
        store
            .held_deliveries(&acme(), &endpoint.id, 10)
            .await
            .expect("held")
            .deliveries
            .is_empty()
    );
    assert!(
        store
            .holding_endpoints(10, None)
            .await
            .expect("holding")
            .items
            .is_empty()
    );
    stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");
    assert_eq!(receiver.requests().len(), 3);

    // Paging through the endpoint's deliveries, newest first, and a token is bound to its
    // endpoint's partition.
    let first = store
        .deliveries_of_endpoint(&acme(), &endpoint.id, None, 2, None)
        .await
        .expect("page");
    assert_eq!(first.items.len(), 2);
    let next = first.next.expect("a next page");
    let second = store
        .deliveries_of_endpoint(&acme(), &endpoint.id, None, 2, Some(&next))
        .await
        .expect("page");
    assert_eq!(second.items.len(), 1);
    let other = TenantId::parse("globex").expect("tenant");
    assert!(
        store
            .deliveries_of_endpoint(&other, &endpoint.id, None, 2, Some(&next))
            .await
            .is_err()
    );

    // The rate limiter hands out each slot once: at two a second, eight reservations get the
    // next eight half-seconds; an idle endpoint's next slot is now again. (One at a time: the
    // emulator's conditional writes are not atomic under concurrent requests, DynamoDB's are.)
    let now = std::time::SystemTime::now();
    let mut slots = Vec::new();
    for _ in 0..8 {
        let slot = store
            .reserve(&acme(), &endpoint.id, 2, now)
            .await
            .expect("reserved");
        slots.push(slot.duration_since(now).expect("not before now"));
    }
    slots.sort();
    let expected: Vec<Duration> = (0..8).map(|n| Duration::from_millis(500 * n)).collect();
    let off = |slot: &Duration, want: &Duration| slot.abs_diff(*want) > Duration::from_millis(1);
    assert!(
        !slots.iter().zip(&expected).any(|(s, w)| off(s, w)),
        "{slots:?}"
    );
    let later = now + Duration::from_secs(10);
    let idle = store
        .reserve(&acme(), &endpoint.id, 2, later)
        .await
        .expect("reserved");
    assert!(idle.duration_since(later).unwrap_or_default() < Duration::from_millis(1));

    // Holding endpoints come in pages: the token carries the index's numeric key (the time
    // of the mark) and goes on after it.
    let marked = |n: u64| now + Duration::from_secs(n);
    let mut holding = Vec::new();
    for n in 1..=2 {
        let e = stack
            .add_endpoint(&d, &format!("{}/{n}", receiver.url()), &[])
            .await;
        store
            .mark_holding(&acme(), &e.id, marked(n))
            .await
            .expect("holding");
        holding.push((acme(), e.id));
    }
    let first = store.holding_endpoints(1, None).await.expect("page");
    let second = store
        .holding_endpoints(1, first.next.as_deref())
        .await
        .expect("next page");
    assert_eq!([first.items, second.items].concat(), holding);

    // A pause opens once: a second one asked while it is open (an attempt that was in flight)
    // changes nothing, and a success closes it and forgets the count.
    // Whole milliseconds, as stored.
    let until = shared::clock::from_unix_millis(shared::clock::unix_millis(now) + 60_000);
    assert!(
        store
            .pause(&acme(), &endpoint.id, until, now)
            .await
            .expect("pause")
    );
    let later = until + Duration::from_secs(60);
    assert!(
        !store
            .pause(&acme(), &endpoint.id, later, now)
            .await
            .expect("pause")
    );
    let health = |e: Option<Endpoint>| e.expect("endpoint").health;
    let paused = health(store.endpoint(&acme(), &endpoint.id).await.expect("read"));
    assert_eq!((paused.paused_until, paused.pauses), (Some(until), 1));
    store
        .record_success(&acme(), &endpoint.id, now)
        .await
        .expect("success");
    let closed = health(store.endpoint(&acme(), &endpoint.id).await.expect("read"));
    assert_eq!((closed.paused_until, closed.pauses), (None, 0));
}

#[tokio::test]
async fn a_message_stored_before_messages_had_partitions_of_their_own_is_delivered_where_it_is() {
    // GIVEN a message stored the way it was before (in its tenant's partition, unfinished),
    // fanned out by reconcile's path: its delivery is in the tenant's partition too
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &[]).await;
    let store = &d.outbound.store;
    let old = OutboundMessage {
        payload_location: None,
        tenant: acme(),
        id: MessageId::parse("before-1").expect("id"),
        event_type: EventType::parse("invoice.paid").expect("type"),
        payload: br#"{"n":1}"#.to_vec(),
        created_at: std::time::SystemTime::now(),
        fanned_out: false,
        trace: None,
        erased: None,
    };
    store
        .put_message(&old, old.created_at + Duration::from_secs(3_600))
        .await
        .expect("stored");
    assert_eq!(d.outbound.fan_out(&old).await, Ok(1));

    // WHEN the dispatcher takes its pointer
    let poll = stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");

    // THEN it is delivered once, and recorded where it was
    assert_eq!((poll.received, poll.failed), (1, 0));
    assert_eq!(receiver.requests().len(), 1);
    let deliveries = store
        .deliveries_of_message(&acme(), &old.id)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    let attempts = store
        .attempts_of_message(&acme(), &old.id, 10, None)
        .await
        .expect("attempts");
    assert_eq!(attempts.items.len(), 1);
    let listed = store
        .deliveries_of_endpoint(&acme(), &endpoint.id, None, 10, None)
        .await
        .expect("listed");
    assert_eq!(listed.items.len(), 1);
    let items = stack
        .dynamodb
        .scan()
        .table_name(stack.resources.outbound_table())
        .send()
        .await
        .expect("scan");
    let pks: Vec<String> = items
        .items()
        .iter()
        .filter(|item| {
            item.get("message_id").and_then(|v| v.as_s().ok()) == Some(&"before-1".to_owned())
        })
        .filter_map(|item| item.get("pk").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    assert!(
        !pks.is_empty() && pks.iter().all(|pk| pk == "t#acme"),
        "{pks:?}"
    );

    // AND publishing its id again is its duplicate, or a conflict: never a second message
    let same =
        json!({"event_type": "invoice.paid", "payload": {"n": 1}, "idempotency_key": "before-1"});
    let (status, again) = publish_via_api(&d, &same).await;
    assert_eq!(
        (status, again["duplicate"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    let other =
        json!({"event_type": "invoice.paid", "payload": {"n": 2}, "idempotency_key": "before-1"});
    assert_eq!(publish_via_api(&d, &other).await.0, 409);

    // AND a message published now has its items in a partition of its own
    let new =
        json!({"event_type": "invoice.paid", "payload": {"n": 3}, "idempotency_key": "after-1"});
    assert_eq!(publish_via_api(&d, &new).await.0, 202);
    assert!(raw_item(&stack, "m#acme#after-1", "msg").await.is_some());
}

#[tokio::test]
async fn a_pointer_sent_again_on_sqs_comes_back_fresh_after_its_delay() {
    // GIVEN the deliveries queue on the emulator
    let stack = Stack::new().await;
    let queue = SqsDeliveryQueue::new(
        stack.sqs.clone(),
        stack.resources.deliveries_queue_url(),
        stack.resources.deliveries_dlq_url(),
    );
    let pointer = DeliveryPointer::new(&DeliveryKey {
        tenant: acme(),
        message_id: MessageId::parse("again-1").expect("id"),
        endpoint_id: shared::outbound::ids::EndpointId::generate(),
    });

    // WHEN a pointer is sent again with a delay
    use shared::outbound::ports::DeliveryRetryQueue;
    queue
        .send_again(&pointer, Duration::from_secs(1))
        .await
        .expect("sent");

    // THEN it arrives as a new message, received once, with the same pointer
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let received = stack
        .sqs
        .receive_message()
        .queue_url(stack.resources.deliveries_queue_url())
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let message = received.messages().first().expect("a message");
    assert_eq!(
        DeliveryPointer::parse(message.body().unwrap_or_default()),
        Some(pointer)
    );
}

#[tokio::test]
async fn a_message_is_kept_longer_for_a_waiting_delivery_never_shorter_on_dynamodb() {
    // GIVEN a published message
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    stack.add_endpoint(&d, "http://127.0.0.1:9/in", &[]).await;
    let message =
        json!({"event_type": "invoice.paid", "payload": {"n": 1}, "idempotency_key": "kept-1"});
    assert_eq!(publish_via_api(&d, &message).await.0, 202);
    let id = MessageId::parse("kept-1").expect("id");
    let expiry = || async {
        raw_item(&stack, "m#acme#kept-1", "msg")
            .await
            .and_then(|item| item.get("expires_at").cloned())
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse::<i64>().ok()))
            .expect("an expiry")
    };
    let published = expiry().await;

    // WHEN a waiting delivery asks to keep it for a year, THEN it is kept that long
    let year = std::time::SystemTime::now() + Duration::from_secs(365 * 86_400);
    let store = &d.outbound.store;
    store.keep_message(&acme(), &id, year).await.expect("kept");
    let kept = expiry().await;
    assert!(kept > published + 300 * 86_400, "{kept} vs {published}");
    // WHEN another asks for less, THEN it stays kept the longer
    store
        .keep_message(&acme(), &id, std::time::SystemTime::now())
        .await
        .expect("kept");
    assert_eq!(expiry().await, kept);
}

/// An inbound event's 300 KiB payload kept in the payloads bucket at
/// `payloads/acme/relayed/{name}`, published by reference as the relay publishes it: the
/// payload, its location and the message's id.
async fn relay_large_payload(
    stack: &Stack,
    d: &ItDispatcher,
    name: &str,
) -> (String, String, shared::outbound::ids::MessageId) {
    let payload = json!({"id": name, "padding": "x".repeat(300 * 1024)}).to_string();
    let location = format!("payloads/acme/relayed/{name}");
    stack
        .s3
        .put_object()
        .bucket(stack.resources.payloads_bucket())
        .key(&location)
        .body(payload.clone().into_bytes().into())
        .send()
        .await
        .expect("kept");
    let key = format!("in.stripe.{name}");
    let request = shared::outbound::publish::PublishRequest {
        tenant: &acme(),
        event_type: "stripe.invoice.paid",
        payload: payload.as_bytes(),
        idempotency_key: Some(&key),
    };
    let published = d
        .outbound
        .publish_kept(
            request,
            Some(&location),
            shared::trace::TraceParent::generate(),
        )
        .await
        .expect("published");
    (payload, location, published.message_id)
}

#[tokio::test]
async fn a_relayed_payload_too_large_for_an_item_is_delivered_whole_from_where_the_event_keeps_it()
{
    // GIVEN an inbound event's 300 KiB payload in the payloads bucket, and a dispatcher that
    // reads that bucket as deployed
    let stack = Stack::new().await;
    let with_bucket = || {
        stack
            .outbound_store()
            .with_payloads(stack.s3.clone(), stack.resources.payloads_bucket())
    };
    let d = stack.dispatcher_over(
        with_bucket(),
        settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &["stripe.*"]).await;
    // WHEN it is relayed (published by reference) and dispatched
    let (payload, location, message_id) = relay_large_payload(&stack, &d, "evt_big").await;
    let poll = stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");

    // THEN the message's item holds where the payload is, not a copy, and the partner gets
    // it whole, signed
    let id = message_id;
    let item = raw_item(&stack, &format!("m#acme#{id}"), "msg")
        .await
        .expect("stored");
    assert!(item.contains_key("payload_ref") && !item.contains_key("payload_z"));
    assert_eq!((poll.received, poll.failed), (1, 0));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].1,
        payload.as_bytes(),
        "the payload, byte for byte"
    );
    let secret = endpoint.secrets.expect("secrets").current;
    let verdict = verify_officially(secret.expose(), &requests[0].0, &requests[0].1);
    assert_eq!(verdict["standardwebhooks"], "ok", "{verdict}");

    // A reader without the bucket refuses to hand it out without its payload, but the
    // duplicate check compares the stored hash, which needs neither the bucket nor the bytes.
    let without = stack.outbound_store();
    assert!(without.message(&acme(), &id).await.is_err());
    let seen = without
        .stored_message(&acme(), &id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(seen.content_hash, published_hash(&payload));

    // Once the event's object has expired, the message is as good as expired.
    stack
        .s3
        .delete_object()
        .bucket(stack.resources.payloads_bucket())
        .key(location)
        .send()
        .await
        .expect("deleted");
    assert!(
        with_bucket()
            .message(&acme(), &id)
            .await
            .expect("read")
            .is_none()
    );
}

fn published_hash(payload: &str) -> String {
    let event_type = EventType::parse("stripe.invoice.paid").expect("type");
    shared::outbound::delivery::content_hash(&event_type, payload.as_bytes())
}

#[tokio::test]
async fn a_slow_endpoints_delivery_goes_through_the_slow_lanes_queue_on_sqs() {
    // GIVEN an endpoint marked slow, the main lane's dispatcher and the slow lane's
    let stack = Stack::new().await;
    let settings = settings("0,5", EgressPolicy::LOCAL_DEVELOPMENT);
    let slow_queue = || {
        SqsDeliveryQueue::new(
            stack.sqs.clone(),
            stack.resources.slow_deliveries_queue_url(),
            stack.resources.deliveries_dlq_url(),
        )
    };
    let main = stack
        .dispatcher(settings.clone(), StaticResolver::default())
        .with_slow_lane(SlowLane::new(Arc::new(slow_queue())));
    let transport =
        HttpTransport::with_resolver(settings.egress, Arc::new(StaticResolver::default()))
            .expect("transport");
    let slow_lane = Dispatcher::new(
        Outbound::new(
            stack.outbound_store(),
            stack.delivery_queue(),
            SystemClock,
            settings,
        ),
        slow_queue(),
        transport,
        NoJitter,
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&main, &receiver.url(), &[]).await;
    let store = stack.outbound_store();
    store
        .mark_slow(&acme(), &endpoint.id, Some(std::time::SystemTime::now()))
        .await
        .expect("marked");
    let marked = store
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert!(marked.health.slow_since.is_some(), "the mark round-trips");

    // WHEN a message is published and the main lane polls
    publish_via_api(
        &main,
        &json!({"event_type": "invoice.paid", "payload": {"n": 1}}),
    )
    .await;
    let poll = stack
        .deliveries_mapping()
        .poll_once(&main, "main-1")
        .await
        .expect("poll");

    // THEN it is not attempted there: its pointer is on the slow lane's queue
    assert_eq!((poll.received, poll.failed), (1, 0));
    assert!(receiver.requests().is_empty());
    let slow_mapping = EventSourceMapping {
        queue_url: stack.resources.slow_deliveries_queue_url().to_owned(),
        ..stack.deliveries_mapping()
    };
    let poll = slow_mapping
        .poll_once(&slow_lane, "slow-1")
        .await
        .expect("poll");

    // AND the slow lane delivers it; answered fast, the endpoint is no longer slow
    assert_eq!((poll.received, poll.failed), (1, 0));
    assert_eq!(receiver.requests().len(), 1);
    let recovered = store
        .endpoint(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert_eq!(recovered.health.slow_since, None);
}

#[tokio::test]
async fn a_sealed_secret_copied_into_another_tenants_endpoint_fails_warm_as_it_does_cold() {
    // GIVEN endpoints of two tenants, and a warm store that opened acme's secret
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let mine = stack.add_endpoint(&d, "http://127.0.0.1:9/a", &[]).await;
    let globex = TenantId::parse("globex").expect("tenant");
    let theirs = d
        .outbound
        .add_endpoint(
            &globex,
            EndpointChange {
                url: Some("http://127.0.0.1:9/b".into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint");
    let warm = stack.outbound_store();
    let opened = warm
        .endpoint_with_secrets(&acme(), &mine.id)
        .await
        .expect("read")
        .expect("endpoint");

    // WHEN a table writer copies acme's sealed secret into globex's endpoint item
    let sealed = raw_item(&stack, "t#acme", &format!("ep#{}", mine.id))
        .await
        .expect("item")["secret_current"]
        .clone();
    stack
        .dynamodb
        .update_item()
        .table_name(stack.resources.outbound_table())
        .key("pk", AttributeValue::S("t#globex".into()))
        .key("sk", AttributeValue::S(format!("ep#{}", theirs.id)))
        .update_expression("SET secret_current = :s")
        .expression_attribute_values(":s", sealed)
        .send()
        .await
        .expect("copied");

    // THEN reading globex's endpoint fails, warm as cold: acme's secret never signs for it
    let cold = stack.outbound_store();
    assert!(
        cold.endpoint_with_secrets(&globex, &theirs.id)
            .await
            .is_err()
    );
    // (Before, the warm store's cache, keyed by the sealed text alone, handed out acme's.)
    let warm_read = warm.endpoint_with_secrets(&globex, &theirs.id).await;
    assert!(warm_read.is_err(), "{:?}", warm_read.map(|e| e.is_some()));
    assert!(opened.secrets.is_some());
}

#[tokio::test]
async fn custom_header_values_are_sealed_named_in_the_clear_and_sent_with_each_delivery() {
    // GIVEN an endpoint whose partner wants an API key in a header
    const KEY: &str = "sk_partner_must_stay_sealed";
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = d
        .outbound
        .add_endpoint(
            &acme(),
            EndpointChange {
                url: Some(receiver.url()),
                headers: Some(vec![format!("X-Api-Key: {KEY}"), "X-Route: eu".into()]),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint");
    let sk = format!("ep#{}", endpoint.id);

    // THEN the table holds the names in the clear and no value
    let item = raw_item(&stack, "t#acme", &sk).await.expect("item");
    assert!(!format!("{item:?}").contains(KEY), "{item:?}");
    assert!(
        item["headers_sealed"]
            .as_s()
            .is_ok_and(|s| s.starts_with("sealed:v1:"))
    );
    let store = stack.outbound_store();
    let listed = store.endpoint(&acme(), &endpoint.id).await.expect("read");
    let listed = listed.expect("endpoint");
    assert_eq!(listed.headers.names(), ["x-api-key", "x-route"]);
    assert_eq!(listed.headers.opened(), None);

    // AND a change that does not touch them (read without secrets) keeps them
    d.outbound
        .update_endpoint(
            &acme(),
            &endpoint.id,
            EndpointChange {
                description: Some("billing".into()),
                ..EndpointChange::default()
            },
        )
        .await
        .expect("updated");

    // AND each delivery carries them, signed as before
    publish_via_api(&d, &json!({"event_type": "invoice.paid", "payload": {}})).await;
    let poll = stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");
    assert_eq!(poll.received, 1);
    let (headers, _) = receiver.requests().pop().expect("delivered");
    let sent = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(sent("x-api-key").as_deref(), Some(KEY));
    assert_eq!(sent("x-route").as_deref(), Some("eu"));
    assert!(sent("webhook-signature").is_some());
    // AND the caller's trace, continued through the stored message, in a span of its own
    let trace: shared::trace::TraceParent = sent("traceparent")
        .expect("traceparent")
        .parse()
        .expect("valid");
    assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(trace.to_string(), CALLER_TRACE);
}

#[tokio::test]
async fn headers_stored_in_the_clear_before_sealing_are_read_and_sealed_by_the_next_write() {
    // GIVEN an endpoint item written before header values were sealed
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let endpoint = stack.add_endpoint(&d, "http://127.0.0.1:9/in", &[]).await;
    stack
        .dynamodb
        .update_item()
        .table_name(stack.resources.outbound_table())
        .key("pk", AttributeValue::S("t#acme".into()))
        .key("sk", AttributeValue::S(format!("ep#{}", endpoint.id)))
        .update_expression("SET headers = :h")
        .expression_attribute_values(
            ":h",
            AttributeValue::M(HashMap::from([(
                "x-api-key".to_owned(),
                AttributeValue::S("legacy_value".into()),
            )])),
        )
        .send()
        .await
        .expect("legacy item");
    let store = stack.outbound_store();

    // THEN it is read as it was: the name without secrets, the value with them
    let plain = store.endpoint(&acme(), &endpoint.id).await.expect("read");
    assert_eq!(plain.expect("endpoint").headers.names(), ["x-api-key"]);
    let opened = store
        .endpoint_with_secrets(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    let values: Vec<_> = opened.headers.opened().expect("opened").iter().collect();
    assert_eq!(values, [("x-api-key", "legacy_value")]);

    // WHEN the endpoint is next written with its headers
    store.put_endpoint(&opened).await.expect("written");

    // THEN the value is sealed and the clear copy gone
    let item = raw_item(&stack, "t#acme", &format!("ep#{}", endpoint.id))
        .await
        .expect("item");
    assert!(!item.contains_key("headers"));
    assert!(!format!("{item:?}").contains("legacy_value"));
    let reread = store
        .endpoint_with_secrets(&acme(), &endpoint.id)
        .await
        .expect("read")
        .expect("endpoint");
    assert_eq!(reread.headers, opened.headers);
}

/// Run the portal's `language` verification snippet on one delivery; its verdict.
fn run_snippet(language: &str, secret: &str, headers: &[(String, String)], body: &[u8]) -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let command = match language {
        "python" => {
            let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| {
                panic!("INTEROP_PYTHON is not set: run the tests with `make test`")
            });
            let mut command = Command::new(python);
            command.args([
                format!("{root}/tests/interop/run_snippet.py"),
                format!("{root}/functions/portal/snippets/verify.py"),
            ]);
            command
        }
        _ => {
            let modules = std::env::var("INTEROP_NODE_MODULES").unwrap_or_else(|_| {
                panic!("INTEROP_NODE_MODULES is not set: run the tests with `make test`, which installs the Node library")
            });
            let mut command = Command::new("node");
            command.env("NODE_PATH", modules).args([
                format!("{root}/tests/interop/node/run_snippet.js"),
                format!("{root}/functions/portal/snippets/verify.js"),
            ]);
            command
        }
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let case = json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8(body.to_vec()).expect("utf-8"),
    });
    verdict(command, &case)
}

#[tokio::test]
async fn the_portals_python_and_node_snippets_verify_a_real_delivery_and_refuse_a_forged_one() {
    // GIVEN a real delivery from the stack to a receiver
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &[]).await;
    let secret = endpoint.secrets.expect("secret").current;
    publish_via_api(
        &d,
        &json!({"event_type": "invoice.paid", "payload": {"id": "inv_snippet", "amount": 12}}),
    )
    .await;
    stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");
    let (headers, body) = receiver.requests().pop().expect("delivered");

    for language in ["python", "node"] {
        // THEN the page's own snippet verifies it with the official library
        let verdict = run_snippet(language, secret.expose(), &headers, &body);
        assert_eq!(verdict["verified"], true, "{language}: {verdict}");
        assert_eq!(verdict["payload"]["id"], "inv_snippet", "{language}");

        // AND refuses the same delivery with its body altered
        let forged = String::from_utf8(body.clone())
            .expect("utf-8")
            .replace("12", "99");
        let verdict = run_snippet(language, secret.expose(), &headers, forged.as_bytes());
        assert_eq!(verdict["verified"], false, "{language}: {verdict}");
    }
}

#[tokio::test]
async fn an_erased_message_keeps_no_payload_stays_a_duplicate_and_is_never_posted_on_dynamodb() {
    use shared::{erasure::erase_message, ports::Erasure, record::ERASED_REASON};
    // GIVEN a published message whose first attempt failed: its delivery waits, pending, with
    // the partner's answer kept
    let stack = Stack::new().await;
    let d = stack.dispatcher(
        settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(500)).await;
    let endpoint = stack.add_endpoint(&d, &receiver.url(), &[]).await;
    let body = json!({"event_type": "invoice.paid", "payload": {"email": "jo@example.com"}, "idempotency_key": "order-erase"});
    let (status, published) = publish_via_api(&d, &body).await;
    assert_eq!(status, 202, "{published}");
    stack
        .deliveries_mapping()
        .poll_once(&d, "dispatch-1")
        .await
        .expect("poll");
    assert_eq!(receiver.requests().len(), 1);
    let key = DeliveryKey {
        tenant: acme(),
        message_id: MessageId::parse("order-erase").expect("id"),
        endpoint_id: endpoint.id.clone(),
    };
    let delivery = raw_item(
        &stack,
        "m#acme#order-erase",
        &format!("dlv#{}", endpoint.id),
    )
    .await
    .expect("delivery");
    assert!(delivery.contains_key("response_body"), "{delivery:?}");

    // WHEN an operator erases it (audited in the events table, as inbound erasures are)
    let audits = stack.store();
    let erasure = Erasure {
        at: SystemTime::now(),
        actor: "dpo".into(),
    };
    // Another tenant naming the same id reaches nothing
    let theirs = erase_message(
        &d.outbound.store,
        &audits,
        &TenantId::parse("other").expect("tenant"),
        &key.message_id,
        &erasure,
        false,
    )
    .await;
    assert!(theirs.is_err(), "{theirs:?}");
    let report = erase_message(
        &d.outbound.store,
        &audits,
        &acme(),
        &key.message_id,
        &erasure,
        false,
    )
    .await
    .expect("erased");
    assert_eq!((report.erased, report.audited), (1, true));
    assert_eq!(report.answers_cleared, Some(1));

    // THEN the message item keeps no payload, only its hash and who erased it
    let item = raw_item(&stack, "m#acme#order-erase", "msg")
        .await
        .expect("message");
    for gone in ["payload", "payload_z", "payload_ref"] {
        assert!(!item.contains_key(gone), "{gone}: {item:?}");
    }
    assert!(item.contains_key("content_hash") && item.contains_key("erased_at"));
    assert_eq!(
        item.get("erased_by"),
        Some(&AttributeValue::S("dpo".into()))
    );
    let delivery = raw_item(
        &stack,
        "m#acme#order-erase",
        &format!("dlv#{}", endpoint.id),
    )
    .await
    .expect("delivery");
    assert!(!delivery.contains_key("response_body"), "{delivery:?}");

    // AND a repeated publish of the same content is its duplicate, other content a conflict
    let (status, again) = publish_via_api(&d, &body).await;
    assert_eq!(
        (status, again["duplicate"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    let other = json!({"event_type": "invoice.paid", "payload": {"email": "x@example.com"}, "idempotency_key": "order-erase"});
    assert_eq!(publish_via_api(&d, &other).await.0, 409);

    // AND the waiting delivery ends, cancelled, without a POST
    let again = Message {
        message_id: "again".into(),
        receipt_handle: None,
        body: DeliveryPointer::new(&key).to_json(),
        receive_count: 2,
        sent_at: None,
    };
    assert_eq!(
        d.dispatch(&again, "dispatch-2").await,
        Dispatched::Skipped(ERASED_REASON)
    );
    assert_eq!(receiver.requests().len(), 1, "never posted again");
    let ended = d
        .outbound
        .store
        .delivery(&key)
        .await
        .expect("read")
        .expect("delivery");
    assert_eq!(ended.status, DeliveryStatus::Cancelled);
}

#[tokio::test]
async fn erasing_a_relayed_message_drops_its_reference_and_leaves_the_events_object() {
    use shared::{erasure::erase_message, ports::Erasure};
    // GIVEN a message relaying an inbound event's payload by reference
    let stack = Stack::new().await;
    let d = stack.dispatcher_over(
        stack
            .outbound_store()
            .with_payloads(stack.s3.clone(), stack.resources.payloads_bucket()),
        settings("0,0", EgressPolicy::LOCAL_DEVELOPMENT),
        StaticResolver::default(),
    );
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    stack.add_endpoint(&d, &receiver.url(), &["stripe.*"]).await;
    let (payload, location, id) = relay_large_payload(&stack, &d, "evt_erased").await;

    // WHEN it is erased by a store without the bucket (the erase never touches S3)
    let without = stack.outbound_store();
    let report = erase_message(
        &without,
        &stack.store(),
        &acme(),
        &id,
        &Erasure {
            at: SystemTime::now(),
            actor: "dpo".into(),
        },
        false,
    )
    .await
    .expect("erased");

    // THEN the reference is gone from the message, the hash kept, and the object is the
    // event's to erase (with `--event`): still there
    assert!(report.offloaded && report.audited);
    assert_eq!(report.payload_hash, published_hash(&payload));
    let item = raw_item(&stack, &format!("m#acme#{id}"), "msg")
        .await
        .expect("stored");
    assert!(!item.contains_key("payload_ref"), "{item:?}");
    let tomb = without
        .message(&acme(), &id)
        .await
        .expect("read without the bucket")
        .expect("kept");
    assert!(tomb.is_erased() && tomb.payload.is_empty() && tomb.payload_location.is_none());
    stack
        .s3
        .head_object()
        .bucket(stack.resources.payloads_bucket())
        .key(location)
        .send()
        .await
        .expect("the inbound event's object stays");
}
