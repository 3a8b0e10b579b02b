//! `hookctl events ...`: reading event records. Payloads may hold personal data, so a record
//! shows its payload's size and hash unless the operator asks for the bytes.

use std::io::Write;

use shared::{
    ports::{EventHistory, EventStore, EventSummary},
    record::{EventKey, EventRecord, EventStatus, payload_hash},
};

use crate::{
    args::{EventsCommand, EventsListArgs, EventsShowArgs},
    error::CliError,
    output::{Out, sanitize, sanitize_keeping, table, timestamp},
    views,
};

/// Run one `events` subcommand against a store that can both list and read.
pub async fn run<S>(store: &S, command: EventsCommand, out: &mut Out<'_>) -> Result<(), CliError>
where
    S: EventStore + EventHistory,
{
    match command {
        EventsCommand::List(args) => list(store, args, out).await,
        EventsCommand::Show(args) => show(store, args, out).await,
    }
}

pub async fn list(
    listing: &dyn EventHistory,
    args: EventsListArgs,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let EventsListArgs {
        tenant,
        status,
        limit,
    } = args;
    let events = match status {
        Some(status) => {
            listing
                .page_by_status(&tenant, status, limit, None)
                .await?
                .events
        }
        // Every status: the newest of each, merged, newest first.
        None => {
            let mut all = Vec::new();
            for status in EventStatus::ALL {
                all.extend(
                    listing
                        .page_by_status(&tenant, status, limit, None)
                        .await?
                        .events,
                );
            }
            all.sort_by_key(|e| std::cmp::Reverse(e.received_at));
            all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            all
        }
    };
    if out.json() {
        let events: Vec<_> = events.iter().map(views::event_summary).collect();
        return out.document(&serde_json::json!({ "events": events }));
    }
    if events.is_empty() {
        match status {
            Some(status) => writeln!(out, "No {status} events for tenant {tenant}.")?,
            None => writeln!(out, "No events for tenant {tenant}.")?,
        }
        return Ok(());
    }
    let rows: Vec<[String; 8]> = events.iter().map(summary_row).collect();
    table(
        out,
        [
            "RECEIVED",
            "PROVIDER",
            "EVENT ID",
            "TYPE",
            "STATUS",
            "ATTEMPTS",
            "EXHAUSTED",
            "LAST ERROR",
        ],
        &rows,
    )?;
    if events.len() == usize::try_from(limit).unwrap_or(usize::MAX) {
        writeln!(out, "(first {limit}; raise --limit to see more)")?;
    }
    Ok(())
}

fn summary_row(e: &EventSummary) -> [String; 8] {
    [
        timestamp(e.received_at),
        e.key.provider.to_string(),
        e.key.event_id.to_string(),
        e.event_type.as_deref().map_or_else(|| "-".into(), sanitize),
        e.status.to_string(),
        e.attempts.to_string(),
        yes_no(e.retry_exhausted).to_owned(),
        e.last_error.as_deref().map_or_else(|| "-".into(), sanitize),
    ]
}

pub async fn show(
    store: &dyn EventStore,
    args: EventsShowArgs,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let EventsShowArgs {
        tenant,
        provider,
        event_id,
        payload,
    } = args;
    let key = EventKey {
        tenant,
        provider,
        event_id,
    };
    let Some(record) = store.get(&key).await? else {
        let EventKey {
            tenant,
            provider,
            event_id,
        } = key;
        return Err(CliError::EventNotFound {
            tenant,
            provider,
            event_id,
        });
    };
    if out.json() {
        return out.document(&views::event_record(&record, payload));
    }
    write_record(out, &record, payload)?;
    Ok(())
}

fn write_record(out: &mut dyn Write, r: &EventRecord, with_payload: bool) -> std::io::Result<()> {
    let opt_time = |t: Option<std::time::SystemTime>| t.map_or_else(|| "-".into(), timestamp);
    let opt_text = |t: Option<&str>| t.map_or_else(|| "-".into(), sanitize);
    let mut integrity = String::new();
    if let Some(at) = r.erased_at {
        integrity = format!(
            " (ERASED {} by {}; the hash is kept for duplicates)",
            timestamp(at),
            opt_text(r.erased_by.as_deref())
        );
    } else if payload_hash(&r.payload) != r.payload_hash {
        integrity.push_str(" (does NOT match the stored bytes)");
    }
    let fields: [(&str, String); 22] = [
        ("tenant", r.key.tenant.to_string()),
        ("provider", r.key.provider.to_string()),
        ("event id", r.key.event_id.to_string()),
        ("type", opt_text(r.event_type.as_deref())),
        ("status", r.status.to_string()),
        ("attempts", r.attempts.to_string()),
        ("retry exhausted", yes_no(r.retry_exhausted).to_owned()),
        ("last error", opt_text(r.last_error.as_deref())),
        ("verification", r.verification.as_str().to_owned()),
        ("provider created", opt_time(r.provider_created_at)),
        ("received at", timestamp(r.received_at)),
        ("enqueued at", opt_time(r.enqueued_at)),
        ("completed at", opt_time(r.completed_at)),
        ("request id", opt_text(r.correlation.request_id.as_deref())),
        (
            "client request id",
            opt_text(r.correlation.client_request_id.as_deref()),
        ),
        (
            "trace id",
            r.correlation
                .trace
                .map_or_else(|| "-".into(), |t| t.trace_id()),
        ),
        ("replays", r.replay_count.to_string()),
        ("replayed at", opt_time(r.replayed_at)),
        ("note", opt_text(r.note.as_deref())),
        ("duplicates", r.duplicates.to_string()),
        ("expires at", opt_time(r.expires_at)),
        (
            "payload",
            format!(
                "{} bytes, sha256 {}{integrity}",
                r.payload.len(),
                r.payload_hash
            ),
        ),
    ];
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in fields {
        writeln!(out, "{name:<width$}  {value}")?;
    }
    if with_payload && !r.is_erased() {
        writeln!(out)?;
        let text = String::from_utf8_lossy(&r.payload);
        writeln!(out, "{}", sanitize_keeping(&text, &['\n', '\t']))?;
    }
    Ok(())
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use shared::{
        ids::{EventId, TenantId},
        memory::MemoryEventStore,
        provider::Provider,
        record::{Correlation, EventStatus, Verification},
        secret::SecretSlot,
    };

    use super::*;

    const PAYLOAD: &[u8] =
        br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"customer_email":"jo@example.com"}}}"#;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    fn record(tenant_name: &str, id: &str, secs: u64, status: EventStatus) -> EventRecord {
        let mut r = EventRecord::received(
            EventKey {
                tenant: tenant(tenant_name),
                provider: Provider::Stripe,
                event_id: EventId::parse(id).expect("id"),
            },
            Some("invoice.paid".into()),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs - 5)),
            Correlation {
                request_id: Some("req-apigw-1".into()),
                client_request_id: None,
                trace: Some(shared::trace::TraceParent::continue_from(Some(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ))),
            },
            Verification::Verified(SecretSlot::Previous),
            PAYLOAD.to_vec(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        );
        r.status = status;
        r
    }

    async fn store_with(records: &[EventRecord]) -> MemoryEventStore {
        let store = MemoryEventStore::new();
        for r in records {
            store.put_if_absent(r).await.expect("stored");
        }
        store
    }

    async fn run_to_string(
        store: &MemoryEventStore,
        command: EventsCommand,
    ) -> Result<String, CliError> {
        let mut out = Vec::new();
        run(store, command, &mut Out::text(&mut out)).await?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[tokio::test]
    async fn list_shows_one_tenants_events_in_one_status_newest_first() {
        let mut failing = record("acme", "evt_dead_2", 1_700_000_100, EventStatus::Dead);
        failing.attempts = 5;
        failing.retry_exhausted = true;
        failing.last_error = Some("handler: \u{1b}[2Jcustomer missing".into());
        let store = store_with(&[
            record("acme", "evt_dead_1", 1_700_000_000, EventStatus::Dead),
            failing,
            record("acme", "evt_ok", 1_700_000_050, EventStatus::Processed),
            record("beta", "evt_dead_b", 1_700_000_050, EventStatus::Dead),
        ])
        .await;

        let printed = run_to_string(
            &store,
            EventsCommand::List(EventsListArgs {
                tenant: tenant("acme"),
                status: Some(EventStatus::Dead),
                limit: 10,
            }),
        )
        .await
        .expect("listed");

        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 3, "{printed}");
        assert!(lines[0].starts_with("RECEIVED"));
        assert!(lines[1].contains("evt_dead_2") && lines[1].contains("yes"));
        assert!(lines[1].contains("\\u{1b}[2Jcustomer missing"), "{printed}");
        assert!(!printed.contains('\u{1b}'));
        assert!(lines[2].contains("evt_dead_1") && lines[2].starts_with("2023-11-14T22:13:20Z"));
        assert!(!printed.contains("evt_ok") && !printed.contains("evt_dead_b"));

        // Without --status: the newest of every status, newest first.
        let every = run_to_string(
            &store,
            EventsCommand::List(EventsListArgs {
                tenant: tenant("acme"),
                status: None,
                limit: 2,
            }),
        )
        .await
        .expect("listed");
        let lines: Vec<&str> = every.lines().collect();
        assert!(lines[1].contains("evt_dead_2"), "{every}");
        assert!(
            lines[2].contains("evt_ok") && lines[2].contains("processed"),
            "{every}"
        );
        assert!(!every.contains("evt_dead_b"));
    }

    #[tokio::test]
    async fn list_says_when_empty_or_cut_short() {
        let store = store_with(&[
            record("acme", "evt_1", 1_700_000_000, EventStatus::Failed),
            record("acme", "evt_2", 1_700_000_001, EventStatus::Failed),
        ])
        .await;
        let args = |status, limit| {
            EventsCommand::List(EventsListArgs {
                tenant: tenant("acme"),
                status,
                limit,
            })
        };
        let printed = run_to_string(&store, args(Some(EventStatus::Dead), 10))
            .await
            .expect("listed");
        assert_eq!(printed, "No dead events for tenant acme.\n");
        let printed = run_to_string(&store, args(Some(EventStatus::Failed), 1))
            .await
            .expect("listed");
        assert!(printed.contains("evt_2") && !printed.contains("evt_1"));
        assert!(printed.contains("raise --limit"), "{printed}");
    }

    #[tokio::test]
    async fn json_output_lists_and_shows_with_stable_fields_and_no_payload_unless_asked() {
        let r = record("acme", "evt_1", 1_700_000_000, EventStatus::Dead);
        let store = store_with(std::slice::from_ref(&r)).await;
        let json = |command| {
            let store = &store;
            async move {
                let mut out = Vec::new();
                run(
                    store,
                    command,
                    &mut Out::new(&mut out, crate::output::Format::Json),
                )
                .await
                .expect("ran");
                serde_json::from_slice::<serde_json::Value>(&out).expect("one JSON document")
            }
        };
        let listed = json(EventsCommand::List(EventsListArgs {
            tenant: tenant("acme"),
            status: None,
            limit: 10,
        }))
        .await;
        assert_eq!(listed["events"][0]["event_id"], "evt_1");
        assert_eq!(listed["events"][0]["status"], "dead");
        assert_eq!(listed["events"][0]["received_at"], "2023-11-14T22:13:20Z");
        let shown = json(show_args("evt_1", false)).await;
        assert_eq!(shown["payload_intact"], true);
        assert_eq!(shown["payload"], serde_json::Value::Null);
        let with_payload = json(show_args("evt_1", true)).await;
        assert!(with_payload["payload"].is_string());
    }

    fn show_args(id: &str, payload: bool) -> EventsCommand {
        EventsCommand::Show(EventsShowArgs {
            tenant: tenant("acme"),
            provider: Provider::Stripe,
            event_id: EventId::parse(id).expect("id"),
            payload,
        })
    }

    #[tokio::test]
    async fn an_erased_record_shows_erased_and_never_a_payload() {
        let mut r = record("acme", "evt_1", 1_700_000_000, EventStatus::Processed);
        r.payload = Vec::new();
        r.erased_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100));
        r.erased_by = Some("dpo".into());
        let store = store_with(std::slice::from_ref(&r)).await;
        let printed = run_to_string(&store, show_args("evt_1", true))
            .await
            .expect("shown");
        assert!(
            printed.contains("ERASED 2023-11-14T22:15:00Z by dpo"),
            "{printed}"
        );
        assert!(!printed.contains("does NOT match"), "{printed}");
        let mut out = Vec::new();
        run(
            &store,
            show_args("evt_1", true),
            &mut Out::new(&mut out, crate::output::Format::Json),
        )
        .await
        .expect("ran");
        let shown: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(shown["erased_by"], "dpo");
        assert_eq!(shown["erased_at"], "2023-11-14T22:15:00Z");
        assert_eq!(shown["payload"], serde_json::Value::Null);
        assert_eq!(shown["payload_sha256"], r.payload_hash);
    }

    #[tokio::test]
    async fn show_prints_fields_and_only_the_payloads_size_and_hash() {
        let r = record("acme", "evt_1", 1_700_000_000, EventStatus::Enqueued);
        let store = store_with(std::slice::from_ref(&r)).await;
        let printed = run_to_string(&store, show_args("evt_1", false))
            .await
            .expect("shown");
        for expected in [
            "event id           evt_1",
            "status             enqueued",
            "verification       verified:previous",
            "provider created   2023-11-14T22:13:15Z",
            "request id         req-apigw-1",
            "client request id  -",
            "trace id           4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert!(printed.contains(expected), "{expected:?} not in\n{printed}");
        }
        assert!(printed.contains(&format!(
            "payload            {} bytes, sha256 {}\n",
            PAYLOAD.len(),
            r.payload_hash
        )));
        assert!(!printed.contains("jo@example.com"), "{printed}");
    }

    #[tokio::test]
    async fn show_with_payload_prints_it() {
        let store = store_with(&[record("acme", "evt_1", 1_700_000_000, EventStatus::Dead)]).await;
        let printed = run_to_string(&store, show_args("evt_1", true))
            .await
            .expect("shown");
        assert!(printed.ends_with(&format!(
            "\n\n{}\n",
            std::str::from_utf8(PAYLOAD).expect("utf-8")
        )));
    }

    #[tokio::test]
    async fn show_flags_a_payload_that_does_not_match_its_hash() {
        let mut r = record("acme", "evt_1", 1_700_000_000, EventStatus::Dead);
        r.payload = b"{}".to_vec();
        let store = store_with(&[r]).await;
        let printed = run_to_string(&store, show_args("evt_1", false))
            .await
            .expect("shown");
        assert!(printed.contains("does NOT match"), "{printed}");
    }

    #[tokio::test]
    async fn show_of_an_unknown_event_is_an_error() {
        let store = store_with(&[]).await;
        let err = run_to_string(&store, show_args("evt_missing", false))
            .await
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "no event stripe/evt_missing for tenant acme"
        );
    }
}
