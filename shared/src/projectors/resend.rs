//! Resend email events (<https://resend.com/docs/dashboard/webhooks/event-types>):
//! `{type, created_at, data: {email_id, from, to, subject, bounce?, click?}}`. The version is
//! `created_at` (RFC 3339) in milliseconds. Each event updates the email's latest status and
//! adds an entry to its history, which keeps every event even when the status moved on.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, unknown};
use crate::{
    projection::{Change, ProjectionKey, ProjectionKind, ProjectionWrite},
    provider::Provider,
    record::EventKey,
};

pub(super) fn project(
    event_type: Option<&str>,
    payload: &[u8],
    key: &EventKey,
    policy: UnknownTypePolicy,
) -> Result<ProjectorOutcome, ProjectorError> {
    let Some(t) = event_type else {
        return unknown(Provider::Resend, None, policy);
    };
    let status = match t {
        "email.sent" => "sent",
        "email.delivered" => "delivered",
        "email.delivery_delayed" => "delivery_delayed",
        "email.opened" => "opened",
        "email.clicked" => "clicked",
        "email.bounced" => "bounced",
        "email.complained" => "complained",
        other => return unknown(Provider::Resend, Some(other), policy),
    };
    let ev = Event::new(Provider::Resend, t, key);
    email(&ev, status, payload).map(ProjectorOutcome::Writes)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    created_at: String,
    data: Email,
}

#[derive(Deserialize)]
struct Email {
    email_id: String,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    subject: Option<String>,
    bounce: Option<Bounce>,
    click: Option<Click>,
}

#[derive(Deserialize)]
struct Bounce {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "subType")]
    sub_type: Option<String>,
    message: Option<String>,
}

/// The click's link and time; the reader's IP address and user agent are not kept.
#[derive(Deserialize)]
struct Click {
    link: Option<String>,
    timestamp: Option<String>,
}

fn email(
    ev: &Event<'_>,
    status: &str,
    payload: &[u8],
) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let env: Envelope = ev.parse(payload)?;
    ev.check_type(&env.event_type)?;
    let version = ev.rfc3339_version("created_at", &env.created_at)?;
    let data = env.data;
    let bounce = data.bounce.as_ref().map_or(
        Value::Null,
        |b| json!({"type": b.kind, "sub_type": b.sub_type, "message": b.message}),
    );
    let click = data.click.as_ref().map_or(
        Value::Null,
        |c| json!({"link": c.link, "timestamp": c.timestamp}),
    );
    let latest = fields([
        ("status", json!(status)),
        ("last_event_type", json!(ev.event_type)),
        ("from", json!(data.from)),
        ("to", json!(data.to)),
        ("subject", json!(data.subject)),
        ("bounce", bounce.clone()),
        ("click", click.clone()),
    ]);
    let entry = fields([
        ("email_id", json!(data.email_id)),
        ("type", json!(ev.event_type)),
        ("created_at", json!(env.created_at)),
        ("bounce", bounce),
        ("click", click),
    ]);
    let history = ProjectionKey::history(
        &ev.key.tenant,
        ProjectionKind::ResendEmailEvent,
        &data.email_id,
        version,
        &ev.key.event_id,
    )
    .map_err(|e| ev.invalid(format_args!("data.email_id: {e}")))?;
    Ok(vec![
        ev.upsert(ProjectionKind::ResendEmail, &data.email_id, version, latest)?,
        ev.write(history, version, Change::Append(entry)),
    ])
}
