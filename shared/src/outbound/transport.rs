//! The dispatcher's HTTP client: hyper over the rustls stack the AWS SDK already links, behind
//! the SSRF guard's resolver. One POST per attempt, within the attempt's timeout; redirects are
//! never followed (a 3xx is an answer like any other non-2xx); at most
//! [`MAX_RESPONSE_BYTES`] of the answer are read.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use super::{
    delivery::{ErrorClass, Exchange, MAX_RESPONSE_BYTES},
    ports::{OutboundRequest, Transport},
    ssrf::{EgressPolicy, GuardedResolver, Refused, Resolver, SystemResolver, refusal_in},
};

/// What deliveries say they are.
pub const USER_AGENT: &str = concat!("webhooks-on-lambda/", env!("CARGO_PKG_VERSION"));

/// The longest `Retry-After` honoured in seconds form: beyond the longest retry delay there is
/// no point, and a huge value must not overflow.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(43_200);

type GuardedConnector = HttpConnector<GuardedResolver>;

/// [`Transport`] over HTTPS (and, for local development, plain HTTP to loopback).
#[derive(Clone)]
pub struct HttpTransport {
    https: Client<hyper_rustls::HttpsConnector<GuardedConnector>, Full<Bytes>>,
    http: Option<Client<GuardedConnector, Full<Bytes>>>,
    policy: EgressPolicy,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("plain_http", &self.http.is_some())
            .finish()
    }
}

impl HttpTransport {
    /// A transport under `policy`, resolving with the system's resolver.
    pub fn new(policy: EgressPolicy) -> Result<Self, std::io::Error> {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    /// A transport resolving through `resolver` (tests point names anywhere).
    pub fn with_resolver(
        policy: EgressPolicy,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, std::io::Error> {
        let connector = |loopback_only| {
            let mut connector = HttpConnector::new_with_resolver(GuardedResolver {
                resolver: resolver.clone(),
                policy,
                loopback_only,
            });
            connector.enforce_http(false);
            connector.set_connect_timeout(Some(Duration::from_secs(10)));
            connector.set_nodelay(true);
            connector
        };
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_only()
            .enable_http1()
            .wrap_connector(connector(false));
        let executor = TokioExecutor::new();
        Ok(Self {
            https: Client::builder(executor.clone()).build(tls),
            http: policy
                .allow_loopback
                .then(|| Client::builder(executor).build(connector(true))),
            policy,
        })
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Exchange, Failure> {
        let started = Instant::now();
        let response = if request.uri().scheme_str() == Some("https") {
            self.https.request(request).await
        } else if let Some(http) = &self.http {
            http.request(request).await
        } else {
            return Err(Failure::Refused(Refused::NotHttps));
        }
        .map_err(|e| classify(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(retry_after);
        let body = read_prefix(response.into_body()).await;
        Ok(Exchange {
            status: Some(status.as_u16()),
            retry_after,
            body,
            latency: started.elapsed(),
            error: (!status.is_success())
                .then(|| (ErrorClass::HttpStatus, format!("answered {status}"))),
        })
    }
}

/// Why no answer came.
#[derive(Debug)]
enum Failure {
    Refused(Refused),
    Other(ErrorClass, String),
}

/// Sort a client error into its class, by what lies among its causes.
fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
    if let Some(refused) = refusal_in(error) {
        return match refused {
            Refused::Unresolvable { .. } => Failure::Other(ErrorClass::Dns, refused.to_string()),
            _ => Failure::Refused(refused.clone()),
        };
    }
    let text = crate::errors::one_line(error);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Failure::Other(ErrorClass::Tls, text);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return Failure::Other(ErrorClass::Tls, text);
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Failure::Other(ErrorClass::Timeout, text);
            }
        }
        cause = e.source();
    }
    Failure::Other(ErrorClass::Connection, text)
}

/// `Retry-After` as seconds or an HTTP date, bounded.
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(MAX_RETRY_AFTER))
}

/// The first [`MAX_RESPONSE_BYTES`] of a body as text; the rest is never read.
async fn read_prefix(mut body: hyper::body::Incoming) -> String {
    let mut kept = Vec::new();
    while kept.len() < MAX_RESPONSE_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_RESPONSE_BYTES - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: OutboundRequest) -> Exchange {
        let started = Instant::now();
        let mut builder = Request::post(request.url.uri().clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, USER_AGENT);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let failed = |class, text: String| Exchange {
            status: None,
            retry_after: None,
            body: String::new(),
            latency: started.elapsed(),
            error: Some((class, text)),
        };
        // Whatever a stored URL says: an address literal is dialled without the resolver the
        // guard sits in, so it is checked here.
        if let Err(refused) = request.url.check_literal(self.policy) {
            return failed(ErrorClass::Refused, refused.to_string());
        }
        let http_request = match builder.body(Full::new(Bytes::from(request.body))) {
            Ok(r) => r,
            Err(e) => return failed(ErrorClass::Connection, format!("building the request: {e}")),
        };
        match tokio::time::timeout(request.timeout, self.exchange(http_request)).await {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(Failure::Refused(refused))) => failed(ErrorClass::Refused, refused.to_string()),
            Ok(Err(Failure::Other(class, text))) => failed(class, text),
            Err(_) => failed(
                ErrorClass::Timeout,
                format!("no answer within {} s", request.timeout.as_secs_f64()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::ssrf::{EndpointUrl, StaticResolver};

    #[tokio::test]
    async fn an_address_literal_is_checked_at_connect_time_whatever_the_stored_url_says() {
        // GIVEN a receiver on loopback, and a stored URL that names it by address (written by a
        // table writer, or registered under the local-development policy)
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let transport =
            HttpTransport::with_resolver(EgressPolicy::PUBLIC, Arc::new(StaticResolver::default()))
                .expect("transport");
        for raw in [
            format!("https://127.0.0.1:{port}/in"),
            format!("https://[::ffff:127.0.0.1]:{port}/in"),
            "https://93.184.216.34:25/in".to_owned(),
        ] {
            let url = EndpointUrl::parse(&raw, EgressPolicy::LOCAL_DEVELOPMENT).expect("parsed");

            // WHEN the deployed transport sends to it
            let exchange = transport
                .send(OutboundRequest {
                    url,
                    headers: Vec::new(),
                    body: b"{}".to_vec(),
                    timeout: Duration::from_secs(2),
                })
                .await;

            // THEN it is refused before any connection
            assert_eq!(
                exchange.error.as_ref().map(|e| e.0),
                Some(ErrorClass::Refused),
                "{raw}"
            );
        }
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "nothing connected");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_bounded() {
        let secs = |text: &str| retry_after(&HeaderValue::from_str(text).expect("value"));
        assert_eq!(secs("30"), Some(Duration::from_secs(30)));
        assert_eq!(secs("99999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(secs("soon"), None);
    }
}
