//! The portal's pages rendered end to end through `Portal::handle` on in-memory adapters: the
//! endpoint page with 100 attempts and its chart, and the endpoints list. What a page costs
//! besides its DynamoDB reads, against the ingress's budget of milliseconds.

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::{Body, Request, http};
use portal::Portal;
use shared::{
    clock::ManualClock,
    ids::TenantId,
    memory::{
        HmacLinkSigner, MemoryDeliveryQueue, MemoryOutboundStore, MemoryPortalStore,
        ScriptedTransport,
    },
    outbound::{
        Outbound, OutboundSettings, admin::EndpointChange, dispatch::Dispatcher,
        ssrf::StaticResolver,
    },
    portal::{Grant, PortalAccess},
    processor::NoJitter,
};

fn pages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let queue = Arc::new(MemoryDeliveryQueue::new());
    let outbound = Outbound::new(
        MemoryOutboundStore::new(),
        queue.clone(),
        ManualClock::at_unix(1_750_000_000),
        OutboundSettings::default(),
    )
    .with_resolver(Arc::new(
        StaticResolver::default().with("partner.example", &["93.184.216.34".parse().expect("ip")]),
    ));
    let portal = Portal::new(
        PortalAccess::new(
            MemoryPortalStore::new(),
            HmacLinkSigner(b"bench".to_vec()),
            ManualClock::at_unix(1_750_000_000),
        ),
        Dispatcher::new(outbound, queue, ScriptedTransport::new(), NoJitter),
    );
    let tenant = TenantId::parse("acme").expect("tenant");
    let (session, endpoint) = runtime.block_on(async {
        let endpoint = portal
            .dispatcher
            .outbound
            .add_endpoint(
                &tenant,
                EndpointChange {
                    url: Some("https://partner.example/hooks".into()),
                    filter: Some(vec!["invoice.*".into()]),
                    ..EndpointChange::default()
                },
                None,
            )
            .await
            .expect("endpoint");
        for _ in 0..100 {
            portal
                .dispatcher
                .test_endpoint(&tenant, &endpoint.id, None, None)
                .await
                .expect("attempt");
        }
        let token = portal
            .access
            .link(&tenant, Grant::default(), Duration::from_secs(3_600))
            .await
            .expect("link");
        (
            portal.access.exchange(&token).await.expect("session"),
            endpoint,
        )
    });
    let get = |path: &str| -> Request {
        http::Request::builder()
            .uri(path)
            .header("cookie", format!("{}={}", portal::COOKIE, session.id))
            .body(Body::Empty)
            .expect("request")
    };
    let detail = format!("/portal/endpoints/{}", endpoint.id);
    let mut group = c.benchmark_group("portal");
    group.bench_function("endpoint_page_100_attempts", |b| {
        b.iter(|| runtime.block_on(portal.handle(black_box(get(&detail)))))
    });
    group.bench_function("endpoints_page", |b| {
        b.iter(|| runtime.block_on(portal.handle(black_box(get("/portal/endpoints")))))
    });
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
