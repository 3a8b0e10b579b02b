//! The outbound side in one DynamoDB table. A tenant's endpoints and settings share its
//! partition (`pk = t#{tenant}`); each message has a partition of its own for itself, its
//! deliveries and their attempts (`pk = m#{tenant}#{message}`, see `layout`), so no tenant's
//! volume lands on one partition key:
//!
//! | item | `pk` | `sk` | `by_endpoint` (`ek`, `es`) | `by_due` (`due_kind`, `due_at`) |
//! |---|---|---|---|---|
//! | endpoint | `t#{tenant}` | `ep#{endpoint}` | | `holding` while it holds deliveries |
//! | tenant policy | `t#{tenant}` | `policy` | | |
//! | endpoint count | `t#{tenant}` | `endpoints` (written with each insert and delete, in one transaction) | | |
//! | event type | `t#{tenant}` | `type#{name}` | | |
//! | published event types | `t#{tenant}` | `types` | | |
//! | message | `m#{tenant}#{message}` | `msg` | | |
//! | delivery | `m#{tenant}#{message}` | `dlv#{endpoint}` | `{tenant}#{endpoint}#{shard}`: `att#{at}#{message}#{n}` of the last attempt it carries, or `dlv#{created}#{message}` before any | `pending#{shard}` (due, for a retry), `held#{tenant}#{endpoint}` (created) |
//! | attempt | `m#{tenant}#{message}` | `att#{at}#{endpoint}#{n}` | `{tenant}#{endpoint}#{shard}`, `att#{at}#{message}#{n}` | |
//!
//! Messages stored before (unfinished fan-outs among them, `fanout#{shard}` in `by_due`) keep
//! their items in `t#{tenant}` (`msg#{message}`, `dlv#{message}#{endpoint}`,
//! `att#{message}#{at}#{endpoint}#{n}`) until they expire; entries of `by_endpoint` written
//! before the shards sit in `{tenant}#{endpoint}`, and `sending#{shard}` in `by_due` only on
//! deliveries claimed before claims left the index. Every listing reads them too.
//!
//! What a delivery costs on its happy path: the message's one put (its payload deflated), the
//! claim that creates the delivery (no index entry: its pointer is hidden on the queue for the
//! lease), and one update that finishes it carrying its attempt (and its one entry in the
//! endpoint's index). A later attempt first copies the one the delivery carries to an attempt
//! item of its own, so every attempt is listed once: the endpoint's attempts are one query per
//! shard over `att#`, merged, and its deliveries are the delivery items among them, then the
//! `dlv#` entries of those never attempted (and those written before).
//!
//! The busy due kinds are spread over [`DUE_SHARDS`] partitions by the message's or the
//! delivery's key; reconcile reads every shard, and the unsharded partition of entries written
//! before the shards.
//!
//! A message's payload is deflated into its item; one relayed from an inbound event too large
//! for an item (over [`crate::outbound::delivery::MAX_PAYLOAD_BYTES`]) refers to the event's own
//! S3 object instead (`payload_ref`), loaded whenever the message is read.
//!
//! An endpoint's rate limit keeps its next free slot under `pk = rate#{tenant}#{endpoint}`,
//! `sk = rate`. Times in keys are zero-padded unix milliseconds, so keys sort by time. Ids
//! never contain `#`, so no key is the prefix of another's. Every query's partition is built
//! from the caller's tenant, and a page token is accepted only for the partition it came from:
//! one tenant's listing can never read another's items.
//!
//! Endpoints' signing secrets are sealed ([`crate::sealing`]) with the tenant, the endpoint and
//! the field as context; opened values are cached by their sealed text **and** that context
//! for [`OPENED_TTL`], so a warm dispatcher does not ask KMS again for the same secret, a sealed
//! value copied into another item fails warm exactly as it does cold, and a disabled key stops
//! opening within the lifetime.

mod catalog;
mod endpoints;
mod layout;
mod log;

pub use self::log::DUE_SHARDS;

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_dynamodb::{Client, types::AttributeValue};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    adapters::{
        dynamodb::item::{Item, s},
        events::dynamodb::payloads::PayloadBucket,
    },
    ids::TenantId,
    outbound::{
        delivery::DeliveryKey,
        ids::{EndpointId, EventType},
    },
    ports::StoreError,
    sealing::{Envelope, KeyService, SealContext},
    secret::Secret,
    ttl_cache::TtlCache,
};

/// The index of an endpoint's deliveries and attempts, by time.
pub const ENDPOINT_INDEX: &str = "by_endpoint";
/// The sparse index of what reconcile watches: unfinished fan-outs, deliveries that are due
/// or leased, held deliveries, endpoints holding deliveries.
pub const DUE_INDEX: &str = "by_due";

/// How many opened secrets a warm function keeps.
const OPENED_CACHE: usize = 1_000;
/// How long an opened secret is kept: KMS is asked again after it, so a key disabled (or a
/// grant revoked) stops opening within this.
pub const OPENED_TTL: Duration = Duration::from_secs(300);
/// How many (tenant, event type) pairs a warm function remembers having noted.
const NOTED_TYPES: usize = 10_000;

/// The outbound ports on DynamoDB.
#[derive(Clone)]
pub struct DynamoOutboundStore {
    client: Client,
    table: String,
    envelope: Envelope<Arc<dyn KeyService>>,
    /// Opened secrets by sealed text and context.
    opened: TtlCache<(String, SealContext), Secret>,
    layouts: Arc<layout::Layouts>,
    /// Event types this container has noted for their tenant (`published_types`).
    noted_types: Arc<Mutex<lru::LruCache<(TenantId, EventType), ()>>>,
    /// Where the payloads messages refer to are kept (the inbound events' bucket).
    payloads: Option<PayloadBucket>,
}

impl std::fmt::Debug for DynamoOutboundStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoOutboundStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DynamoOutboundStore {
    /// `keys` seals (operators) and opens (the dispatcher) endpoints' secrets; functions that
    /// never read secrets still pass one, and IAM refuses it any use.
    pub fn new(client: Client, table: impl Into<String>, keys: Arc<dyn KeyService>) -> Self {
        Self {
            client,
            table: table.into(),
            envelope: Envelope::new(keys),
            opened: TtlCache::new(OPENED_CACHE, OPENED_TTL),
            layouts: Arc::default(),
            noted_types: Arc::new(Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(NOTED_TYPES).unwrap_or(NonZeroUsize::MIN),
            ))),
            payloads: None,
        }
    }

    /// Read the payloads messages refer to (relayed inbound events too large for an item)
    /// from `bucket`. Without it, reading such a message is refused.
    pub fn with_payloads(
        mut self,
        client: impl Into<crate::aws::LazyClient<aws_sdk_s3::Client>>,
        bucket: impl Into<String>,
    ) -> Self {
        self.payloads = Some(PayloadBucket::new(client, bucket));
        self
    }

    /// A store that never seals or opens a secret (reading endpoints without them, logging,
    /// fan-out): for the functions IAM gives no KMS access.
    pub fn without_secrets(client: Client, table: impl Into<String>) -> Self {
        Self::new(client, table, Arc::new(crate::adapters::keys::NoKeys))
    }

    /// The secret `sealed` opened to under `context`, if opened within [`OPENED_TTL`].
    fn cached(&self, sealed: &str, context: &SealContext) -> Option<Secret> {
        self.opened.get(&(sealed.to_owned(), context.clone()))
    }

    fn remember(&self, sealed: &str, context: &SealContext, secret: &Secret) {
        self.opened
            .put((sealed.to_owned(), context.clone()), secret.clone());
    }
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("t#{tenant}")
}

/// How many partitions of the endpoint index one endpoint's entries are spread over, by
/// message: an endpoint taking 3,000 deliveries a second writes under 400 units a second to
/// each, where one partition takes 1,000.
pub const ENDPOINT_SHARDS: u8 = 8;

/// The endpoint index's partition for a message's entries (its delivery and attempts).
pub(crate) fn endpoint_partition(key: &DeliveryKey) -> String {
    format!(
        "{}#{}#{}",
        key.tenant,
        key.endpoint_id,
        crate::shard::shard_of(key.message_id.as_str(), ENDPOINT_SHARDS)
    )
}

/// Every partition an endpoint's entries may sit in: each shard, and the unsharded one of
/// entries written before the shards.
pub(crate) fn endpoint_partitions(tenant: &TenantId, endpoint: &EndpointId) -> Vec<String> {
    std::iter::once(format!("{tenant}#{endpoint}"))
        .chain((0..ENDPOINT_SHARDS).map(|n| format!("{tenant}#{endpoint}#{n}")))
        .collect()
}

pub(crate) fn key(pk: String, sk: String) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn held_kind(tenant: &TenantId, endpoint: &EndpointId) -> String {
    format!("held#{tenant}#{endpoint}")
}

/// Milliseconds, zero-padded to sort as text.
pub(crate) fn padded(millis: i64) -> String {
    format!("{:013}", millis.max(0))
}

/// A page token: the string and number attributes of DynamoDB's `LastEvaluatedKey` (`s:` or
/// `n:` before each value), as URL-safe base64 JSON. Opaque to callers; checked against the
/// partition it is used with.
pub(crate) fn encode_token(last: &Item) -> Option<String> {
    let values: std::collections::BTreeMap<&str, String> = last
        .iter()
        .filter_map(|(k, v)| match v {
            AttributeValue::S(text) => Some((k.as_str(), format!("s:{text}"))),
            AttributeValue::N(number) => Some((k.as_str(), format!("n:{number}"))),
            _ => None,
        })
        .collect();
    serde_json::to_vec(&values)
        .ok()
        .map(|json| URL_SAFE_NO_PAD.encode(json))
}

/// The start key a token names, if it belongs to `partition` (in attribute `partition_name`).
pub(crate) fn decode_token(
    token: &str,
    partition_name: &str,
    partition: &str,
) -> Result<Item, StoreError> {
    let invalid = || StoreError::Malformed("invalid page token".into());
    let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let values: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| invalid())?;
    if values
        .get(partition_name)
        .and_then(|v| v.strip_prefix("s:"))
        != Some(partition)
    {
        return Err(invalid());
    }
    values
        .into_iter()
        .map(|(k, v)| {
            let value = if let Some(text) = v.strip_prefix("s:") {
                AttributeValue::S(text.to_owned())
            } else if let Some(number) = v.strip_prefix("n:").filter(|n| n.parse::<i64>().is_ok()) {
                AttributeValue::N(number.to_owned())
            } else {
                return Err(invalid());
            };
            Ok((k, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_bound_to_their_partition() {
        let last = Item::from([
            ("pk".to_owned(), s("t#acme")),
            ("sk".to_owned(), s("dlv#m#ep_1")),
        ]);
        let token = encode_token(&last).expect("token");
        assert_eq!(decode_token(&token, "pk", "t#acme"), Ok(last));
        assert!(decode_token(&token, "pk", "t#globex").is_err());
        assert!(decode_token("!!", "pk", "t#acme").is_err());
        // An index's numeric key comes back a number; a forged one is refused.
        let due = Item::from([
            ("due_kind".to_owned(), s("holding")),
            (
                "due_at".to_owned(),
                AttributeValue::N("1700000000000".into()),
            ),
        ]);
        let token = encode_token(&due).expect("token");
        assert_eq!(decode_token(&token, "due_kind", "holding"), Ok(due));
        let forged = URL_SAFE_NO_PAD.encode(r#"{"due_kind":"s:holding","due_at":"n:1 OR 1"}"#);
        assert!(decode_token(&forged, "due_kind", "holding").is_err());
    }
}
