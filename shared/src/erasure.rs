//! Erasing an inbound event's content on request (GDPR), keeping "never apply twice": the
//! record stays as a tombstone (key, status, times, payload hash), so a redelivery of the same
//! bytes is still a duplicate and other bytes under the id still a conflict; the processor,
//! replays and redrives refuse it with [`ERASED_REASON`](crate::record::ERASED_REASON).
//!
//! An outbound message is erased the same way ([`erase_message`]): a tombstone keeping its
//! content hash, its attempts' stored answers cleared, its deliveries never sent again.
//!
//! Every erasure that changes or finds something leaves an audit record (who, when, what, how
//! many items). A dry run reads only; an erasure that finds nothing writes nothing.

use std::time::SystemTime;

use serde::Serialize;
use thiserror::Error;

use crate::{
    ids::TenantId,
    outbound::{
        delivery::OutboundMessage,
        ids::MessageId,
        ports::{DeliveryLog, ErasedMessage, MessageErasure},
    },
    ports::{Erased, Erasure, ErasureAudit, EventErasure, EventHistory, EventStore, StoreError},
    record::{EventKey, EventStatus},
};

/// What an erasure did, or with `dry_run` would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// What was asked for: `event PROVIDER/ID`.
    pub target: String,
    pub tenant: String,
    pub dry_run: bool,
    /// Items whose payload was (or would be) removed.
    pub erased: u32,
    /// Items found erased already.
    pub already_erased: u32,
    /// On a dry run, the size of the payload that would be removed (the erase itself never
    /// reads it).
    pub payload_bytes: Option<usize>,
    /// Whether the payload was kept in the payloads bucket (its object deleted).
    pub offloaded: bool,
    /// The content hash the tombstone keeps, so duplicates are still recognised.
    pub payload_hash: String,
    pub actor: String,
    /// Whether the audit record was written (never on a dry run).
    pub audited: bool,
    /// For a message: how many of its attempts' stored partner answers were cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers_cleared: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErasureError {
    /// Nothing under the key: nothing was changed, nothing audited.
    #[error("nothing to erase: tenant {tenant} has no {target}; nothing was changed")]
    NotFound { tenant: String, target: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The payload is gone, but its audit record could not be written.
    #[error(
        "the payload was erased, but the audit record could not be written ({0}); \
         run the same erase again to write it"
    )]
    Unaudited(StoreError),
}

/// Erase `key`'s payload by `erasure`, or with `dry_run` say what would be erased.
pub async fn erase_event<S>(
    store: &S,
    key: &EventKey,
    erasure: &Erasure,
    dry_run: bool,
) -> Result<ErasureReport, ErasureError>
where
    S: EventStore + EventErasure + ?Sized,
{
    let target = format!("event {}/{}", key.provider, key.event_id);
    let not_found = || ErasureError::NotFound {
        tenant: key.tenant.to_string(),
        target: target.clone(),
    };
    let report = |record: &crate::record::EventRecord, now: bool| ErasureReport {
        target: target.clone(),
        tenant: key.tenant.to_string(),
        dry_run,
        erased: u32::from(now),
        already_erased: u32::from(!now),
        payload_bytes: None,
        offloaded: record.payload_location.is_some(),
        payload_hash: record.payload_hash.clone(),
        actor: erasure.actor.clone(),
        audited: false,
        answers_cleared: None,
    };
    if dry_run {
        let record = store.get(key).await?.ok_or_else(not_found)?;
        let erased = record.is_erased();
        return Ok(ErasureReport {
            payload_bytes: (!erased).then_some(record.payload.len()),
            ..report(&record, !erased)
        });
    }
    // No read first: the erase answers what it found, and works where an outside payload
    // has already expired.
    let mut done = match store.erase_payload(key, erasure).await? {
        Erased::NotFound => return Err(not_found()),
        Erased::Now {
            tombstone,
            offloaded,
        } => ErasureReport {
            offloaded,
            ..report(&tombstone, true)
        },
        Erased::Already(tombstone) => report(&tombstone, false),
    };
    let audit = ErasureAudit {
        tenant: key.tenant.clone(),
        at: erasure.at,
        actor: erasure.actor.clone(),
        target: target.clone(),
        items: done.erased,
    };
    store
        .record_erasure(&audit)
        .await
        .map_err(ErasureError::Unaudited)?;
    done.audited = true;
    tracing::info!(tenant = %key.tenant, provider = %key.provider, event_id = %key.event_id,
        actor = %erasure.actor, erased = done.erased, "payload erased");
    Ok(done)
}

/// Erase the payload of `tenant`'s outbound message `id` by `erasure`, or with `dry_run` say
/// what would be erased. The message stays as a tombstone (tenant, id, type, times, content
/// hash), its attempts' stored answers are cleared, and the audit is kept with the inbound
/// ones, through `audits` (the events table). A payload relayed by reference is the inbound
/// event's S3 object: the message drops the reference, the object stays (`--event` erases it).
pub async fn erase_message<S, A>(
    store: &S,
    audits: &A,
    tenant: &TenantId,
    id: &MessageId,
    erasure: &Erasure,
    dry_run: bool,
) -> Result<ErasureReport, ErasureError>
where
    S: DeliveryLog + MessageErasure + ?Sized,
    A: EventErasure + ?Sized,
{
    let target = format!("message {id}");
    let not_found = || ErasureError::NotFound {
        tenant: tenant.to_string(),
        target: target.clone(),
    };
    let report = |message: &OutboundMessage, now: bool| ErasureReport {
        target: target.clone(),
        tenant: tenant.to_string(),
        dry_run,
        erased: u32::from(now),
        already_erased: u32::from(!now),
        payload_bytes: None,
        offloaded: message.payload_location.is_some(),
        payload_hash: message.content_hash(),
        actor: erasure.actor.clone(),
        audited: false,
        answers_cleared: None,
    };
    if dry_run {
        let message = store.message(tenant, id).await?.ok_or_else(not_found)?;
        let erased = message.is_erased();
        return Ok(ErasureReport {
            payload_bytes: (!erased).then_some(message.payload.len()),
            ..report(&message, !erased)
        });
    }
    let mut done = match store.erase_message(tenant, id, erasure).await? {
        ErasedMessage::NotFound => return Err(not_found()),
        ErasedMessage::Now {
            tombstone,
            referenced,
            attempts,
        } => ErasureReport {
            offloaded: referenced,
            answers_cleared: Some(attempts),
            ..report(&tombstone, true)
        },
        ErasedMessage::Already(tombstone) => report(&tombstone, false),
    };
    let audit = ErasureAudit {
        tenant: tenant.clone(),
        at: erasure.at,
        actor: erasure.actor.clone(),
        target: target.clone(),
        items: done.erased,
    };
    audits
        .record_erasure(&audit)
        .await
        .map_err(ErasureError::Unaudited)?;
    done.audited = true;
    tracing::info!(%tenant, message_id = %id, actor = %erasure.actor, erased = done.erased,
        "message payload erased");
    Ok(done)
}

/// The console's `erase_message` action: `{"action": "erase_message", "tenant": "acme",
/// "message_id": "msg_1", "actor": "dpo: request 114", "dry_run": true}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseMessageArgs {
    pub action: String,
    pub tenant: String,
    pub message_id: String,
    pub actor: String,
    #[serde(default)]
    pub dry_run: bool,
}

impl EraseMessageArgs {
    /// The action's name in a console event.
    pub const ACTION: &'static str = "erase_message";
}

/// Run a console `erase_message` event: its JSON summary. The operator's mistakes (a bad
/// tenant or id, no actor, nothing found) are `{"error": ...}`, an outage an `Err`.
pub async fn erase_message_action<S, A>(
    messages: &S,
    audits: &A,
    event: serde_json::Value,
    now: SystemTime,
) -> Result<serde_json::Value, StoreError>
where
    S: DeliveryLog + MessageErasure + ?Sized,
    A: EventErasure + ?Sized,
{
    let refuse = |problem: String| Ok(serde_json::json!({ "error": problem }));
    let args: EraseMessageArgs = match serde_json::from_value(event) {
        Ok(args) => args,
        Err(e) => return refuse(e.to_string()),
    };
    let (tenant, id) = match (
        TenantId::parse(&args.tenant),
        MessageId::parse(&args.message_id),
    ) {
        (Ok(tenant), Ok(id)) => (tenant, id),
        (Err(e), _) => return refuse(format!("tenant: {e}")),
        (_, Err(e)) => return refuse(format!("message_id: {e}")),
    };
    let actor = args.actor.trim();
    if actor.is_empty() {
        return refuse("actor: say who erases this message and why (it goes to the audit)".into());
    }
    let erasure = Erasure {
        at: now,
        actor: actor.chars().take(200).collect(),
    };
    match erase_message(messages, audits, &tenant, &id, &erasure, args.dry_run).await {
        Ok(report) => Ok(serde_json::to_value(report).unwrap_or_default()),
        Err(ErasureError::Store(e)) => Err(e),
        Err(other) => refuse(other.to_string()),
    }
}

/// What an erasure by age did, or with `dry_run` would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgeErasureReport {
    /// `events received before <time>`.
    pub target: String,
    pub tenant: String,
    pub dry_run: bool,
    /// Events whose payload was removed now; in a dry run, the events found, erased before or
    /// not (telling them apart would read every payload).
    pub erased: u32,
    /// Tombstones found again: erased by an earlier run.
    pub already_erased: u32,
    /// Whether `limit` stopped the run: run it again for the rest.
    pub more: bool,
    pub actor: String,
    pub audited: bool,
}

/// Erase the payloads of `tenant`'s events that entered their current status before
/// `before` (and so were received before it), oldest first, at most `limit` of them, with one
/// audit record for the run. Found through the status index, status by status: events still
/// `received` (on their way, in no index) are not reached.
pub async fn erase_events_before<S>(
    store: &S,
    tenant: &TenantId,
    before: SystemTime,
    limit: u32,
    erasure: &Erasure,
    dry_run: bool,
) -> Result<AgeErasureReport, ErasureError>
where
    S: EventHistory + EventErasure + ?Sized,
{
    let target = format!("events received before {}", crate::clock::rfc3339(before));
    let mut keys = Vec::new();
    for status in EventStatus::ALL {
        let room = limit.saturating_sub(u32::try_from(keys.len()).unwrap_or(u32::MAX));
        if room == 0 {
            break;
        }
        let found = store
            .in_status_before(tenant, status, before, room + 1)
            .await?;
        keys.extend(found.into_iter().map(|t| t.key));
    }
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = keys.len() > wanted;
    keys.truncate(wanted);
    if keys.is_empty() {
        return Err(ErasureError::NotFound {
            tenant: tenant.to_string(),
            target,
        });
    }
    let mut report = AgeErasureReport {
        target: target.clone(),
        tenant: tenant.to_string(),
        dry_run,
        erased: 0,
        already_erased: 0,
        more,
        actor: erasure.actor.clone(),
        audited: false,
    };
    if dry_run {
        report.erased = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        return Ok(report);
    }
    for key in &keys {
        match store.erase_payload(key, erasure).await? {
            Erased::Now { .. } => report.erased += 1,
            Erased::Already(_) => report.already_erased += 1,
            // Gone since the index was read (expired): nothing to erase.
            Erased::NotFound => {}
        }
    }
    let audit = ErasureAudit {
        tenant: tenant.clone(),
        at: erasure.at,
        actor: erasure.actor.clone(),
        target,
        items: report.erased,
    };
    store
        .record_erasure(&audit)
        .await
        .map_err(ErasureError::Unaudited)?;
    report.audited = true;
    tracing::info!(tenant = %tenant, actor = %erasure.actor, erased = report.erased,
        "payloads erased by age");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{
        ids::{EventId, TenantId},
        memory::MemoryEventStore,
        ports::PutOutcome,
        provider::Provider,
        record::{Correlation, ERASED_REASON, EventRecord, Verification},
    };

    const PAYLOAD: &[u8] = br#"{"id":"evt_1","customer_email":"jo@example.com"}"#;

    fn key(tenant: &str, id: &str) -> EventKey {
        EventKey {
            tenant: TenantId::parse(tenant).expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse(id).expect("id"),
        }
    }

    fn record(key: EventKey, payload: &[u8]) -> EventRecord {
        EventRecord::received(
            key,
            Some("invoice.paid".into()),
            None,
            Correlation::default(),
            Verification::Unsigned,
            payload.to_vec(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    fn erasure() -> Erasure {
        Erasure {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100),
            actor: "dpo".into(),
        }
    }

    #[tokio::test]
    async fn an_erased_event_keeps_its_hash_and_stays_a_duplicate() {
        // GIVEN a stored event
        let store = MemoryEventStore::new();
        let k = key("acme", "evt_1");
        store.insert(record(k.clone(), PAYLOAD));
        // WHEN it is erased
        let report = erase_event(&store, &k, &erasure(), false)
            .await
            .expect("erased");
        // THEN the payload is gone, the hash kept, the erasure audited
        assert_eq!(report.erased, 1);
        let tomb = store.record(&k).expect("kept");
        assert!(tomb.payload.is_empty() && tomb.is_erased());
        assert_eq!(tomb.erased_by.as_deref(), Some("dpo"));
        assert_eq!(tomb.payload_hash, record(k.clone(), PAYLOAD).payload_hash);
        let audits = store.erasures();
        assert_eq!(audits.len(), 1);
        assert_eq!((audits[0].tenant.as_str(), audits[0].items), ("acme", 1));
        assert_eq!(audits[0].target, "event stripe/evt_1");
        // AND a redelivery of the same bytes finds the tombstone, with the same hash
        let again = record(k.clone(), PAYLOAD);
        match store.put_if_absent(&again).await.expect("put") {
            PutOutcome::Existing(stored) => {
                assert_eq!(stored.payload_hash, again.payload_hash);
            }
            other => panic!("{other:?}"),
        }
        // AND erasing again changes nothing more, and says so
        let twice = erase_event(&store, &k, &erasure(), false)
            .await
            .expect("again");
        assert_eq!((twice.erased, twice.already_erased), (0, 1));
        assert!(!ERASED_REASON.is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_changes_nothing() {
        let store = MemoryEventStore::new();
        let k = key("acme", "evt_1");
        store.insert(record(k.clone(), PAYLOAD));
        let report = erase_event(&store, &k, &erasure(), true)
            .await
            .expect("dry run");
        assert!(report.dry_run && !report.audited);
        assert_eq!(report.erased, 1);
        assert_eq!(report.payload_bytes, Some(PAYLOAD.len()));
        assert_eq!(store.record(&k).expect("kept").payload, PAYLOAD);
        assert!(store.erasures().is_empty());
    }

    #[tokio::test]
    async fn nothing_found_changes_nothing_and_never_reaches_another_tenant() {
        // GIVEN tenant other's event
        let store = MemoryEventStore::new();
        let theirs = key("other", "evt_1");
        store.insert(record(theirs.clone(), PAYLOAD));
        // WHEN acme asks to erase ids that name it, or try to reach past the key
        for id in ["evt_1", "other#stripe#evt_1", "../other/evt_1", "evt_1#"] {
            for dry_run in [true, false] {
                let err = erase_event(&store, &key("acme", id), &erasure(), dry_run)
                    .await
                    .expect_err("nothing of acme's");
                assert!(matches!(err, ErasureError::NotFound { .. }), "{id}: {err}");
                assert!(err.to_string().contains("nothing was changed"));
            }
        }
        // THEN tenant other's payload is whole, and no audit was written
        assert_eq!(store.record(&theirs).expect("kept").payload, PAYLOAD);
        assert!(store.erasures().is_empty());
    }

    mod messages {
        use super::*;
        use crate::{
            memory::MemoryOutboundStore,
            outbound::{
                delivery::OutboundMessage,
                ids::{EventType, MessageId},
                ports::DeliveryLog,
            },
        };

        fn message(tenant: &str, id: &str) -> OutboundMessage {
            OutboundMessage {
                tenant: TenantId::parse(tenant).expect("tenant"),
                id: MessageId::parse(id).expect("id"),
                event_type: EventType::parse("invoice.paid").expect("type"),
                payload: PAYLOAD.to_vec(),
                payload_location: None,
                created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                fanned_out: true,
                trace: None,
                erased: None,
            }
        }

        async fn stored(tenant: &str, id: &str) -> MemoryOutboundStore {
            let store = MemoryOutboundStore::new();
            let m = message(tenant, id);
            store
                .put_message(&m, m.created_at + Duration::from_secs(86_400))
                .await
                .expect("put");
            store
        }

        async fn payload(store: &MemoryOutboundStore, tenant: &str, id: &str) -> Vec<u8> {
            store
                .message(
                    &TenantId::parse(tenant).expect("tenant"),
                    &MessageId::parse(id).expect("id"),
                )
                .await
                .expect("read")
                .expect("kept")
                .payload
        }

        #[tokio::test]
        async fn a_dry_run_changes_nothing_and_keeps_the_hash() {
            let store = stored("acme", "msg_1").await;
            let audits = MemoryEventStore::new();
            let report = erase_message(
                &store,
                &audits,
                &TenantId::parse("acme").expect("tenant"),
                &MessageId::parse("msg_1").expect("id"),
                &erasure(),
                true,
            )
            .await
            .expect("dry run");
            assert!(report.dry_run && !report.audited);
            assert_eq!(report.target, "message msg_1");
            assert_eq!(report.payload_bytes, Some(PAYLOAD.len()));
            assert_eq!(report.payload_hash, message("acme", "msg_1").content_hash());
            assert_eq!(payload(&store, "acme", "msg_1").await, PAYLOAD);
            assert!(audits.erasures().is_empty());
        }

        #[tokio::test]
        async fn nothing_found_changes_nothing_and_never_reaches_another_tenant() {
            // GIVEN tenant other's message
            let store = stored("other", "msg_1").await;
            let audits = MemoryEventStore::new();
            // WHEN acme names it, or tries to reach past its own keys
            for id in ["msg_1", "other#msg_1", "../other/msg_1", "msg_1#"] {
                let Ok(id) = MessageId::parse(id) else {
                    continue; // refused before any store is asked
                };
                for dry_run in [true, false] {
                    let err = erase_message(
                        &store,
                        &audits,
                        &TenantId::parse("acme").expect("tenant"),
                        &id,
                        &erasure(),
                        dry_run,
                    )
                    .await
                    .expect_err("nothing of acme's");
                    assert!(matches!(err, ErasureError::NotFound { .. }), "{id}: {err}");
                    assert!(err.to_string().contains("nothing was changed"));
                }
            }
            // THEN tenant other's payload is whole, and no audit was written
            assert_eq!(payload(&store, "other", "msg_1").await, PAYLOAD);
            assert!(audits.erasures().is_empty());
        }

        #[tokio::test]
        async fn the_console_action_runs_dry_first_needs_an_actor_and_answers_mistakes_as_errors() {
            let store = stored("acme", "msg_1").await;
            let audits = MemoryEventStore::new();
            let now = erasure().at;
            let event = |dry_run: bool, actor: &str, id: &str| {
                serde_json::json!({"action": "erase_message", "tenant": "acme", "message_id": id,
                                   "actor": actor, "dry_run": dry_run})
            };
            let dry = erase_message_action(&store, &audits, event(true, "dpo", "msg_1"), now)
                .await
                .expect("runs");
            assert_eq!(
                (dry["dry_run"].as_bool(), dry["erased"].as_u64()),
                (Some(true), Some(1))
            );
            assert_eq!(payload(&store, "acme", "msg_1").await, PAYLOAD);
            for mistake in [
                event(false, " ", "msg_1"),
                event(false, "dpo", "msg_missing"),
                event(false, "dpo", ""),
                serde_json::json!({"action": "erase_message", "tenant": "acme", "message_id": "msg_1",
                                   "actor": "dpo", "dryrun": true}),
            ] {
                let answer = erase_message_action(&store, &audits, mistake.clone(), now)
                    .await
                    .expect("answered");
                assert!(answer["error"].is_string(), "{mistake} -> {answer}");
            }
            assert_eq!(payload(&store, "acme", "msg_1").await, PAYLOAD);
            let done = erase_message_action(&store, &audits, event(false, "dpo", "msg_1"), now)
                .await
                .expect("runs");
            assert_eq!(done["audited"].as_bool(), Some(true));
            assert!(payload(&store, "acme", "msg_1").await.is_empty());
            assert_eq!(audits.erasures().len(), 1);
        }
    }

    #[tokio::test]
    async fn an_erasure_by_age_reaches_the_tenant_s_older_events_only_and_audits_once() {
        let store = MemoryEventStore::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Two old events of acme, one new, and an old one of globex, all processed (indexed).
        for (tenant, id, at) in [
            ("acme", "evt_old_1", 0),
            ("acme", "evt_old_2", 10),
            ("acme", "evt_new", 1_000),
            ("globex", "evt_old_1", 0),
        ] {
            let mut r = record(key(tenant, id), PAYLOAD);
            r.received_at = t0 + Duration::from_secs(at);
            r.status = EventStatus::Processed;
            r.status_at = r.received_at;
            assert!(matches!(
                store.put_if_absent(&r).await,
                Ok(PutOutcome::Inserted)
            ));
        }
        let acme = TenantId::parse("acme").expect("tenant");
        let cutoff = t0 + Duration::from_secs(500);

        let dry = erase_events_before(&store, &acme, cutoff, 100, &erasure(), true)
            .await
            .expect("dry run");
        assert_eq!((dry.erased, dry.audited), (2, false));
        assert!(
            !store
                .get(&key("acme", "evt_old_1"))
                .await
                .expect("get")
                .expect("kept")
                .is_erased()
        );

        // A limit of one erases the oldest and says there is more.
        let first = erase_events_before(&store, &acme, cutoff, 1, &erasure(), false)
            .await
            .expect("erased");
        assert_eq!((first.erased, first.more, first.audited), (1, true, true));
        let rest = erase_events_before(&store, &acme, cutoff, 100, &erasure(), false)
            .await
            .expect("erased");
        assert_eq!((rest.erased, rest.already_erased, rest.more), (1, 1, false));
        for (tenant, id, erased) in [
            ("acme", "evt_old_1", true),
            ("acme", "evt_old_2", true),
            ("acme", "evt_new", false),
            ("globex", "evt_old_1", false),
        ] {
            let r = store
                .get(&key(tenant, id))
                .await
                .expect("get")
                .expect("kept");
            assert_eq!(r.is_erased(), erased, "{tenant}/{id}");
        }
        // Nothing before the first event: not found, nothing audited.
        assert!(matches!(
            erase_events_before(&store, &acme, t0, 100, &erasure(), false).await,
            Err(ErasureError::NotFound { .. })
        ));
    }
}
