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

/// The clients the stack is provisioned and used with.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            s3: shared::aws::s3_client(sdk),
        }
    }
}

/// The clients for `endpoint`.
pub async fn clients(endpoint: &str) -> Clients {
    Clients::new(&sdk_config(endpoint).await)
}
