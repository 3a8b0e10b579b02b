//! The local stack itself: resources match template.yaml, and the HTTP runner serves the
//! deployed ingress handler.

use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use shared::{
    aws::DynamoEventStore, ids::TenantId, ingress::IngressSettings, provider::Provider,
    tenant::ProviderConfig,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::*;

#[tokio::test]
async fn provisioned_resources_match_the_template() {
    let stack = Stack::new().await;

    let table = stack
        .dynamodb
        .describe_table()
        .table_name(stack.resources.events_table())
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let index = &table.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some("by_tenant_status"));
    let keys: Vec<&str> = index
        .key_schema()
        .iter()
        .map(|k| k.attribute_name())
        .collect();
    assert_eq!(keys, ["tenant_status", "status_at"]);

    let attributes = stack
        .sqs
        .get_queue_attributes()
        .queue_url(stack.resources.events_queue_url())
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes")
        .attributes
        .expect("some");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy])
            .expect("redrive json");
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "6"
    );
    assert_eq!(
        redrive["deadLetterTargetArn"],
        stack
            .resources
            .queue_arn("EventsDeadLetterQueue")
            .expect("dlq arn")
    );
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "180");
}

/// GIVEN the HTTP runner in front of `front`, tenant demo with Stripe signed by `whsec_runner`.
async fn runner(
    front: local_stack::server::Front,
) -> (
    Stack,
    ProviderConfig,
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let stack = Stack::new().await;
    let config = ProviderConfig::new(
        TenantId::parse("demo").expect("tenant"),
        Provider::Stripe,
        shared::secret::Secret::new("whsec_runner"),
    );
    stack.add_tenant(&config).await;
    // A tenant the publish API knows: it has an outbound policy.
    use shared::outbound::ports::EndpointStore;
    shared::aws::DynamoOutboundStore::without_secrets(
        stack.dynamodb.clone(),
        stack.resources.outbound_table(),
    )
    .put_tenant_policy(&config.tenant, &shared::outbound::TenantPolicy::default())
    .await
    .expect("policy");
    let sdk = local_stack::aws::sdk_config(&endpoint()).await;
    let mut ingress_config = local_stack::dev::ingress_config(&stack.resources);
    ingress_config.max_body_bytes = IngressSettings::default().max_body_bytes;
    let routes = local_stack::server::Routes {
        front,
        ingress: Arc::new(::ingress::build(&sdk, &ingress_config)),
        api: Arc::new(::api::build(
            &sdk,
            &local_stack::dev::api_config(&stack.resources).expect("api config"),
        )),
        portal: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(local_stack::server::serve(listener, routes));
    (stack, config, address, server)
}

#[tokio::test]
async fn the_http_runner_serves_the_ingress_handler() {
    let (stack, config, address, server) = runner(local_stack::server::Front::ApiGateway).await;

    let body = br#"{"id":"evt_runner_1","object":"event","type":"invoice.paid","created":1}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let headers = sign(&config, "whsec_runner", body, now, "");
    let mut request = format!(
        "POST /webhooks/demo/stripe HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");

    // The publish route goes to the API function.
    let message =
        br#"{"event_type":"invoice.paid","payload":{"id":"inv_1"},"idempotency_key":"order-1"}"#;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /v1/tenants/demo/messages HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        message.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(message).await.expect("write body");
    let mut published = String::new();
    stream.read_to_string(&mut published).await.expect("read");

    // The catalog's routes go there too: a registered schema refuses a payload that breaks it.
    let call = |method: &str, path: &str, body: &str| {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let body = body.to_owned();
        async move { exchange(address, &head, body.as_bytes()).await }
    };
    let registered = call(
        "POST",
        "/v1/tenants/demo/event-types",
        r#"{"name":"order.shipped","schema":{"type":"object","required":["carrier"]}}"#,
    )
    .await;
    let shown = call("GET", "/v1/tenants/demo/event-types/order.shipped", "").await;
    let refused = call(
        "POST",
        "/v1/tenants/demo/messages",
        r#"{"event_type":"order.shipped","payload":{}}"#,
    )
    .await;
    let spec = call("GET", "/v1/openapi.json", "").await;
    server.abort();
    assert!(registered.starts_with("HTTP/1.1 201"), "{registered}");
    assert!(shown.contains(r#""name":"order.shipped""#), "{shown}");
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(refused.contains(r#""keyword":"required""#), "{refused}");
    assert!(spec.contains(r#""openapi":"3.1.0""#), "{spec}");
    assert!(published.starts_with("HTTP/1.1 202"), "{published}");
    assert!(
        published.contains(r#""message_id":"order-1""#),
        "{published}"
    );

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""id":"evt_runner_1""#), "{answer}");
    let store = DynamoEventStore::new(stack.dynamodb.clone(), stack.resources.events_table());
    let key = shared::record::EventKey {
        tenant: TenantId::parse("demo").expect("tenant"),
        provider: Provider::Stripe,
        event_id: shared::ids::EventId::parse("evt_runner_1").expect("id"),
    };
    use shared::ports::EventStore;
    let record = store.get(&key).await.expect("read").expect("stored");
    assert!(
        record
            .correlation
            .request_id
            .as_deref()
            .is_some_and(|id| id.starts_with("local-"))
    );
}

/// Send `head` and `body` to `address`; the raw HTTP answer.
async fn exchange(address: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn the_runner_serves_the_same_webhook_routes_as_a_function_url() {
    // GIVEN the runner handing webhooks over as a Function URL does: no path parameters.
    let (_stack, config, address, server) = runner(local_stack::server::Front::FunctionUrl).await;

    // WHEN a signed delivery, a GET and a path with no provider arrive.
    let body = br#"{"id":"evt_url_1","object":"event","type":"invoice.paid","created":1}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut head = format!(
        "POST /webhooks/demo/stripe HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in &sign(&config, "whsec_runner", body, now, "") {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let accepted = exchange(address, &head, body).await;
    let get = exchange(
        address,
        &format!(
            "GET /webhooks/demo/stripe HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
        ),
        b"",
    )
    .await;
    let short = exchange(
        address,
        &format!(
            "POST /webhooks/demo HTTP/1.1\r\nhost: {address}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        ),
        b"{}",
    )
    .await;
    server.abort();

    // THEN the delivery is accepted as through API Gateway; a GET reaches the ingress, which
    // answers 405 for a provider without a GET handshake; a short path is 404.
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    assert!(accepted.contains(r#""id":"evt_url_1""#), "{accepted}");
    assert!(get.starts_with("HTTP/1.1 405"), "{get}");
    assert!(short.starts_with("HTTP/1.1 404"), "{short}");
    assert!(short.contains(r#"{"message":"Not Found"}"#), "{short}");
}

/// A function that takes its time over a message whose body is `slow`, and notes when it
/// finished each one.
#[derive(Default)]
struct Timed {
    finished: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

impl local_stack::event_source::SqsFunction for Timed {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_runtime::Error> {
        for record in &event.payload.records {
            let body = record.body.clone().unwrap_or_default();
            if body == "slow" {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
            self.finished
                .lock()
                .expect("lock")
                .push((body, std::time::Instant::now()));
        }
        Ok(aws_lambda_events::event::sqs::SqsBatchResponse::default())
    }
}

#[tokio::test]
async fn the_event_source_runs_batches_at_once_so_a_slow_one_holds_up_no_other() {
    // GIVEN a slow message queued before a fast one, one message per batch
    let stack = Stack::new().await;
    let mapping = local_stack::event_source::EventSourceMapping {
        sqs: stack.sqs.clone(),
        queue_url: stack.resources.deliveries_queue_url().to_owned(),
        batch_size: 1,
        batching_window: std::time::Duration::ZERO,
    };
    for body in ["slow", "fast"] {
        stack
            .sqs
            .send_message()
            .queue_url(stack.resources.deliveries_queue_url())
            .message_body(body)
            .send()
            .await
            .expect("sent");
    }

    // WHEN the event source runs, as Lambda's does, several batches at once
    let function = Timed::default();
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        mapping.run(
            &function,
            local_stack::event_source::DISPATCHER_MAX_CONCURRENCY,
        ),
    )
    .await;

    // THEN the fast one was done long before the slow one
    let finished = function.finished.lock().expect("lock").clone();
    let at = |body: &str| {
        finished
            .iter()
            .find(|(b, _)| b == body)
            .map(|(_, at)| at.duration_since(started))
            .unwrap_or_else(|| panic!("{body} was not handled: {finished:?}"))
    };
    assert!(
        at("fast") < std::time::Duration::from_secs(2),
        "{finished:?}"
    );
    assert!(at("slow") >= std::time::Duration::from_secs(3));
}
