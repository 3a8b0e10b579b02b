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
    outbound::{DUE_SHARDS, DynamoOutboundStore, ENDPOINT_SHARDS},
    portal::{DynamoPortalStore, KmsLinkSigner},
    queues::{SqsDeadLetterQueue, SqsDeliveryQueue, SqsEventQueue, SqsRetryQueue},
    tenants::{DynamoTenantDirectory, DynamoTenantNames},
};

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`,
/// which points the clients at a local emulator). Loading it reads the environment and may
/// call the credentials provider, so call it once per cold start and build every client from
/// the result.
pub async fn sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    // An endpoint of one's own (an emulator, a proxy) may use any authority: the system's.
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return loader.load().await;
    }
    match amazon_https_client() {
        Some(http) => loader.http_client(http).load().await,
        None => loader.load().await,
    }
}

/// Amazon's root certificate authorities (Amazon Root CA 1 to 4 and Starfield Services Root
/// G2), the ones AWS names for its endpoints' certificates.
const AMAZON_ROOTS: &[u8] = include_bytes!("../certs/amazon-roots.pem");

/// The SDK's HTTPS client trusting Amazon's roots only. The default one reads and parses the
/// system's whole certificate store while the SDK loads, which was most of a cold start; AWS's
/// endpoints need five roots.
fn amazon_https_client() -> Option<aws_sdk_dynamodb::config::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    let roots = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS);
    let context = tls::TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// The KMS key that seals tenants' secrets (`SECRETS_KEY_ID`), as every function and `hookctl`
/// reach it. Its client is built when a secret is first sealed or opened, not at cold start.
pub fn secrets_keys(
    sdk: &SdkConfig,
    key_id: &str,
) -> std::sync::Arc<dyn crate::sealing::KeyService> {
    std::sync::Arc::new(KmsKeys::new(
        LazyClient::new(sdk, aws_sdk_kms::Client::new),
        key_id,
    ))
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

/// [`s3_client`], built when a large payload first needs it rather than at every cold start.
pub fn s3_on_first_use(sdk: &SdkConfig) -> LazyClient<aws_sdk_s3::Client> {
    LazyClient::new(sdk, s3_client)
}

/// An SDK client built on first use, from the configuration loaded once at cold start: a
/// function whose requests seldom need a service does not build its client (its endpoint
/// rules, its interceptors) before its first poll.
#[derive(Clone)]
pub struct LazyClient<C> {
    sdk: Option<SdkConfig>,
    build: fn(&SdkConfig) -> C,
    client: std::sync::Arc<std::sync::OnceLock<C>>,
}

impl<C> LazyClient<C> {
    pub fn new(sdk: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self {
        Self {
            sdk: Some(sdk.clone()),
            build,
            client: std::sync::Arc::default(),
        }
    }

    /// The client, built now if this is its first use.
    pub fn get(&self) -> &C {
        self.client.get_or_init(|| {
            let sdk = self
                .sdk
                .clone()
                .unwrap_or_else(|| SdkConfig::builder().build());
            (self.build)(&sdk)
        })
    }
}

/// A client already built (tests, tools).
impl<C> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self {
            sdk: None,
            build: |_| unreachable!("a ready client is never built"),
            client: std::sync::Arc::new(std::sync::OnceLock::from(client)),
        }
    }
}

impl<C> Debug for LazyClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.client.get().is_some())
            .finish()
    }
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
    fn amazons_five_roots_are_trust_anchors() {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let roots: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .collect::<Result<_, _>>()
            .expect("PEM");
        assert_eq!(roots.len(), 5);
        for root in &roots {
            webpki::anchor_from_trusted_cert(root).expect("a usable trust anchor");
        }
        assert!(amazon_https_client().is_some());
    }

    #[test]
    fn transport_errors_show_their_causes() {
        let err: SdkError<PutItemError, ()> = SdkError::timeout_error("after 3.1s");
        assert_eq!(describe(&err), "request has timed out: after 3.1s");
    }
}
