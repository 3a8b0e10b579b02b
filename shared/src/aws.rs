//! What the deployed functions need from AWS: the SDK configuration, one-line SDK errors, and
//! the AWS adapters of the ports (which live under [`crate::adapters`], grouped by port).

use std::{error::Error, fmt::Debug};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use crate::adapters::{
    events::{
        DONE_TAG, DynamoEventStore, INLINE_PAYLOAD_BYTES, MAX_ERROR_CHARS, PENDING_INDEX,
        PENDING_SHARDS, STATUS_INDEX, STATUS_SHARDS, SUMMARY_ATTRIBUTES,
    },
    keys::KmsKeys,
    outbound::DynamoOutboundStore,
    portal::{DynamoPortalStore, KmsLinkSigner},
    queues::{SqsDeadLetterQueue, SqsDeliveryQueue, SqsEventQueue, SqsRetryQueue},
    tenants::{DynamoTenantDirectory, DynamoTenantNames},
};

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`,
/// which points the clients at a local emulator). Loading it reads the environment and may
/// call the credentials provider, so call it once per cold start and build every client from
/// the result.
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The KMS key that seals tenants' secrets (`SECRETS_KEY_ID`), as every function and `hookctl`
/// reach it.
pub fn secrets_keys(
    sdk: &SdkConfig,
    key_id: &str,
) -> std::sync::Arc<dyn crate::sealing::KeyService> {
    std::sync::Arc::new(KmsKeys::new(aws_sdk_kms::Client::new(sdk), key_id))
}

/// An S3 client for the payload bucket. Path-style requests (`endpoint/bucket/key`): AWS serves
/// them, and they reach an emulator's endpoint as well, with no per-bucket host name.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// An SDK error in one line: the service's code and message, or the chain of causes for
/// transport failures. Not the SDK's `Debug`, which includes the raw response, and a raw
/// response can hold an item (a payload, a secret).
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: Error + ProvideErrorMetadata + 'static,
    R: Debug,
{
    if let Some(service) = err.as_service_error() {
        return format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        );
    }
    crate::errors::one_line(err)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    use super::*;

    #[test]
    fn transport_errors_show_their_causes() {
        let err: SdkError<PutItemError, ()> = SdkError::timeout_error("after 3.1s");
        assert_eq!(describe(&err), "request has timed out: after 3.1s");
    }
}
