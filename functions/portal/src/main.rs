//! Portal Lambda: API Gateway (HTTP API) requests under `/portal/` in, pages out.

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = portal::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let portal = portal::build(&sdk, &config)?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(portal.handle(request).await)
    }))
    .await
}
