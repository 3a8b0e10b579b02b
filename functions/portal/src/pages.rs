//! The pages, as maud templates: every value is escaped by construction, no script runs, and
//! the only style is the page's own.

use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use lambda_http::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use shared::{
    outbound::{delivery::Attempt, endpoint::Endpoint, ids::EventType, recovery::RecoveryReport},
    portal::Session,
};

use crate::chart;

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.7em 1.5em;display:flex;gap:1em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header nav a{font-weight:400;margin-right:.8em}
header .tenant{opacity:.8}header form{margin-left:auto}header .badge{color:#1d2330;background:#fdf0c7}
main{max-width:1100px;margin:1.5em auto;padding:0 1.5em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.45em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{font-size:.85em;color:#5b6472;text-transform:uppercase;letter-spacing:.03em}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:1em 1.2em;margin:1em 0}
.notice{background:#e7f6ec;border-color:#a6dcb7}.problem{background:#fdecea;border-color:#f3b4ad}
.badge{display:inline-block;padding:0 .5em;border-radius:9px;font-size:.85em;background:#e3e6ea}
.ok{background:#d5f0de}.bad{background:#fbd9d5}.warn{background:#fdf0c7}
label{display:block;margin:.5em 0 .2em;font-weight:600}
input[type=text],input[type=url],textarea{width:100%;box-sizing:border-box;padding:.4em;font:inherit}
button{font:inherit;padding:.35em .9em;border-radius:4px;border:1px solid #9aa3af;background:#fff;cursor:pointer}
button.primary{background:#1d5fd1;color:#fff;border-color:#1d5fd1}
.actions{display:flex;gap:.5em;flex-wrap:wrap}.actions form{margin:0}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
.muted{color:#5b6472}
pre{background:#fff;border:1px solid #e3e6ea;border-radius:4px;padding:.8em;overflow:auto;font-size:.85em;margin:.5em 0}
pre code{word-break:normal}details summary{cursor:pointer;margin:.5em 0}select{font:inherit;padding:.3em}
"#;

/// What a redirect after a change says on the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Added,
    Updated,
    Enabled,
    Disabled,
    Rotated,
    Resent,
}

impl Notice {
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "added" => Self::Added,
            "updated" => Self::Updated,
            "enabled" => Self::Enabled,
            "disabled" => Self::Disabled,
            "rotated" => Self::Rotated,
            "resent" => Self::Resent,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            Self::Added => "Endpoint added. Reveal its signing secret below to verify deliveries.",
            Self::Updated => "Endpoint updated.",
            Self::Enabled => "Endpoint enabled: held deliveries are on their way.",
            Self::Disabled => "Endpoint disabled: new deliveries are held until it is enabled.",
            Self::Rotated => {
                "Secret rotated. The previous one keeps signing beside it for 24 hours."
            }
            Self::Resent => "Message queued for delivery again.",
        }
    }
}

/// What an endpoint page shows besides the endpoint, after an explicit action.
#[derive(Debug)]
pub enum Extra {
    /// The signing secret and the custom headers' values, after "Reveal" or "Rotate".
    Secret {
        secret: String,
        headers: Vec<(String, String)>,
    },
    /// A test event's attempt.
    Tested(Attempt),
    /// The edit form was refused: why, and what was typed.
    Refused(String, HashMap<String, String>),
    /// *Recover failed since…*: what a dry run found, or what the recovery sent again.
    Recovery { hours: u64, report: RecoveryReport },
}

pub(crate) fn layout(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Webhooks portal" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/portal/endpoints" { "Webhooks portal" }
                    @if let Some(session) = session {
                        span.tenant { (session.tenant.as_str()) }
                        nav {
                            a href="/portal/endpoints" { "Endpoints" } " "
                            a href="/portal/messages" { "Messages" } " "
                            a href="/portal/event-types" { "Event types" } " "
                            a href="/portal/verify" { "Verify" } " "
                            @if session.operator {
                                a href="/portal/events" { "Events" } " "
                                a href="/portal/health" { "Health" } " "
                                a href="/portal/dlq" { "DLQ" }
                            }
                        }
                        @if session.read_only { span.badge { "read-only" } }
                        form method="post" action="/portal/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// A page saying what went wrong, never how.
pub fn error(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            div.card.problem {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p #message { (message) }
            }
        },
    )
}

/// Where a portal link lands: opening is a POST, so fetching the link spends nothing.
pub fn open_portal(token: &str, check: &str) -> Markup {
    layout(
        "Open the portal",
        None,
        html! {
            div.card {
                h1 { "Webhooks portal" }
                p { "This link opens one session, once, in this browser." }
                form method="post" action="/portal/login" {
                    input type="hidden" name="token" value=(token);
                    input type="hidden" name="check" value=(check);
                    button #open type="submit" { "Open the portal" }
                }
            }
        },
    )
}

pub fn signed_out() -> Markup {
    layout(
        "Signed out",
        None,
        html! { div.card { p { "You are signed out. A new portal link opens a new session." } } },
    )
}

fn state(endpoint: &Endpoint, now: SystemTime) -> Markup {
    html! {
        @if let Some(reason) = endpoint.disabled() {
            span.badge.bad { "disabled (" (reason) ")" }
        } @else if endpoint.is_paused(now) {
            span.badge.warn { "paused after failures" }
        } @else if endpoint.health.consecutive_failures > 0 {
            span.badge.warn { (endpoint.health.consecutive_failures) " failing" }
        } @else {
            span.badge.ok { "enabled" }
        }
    }
}

/// The event types the tenant has published, offered for the filter field.
fn published(types: &[EventType]) -> Markup {
    html! {
        datalist #types { @for t in types { option value=(t.as_str()) {} } }
        @if !types.is_empty() {
            p.muted #published {
                "Published so far: "
                @for (i, t) in types.iter().enumerate() { @if i > 0 { ", " } code { (t.as_str()) } }
            }
        }
    }
}

pub(crate) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn notice_card(notice: Option<Notice>) -> Markup {
    html! {
        @if let Some(notice) = notice {
            div.card.notice #notice { (notice.text()) }
        }
    }
}

/// The tenant's endpoints and, unless read-only, the form that adds one.
pub fn endpoints(
    session: &Session,
    endpoints: &[Endpoint],
    types: &[EventType],
    now: SystemTime,
    notice: Option<Notice>,
    refused: Option<(&str, &HashMap<String, String>)>,
) -> Markup {
    let typed = |name: &str| {
        refused
            .and_then(|(_, form)| form.get(name).cloned())
            .unwrap_or_default()
    };
    layout(
        "Endpoints",
        Some(session),
        html! {
            (notice_card(notice))
            h1 { "Endpoints" }
            @if endpoints.is_empty() {
                p.muted #empty { "No endpoints yet." }
            } @else {
                table #endpoints {
                    thead { tr { th { "URL" } th { "Description" } th { "Event types" } th { "State" } } }
                    tbody {
                        @for endpoint in endpoints {
                            tr {
                                td { a.mono href={ "/portal/endpoints/" (endpoint.id) } { (endpoint.url) } }
                                td { (endpoint.description) }
                                td.mono { (endpoint.filter) }
                                td { (state(endpoint, now)) }
                            }
                        }
                    }
                }
            }
            @if !session.read_only {
                div.card #add {
                    h2 { "Add an endpoint" }
                    @if let Some((problem, _)) = refused {
                        div.card.problem #problem { (problem) }
                    }
                    form method="post" action="/portal/endpoints" {
                        (csrf(session))
                        label for="url" { "URL (https)" }
                        input #url type="url" name="url" required placeholder="https://example.com/webhooks" value=(typed("url"));
                        label for="description" { "Description" }
                        input #description type="text" name="description" value=(typed("description"));
                        label for="filter" { "Event types (comma-separated patterns like invoice.*; blank for all)" }
                        input #filter type="text" name="filter" list="types" value=(typed("filter"));
                        (published(types))
                        p { button.primary #add-endpoint type="submit" { "Add endpoint" } }
                    }
                }
            }
        },
    )
}

fn attempt_row(session: &Session, endpoint: &Endpoint, attempt: &Attempt) -> Markup {
    html! {
        tr.attempt {
            td.mono { (rfc3339(attempt.at)) }
            td.mono { (attempt.key.message_id) }
            td { (attempt.trigger.as_str()) }
            td {
                @match attempt.status {
                    Some(status) if (200..300).contains(&status) => span.badge.ok { (status) },
                    Some(status) => span.badge.bad { (status) },
                    None => span.badge.bad { "no answer" },
                }
            }
            td { (attempt.latency.as_millis()) " ms" }
            td { @if let Some(class) = attempt.error_class { (class.as_str()) } }
            td.mono { (truncate(&attempt.response_body, 120)) }
            td {
                @if !session.read_only {
                    form method="post" action={ "/portal/endpoints/" (endpoint.id) "/resend" } {
                        (csrf(session))
                        input type="hidden" name="message_id" value=(attempt.key.message_id);
                        button type="submit" { "Resend" }
                    }
                }
            }
        }
    }
}

/// One endpoint: its settings, actions, a 24-hour chart and its attempts, newest first.
pub fn endpoint(
    session: &Session,
    endpoint: &Endpoint,
    attempts: &[Attempt],
    types: &[EventType],
    now: SystemTime,
    notice: Option<Notice>,
    extra: Option<Extra>,
) -> Markup {
    let action = |name: &str| format!("/portal/endpoints/{}/{name}", endpoint.id);
    let refused = match &extra {
        Some(Extra::Refused(problem, form)) => Some((problem.as_str(), form)),
        _ => None,
    };
    let typed = |name: &str, current: String| {
        refused
            .and_then(|(_, form)| form.get(name).cloned())
            .unwrap_or(current)
    };
    layout(
        endpoint.url.as_str().as_str(),
        Some(session),
        html! {
            (notice_card(notice))
            p { a href="/portal/endpoints" { "← Endpoints" } }
            h1.mono #endpoint-url { (endpoint.url) }
            p { (state(endpoint, now)) " " span.muted.mono { (endpoint.id) } }
            @let names = endpoint.headers.names();
            @if !names.is_empty() {
                p #header-names {
                    "Custom headers: "
                    @for name in &names { code { (name) } " " }
                    span.muted { "(values sealed; Reveal shows them)" }
                }
            }
            @if let Some(Extra::Secret { secret, headers }) = &extra {
                div.card.notice #secret {
                    "Signing secret: " code #secret-value { (secret) }
                    p.muted { "Verify deliveries with the Standard Webhooks or Svix libraries and this secret." }
                    @for (name, value) in headers {
                        p.header-value { code { (name) ": " (value) } }
                    }
                }
            }
            @if let Some(Extra::Tested(attempt)) = &extra {
                div #test-result class={ "card " (if attempt.succeeded() { "notice" } else { "problem" }) } {
                    "Test event: "
                    @match attempt.status { Some(status) => { "answered " (status) }, None => { "no answer" } }
                    " in " (attempt.latency.as_millis()) " ms"
                    @if let Some(error) = &attempt.error { " — " (error) }
                }
            }
            @if !session.read_only {
                div.actions.card {
                    form method="post" action=(action("test")) { (csrf(session)) button #send-test type="submit" { "Send test event" } }
                    form method="post" action=(action("reveal")) { (csrf(session)) button #reveal type="submit" { "Reveal secret" } }
                    form method="post" action=(action("rotate")) { (csrf(session)) button #rotate type="submit" { "Rotate secret" } }
                    @if endpoint.is_enabled() {
                        form method="post" action=(action("disable")) { (csrf(session)) button #disable type="submit" { "Disable" } }
                    } @else {
                        form method="post" action=(action("enable")) { (csrf(session)) button #enable type="submit" { "Enable" } }
                    }
                }
            }
            div.card {
                h2 { "Last 24 hours" }
                (chart::last_day(attempts, now))
            }
            @if !session.read_only {
                div.card #recover {
                    h2 { "Recover failed deliveries" }
                    p.muted { "Deliveries that used up every retry (dead) are sent again, oldest first, with a fresh schedule. See what would go first." }
                    @if let Some(Extra::Recovery { hours, report }) = &extra {
                        @if report.dry_run {
                            div.card #recovery-preview class={ "card " (if report.requeued > 0 { "notice" } else { "" }) } {
                                (report.requeued) " dead " (plural(report.requeued, "delivery", "deliveries")) " from the last " (hours_text(*hours)) " would be sent again."
                                @if report.requeued > 0 {
                                    form method="post" action=(action("recover")) {
                                        (csrf(session))
                                        input type="hidden" name="since_hours" value=(hours);
                                        input type="hidden" name="confirm" value="yes";
                                        button.primary #recover-confirm type="submit" { "Send " (report.requeued) " again" }
                                    }
                                }
                            }
                        } @else {
                            div.card.notice #recovery-done {
                                (report.requeued) " " (plural(report.requeued, "delivery", "deliveries")) " queued again"
                                @if report.skipped > 0 { "; " (report.skipped) " had moved on already" }
                                @if report.failed > 0 { "; " (report.failed) " could not be queued now: try again" }
                                "."
                            }
                        }
                    }
                    form.actions method="post" action=(action("recover")) {
                        (csrf(session))
                        label for="since_hours" { "Failed since" }
                        select #since_hours name="since_hours" {
                            @for h in crate::RECOVER_HOURS { option value=(h) selected[h == 24] { (hours_text(h)) " ago" } }
                        }
                        button #recover-preview-button type="submit" { "Preview" }
                    }
                }
            }
            @if !session.read_only {
                div.card #edit {
                    h2 { "Settings" }
                    @if let Some((problem, _)) = refused { div.card.problem #problem { (problem) } }
                    form method="post" action=(action("update")) {
                        (csrf(session))
                        label for="url" { "URL (https)" }
                        input #url type="url" name="url" required value=(typed("url", endpoint.url.to_string()));
                        label for="description" { "Description" }
                        input #description type="text" name="description" value=(typed("description", endpoint.description.clone()));
                        label for="filter" { "Event types" }
                        input #filter type="text" name="filter" list="types" value=(typed("filter", endpoint.filter.patterns().join(", ")));
                        (published(types))
                        p { button.primary #save type="submit" { "Save" } }
                    }
                }
            }
            h2 { "Attempts" }
            @if attempts.is_empty() {
                p.muted #no-attempts { "No attempts yet." }
            } @else {
                table #attempts {
                    thead { tr { th { "Time (UTC)" } th { "Message" } th { "Trigger" } th { "Status" } th { "Latency" } th { "Error" } th { "Answer" } th {} } }
                    tbody { @for attempt in attempts { (attempt_row(session, endpoint, attempt)) } }
                }
            }
        },
    )
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `1 hour`, `6 hours`, `3 days`.
fn hours_text(hours: u64) -> String {
    match hours {
        1 => "1 hour".into(),
        h if h % 24 == 0 && h > 24 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
}

/// `2026-12-07 10:15:02` in UTC.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}
