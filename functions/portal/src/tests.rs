//! The portal's rules on in-memory adapters: access, CSRF, read-only, tenant isolation, bad
//! input and secrets. The browser walk-through against the local stack is in the integration
//! tests.

use std::{sync::Arc, time::Duration};

use lambda_http::http;
use shared::{
    clock::ManualClock,
    ids::TenantId,
    memory::{
        HmacLinkSigner, MemoryDeliveryQueue, MemoryOutboundStore, MemoryPortalStore,
        ScriptedTransport,
    },
    outbound::{
        Outbound, OutboundSettings, admin::EndpointChange, ports::EndpointStore,
        ssrf::StaticResolver,
    },
    portal::Grant,
    processor::NoJitter,
};

use super::*;

type TestPortal = Portal<
    MemoryPortalStore,
    HmacLinkSigner,
    ManualClock,
    MemoryOutboundStore,
    Arc<MemoryDeliveryQueue>,
    Arc<MemoryDeliveryQueue>,
    ScriptedTransport,
    ManualClock,
    NoJitter,
>;

const NOW: u64 = 1_750_000_000;

fn portal() -> TestPortal {
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let outbound = Outbound::new(
        MemoryOutboundStore::new(),
        queue.clone(),
        ManualClock::at_unix(NOW),
        OutboundSettings::default(),
    )
    .with_resolver(Arc::new(
        StaticResolver::default()
            .with("partner.example", &["93.184.216.34".parse().expect("ip")])
            .with("internal.example", &["10.0.0.7".parse().expect("ip")]),
    ));
    Portal::new(
        PortalAccess::new(
            MemoryPortalStore::new(),
            HmacLinkSigner(b"test portal key".to_vec()),
            ManualClock::at_unix(NOW),
        ),
        Dispatcher::new(outbound, queue, ScriptedTransport::new(), NoJitter),
    )
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("tenant")
}

fn get(path: &str, cookie: Option<&str>) -> Request {
    let mut builder = http::Request::builder().method("GET").uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", format!("{COOKIE}={cookie}"));
    }
    builder.body(Body::Empty).expect("request")
}

fn post(path: &str, cookie: &str, form: &[(&str, &str)]) -> Request {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("cookie", format!("other=1; {COOKIE}={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::Text(body))
        .expect("request")
}

/// The login form's POST, with the landing page's check in the form and in the cookie.
fn login(token: &str, check: &str, cookie: &str) -> Request {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", token), ("check", check)])
        .finish();
    http::Request::builder()
        .method("POST")
        .uri("/portal/login")
        .header("cookie", format!("{LOGIN_COOKIE}={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::Text(body))
        .expect("request")
}

/// Open a link as a browser does: its landing page, then its button.
async fn open_link(p: &TestPortal, token: &str) -> Response<Body> {
    let landing = p
        .handle(get(&format!("/portal/login?token={token}"), None))
        .await;
    if landing.status() != StatusCode::OK {
        return landing;
    }
    let check = set_cookie_value(&landing, LOGIN_COOKIE);
    assert!(
        text(&landing).contains(&check),
        "the form carries the check"
    );
    p.handle(login(token, &check, &check)).await
}

/// The value a response's `Set-Cookie` gives `name`.
fn set_cookie_value(response: &Response<Body>, name: &str) -> String {
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("no {name} in {cookie}"))
}

fn text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// GIVEN a session for `name` opened by a link.
async fn signed_in(p: &TestPortal, name: &str, read_only: bool) -> Session {
    let grant = Grant {
        read_only,
        operator: false,
    };
    signed_in_as(p, name, grant).await
}

/// GIVEN a session for `name` with `grant`, opened through the login page.
async fn signed_in_as(p: &TestPortal, name: &str, grant: Grant) -> Session {
    let token = p
        .access
        .link(&tenant(name), grant, Duration::from_secs(3_600))
        .await
        .expect("link");
    let response = open_link(p, &token).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let id = set_cookie_value(&response, COOKIE);
    p.access.session(&id).await.expect("read").expect("session")
}

async fn add(p: &TestPortal, name: &str, url: &str) -> shared::outbound::endpoint::Endpoint {
    p.dispatcher
        .outbound
        .add_endpoint(
            &tenant(name),
            EndpointChange {
                url: Some(url.into()),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint")
}

#[tokio::test]
async fn a_link_signs_in_once_and_pages_need_its_session() {
    let p = portal();
    let token = p
        .access
        .link(&tenant("acme"), Grant::default(), Duration::from_secs(600))
        .await
        .expect("link");
    // A mail scanner fetching the link first spends nothing: the landing page only offers it.
    for _ in 0..2 {
        let prefetched = p
            .handle(get(&format!("/portal/login?token={token}"), None))
            .await;
        assert_eq!(prefetched.status(), StatusCode::OK);
        assert!(prefetched.headers().get(header::LOCATION).is_none());
    }
    // A login form posted from elsewhere (no check cookie, or another one) opens nothing.
    for (check, cookie) in [("x1", ""), ("x1", "x2"), ("", "")] {
        let forged = p.handle(login(&token, check, cookie)).await;
        assert_eq!(
            forged.status(),
            StatusCode::FORBIDDEN,
            "{check:?} {cookie:?}"
        );
    }
    let first = open_link(&p, &token).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()[header::LOCATION], "/portal/endpoints");

    let reused = open_link(&p, &token).await;
    assert_eq!(reused.status(), StatusCode::FORBIDDEN);
    assert!(text(&reused).contains("already used"));

    for (path, cookie) in [
        ("/portal/endpoints", None),
        ("/portal/endpoints", Some("0".repeat(64))),
        ("/portal/endpoints", Some("not-a-session".into())),
    ] {
        let response = p.handle(get(path, cookie.as_deref())).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie:?}");
        assert!(text(&response).contains("Ask for a new portal link"));
    }
    let forged = p
        .handle(get(
            "/portal/login?token=eyJ0ZW5hbnQiOiJhY21lIn0.AAAA",
            None,
        ))
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_change_needs_the_csrf_token_and_a_read_only_session_changes_nothing() {
    let p = portal();
    let writer = signed_in(&p, "acme", false).await;
    let reader = signed_in(&p, "acme", true).await;
    let url = "https://partner.example/hooks";

    let response = p
        .handle(post(
            "/portal/endpoints",
            &writer.id,
            &[("csrf", "wrong"), ("url", url)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = p
        .handle(post("/portal/endpoints", &writer.id, &[("url", url)]))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = p
        .handle(post(
            "/portal/endpoints",
            &reader.id,
            &[("csrf", &reader.csrf), ("url", url)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(text(&response).contains("read-only"));
    let page = text(&p.handle(get("/portal/endpoints", Some(&reader.id))).await);
    assert!(!page.contains("Add an endpoint"), "no forms for a reader");

    assert!(
        p.dispatcher
            .outbound
            .store
            .endpoints(&tenant("acme"))
            .await
            .expect("list")
            .is_empty(),
        "nothing was added"
    );

    let response = p
        .handle(post(
            "/portal/endpoints",
            &writer.id,
            &[("csrf", &writer.csrf), ("url", url)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        p.dispatcher
            .outbound
            .store
            .endpoints(&tenant("acme"))
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_refused_url_or_filter_is_shown_with_its_reason_and_nothing_is_stored() {
    let p = portal();
    let session = signed_in(&p, "acme", false).await;
    for (url, filter, reason) in [
        ("http://partner.example/hooks", "", "https"),
        ("https://internal.example/hooks", "", "refused"),
        ("not a url", "", "URL"),
        ("https://partner.example/hooks", "invoice.**", "filter"),
    ] {
        let response = p
            .handle(post(
                "/portal/endpoints",
                &session.id,
                &[
                    ("csrf", &session.csrf),
                    ("url", url),
                    ("filter", filter),
                    ("description", "<script>alert(1)</script>"),
                ],
            ))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url} {filter}");
        let page = text(&response);
        assert!(
            page.to_lowercase().contains(&reason.to_lowercase()),
            "{url}: {page}"
        );
        assert!(!page.contains("<script>alert"), "escaped");
        assert!(page.contains("&lt;script&gt;"), "typed input kept, escaped");
    }
    assert!(
        p.dispatcher
            .outbound
            .store
            .endpoints(&tenant("acme"))
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn the_filter_offers_the_types_this_tenant_published_and_no_others() {
    let p = portal();
    let session = signed_in(&p, "acme", false).await;
    for name in ["acme", "globex"] {
        p.dispatcher
            .outbound
            .store
            .put_tenant_policy(&tenant(name), &shared::outbound::TenantPolicy::default())
            .await
            .expect("a tenant the publish API knows");
    }
    for (name, event_type) in [
        ("acme", "invoice.paid"),
        ("acme", "invoice.voided"),
        ("globex", "secret.merger"),
    ] {
        p.dispatcher
            .outbound
            .publish(shared::outbound::publish::PublishRequest {
                tenant: &tenant(name),
                event_type,
                payload: b"{}",
                idempotency_key: None,
            })
            .await
            .expect("published");
    }

    let page = text(&p.handle(get("/portal/endpoints", Some(&session.id))).await);

    assert!(page.contains("<option value=\"invoice.paid\">"), "{page}");
    assert!(page.contains("invoice.voided"));
    assert!(
        !page.contains("secret.merger"),
        "another tenant's types never show"
    );
}

#[tokio::test]
async fn another_tenants_endpoint_is_unreachable_and_secrets_and_header_values_show_only_when_asked()
 {
    let p = portal();
    let acme = signed_in(&p, "acme", false).await;
    let theirs = add(&p, "globex", "https://partner.example/globex").await;
    let ours = add(&p, "acme", "https://partner.example/acme").await;
    let secret = ours
        .secrets
        .as_ref()
        .map(|s| s.current.expose().to_owned())
        .expect("secret");

    let path = format!("/portal/endpoints/{}", theirs.id);
    assert_eq!(
        p.handle(get(&path, Some(&acme.id))).await.status(),
        StatusCode::NOT_FOUND
    );
    let enable = format!("/portal/endpoints/{}/disable", theirs.id);
    let response = p
        .handle(post(&enable, &acme.id, &[("csrf", &acme.csrf)]))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        !text(&p.handle(get("/portal/endpoints", Some(&acme.id))).await)
            .contains("partner.example/globex")
    );

    p.dispatcher
        .outbound
        .update_endpoint(
            &tenant("acme"),
            &ours.id,
            EndpointChange {
                headers: Some(vec!["X-Api-Key: sk_partner_value".into()]),
                ..EndpointChange::default()
            },
        )
        .await
        .expect("headers set");

    let page = text(
        &p.handle(get(
            &format!("/portal/endpoints/{}", ours.id),
            Some(&acme.id),
        ))
        .await,
    );
    assert!(
        !page.contains(&secret),
        "not in the page source until asked"
    );
    assert!(page.contains("x-api-key"), "the header's name is listed");
    assert!(!page.contains("sk_partner_value"), "its value is not");
    let revealed = p
        .handle(post(
            &format!("/portal/endpoints/{}/reveal", ours.id),
            &acme.id,
            &[("csrf", &acme.csrf)],
        ))
        .await;
    assert_eq!(revealed.status(), StatusCode::OK);
    let revealed_page = text(&revealed);
    assert!(revealed_page.contains(&secret));
    assert!(revealed_page.contains("x-api-key: sk_partner_value"));
    assert_eq!(revealed.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn partners_read_the_event_catalog_and_send_an_example_to_their_endpoint() {
    // GIVEN a registered type with a schema and an example, and an endpoint for it
    let p = portal();
    let acme = signed_in(&p, "acme", false).await;
    let ours = add(&p, "acme", "https://partner.example/acme").await;
    p.dispatcher
        .outbound
        .register_event_type(
            &tenant("acme"),
            "invoice.paid",
            shared::outbound::catalog::EventTypeChange {
                description: Some("An invoice was paid <in full>.".into()),
                schema: Some(serde_json::json!({
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string", "description": "The invoice."}}
                })),
                examples: Some(vec![serde_json::json!({"id": "inv_example"})]),
                ..Default::default()
            },
        )
        .await
        .expect("registered");

    // THEN the catalog lists it, escaped, and its page shows its fields and example
    let list = text(&p.handle(get("/portal/event-types", Some(&acme.id))).await);
    assert!(list.contains("/portal/event-types/invoice.paid"), "{list}");
    assert!(list.contains("An invoice was paid &lt;in full&gt;."));
    let page = text(
        &p.handle(get("/portal/event-types/invoice.paid", Some(&acme.id)))
            .await,
    );
    assert!(page.contains("<td class=\"mono\">id</td>"), "{page}");
    assert!(page.contains("inv_example"));
    assert!(page.contains("Send this example"));

    // WHEN the partner sends the example to its endpoint
    let endpoint = ours.id.to_string();
    let sent = p
        .handle(post(
            "/portal/event-types/invoice.paid/send",
            &acme.id,
            &[
                ("csrf", &acme.csrf),
                ("example", "0"),
                ("endpoint", &endpoint),
            ],
        ))
        .await;

    // THEN it went out signed, as a test delivery of that type with that payload
    assert_eq!(sent.status(), StatusCode::OK);
    assert!(text(&sent).contains("Example sent: answered 200"));
    let request = p.dispatcher.transport.requests().pop().expect("sent");
    assert_eq!(request.body, br#"{"id":"inv_example"}"#);
    assert!(
        request
            .headers
            .iter()
            .any(|(n, _)| n == "webhook-signature")
    );

    // AND another tenant neither sees the type nor sends it anywhere
    let globex = signed_in(&p, "globex", false).await;
    let theirs = p
        .handle(get("/portal/event-types/invoice.paid", Some(&globex.id)))
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let refused = p
        .handle(post(
            "/portal/event-types/invoice.paid/send",
            &globex.id,
            &[
                ("csrf", &globex.csrf),
                ("example", "0"),
                ("endpoint", &endpoint),
            ],
        ))
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(p.dispatcher.transport.requests().len(), 1);

    // AND a read-only session reads the page without the button
    let viewer = signed_in(&p, "acme", true).await;
    let read_only = text(
        &p.handle(get("/portal/event-types/invoice.paid", Some(&viewer.id)))
            .await,
    );
    assert!(read_only.contains("inv_example"));
    assert!(!read_only.contains("Send this example"));
}

#[tokio::test]
async fn recovering_failed_deliveries_previews_first_then_sends_them_again() {
    use shared::outbound::{
        delivery::{Delivery, DeliveryStatus},
        ports::DeliveryLog,
        publish::PublishRequest,
    };
    // GIVEN an endpoint with one dead delivery
    let p = portal();
    let acme = signed_in(&p, "acme", false).await;
    let ours = add(&p, "acme", "https://partner.example/acme").await;
    let outbound = &p.dispatcher.outbound;
    let published = outbound
        .publish(PublishRequest {
            tenant: &tenant("acme"),
            event_type: "invoice.paid",
            payload: br#"{"id":"inv_dead"}"#,
            idempotency_key: Some("dead-1"),
        })
        .await
        .expect("published");
    let message = outbound
        .store
        .message(&tenant("acme"), &published.message_id)
        .await
        .expect("read")
        .expect("message");
    let now = outbound.clock.now();
    let dead = Delivery {
        status: DeliveryStatus::Dead,
        attempts: 8,
        ..Delivery::new(&message, &ours.id, false, now)
    };
    outbound
        .store
        .put_delivery_if_absent(&dead)
        .await
        .expect("stored");
    let queued = p.dispatcher.outbound.queue.sent().len();
    let path = format!("/portal/endpoints/{}/recover", ours.id);

    // WHEN the partner previews
    let preview = text(
        &p.handle(post(
            &path,
            &acme.id,
            &[("csrf", &acme.csrf), ("since_hours", "24")],
        ))
        .await,
    );

    // THEN it says what would go, and nothing went
    assert!(
        preview.contains("1 dead delivery from the last 24 hours would be sent again"),
        "{preview}"
    );
    assert_eq!(p.dispatcher.outbound.queue.sent().len(), queued);

    // AND confirming sends it again with a fresh schedule
    let done = text(
        &p.handle(post(
            &path,
            &acme.id,
            &[
                ("csrf", &acme.csrf),
                ("since_hours", "24"),
                ("confirm", "yes"),
            ],
        ))
        .await,
    );
    assert!(done.contains("1 delivery queued again"), "{done}");
    assert_eq!(p.dispatcher.outbound.queue.sent().len(), queued + 1);
    let recovered = outbound
        .store
        .delivery(&dead.key)
        .await
        .expect("read")
        .expect("delivery");
    assert_eq!(
        (recovered.status, recovered.attempts),
        (DeliveryStatus::Pending, 0)
    );

    // AND a made-up window is refused, and another tenant's endpoint is not found
    let odd = p
        .handle(post(
            &path,
            &acme.id,
            &[("csrf", &acme.csrf), ("since_hours", "100000")],
        ))
        .await;
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    let globex = signed_in(&p, "globex", false).await;
    let theirs = p
        .handle(post(
            &path,
            &globex.id,
            &[("csrf", &globex.csrf), ("since_hours", "24")],
        ))
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_message_log_lists_and_finds_messages_and_one_shows_its_deliveries_and_attempts() {
    use shared::outbound::{
        delivery::{Delivery, DeliveryStatus},
        ports::DeliveryLog,
        publish::PublishRequest,
    };
    // GIVEN two messages of acme's, one delivered and one failing, and one of globex's
    let p = portal();
    let acme = signed_in(&p, "acme", false).await;
    let ours = add(&p, "acme", "https://partner.example/acme").await;
    let theirs = add(&p, "globex", "https://partner.example/globex").await;
    let outbound = &p.dispatcher.outbound;
    for (tenant_name, endpoint, id, event_type, status, attempts) in [
        (
            "acme",
            &ours.id,
            "order-1",
            "invoice.paid",
            DeliveryStatus::Delivered,
            1,
        ),
        (
            "acme",
            &ours.id,
            "order-2",
            "invoice.voided",
            DeliveryStatus::Pending,
            3,
        ),
        (
            "globex",
            &theirs.id,
            "secret-order",
            "invoice.paid",
            DeliveryStatus::Delivered,
            1,
        ),
    ] {
        outbound
            .publish(PublishRequest {
                tenant: &tenant(tenant_name),
                event_type,
                payload: br#"{"customer_email":"jo@example.com"}"#,
                idempotency_key: Some(id),
            })
            .await
            .expect("published");
        let message = outbound
            .store
            .message(&tenant(tenant_name), &MessageId::parse(id).expect("id"))
            .await
            .expect("read")
            .expect("message");
        let delivery = Delivery {
            status,
            attempts,
            ..Delivery::new(&message, endpoint, false, outbound.clock.now())
        };
        outbound
            .store
            .put_delivery_if_absent(&delivery)
            .await
            .expect("delivery");
    }

    // THEN the log lists acme's messages only, and filters by state
    let log = text(&p.handle(get("/portal/messages", Some(&acme.id))).await);
    assert!(log.contains("order-1") && log.contains("order-2"), "{log}");
    assert!(!log.contains("secret-order"));
    let failing = text(
        &p.handle(get("/portal/messages?state=failing", Some(&acme.id)))
            .await,
    );
    assert!(
        failing.contains("order-2") && !failing.contains("order-1"),
        "{failing}"
    );
    let typed = text(
        &p.handle(get("/portal/messages?type=invoice.paid", Some(&acme.id)))
            .await,
    );
    assert!(typed.contains("order-1") && !typed.contains("order-2"));
    // A range of days (UTC, the last one included): the messages are of 2025-06-15.
    let that_day = text(
        &p.handle(get(
            "/portal/messages?from=2025-06-15&to=2025-06-15",
            Some(&acme.id),
        ))
        .await,
    );
    assert!(that_day.contains("order-1") && that_day.contains("order-2"));
    let day_after = text(
        &p.handle(get("/portal/messages?from=2025-06-16", Some(&acme.id)))
            .await,
    );
    assert!(!day_after.contains("order-1"), "{day_after}");
    let day_before = text(
        &p.handle(get(
            "/portal/messages?from=2025-06-01&to=2025-06-14",
            Some(&acme.id),
        ))
        .await,
    );
    assert!(!day_before.contains("order-1"), "{day_before}");
    let garbage = p
        .handle(get("/portal/messages?from=15/06/2025&to=x", Some(&acme.id)))
        .await;
    assert_eq!(
        garbage.status(),
        StatusCode::OK,
        "an unreadable day is ignored"
    );

    // AND a search by id goes to the message, whose payload shows only when asked
    let found = p
        .handle(get("/portal/messages?id=order-2", Some(&acme.id)))
        .await;
    assert_eq!(
        found.headers()[header::LOCATION],
        "/portal/messages/order-2"
    );
    let page = text(
        &p.handle(get("/portal/messages/order-2", Some(&acme.id)))
            .await,
    );
    assert!(page.contains("partner.example/acme"), "{page}");
    assert!(page.contains("Resend"));
    assert!(!page.contains("jo@example.com"), "no payload unless asked");
    let with_payload = text(
        &p.handle(get("/portal/messages/order-2?payload=show", Some(&acme.id)))
            .await,
    );
    assert!(with_payload.contains("jo@example.com"));

    // AND once an operator erased it, the page says so where the payload was
    use shared::outbound::ports::MessageErasure;
    outbound
        .store
        .erase_message(
            &TenantId::parse("acme").expect("tenant"),
            &shared::outbound::ids::MessageId::parse("order-2").expect("id"),
            &shared::ports::Erasure {
                at: outbound.clock.now(),
                actor: "operator-jane".into(),
            },
        )
        .await
        .expect("erased");
    let erased = text(
        &p.handle(get("/portal/messages/order-2?payload=show", Some(&acme.id)))
            .await,
    );
    assert!(erased.contains("payload-erased"), "{erased}");
    assert!(!erased.contains("jo@example.com") && !erased.contains("operator-jane"));

    // AND another tenant's message is no message; a read-only session gets no Resend
    let hidden = p
        .handle(get("/portal/messages/secret-order", Some(&acme.id)))
        .await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let viewer = signed_in(&p, "acme", true).await;
    let read_only = text(
        &p.handle(get("/portal/messages/order-2", Some(&viewer.id)))
            .await,
    );
    assert!(!read_only.contains("Resend"));
}

#[tokio::test]
async fn the_verify_page_shows_the_snippets_that_the_tests_run() {
    let p = portal();
    let session = signed_in(&p, "acme", true).await;
    let page = text(&p.handle(get("/portal/verify", Some(&session.id))).await);
    for snippet in &crate::verify_page::SNIPPETS {
        assert!(
            page.contains(&format!("id=\"{}\"", snippet.id)),
            "{}",
            snippet.id
        );
        // Every line of the file is on the page, as it is (HTML-escaped).
        for line in snippet.code.lines().filter(|l| !l.trim().is_empty()) {
            let escaped = maud::html! { (line) }.into_string();
            assert!(page.contains(&escaped), "{}: {line}", snippet.id);
        }
    }
    assert_eq!(
        crate::verify_page::SNIPPETS
            .iter()
            .filter(|s| s.tested)
            .count(),
        2
    );
}

mod operator {
    use shared::{
        memory::{MemoryDeadLetterQueue, MemoryDirectory, MemoryEventStore, MemoryQueue},
        message::QueueMessage,
        operations::Operations,
        provider::Provider,
        record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
        secret::SecretSlot,
    };

    use super::*;

    const PAYLOAD: &str =
        r#"{"id":"evt_dead_1","type":"invoice.paid","customer_email":"jo@example.com"}"#;

    /// The operator pages' use cases, counting the redrives (the only reads of the DLQ).
    #[derive(Debug)]
    struct CountedRedrives {
        inner: Arc<dyn crate::inbound::Inbound>,
        redrives: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl crate::inbound::Inbound for CountedRedrives {
        async fn list(
            &self,
            tenant: &TenantId,
            status: &str,
            next: Option<String>,
        ) -> Result<shared::operations::list::ListSummary, String> {
            self.inner.list(tenant, status, next).await
        }

        async fn record(
            &self,
            tenant: &TenantId,
            provider: Provider,
            id: &shared::ids::EventId,
        ) -> Result<Option<EventRecord>, String> {
            self.inner.record(tenant, provider, id).await
        }

        async fn health(
            &self,
            tenant: &TenantId,
        ) -> Result<shared::operations::health::HealthSummary, String> {
            self.inner.health(tenant).await
        }

        async fn replay(
            &self,
            tenant: &TenantId,
            provider: Provider,
            ids: &[shared::ids::EventId],
            dry_run: bool,
            note: &str,
        ) -> Result<shared::operations::targeted::ReplaySummary, String> {
            self.inner
                .replay(tenant, provider, ids, dry_run, note)
                .await
        }

        async fn redrive(
            &self,
            tenant: &TenantId,
            dry_run: bool,
            note: &str,
        ) -> Result<shared::operations::redrive::RedriveSummary, String> {
            self.redrives
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.redrive(tenant, dry_run, note).await
        }
    }

    /// GIVEN a portal whose operator pages see one dead event of acme's, on the DLQ.
    fn portal_with_a_dead_event() -> TestPortal {
        portal_counting_redrives().0
    }

    /// The same, and the count of its DLQ reads.
    fn portal_counting_redrives() -> (TestPortal, Arc<CountedRedrives>) {
        portal_with_a_dead_record(|_| {})
    }

    /// The same, the dead record changed by `edit` first.
    fn portal_with_a_dead_record(
        edit: impl FnOnce(&mut EventRecord),
    ) -> (TestPortal, Arc<CountedRedrives>) {
        let key = EventKey {
            tenant: tenant("acme"),
            provider: Provider::Stripe,
            event_id: shared::ids::EventId::parse("evt_dead_1").expect("id"),
        };
        let mut record = EventRecord::received(
            key.clone(),
            Some("invoice.paid".into()),
            None,
            Correlation::default(),
            Verification::Verified(SecretSlot::Current),
            PAYLOAD.as_bytes().to_vec(),
            std::time::UNIX_EPOCH + Duration::from_secs(NOW - 600),
        );
        record.status = EventStatus::Dead;
        record.attempts = 6;
        record.retry_exhausted = true;
        record.last_error = Some("downstream <b>timeout</b>".into());
        edit(&mut record);
        let operations = Operations::new(
            MemoryEventStore::new(),
            MemoryQueue::new(),
            MemoryDeadLetterQueue::new(),
            MemoryDirectory::new(),
            ManualClock::at_unix(NOW),
        )
        .with_metrics(shared::metrics::CapturedMetrics::new());
        operations.store.insert(record);
        operations.dead_letters.push(
            serde_json::to_string(&QueueMessage::new(&key, &Correlation::default())).expect("json"),
        );
        let counted = Arc::new(CountedRedrives {
            inner: Arc::new(operations),
            redrives: std::sync::atomic::AtomicU32::new(0),
        });
        (portal().with_inbound(counted.clone()), counted)
    }

    async fn operator(p: &TestPortal, read_only: bool) -> Session {
        let grant = Grant {
            read_only,
            operator: true,
        };
        signed_in_as(p, "acme", grant).await
    }

    #[tokio::test]
    async fn an_erased_payload_shows_as_erased_and_is_never_shown() {
        // GIVEN acme's dead event, its payload erased by an operator
        let (p, _) = portal_with_a_dead_record(|record| {
            record.payload = Vec::new();
            record.erased_at = Some(std::time::UNIX_EPOCH + Duration::from_secs(NOW - 60));
            record.erased_by = Some("dpo".into());
        });
        let ops = operator(&p, false).await;
        // WHEN an operator asks for the record with its payload
        let path = "/portal/events/stripe/evt_dead_1?payload=show";
        let page = text(&p.handle(get(path, Some(&ops.id))).await);
        // THEN the page says erased, by whom, and offers no payload
        assert!(page.contains("payload-erased"), "{page}");
        assert!(page.contains("by dpo"), "{page}");
        assert!(!page.contains("show-payload") && !page.contains("jo@example.com"));
    }

    #[tokio::test]
    async fn operators_see_events_records_and_health_and_partners_do_not() {
        let p = portal_with_a_dead_event();
        let partner = signed_in(&p, "acme", false).await;
        for page in ["/portal/events", "/portal/health", "/portal/dlq"] {
            let response = p.handle(get(page, Some(&partner.id))).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{page}");
        }
        let ops = operator(&p, false).await;

        let list = text(
            &p.handle(get("/portal/events?status=dead", Some(&ops.id)))
                .await,
        );
        assert!(list.contains("evt_dead_1"), "{list}");
        assert!(
            list.contains("downstream &lt;b&gt;timeout&lt;/b&gt;"),
            "escaped"
        );

        let path = "/portal/events/stripe/evt_dead_1";
        let record = text(&p.handle(get(path, Some(&ops.id))).await);
        assert!(record.contains("retries spent"));
        assert!(
            !record.contains("jo@example.com"),
            "no payload unless asked"
        );
        let with_payload = text(
            &p.handle(get(&format!("{path}?payload=show"), Some(&ops.id)))
                .await,
        );
        assert!(with_payload.contains("jo@example.com"));

        let found = p
            .handle(get(
                "/portal/events/lookup?provider=stripe&id=evt_dead_1",
                Some(&ops.id),
            ))
            .await;
        assert_eq!(found.headers()[header::LOCATION], path);
        let missing = p
            .handle(get("/portal/events/stripe/evt_nope", Some(&ops.id)))
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let health = text(&p.handle(get("/portal/health", Some(&ops.id))).await);
        assert!(health.contains("p95"), "{health}");
        // In words, with units and which side of a threshold is bad.
        for words in [
            "Events waiting",
            "Oldest waiting event",
            "Processed",
            "below",
            " %",
        ] {
            assert!(health.contains(words), "{words}: {health}");
        }
        assert!(!health.contains("oldest_pending_age_secs"), "{health}");
        assert!(
            ["HEALTHY", "DEGRADED", "CRITICAL"]
                .iter()
                .any(|v| health.contains(v))
        );
    }

    #[tokio::test]
    async fn an_operator_replays_events_after_seeing_what_would_go_and_what_would_not() {
        let p = portal_with_a_dead_event();
        let ops = operator(&p, false).await;
        let record = text(
            &p.handle(get("/portal/events/stripe/evt_dead_1", Some(&ops.id)))
                .await,
        );
        assert!(record.contains("id=\"replay\""), "{record}");
        let list = text(
            &p.handle(get("/portal/events?status=dead", Some(&ops.id)))
                .await,
        );
        assert!(list.contains("Replay these 1 events"), "{list}");

        // A dry run first: what would go, what would not and why; nothing is queued.
        let events = "stripe/evt_dead_1\nstripe/evt_never_seen";
        let preview = text(
            &p.handle(post(
                "/portal/events/replay",
                &ops.id,
                &[("csrf", &ops.csrf), ("events", events)],
            ))
            .await,
        );
        assert!(
            preview.contains("1 would be queued for processing again; 1 would not."),
            "{preview}"
        );
        assert!(preview.contains("no such event"));
        assert!(preview.contains("confirm-replay"));
        let record_page = "/portal/events/stripe/evt_dead_1";
        let still_dead = text(&p.handle(get(record_page, Some(&ops.id))).await);
        assert!(still_dead.contains("dead since"), "{still_dead}");

        // Then the confirmed replay queues it.
        let done = text(
            &p.handle(post(
                "/portal/events/replay",
                &ops.id,
                &[("csrf", &ops.csrf), ("events", events), ("confirm", "yes")],
            ))
            .await,
        );
        assert!(
            done.contains("1 queued for processing again; 1 not."),
            "{done}"
        );
        let queued = text(&p.handle(get(record_page, Some(&ops.id))).await);
        assert!(!queued.contains("dead since"), "{queued}");

        // Bounded, well-formed, operators only.
        let many: Vec<String> = (0..26).map(|i| format!("stripe/evt_{i}")).collect();
        let too_many = p
            .handle(post(
                "/portal/events/replay",
                &ops.id,
                &[("csrf", &ops.csrf), ("events", &many.join("\n"))],
            ))
            .await;
        assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
        let garbage = p
            .handle(post(
                "/portal/events/replay",
                &ops.id,
                &[("csrf", &ops.csrf), ("events", "not an event")],
            ))
            .await;
        assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
        let partner = signed_in(&p, "acme", false).await;
        let refused = p
            .handle(post(
                "/portal/events/replay",
                &partner.id,
                &[("csrf", &partner.csrf), ("events", "stripe/evt_dead_1")],
            ))
            .await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_dlq_page_reads_the_status_index_and_only_a_redrive_reads_the_queue() {
        let (p, counted) = portal_counting_redrives();
        let reader = operator(&p, true).await;
        let dry = text(&p.handle(get("/portal/dlq", Some(&reader.id))).await);
        assert!(dry.contains("1 dead events of this tenant"), "{dry}");
        assert!(dry.contains("evt_dead_1"), "{dry}");
        assert!(!dry.contains("confirm-redrive"), "no button for a reader");
        let reads = || counted.redrives.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(reads(), 0, "the GET read nothing of the shared queue");
        let refused = p
            .handle(post(
                "/portal/dlq/redrive",
                &reader.id,
                &[("csrf", &reader.csrf)],
            ))
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        let ops = operator(&p, false).await;
        let dry = text(&p.handle(get("/portal/dlq", Some(&ops.id))).await);
        assert!(dry.contains("confirm-redrive"));
        let done = p
            .handle(post("/portal/dlq/redrive", &ops.id, &[("csrf", &ops.csrf)]))
            .await;
        assert_eq!(done.status(), StatusCode::OK);
        assert!(text(&done).contains("Redriven: 1"), "{}", text(&done));
        let after = text(&p.handle(get("/portal/dlq", Some(&ops.id))).await);
        assert!(after.contains("0 dead events"), "{after}");
        assert_eq!(reads(), 1, "the redrive, and only it, read the DLQ");
        assert!(!after.contains("confirm-redrive"));
    }
}
