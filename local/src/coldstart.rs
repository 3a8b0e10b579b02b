//! Cold starts, measured: a release bootstrap started the way Lambda starts it, against a local
//! stand-in for the Lambda Runtime API, with the emulator behind it. Three figures per start:
//! the time from exec to the bootstrap's first poll for an invocation (its init), to its answer
//! to the first invocation, and its peak resident memory (`VmHWM`) by then.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, process::Command, sync::Notify};

/// One cold start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdStart {
    /// Exec to the first `GET /invocation/next`.
    pub init: Duration,
    /// Exec to the answer to the first invocation.
    pub first_answer: Duration,
    /// Peak resident set size by the first answer, in KiB.
    pub peak_rss_kib: u64,
}

/// Why a start could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("the runtime API stand-in: {0}")]
    Listen(std::io::Error),
    #[error("{0} reported an error instead of an answer: {1}")]
    Failed(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

#[derive(Debug, Default)]
struct Seen {
    first_poll: Option<Instant>,
    answer: Option<(Instant, Result<String, String>)>,
}

/// Start `bootstrap` with `env`, hand it `event` as its first invocation, and measure.
pub async fn measure(
    bootstrap: &Path,
    env: &[(String, String)],
    event: &[u8],
) -> Result<ColdStart, ColdStartError> {
    let name = bootstrap.display().to_string();
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(ColdStartError::Listen)?;
    let address = listener.local_addr().map_err(ColdStartError::Listen)?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let answered = Arc::new(Notify::new());
    let event = Bytes::copy_from_slice(event);
    let server = tokio::spawn(serve(listener, seen.clone(), answered.clone(), event));

    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "coldstart")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "coldstart")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ColdStartError::Spawn(name.clone(), e))?;
    let pid = child.id();

    let limit = Duration::from_secs(30);
    let waited = tokio::time::timeout(limit, answered.notified()).await;
    let peak_rss_kib = pid.and_then(peak_rss_kib).unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    if waited.is_err() {
        return Err(ColdStartError::Timeout(name, limit));
    }
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let (Some(first_poll), Some((answered_at, answer))) = (seen.first_poll, &seen.answer) else {
        return Err(ColdStartError::Timeout(name, limit));
    };
    if let Err(e) = answer {
        return Err(ColdStartError::Failed(name, e.clone()));
    }
    Ok(ColdStart {
        init: first_poll.duration_since(started),
        first_answer: answered_at.duration_since(started),
        peak_rss_kib,
    })
}

/// `VmHWM` of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The Runtime API's three routes: the first `next` gets `event`, later ones wait forever.
async fn serve(listener: TcpListener, seen: Arc<Mutex<Seen>>, answered: Arc<Notify>, event: Bytes) {
    while let Ok((stream, _)) = listener.accept().await {
        let (seen, answered, event) = (seen.clone(), answered.clone(), event.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (seen, answered, event) = (seen.clone(), answered.clone(), event.clone());
                async move { Ok::<_, Infallible>(route(request, &seen, &answered, event).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    request: Request<hyper::body::Incoming>,
    seen: &Mutex<Seen>,
    answered: &Notify,
    event: Bytes,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let now = Instant::now();
    if method == Method::GET && path.ends_with("/invocation/next") {
        let first = {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.first_poll.get_or_insert(now);
            seen.answer.is_none()
        };
        if !first {
            std::future::pending::<()>().await;
        }
        let deadline = std::time::SystemTime::now() + Duration::from_secs(30);
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let headers = [
            ("lambda-runtime-aws-request-id", "coldstart-1".to_owned()),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:coldstart".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_owned(),
            ),
        ];
        let mut response = Response::new(Full::new(event));
        for (name, value) in headers {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    if method == Method::POST && (path.ends_with("/response") || path.ends_with("/error")) {
        let answer = if path.ends_with("/response") {
            Ok(body)
        } else {
            Err(body)
        };
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answer
            .get_or_insert((now, answer));
        answered.notify_one();
        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
        *response.status_mut() = StatusCode::ACCEPTED;
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
