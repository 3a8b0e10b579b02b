//! SDK configuration for the emulator.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// SDK configuration for `endpoint` with throwaway credentials: the emulator accepts any, and
/// real credentials must never be sent to it.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "local-stack"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// DynamoDB and SQS clients for `endpoint`.
pub async fn clients(endpoint: &str) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let sdk = sdk_config(endpoint).await;
    (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    )
}
