//! Create template.yaml's tables and queues in the emulator, under a name prefix.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use thiserror::Error;

use crate::{
    aws::Clients,
    template::{QueueDef, TableDef, Template},
};

/// The logical ids the functions rely on.
pub const EVENTS_TABLE: &str = "EventsTable";
pub const TENANTS_TABLE: &str = "TenantsTable";
pub const PROJECTIONS_TABLE: &str = "ProjectionsTable";
pub const EVENTS_QUEUE: &str = "EventsQueue";
pub const DEAD_LETTER_QUEUE: &str = "EventsDeadLetterQueue";
pub const SECRETS_KEY: &str = "SecretsKey";
/// The HMAC key that authenticates the portal's links.
pub const PORTAL_LINK_KEY: &str = "PortalLinkKey";
pub const PAYLOADS_BUCKET: &str = "PayloadsBucket";
pub const OUTBOUND_TABLE: &str = "OutboundTable";
pub const DELIVERIES_QUEUE: &str = "DeliveriesQueue";
pub const SLOW_DELIVERIES_QUEUE: &str = "SlowDeliveriesQueue";
pub const DELIVERIES_DLQ: &str = "DeliveriesDeadLetterQueue";

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
    keys: HashMap<String, String>,
    buckets: HashMap<String, String>,
}

impl Provisioned {
    /// The physical bucket name of a logical id.
    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.buckets.get(logical_id).map(String::as_str)
    }

    /// Where payloads too large for their record are kept.
    pub fn payloads_bucket(&self) -> &str {
        self.bucket(PAYLOADS_BUCKET).unwrap_or_default()
    }

    /// The key id of a KMS key's logical id.
    pub fn key(&self, logical_id: &str) -> Option<&str> {
        self.keys.get(logical_id).map(String::as_str)
    }

    /// The key that seals tenants' secrets.
    pub fn secrets_key(&self) -> &str {
        self.key(SECRETS_KEY).unwrap_or_default()
    }

    /// The HMAC key that authenticates the portal's links.
    pub fn portal_link_key(&self) -> &str {
        self.key(PORTAL_LINK_KEY).unwrap_or_default()
    }

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

    pub fn outbound_table(&self) -> &str {
        self.table(OUTBOUND_TABLE).unwrap_or_default()
    }

    pub fn deliveries_queue_url(&self) -> &str {
        self.queue_url(DELIVERIES_QUEUE).unwrap_or_default()
    }

    pub fn slow_deliveries_queue_url(&self) -> &str {
        self.queue_url(SLOW_DELIVERIES_QUEUE).unwrap_or_default()
    }

    pub fn deliveries_dlq_url(&self) -> &str {
        self.queue_url(DELIVERIES_DLQ).unwrap_or_default()
    }
}

/// Create every table, queue and key of `template`, named `{prefix}{LogicalId}` (a key by its
/// alias). Resources that exist already are kept, so running it twice is harmless.
pub async fn provision(
    template: &Template,
    clients: &Clients,
    prefix: &str,
) -> Result<Provisioned, ProvisionError> {
    let (dynamodb, sqs) = (&clients.dynamodb, &clients.sqs);
    for id in [
        EVENTS_TABLE,
        TENANTS_TABLE,
        PROJECTIONS_TABLE,
        OUTBOUND_TABLE,
    ] {
        template.table(id).ok_or(ProvisionError::Missing(id))?;
    }
    for id in [
        EVENTS_QUEUE,
        DEAD_LETTER_QUEUE,
        DELIVERIES_QUEUE,
        SLOW_DELIVERIES_QUEUE,
        DELIVERIES_DLQ,
    ] {
        template.queue(id).ok_or(ProvisionError::Missing(id))?;
    }
    if !template.keys.iter().any(|k| k == SECRETS_KEY) {
        return Err(ProvisionError::Missing(SECRETS_KEY));
    }
    if !template.buckets.iter().any(|b| b == PAYLOADS_BUCKET) {
        return Err(ProvisionError::Missing(PAYLOADS_BUCKET));
    }

    let mut provisioned = Provisioned {
        tables: HashMap::new(),
        queue_urls: HashMap::new(),
        queue_arns: HashMap::new(),
        keys: HashMap::new(),
        buckets: HashMap::new(),
    };
    for bucket in &template.buckets {
        // Bucket names are lowercase, unlike logical ids.
        let name = format!("{prefix}{bucket}").to_lowercase();
        create_bucket(&clients.s3, &name).await?;
        provisioned.buckets.insert(bucket.clone(), name);
    }
    for key in &template.keys {
        let alias = format!("alias/{prefix}{key}");
        let id = create_key(&clients.kms, &alias, template.key_specs.get(key)).await?;
        provisioned.keys.insert(key.clone(), id);
    }
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

/// The bucket `name`, created if there is none yet.
async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), ProvisionError> {
    match s3.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_error(name, e)),
    }
}

/// The key behind `alias`, created if there is none yet: symmetric for encryption, unless the
/// template names a `KeySpec` and `KeyUsage` (the portal's HMAC key).
async fn create_key(
    kms: &aws_sdk_kms::Client,
    alias: &str,
    spec: Option<&(String, String)>,
) -> Result<String, ProvisionError> {
    if let Ok(found) = kms.describe_key().key_id(alias).send().await
        && let Some(id) = found.key_metadata().map(|m| m.key_id())
    {
        return Ok(id.to_owned());
    }
    let created = kms
        .create_key()
        .description(format!("local stack: {alias}"))
        .set_key_spec(spec.map(|(spec, _)| spec.as_str().into()))
        .set_key_usage(spec.map(|(_, usage)| usage.as_str().into()))
        .send()
        .await
        .map_err(|e| aws_error(alias, e))?;
    let id = created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| ProvisionError::Definition(format!("{alias}: no key id returned")))?;
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(&id)
        .send()
        .await
        .map_err(|e| aws_error(alias, e))?;
    Ok(id)
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
    let created = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.iter().cloned().collect()))
        .send()
        .await;
    let url = match created {
        Ok(output) => output.queue_url,
        // It exists with other attributes (a changed `RETRY_SCHEDULE`): find it, then set them.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_queue_name_exists()) =>
        {
            client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| aws_error(name, e))?
                .queue_url
        }
        Err(e) => return Err(aws_error(name, e)),
    }
    .ok_or_else(|| ProvisionError::Definition(format!("{name}: no queue URL returned")))?;
    // Set them on an existing queue too, so a changed `RETRY_SCHEDULE` moves the receives of a
    // stack provisioned before.
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
    use super::*;

    #[tokio::test]
    async fn a_template_without_the_events_table_is_refused_before_any_call() {
        let template =
            Template::parse("Resources:\n  EventsQueue: { Type: \"AWS::SQS::Queue\" }\n")
                .expect("parses");
        // Nothing listens here: reaching the network would fail differently.
        let clients = crate::aws::clients("http://127.0.0.1:9").await;
        let err = provision(&template, &clients, "unused-")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ProvisionError::Missing(EVENTS_TABLE)),
            "{err}"
        );
    }
}
