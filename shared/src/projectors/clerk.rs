//! Clerk events (<https://clerk.com/docs/webhooks/overview>): `{data, object: "event", type,
//! timestamp}`, where `timestamp` is the event time in unix milliseconds and is the version.

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{Event, ProjectorError, ProjectorOutcome, UnknownTypePolicy, fields, unknown};
use crate::{
    projection::{ProjectionKind, ProjectionWrite},
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
        return unknown(Provider::Clerk, None, policy);
    };
    let ev = Event::new(Provider::Clerk, t, key);
    let writes = match t {
        "user.created" | "user.updated" => user(&ev, payload)?,
        "user.deleted" => user_deleted(&ev, payload)?,
        "session.created" => session(&ev, payload)?,
        "organization.created" => organization(&ev, payload)?,
        "organizationMembership.created" => membership(&ev, payload)?,
        other => return unknown(Provider::Clerk, Some(other), policy),
    };
    Ok(ProjectorOutcome::Writes(writes))
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: i64,
    data: T,
}

/// Parse the envelope, check its type and the data's `object`, and return the data with the
/// version.
fn open<T: DeserializeOwned + Named>(
    ev: &Event<'_>,
    payload: &[u8],
) -> Result<(T, i64), ProjectorError> {
    let env: Envelope<T> = ev.parse(payload)?;
    ev.check_type(&env.event_type)?;
    ev.check_object(env.data.object(), T::NAME)?;
    Ok((env.data, ev.millis_version(env.timestamp)?))
}

/// A Clerk object and its `object` name.
trait Named {
    const NAME: &'static str;
    fn object(&self) -> &str;
}

macro_rules! named {
    ($t:ty, $name:literal) => {
        impl Named for $t {
            const NAME: &'static str = $name;
            fn object(&self) -> &str {
                &self.object
            }
        }
    };
}

#[derive(Deserialize)]
struct User {
    id: String,
    object: String,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    primary_email_address_id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
}
named!(User, "user");

#[derive(Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
}

fn user(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (user, version) = open::<User>(ev, payload)?;
    let primary = user.primary_email_address_id.as_deref().and_then(|id| {
        user.email_addresses
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.email_address.as_str())
    });
    let f = fields([
        ("primary_email", json!(primary)),
        ("first_name", json!(user.first_name)),
        ("last_name", json!(user.last_name)),
        ("username", json!(user.username)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::ClerkUser,
        &user.id,
        version,
        f,
    )?])
}

/// What Clerk sends for a deleted object: `{deleted: true, id, object}`.
#[derive(Deserialize)]
struct Deleted {
    id: String,
    object: String,
    deleted: bool,
}
named!(Deleted, "user");

fn user_deleted(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (gone, version) = open::<Deleted>(ev, payload)?;
    if !gone.deleted {
        return Err(ev.invalid("data.deleted is false"));
    }
    Ok(vec![ev.delete(
        ProjectionKind::ClerkUser,
        &gone.id,
        version,
    )?])
}

#[derive(Deserialize)]
struct Session {
    id: String,
    object: String,
    user_id: String,
    status: String,
    client_id: Option<String>,
    expire_at: Option<i64>,
}
named!(Session, "session");

fn session(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (s, version) = open::<Session>(ev, payload)?;
    let f = fields([
        ("user_id", json!(s.user_id)),
        ("status", json!(s.status)),
        ("client_id", json!(s.client_id)),
        ("expire_at", json!(s.expire_at)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::ClerkSession,
        &s.id,
        version,
        f,
    )?])
}

#[derive(Deserialize)]
struct Organization {
    id: String,
    object: String,
    name: String,
    slug: Option<String>,
    created_by: Option<String>,
}
named!(Organization, "organization");

fn organization(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (org, version) = open::<Organization>(ev, payload)?;
    let f = fields([
        ("name", json!(org.name)),
        ("slug", json!(org.slug)),
        ("created_by", json!(org.created_by)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::ClerkOrganization,
        &org.id,
        version,
        f,
    )?])
}

#[derive(Deserialize)]
struct Membership {
    id: String,
    object: String,
    role: String,
    organization: OrganizationRef,
    public_user_data: PublicUserData,
}
named!(Membership, "organization_membership");

#[derive(Deserialize)]
struct OrganizationRef {
    id: String,
}

#[derive(Deserialize)]
struct PublicUserData {
    user_id: String,
}

fn membership(ev: &Event<'_>, payload: &[u8]) -> Result<Vec<ProjectionWrite>, ProjectorError> {
    let (m, version) = open::<Membership>(ev, payload)?;
    let f = fields([
        ("organization_id", json!(m.organization.id)),
        ("user_id", json!(m.public_user_data.user_id)),
        ("role", json!(m.role)),
    ]);
    Ok(vec![ev.upsert(
        ProjectionKind::ClerkMembership,
        &m.id,
        version,
        f,
    )?])
}
