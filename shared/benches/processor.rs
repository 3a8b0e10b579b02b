//! The processor use case on in-memory adapters: one SQS batch of ten Stripe `invoice.paid`
//! events (read, claim, handler, commit with projections), the work per Lambda invocation
//! besides the AWS calls.

use std::{
    hint::black_box,
    time::{Duration, UNIX_EPOCH},
};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shared::{
    clock::ManualClock,
    ids::{EventId, TenantId},
    memory::{MemoryEventStore, MemoryRetryQueue},
    message::QueueMessage,
    processor::{Message, NoJitter, Processor, ProcessorSettings},
    provider::Provider,
    record::{Correlation, EventKey, EventRecord, EventStatus, Verification},
    secret::SecretSlot,
};

const NOW: u64 = 1_750_000_000;
const INVOICE_PAID: &str = include_str!("../../events/payloads/stripe/invoice.paid.json");

type BenchProcessor = Processor<MemoryEventStore, MemoryRetryQueue, ManualClock, NoJitter>;

/// A processor whose store holds `size` enqueued events, and the batch pointing at them.
fn batch(size: usize) -> (BenchProcessor, Vec<Message>) {
    let processor = Processor::new(
        MemoryEventStore::new(),
        MemoryRetryQueue::new(),
        ManualClock::at_unix(NOW),
        NoJitter,
        ProcessorSettings::default(),
    );
    let tenant = TenantId::parse("bench").expect("tenant");
    let messages = (0..size)
        .map(|i| {
            let id = format!("evt_bench_{i}");
            let key = EventKey {
                tenant: tenant.clone(),
                provider: Provider::Stripe,
                event_id: EventId::parse(&id).expect("id"),
            };
            let payload = INVOICE_PAID
                .replace("evt_1PayloadInvoicePaid0001", &id)
                .replace("in_1PayloadInvoice0001", &format!("in_{i}"));
            let mut record = EventRecord::received(
                key.clone(),
                Some("invoice.paid".into()),
                None,
                Correlation::default(),
                Verification::Verified(SecretSlot::Current),
                payload.into_bytes(),
                UNIX_EPOCH + Duration::from_secs(NOW),
            );
            record.status = EventStatus::Enqueued;
            processor.store.insert(record);
            Message {
                message_id: format!("m{i}"),
                receipt_handle: Some(format!("r{i}")),
                body: serde_json::to_string(&QueueMessage::new(&key, &Correlation::default()))
                    .expect("json"),
                receive_count: 1,
                sent_at: None,
            }
        })
        .collect();
    (processor, messages)
}

fn bench_processor(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(10));
    group.bench_function("batch_of_10_invoice_paid", |b| {
        b.iter_batched(
            || batch(10),
            |(processor, messages)| {
                let failed = runtime.block_on(processor.process_batch(black_box(&messages)));
                assert!(failed.is_empty());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_processor);
criterion_main!(benches);
