//! Dispatcher Lambda: SQS event source on the deliveries queue, with `ReportBatchItemFailures`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = dispatcher::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let dispatcher = dispatcher::build(&sdk, &config)?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        dispatcher::handle(&dispatcher, event)
    }))
    .await
}
