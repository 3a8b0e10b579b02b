//! Portal Lambda: API Gateway (HTTP API) requests under `/portal/` in, pages out.

use lambda_http::{Error, Request, run, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = portal::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let portal = portal::build(&sdk, &config)?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(portal.handle(request).await)
    }))
    .await
}
