//! The ingress use case: acknowledge a webhook only once it is durably stored and enqueued.
//!
//! 1. Route: unknown tenant, provider or unsigned-route token → 401, exactly like a bad
//!    signature, so names cannot be enumerated (the reason goes to logs and metrics only).
//! 2. Size: over the limit → 413.
//! 3. Verify the raw body with the tenant's secrets → 401 on failure (reason logged and
//!    counted, never returned). Unsigned deliveries pass only where the tenant allowed them,
//!    on the route carrying their token.
//! 4. Read the event id → 400 when there is none.
//! 5. Send the pointer message, then the conditional put of the record, and answer 200. Same
//!    id, other bytes → 409. Same id otherwise → 200 duplicate (its pointer, just sent, finds
//!    it processed, or finishes it).
//!
//! The pointer goes first, so a stored record always has its pointer on the queue: no record
//! waits for a sweeper, and the record is written once. A pointer whose record then fails to
//! be stored names nothing the provider was told about (it got a 503 and retries); the
//! processor drops it once the ingress can no longer be writing it.
//!
//! Any storage or queue failure → 503, so the provider retries; nothing is acknowledged early.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use http::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{Instrument, Span, debug, error, field, info, info_span, warn};

use crate::{
    clock::Clock,
    extract::{ExtractError, extract},
    ids::{EventId, TenantId},
    message::QueueMessage,
    metrics::{self, MetricLine, MetricSink},
    ports::{ContentClaim, EventQueue, EventStore, PutOutcome, StoreError, TenantDirectory},
    provider::Provider,
    record::{Correlation, EventKey, EventRecord, Verification},
    secret::SecretSlot,
    tenant::ProviderConfig,
    verify::{
        PayPalCertificates, PayPalContext, RequestUrl, VerifyContext, VerifyError,
        declared::{HandshakeAnswer, HandshakeRequest},
        google_oidc::GoogleKeys,
    },
};

/// The default body limit: everything a provider legitimately sends that reaches the function.
pub const DEFAULT_MAX_BODY_BYTES: usize = MAX_STORED_BODY_BYTES;

/// The largest body `MAX_BODY_BYTES` may allow: Lambda's 6 MB request limit (API Gateway's is
/// 10 MB, so Lambda's binds). A body too large for its record is kept in S3.
pub const MAX_STORED_BODY_BYTES: usize = 6_000_000;

/// What a 503 asks the provider to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Knobs of the ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSettings {
    pub max_body_bytes: usize,
    /// How long a delivery's signed content is remembered where the id is not signed: as long
    /// as its record is kept.
    pub retention: Duration,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            retention: crate::record::DEFAULT_RETENTION,
        }
    }
}

/// One HTTP delivery, as the adapter hands it over: route segments, headers and the body bytes
/// exactly as received.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub tenant: &'a str,
    pub provider: &'a str,
    /// The extra path segment of `/webhooks/{tenant}/{provider}/{token}`, if present.
    pub path_token: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub correlation: Correlation,
    /// The host the request was addressed to, and its path and raw query as sent: Twilio signs
    /// the URL it called, which is rebuilt from these (or the tenant's public base URL).
    pub host: Option<&'a str>,
    /// The HTTP method: providers' handshakes may come as a `GET`; events are `POST`s.
    pub method: &'a str,
    pub path_and_query: Option<&'a str>,
}

/// How a delivery ended. Each maps to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and enqueued.
    Accepted {
        event_id: EventId,
    },
    /// Already stored with the same bytes, and on its way.
    Duplicate {
        event_id: EventId,
    },
    /// A provider's check of the endpoint (Slack's `url_verification`, Zoom's URL validation,
    /// Meta's subscription GET, ...), answered as the provider expects and stored nowhere.
    Handshake(HandshakeAnswer),
    /// A `GET` on a route whose provider has no handshake that uses one.
    MethodNotAllowed,
    /// No configuration for this tenant and provider (or a token route it does not allow):
    /// answered exactly like a bad signature.
    UnknownRoute(UnknownRoute),
    PayloadTooLarge {
        limit: usize,
    },
    Unauthorized(VerifyError),
    BadRequest(ExtractError),
    /// The id was seen before with a different payload: a replay attack or a provider bug.
    Conflict {
        event_id: EventId,
    },
    /// A dependency failed; the provider should retry.
    Unavailable,
}

impl Outcome {
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Accepted { .. } | Self::Duplicate { .. } | Self::Handshake(_) => 200,
            Self::MethodNotAllowed => 405,
            Self::BadRequest(_) => 400,
            Self::Unauthorized(e) if e.is_configuration_error() => 503,
            Self::Unauthorized(_) => 401,
            Self::UnknownRoute(_) => 401,
            Self::Conflict { .. } => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::Unavailable => 503,
        }
    }

    /// The JSON body. Signature failures get a generic message: the reason is for our logs, not
    /// for whoever is probing the endpoint.
    pub fn body(&self) -> Value {
        match self {
            Self::Accepted { event_id } => json!({ "received": true, "id": event_id.as_str() }),
            Self::Duplicate { event_id } => {
                json!({ "received": true, "id": event_id.as_str(), "duplicate": true })
            }
            Self::UnknownRoute(_) => json!({ "error": "invalid signature" }),
            Self::Handshake(answer) => serde_json::from_str(&answer.body)
                .unwrap_or_else(|_| Value::String(answer.body.clone())),
            Self::MethodNotAllowed => json!({ "error": "method not allowed: send a POST" }),
            Self::PayloadTooLarge { limit } => {
                json!({ "error": format!("payload larger than {limit} bytes") })
            }
            Self::Unauthorized(e) if e.is_configuration_error() => {
                json!({ "error": "temporarily unavailable" })
            }
            Self::Unauthorized(_) => json!({ "error": "invalid signature" }),
            Self::BadRequest(e) => json!({ "error": e.to_string() }),
            Self::Conflict { .. } => {
                json!({ "error": "event id already received with a different payload" })
            }
            Self::Unavailable => json!({ "error": "temporarily unavailable" }),
        }
    }

    /// `Retry-After` seconds, for answers that ask the provider to come back.
    pub fn retry_after(&self) -> Option<u64> {
        (self.status_code() == 503).then_some(RETRY_AFTER.as_secs())
    }

    /// The metric and log label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Duplicate { .. } => "duplicate",
            Self::Handshake(_) => "challenge",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownRoute(_) => "signature_failure",
            Self::PayloadTooLarge { .. } => "too_large",
            Self::Unauthorized(_) => "signature_failure",
            Self::BadRequest(_) => "bad_request",
            Self::Conflict { .. } => "conflict",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Why a route names nothing: for logs and metrics only, never the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownRoute {
    /// The tenant segment is not a valid tenant id.
    InvalidTenant,
    /// The provider segment names no provider.
    UnknownProvider,
    /// The tenant has no configuration for the provider.
    UnknownTenant,
    /// A token route for a tenant that does not allow unsigned deliveries, or another token.
    UnknownToken,
}

impl UnknownRoute {
    /// A stable label, as a signature failure's `reason` is.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidTenant => "invalid_tenant",
            Self::UnknownProvider => "unknown_provider",
            Self::UnknownTenant => "unknown_tenant",
            Self::UnknownToken => "unknown_route_token",
        }
    }
}

/// The ingress use case over its ports.
#[derive(Debug)]
pub struct Ingress<S, Q, D, C> {
    pub store: S,
    pub queue: Q,
    pub directory: D,
    pub clock: C,
    pub settings: IngressSettings,
    /// PayPal's certificate checker, shared by every tenant; PayPal deliveries are refused as a
    /// configuration error (503) without it.
    pub paypal: Option<Arc<PayPalCertificates>>,
    /// Google's signing keys, shared by every tenant; Firebase deliveries are refused as a
    /// configuration error (503) without them.
    pub google: Option<Arc<GoogleKeys>>,
    /// Where metric lines go: stdout unless replaced with [`Ingress::with_metrics`].
    pub metrics: Arc<dyn MetricSink>,
}

impl<S: EventStore, Q: EventQueue, D: TenantDirectory, C: Clock> Ingress<S, Q, D, C> {
    pub fn new(store: S, queue: Q, directory: D, clock: C, settings: IngressSettings) -> Self {
        Self {
            store,
            queue,
            directory,
            clock,
            settings,
            paypal: None,
            google: None,
            metrics: metrics::stdout(),
        }
    }

    /// Verify Google's OIDC pushes (Firebase) with `keys`.
    pub fn with_google(mut self, keys: Arc<GoogleKeys>) -> Self {
        self.google = Some(keys);
        self
    }

    /// Verify PayPal deliveries with `certificates`.
    pub fn with_paypal(mut self, certificates: Arc<PayPalCertificates>) -> Self {
        self.paypal = Some(certificates);
        self
    }

    /// Send metric lines to `sink` instead of stdout (tests read them back).
    pub fn with_metrics(mut self, sink: Arc<dyn MetricSink>) -> Self {
        self.metrics = sink;
        self
    }

    /// Handle one delivery, log it and emit its metrics. Every line of its life carries the
    /// delivery's span: tenant, provider, request ids, and the event id once known. An accepted
    /// delivery's one line at info is its metric line, which carries the same ids.
    pub async fn handle(&self, delivery: Delivery<'_>) -> Outcome {
        let started = Instant::now();
        let span = info_span!(
            "delivery",
            tenant = delivery.tenant,
            provider = delivery.provider,
            request_id = delivery.correlation.request_id.as_deref(),
            client_request_id = delivery.correlation.client_request_id.as_deref(),
            trace_id = delivery.correlation.trace.map(|t| t.trace_id()).as_deref(),
            span_id = delivery.correlation.trace.map(|t| t.span_id()).as_deref(),
            event_id = field::Empty,
        );
        let (outcome, unsigned) = self.accept(&delivery).instrument(span).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let provider = delivery
            .provider
            .parse::<Provider>()
            .map_or("unknown", Provider::as_str);
        let mut line = MetricLine::new(self.clock.now())
            .dimension(metrics::FUNCTION, metrics::INGRESS)
            .dimension(metrics::PROVIDER, provider)
            .dimension(metrics::OUTCOME, outcome.label())
            .count(metric_name(&outcome))
            .millis(metrics::ACK_LATENCY, latency_ms)
            .property(metrics::TENANT, delivery.tenant);
        match &outcome {
            Outcome::Unauthorized(reason) => {
                line = line.property(metrics::REASON, reason.reason());
            }
            Outcome::UnknownRoute(why) => {
                line = line.property(metrics::REASON, why.reason());
            }
            Outcome::Accepted { event_id }
            | Outcome::Duplicate { event_id }
            | Outcome::Conflict { event_id } => {
                line = line.property(metrics::EVENT_ID, event_id.as_str());
            }
            _ => {}
        }
        let correlation = &delivery.correlation;
        if let Some(id) = &correlation.request_id {
            line = line.property(metrics::REQUEST_ID, id.as_str());
        }
        if let Some(id) = &correlation.client_request_id {
            line = line.property(metrics::CLIENT_REQUEST_ID, id.as_str());
        }
        if unsigned {
            line = line.count(metrics::UNSIGNED_ACCEPTED);
        }
        self.metrics.emit(&line);
        outcome
    }

    /// The decision, without the bookkeeping. The flag says an unsigned delivery was accepted.
    async fn accept(&self, delivery: &Delivery<'_>) -> (Outcome, bool) {
        let Ok(tenant) = TenantId::parse(delivery.tenant) else {
            return refuse(UnknownRoute::InvalidTenant);
        };
        let Ok(provider) = delivery.provider.parse::<Provider>() else {
            return refuse(UnknownRoute::UnknownProvider);
        };
        if delivery.body.len() > self.settings.max_body_bytes {
            info!("refused: payload too large");
            return (
                Outcome::PayloadTooLarge {
                    limit: self.settings.max_body_bytes,
                },
                false,
            );
        }

        let config = match self.directory.provider_config(&tenant, provider).await {
            Ok(Some(config)) => config,
            Ok(None) => return refuse(UnknownRoute::UnknownTenant),
            Err(e) => {
                error!(error = %e, "tenant directory unavailable");
                return (Outcome::Unavailable, false);
            }
        };
        // The token route exists only for tenants that allowed unsigned deliveries.
        if delivery.path_token.is_some() && !config.admits_unsigned(delivery.path_token) {
            return refuse(UnknownRoute::UnknownToken);
        }

        let now = self.clock.now();
        // Handshakes the provider does not sign come first: a GET, or Graph's validation.
        let handshake = provider.handshake();
        if let Some(handshake) = handshake
            && let Some(answer) =
                handshake.before_auth(&handshake_request(delivery), &config.secrets, now)
        {
            return match answer {
                Ok(answer) => {
                    info!("answered the provider's handshake");
                    (Outcome::Handshake(answer), false)
                }
                Err(e) => {
                    warn!(reason = e.reason(), error = %e, "handshake refused");
                    (Outcome::Unauthorized(e), false)
                }
            };
        }
        if !delivery.method.eq_ignore_ascii_case("POST") {
            info!(method = delivery.method, "refused: not a POST");
            return (Outcome::MethodNotAllowed, false);
        }
        let verifier = config.verifier();
        let unsigned = !verifier.scheme.is_signed(delivery.headers)
            && config.admits_unsigned(delivery.path_token);
        let url = request_url(delivery, &config);
        let context = VerifyContext {
            url: url.as_ref(),
            public_keys: Some(&config.public_keys),
            paypal: match (&config.paypal_webhook_id, &self.paypal) {
                (Some(webhook_id), Some(certificates)) => Some(PayPalContext {
                    webhook_id,
                    certificates,
                }),
                _ => None,
            },
            google: self.google.as_deref(),
        };
        let verification = if unsigned {
            Verification::Unsigned
        } else {
            match verifier
                .verify_async(
                    delivery.body,
                    delivery.headers,
                    &config.secrets,
                    &context,
                    now,
                )
                .await
            {
                Ok(verified) => Verification::Verified(verified.secret),
                Err(e) => {
                    if e.is_configuration_error() {
                        error!(reason = e.reason(), error = %e,
                            "cannot verify: the tenant's configuration or a dependency");
                    } else {
                        warn!(reason = e.reason(), error = %e, "signature verification failed");
                    }
                    return (Outcome::Unauthorized(e), false);
                }
            }
        };

        // Slack, Discord, Zoom and Twitch check an endpoint with a signed request before they
        // send anything: answer it with the secret that verified it, store nothing.
        let slot = match &verification {
            Verification::Verified(slot) => *slot,
            _ => SecretSlot::Current,
        };
        if let Some(handshake) = handshake
            && let Some((_, secret)) = config.secrets.active(now).find(|(s, _)| *s == slot)
            && let Some(answer) = handshake.after_auth(&handshake_request(delivery), secret)
        {
            info!("answered the provider's signed handshake");
            return (Outcome::Handshake(answer), false);
        }

        let meta = match extract(
            provider,
            delivery.headers,
            delivery.body,
            config.generic_headers.as_ref(),
        ) {
            Ok(meta) => meta,
            Err(e) => {
                info!(error = %e, "refused: no readable event id");
                return (Outcome::BadRequest(e), false);
            }
        };
        Span::current().record("event_id", meta.event_id.as_str());
        if unsigned {
            warn!(
                security = true,
                "unsigned delivery accepted on the tenant's token route"
            );
        }

        let key = EventKey {
            tenant: tenant.clone(),
            provider,
            event_id: meta.event_id.clone(),
        };
        if !meta.id_signed
            && let Some(outcome) = self.dedupe_content(&key, delivery, &config, now).await
        {
            return (outcome, false);
        }
        let record = EventRecord::received(
            key,
            meta.event_type,
            meta.created_at,
            delivery.correlation.clone(),
            verification,
            delivery.body.to_vec(),
            now,
        );
        let outcome = self.store_and_enqueue(&record).await;
        let unsigned_accepted = unsigned && matches!(outcome, Outcome::Accepted { .. });
        (outcome, unsigned_accepted)
    }

    /// Where the signature does not cover the id, a captured delivery could come again under a
    /// fresh id: the signed content decides. The first id to carry it owns it; the same content
    /// under another id is a duplicate of that one (or, if that one was never stored, an
    /// earlier attempt that failed half-way, so this one takes over).
    async fn dedupe_content(
        &self,
        key: &EventKey,
        delivery: &Delivery<'_>,
        config: &ProviderConfig,
        now: SystemTime,
    ) -> Option<Outcome> {
        let content = signed_content_hash(delivery, config);
        let expires_at = now.checked_add(self.settings.retention).unwrap_or(now);
        let unavailable = |e: StoreError| {
            error!(error = %e, "event store unavailable; nothing acknowledged");
            Outcome::Unavailable
        };
        let owner = match self
            .store
            .claim_content(key, &content, None, expires_at)
            .await
        {
            Ok(ContentClaim::Claimed) => return None,
            Ok(ContentClaim::Seen(owner)) => owner,
            Err(e) => return Some(unavailable(e)),
        };
        let original = EventKey {
            event_id: owner.clone(),
            ..key.clone()
        };
        match self.store.get(&original).await {
            Ok(Some(_)) => {
                warn!(security = true, original = %owner,
                    "signed content already received under another id; answered as its duplicate");
                Some(Outcome::Duplicate { event_id: owner })
            }
            Ok(None) => match self
                .store
                .claim_content(key, &content, Some(&owner), expires_at)
                .await
            {
                Ok(ContentClaim::Claimed) => None,
                Ok(ContentClaim::Seen(other)) => Some(Outcome::Duplicate { event_id: other }),
                Err(e) => Some(unavailable(e)),
            },
            Err(e) => Some(unavailable(e)),
        }
    }

    async fn store_and_enqueue(&self, record: &EventRecord) -> Outcome {
        let event_id = record.key.event_id.clone();
        if let Err(outcome) = self.enqueue(record).await {
            return outcome;
        }
        match self.store.put_if_absent(record).await {
            // The store refuses the record itself (an item over its size limit): the same
            // bytes fail the same way every time, so a 503 would only loop the provider.
            Err(e) if e.is_permanent() => {
                error!(error = %e, "event store refused the record; refused");
                Outcome::PayloadTooLarge {
                    limit: self.settings.max_body_bytes,
                }
            }
            Err(e) => {
                error!(error = %e, "event store unavailable; nothing acknowledged");
                Outcome::Unavailable
            }
            Ok(PutOutcome::Inserted) => {
                debug!("accepted");
                Outcome::Accepted { event_id }
            }
            Ok(PutOutcome::Existing(stored))
                if stored.payload_hash != record.payload_hash && !redelivered(&stored, record) =>
            {
                warn!(
                    security = true,
                    "event id reused with a different payload; refused"
                );
                Outcome::Conflict { event_id }
            }
            Ok(PutOutcome::Existing(_)) => {
                debug!("duplicate delivery");
                Outcome::Duplicate { event_id }
            }
        }
    }

    /// Send the pointer. A failure is answered 503 with nothing stored.
    async fn enqueue(&self, record: &EventRecord) -> Result<(), Outcome> {
        let key = &record.key;
        let message = QueueMessage::new(key, &record.correlation);
        let Err(e) = self.queue.send(&message).await else {
            return Ok(());
        };
        error!(error = %e, "enqueue failed; nothing stored, the provider retries");
        let line = MetricLine::new(self.clock.now())
            .dimension(metrics::FUNCTION, metrics::INGRESS)
            .dimension(metrics::PROVIDER, key.provider.as_str())
            .count(metrics::ENQUEUE_FAILURE)
            .property(metrics::TENANT, key.tenant.as_str())
            .property(metrics::EVENT_ID, key.event_id.as_str());
        self.metrics.emit(&line);
        Err(Outcome::Unavailable)
    }
}

/// The URL the provider called, for schemes that sign it (Twilio): the tenant's public base
/// URL when a custom domain fronts the API, else the request's own host; the path and raw
/// query as sent, byte for byte.
fn request_url(delivery: &Delivery<'_>, config: &ProviderConfig) -> Option<RequestUrl> {
    let path_and_query = delivery.path_and_query?;
    match &config.public_base_url {
        Some(base) => {
            RequestUrl::parse(&format!("{}{path_and_query}", base.trim_end_matches('/'))).ok()
        }
        None => {
            let (path, query) = match path_and_query.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (path_and_query, None),
            };
            RequestUrl::https(delivery.host?, path, query).ok()
        }
    }
}

/// Whether `stored` and `arriving` are one event whose bytes differ only where the provider
/// changes them on a redelivery: Pub/Sub's `deliveryAttempt`. (A payload kept in S3 is not
/// compared: it is a conflict, as for any other provider.)
fn redelivered(stored: &EventRecord, arriving: &EventRecord) -> bool {
    arriving.key.provider == Provider::Firebase
        && !stored.payload.is_empty()
        && crate::extract::firebase_identity(&stored.payload)
            == crate::extract::firebase_identity(&arriving.payload)
}

/// What a handshake looks at.
fn handshake_request<'a>(delivery: &Delivery<'a>) -> HandshakeRequest<'a> {
    HandshakeRequest {
        method: delivery.method,
        query: delivery
            .path_and_query
            .and_then(|p| p.split_once('?'))
            .map(|(_, query)| query),
        headers: delivery.headers,
        body: delivery.body,
    }
}

/// Hex SHA-256 of what the scheme signed besides the id: the body, and for the generic scheme
/// its signed timestamp too (the same body at another time is another event).
fn signed_content_hash(delivery: &Delivery<'_>, config: &ProviderConfig) -> String {
    let mut hash = Sha256::new();
    if config.provider == Provider::Generic {
        let names = config.generic_headers.clone().unwrap_or_default();
        if let Some(ts) = delivery.headers.get(names.timestamp.as_str()) {
            hash.update(ts.as_bytes());
            hash.update(b".");
        }
    }
    if config.provider == Provider::Firebase {
        hash.update(crate::extract::firebase_identity(delivery.body));
    } else {
        hash.update(delivery.body);
    }
    hex::encode(hash.finalize())
}

/// A refusal for a route that names nothing: logged with its reason, answered generically.
fn refuse(why: UnknownRoute) -> (Outcome, bool) {
    warn!(reason = why.reason(), "refused: unknown route");
    (Outcome::UnknownRoute(why), false)
}

/// The metric counted for each outcome.
fn metric_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Accepted { .. } => metrics::RECEIVED,
        Outcome::Handshake(_) => metrics::CHALLENGE,
        Outcome::Duplicate { .. } => metrics::DUPLICATE,
        Outcome::Unauthorized(_) | Outcome::UnknownRoute(_) => metrics::SIGNATURE_FAILURE,
        Outcome::Unavailable => metrics::UNAVAILABLE,
        Outcome::Conflict { .. } => metrics::CONFLICT,
        Outcome::PayloadTooLarge { .. } | Outcome::BadRequest(_) | Outcome::MethodNotAllowed => {
            metrics::REJECTED
        }
    }
}

#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod tests;
