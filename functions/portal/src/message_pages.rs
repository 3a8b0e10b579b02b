//! The message log: the tenant's messages newest first, filtered by type, state, endpoint and
//! period, or found by id; one message with its payload (on request), its deliveries with
//! *Resend*, and every attempt across endpoints.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use maud::{Markup, html};
use shared::{
    outbound::{
        endpoint::Endpoint,
        ids::{EndpointId, EventType, MessageId},
        message_log::{LoggedMessage, MessageDetail, MessageFilter, MessageState},
    },
    portal::Session,
};

use crate::{
    encode,
    pages::{csrf, layout, rfc3339, truncate},
};

/// The periods the filter offers, in hours; the first is the default.
pub const PERIODS: [(u64, &str); 4] = [
    (168, "last 7 days"),
    (24, "last 24 hours"),
    (1, "last hour"),
    (720, "last 30 days"),
];
/// Messages shown on one page of the log.
pub const SHOWN: usize = 50;

/// The filter the page's query asks for; unknown values are ignored (the form offers only
/// valid ones). The period's start is `now - hours`.
pub struct Query {
    pub filter: MessageFilter,
    pub hours: u64,
    /// As typed, to show in the form again.
    pub typed: HashMap<String, String>,
}

impl Query {
    pub fn parse(query: HashMap<String, String>, now: SystemTime) -> Self {
        let hours = query
            .get("hours")
            .and_then(|h| h.parse::<u64>().ok())
            .filter(|h| PERIODS.iter().any(|(p, _)| p == h))
            .unwrap_or(PERIODS[0].0);
        // A day given as `from` or `to` (UTC, `to` inclusive) overrides the period's bound.
        let day = |name: &str| query.get(name).and_then(|d| day_start(d));
        let filter = MessageFilter {
            event_type: query
                .get("type")
                .filter(|t| !t.is_empty())
                .and_then(|t| EventType::parse(t.trim()).ok()),
            state: query.get("state").and_then(|s| MessageState::parse(s)),
            endpoint: query
                .get("endpoint")
                .and_then(|e| EndpointId::parse(e).ok()),
            since: day("from").or_else(|| now.checked_sub(Duration::from_secs(hours * 3_600))),
            until: day("to").map(|d| d + Duration::from_secs(86_400)),
        };
        Self {
            filter,
            hours,
            typed: query,
        }
    }
}

/// Midnight UTC of a `YYYY-MM-DD` day, as a date input sends it.
fn day_start(raw: &str) -> Option<SystemTime> {
    let mut parts = raw.trim().splitn(3, '-').map(str::parse::<u16>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn state_badge(state: MessageState) -> Markup {
    let class = match state {
        MessageState::Delivered => "ok",
        MessageState::Pending => "",
        MessageState::Failing => "warn",
        MessageState::Dead => "bad",
    };
    html! { span class={ "badge " (class) } { (state.as_str()) } }
}

/// The log page.
pub fn messages(
    session: &Session,
    query: &Query,
    endpoints: &[Endpoint],
    listed: &[LoggedMessage],
) -> Markup {
    let chosen = |name: &str, value: &str| query.typed.get(name).is_some_and(|v| v == value);
    layout(
        "Messages",
        Some(session),
        html! {
            h1 { "Messages" }
            form.card #find method="get" action="/portal/messages" {
                label for="message-id" { "Find a message by id" }
                input #message-id type="text" name="id" placeholder="msg_… or your idempotency key" required;
                " " button type="submit" { "Find" }
            }
            form.card.actions #filter method="get" action="/portal/messages" {
                input #type type="text" name="type" placeholder="Event type" aria-label="Event type"
                    value=(query.typed.get("type").map(String::as_str).unwrap_or_default());
                select #state name="state" aria-label="State" {
                    option value="" { "Any state" }
                    @for s in MessageState::ALL { option value=(s.as_str()) selected[chosen("state", s.as_str())] { (s.as_str()) } }
                }
                select #endpoint name="endpoint" aria-label="Endpoint" {
                    option value="" { "Any endpoint" }
                    @for e in endpoints { option value=(e.id) selected[chosen("endpoint", e.id.as_str())] { (e.url) } }
                }
                select #hours name="hours" aria-label="Period" {
                    @for (hours, words) in PERIODS { option value=(hours) selected[hours == query.hours] { (words) } }
                }
                " or from "
                input #from type="date" name="from" aria-label="From (UTC)" value=(query.typed.get("from").map(String::as_str).unwrap_or_default());
                " to "
                input #to type="date" name="to" aria-label="To (UTC, inclusive)" value=(query.typed.get("to").map(String::as_str).unwrap_or_default());
                button type="submit" { "Filter" }
            }
            @if listed.is_empty() {
                p.muted #no-messages { "No messages match. A message no endpoint subscribed to is found by its id." }
            } @else {
                table #messages {
                    thead { tr { th { "Created (UTC)" } th { "Message" } th { "Type" } th { "State" } th { "Deliveries" } } }
                    tbody {
                        @for m in listed {
                            @let delivered = m.deliveries.iter().filter(|d| MessageState::of(d) == MessageState::Delivered).count();
                            tr {
                                td.mono { (rfc3339(m.created_at)) }
                                td.mono { a href={ "/portal/messages/" (encode(m.id.as_str())) } { (m.id) } }
                                td.mono { (m.event_type) }
                                td { (state_badge(m.state())) }
                                td { (delivered) " of " (m.deliveries.len()) " delivered" }
                            }
                        }
                    }
                }
                @if listed.len() >= SHOWN {
                    p.muted { "The newest " (SHOWN) " shown: narrow the period or filter to see others." }
                }
            }
        },
    )
}

/// One message.
pub fn message(
    session: &Session,
    id: &MessageId,
    detail: &MessageDetail,
    endpoints: &[Endpoint],
    show_payload: bool,
) -> Markup {
    let url_of = |endpoint: &EndpointId| {
        endpoints
            .iter()
            .find(|e| e.id == *endpoint)
            .map_or_else(|| endpoint.to_string(), |e| e.url.to_string())
    };
    let event_type = detail
        .message
        .as_ref()
        .map(|m| m.event_type.to_string())
        .or_else(|| detail.deliveries.first().map(|d| d.event_type.to_string()))
        .unwrap_or_default();
    layout(
        id.as_str(),
        Some(session),
        html! {
            p { a href="/portal/messages" { "← Messages" } }
            h1 #message-title { code { (id) } }
            p { span.mono { (event_type) } @if let Some(m) = &detail.message { " · created " (rfc3339(m.created_at)) " UTC" } }
            @if let Some(trace) = detail.message.as_ref().and_then(|m| m.trace) {
                p.muted #trace { "Trace " code { (trace.trace_id()) } ": each attempt's " code { "traceparent" } " continues it." }
            }
            @match &detail.message {
                Some(m) if m.is_erased() => {
                    p #payload-erased { "Payload erased" @if let Some(e) = &m.erased { " " (rfc3339(e.at)) " UTC" } "." " " span.muted { "The message is kept, so a repeated publish is still a duplicate; it is never sent again." } }
                }
                Some(m) if show_payload => {
                    div.card #payload { h2 { "Payload" } pre { (String::from_utf8_lossy(&m.payload)) } }
                }
                Some(_) => { p { a #show-payload href="?payload=show" { "Show the payload" } " " span.muted { "(it may hold personal data)" } } }
                None => { p.muted { "The message itself has expired; its deliveries and attempts remain for a while." } }
            }
            h2 { "Deliveries" }
            @if detail.deliveries.is_empty() {
                p.muted #no-deliveries { "No endpoint subscribed to it." }
            } @else {
                table #deliveries {
                    thead { tr { th { "Endpoint" } th { "State" } th { "Attempts" } th { "Last answer" } th { "Next attempt (UTC)" } th {} } }
                    tbody {
                        @for d in &detail.deliveries {
                            tr {
                                td.mono { a href={ "/portal/endpoints/" (d.key.endpoint_id) } { (url_of(&d.key.endpoint_id)) } }
                                @let state = MessageState::of(d);
                                td {
                                    (state_badge(state))
                                    @if d.status.as_str() != state.as_str() { " " span.muted { (d.status.as_str()) } }
                                }
                                td { (d.attempts) }
                                td { @if let Some(code) = d.last_status_code { (code) } @else if let Some(error) = &d.last_error { (truncate(error, 80)) } }
                                td.mono { @if let Some(at) = d.next_attempt_at { (rfc3339(at)) } }
                                td {
                                    @if !session.read_only && detail.message.is_some() {
                                        form method="post" action={ "/portal/endpoints/" (d.key.endpoint_id) "/resend" } {
                                            (csrf(session))
                                            input type="hidden" name="message_id" value=(id);
                                            button type="submit" { "Resend" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Attempts" }
            @if detail.attempts.is_empty() {
                p.muted #no-attempts { "No attempts yet." }
            } @else {
                table #attempts {
                    thead { tr { th { "Time (UTC)" } th { "Endpoint" } th { "Trigger" } th { "Status" } th { "Latency" } th { "Error" } } }
                    tbody {
                        @for a in &detail.attempts {
                            tr {
                                td.mono { (rfc3339(a.at)) }
                                td.mono { (url_of(&a.key.endpoint_id)) }
                                td { (a.trigger.as_str()) }
                                td {
                                    @match a.status {
                                        Some(status) if (200..300).contains(&status) => span.badge.ok { (status) },
                                        Some(status) => span.badge.bad { (status) },
                                        None => span.badge.bad { "no answer" },
                                    }
                                }
                                td { (a.latency.as_millis()) " ms" }
                                td { @if let Some(error) = &a.error { (truncate(error, 120)) } }
                            }
                        }
                    }
                }
            }
        },
    )
}
