//! `hookctl listen`: a receiver on this machine for outbound deliveries, like `stripe listen`.
//! It verifies each delivery's Standard Webhooks signature with the endpoint's secret, prints
//! what arrived, and answers 200 (or 401 when the signature does not verify), so a developer
//! sees outbound webhooks arrive during `make dev`. `--status` answers something else, to
//! watch the dispatcher retry.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::SystemTime};

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use shared::{
    secret::{Secret, SecretSet},
    verify::{Scheme, Verifier},
};
use tokio::net::TcpListener;

use crate::{args::parse_secret, error::CliError, output::sanitize_keeping};

/// The largest delivery read.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Where to listen (loopback only).
    #[arg(long, default_value_t = 4000)]
    pub port: u16,
    /// The endpoint's signing secret (`hookctl endpoint show --reveal`); without it,
    /// deliveries are printed unverified.
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
    /// Answer every delivery with this status instead (e.g. 500, 410, 429).
    #[arg(long, value_parser = clap::value_parser!(u16).range(200..=599))]
    pub status: Option<u16>,
}

/// What one delivery got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub status: StatusCode,
    pub report: String,
}

/// Check and describe one delivery.
pub fn receive(
    headers: &http::HeaderMap,
    body: &[u8],
    secret: Option<&Secret>,
    answer: Option<u16>,
    now: SystemTime,
) -> Received {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let verdict = match secret {
        None => Ok("unverified (no --secret)".to_owned()),
        Some(secret) => Verifier::new(Scheme::StandardWebhooks)
            .verify(body, headers, &SecretSet::single(secret.clone()), now)
            .map(|_| "signature verified".to_owned())
            .map_err(|e| format!("signature REFUSED: {e}")),
    };
    let status = match (&verdict, answer) {
        (Err(_), _) => StatusCode::UNAUTHORIZED,
        (Ok(_), Some(code)) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        (Ok(_), None) => StatusCode::OK,
    };
    let pretty = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let report = format!(
        "--> webhook-id {} at {} ({}), answered {}\n{}\n",
        sanitize_keeping(&header("webhook-id"), &[]),
        sanitize_keeping(&header("webhook-timestamp"), &[]),
        verdict.unwrap_or_else(|e| e),
        status.as_u16(),
        sanitize_keeping(&pretty, &['\n'])
    );
    Received { status, report }
}

/// Serve until interrupted.
pub async fn run(args: ListenArgs) -> Result<(), CliError> {
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| CliError::Listen { address, source })?;
    println!("Listening on http://{address}/ (Ctrl-C stops)");
    println!("  register it: hookctl --allow-loopback endpoint add TENANT http://{address}/");
    if args.secret.is_none() {
        println!("  (no --secret: deliveries are printed unverified)");
    }
    let args = Arc::new(args);
    loop {
        let (stream, _) = listener.accept().await?;
        let args = args.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let args = args.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = Limited::new(body, MAX_BODY)
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let received = receive(
                        &parts.headers,
                        &body,
                        args.secret.as_ref(),
                        args.status,
                        SystemTime::now(),
                    );
                    print!("{}", received.report);
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = received.status;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::outbound::signing;

    use super::*;

    #[test]
    fn a_signed_delivery_is_verified_and_a_forged_one_refused() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let body = br#"{"type":"invoice.paid"}"#;
        let headers: http::HeaderMap =
            signing::sign(&SecretSet::single(secret.clone()), "msg_1", now, body)
                .expect("signed")
                .into_iter()
                .map(|(n, v)| {
                    (
                        http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                        http::HeaderValue::from_str(&v).expect("value"),
                    )
                })
                .collect();
        let ok = receive(&headers, body, Some(&secret), None, now);
        assert_eq!(ok.status, StatusCode::OK);
        assert!(
            ok.report.contains("signature verified") && ok.report.contains("msg_1"),
            "{}",
            ok.report
        );
        let failing = receive(&headers, body, Some(&secret), Some(503), now);
        assert_eq!(failing.status, StatusCode::SERVICE_UNAVAILABLE);
        let forged = receive(&headers, b"{\"type\":\"x\"}", Some(&secret), None, now);
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
        assert!(forged.report.contains("REFUSED"));
    }
}
