//! The tables and queues of template.yaml, read as data. CloudFormation's short tags
//! (`!GetAtt`, `!Ref`, `!Sub`) are kept as tagged values; only what provisioning needs is read.
//! Parameters take their defaults unless overridden, as `sam deploy --parameter-overrides`
//! would: the local stack follows `RETRY_SCHEDULE` into the queue's `maxReceiveCount` exactly
//! as the deployed stack does.

use std::{collections::BTreeMap, path::Path};

use serde_norway::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("resource {resource}: {problem}")]
    Invalid { resource: String, problem: String },
}

/// A DynamoDB table as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub logical_id: String,
    /// (name, type) pairs: `S`, `N` or `B`.
    pub attributes: Vec<(String, String)>,
    /// (name, `HASH` | `RANGE`) pairs.
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexDef>,
    pub ttl_attribute: Option<String>,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

/// An SQS queue as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    pub logical_id: String,
    pub visibility_timeout: Option<u64>,
    pub retention_secs: Option<u64>,
    pub redrive: Option<Redrive>,
}

/// Where a queue's messages go after too many receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receive_count: u64,
}

/// The template's tables and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub tables: Vec<TableDef>,
    pub queues: Vec<QueueDef>,
    /// Every resource's logical id and type, for drift checks.
    pub resources: Vec<(String, String)>,
    /// Each function's environment variable names, by logical id.
    pub function_environments: Vec<(String, Vec<String>)>,
    /// The KMS keys' logical ids.
    pub keys: Vec<String>,
    /// The keys that are not symmetric encryption keys: logical id → (`KeySpec`, `KeyUsage`).
    pub key_specs: BTreeMap<String, (String, String)>,
    /// The S3 buckets' logical ids.
    pub buckets: Vec<String>,
    /// Each function's memory in MB (its own `MemorySize`, or the Globals'), for the cost meter.
    pub function_memory: BTreeMap<String, u64>,
    /// Each function's Lambda system log level (`SystemLogLevel`, its own or the Globals'):
    /// at `WARN` the platform's START, END and REPORT lines are not written.
    pub function_system_log_level: BTreeMap<String, String>,
}

/// Parameter values that replace the template's defaults, by parameter name.
pub type Overrides = BTreeMap<String, String>;

impl Template {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        Self::load_with(path, &Overrides::new())
    }

    /// Load with some parameters overridden.
    pub fn load_with(path: impl AsRef<Path>, overrides: &Overrides) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_with(&text, overrides)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, &Overrides::new())
    }

    /// Parse with some parameters overridden.
    pub fn parse_with(text: &str, overrides: &Overrides) -> Result<Self, TemplateError> {
        let mut doc: Value = serde_norway::from_str(text)?;
        apply_overrides(&mut doc, overrides)?;
        let mut template = Template {
            tables: Vec::new(),
            queues: Vec::new(),
            resources: Vec::new(),
            function_environments: Vec::new(),
            keys: Vec::new(),
            key_specs: BTreeMap::new(),
            buckets: Vec::new(),
            function_memory: BTreeMap::new(),
            function_system_log_level: BTreeMap::new(),
        };
        let globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        let Some(resources) = doc.get("Resources").and_then(Value::as_mapping) else {
            return Ok(template);
        };
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let kind = resource
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match kind.as_str() {
                "AWS::DynamoDB::Table" => template.tables.push(table(&id, &props)?),
                "AWS::SQS::Queue" => {
                    template
                        .queues
                        .push(queue(&id, &props, doc.get("Parameters"))?)
                }
                "AWS::KMS::Key" => {
                    template.keys.push(id.clone());
                    let field = |name: &str| props.get(name).and_then(Value::as_str);
                    if let (Some(spec), Some(usage)) = (field("KeySpec"), field("KeyUsage")) {
                        template
                            .key_specs
                            .insert(id.clone(), (spec.to_owned(), usage.to_owned()));
                    }
                }
                "AWS::S3::Bucket" => template.buckets.push(id.clone()),
                "AWS::Serverless::Function" => {
                    let names = props
                        .get("Environment")
                        .and_then(|e| e.get("Variables"))
                        .and_then(Value::as_mapping)
                        .map(|vars| {
                            vars.keys()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    template.function_environments.push((id.clone(), names));
                    let memory = props
                        .get("MemorySize")
                        .or_else(|| globals.get("MemorySize"));
                    if let Some(mb) = memory.and_then(Value::as_u64) {
                        template.function_memory.insert(id.clone(), mb);
                    }
                    let level = |v: &Value| {
                        v.get("LoggingConfig")
                            .and_then(|l| l.get("SystemLogLevel"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    if let Some(level) = level(&props).or_else(|| level(&globals)) {
                        template.function_system_log_level.insert(id.clone(), level);
                    }
                }
                _ => {}
            }
            template.resources.push((id, kind));
        }
        Ok(template)
    }

    pub fn table(&self, logical_id: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    pub fn queue(&self, logical_id: &str) -> Option<&QueueDef> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }
}

/// Replace each overridden parameter's `Default`, refusing names the template does not declare
/// (a typo would otherwise be ignored in silence).
fn apply_overrides(doc: &mut Value, overrides: &Overrides) -> Result<(), TemplateError> {
    for (name, value) in overrides {
        let parameter = doc
            .get_mut("Parameters")
            .and_then(|p| p.get_mut(name.as_str()))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| invalid("Parameters", format!("no parameter {name} to override")))?;
        parameter.insert(Value::from("Default"), Value::from(value.as_str()));
    }
    Ok(())
}

fn invalid(resource: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.to_owned(),
        problem: problem.into(),
    }
}

fn pairs(
    id: &str,
    list: Option<&Value>,
    name: &str,
    value: &str,
) -> Result<Vec<(String, String)>, TemplateError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let items = list
        .as_sequence()
        .ok_or_else(|| invalid(id, format!("expected a list of {name}/{value}")))?;
    items
        .iter()
        .map(|item| {
            let get = |field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
            match (get(name), get(value)) {
                (Some(n), Some(v)) => Ok((n, v)),
                _ => Err(invalid(id, format!("an entry lacks {name} or {value}"))),
            }
        })
        .collect()
}

fn table(id: &str, props: &Value) -> Result<TableDef, TemplateError> {
    let key_schema = pairs(id, props.get("KeySchema"), "AttributeName", "KeyType")?;
    if key_schema.is_empty() {
        return Err(invalid(id, "no KeySchema"));
    }
    let mut indexes = Vec::new();
    for gsi in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = gsi
            .get("IndexName")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(id, "an index has no IndexName"))?;
        let projection = gsi.get("Projection");
        indexes.push(IndexDef {
            name: name.to_owned(),
            key_schema: pairs(id, gsi.get("KeySchema"), "AttributeName", "KeyType")?,
            projection_type: projection
                .and_then(|p| p.get("ProjectionType"))
                .and_then(Value::as_str)
                .unwrap_or("ALL")
                .to_owned(),
            non_key_attributes: projection
                .and_then(|p| p.get("NonKeyAttributes"))
                .and_then(Value::as_sequence)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let ttl = props.get("TimeToLiveSpecification");
    let ttl_enabled = ttl
        .and_then(|t| t.get("Enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(TableDef {
        logical_id: id.to_owned(),
        attributes: pairs(
            id,
            props.get("AttributeDefinitions"),
            "AttributeName",
            "AttributeType",
        )?,
        key_schema,
        indexes,
        ttl_attribute: ttl
            .filter(|_| ttl_enabled)
            .and_then(|t| t.get("AttributeName"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn queue(id: &str, props: &Value, parameters: Option<&Value>) -> Result<QueueDef, TemplateError> {
    let number = |field: &str, value: Option<&Value>| whole_number(id, field, value, parameters);
    let redrive = match props.get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let target = policy
                .get("deadLetterTargetArn")
                .and_then(get_att_logical_id)
                .ok_or_else(|| invalid(id, "deadLetterTargetArn must be !GetAtt <Queue>.Arn"))?;
            let max = number("maxReceiveCount", policy.get("maxReceiveCount"))?
                .ok_or_else(|| invalid(id, "RedrivePolicy has no maxReceiveCount"))?;
            Some(Redrive {
                dead_letter_queue: target,
                max_receive_count: max,
            })
        }
    };
    Ok(QueueDef {
        logical_id: id.to_owned(),
        visibility_timeout: number("VisibilityTimeout", props.get("VisibilityTimeout"))?,
        retention_secs: number(
            "MessageRetentionPeriod",
            props.get("MessageRetentionPeriod"),
        )?,
        redrive,
    })
}

/// A whole number written as a literal, a quoted literal (CloudFormation accepts both) or
/// `!Ref` to a parameter with a default. Anything else is refused rather than skipped: a
/// setting dropped in silence would make the local queue differ from the deployed one.
fn whole_number(
    id: &str,
    field: &str,
    value: Option<&Value>,
    parameters: Option<&Value>,
) -> Result<Option<u64>, TemplateError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Some(list) = intrinsic(value, "Length") {
        return list_length(id, field, list, parameters).map(Some);
    }
    let value = resolve_ref(id, field, value, parameters)?;
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .map(Some)
        .ok_or_else(|| invalid(id, format!("{field} is not a whole number")))
}

/// A parameter's value for `!Ref Name`, or the value itself.
fn resolve_ref<'a>(
    id: &str,
    field: &str,
    value: &'a Value,
    parameters: Option<&'a Value>,
) -> Result<&'a Value, TemplateError> {
    match ref_name(value) {
        Some(name) => parameters
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("Default"))
            .ok_or_else(|| invalid(id, format!("{field}: parameter {name} has no Default"))),
        None => Ok(value),
    }
}

/// `Fn::Length` of a list, or of `!Split [delimiter, text-or-!Ref]` (the
/// `AWS::LanguageExtensions` transform's reading).
fn list_length(
    id: &str,
    field: &str,
    list: &Value,
    parameters: Option<&Value>,
) -> Result<u64, TemplateError> {
    let Some(split) = intrinsic(list, "Split") else {
        return list
            .as_sequence()
            .map(|items| items.len() as u64)
            .ok_or_else(|| invalid(id, format!("{field}: Fn::Length of something not a list")));
    };
    let split = split
        .as_sequence()
        .filter(|parts| parts.len() == 2)
        .ok_or_else(|| invalid(id, format!("{field}: Fn::Split needs two arguments")))?;
    let delimiter = split[0]
        .as_str()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| invalid(id, format!("{field}: Fn::Split needs a delimiter")))?;
    let text = resolve_ref(id, field, &split[1], parameters)?
        .as_str()
        .ok_or_else(|| invalid(id, format!("{field}: Fn::Split of something not text")))?;
    Ok(text.split(delimiter).count() as u64)
}

/// The argument of `!Name x` or `{"Fn::Name": x}`.
fn intrinsic<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Value::Mapping(map) => map.get(format!("Fn::{name}").as_str()),
        _ => None,
    }
}

/// The parameter name in `!Ref Name` or `{"Ref": Name}`.
fn ref_name(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(map) => map.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// The logical id in `!GetAtt X.Arn` or `{"Fn::GetAtt": [X, Arn]}`.
fn get_att_logical_id(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged
            .value
            .as_str()
            .and_then(|s| s.split('.').next())
            .map(str::to_owned),
        Value::Mapping(map) => map
            .get("Fn::GetAtt")
            .and_then(Value::as_sequence)
            .and_then(|parts| parts.first())
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Template {
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml parses")
    }

    #[test]
    fn reads_the_events_table_with_its_status_index_and_ttl() {
        let template = real();
        let events = template.table("EventsTable").expect("EventsTable");
        assert_eq!(events.key_schema, [("pk".to_owned(), "HASH".to_owned())]);
        assert_eq!(events.ttl_attribute.as_deref(), Some("expires_at"));
        let index = &events.indexes[0];
        assert_eq!(index.name, "by_tenant_status");
        assert_eq!(index.projection_type, "INCLUDE");
        assert!(index.non_key_attributes.iter().any(|a| a == "last_error"));
        assert!(
            !index.non_key_attributes.iter().any(|a| a == "payload"),
            "payloads stay out of the index"
        );
    }

    #[test]
    fn reads_the_redrive_policy_through_get_att() {
        let template = real();
        let queue = template.queue("EventsQueue").expect("EventsQueue");
        assert_eq!(
            queue.redrive,
            Some(Redrive {
                dead_letter_queue: "EventsDeadLetterQueue".into(),
                max_receive_count: 6
            })
        );
        assert_eq!(queue.visibility_timeout, Some(180));
        assert!(template.queue("EventsDeadLetterQueue").is_some());
    }

    #[test]
    fn reads_every_table_and_queue_of_the_real_template() {
        let template = real();
        let keys = |id: &str| {
            template
                .table(id)
                .unwrap_or_else(|| panic!("{id}"))
                .key_schema
                .iter()
                .map(|(name, kind)| format!("{name}:{kind}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys("EventsTable"), ["pk:HASH"]);
        assert_eq!(keys("TenantsTable"), ["tenant:HASH", "provider:RANGE"]);
        assert_eq!(keys("ProjectionsTable"), ["pk:HASH", "sk:RANGE"]);

        let index = &template.table("EventsTable").expect("EventsTable").indexes[0];
        assert_eq!(
            index.key_schema,
            [
                ("tenant_status".to_owned(), "HASH".to_owned()),
                ("status_at".to_owned(), "RANGE".to_owned())
            ]
        );
        assert_eq!(
            index.non_key_attributes,
            [
                "tenant",
                "provider",
                "event_id",
                "event_type",
                "status",
                "attempts",
                "retry_exhausted",
                "last_error",
                "received_at",
                "enqueued_at",
                "completed_at",
                "duplicates",
                "replay_count"
            ]
        );

        let dlq = template.queue("EventsDeadLetterQueue").expect("DLQ");
        assert_eq!(dlq.retention_secs, Some(1_209_600));
        assert_eq!(dlq.redrive, None);
        let queue = template.queue("EventsQueue").expect("EventsQueue");
        assert_eq!(queue.retention_secs, Some(345_600));
    }

    #[test]
    fn long_form_get_att_works_too() {
        let text = r#"
Resources:
  Dlq: { Type: "AWS::SQS::Queue" }
  Q:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [Dlq, Arn] }, maxReceiveCount: 3 }
"#;
        let template = Template::parse(text).expect("parses");
        assert_eq!(
            template
                .queue("Q")
                .and_then(|q| q.redrive.clone())
                .map(|r| r.dead_letter_queue),
            Some("Dlq".into())
        );
    }

    #[test]
    fn queue_numbers_may_be_quoted_or_parameters() {
        let text = r#"
Parameters:
  Visibility: { Type: Number, Default: 42 }
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Visibility
      MessageRetentionPeriod: "600"
"#;
        let template = Template::parse(text).expect("parses");
        let queue = template.queue("Q").expect("Q");
        assert_eq!(queue.visibility_timeout, Some(42));
        assert_eq!(queue.retention_secs, Some(600));
    }

    #[test]
    fn a_receive_count_follows_the_length_of_an_overridden_schedule() {
        let text = r#"
Parameters:
  Schedule: { Type: String, Default: "0,60,300" }
Resources:
  Dlq: { Type: "AWS::SQS::Queue" }
  Q:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount:
          Fn::Length: !Split [",", !Ref Schedule]
  Long:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy:
        deadLetterTargetArn: { "Fn::GetAtt": [Dlq, Arn] }
        maxReceiveCount: { "Fn::Length": [a, b] }
"#;
        let count = |template: &Template, id: &str| {
            template
                .queue(id)
                .and_then(|q| q.redrive.clone())
                .map(|r| r.max_receive_count)
        };
        let defaults = Template::parse(text).expect("parses");
        assert_eq!(count(&defaults, "Q"), Some(3));
        assert_eq!(count(&defaults, "Long"), Some(2));
        let overrides = Overrides::from([("Schedule".to_owned(), "0,1,1,1,1,1,1".to_owned())]);
        let overridden = Template::parse_with(text, &overrides).expect("parses");
        assert_eq!(count(&overridden, "Q"), Some(7));
        let typo = Overrides::from([("Schedul".to_owned(), "0".to_owned())]);
        assert!(Template::parse_with(text, &typo).is_err());
    }

    #[test]
    fn a_queue_setting_that_cannot_be_read_is_refused_not_dropped() {
        let text = r#"
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Sub "${AWS::NoValue}"
"#;
        let err = Template::parse(text).expect_err("unreadable number");
        assert_eq!(
            err.to_string(),
            "resource Q: VisibilityTimeout is not a whole number"
        );
    }

    #[test]
    fn a_table_without_keys_is_refused_by_name() {
        let text = "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties: {}\n";
        let err = Template::parse(text).expect_err("no keys");
        assert_eq!(err.to_string(), "resource T: no KeySchema");
    }

    #[test]
    fn the_ingress_environment_names_the_resources_its_code_reads() {
        let template = real();
        let (_, vars) = template
            .function_environments
            .iter()
            .find(|(id, _)| id == "IngressFunction")
            .expect("IngressFunction");
        for required in [
            "EVENTS_TABLE",
            "TENANTS_TABLE",
            "EVENTS_QUEUE_URL",
            "MAX_BODY_BYTES",
            "TENANT_CACHE_TTL_SECS",
        ] {
            assert!(
                vars.iter().any(|v| v == required),
                "{required} missing from template.yaml"
            );
        }
    }
}
