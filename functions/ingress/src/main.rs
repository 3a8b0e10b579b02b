//! Ingress Lambda: `POST /webhooks/{tenant}/{provider}` behind API Gateway.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = ingress::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let ingress = ingress::build(&sdk, &config);
    run(service_fn(|request| ingress::handle(&ingress, request))).await
}
