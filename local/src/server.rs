//! The HTTP API over plain HTTP on loopback, standing in for API Gateway: the webhook routes
//! go to the ingress, the publish route to the API function, `/portal/` to the portal; the route's path segments become
//! path parameters, the body bytes pass through untouched, and the deployed handler answers.
//! With [`Front::FunctionUrl`], everything under `/webhooks` goes to the ingress as a Function
//! URL hands it over: any method, no path parameters, the ingress routing by itself.
//! API Gateway's IAM authorization of the publish route has no local stand-in: anything on this
//! machine may publish to the local stack.

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

/// How webhooks reach the ingress, as the template's `IngressFront` chooses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Front {
    /// API Gateway's routes, with path parameters.
    #[default]
    ApiGateway,
    /// A Lambda Function URL: the request as sent.
    FunctionUrl,
}

/// The functions behind the local API.
#[derive(Debug, Clone)]
pub struct Routes {
    pub front: Front,
    pub ingress: Arc<AwsIngress>,
    pub api: Arc<api::AwsOutbound>,
    /// The portal's pages under `/portal/`, where the stack serves them.
    pub portal: Option<Arc<portal::AwsPortal>>,
}

/// Which function a route goes to.
enum Target {
    Ingress,
    Api,
    Portal,
}

/// Accept connections on `listener` and answer each request with its function, until the task
/// is dropped.
pub async fn serve(listener: TcpListener, routes: Routes) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(route(&routes, request, peer).await) }
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
    routes: &Routes,
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
    let (target, params) = match (request.method(), segments.as_slice()) {
        (&Method::GET, [health]) if health == "health" => return text(StatusCode::OK, "ok"),
        (_, [root, ..]) if root == "webhooks" && routes.front == Front::FunctionUrl => {
            (Target::Ingress, HashMap::new())
        }
        // A GET or HEAD is a provider's handshake (Meta, Dropbox, Okta, Trello), as the
        // template routes it.
        (&Method::POST | &Method::GET | &Method::HEAD, [root, tenant, provider])
            if root == "webhooks" =>
        {
            (
                Target::Ingress,
                HashMap::from([
                    ("tenant".to_owned(), tenant.clone()),
                    ("provider".to_owned(), provider.clone()),
                ]),
            )
        }
        (&Method::POST, [root, tenant, provider, token]) if root == "webhooks" => (
            Target::Ingress,
            HashMap::from([
                ("tenant".to_owned(), tenant.clone()),
                ("provider".to_owned(), provider.clone()),
                ("token".to_owned(), token.clone()),
            ]),
        ),
        // The publish API's routes (`api::ROUTES`); the handler answers a wrong method itself.
        (_, [v1, rest @ ..]) if v1 == "v1" => {
            let mut params = HashMap::new();
            if let [tenants, tenant, ..] = rest
                && tenants == "tenants"
            {
                params.insert("tenant".to_owned(), tenant.clone());
            }
            if let [_, _, _, name] = rest {
                params.insert("name".to_owned(), name.clone());
            }
            (Target::Api, params)
        }
        (&Method::GET | &Method::POST, [root, rest @ ..])
            if root == "portal" && routes.portal.is_some() =>
        {
            (
                Target::Portal,
                HashMap::from([("proxy".to_owned(), rest.join("/"))]),
            )
        }
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

    let (name, answered) = match target {
        Target::Ingress => (
            "ingress",
            ingress::handle(&routes.ingress, lambda_request).await,
        ),
        Target::Api => ("api", api::handle(&routes.api, lambda_request).await),
        Target::Portal => match &routes.portal {
            Some(portal) => ("portal", Ok(portal.handle(lambda_request).await)),
            None => return text(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#),
        },
    };
    let response = match answered {
        Ok(response) => response,
        Err(e) => {
            warn!(error = %e, "handler failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal error"}"#,
            );
        }
    };
    info!(%peer, function = name, status = response.status().as_u16(), "answered");
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
