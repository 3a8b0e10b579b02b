//! The outbound side's own cost: a publish fanned out to 100 endpoints on in-memory adapters,
//! a publish checked against its type's JSON Schema, and the dispatcher's work per delivery around the HTTP round trip, measured against a
//! receiver on loopback next to the bare round trip through the same HTTP client.

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shared::{
    clock::ManualClock,
    ids::TenantId,
    memory::{MemoryDeliveryQueue, MemoryOutboundStore},
    metrics::{MetricLine, MetricSink},
    outbound::{
        Outbound, OutboundSettings,
        admin::EndpointChange,
        catalog::{EventTypeChange, PayloadSchema},
        delivery::DeliveryPointer,
        dispatch::Dispatcher,
        ports::{OutboundRequest, Transport},
        publish::PublishRequest,
        ssrf::{EgressPolicy, EndpointUrl},
        transport::HttpTransport,
    },
    processor::{Message, NoJitter},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    runtime::Runtime,
};

const NOW: u64 = 1_750_000_000;
const PAYLOAD: &[u8] = br#"{"id":"inv_1","amount":4200,"currency":"eur","customer":"cus_1"}"#;

type BenchOutbound = Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>;

/// Metric lines go nowhere: printing them would measure the terminal.
#[derive(Debug)]
struct Discard;

impl MetricSink for Discard {
    fn emit(&self, _: &MetricLine) {}
}

fn tenant() -> TenantId {
    TenantId::parse("bench").expect("tenant")
}

fn settings() -> OutboundSettings {
    OutboundSettings {
        egress: EgressPolicy::LOCAL_DEVELOPMENT,
        ..OutboundSettings::default()
    }
}

/// An outbound side with `endpoints` endpoints on loopback URLs.
fn outbound(rt: &Runtime, endpoints: usize, url: &str) -> BenchOutbound {
    let outbound = Outbound::new(
        MemoryOutboundStore::new(),
        Arc::new(MemoryDeliveryQueue::new()),
        ManualClock::at_unix(NOW),
        settings(),
    )
    .with_metrics(Arc::new(Discard));
    rt.block_on(async {
        for _ in 0..endpoints {
            outbound
                .add_endpoint(
                    &tenant(),
                    EndpointChange {
                        url: Some(url.to_owned()),
                        ..EndpointChange::default()
                    },
                    None,
                )
                .await
                .expect("endpoint");
        }
    });
    outbound
}

fn publish_fan_out(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let outbound = outbound(&rt, 100, "http://127.0.0.1:9/hooks");
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("outbound");
    group.throughput(Throughput::Elements(100));
    group.bench_function("publish_fan_out_100_endpoints", |b| {
        b.iter(|| {
            let key = format!("m{}", next.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                black_box(
                    outbound
                        .publish(PublishRequest {
                            tenant: &tenant(),
                            event_type: "invoice.paid",
                            payload: PAYLOAD,
                            idempotency_key: Some(&key),
                        })
                        .await
                        .expect("published"),
                )
            })
        });
    });
    group.finish();
}

/// A publish to one endpoint, of a type with no schema and of one with a registered schema (the
/// catalog read is remembered after the first), and the schema check alone on a 1 KiB payload.
fn publish_checked_against_schema(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let outbound = outbound(&rt, 1, "http://127.0.0.1:9/hooks");
    let schema = serde_json::json!({
        "type": "object",
        "required": ["id", "amount", "currency"],
        "properties": {
            "id": {"type": "string", "pattern": "^inv_[a-z0-9]+$"},
            "amount": {"type": "integer", "minimum": 0},
            "currency": {"enum": ["eur", "usd", "gbp"]},
            "customer": {"type": "string"},
            "lines": {"type": "array", "items": {"type": "object", "required": ["sku", "qty"]}}
        }
    });
    rt.block_on(outbound.register_event_type(
        &tenant(),
        "invoice.checked",
        EventTypeChange {
            schema: Some(schema.clone()),
            ..EventTypeChange::default()
        },
    ))
    .expect("registered");
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("catalog");
    for event_type in ["invoice.paid", "invoice.checked"] {
        group.bench_function(format!("publish_one_endpoint_{event_type}"), |b| {
            b.iter(|| {
                let key = format!("c{}", next.fetch_add(1, Ordering::Relaxed));
                rt.block_on(async {
                    black_box(
                        outbound
                            .publish(PublishRequest {
                                tenant: &tenant(),
                                event_type,
                                payload: PAYLOAD,
                                idempotency_key: Some(&key),
                            })
                            .await
                            .expect("published"),
                    )
                })
            });
        });
    }
    let compiled = PayloadSchema::new(schema).expect("schema");
    let lines: Vec<serde_json::Value> = (0..12)
        .map(
            |i| serde_json::json!({"sku": format!("sku_{i:04}"), "qty": i, "note": "x".repeat(40)}),
        )
        .collect();
    let payload = serde_json::json!({"id": "inv_1", "amount": 4200, "currency": "eur", "customer": "cus_1", "lines": lines});
    group.throughput(Throughput::Bytes(payload.to_string().len() as u64));
    group.bench_function("schema_check_1kib_payload", |b| {
        b.iter(|| black_box(compiled.check(black_box(&payload))));
    });
    group.finish();
}

/// A minimal HTTP/1.1 receiver on loopback: every request answered 204, connections kept.
async fn receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut filled = 0;
                loop {
                    let Ok(n) = stream.read(&mut buffer[filled..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    // One request: its head, then content-length bytes of body.
                    let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n")
                    else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if filled < end + 4 + length {
                        continue;
                    }
                    buffer.copy_within(end + 4 + length..filled, 0);
                    filled -= end + 4 + length;
                    if stream
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/hooks")
}

fn dispatch_overhead(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let url = rt.block_on(receiver());
    let transport = HttpTransport::new(EgressPolicy::LOCAL_DEVELOPMENT).expect("transport");
    let mut group = c.benchmark_group("outbound");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));

    // The bare round trip: the same client, the same request, no store, no signing.
    let request = OutboundRequest {
        url: EndpointUrl::parse(&url, EgressPolicy::LOCAL_DEVELOPMENT).expect("url"),
        headers: vec![],
        body: PAYLOAD.to_vec(),
        timeout: Duration::from_secs(5),
    };
    group.bench_function("http_round_trip_loopback", |b| {
        b.iter(|| rt.block_on(async { black_box(transport.send(request.clone()).await) }));
    });

    // A whole delivery: read, claim, open the secret, sign, POST, log the attempt, health.
    let outbound = outbound(&rt, 1, &url);
    let queue = outbound.queue.clone();
    let dispatcher = Dispatcher::new(outbound, queue.clone(), transport.clone(), NoJitter);
    let next = AtomicU64::new(0);
    group.bench_function("dispatch_one_delivery_loopback", |b| {
        b.iter_batched(
            || {
                let key = format!("d{}", next.fetch_add(1, Ordering::Relaxed));
                rt.block_on(async {
                    dispatcher
                        .outbound
                        .publish(PublishRequest {
                            tenant: &tenant(),
                            event_type: "invoice.paid",
                            payload: PAYLOAD,
                            idempotency_key: Some(&key),
                        })
                        .await
                        .expect("published");
                });
                let pointer: DeliveryPointer = queue.drain().pop().expect("a pointer");
                Message {
                    message_id: key,
                    receipt_handle: None,
                    body: pointer.to_json(),
                    receive_count: 1,
                    sent_at: None,
                }
            },
            |message| {
                rt.block_on(async { black_box(dispatcher.dispatch(&message, "bench").await) })
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(
    benches,
    publish_fan_out,
    publish_checked_against_schema,
    dispatch_overhead
);
criterion_main!(benches);
