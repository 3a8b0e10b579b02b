//! Provisioning against the emulator, checked resource by resource against the template it
//! came from.

use std::{
    collections::{BTreeSet, HashMap},
    time::{SystemTime, UNIX_EPOCH},
};

use aws_sdk_dynamodb::types::{BillingMode, KeySchemaElement, TimeToLiveStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use local_stack::{
    provision::{DEAD_LETTER_QUEUE, EVENTS_TABLE, provision},
    template::{Overrides, TableDef, Template},
};

use crate::support::endpoint;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// Unique per run and per process, so runs against a long-lived emulator never collide.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("lp{}x{}-", nanos % 1_000_000_000_000, std::process::id())
}

fn keys(elements: &[KeySchemaElement]) -> Vec<(String, String)> {
    elements
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e:?}"))
        .attributes
        .unwrap_or_default()
}

async fn assert_table_matches(dynamodb: &aws_sdk_dynamodb::Client, name: &str, def: &TableDef) {
    let table = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTable {name}: {e:?}"))
        .table
        .unwrap_or_else(|| panic!("{name}: no description"));
    assert_eq!(
        keys(table.key_schema()),
        def.key_schema,
        "{name} key schema"
    );
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest),
        "{name} billing mode"
    );
    let attributes: BTreeSet<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        attributes,
        def.attributes.iter().cloned().collect(),
        "{name} attribute definitions"
    );
    assert_eq!(
        table.global_secondary_indexes().len(),
        def.indexes.len(),
        "{name} index count"
    );
    for index in &def.indexes {
        let created = table
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(index.name.as_str()))
            .unwrap_or_else(|| panic!("{name}: index {} missing", index.name));
        assert_eq!(
            keys(created.key_schema()),
            index.key_schema,
            "{} keys",
            index.name
        );
        let projection = created.projection();
        assert_eq!(
            projection
                .and_then(|p| p.projection_type())
                .map(|t| t.as_str()),
            Some(index.projection_type.as_str()),
            "{} projection type",
            index.name
        );
        let projected: BTreeSet<&str> = projection
            .map(|p| p.non_key_attributes().iter().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            projected,
            index
                .non_key_attributes
                .iter()
                .map(String::as_str)
                .collect(),
            "{} projected attributes",
            index.name
        );
    }
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTimeToLive {name}: {e:?}"))
        .time_to_live_description;
    let enabled = ttl
        .as_ref()
        .filter(|t| t.time_to_live_status() == Some(&TimeToLiveStatus::Enabled))
        .and_then(|t| t.attribute_name());
    assert_eq!(enabled, def.ttl_attribute.as_deref(), "{name} TTL");
}

#[tokio::test]
async fn provisions_the_template_as_declared_and_twice_without_harm() {
    // GIVEN the real template and the emulator
    let endpoint = endpoint();
    let template = Template::load(TEMPLATE).expect("template.yaml parses");
    let clients = local_stack::aws::clients(&endpoint).await;
    let (dynamodb, sqs) = (&clients.dynamodb, &clients.sqs);
    let prefix = unique_prefix();

    // WHEN it is provisioned, and provisioned again
    let first = provision(&template, &clients, &prefix)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot provision on the AWS emulator at {endpoint} (is it running? `make test` starts it): {e}")
        });
    let again = provision(&template, &clients, &prefix)
        .await
        .unwrap_or_else(|e| panic!("provisioning twice must be harmless: {e}"));

    // THEN names follow the prefix and the second run finds the same resources
    assert_eq!(first.events_table(), format!("{prefix}EventsTable"));
    assert_eq!(first.tenants_table(), format!("{prefix}TenantsTable"));
    assert_eq!(
        first.projections_table(),
        format!("{prefix}ProjectionsTable")
    );
    assert!(
        first
            .events_queue_url()
            .ends_with(&format!("/{prefix}EventsQueue"))
    );
    assert!(
        first
            .dead_letter_queue_url()
            .ends_with(&format!("/{prefix}EventsDeadLetterQueue"))
    );
    assert_eq!(again.events_queue_url(), first.events_queue_url());
    assert_eq!(
        again.queue_arn(DEAD_LETTER_QUEUE),
        first.queue_arn(DEAD_LETTER_QUEUE)
    );

    // AND every table has the template's keys, attributes, indexes and TTL
    for def in &template.tables {
        let name = first.table(&def.logical_id).expect("provisioned");
        assert_table_matches(dynamodb, name, def).await;
    }
    // (anchored to the design too, so a template edit cannot loosen both sides at once)
    let events = template.table(EVENTS_TABLE).expect("EventsTable");
    assert_eq!(events.key_schema, [("pk".to_owned(), "HASH".to_owned())]);
    assert_eq!(events.indexes[0].name, "by_tenant_status");

    // AND every queue has its timeouts, and the main queue redrives to the DLQ after 6
    for def in &template.queues {
        let url = first.queue_url(&def.logical_id).expect("provisioned");
        let attributes = queue_attributes(sqs, url).await;
        assert_eq!(
            attributes
                .get(&QueueAttributeName::QueueArn)
                .map(String::as_str),
            first.queue_arn(&def.logical_id),
            "{url} ARN"
        );
        if let Some(secs) = def.visibility_timeout {
            assert_eq!(
                attributes[&QueueAttributeName::VisibilityTimeout],
                secs.to_string(),
                "{url} visibility"
            );
        }
        if let Some(secs) = def.retention_secs {
            assert_eq!(
                attributes[&QueueAttributeName::MessageRetentionPeriod],
                secs.to_string(),
                "{url} retention"
            );
        }
    }
    let attributes = queue_attributes(sqs, first.events_queue_url()).await;
    let redrive: serde_json::Value = serde_json::from_str(
        attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .expect("EventsQueue has a RedrivePolicy"),
    )
    .expect("RedrivePolicy is JSON");
    // SQS answers the count as a number; accept its string form as well.
    let max_receive_count = match &redrive["maxReceiveCount"] {
        serde_json::Value::String(s) => s.parse::<u64>().ok(),
        other => other.as_u64(),
    };
    assert_eq!(max_receive_count, Some(6), "{redrive}");
    let dlq_arn = queue_attributes(sqs, first.dead_letter_queue_url())
        .await
        .remove(&QueueAttributeName::QueueArn)
        .expect("DLQ ARN");
    assert_eq!(
        redrive["deadLetterTargetArn"],
        dlq_arn.as_str(),
        "{redrive}"
    );

    // AND provisioning again with a shorter schedule moves the existing queue's receives
    let overrides = Overrides::from([("RetrySchedule".to_owned(), "0,2,2".to_owned())]);
    let shorter = Template::load_with(TEMPLATE, &overrides).expect("template.yaml parses");
    provision(&shorter, &clients, &prefix)
        .await
        .expect("provisioned again");
    let attributes = queue_attributes(sqs, first.events_queue_url()).await;
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).expect("json");
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );
}
