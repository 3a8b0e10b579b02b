//! The tenant's message log, as partners and publishers look things up: the messages that went
//! to its endpoints, newest first, each with how its deliveries stand, filtered by event type,
//! state, endpoint and time; and one message with its payload, deliveries and every attempt.
//!
//! It reads the endpoints' delivery index (`deliveries_of_endpoint`), so it lists messages that
//! have a delivery: a message no endpoint subscribed to is found by its id. No per-tenant index
//! is written for it: publishing stays one write, and no busy tenant's messages share a key.

use std::{collections::BTreeMap, time::SystemTime};

use futures_util::future::join_all;

use super::{
    Outbound,
    delivery::{Attempt, Delivery, DeliveryStatus, OutboundMessage},
    ids::{EndpointId, EventType, MessageId},
    ports::OutboundStore,
};
use crate::{clock::Clock, ids::TenantId, ports::StoreError};

/// Deliveries read per endpoint for one page of the log: the newest this many.
pub const READ_PER_ENDPOINT: u32 = 200;
/// Attempts shown for one message.
pub const ATTEMPTS_SHOWN: u32 = 100;
/// How many endpoints' indexes are read at once.
const ENDPOINTS_AT_ONCE: usize = 8;

/// How a delivery, or a message as a whole, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageState {
    Delivered,
    /// Not attempted yet, held, or under way.
    Pending,
    /// Attempted and failed; retries are coming.
    Failing,
    /// Every retry spent (or its endpoint deleted).
    Dead,
}

impl MessageState {
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Pending, Self::Failing, Self::Dead];

    pub fn of(delivery: &Delivery) -> Self {
        match delivery.status {
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Dead | DeliveryStatus::Cancelled => Self::Dead,
            _ if delivery.attempts > 0 => Self::Failing,
            _ => Self::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Pending => "pending",
            Self::Failing => "failing",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub event_type: Option<EventType>,
    /// The message's state: its worst delivery's (dead, then failing, then pending).
    pub state: Option<MessageState>,
    pub endpoint: Option<EndpointId>,
    /// Created at or after.
    pub since: Option<SystemTime>,
    /// Created before.
    pub until: Option<SystemTime>,
}

/// One message of the log, with its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    pub id: MessageId,
    pub event_type: EventType,
    pub created_at: SystemTime,
    pub deliveries: Vec<Delivery>,
}

impl LoggedMessage {
    /// Its worst delivery's state.
    pub fn state(&self) -> MessageState {
        self.deliveries
            .iter()
            .map(MessageState::of)
            .max()
            .unwrap_or(MessageState::Pending)
    }
}

/// One message looked up by id.
#[derive(Debug, Clone)]
pub struct MessageDetail {
    /// `None` once it expired (its deliveries and attempts may outlive it briefly).
    pub message: Option<OutboundMessage>,
    pub deliveries: Vec<Delivery>,
    pub attempts: Vec<Attempt>,
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    C: Clock,
{
    /// The newest `limit` messages that match `filter`, newest first.
    pub async fn message_log(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        limit: usize,
    ) -> Result<Vec<LoggedMessage>, StoreError> {
        let endpoints = match &filter.endpoint {
            Some(id) => vec![id.clone()],
            None => self
                .store
                .endpoints(tenant)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect(),
        };
        // A few endpoints' indexes read at once: a tenant with many endpoints answers in a few
        // round trips, not one per endpoint.
        let mut messages: BTreeMap<MessageId, LoggedMessage> = BTreeMap::new();
        for chunk in endpoints.chunks(ENDPOINTS_AT_ONCE) {
            let mut reads = Vec::with_capacity(chunk.len());
            for endpoint in chunk {
                reads.push(self.store.deliveries_of_endpoint(
                    tenant,
                    endpoint,
                    filter.since,
                    READ_PER_ENDPOINT,
                    None,
                ));
            }
            for page in join_all(reads).await {
                for delivery in page?.items {
                    let id = delivery.key.message_id.clone();
                    let logged = messages.entry(id.clone()).or_insert_with(|| LoggedMessage {
                        id,
                        event_type: delivery.event_type.clone(),
                        created_at: delivery.created_at,
                        deliveries: Vec::new(),
                    });
                    logged.created_at = logged.created_at.min(delivery.created_at);
                    logged.deliveries.push(delivery);
                }
            }
        }
        let mut listed: Vec<LoggedMessage> = messages
            .into_values()
            .filter(|m| filter.since.is_none_or(|since| m.created_at >= since))
            .filter(|m| filter.until.is_none_or(|until| m.created_at < until))
            .filter(|m| {
                filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| m.event_type == *t)
            })
            .filter(|m| filter.state.is_none_or(|s| m.state() == s))
            .collect();
        listed.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        listed.truncate(limit);
        Ok(listed)
    }

    /// One message: its payload, its deliveries and their attempts. `None` if the tenant has
    /// no trace of it.
    pub async fn message_detail(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<MessageDetail>, StoreError> {
        let message = self.store.message(tenant, id).await?;
        let deliveries = self.store.deliveries_of_message(tenant, id).await?;
        let attempts = self
            .store
            .attempts_of_message(tenant, id, ATTEMPTS_SHOWN, None)
            .await?
            .items;
        if message.is_none() && deliveries.is_empty() && attempts.is_empty() {
            return Ok(None);
        }
        Ok(Some(MessageDetail {
            message,
            deliveries,
            attempts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::{
        clock::ManualClock,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore},
        outbound::{
            OutboundSettings, admin::EndpointChange, ports::DeliveryLog, publish::PublishRequest,
            ssrf::StaticResolver,
        },
    };

    type TestOutbound = Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>;

    const NOW: u64 = 1_750_000_000;

    fn acme() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn outbound() -> TestOutbound {
        Outbound::new(
            MemoryOutboundStore::new(),
            Arc::new(MemoryDeliveryQueue::new()),
            ManualClock::at_unix(NOW),
            OutboundSettings::default(),
        )
        .with_resolver(Arc::new(
            StaticResolver::default()
                .with("partner.example", &["93.184.216.34".parse().expect("ip")]),
        ))
    }

    async fn endpoint(o: &TestOutbound, path: &str) -> EndpointId {
        o.add_endpoint(
            &acme(),
            EndpointChange {
                url: Some(format!("https://partner.example/{path}")),
                ..EndpointChange::default()
            },
            None,
        )
        .await
        .expect("endpoint")
        .id
    }

    /// Publish `id` as `event_type`, and give it a delivery in `status` with `attempts` at each
    /// of `endpoints` (the dispatcher's claim creates them in a deployment).
    async fn message(
        o: &TestOutbound,
        id: &str,
        event_type: &str,
        at: u64,
        deliveries: &[(&EndpointId, DeliveryStatus, u32)],
    ) {
        o.clock.set(std::time::UNIX_EPOCH + Duration::from_secs(at));
        o.publish(PublishRequest {
            tenant: &acme(),
            event_type,
            payload: br#"{"n":1}"#,
            idempotency_key: Some(id),
        })
        .await
        .expect("published");
        let message = o
            .store
            .message(&acme(), &MessageId::parse(id).expect("id"))
            .await
            .expect("read")
            .expect("stored");
        for (endpoint, status, attempts) in deliveries {
            let delivery = Delivery {
                status: *status,
                attempts: *attempts,
                ..Delivery::new(&message, endpoint, false, o.clock.now())
            };
            o.store
                .put_delivery_if_absent(&delivery)
                .await
                .expect("stored");
        }
    }

    fn ids(listed: &[LoggedMessage]) -> Vec<&str> {
        listed.iter().map(|m| m.id.as_str()).collect()
    }

    #[tokio::test]
    async fn the_log_lists_messages_newest_first_filtered_by_type_state_endpoint_and_time() {
        let o = outbound();
        let (a, b) = (endpoint(&o, "a").await, endpoint(&o, "b").await);
        message(
            &o,
            "m1",
            "invoice.paid",
            NOW,
            &[
                (&a, DeliveryStatus::Delivered, 1),
                (&b, DeliveryStatus::Delivered, 1),
            ],
        )
        .await;
        message(
            &o,
            "m2",
            "invoice.paid",
            NOW + 10,
            &[
                (&a, DeliveryStatus::Delivered, 1),
                (&b, DeliveryStatus::Pending, 2),
            ],
        )
        .await;
        message(
            &o,
            "m3",
            "user.created",
            NOW + 20,
            &[(&a, DeliveryStatus::Dead, 8)],
        )
        .await;
        message(
            &o,
            "m4",
            "user.created",
            NOW + 30,
            &[(&b, DeliveryStatus::Pending, 0)],
        )
        .await;
        let log = |filter: MessageFilter| {
            let o = &o;
            async move { o.message_log(&acme(), &filter, 50).await.expect("log") }
        };

        let all = log(MessageFilter::default()).await;
        assert_eq!(ids(&all), ["m4", "m3", "m2", "m1"]);
        assert_eq!(
            all[2].deliveries.len(),
            2,
            "one row per message, every endpoint's delivery"
        );
        let states: Vec<MessageState> = all.iter().map(LoggedMessage::state).collect();
        assert_eq!(
            states,
            [
                MessageState::Pending,
                MessageState::Dead,
                MessageState::Failing,
                MessageState::Delivered
            ]
        );

        let of_type = |t: &str| MessageFilter {
            event_type: Some(EventType::parse(t).expect("type")),
            ..MessageFilter::default()
        };
        assert_eq!(ids(&log(of_type("user.created")).await), ["m4", "m3"]);
        for (state, expected) in [
            (MessageState::Failing, vec!["m2"]),
            (MessageState::Dead, vec!["m3"]),
            (MessageState::Delivered, vec!["m1"]),
        ] {
            let listed = log(MessageFilter {
                state: Some(state),
                ..MessageFilter::default()
            })
            .await;
            assert_eq!(ids(&listed), expected, "{state:?}");
        }
        let at_a = log(MessageFilter {
            endpoint: Some(a.clone()),
            ..MessageFilter::default()
        })
        .await;
        assert_eq!(ids(&at_a), ["m3", "m2", "m1"]);
        let window = MessageFilter {
            since: Some(std::time::UNIX_EPOCH + Duration::from_secs(NOW + 10)),
            until: Some(std::time::UNIX_EPOCH + Duration::from_secs(NOW + 30)),
            ..MessageFilter::default()
        };
        assert_eq!(ids(&log(window).await), ["m3", "m2"]);
        assert_eq!(
            ids(&o
                .message_log(&acme(), &MessageFilter::default(), 2)
                .await
                .expect("log")),
            ["m4", "m3"]
        );

        // Another tenant's log is its own.
        let globex = TenantId::parse("globex").expect("tenant");
        assert!(
            o.message_log(&globex, &MessageFilter::default(), 50)
                .await
                .expect("log")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn one_message_shows_its_payload_deliveries_and_attempts_and_an_unknown_one_nothing() {
        let o = outbound();
        let a = endpoint(&o, "a").await;
        message(
            &o,
            "m1",
            "invoice.paid",
            NOW,
            &[(&a, DeliveryStatus::Delivered, 1)],
        )
        .await;
        let id = MessageId::parse("m1").expect("id");

        let detail = o
            .message_detail(&acme(), &id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(
            detail.message.map(|m| m.payload),
            Some(br#"{"n":1}"#.to_vec())
        );
        assert_eq!(detail.deliveries.len(), 1);

        let missing = MessageId::parse("m404").expect("id");
        assert!(
            o.message_detail(&acme(), &missing)
                .await
                .expect("read")
                .is_none()
        );
        let globex = TenantId::parse("globex").expect("tenant");
        assert!(
            o.message_detail(&globex, &id)
                .await
                .expect("read")
                .is_none()
        );
    }
}
