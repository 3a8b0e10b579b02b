//! The portal in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! the local stack, as a partner uses it. Screenshots of each page go to
//! `target/portal-screenshots/` for review. `make test` installs Chromium and chromedriver; a
//! missing one fails the test, it is never skipped.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::{Value, json};
use shared::{
    ids::TenantId,
    outbound::{admin::EndpointChange, ports::EndpointStore},
    portal::Grant,
};
use tokio::{net::TcpListener, process::Command};

use crate::support::*;

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
    shots: PathBuf,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Self {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chrome_bin = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port().await;
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin} ({e}): `make test` installs chromium and chromium-driver")
            });
        let client = Client::builder(TokioExecutor::new()).build_http();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Self {
            client,
            base,
            session: String::new(),
            shots: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/portal-screenshots"
            )),
            _driver: driver,
        };
        let started = Instant::now();
        loop {
            if browser.raw("GET", "/status", None).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = browser
            .call(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chrome_bin,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,1000"]
                    }
                }}})),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        std::fs::create_dir_all(&browser.shots).expect("screenshot directory");
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(value["value"].clone())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.raw(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    async fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, if the page has one.
    async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        // A found element is `{"element-6066-...": id}` (the W3C web element identifier); an
        // error (no such element) has no string value.
        found
            .as_object()
            .filter(|o| !o.contains_key("error"))
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    async fn element(&self, css: &str) -> String {
        match self.find(css).await {
            Some(id) => id,
            None => panic!(
                "no `{css}` on {}:\n{}",
                self.url().await,
                self.source().await
            ),
        }
    }

    /// Whether element `id` belongs to a page that is gone.
    async fn is_stale(&self, id: &str) -> bool {
        let answer = self
            .raw("GET", &self.at(&format!("/element/{id}/name")), None)
            .await;
        answer.is_ok_and(|v| v.get("error").is_some())
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call("GET", &self.at(&format!("/element/{id}/text")), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/clear")),
            Some(json!({})),
        )
        .await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Click a form's button and wait for the page it loads: every click here submits a form,
    /// and reading the next page before the old one is gone would read the old one.
    async fn click(&self, css: &str) {
        let page = self.element("html").await;
        let id = self.element(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
        let started = Instant::now();
        while !self.is_stale(&page).await {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "clicking `{css}` loaded no page"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Save the page as `target/portal-screenshots/{name}.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.call("GET", &self.at("/screenshot"), None).await;
        let bytes = STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("screenshot written");
    }
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

/// A partner's receiver on this machine: answers every delivery 200.
async fn receiver() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_partner_manages_endpoints_in_a_real_browser_and_sees_only_their_tenant() {
    // GIVEN the local stack serving the portal, a partner receiver, and another tenant's endpoint
    let stack = Stack::new().await;
    let sdk = local_stack::aws::sdk_config(&endpoint()).await;
    let portal = Arc::new(
        ::portal::build(
            &sdk,
            &local_stack::dev::portal_config(&stack.resources).expect("config"),
        )
        .expect("portal"),
    );
    let acme = TenantId::parse("acme").expect("tenant");
    let globex_endpoint = portal
        .dispatcher
        .outbound
        .add_endpoint(
            &TenantId::parse("globex").expect("tenant"),
            EndpointChange {
                url: Some("http://127.0.0.1:9/globex-secret-path".into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("globex endpoint");
    let routes = local_stack::server::Routes {
        front: local_stack::server::Front::ApiGateway,
        ingress: local_stack::dev::build_ingress(&sdk, &stack.resources),
        api: Arc::new(::api::build(
            &sdk,
            &local_stack::dev::api_config(&stack.resources).expect("api config"),
        )),
        portal: Some(portal.clone()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let site = format!(
        "http://localhost:{}",
        listener.local_addr().expect("address").port()
    );
    let server = tokio::spawn(local_stack::server::serve(listener, routes));
    let partner = receiver().await;
    let link = |token: String| format!("{site}/portal/login?token={token}");
    let token = portal
        .access
        .link(&acme, Grant::default(), Duration::from_secs(3_600))
        .await
        .expect("link");
    portal
        .dispatcher
        .outbound
        .store
        .put_tenant_policy(&acme, &shared::outbound::TenantPolicy::default())
        .await
        .expect("a tenant the publish API knows");
    portal
        .dispatcher
        .outbound
        .publish(shared::outbound::publish::PublishRequest {
            tenant: &acme,
            event_type: "invoice.paid",
            payload: br#"{"id":"inv_1"}"#,
            idempotency_key: Some("portal-types-1"),
        })
        .await
        .expect("published");
    portal
        .dispatcher
        .outbound
        .register_event_type(
            &acme,
            "invoice.paid",
            shared::outbound::catalog::EventTypeChange {
                description: Some("An invoice was paid in full.".into()),
                schema: Some(serde_json::json!({
                    "type": "object",
                    "required": ["id", "amount"],
                    "properties": {
                        "id": {"type": "string", "description": "The invoice's id.", "pattern": "^inv_"},
                        "amount": {"type": "integer", "minimum": 0, "description": "In cents."},
                        "currency": {"enum": ["eur", "usd"]}
                    }
                })),
                examples: Some(vec![serde_json::json!({"id": "inv_1", "amount": 4200, "currency": "eur"})]),
                ..Default::default()
            },
        )
        .await
        .expect("a type in the catalog");
    let browser = Browser::start().await;

    // WHEN the partner opens the link: it lands on a page whose button opens the portal (a
    // mail scanner fetching the link spends nothing)
    browser.open(&link(token.clone())).await;
    assert!(
        browser.find("#open").await.is_some(),
        "{}",
        browser.source().await
    );
    browser.screenshot("00-open-the-portal").await;
    browser.click("#open").await;
    assert!(browser.url().await.ends_with("/portal/endpoints"));
    assert!(
        browser.find("#empty").await.is_some(),
        "{}",
        browser.source().await
    );
    assert!(browser.text("#published").await.contains("invoice.paid"));
    browser.screenshot("01-endpoints-empty").await;

    // AND adds an endpoint for invoices
    browser
        .type_into("#url", &format!("http://{partner}/hooks"))
        .await;
    browser.type_into("#description", "Billing sync").await;
    browser
        .type_into("#filter", "invoice.*, customer.created")
        .await;
    browser.click("#add-endpoint").await;
    assert!(browser.text("#notice").await.contains("Endpoint added"));
    assert!(
        browser
            .text("#endpoint-url")
            .await
            .contains(&partner.to_string())
    );

    // AND sends a test event, and sees its attempt
    browser.click("#send-test").await;
    let result = browser.text("#test-result").await;
    assert!(result.contains("answered 200"), "{result}");
    assert!(browser.text("#attempts").await.contains("test"));
    assert!(browser.text("#summary").await.contains("100.0 %"));
    browser.screenshot("02-endpoint-tested").await;

    // AND reveals, then rotates, the signing secret
    assert!(
        !browser.source().await.contains("whsec_"),
        "no secret until asked"
    );
    browser.click("#reveal").await;
    let first = browser.text("#secret-value").await;
    assert!(first.starts_with("whsec_"), "{first}");
    browser.click("#rotate").await;
    let second = browser.text("#secret-value").await;
    assert!(second.starts_with("whsec_") && second != first);
    browser.screenshot("03-secret-rotated").await;

    // AND reads the event catalog, and sends a type's example to the endpoint
    browser.open(&format!("{site}/portal/event-types")).await;
    assert!(browser.text("#event-types").await.contains("invoice.paid"));
    browser.click("#event-types a").await;
    let fields = browser.text("#fields").await;
    assert!(
        fields.contains("amount") && fields.contains("In cents."),
        "{fields}"
    );
    browser.click(".example button").await;
    let sent = browser.text("#sent-result").await;
    assert!(sent.contains("answered 200"), "{sent}");
    browser.screenshot("08-event-type").await;

    // AND finds how to verify deliveries, in their language
    browser.open(&format!("{site}/portal/verify")).await;
    assert!(browser.text("#python").await.contains("standardwebhooks"));
    assert!(browser.text("#node").await.contains("tested"));
    browser.screenshot("09-verify").await;

    // AND finds a published message in the log, delivered, with its attempt
    portal
        .dispatcher
        .outbound
        .publish(shared::outbound::publish::PublishRequest {
            tenant: &acme,
            event_type: "invoice.paid",
            payload: br#"{"id":"inv_2","amount":100}"#,
            idempotency_key: Some("order-browser-1"),
        })
        .await
        .expect("published");
    let mapping = local_stack::event_source::EventSourceMapping {
        sqs: stack.sqs.clone(),
        queue_url: stack.resources.deliveries_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::from_secs(0),
    };
    let poll = mapping
        .poll_once(&portal.dispatcher, "dispatch-1")
        .await
        .expect("poll");
    assert_eq!(poll.received, 1);
    browser.open(&format!("{site}/portal/messages")).await;
    let listed = browser.text("#messages").await;
    assert!(
        listed.contains("order-browser-1") && listed.contains("delivered"),
        "{listed}"
    );
    browser.click("#messages a").await;
    assert!(browser.text("#deliveries").await.contains("delivered"));
    assert!(browser.text("#attempts").await.contains("200"));
    browser.screenshot("10-message").await;

    // THEN a refused URL is explained and nothing is added
    browser.open(&format!("{site}/portal/endpoints")).await;
    browser
        .type_into("#url", "https://169.254.169.254/latest/meta-data")
        .await;
    browser.click("#add-endpoint").await;
    assert!(browser.text("#problem").await.contains("refused"));
    browser.screenshot("04-refused-url").await;
    let ours = portal
        .dispatcher
        .outbound
        .store
        .endpoints(&acme)
        .await
        .expect("list");
    assert_eq!(ours.len(), 1);

    // AND another tenant's endpoint cannot be reached (changing it is refused alike: unit tests)
    browser
        .open(&format!("{site}/portal/endpoints/{}", globex_endpoint.id))
        .await;
    assert!(browser.text("#message").await.contains("no such endpoint"));
    assert!(!browser.source().await.contains("globex-secret-path"));

    // AND a used link opens nothing
    browser.open(&link(token)).await;
    browser.click("#open").await;
    assert!(browser.text("#message").await.contains("already used"));
    browser.screenshot("05-link-used").await;

    // AND a read-only session sees everything and can change nothing
    let read_only = portal
        .access
        .link(
            &acme,
            Grant {
                read_only: true,
                operator: false,
            },
            Duration::from_secs(600),
        )
        .await
        .expect("link");
    browser.open(&link(read_only)).await;
    browser.click("#open").await;
    assert!(browser.find("#add").await.is_none());
    assert!(browser.text("#endpoints").await.contains("Billing sync"));
    browser
        .open(&format!("{site}/portal/endpoints/{}", ours[0].id))
        .await;
    for control in ["#rotate", "#reveal", "#send-test", "#edit"] {
        assert!(browser.find(control).await.is_none(), "{control} shown");
    }
    assert!(browser.text("#attempts").await.contains("200"));
    browser.screenshot("06-read-only").await;

    // AND an operator's session adds the inbound pages: events, health, the DLQ
    let operator = portal
        .access
        .link(
            &acme,
            Grant {
                read_only: false,
                operator: true,
            },
            Duration::from_secs(600),
        )
        .await
        .expect("link");
    browser.open(&link(operator)).await;
    browser.click("#open").await;
    browser.open(&format!("{site}/portal/health")).await;
    assert!(browser.text("#checks").await.contains("HEALTHY"));
    assert!(browser.text("#latency").await.contains("p99"));
    browser.screenshot("07-operator-health").await;
    browser.open(&format!("{site}/portal/events")).await;
    assert!(browser.find("#no-events").await.is_some());
    browser.open(&format!("{site}/portal/dlq")).await;
    assert!(browser.text("#waiting").await.contains("0 dead events"));

    browser.call("DELETE", &browser.at(""), None).await;
    server.abort();
}

/// The portal store's contract, run against the memory double and the DynamoDB adapter alike.
async fn portal_store_contract(store: &dyn shared::portal::PortalStore) {
    use shared::portal::StoredSession;
    let later = std::time::SystemTime::now() + Duration::from_secs(600);
    let nonce = format!("n{}", free_port().await);
    assert!(store.spend_link(&nonce, later).await.expect("spend"));
    assert!(!store.spend_link(&nonce, later).await.expect("spend again"));

    let key = shared::portal::session_key(&"ab".repeat(32));
    let session = StoredSession {
        tenant: TenantId::parse("acme").expect("tenant"),
        read_only: true,
        operator: true,
        expires_at: std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    };
    assert_eq!(store.session(&key).await.expect("read"), None);
    store.put_session(&key, &session).await.expect("put");
    assert_eq!(
        store.session(&key).await.expect("read"),
        Some(session.clone())
    );
    store.delete_session(&key).await.expect("delete");
    assert_eq!(store.session(&key).await.expect("read"), None);
}

#[tokio::test]
async fn the_portal_store_spends_a_link_once_and_keeps_sessions_in_memory_and_in_dynamodb() {
    portal_store_contract(&shared::memory::MemoryPortalStore::new()).await;
    let stack = Stack::new().await;
    portal_store_contract(&shared::aws::DynamoPortalStore::new(
        stack.dynamodb.clone(),
        stack.resources.outbound_table(),
    ))
    .await;
}
