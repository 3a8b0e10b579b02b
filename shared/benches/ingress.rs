//! The ingress use case on in-memory adapters: what the handler adds to the two AWS calls,
//! for 1 KiB and 64 KiB Stripe events (verify, extract, hash, build record, message, metrics).

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use shared::{
    clock::ManualClock,
    ids::TenantId,
    ingress::{Delivery, Ingress, IngressSettings, Outcome},
    memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
    provider::Provider,
    record::Correlation,
    secret::Secret,
    tenant::ProviderConfig,
};

const NOW: u64 = 1_700_000_000;

fn stripe_event(id: u64, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"id":"evt_bench_{id}","object":"event","type":"invoice.paid","created":{NOW},"data":{{"pad":""#
    );
    let mut body = head.into_bytes();
    body.resize(size.saturating_sub(4), b'x');
    body.extend_from_slice(br#""}}"#);
    body
}

fn bench_ingress(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let secret = Secret::new("whsec_bench");
    let tenant = TenantId::parse("bench").expect("tenant");
    let config = ProviderConfig::new(tenant, Provider::Stripe, secret.clone());
    let scheme = config.verifier().scheme;
    let ingress = Ingress::new(
        MemoryEventStore::new(),
        MemoryQueue::new(),
        MemoryDirectory::with([config]),
        ManualClock::at_unix(NOW),
        IngressSettings::default(),
    );
    let next_id = AtomicU64::new(0);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);

    let mut group = c.benchmark_group("ingress");
    for size in [1024usize, 64 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("stripe_accept", size), |b| {
            b.iter_batched(
                || {
                    let body = stripe_event(next_id.fetch_add(1, Ordering::Relaxed), size);
                    let mut headers = HeaderMap::new();
                    for (name, value) in scheme.sign(&body, &secret, at, "").expect("sign") {
                        headers.insert(
                            HeaderName::from_bytes(name.as_bytes()).expect("name"),
                            HeaderValue::from_str(&value).expect("value"),
                        );
                    }
                    (body, headers)
                },
                |(body, headers)| {
                    let delivery = Delivery {
                        tenant: "bench",
                        provider: "stripe",
                        path_token: None,
                        headers: &headers,
                        body: &body,
                        correlation: Correlation::default(),
                        host: Some("hooks.example.com"),
                        method: "POST",
                        path_and_query: Some("/webhooks/acme/stripe"),
                    };
                    let outcome = runtime.block_on(ingress.handle(black_box(delivery)));
                    assert!(matches!(outcome, Outcome::Accepted { .. }));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ingress);
criterion_main!(benches);
