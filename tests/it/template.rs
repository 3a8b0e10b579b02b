//! template.yaml against the code, with no emulator: the settings each function reads, the
//! resources they name, the key schema the adapters write, the queues' redrive and timing, the
//! IAM statements and the metric names the alarms watch. A rename on one side fails here, not
//! in a deployment.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
};

use local_stack::{
    provision::{
        DEAD_LETTER_QUEUE, DELIVERIES_DLQ, DELIVERIES_QUEUE, EVENTS_QUEUE, EVENTS_TABLE,
        OUTBOUND_TABLE, PAYLOADS_BUCKET, PORTAL_LINK_KEY, PROJECTIONS_TABLE, SECRETS_KEY,
        SLOW_DELIVERIES_QUEUE, TENANTS_TABLE,
    },
    template::{Overrides, Template},
};
use serde_norway::Value;
use shared::{
    aws::{STATUS_INDEX, SUMMARY_ATTRIBUTES},
    metrics,
    outbound::dispatch::names as outbound,
    projection::RESERVED_ATTRIBUTES,
};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The adapters' sources: their item builders are crate-private, so the attribute names they
/// write are read from the code itself. (The pipeline tests write real items through them.)
const EVENTS_ADAPTER: &str = concat!(
    include_str!("../../shared/src/adapters/events/dynamodb/mod.rs"),
    include_str!("../../shared/src/adapters/events/dynamodb/records.rs"),
);
const TENANTS_ADAPTER: &str = include_str!("../../shared/src/adapters/tenants/dynamodb.rs");
const PROCESSING_ADAPTER: &str =
    include_str!("../../shared/src/adapters/events/dynamodb/commit.rs");

/// Which resource each resource-naming variable must point at, in every function.
const RESOURCE_VARIABLES: [(&str, &str); 12] = [
    ("SECRETS_KEY_ID", SECRETS_KEY),
    ("SLOW_DELIVERIES_QUEUE_URL", SLOW_DELIVERIES_QUEUE),
    ("PORTAL_LINK_KEY_ID", PORTAL_LINK_KEY),
    ("OUTBOUND_TABLE", OUTBOUND_TABLE),
    ("DELIVERIES_QUEUE_URL", DELIVERIES_QUEUE),
    ("DELIVERIES_DLQ_URL", DELIVERIES_DLQ),
    ("PAYLOADS_BUCKET", PAYLOADS_BUCKET),
    ("EVENTS_TABLE", EVENTS_TABLE),
    ("TENANTS_TABLE", TENANTS_TABLE),
    ("PROJECTIONS_TABLE", PROJECTIONS_TABLE),
    ("EVENTS_QUEUE_URL", EVENTS_QUEUE),
    ("DEAD_LETTER_QUEUE_URL", DEAD_LETTER_QUEUE),
];

fn parsed() -> Template {
    Template::parse(TEMPLATE).expect("template.yaml parses")
}

fn doc() -> Value {
    serde_norway::from_str(TEMPLATE).expect("template.yaml is YAML")
}

fn resource<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc.get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("template.yaml has no {id}"))
}

/// The target of `!Ref X`.
fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A function's environment as it would be deployed with the parameters' defaults; a
/// reference to a resource stands for that resource's name or URL.
fn environment(doc: &Value, function: &str) -> BTreeMap<String, String> {
    let variables = resource(doc, function)
        .get("Properties")
        .and_then(|p| p.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{function} has no environment"));
    variables
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().expect("variable name").to_owned();
            let value = match ref_target(value) {
                Some(target) => match doc.get("Parameters").and_then(|p| p.get(target)) {
                    Some(parameter) => parameter
                        .get("Default")
                        .and_then(scalar)
                        .unwrap_or_else(|| panic!("{name}: parameter {target} has no Default")),
                    None => format!("resource:{target}"),
                },
                None => scalar(value).unwrap_or_else(|| panic!("{name}: unreadable value")),
            };
            (name, value)
        })
        .collect()
}

/// Load a function's configuration from the template's values, recording every variable the
/// code asks for.
fn load<T, E: std::fmt::Display>(
    environment: &BTreeMap<String, String>,
    from_lookup: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<T, E>,
) -> (T, BTreeSet<String>) {
    let asked = RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        environment.get(name).cloned()
    };
    let config = from_lookup(&lookup)
        .unwrap_or_else(|e| panic!("the template's environment does not load: {e}"));
    (config, asked.into_inner())
}

fn keys(set: &BTreeMap<String, String>) -> BTreeSet<String> {
    set.keys().cloned().collect()
}

fn number(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is not a literal whole number"))
}

fn timeout(doc: &Value, function: &str) -> u64 {
    number(
        &resource(doc, function)["Properties"]["Timeout"],
        &format!("{function} Timeout"),
    )
}

#[test]
fn the_ingress_reads_exactly_the_settings_the_template_gives_it() {
    let doc = doc();
    let env = environment(&doc, "IngressFunction");

    let (config, asked) = load(&env, |lookup| ingress::Config::from_lookup(lookup));

    assert_eq!(
        asked,
        keys(&env),
        "variables read by the code vs set by the template"
    );
    assert_eq!(config.events_table, format!("resource:{EVENTS_TABLE}"));
    assert_eq!(config.tenants_table, format!("resource:{TENANTS_TABLE}"));
    assert_eq!(config.events_queue_url, format!("resource:{EVENTS_QUEUE}"));
}

#[test]
fn the_processor_reads_exactly_the_settings_the_template_gives_it() {
    let doc = doc();
    let env = environment(&doc, "ProcessorFunction");

    let (config, asked) = load(&env, |lookup| processor::Config::from_lookup(lookup));

    assert_eq!(
        asked,
        keys(&env),
        "variables read by the code vs set by the template"
    );
    assert_eq!(
        config.projections_table,
        format!("resource:{PROJECTIONS_TABLE}")
    );
    assert_eq!(
        config.dead_letter_queue_url,
        format!("resource:{DEAD_LETTER_QUEUE}")
    );

    // The retry schedule and the queue's redrive describe the same attempts.
    let queue = parsed().queue(EVENTS_QUEUE).cloned().expect("events queue");
    let redrive = queue.redrive.expect("the events queue redrives");
    assert_eq!(redrive.dead_letter_queue, DEAD_LETTER_QUEUE);
    assert_eq!(
        u64::from(config.settings.schedule.max_attempts()),
        redrive.max_receive_count,
        "RETRY_SCHEDULE has one entry per receive before the DLQ"
    );
    // A live processor never loses its lease, and a message stays hidden through six tries
    // of a slow invocation (AWS's guidance for SQS event sources).
    let processor_timeout = timeout(&doc, "ProcessorFunction");
    assert!(config.settings.lease.as_secs() > processor_timeout);
    assert!(queue.visibility_timeout.expect("visibility timeout") >= 6 * processor_timeout);
    let dlq = parsed().queue(DEAD_LETTER_QUEUE).cloned().expect("dlq");
    assert_eq!(dlq.retention_secs, Some(14 * 24 * 60 * 60));
}

#[test]
fn the_portal_reads_the_settings_the_template_gives_it() {
    let doc = doc();
    let env = environment(&doc, "PortalFunction");

    let (config, asked) = load(&env, |lookup| portal::Config::from_lookup(lookup));

    let unread: Vec<_> = keys(&env).difference(&asked).cloned().collect();
    assert!(
        unread.is_empty(),
        "set by the template, never read: {unread:?}"
    );
    assert_eq!(config.link_key, format!("resource:{PORTAL_LINK_KEY}"));
    assert_eq!(
        config.dispatcher.outbound_table,
        format!("resource:{OUTBOUND_TABLE}")
    );
    // Test events from the portal go through the same SSRF guard as every delivery.
    assert_eq!(
        config.dispatcher.settings.egress,
        shared::outbound::ssrf::EgressPolicy::PUBLIC
    );
}

#[test]
fn a_deploy_time_retry_schedule_moves_the_queues_receives_with_it() {
    for schedule in [
        "0",
        "0,5",
        "0,60,300,1800,7200,43200",
        "0,1,1,1,1,1,1,1,1,1",
    ] {
        // `sam deploy --parameter-overrides RetrySchedule=...`
        let overrides = Overrides::from([("RetrySchedule".to_owned(), schedule.to_owned())]);
        let template = Template::parse_with(TEMPLATE, &overrides).expect("template parses");
        let mut doc = doc();
        doc["Parameters"]["RetrySchedule"]["Default"] = Value::from(schedule);
        for function in ["ProcessorFunction", "ReplayFunction"] {
            let env = environment(&doc, function);
            assert_eq!(env["RETRY_SCHEDULE"], schedule, "{function}");
        }
        let (config, _) = load(&environment(&doc, "ProcessorFunction"), |lookup| {
            processor::Config::from_lookup(lookup)
        });
        let receives = template
            .queue(EVENTS_QUEUE)
            .and_then(|q| q.redrive.clone())
            .expect("redrive")
            .max_receive_count;
        assert_eq!(
            u64::from(config.settings.schedule.max_attempts()),
            receives,
            "{schedule}"
        );
    }
}

#[test]
fn replay_reads_exactly_the_settings_the_template_gives_it() {
    let doc = doc();
    let env = environment(&doc, "ReplayFunction");

    let (config, asked) = load(&env, |lookup| replay::Config::from_lookup(lookup));

    assert_eq!(
        asked,
        keys(&env),
        "variables read by the code vs set by the template"
    );
    assert_eq!(config.tenants_table, format!("resource:{TENANTS_TABLE}"));
    assert_eq!(
        config.dead_letter_queue_url,
        format!("resource:{DEAD_LETTER_QUEUE}")
    );
    // Reconcile must not take an event from a processor that still holds its lease.
    let processor = environment(&doc, "ProcessorFunction");
    let lease: u64 = processor["LEASE_SECS"].parse().expect("lease");
    assert!(config.settings.stuck_after.as_secs() > lease);

    // The schedule's input is an action the function accepts (unknown fields are refused).
    let input = resource(&doc, "ReplayFunction")["Properties"]["Events"]["Reconcile"]["Properties"]
        ["Input"]
        .as_str()
        .expect("the reconcile schedule's input");
    let action: shared::operations::Action =
        serde_json::from_str(input).expect("the schedule's input is a replay action");
    assert_eq!(action.name(), "reconcile");
}

#[test]
fn every_function_names_the_right_resources() {
    let doc = doc();
    let template = parsed();
    assert!(!template.function_environments.is_empty());
    for (function, _) in &template.function_environments {
        let variables = resource(&doc, function)["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        for (variable, expected) in RESOURCE_VARIABLES {
            if let Some(value) = variables.get(variable) {
                assert_eq!(
                    ref_target(value),
                    Some(expected),
                    "{function}: {variable} must be !Ref {expected}"
                );
            }
        }
    }
}

#[test]
fn the_key_schema_is_the_one_the_adapters_write() {
    let template = parsed();
    let pairs = |list: &[(String, String)]| -> Vec<String> {
        list.iter().map(|(n, k)| format!("{n}:{k}")).collect()
    };

    let events = template.table(EVENTS_TABLE).expect("events table");
    assert_eq!(pairs(&events.key_schema), ["pk:HASH"]);
    assert_eq!(events.ttl_attribute.as_deref(), Some("expires_at"));
    let status = events
        .indexes
        .iter()
        .find(|i| i.name == STATUS_INDEX)
        .expect("the status index the listings query");
    assert_eq!(
        pairs(&status.key_schema),
        ["tenant_status:HASH", "status_at:RANGE"]
    );
    // A listing reads these from the index; one not projected would come back missing.
    for attribute in SUMMARY_ATTRIBUTES {
        let is_key = ["pk", "tenant_status", "status_at"].contains(&attribute);
        assert!(
            is_key || status.non_key_attributes.iter().any(|a| a == attribute),
            "{attribute} is not projected into {}",
            status.name
        );
    }
    for index in &events.indexes {
        assert!(
            !index.non_key_attributes.iter().any(|a| a == "payload"),
            "payloads stay out of {}",
            index.name
        );
        for (attribute, _) in &index.key_schema {
            assert!(
                EVENTS_ADAPTER.contains(&format!("\"{attribute}\"")),
                "the events adapter never writes {attribute}, the key of {}",
                index.name
            );
        }
    }
    for attribute in ["pk", "tenant_status", "status_at", "expires_at"] {
        assert!(
            EVENTS_ADAPTER.contains(&format!("\"{attribute}\"")),
            "{attribute}"
        );
    }

    let tenants = template.table(TENANTS_TABLE).expect("tenants table");
    assert_eq!(
        pairs(&tenants.key_schema),
        ["tenant:HASH", "provider:RANGE"]
    );
    for attribute in ["tenant", "provider"] {
        assert!(
            TENANTS_ADAPTER.contains(&format!("\"{attribute}\"")),
            "{attribute}"
        );
    }

    let projections = template
        .table(PROJECTIONS_TABLE)
        .expect("projections table");
    assert_eq!(pairs(&projections.key_schema), ["pk:HASH", "sk:RANGE"]);
    assert_eq!(&RESERVED_ATTRIBUTES[..2], ["pk", "sk"]);
    assert!(PROCESSING_ADAPTER.contains("(\"sk\".to_owned()"));

    // Every key attribute is declared, and only key attributes are (CloudFormation refuses
    // the others).
    for table in &template.tables {
        let declared: BTreeSet<&str> = table.attributes.iter().map(|(n, _)| n.as_str()).collect();
        let used: BTreeSet<&str> = table
            .key_schema
            .iter()
            .chain(table.indexes.iter().flat_map(|i| &i.key_schema))
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(declared, used, "{}", table.logical_id);
    }
}

/// Every IAM statement the template grants, with the resource it belongs to: roles' inline
/// policies, managed policies, and any SAM `Policies` left on a function.
fn statements(doc: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (id, resource) in doc["Resources"].as_mapping().expect("resources") {
        let id = id.as_str().unwrap_or_default().to_owned();
        let properties = &resource["Properties"];
        let mut documents: Vec<&Value> = properties["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|p| match p.get("PolicyDocument") {
                Some(document) => document,
                None => p,
            })
            .collect();
        if let Some(document) = properties.get("PolicyDocument") {
            documents.push(document);
        }
        for document in documents {
            for statement in document["Statement"].as_sequence().into_iter().flatten() {
                found.push((id.clone(), statement.clone()));
            }
        }
    }
    found
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[test]
fn every_policy_names_its_actions_and_resources() {
    let statements = statements(&doc());
    assert!(statements.len() >= 15, "the roles' policies were not found");
    for (owner, statement) in statements {
        // A deny only takes away (the bucket policy's refusal of plain HTTP names `s3:*`).
        if statement["Effect"].as_str() == Some("Deny") {
            continue;
        }
        let sid = statement["Sid"]
            .as_str()
            .unwrap_or("a statement")
            .to_owned();
        let actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .map(|a| a.as_str().unwrap_or_default().to_owned())
            .collect();
        for action in &actions {
            assert!(
                !action.is_empty() && !action.contains('*'),
                "{owner} {sid}: action {action:?}"
            );
        }
        // X-Ray has no resource ARNs: its write actions are the only ones allowed on `*`.
        let xray_only = actions.iter().all(|a| a.starts_with("xray:Put"));
        for target in as_list(&statement["Resource"]) {
            let wildcard = target.as_str().is_some_and(|s| s.contains('*'));
            // Objects under a fixed key prefix of a named bucket: as narrow as S3 ARNs go.
            let key_prefix = match &target {
                Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().is_some_and(|s| {
                    s.starts_with("${")
                        && s.ends_with("/*")
                        && s.matches('*').count() == 1
                        && s.split('/').count() >= 3
                }),
                _ => false,
            };
            assert!(
                !target.is_null() && (!wildcard || xray_only || key_prefix),
                "{owner} {sid}: resource {target:?}"
            );
        }
    }
}

#[test]
fn every_function_has_its_own_role_and_no_managed_policy() {
    let doc = doc();
    let resources = doc["Resources"].as_mapping().expect("resources");
    let mut functions = 0;
    for (id, resource) in resources {
        let id = id.as_str().unwrap_or_default();
        let kind = resource["Type"].as_str().unwrap_or_default();
        let properties = &resource["Properties"];
        if kind == "AWS::Serverless::Function" {
            functions += 1;
            // SAM generates a role with managed policies (SQS on `*` for an event source,
            // AWSLambdaBasicExecutionRole) for a function without one, and for `Policies`.
            assert!(properties.get("Policies").is_none(), "{id}: SAM policies");
            let role = properties["Role"]["Fn::GetAtt"]
                .as_sequence()
                .and_then(|parts| parts.first())
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| match &properties["Role"] {
                    Value::Tagged(t) if t.tag == "GetAtt" => t
                        .value
                        .as_str()
                        .and_then(|s| s.split('.').next())
                        .map(str::to_owned),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{id} has no Role of its own"));
            assert_eq!(
                resource_type(&doc, &role),
                "AWS::IAM::Role",
                "{id}: Role is {role}"
            );
            // Its logs go to its own group, which its role names.
            assert!(
                properties["LoggingConfig"]["LogGroup"] != Value::Null,
                "{id}: no log group of its own"
            );
        }
        if kind == "AWS::IAM::Role" {
            assert!(
                properties.get("ManagedPolicyArns").is_none(),
                "{id}: managed policies"
            );
        }
    }
    assert!(functions >= 3, "the functions were not found");
}

fn resource_type(doc: &Value, id: &str) -> String {
    resource(doc, id)["Type"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_access_log_records_route_keys_and_request_ids_never_paths() {
    let doc = doc();
    let format = resource(&doc, "WebhookApi")["Properties"]["AccessLogSettings"]["Format"]
        .as_str()
        .expect("an access log format");
    assert!(format.contains("$context.routeKey") && format.contains("$context.requestId"));
    // A path carries an unsigned route's token; none of these may appear.
    for forbidden in [
        "$context.path",
        "$context.resourcePath",
        "$context.requestOverride",
    ] {
        assert!(!format.contains(forbidden), "{forbidden} in {format}");
    }
    // And the route key is the route's template: its `{token}` is a name, not a value.
    let routes = resource(&doc, "IngressFunction")["Properties"]["Events"]
        .as_mapping()
        .expect("events");
    assert!(routes.values().any(|r| {
        r["Properties"]["Path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/{token}"))
    }));
}

/// Every metric the code emits, by name.
const EMITTED: [&str; 28] = [
    metrics::REPLAY_FAILED,
    metrics::RECONCILED,
    metrics::RECEIVED,
    metrics::DUPLICATE,
    metrics::SIGNATURE_FAILURE,
    metrics::UNSIGNED_ACCEPTED,
    metrics::ENQUEUE_FAILURE,
    metrics::CONFLICT,
    metrics::UNAVAILABLE,
    metrics::REJECTED,
    metrics::ACK_LATENCY,
    metrics::PROCESSED,
    metrics::IGNORED,
    metrics::SKIPPED,
    metrics::DEAD_LETTERED,
    metrics::FAILED,
    metrics::RETRY_EXHAUSTED,
    metrics::PROCESSING_LATENCY,
    metrics::END_TO_END_LATENCY,
    metrics::REPLAYED,
    metrics::DLQ_REDRIVEN,
    outbound::DELIVERED,
    outbound::DELIVERY_FAILED,
    outbound::DELIVERY_DEAD,
    outbound::DELIVERY_HELD,
    outbound::ENDPOINT_DISABLED,
    outbound::ENDPOINT_PAUSED,
    outbound::DELIVERY_LATENCY,
];

#[test]
fn alarms_and_dashboard_watch_metrics_the_code_emits() {
    let doc = doc();
    let functions = [
        metrics::INGRESS,
        metrics::PROCESSOR,
        metrics::REPLAY,
        outbound::DISPATCHER,
    ];
    let mut watched = BTreeSet::new();
    for (id, resource) in doc["Resources"].as_mapping().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let props = &resource["Properties"];
        let mut metric_defs = vec![props.clone()];
        for query in props["Metrics"].as_sequence().into_iter().flatten() {
            metric_defs.push(query["MetricStat"]["Metric"].clone());
        }
        for metric in metric_defs {
            if metric["Namespace"].as_str() != Some(metrics::NAMESPACE) {
                continue;
            }
            let name = metric["MetricName"].as_str().unwrap_or_default();
            assert!(
                EMITTED.contains(&name),
                "{id:?} watches unknown metric {name}"
            );
            let dimensions = metric["Dimensions"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                dimensions.len(),
                1,
                "{id:?}: alarms read the function roll-up"
            );
            assert_eq!(dimensions[0]["Name"].as_str(), Some(metrics::FUNCTION));
            let function = dimensions[0]["Value"].as_str().unwrap_or_default();
            assert!(functions.contains(&function), "{id:?}: function {function}");
            watched.insert(name.to_owned());
        }
    }
    for name in [
        metrics::SIGNATURE_FAILURE,
        metrics::ACK_LATENCY,
        metrics::ENQUEUE_FAILURE,
        metrics::RETRY_EXHAUSTED,
        outbound::DELIVERY_FAILED,
        outbound::ENDPOINT_DISABLED,
    ] {
        assert!(watched.contains(name), "no alarm watches {name}");
    }

    // The dashboard body is a JSON string: every `"Webhooks", "<name>"` names a known metric.
    let body = TEMPLATE
        .split("DashboardBody:")
        .nth(1)
        .expect("a dashboard");
    let shown: Vec<&str> = body
        .split("[\"Webhooks\", \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(shown.len() >= 5, "dashboard metrics not found");
    for name in shown {
        assert!(
            EMITTED.contains(&name),
            "the dashboard shows unknown metric {name}"
        );
    }
}

/// A parameter's `MinValue` / `MaxValue`.
fn bound(doc: &Value, parameter: &str, which: &str) -> u64 {
    doc["Parameters"][parameter][which]
        .as_u64()
        .unwrap_or_else(|| panic!("{parameter} has no whole {which}"))
}

#[test]
fn numeric_parameters_allow_exactly_what_the_code_accepts() {
    let doc = doc();
    // (function, variable, parameter): the template's range is the code's range.
    let bounded = [
        ("IngressFunction", "MAX_BODY_BYTES", "MaxBodyBytes"),
        (
            "IngressFunction",
            "TENANT_CACHE_TTL_SECS",
            "TenantCacheTtlSecs",
        ),
        ("IngressFunction", "RETENTION_DAYS", "RetentionDays"),
        ("ProcessorFunction", "LEASE_SECS", "LeaseSecs"),
        ("ProcessorFunction", "RETENTION_DAYS", "RetentionDays"),
        ("ProcessorFunction", "BATCH_CONCURRENCY", "BatchConcurrency"),
        ("ReplayFunction", "STUCK_AFTER_SECS", "StuckAfterSecs"),
        ("ReplayFunction", "RETENTION_DAYS", "RetentionDays"),
    ];
    for (function, variable, parameter) in bounded {
        let base = environment(&doc, function);
        let loads = |value: u64| {
            let mut env = base.clone();
            env.insert(variable.to_owned(), value.to_string());
            let lookup = |name: &str| env.get(name).cloned();
            match function {
                "IngressFunction" => ingress::Config::from_lookup(lookup).is_ok(),
                "ProcessorFunction" => processor::Config::from_lookup(lookup).is_ok(),
                _ => replay::Config::from_lookup(lookup).is_ok(),
            }
        };
        let (min, max) = (
            bound(&doc, parameter, "MinValue"),
            bound(&doc, parameter, "MaxValue"),
        );
        assert!(
            loads(min) && loads(max),
            "{function} {variable}: {min}..={max}"
        );
        assert!(!loads(max + 1), "{function} {variable} accepts {}", max + 1);
        if min > 0 {
            assert!(!loads(min - 1), "{function} {variable} accepts {}", min - 1);
        }
    }
    // The processor's lease outlives its timeout, as the parameter's minimum says.
    assert!(bound(&doc, "LeaseSecs", "MinValue") > timeout(&doc, "ProcessorFunction"));
}

#[test]
fn the_function_url_is_an_option_off_by_default_authenticated_by_the_signature_alone() {
    let doc = doc();
    let parameter = |name: &str| &doc["Parameters"][name];
    assert_eq!(parameter("IngressFront")["Default"], "ApiGateway");
    assert_eq!(parameter("Tracing")["Default"], "PassThrough");
    assert_eq!(
        ref_target(&doc["Globals"]["Function"]["Tracing"]),
        Some("Tracing")
    );

    let url = resource(&doc, "IngressFunctionUrl");
    assert_eq!(url["Condition"], "UseFunctionUrl");
    assert_eq!(url["Properties"]["AuthType"], "NONE");
    assert_eq!(
        ref_target(&url["Properties"]["TargetFunctionArn"]),
        Some("IngressFunction")
    );
    // Both permissions a Function URL needs, each only through the URL.
    let invoke_url = &resource(&doc, "IngressFunctionUrlPermission")["Properties"];
    assert_eq!(invoke_url["Action"], "lambda:InvokeFunctionUrl");
    assert_eq!(invoke_url["FunctionUrlAuthType"], "NONE");
    let invoke = &resource(&doc, "IngressFunctionUrlInvokePermission")["Properties"];
    assert_eq!(invoke["Action"], "lambda:InvokeFunction");
    assert_eq!(invoke["InvokedViaFunctionUrl"], true);
    for permission in [
        "IngressFunctionUrlPermission",
        "IngressFunctionUrlInvokePermission",
    ] {
        assert_eq!(resource(&doc, permission)["Condition"], "UseFunctionUrl");
        assert_eq!(
            ref_target(&resource(&doc, permission)["Properties"]["FunctionName"]),
            Some("IngressFunction")
        );
    }
}

#[test]
fn the_deliveries_queue_limits_are_the_ones_the_dispatcher_refreshes_pointers_within() {
    let template = Template::parse_with(TEMPLATE, &Overrides::new()).expect("template parses");
    let queue = template.queue(DELIVERIES_QUEUE).expect("deliveries queue");
    let receives = queue.redrive.as_ref().expect("redrive").max_receive_count;
    assert_eq!(
        receives,
        u64::from(shared::outbound::dispatch::DELIVERIES_MAX_RECEIVES)
    );
    // A pointer is sent again fresh a day into its life, well before SQS drops it.
    let retention = queue.retention_secs.expect("retention");
    assert!(
        retention >= 2 * shared::outbound::dispatch::POINTER_REFRESH_AFTER.as_secs(),
        "{retention}"
    );
}

#[test]
fn the_local_event_sources_run_as_many_batches_at_once_as_the_deployed_mappings() {
    let doc = doc();
    for (parameter, local) in [
        (
            "ProcessorMaxConcurrency",
            local_stack::event_source::PROCESSOR_MAX_CONCURRENCY,
        ),
        (
            "DispatcherMaxConcurrency",
            local_stack::event_source::DISPATCHER_MAX_CONCURRENCY,
        ),
    ] {
        assert_eq!(
            doc["Parameters"][parameter]["Default"].as_u64(),
            Some(local as u64),
            "{parameter}"
        );
    }
}

#[test]
fn only_the_portals_role_may_write_portal_sessions_and_links() {
    let statements = statements(&doc());
    let writes_outbound = |statement: &Value| {
        let writes = as_list(&statement["Action"]).iter().any(|a| {
            matches!(
                a.as_str(),
                Some("dynamodb:PutItem" | "dynamodb:UpdateItem" | "dynamodb:DeleteItem")
            )
        });
        let outbound = as_list(&statement["Resource"])
            .iter()
            .any(|r| format!("{r:?}").contains("OutboundTable.Arn"));
        writes && outbound
    };
    let denies_portal_keys = |statement: &Value| {
        statement["Effect"].as_str() == Some("Deny")
            && format!("{:?}", statement["Condition"]).contains("portal#*")
            && format!("{:?}", statement["Condition"]).contains("dynamodb:LeadingKeys")
            && as_list(&statement["Action"])
                .iter()
                .any(|a| a.as_str() == Some("dynamodb:PutItem"))
    };
    let mut writers: BTreeSet<String> = BTreeSet::new();
    for (owner, statement) in &statements {
        if statement["Effect"].as_str() != Some("Deny") && writes_outbound(statement) {
            writers.insert(owner.clone());
        }
    }
    assert!(
        writers.contains("PortalRole") && writers.len() >= 4,
        "{writers:?}"
    );
    for writer in writers {
        // The portal writes them; an operator (TenantAdminPolicy) administers the stack.
        if writer == "PortalRole" || writer == "TenantAdminPolicy" {
            continue;
        }
        assert!(
            statements
                .iter()
                .any(|(owner, s)| owner == &writer && denies_portal_keys(s)),
            "{writer} may write portal# items"
        );
    }
}

/// Whether a `*`/`?` pattern of IAM's `StringLike` matches `text`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .any(|i| glob(&pattern[1..], &text[i..])),
        Some(c) => {
            text.chars().next().is_some_and(|t| c == '?' || c == t) && {
                let skip = |s: &str| s.chars().next().map_or(0, char::len_utf8);
                glob(&pattern[skip(pattern)..], &text[skip(text)..])
            }
        }
    }
}

/// One condition block of a statement against a KMS request's encryption context, by IAM's
/// rules for the operators the template uses: a single-valued key that is missing fails a
/// positive operator and passes a negated one; `ForAllValues` over no keys passes.
fn condition_holds(operator: &str, key: &str, values: &[String], context: &[(&str, &str)]) -> bool {
    let keys: Vec<&str> = context.iter().map(|(k, _)| *k).collect();
    let single = key
        .strip_prefix("kms:EncryptionContext:")
        .and_then(|name| context.iter().find(|(k, _)| *k == name).map(|(_, v)| *v));
    match (operator, key) {
        ("ForAllValues:StringEquals", "kms:EncryptionContextKeys") => {
            keys.iter().all(|k| values.iter().any(|v| v == k))
        }
        ("ForAnyValue:StringLike", "kms:EncryptionContextKeys") => {
            keys.iter().any(|k| values.iter().any(|v| glob(v, k)))
        }
        ("Null", _) => values.iter().all(|v| (v == "true") == single.is_none()),
        ("StringEquals", _) => single.is_some_and(|s| values.iter().any(|v| v == s)),
        ("StringLike", _) => single.is_some_and(|s| values.iter().any(|v| glob(v, s))),
        ("StringNotLike", _) => single.is_none_or(|s| !values.iter().any(|v| glob(v, s))),
        _ => panic!("the evaluator does not know {operator} on {key}: teach it"),
    }
}

/// Whether `owner`'s policies allow `action` on the secrets key with `context`: an Allow
/// statement matches (action, key, every condition) and no Deny does.
fn kms_allows(
    statements: &[(String, Value)],
    owner: &str,
    action: &str,
    context: &[(&str, &str)],
) -> bool {
    let matches = |statement: &Value| {
        let names_action = as_list(&statement["Action"])
            .iter()
            .any(|a| a.as_str() == Some(action));
        let names_key = as_list(&statement["Resource"])
            .iter()
            .any(|r| format!("{r:?}").contains("SecretsKey.Arn"));
        let conditions = statement["Condition"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        names_action
            && names_key
            && conditions.iter().all(|(operator, block)| {
                block
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .all(|(key, values)| {
                        let values: Vec<String> = as_list(values)
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect();
                        condition_holds(
                            operator.as_str().unwrap_or_default(),
                            key.as_str().unwrap_or_default(),
                            &values,
                            context,
                        )
                    })
            })
    };
    let mine = statements.iter().filter(|(o, _)| o == owner);
    let allowed = mine
        .clone()
        .any(|(_, s)| s["Effect"].as_str() == Some("Allow") && matches(s));
    let denied = mine
        .clone()
        .any(|(_, s)| s["Effect"].as_str() == Some("Deny") && matches(s));
    allowed && !denied
}

#[test]
fn each_role_opens_exactly_the_secrets_it_needs_by_evaluating_its_policies() {
    let statements = statements(&doc());
    let provider_secret = [
        ("tenant", "acme"),
        ("scope", "stripe"),
        ("field", "secret_current"),
    ];
    let endpoint_secret = [
        ("tenant", "acme"),
        ("scope", "endpoint:ep_1"),
        ("field", "secret_current"),
    ];
    let no_context: [(&str, &str); 0] = [];
    let scope_only = [("scope", "stripe")];
    let extra_key = [
        ("tenant", "acme"),
        ("scope", "stripe"),
        ("field", "secret_current"),
        ("other", "x"),
    ];
    let decrypt = |owner: &str, context: &[(&str, &str)]| {
        kms_allows(&statements, owner, "kms:Decrypt", context)
    };

    // The ingress: provider secrets, and nothing else.
    assert!(decrypt("IngressRole", &provider_secret));
    for context in [&endpoint_secret[..], &no_context, &scope_only, &extra_key] {
        assert!(
            !decrypt("IngressRole", context),
            "ingress opens {context:?}"
        );
    }
    assert!(!kms_allows(
        &statements,
        "IngressRole",
        "kms:GenerateDataKey",
        &provider_secret
    ));
    // The dispatcher and the portal: endpoint secrets only; only the portal seals.
    for role in ["DispatcherRole", "PortalRole"] {
        assert!(decrypt(role, &endpoint_secret), "{role}");
        for context in [
            &provider_secret[..],
            &no_context,
            &[("scope", "endpoint:ep_1")],
        ] {
            assert!(!decrypt(role, context), "{role} opens {context:?}");
        }
    }
    assert!(kms_allows(
        &statements,
        "PortalRole",
        "kms:GenerateDataKey",
        &endpoint_secret
    ));
    assert!(!kms_allows(
        &statements,
        "DispatcherRole",
        "kms:GenerateDataKey",
        &endpoint_secret
    ));
    // Everyone else: nothing.
    for role in ["ProcessorRole", "ApiRole", "ReplayRole"] {
        assert!(
            !decrypt(role, &provider_secret) && !decrypt(role, &endpoint_secret),
            "{role}"
        );
    }

    // The ingress's list of scopes is the code's list of providers.
    let listed: BTreeSet<String> = statements
        .iter()
        .filter(|(o, s)| o == "IngressRole" && s["Sid"].as_str() == Some("OpenTenantSecrets"))
        .flat_map(|(_, s)| as_list(&s["Condition"]["StringEquals"]["kms:EncryptionContext:scope"]))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let providers: BTreeSet<String> = shared::provider::Provider::all()
        .map(|p| p.as_str().to_owned())
        .collect();
    assert_eq!(listed, providers);
}

#[test]
fn the_policy_evaluators_globs_and_missing_keys_follow_iam() {
    assert!(glob("endpoint:*", "endpoint:ep_1") && !glob("endpoint:*", "stripe"));
    assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let none: [(&str, &str); 0] = [];
    assert!(!condition_holds(
        "StringLike",
        "kms:EncryptionContext:scope",
        &values(&["*"]),
        &none
    ));
    assert!(condition_holds(
        "StringNotLike",
        "kms:EncryptionContext:scope",
        &values(&["x"]),
        &none
    ));
    assert!(condition_holds(
        "ForAllValues:StringEquals",
        "kms:EncryptionContextKeys",
        &values(&["tenant"]),
        &none
    ));
    assert!(condition_holds(
        "Null",
        "kms:EncryptionContext:tenant",
        &values(&["true"]),
        &none
    ));
}

#[test]
fn the_publish_api_routes_are_the_ones_its_handler_serves_all_signed() {
    let doc = doc();
    let events = &resource(&doc, "ApiFunction")["Properties"]["Events"];
    let routes: BTreeSet<(String, String)> = events
        .as_mapping()
        .expect("events")
        .values()
        .map(|event| {
            let properties = &event["Properties"];
            assert_eq!(event["Type"].as_str(), Some("HttpApi"));
            assert_eq!(
                properties["Auth"]["Authorizer"].as_str(),
                Some("AWS_IAM"),
                "{properties:?}"
            );
            (
                scalar(&properties["Method"]).expect("method"),
                scalar(&properties["Path"]).expect("path"),
            )
        })
        .collect();
    let served: BTreeSet<(String, String)> = api::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(routes, served);
}
