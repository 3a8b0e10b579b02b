//! Payloads too large for their record, kept in S3: the record holds only where. Objects are
//! written before the record (a record never points at nothing), named by the event and the
//! payload's hash (a second delivery of the same id with other bytes never overwrites the
//! first's), and encrypted at rest by the bucket. The bucket's lifecycle expires objects tagged
//! `state=done`. An object is written with that tag, since nearly every event is processed
//! first time (a tag set on upload costs no request); a failed attempt re-tags it `kept`, so a
//! failed or dead event's payload waits for its operator, and its processing or discard tags it
//! `done` again.

use aws_sdk_s3::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{Tag, Tagging},
};
use sha2::{Digest, Sha256};

use crate::{aws::describe, ports::StoreError, record::EventKey};

/// Payloads that store (deflated) in up to this many bytes stay in the record: no S3 request.
/// A larger one would cost a write unit per KB twice, at the put and at the `processed` mark
/// (an update bills the whole item), which passes S3's PUT and GET around 4 KiB.
pub const INLINE_PAYLOAD_BYTES: usize = 4 * 1024;

/// The tag the bucket's lifecycle rule expires objects by.
pub const DONE_TAG: (&str, &str) = ("state", "done");

/// The tag that keeps a failed or dead event's payload from expiring.
pub const KEPT_TAG: (&str, &str) = ("state", "kept");

/// The bucket payloads go to.
#[derive(Debug, Clone)]
pub(crate) struct PayloadBucket {
    pub client: crate::aws::LazyClient<Client>,
    pub bucket: String,
}

fn s3_error<E, R>(operation: &str, bucket: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("{operation} on {bucket}: {}", describe(err)))
}

impl PayloadBucket {
    pub fn new(
        client: impl Into<crate::aws::LazyClient<Client>>,
        bucket: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            bucket: bucket.into(),
        }
    }

    /// Where `key`'s payload with `hash` is kept: the tenant, then digests only, so no
    /// provider-chosen characters reach an object key.
    pub fn location(key: &EventKey, hash: &str) -> String {
        let event = hex::encode(Sha256::digest(
            format!("{}#{}#{}", key.tenant, key.provider, key.event_id).as_bytes(),
        ));
        format!("payloads/{}/{event}/{hash}", key.tenant)
    }

    pub async fn put(&self, location: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.client
            .get()
            .put_object()
            .bucket(&self.bucket)
            .key(location)
            .body(ByteStream::from(payload.to_vec()))
            .tagging(format!("{}={}", DONE_TAG.0, DONE_TAG.1))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &self.bucket, &e))?;
        Ok(())
    }

    /// The payload at `location`. Gone (expired, deleted) is permanent: no retry brings it back.
    pub async fn get(&self, location: &str) -> Result<Vec<u8>, StoreError> {
        let output = match self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(location)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(StoreError::Rejected(format!(
                    "the payload at {location} is gone"
                )));
            }
            Err(e) => return Err(s3_error("GetObject", &self.bucket, &e)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {location}: {e}")))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Delete the payload at `location` now (an erasure). Deleting what is already gone
    /// succeeds, so a retried erasure finishes.
    pub async fn delete(&self, location: &str) -> Result<(), StoreError> {
        self.client
            .get()
            .delete_object()
            .bucket(&self.bucket)
            .key(location)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", &self.bucket, &e))?;
        Ok(())
    }

    /// Let the lifecycle expire the payload at `location`.
    pub async fn release(&self, location: &str) -> Result<(), StoreError> {
        self.tag(location, DONE_TAG).await
    }

    /// Keep the payload at `location` from expiring.
    pub async fn keep(&self, location: &str) -> Result<(), StoreError> {
        self.tag(location, KEPT_TAG).await
    }

    async fn tag(&self, location: &str, (key, value): (&str, &str)) -> Result<(), StoreError> {
        let tag = Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| StoreError::Rejected(format!("building a tag: {e}")))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| StoreError::Rejected(format!("building a tag set: {e}")))?;
        self.client
            .get()
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(location)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| s3_error("PutObjectTagging", &self.bucket, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{EventId, TenantId},
        provider::Provider,
    };

    #[test]
    fn locations_are_per_tenant_and_hash_and_never_carry_the_providers_characters() {
        let key = EventKey {
            tenant: TenantId::parse("acme").expect("tenant"),
            provider: Provider::GitHub,
            event_id: EventId::parse("../../evil?x=1").expect("id"),
        };
        let a = PayloadBucket::location(&key, "aa");
        let b = PayloadBucket::location(&key, "bb");
        assert!(a.starts_with("payloads/acme/"));
        assert_ne!(a, b, "other bytes under the same id never overwrite");
        assert!(!a.contains("..") && !a.contains('?'));
    }
}
