//! Replay Lambda: operator actions from console test events, and the scheduled reconcile.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = replay::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let operations = replay::build(&sdk, &config);
    run(service_fn(|event: LambdaEvent<Value>| {
        replay::handle(&operations, event)
    }))
    .await
}
