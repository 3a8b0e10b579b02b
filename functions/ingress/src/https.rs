//! The HTTPS client the ingress fetches providers' keys with (PayPal's certificates, Google's
//! signing keys): the system's roots, HTTPS only, HTTP/1, no redirects followed, each call
//! bounded in time and each body in size. It is built on the first fetch: most ingresses never
//! serve those providers, and none should read the root store before its first poll.

use std::{sync::OnceLock, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Response, Uri, body::Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// How long a request, and then reading its body, may each take before the delivery is
/// answered 503 (the provider retries).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why a fetch gave nothing: every case is the provider's to retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable;

/// A client built on first use; `None` inside if the system has no usable root certificates.
#[derive(Debug, Default)]
pub struct LazyClient(OnceLock<Option<HttpsClient>>);

impl LazyClient {
    fn client(&self) -> Option<&HttpsClient> {
        self.0
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

    /// GET `uri`: the response's head, within the timeout. `what` names the fetch in the
    /// error logged when the system has no root certificates.
    pub async fn get(&self, uri: Uri, what: &str) -> Result<Response<Incoming>, Unreachable> {
        let Some(client) = self.client() else {
            tracing::error!("no system root certificates: {what} cannot be fetched");
            return Err(Unreachable);
        };
        tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
            .await
            .map_err(|_| Unreachable)?
            .map_err(|_| Unreachable)
    }
}

/// At most `limit` bytes of `response`'s body, within the timeout.
pub async fn body(response: Response<Incoming>, limit: usize) -> Result<Vec<u8>, Unreachable> {
    let collected = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(response.into_body(), limit).collect(),
    )
    .await
    .map_err(|_| Unreachable)?
    .map_err(|_| Unreachable)?;
    Ok(collected.to_bytes().to_vec())
}
