//! Google's OIDC signing keys over HTTPS, for [`shared::verify::google_oidc::GoogleKeys`]. It
//! fetches one URL only, [`CERTS_URL`], so nothing a request carries can steer it; the answer
//! is bounded in size and time, redirects are not followed ([`crate::https`]), and its
//! `Cache-Control: max-age` goes to the cache (which bounds it).

use async_trait::async_trait;
use shared::verify::google_oidc::{
    CERTS_URL, JwksResponse, JwksSource, JwksUnavailable, MAX_JWKS_BYTES, max_age,
};

use crate::https::{self, LazyClient};

/// [`JwksSource`] over HTTPS with the system's roots, from [`CERTS_URL`] alone.
#[derive(Debug, Default)]
pub struct GoogleJwksHttps {
    client: LazyClient,
}

#[async_trait]
impl JwksSource for GoogleJwksHttps {
    async fn fetch(&self) -> Result<JwksResponse, JwksUnavailable> {
        let uri = hyper::Uri::from_static(CERTS_URL);
        let response = self
            .client
            .get(uri, "Google's keys")
            .await
            .map_err(|_| JwksUnavailable)?;
        // Anything but a 200 (a redirect included) is not the key set.
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "Google's key endpoint refused");
            return Err(JwksUnavailable);
        }
        let max_age = max_age(response.headers());
        let body = https::body(response, MAX_JWKS_BYTES)
            .await
            .map_err(|_| JwksUnavailable)?;
        Ok(JwksResponse { body, max_age })
    }
}
