//! Projections: the read models the processor builds from events. A handler *returns*
//! [`ProjectionWrite`]s instead of performing them, so the processor can commit them together
//! with the event's `processed` mark in one transaction, and so one rule ([`applies_over`])
//! orders them the same way in memory and in DynamoDB.
//!
//! Table layout (partition `pk`, sort `sk`, both strings): `pk = "{tenant}#{kind}"`,
//! `sk = entity id`. The tenant half of `pk` comes only from a validated [`TenantId`] (which
//! cannot contain `#`) and the kind from a closed enum, so no payload field can reach another
//! tenant's partition.

use std::{collections::BTreeMap, fmt};

use serde_json::Value;
use thiserror::Error;

use crate::ids::{EventId, TenantId};

/// The fields an upsert sets or a history entry holds.
pub type Fields = BTreeMap<String, Value>;

/// Attribute names the store keeps for itself; handlers never emit them as fields.
pub const RESERVED_ATTRIBUTES: [&str; 6] =
    ["pk", "sk", "version", "rank", "deleted", "source_event_id"];

/// What a projection item describes. A closed set: the kind is half of the partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectionKind {
    StripeInvoice,
    StripeSubscription,
    StripeCheckoutSession,
    /// Links a Stripe customer to the checkout that created it (email, `client_reference_id`).
    StripeCustomer,
    StripePaymentIntent,
    StripeCharge,
    ClerkUser,
    ClerkSession,
    ClerkOrganization,
    ClerkMembership,
    /// The latest status of one Resend email.
    ResendEmail,
    /// One entry of a Resend email's event history.
    ResendEmailEvent,
    /// The latest status of one Twilio message (SMS, MMS, WhatsApp).
    TwilioMessage,
    /// The latest status of one Twilio call.
    TwilioCall,
    /// The latest status of one PayPal payment capture.
    PayPalCapture,
    /// The latest status of one PayPal refund, with the capture it refunds.
    PayPalRefund,
    /// The latest status of one PayPal dispute.
    PayPalDispute,
    /// The latest status of one PayPal subscription.
    PayPalSubscription,
    /// The latest status of one Circle payment (or refund, which Circle sends as a payment).
    CirclePayment,
    /// The latest status of one Circle transfer.
    CircleTransfer,
    /// The latest status of one Circle payout.
    CirclePayout,
    /// The latest delivery status of one Firebase Cloud Messaging message.
    FirebaseMessage,
    /// An event from a provider without a domain handler, recorded with its type and time.
    ReceivedEvent,
}

impl ProjectionKind {
    pub const ALL: [ProjectionKind; 23] = [
        Self::StripeInvoice,
        Self::StripeSubscription,
        Self::StripeCheckoutSession,
        Self::StripeCustomer,
        Self::StripePaymentIntent,
        Self::StripeCharge,
        Self::ClerkUser,
        Self::ClerkSession,
        Self::ClerkOrganization,
        Self::ClerkMembership,
        Self::ResendEmail,
        Self::ResendEmailEvent,
        Self::TwilioMessage,
        Self::TwilioCall,
        Self::PayPalCapture,
        Self::PayPalRefund,
        Self::PayPalDispute,
        Self::PayPalSubscription,
        Self::CirclePayment,
        Self::CircleTransfer,
        Self::CirclePayout,
        Self::FirebaseMessage,
        Self::ReceivedEvent,
    ];

    /// The name stored in `pk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StripeInvoice => "stripe_invoice",
            Self::StripeSubscription => "stripe_subscription",
            Self::StripeCheckoutSession => "stripe_checkout_session",
            Self::StripeCustomer => "stripe_customer",
            Self::StripePaymentIntent => "stripe_payment_intent",
            Self::StripeCharge => "stripe_charge",
            Self::ClerkUser => "clerk_user",
            Self::ClerkSession => "clerk_session",
            Self::ClerkOrganization => "clerk_organization",
            Self::ClerkMembership => "clerk_membership",
            Self::ResendEmail => "resend_email",
            Self::ResendEmailEvent => "resend_email_event",
            Self::TwilioMessage => "twilio_message",
            Self::TwilioCall => "twilio_call",
            Self::PayPalCapture => "paypal_capture",
            Self::PayPalRefund => "paypal_refund",
            Self::PayPalDispute => "paypal_dispute",
            Self::PayPalSubscription => "paypal_subscription",
            Self::CirclePayment => "circle_payment",
            Self::CircleTransfer => "circle_transfer",
            Self::CirclePayout => "circle_payout",
            Self::FirebaseMessage => "firebase_message",
            Self::ReceivedEvent => "received_event",
        }
    }
}

impl fmt::Display for ProjectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an entity id cannot be part of a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("entity id is empty")]
    Empty,
    #[error("entity id is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("entity id contains a control character")]
    ControlCharacter,
    #[error("entity id contains '#', which separates the parts of a history key")]
    Separator,
}

/// How many partitions one tenant's items of one kind are spread over: a tenant sending
/// 3,000 invoice events a second writes under 200 units a second to each.
pub const PROJECTION_SHARDS: u8 = 16;

/// The shard of an entity: the first byte of the SHA-256 of its id, modulo
/// [`PROJECTION_SHARDS`]. Fixed by the id alone, so a reader finds an item from the ids it knows.
pub fn projection_shard(entity_id: &str) -> u8 {
    crate::shard::shard_of(entity_id, PROJECTION_SHARDS)
}

/// Where a projection item lives: always under the event's tenant, in its entity's shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectionKey {
    tenant: TenantId,
    kind: ProjectionKind,
    sk: String,
    /// The entity's shard: a history entry sits in its parent's, beside its siblings.
    shard: u8,
}

impl ProjectionKey {
    /// Longest entity id: keeps every sort key, history keys included, under DynamoDB's
    /// 1024-byte limit.
    pub const MAX_ENTITY_ID_LEN: usize = 512;

    /// The item for entity `entity_id` of `kind` under `tenant`.
    pub fn new(tenant: &TenantId, kind: ProjectionKind, entity_id: &str) -> Result<Self, KeyError> {
        check_entity_id(entity_id)?;
        Ok(Self {
            tenant: tenant.clone(),
            kind,
            sk: entity_id.to_owned(),
            shard: projection_shard(entity_id),
        })
    }

    /// One history entry of `parent_id`: `sk = "{parent_id}#{at_millis:013}#{event_id}"`, so
    /// a `begins_with(sk, "{parent_id}#")` query lists a parent's history in time order, and
    /// two events never share an entry.
    pub fn history(
        tenant: &TenantId,
        kind: ProjectionKind,
        parent_id: &str,
        at_millis: i64,
        event_id: &EventId,
    ) -> Result<Self, KeyError> {
        check_entity_id(parent_id)?;
        if parent_id.contains('#') {
            return Err(KeyError::Separator);
        }
        Ok(Self {
            tenant: tenant.clone(),
            kind,
            sk: format!("{parent_id}#{:013}#{event_id}", at_millis.max(0)),
            shard: projection_shard(parent_id),
        })
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn kind(&self) -> ProjectionKind {
        self.kind
    }

    /// The partition key: `"{tenant}#{kind}#{shard}"` (see [`projection_shard`]).
    pub fn pk(&self) -> String {
        format!("{}#{}#{}", self.tenant, self.kind, self.shard)
    }

    /// Where the item lived before the shards: `"{tenant}#{kind}"`. Items there move to
    /// [`Self::pk`] the first time their entity changes; until then readers fall back to it.
    pub fn unsharded_pk(&self) -> String {
        format!("{}#{}", self.tenant, self.kind)
    }

    /// Every partition holding `tenant`'s items of `kind`: to list them all, query each.
    pub fn partitions(tenant: &TenantId, kind: ProjectionKind) -> Vec<String> {
        (0..PROJECTION_SHARDS)
            .map(|shard| format!("{tenant}#{kind}#{shard}"))
            .collect()
    }

    /// The sort key: the entity id, or a history entry's composite id.
    pub fn sk(&self) -> &str {
        &self.sk
    }
}

impl fmt::Display for ProjectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}/{}", self.tenant, self.kind, self.sk)
    }
}

fn check_entity_id(id: &str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::Empty);
    }
    if id.len() > ProjectionKey::MAX_ENTITY_ID_LEN {
        return Err(KeyError::TooLong {
            max: ProjectionKey::MAX_ENTITY_ID_LEN,
        });
    }
    if id.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    Ok(())
}

/// What a write does to its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Set these fields (merged into the item) and clear `deleted`. Every handler emits the
    /// same field set for a kind, `null` where the event has no value, so merging and
    /// replacing agree and the final item does not depend on delivery order.
    Upsert(Fields),
    /// Leave a tombstone: only `deleted = true`, the version and the source event remain, so
    /// a late, older update cannot resurrect the entity.
    Delete,
    /// Create a history entry. Its key names the event, so it never meets another event's
    /// entry; a replay of the same event finds it present and changes nothing.
    Append(Fields),
}

/// One write a handler asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionWrite {
    pub key: ProjectionKey,
    /// The provider's event time in unix milliseconds: orders writes to the same item.
    pub version: i64,
    /// The provider's ordering hint among events of the same instant (Stripe's `created` is
    /// whole seconds): a lifecycle rank, higher for what comes later (`*.created` before
    /// `*.updated` before `*.deleted`). 0 where the provider gives none.
    pub rank: u32,
    /// The event that caused the write: the last tie-breaker, and the trace from an item back
    /// to its delivery.
    pub source_event_id: EventId,
    pub change: Change,
}

/// Where a write stands among every write to its item: event time, then rank, then event id.
/// A total order, so the final state of an item is the same whatever order its events arrive
/// in; two writes with the same order come from the same event.
pub type Order<'a> = (i64, u32, &'a str);

impl ProjectionWrite {
    pub fn order(&self) -> Order<'_> {
        (self.version, self.rank, self.source_event_id.as_str())
    }
}

/// The most items one commit may write: DynamoDB's 100-item transaction, less the event's own
/// update.
pub const MAX_ITEMS_PER_COMMIT: usize = 99;

/// Why a commit's writes can never be stored, whatever the retry: permanent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WritesError {
    #[error("a {kind} projection write sets the field `{field}`, which is empty or reserved")]
    ReservedField { kind: ProjectionKind, field: String },
    #[error(
        "a commit touching {items} projection items exceeds the {MAX_ITEMS_PER_COMMIT} one \
         transaction holds beside the event's update"
    )]
    TooManyItems { items: usize },
}

/// Refuse, before any I/O, what the store would refuse mid-way or what would break an item's
/// bookkeeping: reserved or empty field names, and more items than one commit holds. The
/// distinct keys written, in order.
pub fn check_writes(writes: &[ProjectionWrite]) -> Result<Vec<&ProjectionKey>, WritesError> {
    for write in writes {
        let fields = match &write.change {
            Change::Upsert(fields) | Change::Append(fields) => fields,
            Change::Delete => continue,
        };
        if let Some(field) = fields
            .keys()
            .find(|name| name.is_empty() || RESERVED_ATTRIBUTES.contains(&name.as_str()))
        {
            return Err(WritesError::ReservedField {
                kind: write.key.kind(),
                field: field.clone(),
            });
        }
    }
    let mut keys: Vec<&ProjectionKey> = writes.iter().map(|w| &w.key).collect();
    keys.sort();
    keys.dedup();
    if keys.len() > MAX_ITEMS_PER_COMMIT {
        return Err(WritesError::TooManyItems { items: keys.len() });
    }
    Ok(keys)
}

/// Whether `incoming` applies over the stored item whose order is `existing` (`None` when
/// there is none). The rule: a write applies only over an item strictly older in the
/// [`Order`]. So a late, older event never overwrites newer state, a tombstone is replaced only
/// by a strictly newer update, a replay of an applied event (equal order: the same event)
/// changes nothing, and history entries are written once.
///
/// The DynamoDB adapter uses this on the orders it read, and conditions each write on the item
/// still holding that order, so a concurrent newer write cancels the transaction instead of
/// being overwritten.
pub fn applies_over(existing: Option<Order<'_>>, incoming: &ProjectionWrite) -> bool {
    let Some(existing) = existing else {
        return true;
    };
    match incoming.change {
        Change::Append(_) => false,
        Change::Upsert(_) | Change::Delete => incoming.order() > existing,
    }
}

#[cfg(any(test, feature = "test-util"))]
/// A stored projection item, as the memory store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionItem {
    pub version: i64,
    pub rank: u32,
    pub deleted: bool,
    pub source_event_id: EventId,
    pub fields: Fields,
}

#[cfg(any(test, feature = "test-util"))]
impl ProjectionItem {
    pub fn order(&self) -> Order<'_> {
        (self.version, self.rank, self.source_event_id.as_str())
    }
}

#[cfg(any(test, feature = "test-util"))]
/// Whether a write changed the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// Older than the stored item (or a history entry already there): nothing changed.
    Skipped,
}

#[cfg(any(test, feature = "test-util"))]
/// Projection items in a map, applying writes with [`applies_over`]: the reference the
/// DynamoDB adapter is tested against, and the store of the processor's unit tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryProjections {
    items: BTreeMap<ProjectionKey, ProjectionItem>,
}

#[cfg(any(test, feature = "test-util"))]
impl MemoryProjections {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one write, or skip it if the stored item is newer.
    pub fn apply(&mut self, write: &ProjectionWrite) -> Applied {
        let existing = self.items.get(&write.key);
        if !applies_over(existing.map(ProjectionItem::order), write) {
            return Applied::Skipped;
        }
        let item = self
            .items
            .entry(write.key.clone())
            .or_insert_with(|| ProjectionItem {
                version: write.version,
                rank: write.rank,
                deleted: false,
                source_event_id: write.source_event_id.clone(),
                fields: Fields::new(),
            });
        item.version = write.version;
        item.rank = write.rank;
        item.source_event_id = write.source_event_id.clone();
        match &write.change {
            Change::Upsert(fields) => {
                if item.deleted {
                    // A tombstone has no fields left; the entity starts over.
                    item.fields.clear();
                }
                item.deleted = false;
                item.fields
                    .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Change::Delete => {
                item.deleted = true;
                item.fields.clear();
            }
            Change::Append(fields) => item.fields = fields.clone(),
        }
        Applied::Written
    }

    /// Apply writes in order; how many changed the store.
    pub fn apply_all<'a>(
        &mut self,
        writes: impl IntoIterator<Item = &'a ProjectionWrite>,
    ) -> usize {
        writes
            .into_iter()
            .filter(|w| self.apply(w) == Applied::Written)
            .count()
    }

    pub fn get(&self, key: &ProjectionKey) -> Option<&ProjectionItem> {
        self.items.get(key)
    }

    /// Every item, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ProjectionKey, &ProjectionItem)> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).expect("tenant")
    }

    fn key() -> ProjectionKey {
        ProjectionKey::new(&tenant("acme"), ProjectionKind::StripeCustomer, "cus_1").expect("key")
    }

    fn write(version: i64, change: Change) -> ProjectionWrite {
        ranked(version, 0, &format!("evt_{version}"), change)
    }

    fn ranked(version: i64, rank: u32, event: &str, change: Change) -> ProjectionWrite {
        ProjectionWrite {
            key: key(),
            version,
            rank,
            source_event_id: EventId::parse(event).expect("id"),
            change,
        }
    }

    fn upsert(version: i64, status: &str) -> ProjectionWrite {
        write(
            version,
            Change::Upsert(Fields::from([("status".to_owned(), json!(status))])),
        )
    }

    #[test]
    fn kind_names_are_distinct_and_fit_a_partition_key() {
        let names: std::collections::BTreeSet<&str> =
            ProjectionKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ProjectionKind::ALL.len());
        for name in names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn keys_are_laid_out_tenant_then_kind_then_shard() {
        let k = key();
        let shard = projection_shard("cus_1");
        assert!(shard < PROJECTION_SHARDS);
        assert_eq!(k.pk(), format!("acme#stripe_customer#{shard}"));
        assert_eq!(k.unsharded_pk(), "acme#stripe_customer");
        assert!(
            ProjectionKey::partitions(&tenant("acme"), ProjectionKind::StripeCustomer)
                .contains(&k.pk())
        );
        assert_eq!(k.sk(), "cus_1");
        assert_eq!(k.to_string(), "acme#stripe_customer/cus_1");
    }

    #[test]
    fn the_same_entity_under_two_tenants_is_two_keys() {
        let a = ProjectionKey::new(&tenant("acme"), ProjectionKind::StripeCustomer, "cus_1");
        let b = ProjectionKey::new(&tenant("globex"), ProjectionKind::StripeCustomer, "cus_1");
        assert_ne!(a.expect("a").pk(), b.expect("b").pk());
    }

    #[test]
    fn a_history_entry_sits_in_its_parents_shard() {
        let id = EventId::parse("msg_1").expect("id");
        let entry = ProjectionKey::history(
            &tenant("acme"),
            ProjectionKind::ResendEmailEvent,
            "em_1",
            1,
            &id,
        )
        .expect("key");
        assert_eq!(
            entry.pk(),
            format!("acme#resend_email_event#{}", projection_shard("em_1"))
        );
    }

    #[test]
    fn history_keys_sort_by_time_and_name_the_event() {
        let id = EventId::parse("msg_1").expect("id");
        let k = ProjectionKey::history(
            &tenant("acme"),
            ProjectionKind::ResendEmailEvent,
            "em_1",
            1_717_243_200_412,
            &id,
        )
        .expect("key");
        assert_eq!(k.sk(), "em_1#1717243200412#msg_1");
        let early = ProjectionKey::history(
            &tenant("acme"),
            ProjectionKind::ResendEmailEvent,
            "em_1",
            5,
            &id,
        )
        .expect("key");
        assert_eq!(early.sk(), "em_1#0000000000005#msg_1");
        assert!(early.sk() < k.sk());
    }

    #[test]
    fn bad_entity_ids_are_refused() {
        let t = tenant("acme");
        let kind = ProjectionKind::ClerkUser;
        assert_eq!(ProjectionKey::new(&t, kind, ""), Err(KeyError::Empty));
        assert_eq!(
            ProjectionKey::new(&t, kind, "a\nb"),
            Err(KeyError::ControlCharacter)
        );
        assert_eq!(
            ProjectionKey::new(&t, kind, &"x".repeat(513)),
            Err(KeyError::TooLong { max: 512 })
        );
        let id = EventId::parse("e").expect("id");
        assert_eq!(
            ProjectionKey::history(&t, kind, "a#b", 1, &id),
            Err(KeyError::Separator)
        );
    }

    #[test]
    fn versioning_rule() {
        let up = upsert(10, "x");
        let del = write(10, Change::Delete);
        let app = write(10, Change::Append(Fields::new()));
        // No item: everything applies.
        for w in [&up, &del, &app] {
            assert!(applies_over(None, w));
        }
        // Strictly newer applies; older, or the same event again, does not.
        assert!(applies_over(Some((9, 0, "evt_9")), &up));
        assert!(!applies_over(Some((11, 0, "evt_11")), &up));
        assert!(!applies_over(Some(up.order()), &up));
        assert!(!applies_over(Some(del.order()), &del));
        // Same instant: the rank decides, then the event id.
        assert!(applies_over(
            Some((10, 0, "evt_10")),
            &ranked(10, 1, "evt_0", Change::Delete)
        ));
        assert!(!applies_over(
            Some((10, 2, "evt_0")),
            &ranked(10, 1, "evt_z", Change::Delete)
        ));
        assert!(applies_over(
            Some((10, 1, "evt_a")),
            &ranked(10, 1, "evt_b", Change::Delete)
        ));
        // History entries are written once.
        assert!(!applies_over(Some((1, 0, "evt_1")), &app));
    }

    #[test]
    fn an_older_update_never_overwrites_a_newer_one() {
        let mut store = MemoryProjections::new();
        assert_eq!(store.apply(&upsert(20, "active")), Applied::Written);
        assert_eq!(store.apply(&upsert(10, "incomplete")), Applied::Skipped);
        let item = store.get(&key()).expect("item");
        assert_eq!(item.fields["status"], json!("active"));
        assert_eq!(item.version, 20);
    }

    #[test]
    fn a_delete_is_not_undone_by_a_late_or_lower_ranked_update() {
        let mut store = MemoryProjections::new();
        store.apply(&upsert(5, "active"));
        let delete = ranked(10, 2, "evt_del", Change::Delete);
        assert_eq!(store.apply(&delete), Applied::Written);
        assert_eq!(store.apply(&upsert(9, "active")), Applied::Skipped);
        let same_second_update = ranked(
            10,
            1,
            "evt_zzz",
            Change::Upsert(Fields::from([("status".to_owned(), json!("active"))])),
        );
        assert_eq!(store.apply(&same_second_update), Applied::Skipped);
        let item = store.get(&key()).expect("tombstone");
        assert!(item.deleted);
        assert!(item.fields.is_empty());
        assert_eq!(item.order(), (10, 2, "evt_del"));
    }

    #[test]
    fn a_strictly_newer_update_replaces_a_tombstone_from_scratch() {
        let mut store = MemoryProjections::new();
        store.apply(&write(
            5,
            Change::Upsert(Fields::from([("old".to_owned(), json!(1))])),
        ));
        store.apply(&write(10, Change::Delete));
        assert_eq!(store.apply(&upsert(11, "active")), Applied::Written);
        let item = store.get(&key()).expect("item");
        assert!(!item.deleted);
        assert_eq!(
            item.fields,
            Fields::from([("status".to_owned(), json!("active"))])
        );
    }

    #[test]
    fn a_replayed_event_changes_nothing() {
        let mut store = MemoryProjections::new();
        let w = upsert(10, "active");
        assert_eq!(store.apply(&w), Applied::Written);
        let once = store.clone();
        assert_eq!(store.apply(&w), Applied::Skipped);
        assert_eq!(store, once);
    }

    /// A write generated for the permutation property: every upsert carries the whole field
    /// set, as handlers do, so only the order decides what is left.
    fn arbitrary_write() -> impl Strategy<Value = (i64, u32, u8, u8)> {
        // Few distinct times and ranks, so ties are the common case.
        (0i64..3, 0u32..3, 0u8..3, any::<u8>())
    }

    proptest! {
        #[test]
        fn any_arrival_order_of_any_events_leaves_one_final_state(
            specs in proptest::collection::vec(arbitrary_write(), 1..8),
            seed in any::<u64>(),
        ) {
            let writes: Vec<ProjectionWrite> = specs
                .iter()
                .enumerate()
                .map(|(i, (at, rank, kind, value))| {
                    let change = match kind {
                        0 => Change::Delete,
                        _ => Change::Upsert(Fields::from([
                            ("status".to_owned(), json!(value)),
                            ("n".to_owned(), json!(i)),
                        ])),
                    };
                    // Distinct events: ids are unique, as the provider's are.
                    ranked(*at, *rank, &format!("evt_{i:02}"), change)
                })
                .collect();
            let mut in_order = MemoryProjections::new();
            in_order.apply_all(&writes);
            let mut shuffled = writes.clone();
            shuffle(&mut shuffled, seed);
            let mut other = MemoryProjections::new();
            other.apply_all(&shuffled);
            // Replays (forced or not) of every event, in yet another order, change nothing.
            shuffle(&mut shuffled, seed.rotate_left(7));
            other.apply_all(&shuffled);
            prop_assert_eq!(in_order, other);
        }
    }

    /// A deterministic Fisher-Yates shuffle, so a failing case reproduces from its seed.
    fn shuffle<T>(items: &mut [T], mut seed: u64) {
        for i in (1..items.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let j = usize::try_from((seed >> 33) % (i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }

    #[test]
    fn history_entries_are_written_once() {
        let mut store = MemoryProjections::new();
        let entry = write(
            3,
            Change::Append(Fields::from([("type".to_owned(), json!("a"))])),
        );
        assert_eq!(store.apply(&entry), Applied::Written);
        assert_eq!(store.apply(&entry), Applied::Skipped);
        assert_eq!(store.len(), 1);
    }
}
