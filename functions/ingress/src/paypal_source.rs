//! PayPal's certificate bundles over HTTPS, for [`shared::verify::PayPalCertificates`]. It is
//! only asked for URLs that passed the verifier's host and path allowlist; answers are bounded
//! in size and time, redirects are not followed. The HTTPS client and the system's root store
//! it reads are built on the first fetch: most ingresses never serve PayPal, and none should
//! read the root store before its first poll.

use std::{sync::OnceLock, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use shared::verify::{CertificateFetchError, CertificateSource};

/// The largest bundle read: a leaf and two intermediates fit with room to spare.
const MAX_BUNDLE_BYTES: usize = 64 * 1024;

/// How long a fetch may take before the delivery is answered 503 (PayPal retries).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// [`CertificateSource`] over HTTPS with the system's roots.
#[derive(Debug, Default)]
pub struct HttpsCertificates {
    /// Built on first use; `None` if the system has no usable root certificates.
    client: OnceLock<Option<HttpsClient>>,
}

impl HttpsCertificates {
    fn client(&self) -> Option<&HttpsClient> {
        self.client
            .get_or_init(|| {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .ok()?
                    .https_only()
                    .enable_http1()
                    .build();
                Some(Client::builder(TokioExecutor::new()).build(https))
            })
            .as_ref()
    }
}

#[async_trait]
impl CertificateSource for HttpsCertificates {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, CertificateFetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| CertificateFetchError::NotFound)?;
        let Some(client) = self.client() else {
            tracing::error!("no system root certificates: PayPal's certificates cannot be fetched");
            return Err(CertificateFetchError::Unavailable);
        };
        let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
            .await
            .map_err(|_| CertificateFetchError::Unavailable)?
            .map_err(|_| CertificateFetchError::Unavailable)?;
        let status = response.status();
        if status.is_client_error() || status.is_redirection() {
            return Err(CertificateFetchError::NotFound);
        }
        if !status.is_success() {
            return Err(CertificateFetchError::Unavailable);
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_BUNDLE_BYTES).collect(),
        )
        .await
        .map_err(|_| CertificateFetchError::Unavailable)?
        .map_err(|_| CertificateFetchError::Unavailable)?;
        Ok(body.to_bytes().to_vec())
    }
}
