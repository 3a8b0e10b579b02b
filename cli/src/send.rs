//! `hookctl send`: sign a payload exactly as the provider would, with `Scheme::sign`, and POST it
//! to `<url>/webhooks/<tenant>/<provider>`.
//!
//! The HTTP client is hyper's, over the rustls stack the AWS SDK already links: plain HTTP for a
//! local ingress, HTTPS (system roots) for a deployed API.

use base64::Engine;
use std::{
    io::Write,
    path::Path,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri,
    header::{CONTENT_TYPE, USER_AGENT},
};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{Connect, HttpConnector},
    },
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use shared::{
    clock::{unix_millis, unix_secs},
    ids::{EventId, TenantId},
    ports::TenantDirectory,
    provider::Provider,
    secret::Secret,
    verify::{RequestUrl, Scheme, VerifyContext},
};

use crate::{
    args::SendArgs,
    error::CliError,
    output::{Out, sanitize_keeping, timestamp},
    secrets::{Entropy, check_usable, generate_event_id},
};

/// How long to wait for the endpoint's answer.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer's body that is read and printed.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Headers that carry the event type, where a scheme sends it in a header.
const TYPE_HEADERS: [&str; 2] = ["x-github-event", "x-shopify-topic"];

/// A signed delivery, ready to POST.
#[derive(Debug)]
pub struct Delivery {
    pub request: Request<Vec<u8>>,
    /// The id the ingress will store the event under (from the header or the body).
    pub event_id: String,
}

/// Read the payload, find the signing secret (the flag's, or the tenant's current one) and sign.
pub async fn prepare(
    args: SendArgs,
    directory: Option<&dyn TenantDirectory>,
    now: SystemTime,
    entropy: &dyn Entropy,
) -> Result<Delivery, CliError> {
    let SendArgs {
        url,
        tenant,
        provider,
        file,
        secret,
        id,
        event_type,
    } = args;
    let (scheme, secret) = match (secret, directory) {
        (Some(secret), _) => {
            let scheme = provider.default_scheme();
            check_usable(&scheme, &secret, now)?;
            (scheme, secret)
        }
        (None, Some(directory)) => {
            let config = directory
                .provider_config(&tenant, provider)
                .await?
                .ok_or_else(|| CliError::ConfigNotFound {
                    tenant: tenant.clone(),
                    provider,
                })?;
            (config.verifier().scheme, config.secrets.current)
        }
        (None, None) => {
            return Err(CliError::MissingSetting {
                what: "the tenants table (to read the signing secret)",
                flag: "tenants-table, or --secret,",
                env: "TENANTS_TABLE",
            });
        }
    };
    let fresh_id = match &id {
        Some(id) => id.to_string(),
        None => generate_event_id(provider, entropy)?,
    };
    let (body, type_from_file) = match &file {
        Some(path) => (
            std::fs::read(path).map_err(|source| CliError::ReadPayload {
                path: path.clone(),
                source,
            })?,
            github_event_from_file_name(provider, path),
        ),
        None => (default_payload(provider, &fresh_id, now), None),
    };
    let header_id = id
        .map(|id| id.to_string())
        .or_else(|| body_id(&body))
        .unwrap_or(fresh_id);
    signed_request(
        &endpoint(&url, &tenant, provider)?,
        &scheme,
        &secret,
        body,
        &header_id,
        event_type.or(type_from_file).as_deref(),
        now,
    )
}

/// The request: the payload's exact bytes and the scheme's headers for them.
pub fn signed_request(
    uri: &Uri,
    scheme: &Scheme,
    secret: &Secret,
    body: Vec<u8>,
    event_id: &str,
    event_type: Option<&str>,
    now: SystemTime,
) -> Result<Delivery, CliError> {
    // Twilio signs the URL it calls; a JSON body rides on a `bodySHA256` query parameter.
    let mut uri = uri.clone();
    let twilio_url = match scheme {
        Scheme::Twilio => {
            // Twilio calls over HTTPS, and the ingress rebuilds the URL so: sign that, even when
            // the request goes to a local ingress over plain HTTP.
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let url = RequestUrl::parse(&format!("https://{authority}{path}"))
                .map_err(|e| CliError::Sign(format!("Twilio signs the URL: {e}")))?;
            let url = if serde_json::from_slice::<Value>(&body).is_ok() {
                url.with_body_sha256(&body)
            } else {
                url
            };
            if let Some(query) = url.as_str().split_once('?').map(|(_, q)| q) {
                uri = format!(
                    "{}?{query}",
                    uri.to_string().split('?').next().unwrap_or_default()
                )
                .parse()
                .map_err(|_| CliError::Sign("Twilio's URL does not parse".into()))?;
            }
            Some(url)
        }
        // Square, HubSpot and Trello sign the URL they call, over HTTPS like Twilio.
        Scheme::Declared(_) => {
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            RequestUrl::parse(&format!("https://{authority}{path}")).ok()
        }
        _ => None,
    };
    let context = VerifyContext {
        url: twilio_url.as_ref(),
        ..VerifyContext::default()
    };
    let mut signed = scheme
        .sign_with(&body, secret, now, event_id, &context)
        .map_err(|e| CliError::Sign(e.to_string()))?;
    if let Some(event_type) = event_type {
        for (name, value) in &mut signed {
            if TYPE_HEADERS.iter().any(|t| name.eq_ignore_ascii_case(t)) {
                *value = event_type.to_owned();
            }
        }
    }
    let mut headers = header_map(&signed)?;
    let content_type = if serde_json::from_slice::<Value>(&body).is_ok() {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("hookctl/", env!("CARGO_PKG_VERSION"))),
    );
    // The event id the ingress will store: Stripe and Slack carry it in the body.
    let stored_id = match scheme {
        Scheme::Stripe | Scheme::Slack => {
            body_field(&body, &["id", "event_id"]).unwrap_or_else(|| "(from the body)".into())
        }
        Scheme::Twilio => shared::extract::extract(Provider::Twilio, &headers, &body, None)
            .map(|meta| meta.event_id.to_string())
            .unwrap_or_else(|_| "(from the form)".into()),
        Scheme::Declared(declaration) => {
            shared::extract::extract(Provider::Declared(declaration), &headers, &body, None)
                .map(|meta| meta.event_id.to_string())
                .unwrap_or_else(|_| "(from the body)".into())
        }
        _ => event_id.to_owned(),
    };
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(Delivery {
        request,
        event_id: stored_id,
    })
}

/// Signed header pairs as a [`HeaderMap`].
pub fn header_map(pairs: &[(String, String)]) -> Result<HeaderMap, CliError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CliError::Sign(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| CliError::Sign(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// `<base>/webhooks/<tenant>/<provider>`; the base may carry a stage path (`.../Prod`).
pub fn endpoint(base: &str, tenant: &TenantId, provider: Provider) -> Result<Uri, CliError> {
    let invalid = |reason: &str| CliError::InvalidUrl {
        url: base.to_owned(),
        reason: reason.to_owned(),
    };
    if base.contains(['?', '#']) {
        return Err(invalid("a base URL has no query or fragment"));
    }
    let uri: Uri = format!(
        "{}/webhooks/{tenant}/{provider}",
        base.trim_end_matches('/')
    )
    .parse()
    .map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(invalid("expected http://host[:port] or https://host")),
    }
}

/// A small, fresh event in the provider's shape, for a send without --file.
pub fn default_payload(provider: Provider, id: &str, now: SystemTime) -> Vec<u8> {
    let secs = unix_secs(now);
    let value = match provider {
        Provider::Stripe => json!({
            "id": id, "object": "event", "api_version": "2024-06-20", "created": secs,
            "type": "hookctl.ping", "livemode": false, "pending_webhooks": 1,
            "data": {"object": {"object": "hookctl_ping"}},
        }),
        Provider::Clerk => json!({
            "object": "event", "type": "hookctl.ping", "timestamp": unix_millis(now),
            "instance_id": "ins_hookctl", "data": {},
        }),
        Provider::Resend | Provider::Svix | Provider::StandardWebhooks => json!({
            "type": "hookctl.ping", "created_at": timestamp(now), "data": {},
        }),
        Provider::GitHub => json!({
            "zen": "Keep it logically awesome.", "hook_id": 0,
            "hook": {"type": "Repository", "active": true, "events": ["push"]},
        }),
        Provider::Slack => json!({
            "type": "event_callback", "event_id": id, "event_time": secs,
            "team_id": "T00000000", "event": {"type": "hookctl_ping"},
        }),
        Provider::Shopify => json!({"id": 0, "note": "hookctl ping"}),
        Provider::Generic => json!({"id": id, "type": "hookctl.ping", "created": secs}),
        // A message status callback, form-encoded as Twilio posts it.
        Provider::Twilio => {
            let sid = format!("SM{}", id.trim_start_matches("SM"));
            return format!(
                "AccountSid=AChookctl&MessageSid={sid}&MessageStatus=delivered&To=%2B15550100"
            )
            .into_bytes();
        }
        Provider::PayPal => json!({
            "id": id, "event_type": "HOOKCTL.PING", "create_time": timestamp(now),
            "resource_type": "hookctl", "resource": {},
        }),
        Provider::Circle => json!({
            "notificationId": id, "notificationType": "hookctl.ping",
            "timestamp": timestamp(now), "version": 2, "notification": {},
        }),
        // A Pub/Sub push envelope around an FCM delivery row.
        Provider::Firebase => {
            let row = json!({"event": "MESSAGE_DELIVERED", "message_id": id,
                             "event_timestamp": timestamp(now), "sdk_platform": "ANDROID"});
            json!({
                "message": {
                    "data": base64::engine::general_purpose::STANDARD.encode(row.to_string()),
                    "messageId": id, "publishTime": timestamp(now), "attributes": {},
                },
                "subscription": "projects/hookctl/subscriptions/ping",
            })
        }
        Provider::Declared(declaration) => return declaration.sample_payload(id, now),
        // Braintree signs inside the form: the sample is its payload, for `--file` users to sign.
        Provider::Braintree => json!({"kind": "check", "id": id, "timestamp": timestamp(now)}),
    };
    value.to_string().into_bytes()
}

/// The payload's `id`, when it is a string that makes a valid event id.
fn body_id(body: &[u8]) -> Option<String> {
    body_field(body, &["id"])
}

fn body_field(body: &[u8], names: &[&str]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    names
        .iter()
        .find_map(|name| json.get(name)?.as_str())
        .filter(|id| EventId::parse(id).is_ok())
        .map(str::to_owned)
}

/// GitHub names the event in a header, not the body: take it from the sample's file name.
fn github_event_from_file_name(provider: Provider, path: &Path) -> Option<String> {
    if provider != Provider::GitHub {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    stem.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then(|| stem.to_owned())
}

/// What the endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// POST the delivery, print what was sent and the answer; a non-2xx answer is an error, so
/// scripts can rely on the exit code.
pub async fn deliver(delivery: Delivery, out: &mut Out<'_>) -> Result<(), CliError> {
    let (uri, bytes) = (
        delivery.request.uri().to_string(),
        delivery.request.body().len(),
    );
    if !out.json() {
        writeln!(
            out,
            "POST {uri} (event {}, {bytes} bytes)",
            delivery.event_id
        )?;
    }
    let event_id = delivery.event_id.to_string();
    let answer = post(delivery.request, TIMEOUT).await?;
    let text = String::from_utf8_lossy(&answer.body);
    if out.json() {
        out.document(&serde_json::json!({
            "url": uri,
            "event_id": event_id,
            "bytes": bytes,
            "status": answer.status.as_u16(),
            "answer": text,
        }))?;
    } else {
        writeln!(out, "{}", answer.status)?;
        if !text.is_empty() {
            writeln!(out, "{}", sanitize_keeping(&text, &['\n', '\t']))?;
        }
    }
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(CliError::Rejected {
            status: answer.status.as_u16(),
        })
    }
}

/// Send one request and read the answer, within `timeout`.
pub async fn post(request: Request<Vec<u8>>, timeout: Duration) -> Result<Answer, CliError> {
    let url = request.uri().to_string();
    let exchange = async {
        if request.uri().scheme_str() == Some("https") {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| CliError::Http {
                    url: url.clone(),
                    reason: format!("no usable root certificates: {e}"),
                })?
                .https_only()
                .enable_http1()
                .build();
            exchange(https, request, &url).await
        } else {
            exchange(HttpConnector::new(), request, &url).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CliError::Timeout {
            url: url.clone(),
            secs: timeout.as_secs(),
        })?
}

async fn exchange<C>(connector: C, request: Request<Vec<u8>>, url: &str) -> Result<Answer, CliError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let failed = |reason: String| CliError::Http {
        url: url.to_owned(),
        reason,
    };
    let response = client
        .request(request.map(|body| Full::new(Bytes::from(body))))
        .await
        .map_err(|e| failed(shared::errors::one_line(&e)))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| failed(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use shared::{
        memory::MemoryDirectory,
        secret::SecretSet,
        tenant::ProviderConfig,
        verify::{GenericHeaders, Verifier},
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;
    use crate::secrets::{OsEntropy, generate_secret};

    const STRIPE_SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/payloads/stripe/invoice.paid.json"
    );

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn args(provider: Provider) -> SendArgs {
        SendArgs {
            url: "http://127.0.0.1:3000/".into(),
            tenant: tenant(),
            provider,
            file: None,
            secret: None,
            id: None,
            event_type: None,
        }
    }

    fn verify(delivery: &Delivery, scheme: Scheme, secret: &Secret) -> shared::verify::Verified {
        // As the ingress rebuilds it: https, the host and the path and query sent to.
        let uri = delivery.request.uri();
        let url = shared::verify::RequestUrl::parse(&format!(
            "https://{}{}",
            uri.authority().map(|a| a.as_str()).unwrap_or_default(),
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        ))
        .expect("url");
        let context = shared::verify::VerifyContext {
            url: Some(&url),
            ..Default::default()
        };
        Verifier::new(scheme)
            .verify_with(
                delivery.request.body(),
                delivery.request.headers(),
                &SecretSet::single(secret.clone()),
                &context,
                now(),
            )
            .expect("the ingress's verifier accepts it")
    }

    #[tokio::test]
    async fn every_provider_gets_a_request_its_verifier_accepts() {
        // PayPal, Circle, Discord, SendGrid, Google and Mailgun sign with what only they hold,
        // or inside the body: see their own tests.
        let shared_secret = Provider::all().filter(|p| p.default_scheme().signs_from_secret());
        for provider in shared_secret {
            // GIVEN a tenant whose current secret was generated for the provider
            let scheme = provider.default_scheme();
            let secret = generate_secret(&scheme, &OsEntropy).expect("secret");
            let dir =
                MemoryDirectory::with([ProviderConfig::new(tenant(), provider, secret.clone())]);
            // WHEN a sample is prepared from the directory's secret
            let delivery = prepare(args(provider), Some(&dir), now(), &OsEntropy)
                .await
                .expect("prepared");
            // THEN the verifier accepts exactly those bytes and headers
            let verified = verify(&delivery, scheme, &secret);
            assert_eq!(
                delivery.request.uri().to_string(),
                format!("http://127.0.0.1:3000/webhooks/acme/{provider}")
            );
            assert_eq!(delivery.request.method(), Method::POST);
            let form = provider == Provider::Twilio;
            assert_eq!(
                delivery.request.headers()[CONTENT_TYPE],
                if form {
                    "application/x-www-form-urlencoded"
                } else {
                    "application/json"
                },
                "{provider}"
            );
            let meta = shared::extract::extract(
                provider,
                delivery.request.headers(),
                delivery.request.body(),
                None,
            )
            .expect("the ingress can extract an id");
            assert_eq!(meta.event_id.as_str(), delivery.event_id, "{provider}");
            if let Some(id) = verified.event_id {
                assert_eq!(id, delivery.event_id, "{provider}");
            }
        }
    }

    #[tokio::test]
    async fn a_file_is_sent_byte_for_byte_with_the_stripe_id_from_the_body() {
        let mut a = args(Provider::Stripe);
        a.file = Some(STRIPE_SAMPLE.into());
        a.secret = Some(Secret::new("whsec_local"));
        let delivery = prepare(a, None, now(), &OsEntropy).await.expect("prepared");
        let bytes = std::fs::read(STRIPE_SAMPLE).expect("sample");
        assert_eq!(delivery.request.body(), &bytes);
        verify(&delivery, Scheme::Stripe, &Secret::new("whsec_local"));
        assert!(
            delivery.event_id.starts_with("evt_"),
            "{}",
            delivery.event_id
        );
        let sig = delivery.request.headers()["stripe-signature"]
            .to_str()
            .expect("ascii");
        assert!(sig.starts_with("t=1700000000,v1="), "{sig}");
    }

    #[tokio::test]
    async fn every_sample_payload_is_signed_verified_and_extracted() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/payloads");
        let mut seen = 0;
        for dir in std::fs::read_dir(&root).expect("payloads folder") {
            let dir = dir.expect("entry").path();
            let provider: Provider = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
                .expect("folders are named after providers");
            for file in std::fs::read_dir(&dir).expect("provider folder") {
                let file = file.expect("entry").path();
                let (headers, body) = sample_delivery(provider, &file).await;
                let meta = shared::extract::extract(provider, &headers, &body, None)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                // The file is named after the event type it holds.
                let stem = file.file_stem().and_then(|s| s.to_str()).expect("name");
                if provider != Provider::Generic {
                    assert_eq!(meta.event_type.as_deref(), Some(stem), "{}", file.display());
                }
                // GitHub, Twilio's callbacks and Slack's commands carry no event time.
                if !matches!(
                    provider,
                    Provider::GitHub | Provider::Twilio | Provider::Slack
                ) {
                    assert!(meta.created_at.is_some(), "{}: no time", file.display());
                }
                seen += 1;
            }
        }
        assert!(seen >= 28, "only {seen} samples");
    }

    /// Signs and verifies a sample the way hookctl sends it. PayPal and Circle
    /// sign with their own private keys, which hookctl never holds: their
    /// samples are only extracted here, and verified in the providers' tests.
    async fn sample_delivery(provider: Provider, file: &Path) -> (http::HeaderMap, Vec<u8>) {
        if matches!(provider, Provider::PayPal | Provider::Circle) {
            let body = std::fs::read(file).expect("sample");
            return (http::HeaderMap::new(), body);
        }
        let scheme = provider.default_scheme();
        let secret = generate_secret(&scheme, &OsEntropy).expect("secret");
        let mut a = args(provider);
        a.file = Some(file.to_path_buf());
        a.secret = Some(secret.clone());
        let delivery = prepare(a, None, now(), &OsEntropy).await.expect("prepared");
        verify(&delivery, scheme, &secret);
        let (parts, body) = delivery.request.into_parts();
        (parts.headers, body)
    }

    #[tokio::test]
    async fn a_wrong_secret_does_not_verify() {
        let mut a = args(Provider::Clerk);
        a.secret = Some(Secret::new("whsec_c2VuZGVy"));
        let delivery = prepare(a, None, now(), &OsEntropy).await.expect("prepared");
        let err = Verifier::new(Scheme::StandardWebhooks)
            .verify(
                delivery.request.body(),
                delivery.request.headers(),
                &SecretSet::single(Secret::new("whsec_b3RoZXI=")),
                now(),
            )
            .expect_err("other secret");
        assert_eq!(err.reason(), "signature_mismatch");
    }

    #[tokio::test]
    async fn the_tenants_generic_header_names_are_used() {
        let names = GenericHeaders {
            signature: "x-acme-signature".into(),
            timestamp: "x-acme-time".into(),
            id: Some("x-acme-id".into()),
        };
        let mut config = ProviderConfig::new(tenant(), Provider::Generic, Secret::new("gen"));
        config.generic_headers = Some(names.clone());
        let dir = MemoryDirectory::with([config]);
        let mut a = args(Provider::Generic);
        a.id = Some(EventId::parse("evt_chosen").expect("id"));
        let delivery = prepare(a, Some(&dir), now(), &OsEntropy)
            .await
            .expect("prepared");
        assert_eq!(delivery.request.headers()["x-acme-id"], "evt_chosen");
        verify(&delivery, Scheme::Generic(names), &Secret::new("gen"));
    }

    #[tokio::test]
    async fn github_takes_the_event_type_from_the_flag_or_the_file_name() {
        let mut a = args(Provider::GitHub);
        a.secret = Some(Secret::new("gh"));
        a.event_type = Some("push".into());
        let delivery = prepare(a, None, now(), &OsEntropy).await.expect("prepared");
        assert_eq!(delivery.request.headers()["x-github-event"], "push");
        verify(&delivery, Scheme::GitHub, &Secret::new("gh"));

        let ping = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/payloads/github/ping.json"
        );
        assert_eq!(
            github_event_from_file_name(Provider::GitHub, Path::new(ping)).as_deref(),
            Some("ping")
        );
        assert_eq!(
            github_event_from_file_name(Provider::Stripe, Path::new(ping)),
            None
        );
    }

    #[tokio::test]
    async fn missing_config_file_or_table_are_errors() {
        let err = prepare(args(Provider::Stripe), None, now(), &OsEntropy)
            .await
            .expect_err("no table");
        assert!(matches!(err, CliError::MissingSetting { .. }), "{err}");

        let err = prepare(
            args(Provider::Stripe),
            Some(&MemoryDirectory::new()),
            now(),
            &OsEntropy,
        )
        .await
        .expect_err("no config");
        assert_eq!(err.to_string(), "tenant acme has no stripe configuration");

        let mut a = args(Provider::Stripe);
        a.secret = Some(Secret::new("s"));
        a.file = Some("no/such/file.json".into());
        let err = prepare(a, None, now(), &OsEntropy)
            .await
            .expect_err("no file");
        assert!(matches!(err, CliError::ReadPayload { .. }), "{err}");
    }

    #[test]
    fn endpoints_join_the_route_to_the_base() {
        let join = |base| endpoint(base, &tenant(), Provider::Stripe).map(|u| u.to_string());
        assert_eq!(
            join("https://abc.execute-api.eu-west-1.amazonaws.com/Prod/").expect("ok"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/webhooks/acme/stripe"
        );
        assert_eq!(
            join("http://localhost:3000").expect("ok"),
            "http://localhost:3000/webhooks/acme/stripe"
        );
        for bad in [
            "localhost:3000",
            "ftp://host",
            "http://host/?a=1",
            "",
            "http://",
        ] {
            assert!(join(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Accept one HTTP/1.1 request, answer 200 with a JSON body, hand back what arrived.
    async fn one_shot_server() -> (String, tokio::task::JoinHandle<(HeaderMap, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "connection closed early");
                raw.extend_from_slice(&buf[..n]);
                if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at;
                }
            };
            let head = String::from_utf8(raw[..head_end].to_vec()).expect("ascii head");
            let mut headers = HeaderMap::new();
            for line in head.lines().skip(1) {
                let (name, value) = line.split_once(':').expect("header line");
                headers.append(
                    HeaderName::from_bytes(name.trim().as_bytes()).expect("name"),
                    HeaderValue::from_str(value.trim()).expect("value"),
                );
            }
            let length: usize = headers["content-length"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("number");
            let mut body = raw[head_end + 4..].to_vec();
            while body.len() < length {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "connection closed early");
                body.extend_from_slice(&buf[..n]);
            }
            let answer = br#"{"received":true,"id":"evt_1"}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            socket
                .write_all(&[response.as_bytes(), answer].concat())
                .await
                .expect("write");
            (headers, body)
        });
        (base, handle)
    }

    #[tokio::test]
    async fn deliver_posts_a_request_the_verifier_accepts_on_the_wire() {
        // GIVEN a local endpoint and a Resend secret
        let (base, server) = one_shot_server().await;
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let mut a = args(Provider::Resend);
        a.url = base;
        a.secret = Some(secret.clone());
        let delivery = prepare(a, None, SystemTime::now(), &OsEntropy)
            .await
            .expect("prepared");

        // WHEN it is delivered
        let mut out = Vec::new();
        deliver(delivery, &mut Out::text(&mut out))
            .await
            .expect("2xx");

        // THEN the bytes and headers that arrived verify, and the answer is printed
        let (headers, body) = server.await.expect("server");
        Verifier::new(Scheme::StandardWebhooks)
            .verify(
                &body,
                &headers,
                &SecretSet::single(secret),
                SystemTime::now(),
            )
            .expect("verifies on arrival");
        let printed = String::from_utf8(out).expect("utf-8");
        assert!(
            printed.contains("/webhooks/acme/resend (event msg_"),
            "{printed}"
        );
        assert!(
            printed.contains("200 OK\n{\"received\":true,\"id\":\"evt_1\"}"),
            "{printed}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_error() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let request = Request::post(format!("http://127.0.0.1:{port}/webhooks/acme/stripe"))
            .body(b"{}".to_vec())
            .expect("request");
        let err = post(request, Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(matches!(err, CliError::Http { .. }), "{err}");
    }
}
