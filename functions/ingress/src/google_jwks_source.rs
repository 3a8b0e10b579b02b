//! Google's OIDC signing keys over HTTPS, for [`shared::verify::google_oidc::GoogleKeys`]. It
//! fetches one URL only, [`CERTS_URL`], so nothing a request carries can steer it; the answer
//! is bounded in size and time, redirects are not followed, and its `Cache-Control: max-age`
//! goes to the cache (which bounds it). The HTTPS client and the system's root store it reads
//! are built on the first fetch: most ingresses never serve Google, and none should read the
//! root store before its first poll.

use std::{sync::OnceLock, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use shared::verify::google_oidc::{
    CERTS_URL, JwksResponse, JwksSource, JwksUnavailable, MAX_JWKS_BYTES, max_age,
};

/// How long a fetch may take before the delivery is answered 503 (Google retries).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// [`JwksSource`] over HTTPS with the system's roots, from [`CERTS_URL`] alone.
#[derive(Debug, Default)]
pub struct GoogleJwksHttps {
    /// Built on first use; `None` if the system has no usable root certificates.
    client: OnceLock<Option<HttpsClient>>,
}

impl GoogleJwksHttps {
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
impl JwksSource for GoogleJwksHttps {
    async fn fetch(&self) -> Result<JwksResponse, JwksUnavailable> {
        let Some(client) = self.client() else {
            tracing::error!("no system root certificates: Google's keys cannot be fetched");
            return Err(JwksUnavailable);
        };
        let uri = hyper::Uri::from_static(CERTS_URL);
        let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
            .await
            .map_err(|_| JwksUnavailable)?
            .map_err(|_| JwksUnavailable)?;
        // Anything but a 200 (a redirect included) is not the key set.
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "Google's key endpoint refused");
            return Err(JwksUnavailable);
        }
        let max_age = max_age(response.headers());
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| JwksUnavailable)?
        .map_err(|_| JwksUnavailable)?;
        Ok(JwksResponse {
            body: body.to_bytes().to_vec(),
            max_age,
        })
    }
}
