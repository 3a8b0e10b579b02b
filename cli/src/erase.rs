//! `hookctl erase TENANT --event PROVIDER/ID` or `--message MSG_ID`: erase an inbound event's
//! or an outbound message's payload on a data-subject request, through `shared::erasure`. The
//! record stays as a tombstone (key, status, times, content hash), so a redelivery or a
//! repeated publish is still answered as a duplicate; every erasure is audited in the events
//! table.

use std::{io::Write, time::SystemTime};

use shared::{
    erasure::{ErasureError, ErasureReport, erase_event, erase_events_before, erase_message},
    outbound::ports::{DeliveryLog, MessageErasure},
    ports::{Erasure, EventErasure, EventHistory, EventStore},
    record::EventKey,
};

use crate::{args::EraseArgs, error::CliError, output::Out};

/// Erase the event `--event` names, or with `--dry-run` say what would be erased. Nothing
/// found is an error, so a script sees a non-zero exit.
pub async fn run<S>(
    store: &S,
    args: EraseArgs,
    now: SystemTime,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: EventStore + EventErasure,
{
    let erasure = erasure(&args, now)?;
    let (provider, event_id) = args.event.ok_or(CliError::Erasure(
        "name the event to erase with --event PROVIDER/ID".into(),
    ))?;
    let key = EventKey {
        tenant: args.tenant,
        provider,
        event_id,
    };
    let report = erase_event(store, &key, &erasure, args.dry_run).await;
    render(report, out)
}

/// Erase the outbound message `--message` names from `messages`, auditing in `audits` (the
/// events table, where every erasure's audit lives).
pub async fn run_message<M, A>(
    messages: &M,
    audits: &A,
    args: EraseArgs,
    now: SystemTime,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    M: DeliveryLog + MessageErasure,
    A: EventErasure,
{
    let erasure = erasure(&args, now)?;
    let id = args.message.ok_or(CliError::Erasure(
        "name the message to erase with --message MSG_ID".into(),
    ))?;
    let report = erase_message(messages, audits, &args.tenant, &id, &erasure, args.dry_run).await;
    render(report, out)
}

/// Erase the payloads of the tenant's events received before `--before`, at most `--limit`.
pub async fn run_before<S>(
    store: &S,
    args: EraseArgs,
    now: SystemTime,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: EventHistory + EventErasure,
{
    let erasure = erasure(&args, now)?;
    let before = args.before.ok_or(CliError::Erasure(
        "name the age to erase with --before TIME".into(),
    ))?;
    let report = erase_events_before(
        store,
        &args.tenant,
        before,
        args.limit,
        &erasure,
        args.dry_run,
    )
    .await
    .map_err(|e| match e {
        ErasureError::Store(e) => CliError::from(e),
        other => CliError::Erasure(other.to_string()),
    })?;
    if out.json() {
        return out.document(&report);
    }
    let what = format!("{} of tenant {}", report.target, report.tenant);
    if report.dry_run {
        writeln!(
            out,
            "Would erase the payloads of {} {what} (some may be erased already).",
            report.erased
        )?;
        writeln!(out, "Dry run: nothing was changed.")?;
    } else {
        writeln!(
            out,
            "Erased the payloads of {} {what}; {} were erased already. Each record stays as a \
             tombstone, so a redelivery is still a duplicate.",
            report.erased, report.already_erased
        )?;
        writeln!(out, "Audited as erased by {}.", report.actor)?;
    }
    if report.more {
        writeln!(
            out,
            "More remain beyond --limit {}: run it again.",
            args.limit
        )?;
    }
    Ok(())
}

/// Who erases, and when: `--actor` (or the OS user), never blank.
fn erasure(args: &EraseArgs, now: SystemTime) -> Result<Erasure, CliError> {
    let actor = args
        .actor
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or(CliError::MissingSetting {
            what: "who erases",
            flag: "actor",
            env: "USER",
        })?;
    Ok(Erasure {
        at: now,
        actor: actor.to_owned(),
    })
}

fn render(report: Result<ErasureReport, ErasureError>, out: &mut Out<'_>) -> Result<(), CliError> {
    let report = report.map_err(|e| match e {
        ErasureError::Store(e) => CliError::from(e),
        other => CliError::Erasure(other.to_string()),
    })?;
    if out.json() {
        return out.document(&report);
    }
    write_report(out, &report)?;
    Ok(())
}

fn write_report(out: &mut dyn Write, r: &ErasureReport) -> std::io::Result<()> {
    let what = format!("{} of tenant {}", r.target, r.tenant);
    let message = r.target.starts_with("message ");
    let size = match r.payload_bytes {
        Some(bytes) if r.offloaded && message => {
            format!(" ({bytes} bytes, relayed from an inbound event's object)")
        }
        Some(bytes) if r.offloaded => format!(" ({bytes} bytes, kept in the payloads bucket)"),
        Some(bytes) => format!(" ({bytes} bytes)"),
        None if r.offloaded && message => {
            " (its reference dropped; the inbound event's object is kept: erase it with --event)"
                .to_owned()
        }
        None if r.offloaded => " (kept in the payloads bucket, object deleted)".to_owned(),
        None => String::new(),
    };
    match (r.dry_run, r.erased > 0) {
        (true, true) => writeln!(out, "Would erase the payload of {what}{size}.")?,
        (true, false) => writeln!(out, "The payload of {what} is erased already.")?,
        (false, true) => writeln!(out, "Erased the payload of {what}{size}.")?,
        (false, false) => writeln!(out, "The payload of {what} was erased already.")?,
    }
    if message {
        writeln!(
            out,
            "The message stays as a tombstone (sha256 {}), so a repeated publish is still a \
             duplicate; its deliveries are never sent again.",
            r.payload_hash
        )?;
    } else {
        writeln!(
            out,
            "The record stays as a tombstone (sha256 {}), so a redelivery is still a duplicate.",
            r.payload_hash
        )?;
    }
    if let Some(answers) = r.answers_cleared.filter(|n| *n > 0) {
        writeln!(
            out,
            "Cleared {answers} stored partner answer(s) of its attempts."
        )?;
    }
    if r.dry_run {
        writeln!(out, "Dry run: nothing was changed.")?;
    } else if r.audited {
        writeln!(out, "Audited as erased by {}.", r.actor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::{
        ids::{EventId, TenantId},
        memory::MemoryEventStore,
        provider::Provider,
        record::{Correlation, EventRecord, Verification},
    };

    use super::*;
    use crate::output::Format;

    const PAYLOAD: &[u8] = br#"{"id":"evt_1","customer_email":"jo@example.com"}"#;

    fn key(tenant: &str, id: &str) -> EventKey {
        EventKey {
            tenant: TenantId::parse(tenant).expect("tenant"),
            provider: Provider::Stripe,
            event_id: EventId::parse(id).expect("id"),
        }
    }

    fn store_with(keys: &[EventKey]) -> MemoryEventStore {
        let store = MemoryEventStore::new();
        for k in keys {
            store.insert(EventRecord::received(
                k.clone(),
                Some("invoice.paid".into()),
                None,
                Correlation::default(),
                Verification::Unsigned,
                PAYLOAD.to_vec(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ));
        }
        store
    }

    fn args(tenant: &str, id: &str, dry_run: bool) -> EraseArgs {
        EraseArgs {
            tenant: TenantId::parse(tenant).expect("tenant"),
            event: Some((Provider::Stripe, EventId::parse(id).expect("id"))),
            message: None,
            before: None,
            limit: 1000,
            dry_run,
            actor: Some("dpo".into()),
            payloads_bucket: None,
        }
    }

    async fn erase(
        store: &MemoryEventStore,
        args: EraseArgs,
        format: Format,
    ) -> (Result<(), CliError>, String) {
        let mut buf = Vec::new();
        let result = {
            let mut out = Out::new(&mut buf, format);
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_500);
            run(store, args, now, &mut out).await
        };
        (result, String::from_utf8(buf).expect("utf-8"))
    }

    #[tokio::test]
    async fn a_dry_run_says_what_would_go_and_changes_nothing() {
        let k = key("acme", "evt_1");
        let store = store_with(std::slice::from_ref(&k));
        let (result, text) = erase(&store, args("acme", "evt_1", true), Format::Text).await;
        result.expect("dry run");
        assert!(
            text.contains("Would erase the payload of event stripe/evt_1"),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
        assert_eq!(store.record(&k).expect("kept").payload, PAYLOAD);
        assert!(store.erasures().is_empty());
    }

    #[tokio::test]
    async fn an_erase_leaves_a_tombstone_and_an_audit_and_prints_json() {
        let k = key("acme", "evt_1");
        let store = store_with(std::slice::from_ref(&k));
        let (result, text) = erase(&store, args("acme", "evt_1", false), Format::Json).await;
        result.expect("erased");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(doc["erased"], 1);
        assert_eq!(doc["audited"], true);
        assert_eq!(doc["actor"], "dpo");
        assert_eq!(doc["target"], "event stripe/evt_1");
        assert!(!text.contains("jo@example.com"), "{text}");
        let tomb = store.record(&k).expect("kept");
        assert!(tomb.payload.is_empty() && tomb.is_erased());
        assert_eq!(store.erasures().len(), 1);
    }

    #[tokio::test]
    async fn nothing_matched_fails_and_another_tenants_event_is_never_reached() {
        let theirs = key("other", "evt_1");
        let store = store_with(std::slice::from_ref(&theirs));
        for id in ["evt_1", "other#stripe#evt_1", "../other/evt_1"] {
            for dry_run in [true, false] {
                let (result, _) = erase(&store, args("acme", id, dry_run), Format::Text).await;
                let err = result.expect_err("nothing of acme's");
                assert!(err.to_string().contains("nothing to erase"), "{id}: {err}");
            }
        }
        assert_eq!(store.record(&theirs).expect("kept").payload, PAYLOAD);
        assert!(store.erasures().is_empty());
    }

    #[tokio::test]
    async fn an_erase_by_age_reaches_only_events_before_the_time() {
        // A processed event (in the status index) that entered its status at t0.
        let k = key("acme", "evt_1");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut processed = EventRecord::received(
            k.clone(),
            Some("invoice.paid".into()),
            None,
            Correlation::default(),
            Verification::Unsigned,
            PAYLOAD.to_vec(),
            t0,
        );
        processed.status = shared::record::EventStatus::Processed;
        let store = MemoryEventStore::new();
        store.insert(processed);
        let by_age = |before: SystemTime| {
            let mut a = args("acme", "evt_1", false);
            a.event = None;
            a.before = Some(before);
            a
        };
        let run_at = |a: EraseArgs| {
            let store = &store;
            async move {
                let mut buf = Vec::new();
                let result = {
                    let mut out = Out::new(&mut buf, Format::Text);
                    run_before(store, a, t0 + Duration::from_secs(500), &mut out).await
                };
                (result, String::from_utf8(buf).expect("utf-8"))
            }
        };
        let (result, _) = run_at(by_age(t0)).await;
        assert!(
            result
                .expect_err("nothing before")
                .to_string()
                .contains("nothing to erase")
        );
        let (result, text) = run_at(by_age(t0 + Duration::from_secs(1))).await;
        result.expect("erased");
        assert!(
            text.contains("Erased the payloads of 1 events received before"),
            "{text}"
        );
        assert!(store.record(&k).expect("kept").is_erased());
        assert_eq!(store.erasures().len(), 1);
    }

    #[tokio::test]
    async fn an_erase_without_an_actor_is_refused() {
        let k = key("acme", "evt_1");
        let store = store_with(std::slice::from_ref(&k));
        let mut a = args("acme", "evt_1", false);
        a.actor = Some("  ".into());
        let (result, _) = erase(&store, a, Format::Text).await;
        assert!(matches!(result, Err(CliError::MissingSetting { .. })));
        assert_eq!(store.record(&k).expect("kept").payload, PAYLOAD);
    }

    mod messages {
        use shared::{
            memory::MemoryOutboundStore,
            outbound::{
                delivery::OutboundMessage,
                ids::{EventType, MessageId},
            },
        };

        use super::*;

        async fn stored(tenant: &str, id: &str) -> MemoryOutboundStore {
            let store = MemoryOutboundStore::new();
            let message = OutboundMessage {
                tenant: TenantId::parse(tenant).expect("tenant"),
                id: MessageId::parse(id).expect("id"),
                event_type: EventType::parse("invoice.paid").expect("type"),
                payload: PAYLOAD.to_vec(),
                payload_location: None,
                created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                fanned_out: true,
                trace: None,
                erased: None,
            };
            store
                .put_message(&message, message.created_at + Duration::from_secs(60))
                .await
                .expect("put");
            store
        }

        fn args(tenant: &str, id: &str, dry_run: bool) -> EraseArgs {
            EraseArgs {
                tenant: TenantId::parse(tenant).expect("tenant"),
                event: None,
                message: Some(MessageId::parse(id).expect("id")),
                before: None,
                limit: 1000,
                dry_run,
                actor: Some("dpo".into()),
                payloads_bucket: None,
            }
        }

        async fn erase(
            messages: &MemoryOutboundStore,
            audits: &MemoryEventStore,
            args: EraseArgs,
        ) -> (Result<(), CliError>, String) {
            let mut buf = Vec::new();
            let result = {
                let mut out = Out::new(&mut buf, Format::Json);
                let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_500);
                run_message(messages, audits, args, now, &mut out).await
            };
            (result, String::from_utf8(buf).expect("utf-8"))
        }

        #[tokio::test]
        async fn a_message_erase_leaves_a_tombstone_and_an_audit_in_the_events_table() {
            let messages = stored("acme", "order-1").await;
            let audits = MemoryEventStore::new();
            let (result, text) = erase(&messages, &audits, args("acme", "order-1", false)).await;
            result.expect("erased");
            let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert_eq!(doc["target"], "message order-1");
            assert_eq!(
                (doc["erased"].clone(), doc["audited"].clone()),
                (1.into(), true.into())
            );
            assert!(!text.contains("jo@example.com"), "{text}");
            let tomb = messages
                .message(
                    &TenantId::parse("acme").expect("tenant"),
                    &MessageId::parse("order-1").expect("id"),
                )
                .await
                .expect("read")
                .expect("kept");
            assert!(tomb.payload.is_empty() && tomb.is_erased());
            assert_eq!(audits.erasures().len(), 1);
        }

        #[tokio::test]
        async fn another_tenants_message_is_never_reached() {
            let messages = stored("other", "order-1").await;
            let audits = MemoryEventStore::new();
            for id in ["order-1", "other.order-1"] {
                for dry_run in [true, false] {
                    let (result, _) = erase(&messages, &audits, args("acme", id, dry_run)).await;
                    let err = result.expect_err("nothing of acme's");
                    assert!(err.to_string().contains("nothing to erase"), "{id}: {err}");
                }
            }
            assert!(audits.erasures().is_empty());
        }
    }
}
