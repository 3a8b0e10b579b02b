//! Create template.yaml's tables and queues in the emulator, under a name prefix.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use thiserror::Error;

use crate::template::{QueueDef, TableDef, Template};

/// The logical ids the functions rely on.
pub const EVENTS_TABLE: &str = "EventsTable";
pub const TENANTS_TABLE: &str = "TenantsTable";
pub const PROJECTIONS_TABLE: &str = "ProjectionsTable";
pub const EVENTS_QUEUE: &str = "EventsQueue";
pub const DEAD_LETTER_QUEUE: &str = "EventsDeadLetterQueue";

#[derive(Debug, Error)]
pub enum ProvisionError {
    #[error("template.yaml declares no {0}")]
    Missing(&'static str),
    #[error("{resource}: {message}")]
    Aws { resource: String, message: String },
    #[error("{0}")]
    Definition(String),
}

fn aws_error<E, R>(resource: &str, err: SdkError<E, R>) -> ProvisionError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    ProvisionError::Aws {
        resource: resource.to_owned(),
        message: shared::aws::describe(&err),
    }
}

/// What was created: physical names and URLs by logical id.
#[derive(Debug, Clone)]
pub struct Provisioned {
    tables: HashMap<String, String>,
    queue_urls: HashMap<String, String>,
    queue_arns: HashMap<String, String>,
}

impl Provisioned {
    /// The physical table name of a logical id present in the template.
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.tables.get(logical_id).map(String::as_str)
    }

    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.queue_urls.get(logical_id).map(String::as_str)
    }

    pub fn queue_arn(&self, logical_id: &str) -> Option<&str> {
        self.queue_arns.get(logical_id).map(String::as_str)
    }

    // The accessors below cannot miss: `provision` checks these ids exist.
    pub fn events_table(&self) -> &str {
        self.table(EVENTS_TABLE).unwrap_or_default()
    }

    pub fn tenants_table(&self) -> &str {
        self.table(TENANTS_TABLE).unwrap_or_default()
    }

    pub fn projections_table(&self) -> &str {
        self.table(PROJECTIONS_TABLE).unwrap_or_default()
    }

    pub fn events_queue_url(&self) -> &str {
        self.queue_url(EVENTS_QUEUE).unwrap_or_default()
    }

    pub fn dead_letter_queue_url(&self) -> &str {
        self.queue_url(DEAD_LETTER_QUEUE).unwrap_or_default()
    }
}

/// Create every table and queue of `template`, named `{prefix}{LogicalId}`. Resources that exist
/// already are kept, so running it twice is harmless.
pub async fn provision(
    template: &Template,
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
) -> Result<Provisioned, ProvisionError> {
    for id in [EVENTS_TABLE, TENANTS_TABLE, PROJECTIONS_TABLE] {
        template.table(id).ok_or(ProvisionError::Missing(id))?;
    }
    for id in [EVENTS_QUEUE, DEAD_LETTER_QUEUE] {
        template.queue(id).ok_or(ProvisionError::Missing(id))?;
    }

    let mut provisioned = Provisioned {
        tables: HashMap::new(),
        queue_urls: HashMap::new(),
        queue_arns: HashMap::new(),
    };
    for table in &template.tables {
        let name = format!("{prefix}{}", table.logical_id);
        create_table(dynamodb, table, &name).await?;
        provisioned.tables.insert(table.logical_id.clone(), name);
    }
    // Dead-letter queues first: a redrive policy names its target's ARN.
    let (plain, redriven): (Vec<&QueueDef>, Vec<&QueueDef>) =
        template.queues.iter().partition(|q| q.redrive.is_none());
    for queue in plain.into_iter().chain(redriven) {
        let name = format!("{prefix}{}", queue.logical_id);
        let (url, arn) = create_queue(sqs, queue, &name, &provisioned.queue_arns).await?;
        provisioned.queue_urls.insert(queue.logical_id.clone(), url);
        provisioned.queue_arns.insert(queue.logical_id.clone(), arn);
    }
    Ok(provisioned)
}

fn key_schema(pairs: &[(String, String)]) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    pairs
        .iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(|e| ProvisionError::Definition(e.to_string()))
        })
        .collect()
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &TableDef,
    name: &str,
) -> Result<(), ProvisionError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&table.key_schema)?));
    for (attribute, kind) in &table.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| ProvisionError::Definition(e.to_string()))?,
        );
    }
    for index in &table.indexes {
        let mut projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection_type.as_str()));
        for attribute in &index.non_key_attributes {
            projection = projection.non_key_attributes(attribute);
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(projection.build())
                .build()
                .map_err(|e| ProvisionError::Definition(e.to_string()))?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(aws_error(name, e)),
    }
    if let Some(attribute) = &table.ttl_attribute {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| ProvisionError::Definition(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| aws_error(name, e))?;
    }
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    queue: &QueueDef,
    name: &str,
    arns: &HashMap<String, String>,
) -> Result<(String, String), ProvisionError> {
    let mut attributes = Vec::new();
    if let Some(secs) = queue.visibility_timeout {
        attributes.push((QueueAttributeName::VisibilityTimeout, secs.to_string()));
    }
    if let Some(secs) = queue.retention_secs {
        attributes.push((QueueAttributeName::MessageRetentionPeriod, secs.to_string()));
    }
    if let Some(redrive) = &queue.redrive {
        let target = arns.get(&redrive.dead_letter_queue).ok_or_else(|| {
            ProvisionError::Definition(format!(
                "{name}: dead-letter queue {} is not a queue",
                redrive.dead_letter_queue
            ))
        })?;
        let policy = format!(
            r#"{{"deadLetterTargetArn":"{target}","maxReceiveCount":"{}"}}"#,
            redrive.max_receive_count
        );
        attributes.push((QueueAttributeName::RedrivePolicy, policy));
    }
    let url = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.iter().cloned().collect()))
        .send()
        .await
        .map_err(|e| aws_error(name, e))?
        .queue_url
        .ok_or_else(|| ProvisionError::Definition(format!("{name}: no queue URL returned")))?;
    // An existing queue keeps its old attributes through CreateQueue: set them, so a changed
    // `RETRY_SCHEDULE` moves the receives of a stack provisioned before.
    if !attributes.is_empty() {
        client
            .set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(attributes.into_iter().collect()))
            .send()
            .await
            .map_err(|e| aws_error(name, e))?;
    }
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error(name, e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| ProvisionError::Definition(format!("{name}: no queue ARN returned")))?;
    Ok((url, arn))
}

#[cfg(test)]
mod tests {
    //! Provisioning against the emulator that `make test` starts, checked resource by resource
    //! against the template it came from.

    use std::{
        collections::BTreeSet,
        time::{SystemTime, UNIX_EPOCH},
    };

    use aws_sdk_dynamodb::types::{KeySchemaElement, TimeToLiveStatus};

    use super::*;

    const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

    /// The emulator's address. Without it the test fails instead of skipping: a provisioning
    /// test that did not run proves nothing.
    fn endpoint() -> String {
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
            panic!(
                "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts the AWS emulator and sets it"
            )
        })
    }

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
        let (dynamodb, sqs) = crate::aws::clients(&endpoint).await;
        let prefix = unique_prefix();

        // WHEN it is provisioned, and provisioned again
        let first = provision(&template, &dynamodb, &sqs, &prefix)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot provision on the AWS emulator at {endpoint} (is it running? `make test` starts it): {e}")
            });
        let again = provision(&template, &dynamodb, &sqs, &prefix)
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
            assert_table_matches(&dynamodb, name, def).await;
        }
        // (anchored to the design too, so a template edit cannot loosen both sides at once)
        let events = template.table(EVENTS_TABLE).expect("EventsTable");
        assert_eq!(events.key_schema, [("pk".to_owned(), "HASH".to_owned())]);
        assert_eq!(events.indexes[0].name, "by_tenant_status");

        // AND every queue has its timeouts, and the main queue redrives to the DLQ after 6
        for def in &template.queues {
            let url = first.queue_url(&def.logical_id).expect("provisioned");
            let attributes = queue_attributes(&sqs, url).await;
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
        let attributes = queue_attributes(&sqs, first.events_queue_url()).await;
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
        let dlq_arn = queue_attributes(&sqs, first.dead_letter_queue_url())
            .await
            .remove(&QueueAttributeName::QueueArn)
            .expect("DLQ ARN");
        assert_eq!(
            redrive["deadLetterTargetArn"],
            dlq_arn.as_str(),
            "{redrive}"
        );
    }

    #[tokio::test]
    async fn a_template_without_the_events_table_is_refused_before_any_call() {
        let template =
            Template::parse("Resources:\n  EventsQueue: { Type: \"AWS::SQS::Queue\" }\n")
                .expect("parses");
        // Nothing listens here: reaching the network would fail differently.
        let (dynamodb, sqs) = crate::aws::clients("http://127.0.0.1:9").await;
        let err = provision(&template, &dynamodb, &sqs, "unused-")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ProvisionError::Missing(EVENTS_TABLE)),
            "{err}"
        );
    }
}
