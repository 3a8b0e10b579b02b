//! The AWS adapters of the ports: DynamoDB for event records and tenant configuration, SQS for
//! the events queue. Item ↔ domain conversions live next to each adapter and read attributes
//! only through the `item` helpers, so a malformed item is refused by name and never half-read.

mod events;
mod item;
mod processing;
mod queue;
mod replay;
mod retry_queue;
mod tenants;

use std::{error::Error, fmt::Debug};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use self::{
    events::{DynamoEventStore, PENDING_INDEX, PENDING_SHARDS, STATUS_INDEX, SUMMARY_ATTRIBUTES},
    processing::MAX_ERROR_CHARS,
    queue::SqsEventQueue,
    replay::{DynamoTenantNames, SqsDeadLetterQueue},
    retry_queue::{MAX_VISIBILITY_DELAY, SqsRetryQueue},
    tenants::DynamoTenantDirectory,
};
use crate::ports::StoreError;

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`,
/// which points the clients at a local emulator). Loading it reads the environment and may
/// call the credentials provider, so call it once per cold start and build every client from
/// the result.
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A DynamoDB call that failed for reasons of its own.
fn unavailable<E, R>(operation: &str, table: &str, err: &SdkError<E, R>) -> StoreError
where
    E: Error + ProvideErrorMetadata + 'static,
    R: Debug,
{
    StoreError::Unavailable(format!("{operation} on {table}: {}", describe(err)))
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
    use aws_sdk_dynamodb::{
        error::ErrorMetadata, operation::put_item::PutItemError,
        types::error::ConditionalCheckFailedException,
    };

    use super::*;

    #[test]
    fn service_errors_show_code_and_message_never_the_response() {
        let refused = ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .item("payload", item::s("sk_live_secret"))
            .meta(
                ErrorMetadata::builder()
                    .code("ConditionalCheckFailedException")
                    .message("The conditional request failed")
                    .build(),
            )
            .build();
        let err = SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(refused),
            "raw response holding sk_live_secret",
        );
        assert_eq!(
            unavailable("PutItem", "events", &err),
            StoreError::Unavailable(
                "PutItem on events: ConditionalCheckFailedException: \
                 The conditional request failed"
                    .into()
            )
        );
    }

    #[test]
    fn transport_errors_show_their_causes() {
        let err: SdkError<PutItemError, ()> = SdkError::timeout_error("after 3.1s");
        assert_eq!(describe(&err), "request has timed out: after 3.1s");
    }
}
