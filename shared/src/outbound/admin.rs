//! Managing endpoints: add, change, enable, disable, rotate the secret, delete. Every input is
//! checked before anything is written (the URL through the SSRF guard, with a lookup), and
//! every write is conditioned on the version that was read.

use thiserror::Error;
use tracing::info;

use super::{
    Outbound,
    endpoint::{self, CustomHeaders, Endpoint, EndpointError, EndpointHeaders},
    filter::{EventFilter, FilterError},
    ids::EndpointId,
    ports::{DeliveryQueue, OutboundStore},
    publish::PublishError,
    ssrf::{self, Refused},
};
use crate::{clock::Clock, ids::TenantId, ports::StoreError, secret::Secret};

/// How many held deliveries enabling an endpoint releases at once; reconcile does the rest.
const RELEASE_ON_ENABLE: u32 = 500;

/// Why an endpoint change was refused or failed. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    #[error("URL refused: {0}")]
    Url(#[from] Refused),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("no endpoint {0}")]
    UnknownEndpoint(EndpointId),
    #[error("a tenant has at most {0} endpoints: delete one before adding another")]
    TooManyEndpoints(usize),
    /// Another change landed since this one read the endpoint.
    #[error("the endpoint changed meanwhile; read it again and retry")]
    Conflict,
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl AdminError {
    /// Whether the request was at fault (a 4xx), rather than the service.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::Conflict,
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<PublishError> for AdminError {
    fn from(e: PublishError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// What to change on an endpoint; `None` leaves a field as it is. A new endpoint needs `url`.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    /// Patterns; empty means every type.
    pub filter: Option<Vec<String>>,
    /// Deliveries per second; `0` removes the limit.
    pub rate_limit: Option<String>,
    /// `name: value` lines, replacing the current set.
    pub headers: Option<Vec<String>>,
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    /// Register a new endpoint; with `secret` to reuse one the partner has, else a fresh one.
    /// The endpoint as stored, with its secret.
    pub async fn add_endpoint(
        &self,
        tenant: &TenantId,
        change: EndpointChange,
        secret: Option<Secret>,
    ) -> Result<Endpoint, AdminError> {
        let url = change
            .url
            .as_deref()
            .ok_or(AdminError::Url(Refused::InvalidUrl))?;
        let url = ssrf::check_url(url, &*self.resolver, self.settings.egress).await?;
        // Refused early here; the insert counts again, atomically, for adds racing at the limit.
        let existing = self.store.endpoints(tenant).await?.len();
        if existing >= self.settings.max_endpoints {
            return Err(AdminError::TooManyEndpoints(self.settings.max_endpoints));
        }
        let secret = match secret {
            Some(secret) => {
                endpoint::check_secret(&secret)?;
                secret
            }
            None => endpoint::generate_secret()?,
        };
        let mut endpoint = Endpoint::new(
            tenant.clone(),
            url,
            EventFilter::all(),
            secret,
            self.clock.now(),
        );
        apply(
            &mut endpoint,
            EndpointChange {
                url: None,
                ..change
            },
        )?;
        let max = self.settings.max_endpoints;
        if !self.store.insert_endpoint(&endpoint, existing, max).await? {
            return Err(AdminError::TooManyEndpoints(max));
        }
        info!(%tenant, endpoint_id = %endpoint.id, url = %endpoint.url.redacted(), "endpoint added");
        Ok(Endpoint {
            version: endpoint.version + 1,
            ..endpoint
        })
    }

    /// Change an endpoint's configuration.
    pub async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        change: EndpointChange,
    ) -> Result<Endpoint, AdminError> {
        let mut endpoint = self.existing(tenant, id).await?;
        if let Some(url) = &change.url {
            endpoint.url = ssrf::check_url(url, &*self.resolver, self.settings.egress).await?;
        }
        apply(
            &mut endpoint,
            EndpointChange {
                url: None,
                ..change
            },
        )?;
        endpoint.updated_at = self.clock.now();
        self.store.put_endpoint(&endpoint).await?;
        info!(%tenant, endpoint_id = %id, "endpoint updated");
        Ok(Endpoint {
            version: endpoint.version + 1,
            ..endpoint
        })
    }

    /// Turn an endpoint on or off. On: its health is forgotten and its held deliveries go
    /// out in order of creation. Off: new deliveries are held.
    pub async fn set_enabled(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        enabled: bool,
    ) -> Result<Endpoint, AdminError> {
        let mut endpoint = self.existing(tenant, id).await?;
        let now = self.clock.now();
        endpoint.disabled_by_operator = (!enabled).then_some(now);
        endpoint.updated_at = now;
        self.store.put_endpoint(&endpoint).await?;
        if enabled {
            self.store.reset_health(tenant, id).await?;
            endpoint.health = Default::default();
            self.release_held(tenant, id, RELEASE_ON_ENABLE).await?;
        }
        info!(%tenant, endpoint_id = %id, enabled, "endpoint switched");
        Ok(Endpoint {
            version: endpoint.version + 1,
            ..endpoint
        })
    }

    /// Replace the signing secret (with `secret`, or a fresh one); the previous keeps signing
    /// beside it for the overlap. The endpoint with its secrets.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        secret: Option<Secret>,
    ) -> Result<Endpoint, AdminError> {
        let mut endpoint = self
            .store
            .endpoint_with_secrets(tenant, id)
            .await?
            .ok_or_else(|| AdminError::UnknownEndpoint(id.clone()))?;
        let next = match secret {
            Some(secret) => {
                endpoint::check_secret(&secret)?;
                secret
            }
            None => endpoint::generate_secret()?,
        };
        let now = self.clock.now();
        if !endpoint.rotate(next, now, self.settings.secret_overlap) {
            return Err(AdminError::Unavailable(
                "the endpoint's secrets were not read".into(),
            ));
        }
        endpoint.updated_at = now;
        self.store.put_endpoint(&endpoint).await?;
        info!(%tenant, endpoint_id = %id, "endpoint secret rotated");
        Ok(Endpoint {
            version: endpoint.version + 1,
            ..endpoint
        })
    }

    /// Delete an endpoint; its pending and held deliveries are cancelled as they come up.
    pub async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<(), AdminError> {
        let endpoint = self.existing(tenant, id).await?;
        self.store
            .delete_endpoint(tenant, id, endpoint.version)
            .await?;
        // Held deliveries wait for no one now, all of them, page by page (nothing would find
        // them later: the endpoint's holding mark went with it); pending ones are cancelled
        // when they come up.
        let now = self.clock.now();
        loop {
            let held = self
                .store
                .held_deliveries(tenant, id, RELEASE_ON_ENABLE)
                .await?;
            let mut cancelled = 0;
            for delivery in &held.deliveries {
                if self
                    .store
                    .move_delivery(
                        &delivery.key,
                        &[super::delivery::DeliveryStatus::Held],
                        super::delivery::DeliveryStatus::Cancelled,
                        false,
                        now,
                        Some(now + self.settings.retention),
                    )
                    .await?
                {
                    cancelled += 1;
                }
            }
            if !held.more || cancelled == 0 {
                break;
            }
        }
        info!(%tenant, endpoint_id = %id, "endpoint deleted");
        Ok(())
    }

    async fn existing(&self, tenant: &TenantId, id: &EndpointId) -> Result<Endpoint, AdminError> {
        self.store
            .endpoint(tenant, id)
            .await?
            .ok_or_else(|| AdminError::UnknownEndpoint(id.clone()))
    }
}

/// Apply the checked fields of `change` (all but the URL).
fn apply(endpoint: &mut Endpoint, change: EndpointChange) -> Result<(), AdminError> {
    if let Some(description) = &change.description {
        endpoint.describe(description)?;
    }
    if let Some(filter) = &change.filter {
        endpoint.filter = EventFilter::parse(filter)?;
    }
    if let Some(limit) = &change.rate_limit {
        endpoint.rate_limit = endpoint::parse_rate_limit(limit)?;
    }
    if let Some(headers) = &change.headers {
        endpoint.headers = EndpointHeaders::Open(CustomHeaders::parse_lines(headers)?);
    }
    Ok(())
}
