//! A fault proxy between the AWS SDK and the emulator, on loopback: point a client's endpoint
//! at [`FaultProxy::url`] and every call passes through it, counted by operation
//! (`dynamodb:PutItem`, `sqs:SendMessage`, `kms:Decrypt`, `s3:PUT`). Chosen calls can be
//! dropped (the connection closes with no answer), delayed, throttled, answered with a 500,
//! or forwarded and their answer lost, so the real adapters and the SDK's own retries meet
//! the faults a deployment meets. For the gameday tests and the calls-per-event figures.
//!
//! Metered ([`FaultProxy::meter`]), it also records every call it forwards, with the DynamoDB
//! items each write touched as they were before and after it (read from the emulator beside
//! the call, uncounted): what the cost meter ([`crate::cost`]) prices.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::cost::dynamodb::ItemImage;

/// What happens to a chosen call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFault {
    /// The connection closes before any answer: the SDK cannot know whether the call ran.
    Drop,
    /// Forwarded after this long.
    Delay(Duration),
    /// `400 ThrottlingException` (DynamoDB) or `RequestThrottled` (SQS): retried by the SDK.
    Throttle,
    /// `500 InternalFailure`, without forwarding.
    ServerError,
    /// Forwarded, so it takes effect, and the connection closed before the answer.
    LoseResponse,
}

#[derive(Debug)]
struct Rule {
    operation: String,
    /// Only calls whose request body contains this (one kind of `UpdateItem` among others).
    body_contains: Option<String>,
    fault: ProxyFault,
    /// Calls left to fault; every `every`-th call when `every` is set.
    left: u32,
    every: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: BTreeMap<String, u64>,
    injected: u64,
    /// Key attribute names by physical table name, when metering.
    metering: Option<Arc<BTreeMap<String, Vec<String>>>>,
    recorded: Vec<RecordedCall>,
}

/// One call the proxy forwarded while metering.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// `dynamodb:PutItem`, `sqs:SendMessage`, `s3:PUT`, ...
    pub operation: String,
    /// The request's JSON body (`Null` for S3's).
    pub request: serde_json::Value,
    pub request_bytes: usize,
    pub status: u16,
    pub response: serde_json::Value,
    /// The DynamoDB items a write touched, in the request's order.
    pub images: Vec<ItemImage>,
}

/// The proxy, serving until dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// The endpoint to give SDK clients.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listen on an ephemeral loopback port and forward to `upstream` (the emulator's URL).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream: Uri = upstream
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(Mutex::new(State::default()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(state.clone(), client.clone(), upstream.clone(), request)
                    });
                    // A dropped call ends its connection with an error: that is the point.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, state, task })
    }

    /// Fault the next `times` calls of `operation` (`dynamodb:PutItem`; `dynamodb:*` for every
    /// DynamoDB call).
    pub fn inject(&self, operation: &str, fault: ProxyFault, times: u32) {
        self.lock().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: None,
            fault,
            left: times,
            every: None,
        });
    }

    /// Fault the next `times` calls of `operation` whose request body contains `text` (the
    /// finishing `UpdateItem` sets `latency_ms`; the claim and the note do not).
    pub fn inject_matching(&self, operation: &str, text: &str, fault: ProxyFault, times: u32) {
        self.lock().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: Some(text.to_owned()),
            fault,
            left: times,
            every: None,
        });
    }

    /// Fault every `every`-th call of `operation` until [`FaultProxy::clear`].
    pub fn inject_every(&self, operation: &str, fault: ProxyFault, every: u64) {
        self.lock().rules.push(Rule {
            operation: operation.to_owned(),
            body_contains: None,
            fault,
            left: u32::MAX,
            every: Some(every.max(1)),
        });
    }

    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Record every forwarded call from now on, with the before and after images of the
    /// DynamoDB items writes touch; `keys` names each physical table's key attributes.
    pub fn meter(&self, keys: BTreeMap<String, Vec<String>>) {
        self.lock().metering = Some(Arc::new(keys));
    }

    /// The calls recorded since the last take.
    pub fn take_recorded(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut self.lock().recorded)
    }

    /// Calls seen per operation since the last [`FaultProxy::reset_counts`], faulted or not.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    pub fn reset_counts(&self) {
        let mut state = self.lock();
        state.calls.clear();
        state.injected = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `dynamodb:PutItem` from `X-Amz-Target: DynamoDB_20120810.PutItem`, and so on; S3 by method.
fn operation(request: &Request<hyper::body::Incoming>) -> String {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    match target.and_then(|t| t.split_once('.')) {
        Some((service, action)) => {
            let service = match service {
                s if s.starts_with("DynamoDB") => "dynamodb",
                "AmazonSQS" => "sqs",
                "TrentService" => "kms",
                other => other,
            };
            format!("{service}:{action}")
        }
        None => format!("s3:{}", request.method()),
    }
}

fn matches(rule: &str, operation: &str) -> bool {
    rule == operation
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| operation.starts_with(prefix))
}

/// Count the call, and pick its fault.
fn decide(state: &Mutex<State>, operation: &str, body: &[u8]) -> Option<ProxyFault> {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let n = {
        let calls = state.calls.entry(operation.to_owned()).or_default();
        *calls += 1;
        *calls
    };
    let fault = state.rules.iter_mut().find_map(|rule| {
        if rule.left == 0 || !matches(&rule.operation, operation) {
            return None;
        }
        if let Some(text) = &rule.body_contains
            && !body
                .windows(text.len().max(1))
                .any(|w| w == text.as_bytes())
        {
            return None;
        }
        if let Some(every) = rule.every {
            return n.is_multiple_of(every).then_some(rule.fault);
        }
        rule.left -= 1;
        Some(rule.fault)
    })?;
    state.injected += 1;
    Some(fault)
}

/// Why a call got no answer: hyper closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Dropped(&'static str);

async fn forward(
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let operation = operation(&request);
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Dropped("request body unreadable"))?
        .to_bytes();
    let fault = decide(&state, &operation, &body);
    match fault {
        Some(ProxyFault::Drop) => return Err(Dropped("dropped")),
        Some(ProxyFault::Throttle) => return Ok(throttled(&operation)),
        Some(ProxyFault::ServerError) => {
            return Ok(error_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
            ));
        }
        Some(ProxyFault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(ProxyFault::LoseResponse) | None => {}
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let base = upstream.to_string().trim_end_matches('/').to_owned();
    parts.uri = format!("{base}{path}")
        .parse()
        .map_err(|_| Dropped("bad uri"))?;
    let metering = state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .metering
        .clone();
    let recording = match &metering {
        Some(keys) if fault.is_none() => {
            Some(Recording::before(&client, &base, &parts, &operation, &body, keys).await)
        }
        _ => None,
    };
    let answer = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|_| Dropped("upstream unreachable"))?;
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Dropped("upstream answer unreadable"))?
        .to_bytes();
    if let Some(recording) = recording {
        let call = recording.after(&client, parts.status, &body).await;
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recorded
            .push(call);
    }
    if fault == Some(ProxyFault::LoseResponse) {
        return Err(Dropped("answer lost"));
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// A call being recorded: the request, and the items its writes touch as they were before.
struct Recording {
    call: RecordedCall,
    base: String,
    authorization: Option<HeaderValue>,
    /// (table, key) of each item a write touches.
    keys: Vec<(String, serde_json::Value)>,
}

/// The DynamoDB operations that write items.
const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

impl Recording {
    async fn before(
        client: &Client<HttpConnector, Full<Bytes>>,
        base: &str,
        parts: &http::request::Parts,
        operation: &str,
        body: &Bytes,
        tables: &BTreeMap<String, Vec<String>>,
    ) -> Self {
        let request: serde_json::Value =
            serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let keys = match operation.strip_prefix("dynamodb:") {
            Some(op) if WRITES.contains(&op) => written_keys(op, &request, tables),
            _ => Vec::new(),
        };
        let mut recording = Self {
            call: RecordedCall {
                operation: operation.to_owned(),
                request,
                request_bytes: body.len(),
                status: 0,
                response: serde_json::Value::Null,
                images: Vec::new(),
            },
            base: base.to_owned(),
            authorization: parts.headers.get(http::header::AUTHORIZATION).cloned(),
            keys,
        };
        for (table, key) in recording.keys.clone() {
            let before = recording.read(client, &table, &key).await;
            recording.call.images.push(ItemImage {
                table,
                before,
                after: None,
            });
        }
        recording
    }

    async fn after(
        mut self,
        client: &Client<HttpConnector, Full<Bytes>>,
        status: StatusCode,
        body: &Bytes,
    ) -> RecordedCall {
        self.call.status = status.as_u16();
        self.call.response = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        for (i, (table, key)) in self.keys.clone().into_iter().enumerate() {
            let after = self.read(client, &table, &key).await;
            if let Some(image) = self.call.images.get_mut(i) {
                image.after = after;
            }
        }
        self.call
    }

    /// A consistent read of one item straight from the emulator, beside the counted calls.
    async fn read(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        table: &str,
        key: &serde_json::Value,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let body = serde_json::json!({"TableName": table, "Key": key, "ConsistentRead": true});
        let mut request = Request::post(format!("{}/", self.base))
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.GetItem");
        if let Some(auth) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let answer = client.request(request).await.ok()?;
        let bytes = answer.into_body().collect().await.ok()?.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        value.get("Item").and_then(|i| i.as_object()).cloned()
    }
}

/// (table, key) of every item a DynamoDB write names, in the request's order.
fn written_keys(
    operation: &str,
    request: &serde_json::Value,
    tables: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, serde_json::Value)> {
    let key_of = |table: &str, item: &serde_json::Value| {
        let names = tables.get(table)?;
        let key: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .filter_map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
            .collect();
        Some((table.to_owned(), serde_json::Value::Object(key)))
    };
    let one = |spec: &serde_json::Value| -> Option<(String, serde_json::Value)> {
        let table = spec.get("TableName")?.as_str()?;
        match spec.get("Item") {
            Some(item) => key_of(table, item),
            None => Some((table.to_owned(), spec.get("Key")?.clone())),
        }
    };
    match operation {
        "TransactWriteItems" => request
            .get("TransactItems")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.as_object()?.values().next().and_then(one))
            .collect(),
        "BatchWriteItem" => request
            .get("RequestItems")
            .and_then(|v| v.as_object())
            .into_iter()
            .flatten()
            .flat_map(|(table, writes)| {
                writes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| {
                        let put = w.get("PutRequest").and_then(|p| p.get("Item"));
                        let delete = w.get("DeleteRequest").and_then(|d| d.get("Key"));
                        match (put, delete) {
                            (Some(item), _) => key_of(table, item),
                            (None, Some(key)) => Some((table.clone(), key.clone())),
                            _ => None,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => one(request).into_iter().collect(),
    }
}

fn throttled(operation: &str) -> Response<Full<Bytes>> {
    let code = if operation.starts_with("sqs:") {
        "RequestThrottled"
    } else {
        "ThrottlingException"
    };
    error_answer(StatusCode::BAD_REQUEST, code)
}

/// An AWS JSON-protocol error answer.
fn error_answer(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{code};Sender")) {
        response.headers_mut().insert("x-amzn-query-error", value);
    }
    response
}
