//! What every DynamoDB adapter shares: item reading ([`item`]), expressions built only from
//! placeholders ([`expression`]), and one way to turn an SDK failure into a [`StoreError`].

pub(crate) mod deflate;
pub(crate) mod expression;
pub(crate) mod item;

use std::{error::Error, fmt::Debug};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::{aws::describe, ports::StoreError};

/// The codes of failures that retrying cannot cure: the request itself is refused (too large,
/// too many items, an invalid value), so the same input fails the same way every time.
const PERMANENT_CODES: [&str; 2] = [
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
];

/// A DynamoDB call that failed: [`StoreError::Rejected`] when DynamoDB refuses the request
/// itself, else [`StoreError::Unavailable`].
pub(crate) fn unavailable<E, R>(operation: &str, table: &str, err: &SdkError<E, R>) -> StoreError
where
    E: Error + ProvideErrorMetadata + 'static,
    R: Debug,
{
    let text = format!("{operation} on {table}: {}", describe(err));
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    if code.is_some_and(|c| PERMANENT_CODES.contains(&c)) {
        StoreError::Rejected(text)
    } else {
        StoreError::Unavailable(text)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::{
        error::ErrorMetadata,
        operation::put_item::PutItemError,
        types::error::{ConditionalCheckFailedException, InternalServerError},
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
    fn requests_dynamodb_refuses_are_permanent_and_outages_are_not() {
        let refused = SdkError::service_error(
            PutItemError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("Item size has exceeded the maximum allowed size")
                    .build(),
            ),
            (),
        );
        assert!(matches!(
            unavailable("PutItem", "events", &refused),
            StoreError::Rejected(_)
        ));
        let down = SdkError::service_error(
            PutItemError::InternalServerError(
                InternalServerError::builder()
                    .message("try again")
                    .meta(ErrorMetadata::builder().code("InternalServerError").build())
                    .build(),
            ),
            (),
        );
        assert!(matches!(
            unavailable("PutItem", "events", &down),
            StoreError::Unavailable(_)
        ));
    }
}
