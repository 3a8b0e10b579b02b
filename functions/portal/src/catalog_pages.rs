//! The event catalog as partners read it: which event types the tenant publishes, what their
//! payloads look like (the schema as a table of fields, the JSON behind it on request), their
//! examples, and a button that sends an example to one of the partner's endpoints.

use maud::{Markup, html};
use serde_json::Value;
use shared::{
    outbound::{catalog::EventTypeDefinition, delivery::Attempt, endpoint::Endpoint},
    portal::Session,
};

use crate::{
    encode,
    pages::{csrf, layout},
};

/// How deep the field table follows nested objects and arrays, and how many rows it shows.
const MAX_FIELD_DEPTH: usize = 6;
const MAX_FIELD_ROWS: usize = 200;

/// One field of a payload, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRow {
    /// Dotted, with `[]` for an array's items: `lines[].sku`.
    pub path: String,
    pub kind: String,
    pub required: bool,
    /// The description and the constraints, in words.
    pub notes: String,
}

/// The fields `schema` describes, depth first, in the schema's order.
pub fn field_rows(schema: &Value) -> Vec<FieldRow> {
    let mut rows = Vec::new();
    collect(schema, "", 0, &mut rows);
    rows
}

fn collect(schema: &Value, prefix: &str, depth: usize, rows: &mut Vec<FieldRow>) {
    if depth >= MAX_FIELD_DEPTH {
        return;
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, field) in properties {
            if rows.len() >= MAX_FIELD_ROWS {
                return;
            }
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            rows.push(FieldRow {
                path: path.clone(),
                kind: kind(field),
                required: required.contains(&name.as_str()),
                notes: notes(field),
            });
            collect(field, &path, depth + 1, rows);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        collect(items, &format!("{prefix}[]"), depth + 1, rows);
    }
}

/// The field's type in words: `string`, `integer or null`, `array of object`.
fn kind(field: &Value) -> String {
    let named = match &field["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if field.get("enum").is_some() => "one of the values".into(),
        _ if field.get("$ref").is_some() => "see the schema".into(),
        _ => "any".into(),
    };
    match field["items"]["type"].as_str() {
        Some(item) if named == "array" => format!("array of {item}"),
        _ => named,
    }
}

/// The field's description and constraints in words.
fn notes(field: &Value) -> String {
    let mut notes = Vec::new();
    if let Some(description) = field["description"].as_str() {
        notes.push(description.to_owned());
    }
    if let Some(values) = field["enum"].as_array() {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        notes.push(format!("one of {}", values.join(", ")));
    }
    if let Some(value) = field.get("const") {
        notes.push(format!("always {value}"));
    }
    for (keyword, words) in [
        ("format", "format"),
        ("pattern", "matches"),
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("exclusiveMinimum", "more than"),
        ("exclusiveMaximum", "less than"),
        ("minLength", "at least this many characters:"),
        ("maxLength", "at most this many characters:"),
        ("minItems", "at least this many items:"),
        ("maxItems", "at most this many items:"),
    ] {
        if let Some(value) = field.get(keyword) {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            notes.push(format!("{words} {value}"));
        }
    }
    notes.join(" · ")
}

/// The catalog: every type with its description.
pub fn event_types(session: &Session, types: &[EventTypeDefinition]) -> Markup {
    layout(
        "Event types",
        Some(session),
        html! {
            h1 { "Event types" }
            p.muted { "The events this service sends you. Subscribe an endpoint to the ones you need; each payload matches its type's schema." }
            @if types.is_empty() {
                p.muted #no-types { "No event types are described yet." }
            } @else {
                table #event-types {
                    thead { tr { th { "Type" } th { "Description" } th { "Payload" } } }
                    tbody {
                        @for t in types {
                            tr {
                                td {
                                    a.mono href={ "/portal/event-types/" (encode(t.name.as_str())) } { (t.name) }
                                    @if t.deprecated { " " span.badge.warn { "deprecated" } }
                                }
                                td { (t.description) }
                                td { @if t.schema.is_some() { "described" } @else { span.muted { "any JSON" } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What sending an example did.
#[derive(Debug)]
pub enum Sent {
    Attempt(Attempt),
    Refused(String),
}

/// One type: description, fields, the schema on request, examples with "send to an endpoint".
pub fn event_type(
    session: &Session,
    definition: &EventTypeDefinition,
    endpoints: &[Endpoint],
    sent: Option<&Sent>,
) -> Markup {
    let name = definition.name.as_str();
    let send_to = format!("/portal/event-types/{}/send", encode(name));
    let enabled: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| e.is_enabled() && e.filter.matches(&definition.name))
        .collect();
    layout(
        name,
        Some(session),
        html! {
            p { a href="/portal/event-types" { "← Event types" } }
            h1 #type-name { code { (name) } }
            @if definition.deprecated {
                div.card.problem #deprecated { "Deprecated: it is still sent, but will stop; move to its replacement." }
            }
            @if !definition.description.is_empty() { p #type-description { (definition.description) } }
            @match sent {
                Some(Sent::Attempt(attempt)) => {
                    div #sent-result class={ "card " (if attempt.succeeded() { "notice" } else { "problem" }) } {
                        "Example sent: "
                        @match attempt.status { Some(status) => { "answered " (status) }, None => { "no answer" } }
                        " in " (attempt.latency.as_millis()) " ms"
                        @if let Some(error) = &attempt.error { " — " (error) }
                    }
                }
                Some(Sent::Refused(why)) => { div.card.problem #sent-result { (why) } }
                None => {}
            }
            h2 { "Payload" }
            @match &definition.schema {
                Some(schema) => {
                    @let rows = field_rows(schema.document());
                    @if rows.is_empty() {
                        p.muted { "The schema names no fields; see it below." }
                    } @else {
                        table #fields {
                            thead { tr { th { "Field" } th { "Type" } th { "Required" } th { "Notes" } } }
                            tbody {
                                @for row in &rows {
                                    tr {
                                        td.mono { (row.path) }
                                        td { (row.kind) }
                                        td { @if row.required { "yes" } @else { span.muted { "no" } } }
                                        td { (row.notes) }
                                    }
                                }
                            }
                        }
                    }
                    details #schema {
                        summary { "JSON Schema (2020-12)" }
                        pre { (pretty(schema.document())) }
                    }
                }
                None => { p.muted { "Any JSON: this type has no schema." } }
            }
            h2 { "Examples" }
            @if definition.examples.is_empty() {
                p.muted #no-examples { "No examples yet." }
            }
            @for (index, example) in definition.examples.iter().enumerate() {
                div.card.example {
                    pre { (pretty(example)) }
                    @if !session.read_only {
                        @if enabled.is_empty() {
                            p.muted { "Add an enabled endpoint subscribed to this type to send it there." }
                        } @else {
                            form.actions method="post" action=(send_to) {
                                (csrf(session))
                                input type="hidden" name="example" value=(index);
                                select name="endpoint" aria-label="Endpoint" {
                                    @for e in &enabled { option value=(e.id) { (e.url) } }
                                }
                                button type="submit" { "Send this example" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schemas_fields_are_listed_with_their_type_requirement_and_constraints() {
        let schema = json!({
            "type": "object",
            "required": ["id", "lines"],
            "properties": {
                "id": {"type": "string", "description": "The invoice.", "pattern": "^inv_"},
                "status": {"enum": ["paid", "void"]},
                "amount": {"type": ["integer", "null"], "minimum": 0},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["sku"],
                        "properties": {"sku": {"type": "string", "maxLength": 32}}
                    }
                }
            }
        });
        let rows = field_rows(&schema);
        let summary: Vec<(&str, &str, bool, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    r.kind.as_str(),
                    r.required,
                    r.notes.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("amount", "integer or null", false, "at least 0"),
                ("id", "string", true, "The invoice. · matches ^inv_"),
                ("lines", "array of object", true, ""),
                (
                    "lines[].sku",
                    "string",
                    true,
                    "at most this many characters: 32"
                ),
                (
                    "status",
                    "one of the values",
                    false,
                    "one of \"paid\", \"void\""
                ),
            ]
        );
    }

    #[test]
    fn a_deep_or_wide_schema_shows_a_bounded_table() {
        let mut deep = json!({"type": "string"});
        for _ in 0..20 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert_eq!(field_rows(&deep).len(), MAX_FIELD_DEPTH);
        let wide: serde_json::Map<String, Value> = (0..500)
            .map(|i| (format!("f{i:03}"), json!({"type": "string"})))
            .collect();
        assert_eq!(
            field_rows(&json!({"properties": wide})).len(),
            MAX_FIELD_ROWS
        );
    }
}
