//! The cost meter's units per event, pinned: a change that adds a call, a write, an index
//! entry or a byte past a unit boundary fails here and says by how much. Units, not dollars or
//! time, so the figures are deterministic; `make cost` prints the bill they make.

use local_stack::{
    cost::{
        FlowCost,
        flows::{self, Flow},
    },
    template::Template,
};

use crate::support::endpoint;

/// Events per flow: enough to average the event source's batches, few for the emulator.
const EVENTS: u64 = 5;

async fn measure(flow: &str) -> FlowCost {
    let template = Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml parses");
    let flow = Flow::all(EVENTS)
        .into_iter()
        .find(|f| f.name == flow)
        .expect("a known flow");
    let measured = flows::measure(&endpoint(), &template, &flow)
        .await
        .expect("the flow runs on the emulator");
    println!(
        "{}",
        local_stack::cost::report(std::slice::from_ref(&measured))
    );
    measured
}

/// (write units, read units, SQS requests, S3 requests, hottest shared key's write units) per
/// event. The tenant configuration's reads are left out: they follow the ingress's cache
/// lifetime and so the emulator's speed, not the events (`make cost` prints them).
fn units(flow: &FlowCost) -> (f64, f64, f64, f64, f64) {
    let n = flow.events as f64;
    let tenants = flow
        .usage
        .dynamodb
        .read
        .get("TenantsTable")
        .copied()
        .unwrap_or(0.0);
    (
        flow.write_units(),
        flow.read_units() - tenants / n,
        flow.usage.sqs_requests / n,
        (flow.usage.s3_puts + flow.usage.s3_gets) / n,
        flow.hottest(),
    )
}

/// Measure `name` and compare its units per event with `pinned`.
async fn assert_pinned(name: &str, pinned: (f64, f64, f64, f64, f64)) {
    let flow = measure(name).await;
    assert_eq!(units(&flow), pinned, "{:#?}", flow.usage);
}

#[tokio::test]
async fn inbound_1k_units_are_pinned() {
    assert_pinned(flows::INBOUND_1K, (4.0, 2.5, 1.2, 0.0, 0.125)).await;
}

#[tokio::test]
async fn inbound_30k_units_are_pinned() {
    assert_pinned(flows::INBOUND_30K, (4.0, 2.5, 1.2, 2.0, 0.125)).await;
}

#[tokio::test]
async fn inbound_100k_via_s3_units_are_pinned() {
    assert_pinned(flows::INBOUND_100K, (4.0, 2.5, 1.2, 2.0, 0.125)).await;
}

#[tokio::test]
async fn relayed_inbound_units_are_pinned() {
    assert_pinned(flows::RELAY, (5.0, 4.5, 2.2, 0.0, 0.125)).await;
}

#[tokio::test]
async fn published_delivery_units_are_pinned() {
    assert_pinned(flows::PUBLISHED, (4.0, 4.0, 1.2, 0.0, 0.125)).await;
}
