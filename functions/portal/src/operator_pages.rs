//! The operator pages: the tenant's received events, one event's record, the health report and
//! the DLQ. Same rules as the partner pages: escaped by construction, no script.

use maud::{Markup, html};
use shared::{
    clock::from_unix_millis,
    operations::{
        Skipped,
        health::{HealthSummary, Verdict},
        list::ListSummary,
        redrive::RedriveSummary,
        targeted::ReplaySummary,
    },
    portal::Session,
    provider::Provider,
    record::EventRecord,
};

use crate::{
    encode,
    pages::{csrf, layout, rfc3339, truncate},
};

/// The statuses an operator filters by (`stuck`: received, enqueued or processing).
pub const STATUSES: [&str; 6] = [
    "dead",
    "failed",
    "stuck",
    "processed",
    "discarded",
    "received",
];

fn verdict(verdict: Verdict) -> Markup {
    match verdict {
        Verdict::Healthy => html! { span.badge.ok { "HEALTHY" } },
        Verdict::Degraded => html! { span.badge.warn { "DEGRADED" } },
        Verdict::Critical => html! { span.badge.bad { "CRITICAL" } },
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

/// Events by status, with a search by id.
pub fn events(session: &Session, status: &str, list: &ListSummary) -> Markup {
    layout(
        "Events",
        Some(session),
        html! {
            h1 { "Received events" }
            p.actions {
                @for s in STATUSES {
                    @if s == status { strong.badge { (s) } } @else { a href={ "/portal/events?status=" (s) } { (s) } }
                }
            }
            form.card #search method="get" action="/portal/events/lookup" {
                label for="provider" { "Find an event by id" }
                select #provider name="provider" {
                    @for provider in Provider::all() { option value=(provider.as_str()) { (provider.as_str()) } }
                }
                " "
                input #event-id type="text" name="id" placeholder="evt_..." required;
                " "
                button type="submit" { "Find" }
            }
            @if list.events.is_empty() {
                p.muted #no-events { "No " (status) " events." }
            } @else {
                table #events {
                    thead { tr { th { "Received (UTC)" } th { "Event" } th { "Type" } th { "Status" } th { "Attempts" } th { "Last error" } } }
                    tbody {
                        @for event in &list.events {
                            tr {
                                td.mono { (rfc3339(from_unix_millis(event.received_at))) }
                                td.mono { a href={ "/portal/events/" (event.provider) "/" (encode(&event.event_id)) } { (event.provider) " " (event.event_id) } }
                                td { (event.event_type.as_deref().unwrap_or("")) }
                                td { (event.status) }
                                td { (event.attempts) @if event.retry_exhausted { " (spent)" } }
                                td.mono { (truncate(event.last_error.as_deref().unwrap_or(""), 160)) }
                            }
                        }
                    }
                }
                @if let Some(next) = &list.next_token {
                    p { a #next href={ "/portal/events?status=" (status) "&next=" (encode(next)) } { "Next page →" } }
                }
                @if !session.read_only {
                    @let listed: Vec<String> = list.events.iter().map(|e| format!("{}/{}", e.provider, e.event_id)).collect();
                    form method="post" action="/portal/events/replay" {
                        (csrf(session))
                        input type="hidden" name="events" value=(listed.join("\n"));
                        button #replay-these type="submit" { "Replay these " (listed.len()) " events…" }
                        " " span.muted { "You will see what would be queued first." }
                    }
                }
            }
        },
    )
}

/// One event's record; its payload only when asked for.
pub fn event(session: &Session, record: &EventRecord, show_payload: bool) -> Markup {
    let key = &record.key;
    let row = |name: &str, value: String| html! { tr { th { (name) } td.mono { (value) } } };
    let time = |t: Option<std::time::SystemTime>| t.map(rfc3339).unwrap_or_default();
    layout(
        key.event_id.as_str(),
        Some(session),
        html! {
            p { a href="/portal/events" { "← Events" } }
            h1.mono #event-id { (key.provider.as_str()) " " (key.event_id) }
            table #record {
                (row("status", format!("{} since {}", record.status, rfc3339(record.status_at))))
                (row("type", record.event_type.clone().unwrap_or_default()))
                (row("attempts", format!("{}{}", record.attempts, if record.retry_exhausted { " (retries spent)" } else { "" })))
                (row("last error", record.last_error.clone().unwrap_or_default()))
                (row("outcome", record.outcome.clone().unwrap_or_default()))
                (row("verification", record.verification.as_str().to_owned()))
                (row("received", rfc3339(record.received_at)))
                (row("enqueued", time(record.enqueued_at)))
                (row("completed", time(record.completed_at)))
                (row("provider's time", time(record.provider_created_at)))
                (row("duplicates", record.duplicates.to_string()))
                (row("replays", record.replay_count.to_string()))
                (row("request id", record.correlation.request_id.clone().unwrap_or_default()))
                (row("payload SHA-256", record.payload_hash.clone()))
                (row("operator note", record.note.clone().unwrap_or_default()))
            }
            @if !session.read_only {
                form method="post" action="/portal/events/replay" {
                    (csrf(session))
                    input type="hidden" name="events" value={ (key.provider.as_str()) "/" (key.event_id) };
                    button #replay type="submit" { "Replay…" }
                    " " span.muted { "Queue it for processing again; you will see whether it would go first." }
                }
            }
            @if let Some(erased_at) = record.erased_at {
                p #payload-erased { "Payload erased " (rfc3339(erased_at)) " by " (record.erased_by.clone().unwrap_or_default()) "." " " span.muted { "The record is kept, so a redelivery is still a duplicate." } }
            } @else if show_payload {
                div.card #payload {
                    h2 { "Payload" }
                    pre.mono { (String::from_utf8_lossy(&record.payload)) }
                }
            } @else {
                p { a #show-payload href="?payload=show" { "Show the payload" } " " span.muted { "(it may hold personal data)" } }
            }
        },
    )
}

/// The health report's checks and latencies for the last hour.
pub fn health(session: &Session, report: &HealthSummary) -> Markup {
    layout(
        "Health",
        Some(session),
        html! {
            h1 { "Health " (verdict(report.status)) }
            p.muted { "The last " (report.window_secs / 60) " minutes" @if report.truncated { ", from a sample" } "." }
            table #checks {
                thead { tr { th { "Check" } th { "Now" } th { "Degraded" } th { "Critical" } th { "Status" } } }
                tbody {
                    @for check in &report.checks {
                        @let words = CheckWords::of(check.name);
                        tr {
                            td { strong { (words.title) } br; span.muted { (words.meaning) } }
                            td { ((words.unit)(check.value)) }
                            td { (words.bound) " " ((words.unit)(check.degraded_at)) }
                            td { (words.bound) " " ((words.unit)(check.critical_at)) }
                            td { (verdict(check.status)) }
                        }
                    }
                }
            }
            div.card #latency {
                h2 { "Latency" }
                p { "Processing: p50 " (ms(report.processing_latency.p50_ms)) ", p95 " (ms(report.processing_latency.p95_ms)) ", p99 " (ms(report.processing_latency.p99_ms)) }
                p { "Received to processed: p50 " (ms(report.end_to_end_latency.p50_ms)) ", p95 " (ms(report.end_to_end_latency.p95_ms)) ", p99 " (ms(report.end_to_end_latency.p99_ms)) }
            }
            p #counts {
                (report.counts.processed) " processed, " (report.counts.failed) " failed, "
                (report.counts.dead) " dead, " (report.counts.pending) " pending, "
                (report.counts.duplicates) " duplicates; " (report.counts.dead_letter_queue) " in the DLQ"
            }
        },
    )
}

/// A health check in words: what it measures, its unit, and which side of a threshold is bad.
struct CheckWords {
    title: &'static str,
    meaning: &'static str,
    unit: fn(f64) -> String,
    /// `from` (at or above is worse) or `below` (lower is worse).
    bound: &'static str,
}

impl CheckWords {
    fn of(name: &str) -> Self {
        let (title, meaning, unit, bound): (_, _, fn(f64) -> String, _) = match name {
            "recent_failures" => (
                "Failed events",
                "Events that failed or went dead in the window.",
                count,
                "from",
            ),
            "backlog" => (
                "Events waiting",
                "Received and not yet processed, now.",
                count,
                "from",
            ),
            "oldest_pending_age_secs" => (
                "Oldest waiting event",
                "How long the oldest of those has waited.",
                duration,
                "from",
            ),
            "average_attempts" => (
                "Attempts per event",
                "Mean attempts of the events that finished: 1 is first time.",
                attempts,
                "from",
            ),
            "duplicate_rate" => (
                "Duplicates",
                "Repeated deliveries per event received (the provider retried).",
                percent,
                "from",
            ),
            "success_rate" => (
                "Processed",
                "Share of the finished events that were processed.",
                percent,
                "below",
            ),
            _ => ("Check", "", plain, "from"),
        };
        Self {
            title,
            meaning,
            unit,
            bound,
        }
    }
}

fn count(value: f64) -> String {
    format!("{value:.0}")
}

fn plain(value: f64) -> String {
    format!("{value:.2}")
}

fn attempts(value: f64) -> String {
    format!("{value:.1}")
}

fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

fn duration(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7_200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3_600.0),
    }
}

/// What a replay would do (a dry run, with the button that does it) or did.
pub fn replayed(
    session: &Session,
    summaries: &[ReplaySummary],
    dry_run: bool,
    listed: &str,
) -> Markup {
    let queued: Vec<&String> = summaries.iter().flat_map(|s| &s.replayed).collect();
    let not_found: Vec<&String> = summaries.iter().flat_map(|s| &s.not_found).collect();
    let skipped: Vec<&Skipped> = summaries.iter().flat_map(|s| &s.skipped).collect();
    layout(
        "Replay",
        Some(session),
        html! {
            p { a href="/portal/events" { "← Events" } }
            h1 { "Replay" }
            @if dry_run {
                p #replay-preview { (queued.len()) " would be queued for processing again; " (skipped.len() + not_found.len()) " would not." }
            } @else {
                div.card.notice #replay-done { (queued.len()) " queued for processing again; " (skipped.len() + not_found.len()) " not." }
            }
            @if !queued.is_empty() { ul.mono #queued { @for id in &queued { li { (id) } } } }
            @if !skipped.is_empty() || !not_found.is_empty() {
                table #refused {
                    thead { tr { th { "Event" } th { "Why not" } } }
                    tbody {
                        @for s in &skipped { tr { td.mono { (s.id) } td { (s.reason) } } }
                        @for id in &not_found { tr { td.mono { (id) } td { "no such event" } } }
                    }
                }
            }
            @if dry_run && !session.read_only && !queued.is_empty() {
                form method="post" action="/portal/events/replay" {
                    (csrf(session))
                    input type="hidden" name="events" value=(listed);
                    input type="hidden" name="confirm" value="yes";
                    button.primary #confirm-replay type="submit" { "Replay " (queued.len()) " events" }
                }
            }
        },
    )
}

/// The tenant's dead events waiting in the DLQ (from the status index), and the redrive button.
pub fn dlq_waiting(session: &Session, dead: &ListSummary) -> Markup {
    let more = if dead.next_token.is_some() { "+" } else { "" };
    layout(
        "Dead-letter queue",
        Some(session),
        html! {
            h1 { "Dead-letter queue" }
            p #waiting { (dead.count) (more) " dead events of this tenant wait in the DLQ." }
            @if !dead.events.is_empty() {
                ul.mono #dead {
                    @for event in &dead.events {
                        li { a href={ "/portal/events/" (event.provider) "/" (encode(&event.event_id)) } { (event.provider) " " (event.event_id) } }
                    }
                }
            }
            @if !session.read_only && !dead.events.is_empty() {
                form method="post" action="/portal/dlq/redrive" {
                    (csrf(session))
                    button.primary #confirm-redrive type="submit" { "Redrive the DLQ" }
                }
            }
            p.muted { "The DLQ is read only when you redrive: it is shared, and reading a message hides it from everyone for a while." }
        },
    )
}

/// What a redrive did.
pub fn dlq(session: &Session, summary: &RedriveSummary) -> Markup {
    layout(
        "Dead-letter queue",
        Some(session),
        html! {
            h1 { "Dead-letter queue" }
            @if !summary.dry_run {
                div.card.notice #redriven {
                    "Redriven: " (summary.redriven.len()) "; already processed, removed: "
                    (summary.already_processed.len()) "; left: " (summary.skipped.len())
                }
            }
            p #dry-run {
                (summary.examined) " messages read; "
                @if summary.dry_run { (summary.redriven.len()) " would be sent back to the events queue" }
                @else { (summary.redriven.len()) " sent back to the events queue" }
                "; " (summary.already_processed.len()) " already processed"
                @if summary.more { " (more wait: run it again)" }
            }
            @if !summary.redriven.is_empty() {
                ul.mono { @for id in &summary.redriven { li { (id) } } }
            }
            @for skipped in &summary.skipped { p.muted { (skipped.id) ": " (skipped.reason) } }
            @if summary.dry_run && !session.read_only && !summary.redriven.is_empty() {
                form method="post" action="/portal/dlq/redrive" {
                    (csrf(session))
                    button.primary #confirm-redrive type="submit" { "Redrive " (summary.redriven.len()) " events" }
                }
            }
        },
    )
}
