//! API Lambda: the publish route for the user's own services, behind AWS IAM authorization.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = api::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let outbound = api::build(&sdk, &config);
    run(service_fn(|request| api::handle(&outbound, request))).await
}
