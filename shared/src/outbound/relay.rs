//! Inbound events relayed to partners: a tenant that sets `relay_inbound` has every processed
//! event published as `{provider}.{type}` (`stripe.invoice.paid`) with the provider's payload,
//! under the message id `in.{provider}.{event id}`, so partners subscribe with filters like
//! `stripe.invoice.*` and deduplicate on `webhook-id` as for any message.
//!
//! Form bodies (Twilio, Slack's slash commands) are relayed as JSON objects of their fields. A
//! payload too large for a message's item (an inbound event may be up to 6 MB) is delivered
//! from the S3 object the event keeps it in, which expires with the event.
//!
//! The processor calls it after its commit: a failure brings the event's message back, whose
//! next receive relays the processed event again, and a repeated relay of the same event is a
//! duplicate publish that delivers nothing twice.

use std::borrow::Cow;

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{
    Outbound, PublishError,
    ids::MessageId,
    ports::{DeliveryQueue, OutboundStore},
    publish::PublishRequest,
};
use crate::{
    clock::Clock, ids::TenantId, processor::Relay, record::EventRecord, trace::TraceParent,
};

/// The processor's relay: publishes through `outbound`, reading each tenant's switch at most
/// once per [`super::policies::POLICY_TTL`].
#[derive(Debug)]
pub struct InboundRelay<S, Q, C> {
    pub outbound: Outbound<S, Q, C>,
}

impl<S, Q, C> InboundRelay<S, Q, C>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    pub fn new(outbound: Outbound<S, Q, C>) -> Self {
        Self { outbound }
    }

    async fn relays(&self, tenant: &TenantId) -> Result<bool, String> {
        Ok(self
            .outbound
            .policies
            .get(&self.outbound.store, tenant)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|p| p.relay_inbound))
    }
}

/// The message id a relayed event is published under: its key when that is a valid id, else
/// its hash (an event id may hold characters a message id may not).
pub fn relayed_id(record: &EventRecord) -> MessageId {
    let key = &record.key;
    MessageId::parse(&format!("in.{}.{}", key.provider, key.event_id)).unwrap_or_else(|_| {
        let digest = Sha256::digest(key.event_id.as_str().as_bytes());
        MessageId::parse(&format!(
            "in.{}.h{}",
            key.provider,
            hex::encode(&digest[..16])
        ))
        .unwrap_or_else(|_| MessageId::generate())
    })
}

/// The body a relayed event is published with: a JSON payload as it came; form fields (Twilio,
/// Slack's slash commands and interactivity) as a JSON object of them, each a string, or an
/// array of strings when the name repeats; `None` for anything else.
pub fn relayed_payload(payload: &[u8]) -> Option<Cow<'_, [u8]>> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        return Some(Cow::Borrowed(payload));
    }
    let text = std::str::from_utf8(payload).ok()?;
    if text.is_empty() || text.split('&').any(|pair| !pair.contains('=')) {
        return None;
    }
    let mut fields = serde_json::Map::new();
    for (name, value) in form_urlencoded::parse(payload) {
        let value = Value::String(value.into_owned());
        match fields.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                fields.insert(name.into_owned(), value);
            }
        }
    }
    serde_json::to_vec(&fields).ok().map(Cow::Owned)
}

#[async_trait]
impl<S, Q, C> Relay for InboundRelay<S, Q, C>
where
    S: OutboundStore + std::fmt::Debug,
    Q: DeliveryQueue + std::fmt::Debug,
    C: Clock,
{
    async fn relay(&self, record: &EventRecord) -> Result<(), String> {
        let key = &record.key;
        if !self.relays(&key.tenant).await? {
            return Ok(());
        }
        let Some(event_type) = record.event_type.as_deref() else {
            return Ok(());
        };
        let Some(payload) = relayed_payload(&record.payload) else {
            warn!("not relayed: the payload is neither JSON nor form fields");
            return Ok(());
        };
        // Publish checks the type, the size and the JSON; what it refuses is logged below.
        let event_type = format!("{}.{event_type}", key.provider);
        let id = relayed_id(record);
        // A payload too large for a message's item is delivered from where the event keeps it.
        let kept_at = match payload {
            Cow::Borrowed(_) => record.payload_location.as_deref(),
            Cow::Owned(_) => None,
        };
        let request = PublishRequest {
            tenant: &key.tenant,
            event_type: &event_type,
            payload: &payload,
            idempotency_key: Some(id.as_str()),
        };
        // The relayed message continues the event's trace: its deliveries are spans of it.
        let trace = record
            .correlation
            .trace
            .map_or_else(TraceParent::generate, |t| t.child());
        match self.outbound.publish_kept(request, kept_at, trace).await {
            Ok(published) => {
                info!(message_id = %published.message_id, deliveries = published.deliveries, "relayed to partners");
                Ok(())
            }
            Err(PublishError::Unavailable(e)) => Err(e),
            // The input cannot change on a retry: log it, and let the event's effects commit.
            Err(e) => {
                warn!(error = %e, "not relayed");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, UNIX_EPOCH},
    };

    use super::*;
    use crate::{
        clock::ManualClock,
        ids::{EventId, TenantId},
        memory::{MemoryDeliveryQueue, MemoryEventStore, MemoryOutboundStore, MemoryRetryQueue},
        message::QueueMessage,
        outbound::{
            OutboundSettings, TenantPolicy,
            admin::EndpointChange,
            ports::{DeliveryLog, EndpointStore},
            ssrf::StaticResolver,
        },
        processor::{Disposition, Message, NoJitter, Processor, ProcessorSettings},
        provider::Provider,
        record::{Correlation, EventKey, EventStatus, Verification},
        secret::SecretSlot,
    };

    const NOW: u64 = 1_750_000_000;
    const INVOICE_PAID: &[u8] = include_bytes!("../../../events/payloads/stripe/invoice.paid.json");

    type MemoryRelay = InboundRelay<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>;

    struct World {
        processor: Processor<MemoryEventStore, MemoryRetryQueue, ManualClock, NoJitter>,
        relay: Arc<MemoryRelay>,
        deliveries: Arc<MemoryDeliveryQueue>,
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    /// GIVEN a processor relaying through the outbound side, and an endpoint subscribed to
    /// `stripe.invoice.*`, with the tenant's relay switched `on` or off.
    async fn world(on: bool) -> World {
        let deliveries = Arc::new(MemoryDeliveryQueue::new());
        let resolver = StaticResolver::default()
            .with("partner.example", &["93.184.216.34".parse().expect("ip")]);
        let outbound = Outbound::new(
            MemoryOutboundStore::new(),
            deliveries.clone(),
            ManualClock::at_unix(NOW),
            OutboundSettings::default(),
        )
        .with_resolver(Arc::new(resolver));
        outbound
            .add_endpoint(
                &acme(),
                EndpointChange {
                    url: Some("https://partner.example/hooks".into()),
                    filter: Some(vec!["stripe.invoice.*".into()]),
                    ..EndpointChange::default()
                },
                None,
            )
            .await
            .expect("endpoint");
        outbound
            .store
            .put_tenant_policy(
                &acme(),
                &TenantPolicy {
                    relay_inbound: on,
                    ..TenantPolicy::default()
                },
            )
            .await
            .expect("policy");
        let processor = Processor::new(
            MemoryEventStore::new(),
            MemoryRetryQueue::new(),
            ManualClock::at_unix(NOW),
            NoJitter,
            ProcessorSettings::default(),
        );
        let relay = Arc::new(InboundRelay::new(outbound));
        World {
            processor: processor.with_relay(relay.clone()),
            relay,
            deliveries,
        }
    }

    impl World {
        /// An enqueued `invoice.paid` and the pointer that reaches the processor.
        fn stored(&self, id: &str) -> (EventKey, Message) {
            let key = EventKey {
                tenant: acme(),
                provider: Provider::Stripe,
                event_id: EventId::parse(id).expect("id"),
            };
            let mut record = EventRecord::received(
                key.clone(),
                Some("invoice.paid".into()),
                None,
                Correlation::default(),
                Verification::Verified(SecretSlot::Current),
                INVOICE_PAID.to_vec(),
                UNIX_EPOCH + Duration::from_secs(NOW - 1),
            );
            record.status = EventStatus::Enqueued;
            self.processor.store.insert(record);
            let message = Message {
                message_id: format!("m-{id}"),
                receipt_handle: Some(format!("r-{id}")),
                body: serde_json::to_string(&QueueMessage::new(&key, &Correlation::default()))
                    .expect("json"),
                receive_count: 1,
                sent_at: None,
            };
            (key, message)
        }

        /// An enqueued event with `payload`, kept where `location` says (S3, for a large one).
        fn stored_with(&self, id: &str, payload: Vec<u8>, location: Option<&str>) -> Message {
            let (key, message) = self.stored(id);
            let mut record = self.processor.store.record(&key).expect("record");
            record.payload = payload;
            record.payload_location = location.map(str::to_owned);
            self.processor.store.insert(record);
            message
        }

        fn status(&self, key: &EventKey) -> EventStatus {
            self.processor.store.record(key).expect("record").status
        }
    }

    #[tokio::test]
    async fn a_processed_event_reaches_the_partners_once_with_its_payload() {
        let w = world(true).await;
        let (key, message) = w.stored("evt_1");

        assert_eq!(w.processor.process(&message).await, Disposition::Processed);
        // A second relay of the same event (a commit lost after the relay) is a duplicate.
        let record = w.processor.store.record(&key).expect("record");
        w.relay.relay(&record).await.expect("relayed again");

        // Both relays name the one message, stored once: its delivery is created by the
        // dispatcher's first claim, and a second pointer to it claims nothing.
        let sent = w.deliveries.sent();
        assert!(!sent.is_empty());
        assert!(
            sent.iter()
                .all(|p| p.message_id == relayed_id(&record).as_str())
        );
        let message = w
            .relay
            .outbound
            .store
            .message(&key.tenant, &relayed_id(&record))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(message.event_type.as_str(), "stripe.invoice.paid");
        assert_eq!(w.status(&key), EventStatus::Processed);
    }

    #[tokio::test]
    async fn a_relay_that_fails_after_the_commit_comes_back_and_relays_then() {
        // GIVEN the outbound store down when the event commits
        let w = world(true).await;
        let (key, message) = w.stored("evt_1");
        w.relay.outbound.store.set_unavailable(true);

        let first = w.processor.process(&message).await;

        // THEN the effects are committed and the message comes back, nothing sent yet
        assert_eq!(first, Disposition::Retry);
        assert_eq!(w.status(&key), EventStatus::Processed);
        assert!(!w.processor.store.projections().is_empty());
        assert!(w.deliveries.sent().is_empty());

        // WHEN it comes back with the outbound store up, THEN the processed event is relayed
        w.relay.outbound.store.set_unavailable(false);
        let retry = Message {
            receive_count: 2,
            ..message
        };
        assert_eq!(
            w.processor.process(&retry).await,
            Disposition::Skipped("already processed")
        );
        assert_eq!(w.deliveries.sent().len(), 1);
        assert_eq!(w.processor.store.commits(&key), 1, "committed once");
    }

    #[tokio::test]
    async fn an_event_whose_commit_fails_is_never_relayed() {
        // GIVEN commits refused for good (the store rejects the write)
        let w = world(true).await;
        let (key, message) = w.stored("evt_1");
        w.processor.store.set_commits_refused(true);

        let outcome = w.processor.process(&message).await;

        // THEN it is dead, and no partner heard of it
        assert_eq!(outcome, Disposition::DeadLettered);
        assert_eq!(w.status(&key), EventStatus::Dead);
        assert!(w.deliveries.sent().is_empty());
        assert!(w.relay.outbound.store.all_messages().is_empty());

        // AND a commit failing for a moment relays nothing either until it succeeds
        let (key, message) = w.stored("evt_2");
        w.processor.store.set_commits_refused(false);
        w.processor.store.set_commits_failing(true);
        assert_eq!(w.processor.process(&message).await, Disposition::Retry);
        assert!(w.deliveries.sent().is_empty());
        w.processor.store.set_commits_failing(false);
        let retry = Message {
            receive_count: 2,
            ..message
        };
        assert_eq!(w.processor.process(&retry).await, Disposition::Processed);
        assert_eq!(w.status(&key), EventStatus::Processed);
        assert_eq!(w.deliveries.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_tenant_that_does_not_relay_publishes_nothing() {
        let w = world(false).await;
        let (key, message) = w.stored("evt_1");

        w.processor.process(&message).await;

        assert_eq!(w.status(&key), EventStatus::Processed);
        assert!(w.deliveries.sent().is_empty());
        assert!(w.relay.outbound.store.all_deliveries().is_empty());
    }

    #[tokio::test]
    async fn a_payload_too_large_for_an_item_is_relayed_by_reference_to_where_the_event_keeps_it() {
        let w = world(true).await;
        let mut event: Value = serde_json::from_slice(INVOICE_PAID).expect("json");
        event["padding"] = Value::String("x".repeat(300 * 1024));
        let large = event.to_string();
        let location = "payloads/acme/e/h";
        let message = w.stored_with("evt_big", large.clone().into_bytes(), Some(location));

        assert_eq!(w.processor.process(&message).await, Disposition::Processed);

        let stored = w.relay.outbound.store.all_messages();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].payload_location.as_deref(), Some(location));
        assert_eq!(stored[0].payload, large.as_bytes(), "delivered whole");
        assert_eq!(w.deliveries.sent().len(), 1);

        // One the event holds itself (no S3 object to refer to) is too large to relay.
        let message = w.stored_with("evt_big2", large.into_bytes(), None);
        assert_eq!(w.processor.process(&message).await, Disposition::Processed);
        assert_eq!(
            w.relay.outbound.store.all_messages().len(),
            1,
            "not relayed"
        );

        // A small one is copied into its message even when the event keeps it in S3.
        let small = INVOICE_PAID.to_vec();
        let message = w.stored_with("evt_small", small, Some(location));
        w.processor.process(&message).await;
        let messages = w.relay.outbound.store.all_messages();
        assert!(
            messages
                .iter()
                .any(|m| m.id.as_str() == "in.stripe.evt_small" && m.payload_location.is_none())
        );
    }

    #[test]
    fn form_fields_are_relayed_as_a_json_object_and_json_as_it_came() {
        let json = br#"{"id":"evt_1", "n": 1}"#;
        assert_eq!(relayed_payload(json).as_deref(), Some(&json[..]));

        let twilio = b"MessageSid=SM1&Body=hi+there%21&MediaUrl0=a&MediaUrl0=b&Empty=";
        let object: Value =
            serde_json::from_slice(&relayed_payload(twilio).expect("form")).expect("json");
        assert_eq!(
            object,
            serde_json::json!({
                "MessageSid": "SM1",
                "Body": "hi there!",
                "MediaUrl0": ["a", "b"],
                "Empty": ""
            })
        );
        let slack = br#"payload=%7B%22type%22%3A%22block_actions%22%7D"#;
        let object: Value =
            serde_json::from_slice(&relayed_payload(slack).expect("form")).expect("json");
        assert_eq!(object["payload"], r#"{"type":"block_actions"}"#);

        for other in [&b""[..], b"plain text", b"a=1&garbage", b"\xff\xfe=1"] {
            assert_eq!(relayed_payload(other), None, "{other:?}");
        }
    }

    #[test]
    fn an_event_id_a_message_id_cannot_hold_is_relayed_under_its_hash() {
        let record = |id: &str| {
            EventRecord::received(
                EventKey {
                    tenant: acme(),
                    provider: Provider::GitHub,
                    event_id: EventId::parse(id).expect("id"),
                },
                Some("push".into()),
                None,
                Correlation::default(),
                Verification::Verified(SecretSlot::Current),
                b"{}".to_vec(),
                UNIX_EPOCH,
            )
        };
        assert_eq!(relayed_id(&record("abc-1")).as_str(), "in.github.abc-1");
        let odd = relayed_id(&record("a/b+c"));
        assert!(odd.as_str().starts_with("in.github.h"), "{odd}");
        assert_eq!(odd, relayed_id(&record("a/b+c")), "stable");
    }

    #[tokio::test]
    async fn a_relayed_event_s_message_continues_the_event_s_trace() {
        let w = world(true).await;
        let (key, message) = w.stored("evt_traced");
        let mut record = w.processor.store.record(&key).expect("record");
        let ingress: crate::trace::TraceParent =
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("traceparent");
        record.correlation.trace = Some(ingress);
        w.processor.store.insert(record);

        assert_eq!(w.processor.process(&message).await, Disposition::Processed);

        let relayed = w
            .relay
            .outbound
            .store
            .message(
                &acme(),
                &relayed_id(&w.processor.store.record(&key).expect("record")),
            )
            .await
            .expect("read")
            .expect("relayed");
        let trace = relayed.trace.expect("a trace");
        assert_eq!(trace.trace_id(), ingress.trace_id());
        assert_ne!(trace.span_id(), ingress.span_id(), "a span of its own");
    }
}
