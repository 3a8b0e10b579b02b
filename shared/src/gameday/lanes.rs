//! The slow lane under load, on tokio's paused clock (nothing waits for real, and time moves
//! only when every task waits). Lambda is modelled as deployed: each queue's event source
//! mapping runs a bounded number of batch invocations at once, each a process of its own that
//! receives up to ten pointers and returns when every one of them is done, so one slow delivery
//! holds its whole invocation. The main lane has `DispatcherMaxConcurrency` (10) invocations,
//! the slow lane 2.
//!
//! The load: 10,000 deliveries to 100 endpoints that answer in 50 ms and 1,000 to one that
//! answers 2xx in 15 s, published together over 10 s. What is measured is each fast delivery's
//! latency, from its publish to its partner's answer, against a run without the slow endpoint.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::{
    adapters::lock,
    clock::Clock,
    ids::TenantId,
    memory::MemoryOutboundStore,
    metrics::CapturedMetrics,
    outbound::{
        Outbound, OutboundSettings,
        admin::EndpointChange,
        delivery::{DeliveryPointer, ErrorClass, Exchange},
        dispatch::{Dispatcher, SlowLane},
        ports::{DeliveryQueue, DeliveryRetryQueue, EndpointStore, OutboundRequest, Transport},
        publish::PublishRequest,
        ssrf::StaticResolver,
    },
    ports::QueueError,
    processor::{Message, NoJitter},
};

const NOW: u64 = 1_750_000_000;
const FAST_ENDPOINTS: usize = 100;
const FAST_DELIVERIES: usize = 10_000;
const SLOW_DELIVERIES: usize = 1_000;
const PUBLISHED_OVER: Duration = Duration::from_secs(10);
const FAST_ANSWER: Duration = Duration::from_millis(50);
const SLOW_ANSWER: Duration = Duration::from_secs(15);
const MAIN_INVOCATIONS: usize = 10;
const SLOW_INVOCATIONS: usize = 2;
/// The deliveries queue's visibility timeout (six times the dispatcher's 60 s).
const VISIBILITY: Duration = Duration::from_secs(360);
/// How long an idle poller waits before it receives again.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// SQS's longest `DelaySeconds`.
const MAX_DELAY: Duration = Duration::from_secs(900);

/// Wall time as the paused tokio clock moves it.
#[derive(Debug, Clone)]
struct SimClock {
    start: Instant,
}

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW) + self.start.elapsed()
    }
}

#[derive(Debug)]
struct Queued {
    body: String,
    sent_at: SystemTime,
    receives: u32,
    /// Bumped by every receive and visibility change: older wake-ups are stale.
    generation: u64,
}

#[derive(Debug, Default)]
struct LaneState {
    next_id: u64,
    messages: BTreeMap<u64, Queued>,
    visible: VecDeque<u64>,
    hidden: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    receipts: HashMap<String, u64>,
}

/// One SQS queue, as the event source mapping sees it.
#[derive(Debug)]
struct LaneQueue {
    clock: SimClock,
    state: Mutex<LaneState>,
}

impl LaneQueue {
    fn new(clock: SimClock) -> Self {
        Self {
            clock,
            state: Mutex::default(),
        }
    }

    fn push(&self, body: String, delay: Duration) {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        state.messages.insert(
            id,
            Queued {
                body,
                sent_at: self.clock.now(),
                receives: 0,
                generation: 0,
            },
        );
        if delay.is_zero() {
            state.visible.push_back(id);
        } else {
            state
                .hidden
                .push(Reverse((Instant::now() + delay.min(MAX_DELAY), id, 0)));
        }
    }

    fn hide(state: &mut LaneState, id: u64, delay: Duration) {
        if let Some(queued) = state.messages.get_mut(&id) {
            queued.generation += 1;
            let generation = queued.generation;
            state
                .hidden
                .push(Reverse((Instant::now() + delay, id, generation)));
        }
    }

    fn receive(&self, max: usize) -> Vec<Message> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        while let Some(Reverse((at, id, generation))) = state.hidden.peek().copied() {
            if at > now {
                break;
            }
            state.hidden.pop();
            if state
                .messages
                .get(&id)
                .is_some_and(|q| q.generation == generation)
            {
                state.visible.push_back(id);
            }
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(id) = state.visible.pop_front() else {
                break;
            };
            let Some(queued) = state.messages.get_mut(&id) else {
                continue;
            };
            queued.receives += 1;
            let receipt = format!("{id}-{}", queued.receives);
            batch.push(Message {
                message_id: format!("m{id}-{}", queued.receives),
                receipt_handle: Some(receipt.clone()),
                body: queued.body.clone(),
                receive_count: queued.receives,
                sent_at: Some(queued.sent_at),
            });
            state.receipts.insert(receipt, id);
            Self::hide(&mut state, id, VISIBILITY);
        }
        batch
    }

    fn delete(&self, receipt: &str) {
        let mut state = lock(&self.state);
        if let Some(id) = state.receipts.remove(receipt) {
            state.messages.remove(&id);
        }
    }
}

#[async_trait]
impl DeliveryQueue for LaneQueue {
    async fn enqueue(&self, pointer: &DeliveryPointer) -> Result<(), QueueError> {
        self.push(pointer.to_json(), Duration::ZERO);
        Ok(())
    }
}

#[async_trait]
impl DeliveryRetryQueue for LaneQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let mut state = lock(&self.state);
        if let Some(id) = state.receipts.get(receipt_handle).copied() {
            Self::hide(&mut state, id, delay);
        }
        Ok(())
    }

    async fn dead_letter(&self, _pointer: &DeliveryPointer) -> Result<(), QueueError> {
        Ok(())
    }

    async fn send_again(
        &self,
        pointer: &DeliveryPointer,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.push(pointer.to_json(), delay);
        Ok(())
    }
}

/// The partners: each answers 2xx after its latency, unless the attempt's timeout ends first.
#[derive(Debug, Clone, Default)]
struct Partners {
    answered: Arc<Mutex<HashMap<String, Instant>>>,
}

#[async_trait]
impl Transport for Partners {
    async fn send(&self, request: OutboundRequest) -> Exchange {
        let latency = if request.url.host().starts_with("slow") {
            SLOW_ANSWER
        } else {
            FAST_ANSWER
        };
        if latency >= request.timeout {
            tokio::time::sleep(request.timeout).await;
            return Exchange {
                status: None,
                retry_after: None,
                body: String::new(),
                latency: request.timeout,
                error: Some((ErrorClass::Timeout, "timed out".into())),
            };
        }
        tokio::time::sleep(latency).await;
        if let Some((_, id)) = request
            .headers
            .iter()
            .find(|(name, _)| name == "webhook-id")
        {
            lock(&self.answered).insert(id.clone(), Instant::now());
        }
        Exchange {
            status: Some(200),
            retry_after: None,
            body: String::new(),
            latency,
            error: None,
        }
    }
}

type SimDispatcher =
    Dispatcher<MemoryOutboundStore, Arc<LaneQueue>, Arc<LaneQueue>, Partners, SimClock, NoJitter>;

/// How a run is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// No slow endpoint at all: the reference.
    Reference,
    /// The slow endpoint, marked slow already (its recent attempts were).
    KnownSlow,
    /// The slow endpoint, not marked yet: its first attempts find out.
    TurnsSlow,
    /// The slow endpoint, and no slow lane (the dispatcher before it).
    WithoutSlowLane,
}

/// Fast deliveries' latencies, sorted.
struct Run {
    latencies: Vec<Duration>,
    slow_delivered: usize,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let rank = (p * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.saturating_sub(1).min(self.latencies.len() - 1)]
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

async fn run(setup: Setup) -> Run {
    let clock = SimClock {
        start: Instant::now(),
    };
    let store = MemoryOutboundStore::new();
    let main_queue = Arc::new(LaneQueue::new(clock.clone()));
    let slow_queue = Arc::new(LaneQueue::new(clock.clone()));
    let partners = Partners::default();
    let settings = OutboundSettings {
        // A user whose partners may take half a minute (`AttemptTimeoutSecs`).
        attempt_timeout: Duration::from_secs(30),
        lease: OutboundSettings::lease_for(Duration::from_secs(30)),
        // 101 endpoints of one tenant.
        max_endpoints: 1_000,
        ..OutboundSettings::default()
    };
    let resolver = Arc::new(
        StaticResolver::default()
            .with("fast.example", &["93.184.216.34".parse().expect("ip")])
            .with("slow.example", &["93.184.216.35".parse().expect("ip")]),
    );
    let outbound = |queue: &Arc<LaneQueue>| {
        Outbound::new(
            store.clone(),
            queue.clone(),
            clock.clone(),
            settings.clone(),
        )
        .with_metrics(CapturedMetrics::new())
        .with_resolver(resolver.clone())
    };
    let publisher = outbound(&main_queue);
    for i in 0..FAST_ENDPOINTS {
        add(
            &publisher,
            &format!("https://fast.example/e{i}"),
            &format!("fast.e{i}"),
        )
        .await;
    }
    let slow_present = setup != Setup::Reference;
    if slow_present {
        let slow = add(&publisher, "https://slow.example/in", "slow.ping").await;
        if setup == Setup::KnownSlow {
            let before = clock.now() - Duration::from_secs(60);
            store
                .mark_slow(&acme(), &slow, Some(before))
                .await
                .expect("marked");
        }
    }
    let lanes = setup != Setup::WithoutSlowLane;
    let main: Vec<SimDispatcher> = (0..MAIN_INVOCATIONS)
        .map(|_| {
            let d = Dispatcher::new(
                outbound(&main_queue),
                main_queue.clone(),
                partners.clone(),
                NoJitter,
            );
            if lanes {
                d.with_slow_lane(SlowLane::new(slow_queue.clone()))
            } else {
                d
            }
        })
        .collect();
    let slow_lane: Vec<SimDispatcher> = (0..if lanes { SLOW_INVOCATIONS } else { 0 })
        .map(|_| {
            Dispatcher::new(
                outbound(&main_queue),
                slow_queue.clone(),
                partners.clone(),
                NoJitter,
            )
        })
        .collect();

    let published = Mutex::new(HashMap::new());
    let done = AtomicBool::new(false);
    let publishing = async {
        let start = Instant::now();
        let step = PUBLISHED_OVER / u32::try_from(FAST_DELIVERIES).unwrap_or(1);
        for k in 0..FAST_DELIVERIES {
            tokio::time::sleep_until(start + step * u32::try_from(k).unwrap_or(0)).await;
            let id = format!("f{k}");
            publish(&publisher, &format!("fast.e{}", k % FAST_ENDPOINTS), &id).await;
            lock(&published).insert(id, Instant::now());
            if slow_present && k % (FAST_DELIVERIES / SLOW_DELIVERIES) == 0 {
                publish(&publisher, "slow.ping", &format!("s{k}")).await;
            }
        }
    };
    let fast_ids: HashSet<String> = (0..FAST_DELIVERIES).map(|k| format!("f{k}")).collect();
    let watching = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let answered = lock(&partners.answered);
            if fast_ids.iter().all(|id| answered.contains_key(id)) {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
    };
    let pollers = main
        .iter()
        .map(|d| poll(d, &main_queue, &done))
        .chain(slow_lane.iter().map(|d| poll(d, &slow_queue, &done)));
    tokio::join!(publishing, watching, join_all(pollers));

    let answered = lock(&partners.answered);
    let published = lock(&published);
    let mut latencies: Vec<Duration> = published
        .iter()
        .map(|(id, at)| answered[id].duration_since(*at))
        .collect();
    latencies.sort();
    Run {
        latencies,
        slow_delivered: answered.keys().filter(|id| id.starts_with('s')).count(),
    }
}

/// One event source mapping's invocation slot: receive a batch, dispatch it, delete what
/// succeeded; the next batch only once the whole batch is done.
async fn poll(dispatcher: &SimDispatcher, queue: &LaneQueue, done: &AtomicBool) {
    let mut invocation = 0;
    while !done.load(Ordering::SeqCst) {
        let batch = queue.receive(10);
        if batch.is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        invocation += 1;
        let failed = dispatcher
            .dispatch_batch(&batch, &format!("sim-{invocation}"))
            .await;
        for message in &batch {
            if !failed.contains(&message.message_id)
                && let Some(receipt) = &message.receipt_handle
            {
                queue.delete(receipt);
            }
        }
    }
}

async fn add(
    outbound: &Outbound<MemoryOutboundStore, Arc<LaneQueue>, SimClock>,
    url: &str,
    event_type: &str,
) -> crate::outbound::ids::EndpointId {
    outbound
        .add_endpoint(
            &acme(),
            EndpointChange {
                url: Some(url.to_owned()),
                filter: Some(vec![event_type.to_owned()]),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint")
        .id
}

async fn publish(
    outbound: &Outbound<MemoryOutboundStore, Arc<LaneQueue>, SimClock>,
    event_type: &str,
    id: &str,
) {
    outbound
        .publish(PublishRequest {
            tenant: &acme(),
            event_type,
            payload: br#"{"ok":true}"#,
            idempotency_key: Some(id),
        })
        .await
        .expect("published");
}

fn report(name: &str, run: &Run) {
    eprintln!(
        "{name}: fast deliveries p50 {:?}, p99 {:?}, max {:?}; slow delivered meanwhile {}",
        run.percentile(0.5),
        run.percentile(0.99),
        run.percentile(1.0),
        run.slow_delivered
    );
}

/// Run with `--nocapture` for the figures (the issue notes quote them).
#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_known_slow_delays_the_fast_ones_by_under_a_second_at_p99() {
    let reference = run(Setup::Reference).await;
    let known = run(Setup::KnownSlow).await;
    let turning = run(Setup::TurnsSlow).await;
    let without = run(Setup::WithoutSlowLane).await;
    report("reference, no slow endpoint", &reference);
    report("slow endpoint known slow", &known);
    report("slow endpoint turning slow", &turning);
    report("slow endpoint, no slow lane", &without);

    let added = |run: &Run| {
        run.percentile(0.99)
            .saturating_sub(reference.percentile(0.99))
    };
    // Known slow: its deliveries never hold a main-lane invocation.
    assert!(
        added(&known) < Duration::from_secs(1),
        "{:?}",
        added(&known)
    );
    // Turning slow: the attempts that find out hold their invocations for one slow answer
    // (a batch returns when all of it is done), once per episode; then the lane takes over.
    assert!(
        added(&turning) < SLOW_ANSWER + Duration::from_secs(1),
        "{:?}",
        added(&turning)
    );
    // Without the slow lane, the same load holds the fast deliveries back for many minutes:
    // the simulation tells the difference.
    assert!(
        added(&without) > Duration::from_secs(60),
        "{:?}",
        added(&without)
    );
}
