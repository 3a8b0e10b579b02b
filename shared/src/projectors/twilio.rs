//! Twilio status callbacks (<https://www.twilio.com/docs/messaging/guides/track-outbound-message-status>,
//! <https://www.twilio.com/docs/voice/api/call-resource#statuscallback>): form bodies naming a
//! message (`MessageSid`, `MessageStatus`) or a call (`CallSid`, `CallStatus`). Each keeps the
//! latest status of its message or call.
//!
//! The bodies carry no event time, so every callback of one message has the same version and
//! the status's place in the life decides (queued → sending → sent → delivered / undelivered /
//! failed; a call's queued → ringing → in-progress → completed / busy / no-answer / failed):
//! a late `sent` never takes a `delivered` back, in any arrival order.

use std::collections::HashMap;

use serde_json::json;

use super::{Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, unknown};
use crate::{projection::ProjectionKind, provider::Provider, record::EventKey};

/// A message's statuses, in the order of its life.
pub(super) const MESSAGE_STATUSES: [&str; 10] = [
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
];

/// A call's statuses, in the order of its life.
pub(super) const CALL_STATUSES: [&str; 9] = [
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
];

/// Where `status` stands in the life of a `kind` ("message" or "call"): later is higher, and
/// every end (delivered, failed, ...) above every step before it.
pub(super) fn rank(kind: &str, status: &str) -> Option<u32> {
    let statuses: &[&str] = match kind {
        "message" => &MESSAGE_STATUSES,
        "call" => &CALL_STATUSES,
        _ => return None,
    };
    let position = statuses.iter().position(|s| *s == status)?;
    u32::try_from(position).ok().map(|p| 10 + p * 10)
}

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    // The type is `message.{status}` or `call.{status}` (see `extract::twilio`).
    let Some((kind, status)) = event_type.and_then(|t| t.split_once('.')) else {
        return unknown(Provider::Twilio, event_type, policy);
    };
    let (Some(t), Some(_)) = (event_type, rank(kind, status)) else {
        return unknown(Provider::Twilio, event_type, policy);
    };
    let ev = Event::new(Provider::Twilio, t, key);
    let form: HashMap<String, String> = form_urlencoded::parse(payload).into_owned().collect();
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let (projection, sid) = match kind {
        "message" => (ProjectionKind::TwilioMessage, field("MessageSid")),
        _ => (ProjectionKind::TwilioCall, field("CallSid")),
    };
    let sid = sid.ok_or_else(|| ev.invalid("the form names no MessageSid or CallSid"))?;
    let latest = fields([
        ("status", json!(status)),
        ("last_event_type", json!(t)),
        ("account_sid", json!(field("AccountSid"))),
        ("from", json!(field("From"))),
        ("to", json!(field("To"))),
        ("error_code", json!(field("ErrorCode"))),
        ("duration_secs", json!(field("CallDuration"))),
    ]);
    Ok(ProjectorOutcome::Writes(vec![
        ev.upsert(projection, sid, 0, latest)?,
    ]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::{
        ids::{EventId, TenantId},
        projection::{MemoryProjections, ProjectionKey, ProjectionWrite},
    };

    fn key(id: &str) -> EventKey {
        EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::Twilio,
            event_id: EventId::parse(id).expect("id"),
        }
    }

    fn message(status: &str, id: &str) -> Vec<ProjectionWrite> {
        let body = format!(
            "AccountSid=AC1&MessageSid=SM1&MessageStatus={status}&From=%2B15005550006&To=%2B15005550009"
        );
        match project(
            Some(&format!("message.{status}")),
            body.as_bytes(),
            &key(id),
            UnknownTypePolicy::Fail,
        ) {
            Ok(ProjectorOutcome::Writes(writes)) => writes,
            other => panic!("{other:?}"),
        }
    }

    fn status_of(store: &MemoryProjections, kind: ProjectionKind, sid: &str) -> Value {
        let key =
            ProjectionKey::new(&TenantId::parse("acme").expect("tenant"), kind, sid).expect("key");
        store.get(&key).expect("item").fields["status"].clone()
    }

    #[test]
    fn a_message_and_a_call_keep_their_latest_status_and_details() {
        let mut store = MemoryProjections::new();
        store.apply_all(&message("delivered", "SM1:delivered"));
        let item = &status_of(&store, ProjectionKind::TwilioMessage, "SM1");
        assert_eq!(item, "delivered");

        let call = b"AccountSid=AC1&CallSid=CA1&CallStatus=completed&CallDuration=42";
        let Ok(ProjectorOutcome::Writes(writes)) = project(
            Some("call.completed"),
            call,
            &key("CA1:completed"),
            UnknownTypePolicy::Fail,
        ) else {
            panic!("projected");
        };
        store.apply_all(&writes);
        assert_eq!(
            status_of(&store, ProjectionKind::TwilioCall, "CA1"),
            "completed"
        );
    }

    #[test]
    fn unknown_statuses_and_forms_without_a_sid_are_named() {
        let ignored = project(
            Some("message.teleported"),
            b"MessageSid=SM1",
            &key("SM1:x"),
            UnknownTypePolicy::Ignore,
        );
        assert!(
            matches!(ignored, Ok(ProjectorOutcome::Ignored { .. })),
            "{ignored:?}"
        );
        assert!(project(None, b"", &key("x"), UnknownTypePolicy::Fail).is_err());
        let no_sid = project(
            Some("message.sent"),
            b"MessageStatus=sent",
            &key("SM1:sent"),
            UnknownTypePolicy::Fail,
        );
        assert!(matches!(no_sid, Err(ProjectorError::Permanent(m)) if m.contains("MessageSid")));
    }

    proptest! {
        #[test]
        fn a_status_never_goes_backwards_in_any_arrival_order(
            picks in prop::collection::vec(0usize..MESSAGE_STATUSES.len(), 1..8),
            seed in any::<u64>(),
        ) {
            let events: Vec<Vec<ProjectionWrite>> = picks
                .iter()
                .enumerate()
                .map(|(i, s)| message(MESSAGE_STATUSES[*s], &format!("SM1:{i}")))
                .collect();
            let latest = picks.iter().max().map(|s| MESSAGE_STATUSES[*s]).unwrap_or_default();
            let mut order: Vec<usize> = (0..events.len()).collect();
            let mut state = seed;
            for i in (1..order.len()).rev() {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                order.swap(i, usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(0));
            }
            let mut store = MemoryProjections::new();
            for &i in &order {
                store.apply_all(&events[i]);
            }
            prop_assert_eq!(status_of(&store, ProjectionKind::TwilioMessage, "SM1"), Value::from(latest));
        }
    }
}
