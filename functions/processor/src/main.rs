//! Processor Lambda: SQS event source with `ReportBatchItemFailures`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init();
    let config = processor::Config::from_env()?;
    let sdk = shared::aws::sdk_config().await;
    let processor = processor::build(&sdk, &config);
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        processor::handle(&processor, event)
    }))
    .await
}
