//! `hookctl event-type add | update | list | show | deprecate`: a tenant's event catalog, the
//! same use cases the publish API's `/v1/tenants/{tenant}/event-types` runs. A schema and each
//! example are read from JSON files.

use std::{io::Write, path::PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;
use shared::{
    clock::Clock,
    ids::TenantId,
    outbound::{
        Outbound,
        catalog::{CatalogError, EventTypeChange, EventTypeDefinition},
        ids::EventType,
        ports::OutboundStore,
    },
};

use crate::{
    CliError,
    args::parse_tenant,
    endpoints::{TenantArg, read_json},
    output::{Out, sanitize, sanitize_keeping, table, timestamp},
};

#[derive(Debug, Subcommand)]
pub enum EventTypeCommand {
    /// Register an event type; publishes of it are checked against its schema from then on.
    Add(EventTypeArgs),
    /// Change a registered type's description, schema or examples.
    Update(EventTypeArgs),
    /// A tenant's event types.
    List(TenantArg),
    /// One event type, with its schema and examples.
    Show(TypeRef),
    /// Mark a type deprecated (still published; partners see it marked), or undo it.
    Deprecate(DeprecateArgs),
}

#[derive(Debug, Args)]
pub struct TypeRef {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// The event type (`invoice.paid`).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct EventTypeArgs {
    #[command(flatten)]
    pub event_type: TypeRef,
    #[arg(long)]
    pub description: Option<String>,
    /// A JSON Schema (2020-12) file its payloads must match.
    #[arg(long, value_name = "FILE", conflicts_with = "no_schema")]
    pub schema: Option<PathBuf>,
    /// Remove the schema: any JSON payload is accepted.
    #[arg(long)]
    pub no_schema: bool,
    /// A JSON file holding one example payload; repeat for several (replaces the examples).
    #[arg(long = "example", value_name = "FILE")]
    pub examples: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeprecateArgs {
    #[command(flatten)]
    pub event_type: TypeRef,
    /// Take the deprecation back.
    #[arg(long)]
    pub undo: bool,
}

impl From<CatalogError> for CliError {
    fn from(e: CatalogError) -> Self {
        Self::Outbound(e.to_string())
    }
}

/// Run one `event-type` subcommand.
pub async fn event_type<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    command: EventTypeCommand,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: OutboundStore,
    C: Clock,
{
    match command {
        EventTypeCommand::Add(args) => {
            let TypeRef { tenant, name } = &args.event_type;
            let change = change(&args)?;
            let added = outbound.register_event_type(tenant, name, change).await?;
            describe(&added, out)?;
        }
        EventTypeCommand::Update(args) => {
            let TypeRef { tenant, name } = &args.event_type;
            let name = parse_type(name)?;
            let updated = outbound
                .update_event_type(tenant, &name, change(&args)?)
                .await?;
            describe(&updated, out)?;
        }
        EventTypeCommand::Deprecate(args) => {
            let TypeRef { tenant, name } = &args.event_type;
            let change = EventTypeChange {
                deprecated: Some(!args.undo),
                ..EventTypeChange::default()
            };
            let updated = outbound
                .update_event_type(tenant, &parse_type(name)?, change)
                .await?;
            describe(&updated, out)?;
        }
        EventTypeCommand::List(TenantArg { tenant }) => {
            let types = outbound.event_types(&tenant).await?;
            if out.json() {
                let listed: Vec<_> = types.iter().map(EventTypeDefinition::to_json).collect();
                return out.document(&serde_json::json!({ "event_types": listed }));
            }
            let rows: Vec<[String; 4]> = types
                .iter()
                .map(|t| {
                    [
                        t.name.to_string(),
                        if t.schema.is_some() { "yes" } else { "no" }.into(),
                        if t.deprecated { "deprecated" } else { "" }.into(),
                        sanitize(&t.description),
                    ]
                })
                .collect();
            table(out, ["TYPE", "SCHEMA", "STATE", "DESCRIPTION"], &rows)?;
        }
        EventTypeCommand::Show(TypeRef { tenant, name }) => {
            let found = outbound.event_type(&tenant, &parse_type(&name)?).await?;
            if out.json() {
                return out.document(&found.to_json());
            }
            describe(&found, out)?;
            if let Some(schema) = &found.schema {
                writeln!(out, "schema\n{}", pretty(schema.document()))?;
            }
            for (n, example) in found.examples.iter().enumerate() {
                writeln!(out, "example {}\n{}", n + 1, pretty(example))?;
            }
        }
    }
    Ok(())
}

fn parse_type(name: &str) -> Result<EventType, CliError> {
    EventType::parse(name).map_err(|e| CliError::Outbound(e.to_string()))
}

/// What the flags ask to change; files are read here, and must hold JSON.
fn change(args: &EventTypeArgs) -> Result<EventTypeChange, CliError> {
    let json = |path: &PathBuf| -> Result<Value, CliError> {
        serde_json::from_slice(&read_json(path)?)
            .map_err(|e| CliError::Outbound(format!("{} is not JSON: {e}", path.display())))
    };
    Ok(EventTypeChange {
        description: args.description.clone(),
        schema: match (&args.schema, args.no_schema) {
            (Some(path), _) => Some(json(path)?),
            (None, true) => Some(Value::Null),
            (None, false) => None,
        },
        examples: if args.examples.is_empty() {
            None
        } else {
            Some(args.examples.iter().map(json).collect::<Result<_, _>>()?)
        },
        deprecated: None,
    })
}

/// The type's fields; with `--output json`, the API's JSON form of it.
fn describe(t: &EventTypeDefinition, out: &mut Out<'_>) -> Result<(), CliError> {
    if out.json() {
        return out.document(&t.to_json());
    }
    writeln!(out, "event type   {}", t.name)?;
    if !t.description.is_empty() {
        writeln!(out, "description  {}", sanitize(&t.description))?;
    }
    writeln!(
        out,
        "schema       {}",
        if t.schema.is_some() {
            "yes: publishes are checked against it"
        } else {
            "none: any JSON"
        }
    )?;
    writeln!(out, "examples     {}", t.examples.len())?;
    if t.deprecated {
        writeln!(out, "state        deprecated")?;
    }
    writeln!(out, "updated      {}", timestamp(t.updated_at))?;
    Ok(())
}

/// Pretty JSON, terminal-safe with its line breaks kept.
fn pretty(value: &Value) -> String {
    sanitize_keeping(
        &serde_json::to_string_pretty(value).unwrap_or_default(),
        &['\n'],
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::{
        clock::ManualClock,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore},
        outbound::OutboundSettings,
    };

    use super::*;

    type TestOutbound = Outbound<MemoryOutboundStore, Arc<MemoryDeliveryQueue>, ManualClock>;

    fn outbound() -> TestOutbound {
        Outbound::new(
            MemoryOutboundStore::new(),
            Arc::new(MemoryDeliveryQueue::new()),
            ManualClock::at_unix(1_750_000_000),
            OutboundSettings::default(),
        )
    }

    async fn run(o: &TestOutbound, command: EventTypeCommand) -> Result<String, CliError> {
        let mut out = Vec::new();
        event_type(o, command, &mut Out::text(&mut out)).await?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    fn file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn args(name: &str) -> EventTypeArgs {
        EventTypeArgs {
            event_type: TypeRef {
                tenant: TenantId::parse("acme").expect("tenant"),
                name: name.into(),
            },
            description: None,
            schema: None,
            no_schema: false,
            examples: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_type_is_added_with_its_schema_listed_shown_and_deprecated() {
        let o = outbound();
        let dir = std::env::temp_dir().join(format!("hookctl-types-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let schema = file(
            &dir,
            "schema.json",
            r#"{"type":"object","required":["id"]}"#,
        );
        let good = file(&dir, "good.json", r#"{"id":"inv_1"}"#);
        let bad = file(&dir, "bad.json", r#"{"amount":1}"#);

        let refused = run(
            &o,
            EventTypeCommand::Add(EventTypeArgs {
                schema: Some(schema.clone()),
                examples: vec![good.clone(), bad],
                ..args("invoice.paid")
            }),
        )
        .await;
        assert!(
            matches!(&refused, Err(CliError::Outbound(m)) if m.contains("example 1") && m.contains("required")),
            "{refused:?}"
        );
        let added = run(
            &o,
            EventTypeCommand::Add(EventTypeArgs {
                description: Some("An invoice was paid.".into()),
                schema: Some(schema),
                examples: vec![good],
                ..args("invoice.paid")
            }),
        )
        .await
        .expect("added");
        assert!(added.contains("schema       yes"), "{added}");

        let listed = run(
            &o,
            EventTypeCommand::List(TenantArg {
                tenant: TenantId::parse("acme").expect("tenant"),
            }),
        )
        .await
        .expect("list");
        assert!(listed.contains("invoice.paid") && listed.contains("An invoice was paid."));
        let deprecated = run(
            &o,
            EventTypeCommand::Deprecate(DeprecateArgs {
                event_type: args("invoice.paid").event_type,
                undo: false,
            }),
        )
        .await
        .expect("deprecated");
        assert!(deprecated.contains("deprecated"), "{deprecated}");
        let shown = run(&o, EventTypeCommand::Show(args("invoice.paid").event_type))
            .await
            .expect("show");
        assert!(shown.contains("\"required\": [\n"), "{shown}");
        assert!(
            shown.contains("example 1\n{\n  \"id\": \"inv_1\"\n}"),
            "{shown}"
        );
        let mut json = Vec::new();
        event_type(
            &o,
            EventTypeCommand::List(TenantArg {
                tenant: TenantId::parse("acme").expect("tenant"),
            }),
            &mut Out::new(&mut json, crate::output::Format::Json),
        )
        .await
        .expect("listed");
        let listed: Value = serde_json::from_slice(&json).expect("one JSON document");
        assert_eq!(listed["event_types"][0]["name"], "invoice.paid");
        assert_eq!(listed["event_types"][0]["deprecated"], true);
        let missing = run(&o, EventTypeCommand::Show(args("invoice.void").event_type)).await;
        assert!(matches!(missing, Err(CliError::Outbound(m)) if m.contains("not registered")));
        std::fs::remove_dir_all(dir).ok();
    }
}
