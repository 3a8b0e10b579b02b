//! The tenant's event catalog: `GET|POST /v1/tenants/{tenant}/event-types` and
//! `GET|PATCH /v1/tenants/{tenant}/event-types/{name}`.
//!
//! A type is `{"name", "description", "schema", "examples", "deprecated"}`; the schema is a
//! JSON Schema (2020-12) that every later publish of the type is checked against. A `PATCH`
//! changes the fields it names (`"schema": null` removes the schema; `"deprecated": true`
//! deprecates). Bad input is a 4xx with the reason and changes nothing.

use lambda_http::{Body, Response, http::StatusCode};
use serde_json::{Map, Value, json};
use shared::{
    clock::Clock,
    ids::TenantId,
    outbound::{
        Outbound,
        catalog::{CatalogError, EventTypeChange},
        ids::EventType,
        ports::OutboundStore,
    },
};
use tracing::warn;

use crate::json_response;

/// The fields a body may carry.
const FIELDS: [&str; 5] = ["name", "description", "schema", "examples", "deprecated"];

pub async fn list<S: OutboundStore, Q, C: Clock>(
    outbound: &Outbound<S, Q, C>,
    tenant: &TenantId,
) -> Response<Body> {
    match outbound.event_types(tenant).await {
        Ok(types) => json_response(
            StatusCode::OK,
            &json!({ "event_types": types.iter().map(|t| t.to_json()).collect::<Vec<_>>() }),
        ),
        Err(e) => error(tenant, &e),
    }
}

pub async fn show<S: OutboundStore, Q, C: Clock>(
    outbound: &Outbound<S, Q, C>,
    tenant: &TenantId,
    name: &str,
) -> Response<Body> {
    let Ok(name) = EventType::parse(name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such event type"}),
        );
    };
    match outbound.event_type(tenant, &name).await {
        Ok(definition) => json_response(StatusCode::OK, &definition.to_json()),
        Err(e) => error(tenant, &e),
    }
}

pub async fn register<S: OutboundStore, Q, C: Clock>(
    outbound: &Outbound<S, Q, C>,
    tenant: &TenantId,
    body: &[u8],
) -> Response<Body> {
    let (name, change) = match parse(body) {
        Ok((Some(name), change)) => (name, change),
        Ok((None, _)) => return bad_request("the body must name the type: {\"name\": ...}"),
        Err(why) => return bad_request(&why),
    };
    match outbound.register_event_type(tenant, &name, change).await {
        Ok(definition) => json_response(StatusCode::CREATED, &definition.to_json()),
        Err(e) => error(tenant, &e),
    }
}

pub async fn update<S: OutboundStore, Q, C: Clock>(
    outbound: &Outbound<S, Q, C>,
    tenant: &TenantId,
    name: &str,
    body: &[u8],
) -> Response<Body> {
    let Ok(name) = EventType::parse(name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such event type"}),
        );
    };
    let change = match parse(body) {
        Ok((None, change)) => change,
        Ok((Some(_), _)) => return bad_request("a type is not renamed: leave \"name\" out"),
        Err(why) => return bad_request(&why),
    };
    match outbound.update_event_type(tenant, &name, change).await {
        Ok(definition) => json_response(StatusCode::OK, &definition.to_json()),
        Err(e) => error(tenant, &e),
    }
}

/// The name and the change a body asks for; the reason when it is not one.
fn parse(body: &[u8]) -> Result<(Option<String>, EventTypeChange), String> {
    let fields: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("the body must be a JSON object: {e}"))?;
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {unknown:?}: expected {}",
            FIELDS.join(", ")
        ));
    }
    let text = |name: &str| match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name:?} must be a string")),
    };
    let examples = match fields.get("examples") {
        None => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => return Err("\"examples\" must be an array of payloads".into()),
    };
    let deprecated = match fields.get("deprecated") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("\"deprecated\" must be true or false".into()),
    };
    Ok((
        text("name")?,
        EventTypeChange {
            description: text("description")?,
            schema: fields.get("schema").cloned(),
            examples,
            deprecated,
        },
    ))
}

fn bad_request(why: &str) -> Response<Body> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": why }))
}

fn error(tenant: &TenantId, e: &CatalogError) -> Response<Body> {
    let status = match e {
        CatalogError::Unknown(_) => StatusCode::NOT_FOUND,
        CatalogError::Exists(_) | CatalogError::Conflict(_) => StatusCode::CONFLICT,
        CatalogError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    if !e.is_client_error() {
        warn!(%tenant, error = %e, "event catalog unavailable");
        return json_response(
            status,
            &json!({"error": "temporarily unavailable; send the request again"}),
        );
    }
    let mut body = json!({ "error": e.to_string() });
    if let CatalogError::ExampleMismatch { index, mismatch } = e {
        body["example"] = (*index).into();
        body["pointer"] = mismatch.pointer.clone().into();
        body["keyword"] = mismatch.keyword.clone().into();
    }
    json_response(status, &body)
}
