//! PayPal's certificate bundles over HTTPS, for [`shared::verify::PayPalCertificates`]. It is
//! only asked for URLs that passed the verifier's host and path allowlist; answers are bounded
//! in size and time, redirects are not followed ([`crate::https`]).

use async_trait::async_trait;
use shared::verify::{CertificateFetchError, CertificateSource};

use crate::https::{self, LazyClient};

/// The largest bundle read: a leaf and two intermediates fit with room to spare.
const MAX_BUNDLE_BYTES: usize = 64 * 1024;

/// [`CertificateSource`] over HTTPS with the system's roots.
#[derive(Debug, Default)]
pub struct HttpsCertificates {
    client: LazyClient,
}

#[async_trait]
impl CertificateSource for HttpsCertificates {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, CertificateFetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| CertificateFetchError::NotFound)?;
        let unavailable = |_| CertificateFetchError::Unavailable;
        let response = self
            .client
            .get(uri, "PayPal's certificates")
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if status.is_client_error() || status.is_redirection() {
            return Err(CertificateFetchError::NotFound);
        }
        if !status.is_success() {
            return Err(CertificateFetchError::Unavailable);
        }
        https::body(response, MAX_BUNDLE_BYTES)
            .await
            .map_err(unavailable)
    }
}
