//! The ingress over plain HTTP on loopback, standing in for API Gateway: the route's path
//! segments become path parameters, the body bytes pass through untouched, and the deployed
//! handler answers.

use std::{collections::HashMap, convert::Infallible, net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use ingress::AwsIngress;
use lambda_http::{
    Body, RequestExt, aws_lambda_events::apigw::ApiGatewayV2httpRequestContext,
    request::RequestContext,
};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// API Gateway refuses bodies over 10 MiB before the function sees them; so do we.
const GATEWAY_BODY_LIMIT: usize = 10 * 1024 * 1024;

type HttpBody = BoxBody<Bytes, Infallible>;

/// Accept connections on `listener` and answer each request with the ingress, until the task
/// is dropped.
pub async fn serve(listener: TcpListener, ingress: Arc<AwsIngress>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let ingress = ingress.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let ingress = ingress.clone();
                async move { Ok::<_, Infallible>(route(&ingress, request, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                warn!(error = %e, "connection ended with an error");
            }
        });
    }
}

async fn route(
    ingress: &AwsIngress,
    request: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<HttpBody> {
    let segments: Vec<String> = request
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let params = match (request.method(), segments.as_slice()) {
        (&Method::GET, [health]) if health == "health" => return text(StatusCode::OK, "ok"),
        (&Method::POST, [root, tenant, provider]) if root == "webhooks" => HashMap::from([
            ("tenant".to_owned(), tenant.clone()),
            ("provider".to_owned(), provider.clone()),
        ]),
        (&Method::POST, [root, tenant, provider, token]) if root == "webhooks" => HashMap::from([
            ("tenant".to_owned(), tenant.clone()),
            ("provider".to_owned(), provider.clone()),
            ("token".to_owned(), token.clone()),
        ]),
        _ => return text(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#),
    };

    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, GATEWAY_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"error":"payload too large"}"#,
            );
        }
    };
    // What API Gateway would add: the path parameters and a request id.
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.request_id = Some(format!("local-{}", next_request_number()));
    let lambda_request = lambda_http::Request::from_parts(parts, Body::Binary(bytes.to_vec()))
        .with_path_parameters(params)
        .with_request_context(RequestContext::ApiGatewayV2(context));

    let response = match ingress::handle(ingress, lambda_request).await {
        Ok(response) => response,
        Err(e) => {
            warn!(error = %e, "handler failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal error"}"#,
            );
        }
    };
    info!(%peer, status = response.status().as_u16(), "ingress answered");
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Full::new(bytes).boxed())
}

fn text(status: StatusCode, body: &'static str) -> Response<HttpBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *response.status_mut() = status;
    response
}

/// A request number unique within this process, for local request ids.
fn next_request_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
