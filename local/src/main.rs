//! `local-stack provision | dev | invoke replay EVENT.json`: the system on this machine, against
//! the AWS emulator.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use local_stack::{
    aws::Clients,
    dev,
    event_source::{self, EventSourceMapping},
    provision::{ProvisionError, Provisioned, provision},
    server,
    template::{Overrides, Template, TemplateError},
};
use shared::{env::EnvError, ports::StoreError};
use thiserror::Error;
use tokio::net::TcpListener;

/// The local stack: template.yaml's tables and queues in the AWS emulator, and the functions
/// running against them.
#[derive(Debug, Parser)]
#[command(name = "local-stack", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The emulator's endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:4566",
        global = true
    )]
    endpoint: String,
    /// Prefix of every table and queue name, so stacks never meet.
    #[arg(long, default_value = "dev-", global = true)]
    prefix: String,
    /// The SAM template to provision from.
    #[arg(long, default_value = "template.yaml", global = true)]
    template: PathBuf,
    /// Seconds before each attempt, as the `RetrySchedule` parameter: the processor's schedule
    /// and the queue's `maxReceiveCount` follow it, as in a deployment.
    #[arg(long, env = "RETRY_SCHEDULE", global = true)]
    retry_schedule: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the tables and queues and print the environment that reaches them.
    Provision,
    /// Provision, seed the demo tenant, serve the ingress and the publish API, run the
    /// processor and the dispatcher.
    Dev {
        /// Where the ingress listens.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// How webhooks reach the ingress (the template's `IngressFront`).
        #[arg(long, value_enum, default_value_t)]
        front: server::Front,
    },
    /// Run one function on one console event, as `sam local invoke` would.
    Invoke {
        /// The function (only `replay` takes console events).
        function: String,
        /// The event file.
        event: PathBuf,
    },
    /// Measure each function's cold start: release bootstraps against a stand-in for the
    /// Lambda Runtime API, the emulator behind them.
    Coldstart {
        /// Where the native release bootstraps are (`cargo build --release`).
        #[arg(long, default_value = "target/release")]
        bootstraps: PathBuf,
        /// Starts per function; the medians are printed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Price every AWS call of each flow (inbound 1 KiB, 30 KiB, 100 KiB via S3, relay on)
    /// and print the bill per event and the partition heat, as Markdown.
    Cost {
        /// Events per flow, after one that warms the functions.
        #[arg(long, default_value_t = 20)]
        events: u64,
    },
}

/// Why the local stack stopped.
#[derive(Debug, Error)]
enum LocalError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{source} (is the emulator running at {endpoint}? `make emulator-start`)")]
    Provision {
        source: ProvisionError,
        endpoint: String,
    },
    #[error("configuration: {0}")]
    Config(#[from] EnvError),
    #[error("seeding the demo tenant: {0}")]
    Seed(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the ingress server stopped: {0}")]
    Serve(std::io::Error),
    #[error("cannot read {path}: {source}")]
    ReadEvent {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    EventJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the demo tenant's id: {0}")]
    DemoTenant(String),
    #[error("the replay action failed: {0}")]
    Replay(String),
    #[error(transparent)]
    ColdStart(#[from] local_stack::coldstart::ColdStartError),
    #[error("cost meter: {0}")]
    Cost(String),
    #[error(
        "invoke: no local runner for `{0}` (the ingress runs under `dev`; the processor polls the queue there)"
    )]
    NoRunner(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The cost meter installs its own subscriber: it counts the bytes the functions log.
    if !matches!(cli.command, Command::Cost { .. }) {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .init();
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-stack: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), LocalError> {
    let mut overrides = Overrides::new();
    if let Some(schedule) = &cli.retry_schedule {
        overrides.insert("RetrySchedule".into(), schedule.clone());
    }
    let template = Template::load_with(&cli.template, &overrides)?;
    if let Command::Cost { events } = cli.command {
        return cost(&cli.endpoint, &template, events).await;
    }
    let sdk = local_stack::aws::sdk_config(&cli.endpoint).await;
    let clients = Clients::new(&sdk);
    let resources = provision(&template, &clients, &cli.prefix)
        .await
        .map_err(|source| LocalError::Provision {
            source,
            endpoint: cli.endpoint.clone(),
        })?;

    let listen = match cli.command {
        Command::Invoke { function, event } => {
            return invoke(&sdk, &resources, &function, &event).await;
        }
        Command::Coldstart { bootstraps, runs } => {
            return coldstart(&cli.endpoint, &resources, &bootstraps, runs).await;
        }
        Command::Provision | Command::Cost { .. } => None,
        Command::Dev { listen, front } => Some((listen, front)),
    };
    println!("# Resources in the emulator; paste into another shell to use hookctl:");
    for (name, value) in dev::environment(&cli.endpoint, &resources) {
        println!("export {name}={value}");
    }
    let Some((listen, front)) = listen else {
        return Ok(());
    };

    let directory = shared::aws::DynamoTenantDirectory::new(
        clients.dynamodb.clone(),
        resources.tenants_table(),
        shared::aws::secrets_keys(&sdk, resources.secrets_key()),
    );
    dev::seed_demo_tenant(&directory, &clients.dynamodb, &resources).await?;
    println!(
        "\n# Demo tenant `{}` (local-only secrets):",
        dev::DEMO_TENANT
    );
    for (provider, secret) in dev::DEMO_SECRETS {
        println!("#   {:<8} {secret}", provider.as_str());
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| LocalError::Listen {
            address: listen,
            source,
        })?;
    println!(
        "\n# Ingress on http://{listen}/webhooks/{{tenant}}/{{provider}}, as {} would serve it  (Ctrl-C stops)",
        match front {
            server::Front::ApiGateway => "API Gateway",
            server::Front::FunctionUrl => "a Function URL",
        }
    );
    println!(
        "# Try: cargo run -q -p hookctl -- send http://{listen} --tenant demo --provider stripe --file events/payloads/stripe/invoice.paid.json"
    );
    println!(
        "# Publish to partners: curl -X POST http://{listen}/v1/tenants/demo/messages -d '{{\"event_type\":\"invoice.paid\",\"payload\":{{\"id\":\"inv_1\"}}}}'"
    );
    println!(
        "#   first: hookctl endpoint add demo http://127.0.0.1:4000/   then: hookctl listen --port 4000 --secret <its secret>"
    );
    let portal =
        portal::build(&sdk, &dev::portal_config(&resources)?).map_err(LocalError::Serve)?;
    match portal
        .access
        .link(
            &shared::ids::TenantId::parse(dev::DEMO_TENANT)
                .map_err(|e| LocalError::DemoTenant(e.to_string()))?,
            shared::portal::Grant {
                read_only: false,
                operator: true,
            },
            shared::portal::MAX_TTL,
        )
        .await
    {
        Ok(token) => println!(
            "# Portal for `{}` (operator, one-time link, 24 h): http://localhost:{}/portal/login?token={token}",
            dev::DEMO_TENANT,
            listen.port()
        ),
        Err(e) => println!("# Partner portal: no link ({e})"),
    }
    println!(
        "#   another: cargo run -q -p hookctl -- portal link demo --base-url http://localhost:{}",
        listen.port()
    );
    let routes = server::Routes {
        front,
        ingress: dev::build_ingress(&sdk, &resources),
        api: std::sync::Arc::new(api::build(&sdk, &dev::api_config(&resources)?)),
        portal: Some(std::sync::Arc::new(portal)),
    };
    let processor = processor::build(&sdk, &dev::processor_config(&resources)?);
    let dispatcher =
        dispatcher::build(&sdk, &dev::dispatcher_config(&resources)?).map_err(LocalError::Serve)?;
    let slow_dispatcher = dispatcher::build(&sdk, &dev::slow_dispatcher_config(&resources)?)
        .map_err(LocalError::Serve)?;
    let events = EventSourceMapping {
        sqs: clients.sqs.clone(),
        queue_url: resources.events_queue_url().to_owned(),
        batch_size: 10,
        batching_window: Duration::from_secs(1),
    };
    let deliveries = EventSourceMapping {
        queue_url: resources.deliveries_queue_url().to_owned(),
        ..events.clone()
    };
    let slow_deliveries = EventSourceMapping {
        queue_url: resources.slow_deliveries_queue_url().to_owned(),
        ..events.clone()
    };
    println!(
        "# Processor polling {}, dispatcher polling {} and its slow lane {} (the SQS event source mappings, emulated)",
        resources.events_queue_url(),
        resources.deliveries_queue_url(),
        resources.slow_deliveries_queue_url()
    );
    tokio::select! {
        served = server::serve(listener, routes) => served.map_err(LocalError::Serve),
        () = events.run(&processor, event_source::PROCESSOR_MAX_CONCURRENCY) => Ok(()),
        () = deliveries.run(&dispatcher, event_source::DISPATCHER_MAX_CONCURRENCY) => Ok(()),
        () = slow_deliveries.run(&slow_dispatcher, event_source::SLOW_LANE_MAX_CONCURRENCY) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Run one function on one event file against the stack, and print its answer.
async fn invoke(
    sdk: &aws_config::SdkConfig,
    resources: &Provisioned,
    function: &str,
    event: &PathBuf,
) -> Result<(), LocalError> {
    let text = std::fs::read_to_string(event).map_err(|source| LocalError::ReadEvent {
        path: event.clone(),
        source,
    })?;
    let payload: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| LocalError::EventJson {
            path: event.clone(),
            source,
        })?;
    if function != "replay" {
        return Err(LocalError::NoRunner(function.to_owned()));
    }
    let replay = replay::build(sdk, &dev::replay_config(resources)?);
    let summary = replay
        .run_json(payload)
        .await
        .map_err(|e| LocalError::Replay(e.to_string()))?;
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| LocalError::Replay(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// `local-stack coldstart`: each function's first invocation, `runs` times, as a table.
async fn coldstart(
    endpoint: &str,
    resources: &Provisioned,
    bootstraps: &std::path::Path,
    runs: usize,
) -> Result<(), LocalError> {
    // The emulator named per service, not by `AWS_ENDPOINT_URL`: with that one set the
    // functions load the system's certificate store, as they would for any endpoint of one's
    // own, and the figures would not be the deployed cold start.
    let mut env: Vec<(String, String)> = dev::environment(endpoint, resources)
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for service in ["DYNAMODB", "SQS", "S3", "KMS"] {
        env.push((format!("AWS_ENDPOINT_URL_{service}"), endpoint.to_owned()));
    }
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    let read = |path: &str| {
        std::fs::read(path).map_err(|source| LocalError::ReadEvent {
            path: path.into(),
            source,
        })
    };
    let pointer =
        serde_json::json!({"tenant": "demo", "provider": "stripe", "event_id": "evt_coldstart"});
    let sqs_event = serde_json::json!({"Records": [{
        "messageId": "m-coldstart", "receiptHandle": "r-coldstart", "body": pointer.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"}]});
    let mut publish: serde_json::Value = serde_json::from_slice(&read(
        "events/ingress/stripe-invoice-paid.json",
    )?)
    .map_err(|source| LocalError::EventJson {
        path: "events/ingress/stripe-invoice-paid.json".into(),
        source,
    })?;
    publish["rawPath"] = "/v1/tenants/demo/messages".into();
    publish["routeKey"] = "POST /v1/tenants/{tenant}/messages".into();
    publish["requestContext"]["http"]["path"] = "/v1/tenants/demo/messages".into();
    publish["pathParameters"] = serde_json::json!({"tenant": "demo"});
    publish["body"] =
        r#"{"event_type":"invoice.paid","payload":{"id":"inv_1"},"idempotency_key":"coldstart"}"#
            .into();
    let mut page = publish.clone();
    page["rawPath"] = "/portal/endpoints".into();
    page["routeKey"] = "GET /portal/{proxy+}".into();
    page["requestContext"]["http"]["method"] = "GET".into();
    page["requestContext"]["http"]["path"] = "/portal/endpoints".into();
    page["pathParameters"] = serde_json::json!({"proxy": "endpoints"});
    page["body"] = serde_json::Value::Null;
    let functions: [(&str, Vec<u8>); 6] = [
        ("ingress", read("events/ingress/stripe-bad-signature.json")?),
        ("processor", sqs_event.to_string().into_bytes()),
        ("dispatcher", br#"{"Records":[]}"#.to_vec()),
        ("replay", read("events/replay/health.json")?),
        ("api", publish.to_string().into_bytes()),
        ("portal", page.to_string().into_bytes()),
    ];
    println!("| function | init (exec → first poll) | first answer | peak RSS | bootstrap |");
    println!("| --- | --- | --- | --- | --- |");
    for (function, event) in functions {
        let bootstrap = bootstraps.join(function);
        let mut starts = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            starts.push(local_stack::coldstart::measure(&bootstrap, &env, &event).await?);
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let init = median(starts.iter().map(|s| s.init.as_secs_f64() * 1e3).collect());
        let answer = median(
            starts
                .iter()
                .map(|s| s.first_answer.as_secs_f64() * 1e3)
                .collect(),
        );
        let rss = median(
            starts
                .iter()
                .map(|s| s.peak_rss_kib as f64 / 1024.0)
                .collect(),
        );
        let size = std::fs::metadata(&bootstrap).map_or(0, |m| m.len()) / 1024;
        println!("| {function} | {init:.1} ms | {answer:.1} ms | {rss:.1} MiB | {size} KiB |");
    }
    Ok(())
}

/// Measure every flow and print the report.
async fn cost(endpoint: &str, template: &Template, events: u64) -> Result<(), LocalError> {
    use local_stack::cost::{self, flows};
    let mut measured = Vec::new();
    for flow in flows::Flow::all(events) {
        eprintln!("measuring {} ...", flow.name);
        measured.push(
            flows::measure(endpoint, template, &flow)
                .await
                .map_err(LocalError::Cost)?,
        );
    }
    println!(
        "# Cost per event (us-east-1 on-demand list prices){}",
        cost::report(&measured)
    );
    Ok(())
}
