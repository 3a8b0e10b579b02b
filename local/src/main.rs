//! `local-stack provision | dev | invoke replay <event.json>`: the system on this machine,
//! against the AWS emulator.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use local_stack::{
    dev, event_source::EventSourceMapping, provision::provision, server, template::Template,
};
use tokio::net::TcpListener;

const USAGE: &str = "usage: local-stack <provision|dev|invoke replay EVENT.json> [--endpoint URL] [--prefix P] [--template PATH] [--listen ADDR]";

struct Options {
    command: String,
    /// `invoke`'s function and event file.
    invoke: Option<(String, String)>,
    endpoint: String,
    prefix: String,
    template: String,
    listen: SocketAddr,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let command = args.next().ok_or(USAGE)?;
    let invoke = if command == "invoke" {
        let function = args.next().ok_or(USAGE)?;
        let event = args.next().ok_or(USAGE)?;
        Some((function, event))
    } else {
        None
    };
    let mut options = Options {
        command,
        invoke,
        endpoint: std::env::var("AWS_ENDPOINT_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:4566".into()),
        prefix: "dev-".into(),
        template: "template.yaml".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--endpoint" => options.endpoint = value,
            "--prefix" => options.prefix = value,
            "--template" => options.template = value,
            "--listen" => {
                options.listen = value
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {value}"))?
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-stack: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let options = options()?;
    if !matches!(options.command.as_str(), "provision" | "dev" | "invoke") {
        return Err(USAGE.into());
    }
    let template = Template::load(&options.template).map_err(|e| e.to_string())?;
    let sdk = local_stack::aws::sdk_config(&options.endpoint).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let resources = provision(&template, &dynamodb, &sqs, &options.prefix)
        .await
        .map_err(|e| {
            format!(
                "{e} (is the emulator running at {}? `make emulator-start`)",
                options.endpoint
            )
        })?;

    if let Some((function, event)) = &options.invoke {
        return invoke(&sdk, &resources, function, event).await;
    }
    println!("# Resources in the emulator; paste into another shell to use hookctl:");
    for (name, value) in dev::environment(&options.endpoint, &resources) {
        println!("export {name}={value}");
    }
    if options.command == "provision" {
        return Ok(());
    }

    let directory = shared::aws::DynamoTenantDirectory::new(dynamodb, resources.tenants_table());
    dev::seed_demo_tenant(&directory)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "\n# Demo tenant `{}` (local-only secrets):",
        dev::DEMO_TENANT
    );
    for (provider, secret) in dev::DEMO_SECRETS {
        println!("#   {:<8} {secret}", provider.as_str());
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    println!(
        "\n# Ingress on http://{}/webhooks/{{tenant}}/{{provider}}  (Ctrl-C stops)",
        options.listen
    );
    println!(
        "# Try: cargo run -q -p hookctl -- send http://{} --tenant demo --provider stripe --file events/payloads/stripe/invoice.paid.json",
        options.listen
    );
    let ingress = dev::build_ingress(&sdk, &resources);
    let processor = processor::build(&sdk, &dev::processor_config(&resources)?);
    let mapping = EventSourceMapping {
        sqs: sqs.clone(),
        queue_url: resources.events_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::from_secs(1),
    };
    println!(
        "# Processor polling {} (the SQS event source mapping, emulated)",
        resources.events_queue_url()
    );
    tokio::select! {
        served = server::serve(listener, ingress) => served.map_err(|e| e.to_string()),
        () = mapping.run(&processor) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Run one function on one event file against the stack, as `sam local invoke` would, and print
/// its answer.
async fn invoke(
    sdk: &aws_config::SdkConfig,
    resources: &local_stack::provision::Provisioned,
    function: &str,
    event: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(event).map_err(|e| format!("cannot read {event}: {e}"))?;
    let payload: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{event} is not JSON: {e}"))?;
    match function {
        "replay" => {
            let operations = replay::build(sdk, &dev::replay_config(resources)?);
            let summary = operations
                .run_json(payload)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        other => Err(format!(
            "invoke: no local runner for `{other}` (the ingress runs under `dev`; the processor polls the queue there)"
        )),
    }
}
