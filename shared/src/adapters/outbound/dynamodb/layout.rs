//! Where a message's items live. A message published since pointers went first keeps its
//! message, deliveries and attempts in a partition of its own (`pk = m#{tenant}#{message}`),
//! so a tenant's volume never lands on one partition key. Messages stored before sit with their
//! tenant's endpoints (`pk = t#{tenant}`) until they expire, and are found there: a message's
//! layout is where its message item is, resolved once per container and remembered.

use std::{num::NonZeroUsize, sync::Mutex};

use crate::{
    adapters::{dynamodb::item::Item, lock},
    clock::unix_millis,
    ids::TenantId,
    outbound::{
        delivery::{Attempt, DeliveryKey},
        ids::MessageId,
    },
};

use super::{key, padded, tenant_pk};

/// How many messages' layouts a warm function remembers.
const REMEMBERED: usize = 10_000;

/// Which partition a message's items are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `m#{tenant}#{message}`: `msg`, `dlv#{endpoint}`, `att#{at}#{endpoint}#{n}`.
    PerMessage,
    /// `t#{tenant}`, as stored before: `msg#{message}`, `dlv#{message}#{endpoint}`,
    /// `att#{message}#{at}#{endpoint}#{n}`.
    PerTenant,
}

impl Layout {
    /// Both, the current first.
    pub(crate) const BOTH: [Layout; 2] = [Layout::PerMessage, Layout::PerTenant];

    /// The layout of an item read back, by its partition key.
    pub(crate) fn of(item: &Item) -> Self {
        match item.get("pk").and_then(|pk| pk.as_s().ok()) {
            Some(pk) if pk.starts_with("m#") => Self::PerMessage,
            _ => Self::PerTenant,
        }
    }

    pub(crate) fn message_key(self, tenant: &TenantId, id: &MessageId) -> Item {
        match self {
            Self::PerMessage => key(message_pk(tenant, id), "msg".into()),
            Self::PerTenant => key(tenant_pk(tenant), format!("msg#{id}")),
        }
    }

    pub(crate) fn delivery_key(self, k: &DeliveryKey) -> Item {
        match self {
            Self::PerMessage => key(
                message_pk(&k.tenant, &k.message_id),
                format!("dlv#{}", k.endpoint_id),
            ),
            Self::PerTenant => key(
                tenant_pk(&k.tenant),
                format!("dlv#{}#{}", k.message_id, k.endpoint_id),
            ),
        }
    }

    pub(crate) fn attempt_key(self, attempt: &Attempt) -> Item {
        let k = &attempt.key;
        let at = padded(unix_millis(attempt.at));
        match self {
            Self::PerMessage => key(
                message_pk(&k.tenant, &k.message_id),
                format!("att#{at}#{}#{:05}", k.endpoint_id, attempt.number),
            ),
            Self::PerTenant => key(
                tenant_pk(&k.tenant),
                format!(
                    "att#{}#{at}#{}#{:05}",
                    k.message_id, k.endpoint_id, attempt.number
                ),
            ),
        }
    }

    /// The partition a message's items are in, and the sort key prefixes of its deliveries
    /// and of its attempts there.
    pub(crate) fn message_items(
        self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> (String, String, String) {
        match self {
            Self::PerMessage => (message_pk(tenant, id), "dlv#".into(), "att#".into()),
            Self::PerTenant => (
                tenant_pk(tenant),
                format!("dlv#{id}#"),
                format!("att#{id}#"),
            ),
        }
    }
}

fn message_pk(tenant: &TenantId, id: &MessageId) -> String {
    format!("m#{tenant}#{id}")
}

/// The layouts a warm function has resolved: a message's never changes.
#[derive(Debug)]
pub(crate) struct Layouts(Mutex<lru::LruCache<(TenantId, MessageId), Layout>>);

impl Default for Layouts {
    fn default() -> Self {
        Self(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN),
        )))
    }
}

impl Layouts {
    pub(crate) fn get(&self, tenant: &TenantId, id: &MessageId) -> Option<Layout> {
        lock(&self.0).get(&(tenant.clone(), id.clone())).copied()
    }

    pub(crate) fn remember(&self, tenant: &TenantId, id: &MessageId, layout: Layout) {
        lock(&self.0).put((tenant.clone(), id.clone()), layout);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::outbound::{delivery::Trigger, ids::EndpointId};

    fn text(item: &Item, name: &str) -> String {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_messages_items_share_its_own_partition_and_old_ones_stay_where_they_were() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let id = MessageId::parse("msg_1").expect("id");
        let k = DeliveryKey {
            tenant: tenant.clone(),
            message_id: id.clone(),
            endpoint_id: EndpointId::parse("ep_1").expect("endpoint"),
        };
        let attempt = Attempt {
            key: k.clone(),
            number: 2,
            at: UNIX_EPOCH + Duration::from_millis(5),
            trigger: Trigger::Scheduled,
            url: String::new(),
            status: None,
            latency: Duration::ZERO,
            response_body: String::new(),
            error_class: None,
            error: None,
        };
        let new = Layout::PerMessage;
        for item in [
            new.message_key(&tenant, &id),
            new.delivery_key(&k),
            new.attempt_key(&attempt),
        ] {
            assert_eq!(text(&item, "pk"), "m#acme#msg_1");
            assert_eq!(Layout::of(&item), new);
        }
        let (pk, deliveries, attempts) = new.message_items(&tenant, &id);
        assert!(text(&new.delivery_key(&k), "sk").starts_with(&deliveries));
        assert!(text(&new.attempt_key(&attempt), "sk").starts_with(&attempts));
        assert_eq!(pk, "m#acme#msg_1");

        let old = Layout::PerTenant;
        assert_eq!(text(&old.delivery_key(&k), "sk"), "dlv#msg_1#ep_1");
        assert_eq!(
            text(&old.attempt_key(&attempt), "sk"),
            "att#msg_1#0000000000005#ep_1#00002"
        );
        assert_eq!(Layout::of(&old.message_key(&tenant, &id)), old);
    }
}
