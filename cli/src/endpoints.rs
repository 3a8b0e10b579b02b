//! `hookctl endpoint ...`, `hookctl publish` and `hookctl deliveries list`: the outbound side,
//! through the same use cases the functions run (`shared::outbound`).
//!
//! A signing secret is printed when this command created or rotated it, and otherwise only on
//! `endpoint show --reveal`.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Args, Subcommand};
use shared::{
    clock::Clock,
    ids::TenantId,
    outbound::{
        Outbound,
        admin::{AdminError, EndpointChange},
        delivery::{Attempt, Delivery},
        dispatch::Dispatcher,
        endpoint::{CustomHeaders, Endpoint},
        ids::{EndpointId, EventType, MessageId},
        ports::{DeliveryQueue, DeliveryRetryQueue, OutboundStore, Transport},
        publish::PublishRequest,
    },
    processor::Jitter,
    secret::Secret,
};

use crate::{
    args::{parse_secret, parse_tenant},
    error::CliError,
    output::{Out, sanitize, table, timestamp},
    views,
};

/// The most rows one listing prints.
const MAX_LIMIT: u32 = 1_000;

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Register a partner endpoint; its signing secret is generated (or given) and printed once.
    Add(EndpointAddArgs),
    /// A tenant's endpoints, with their state and health.
    List(TenantArg),
    /// One endpoint; `--reveal` prints its signing secrets and header values.
    Show(EndpointShowArgs),
    /// Change an endpoint's URL, description, filter, rate limit or headers.
    Update(EndpointUpdateArgs),
    /// Take deliveries again: health forgotten, held deliveries released in order.
    Enable(EndpointRef),
    /// Stop deliveries; new ones are held, never dropped.
    Disable(EndpointRef),
    /// New signing secret; the previous one keeps signing beside it for 24 hours.
    Rotate(EndpointRotateArgs),
    /// Delete an endpoint; its waiting deliveries are cancelled.
    Delete(EndpointRef),
    /// Send a test event now and print the endpoint's answer.
    Test(EndpointTestArgs),
    /// Set the tenant's own retry schedule or auto-disable delay.
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
pub struct TenantArg {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
}

#[derive(Debug, Args)]
pub struct EndpointRef {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_endpoint)]
    pub endpoint: EndpointId,
}

#[derive(Debug, Args, Default)]
pub struct ChangeArgs {
    /// What the endpoint is for, shown to operators and partners.
    #[arg(long)]
    pub description: Option<String>,
    /// Event types it receives, comma-separated: exact names or `prefix.*`; empty for all.
    #[arg(long, value_name = "TYPES")]
    pub filter: Option<String>,
    /// Deliveries per second at most (0: no limit).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<String>,
    /// A header sent with every delivery, `Name: value`; repeat for several.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

impl ChangeArgs {
    fn into_change(self, url: Option<String>) -> EndpointChange {
        EndpointChange {
            url,
            description: self.description,
            filter: self
                .filter
                .map(|f| f.split(',').map(str::to_owned).collect()),
            rate_limit: self.rate_limit,
            headers: (!self.headers.is_empty()).then_some(self.headers),
        }
    }
}

#[derive(Debug, Args)]
pub struct EndpointAddArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// Where deliveries go: https, a public host.
    pub url: String,
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Use this signing secret (`whsec_` + base64) instead of a generated one; `-` reads it
    /// from standard input.
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
}

#[derive(Debug, Args)]
pub struct EndpointShowArgs {
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// Print the signing secrets and the custom headers' values too.
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
pub struct EndpointUpdateArgs {
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// A new URL.
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Args)]
pub struct EndpointRotateArgs {
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// The new secret; generated when absent; `-` reads it from standard input.
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
}

#[derive(Debug, Args)]
pub struct EndpointTestArgs {
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// The event type to send (default `webhook.test`).
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// A JSON payload file to send instead of the test payload.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// Seconds before each attempt, comma-separated (`0,5,300,1800`).
    #[arg(long, value_name = "SECS,...")]
    pub schedule: Option<String>,
    /// Disable an endpoint after failing continuously this many hours.
    #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u64).range(1..=720))]
    pub disable_after_hours: Option<u64>,
    /// Publish every processed inbound event to the partners as `{provider}.{type}`.
    #[arg(long, value_name = "BOOL")]
    pub relay_inbound: Option<bool>,
    /// Refuse to publish event types the tenant's catalog does not hold (`hookctl event-type`).
    #[arg(long, value_name = "BOOL")]
    pub registered_types_only: Option<bool>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// The event type (`invoice.paid`).
    pub event_type: String,
    /// The JSON payload, inline.
    #[arg(long, conflicts_with = "file")]
    pub data: Option<String>,
    /// The JSON payload, from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The message id partners deduplicate on; publishing it again delivers nothing twice.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Deliveries of an endpoint (newest first) or of a message, or the attempts log.
    List(DeliveriesListArgs),
    /// Deliver a message again (to one endpoint, or every matching one).
    Resend(ResendArgs),
    /// Start over an endpoint's dead deliveries created since a time.
    Recover(RecoverArgs),
}

#[derive(Debug, Args)]
pub struct DeliveriesListArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(long, value_parser = parse_endpoint, required_unless_present = "message")]
    pub endpoint: Option<EndpointId>,
    #[arg(long, value_parser = parse_message)]
    pub message: Option<MessageId>,
    /// Every attempt (status, latency, answer) instead of the deliveries.
    #[arg(long)]
    pub attempts: bool,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    pub limit: u32,
    /// The page token a previous listing printed.
    #[arg(long)]
    pub next: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResendArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_message)]
    pub message: MessageId,
    #[arg(long, value_parser = parse_endpoint)]
    pub endpoint: Option<EndpointId>,
    /// Say what would be resent, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub endpoint: EndpointRef,
    /// Unix seconds: dead deliveries created at or after it start over.
    #[arg(long)]
    pub since: u64,
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_endpoint(raw: &str) -> Result<EndpointId, String> {
    EndpointId::parse(raw).map_err(|e| e.to_string())
}

fn parse_message(raw: &str) -> Result<MessageId, String> {
    MessageId::parse(raw).map_err(|e| e.to_string())
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        Self::Outbound(e.to_string())
    }
}

/// Run one `endpoint` subcommand.
pub async fn endpoint<S, Q, R, T, C, J>(
    dispatcher: &Dispatcher<S, Q, R, T, C, J>,
    command: EndpointCommand,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    R: DeliveryRetryQueue,
    T: Transport,
    C: Clock,
    J: Jitter,
{
    let outbound = &dispatcher.outbound;
    match command {
        EndpointCommand::Add(args) => {
            let endpoint = outbound
                .add_endpoint(
                    &args.tenant,
                    args.change.into_change(Some(args.url)),
                    args.secret,
                )
                .await?;
            if out.json() {
                let now = outbound.clock.now();
                return out.document(&views::endpoint_with_secrets(&endpoint, now, false));
            }
            describe(&endpoint, out)?;
            print_secrets(&endpoint, out)?;
            writeln!(
                out,
                "Give the partner this secret now: it is not shown again without --reveal."
            )?;
        }
        EndpointCommand::List(args) => {
            let endpoints = outbound.store.endpoints(&args.tenant).await?;
            let now = outbound.clock.now();
            if out.json() {
                let listed: Vec<_> = endpoints.iter().map(|e| views::endpoint(e, now)).collect();
                return out.document(&serde_json::json!({ "endpoints": listed }));
            }
            let rows: Vec<[String; 5]> = endpoints
                .iter()
                .map(|e| {
                    [
                        e.id.to_string(),
                        sanitize(&e.url.as_str()),
                        e.filter.to_string(),
                        state(e, now),
                        sanitize(&e.description),
                    ]
                })
                .collect();
            table(
                out,
                ["ENDPOINT", "URL", "FILTER", "STATE", "DESCRIPTION"],
                &rows,
            )?;
        }
        EndpointCommand::Show(args) => {
            let EndpointRef { tenant, endpoint } = args.endpoint;
            let found = if args.reveal {
                outbound
                    .store
                    .endpoint_with_secrets(&tenant, &endpoint)
                    .await?
            } else {
                outbound.store.endpoint(&tenant, &endpoint).await?
            };
            let found = found.ok_or(AdminError::UnknownEndpoint(endpoint))?;
            if out.json() && args.reveal {
                let now = outbound.clock.now();
                return out.document(&views::endpoint_with_secrets(&found, now, true));
            }
            describe(&found, out)?;
            if args.reveal {
                print_secrets(&found, out)?;
                print_header_values(&found, out)?;
            }
        }
        EndpointCommand::Update(args) => {
            let EndpointRef { tenant, endpoint } = args.endpoint;
            let updated = outbound
                .update_endpoint(&tenant, &endpoint, args.change.into_change(args.url))
                .await?;
            describe(&updated, out)?;
        }
        EndpointCommand::Enable(EndpointRef { tenant, endpoint }) => {
            let enabled = outbound.set_enabled(&tenant, &endpoint, true).await?;
            describe(&enabled, out)?;
        }
        EndpointCommand::Disable(EndpointRef { tenant, endpoint }) => {
            let disabled = outbound.set_enabled(&tenant, &endpoint, false).await?;
            describe(&disabled, out)?;
        }
        EndpointCommand::Rotate(args) => {
            let EndpointRef { tenant, endpoint } = args.endpoint;
            let rotated = outbound
                .rotate_secret(&tenant, &endpoint, args.secret)
                .await?;
            if out.json() {
                let now = outbound.clock.now();
                return out.document(&views::endpoint_with_secrets(&rotated, now, false));
            }
            print_secrets(&rotated, out)?;
        }
        EndpointCommand::Delete(EndpointRef { tenant, endpoint }) => {
            outbound.delete_endpoint(&tenant, &endpoint).await?;
            if out.json() {
                return out.document(&serde_json::json!({ "deleted": endpoint.as_str() }));
            }
            writeln!(out, "deleted {endpoint}")?;
        }
        EndpointCommand::Test(args) => {
            let EndpointRef { tenant, endpoint } = args.endpoint;
            let event_type = args
                .event_type
                .as_deref()
                .map(EventType::parse)
                .transpose()
                .map_err(|e| CliError::Outbound(format!("event type: {e}")))?;
            let payload = args.file.as_ref().map(read_json).transpose()?;
            let attempt = dispatcher
                .test_endpoint(&tenant, &endpoint, event_type.as_ref(), payload.as_deref())
                .await?
                .ok_or(AdminError::UnknownEndpoint(endpoint))?;
            if out.json() {
                out.document(&views::attempt(&attempt))?;
            } else {
                print_attempt(&attempt, out)?;
            }
            if !attempt.succeeded() {
                return Err(CliError::Outbound("the endpoint did not answer 2xx".into()));
            }
        }
        EndpointCommand::Policy(args) => {
            let schedule = args
                .schedule
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: shared::retry::ScheduleError| CliError::Outbound(e.to_string()))?;
            // Options not given keep their stored value.
            let mut policy = outbound
                .store
                .tenant_policy(&args.tenant)
                .await?
                .unwrap_or_default();
            if schedule.is_some() {
                policy.schedule = schedule;
            }
            if let Some(hours) = args.disable_after_hours {
                policy.disable_after = Some(Duration::from_secs(hours * 3_600));
            }
            if let Some(relay) = args.relay_inbound {
                policy.relay_inbound = relay;
            }
            if let Some(only) = args.registered_types_only {
                policy.registered_types_only = only;
            }
            outbound
                .store
                .put_tenant_policy(&args.tenant, &policy)
                .await?;
            let (schedule, disable_after) = outbound.settings.for_tenant(Some(&policy));
            if out.json() {
                return out.document(&serde_json::json!({
                    "tenant": args.tenant.as_str(),
                    "schedule": schedule.to_string(),
                    "disable_after_secs": disable_after.as_secs(),
                    "relay_inbound": policy.relay_inbound,
                    "registered_types_only": policy.registered_types_only,
                }));
            }
            writeln!(
                out,
                "{}: schedule {schedule} s, disabled after {} h failing, inbound events {}, {} event types",
                args.tenant,
                disable_after.as_secs() / 3_600,
                if policy.relay_inbound {
                    "relayed"
                } else {
                    "not relayed"
                },
                if policy.registered_types_only {
                    "registered"
                } else {
                    "any"
                }
            )?;
        }
    }
    Ok(())
}

/// `hookctl publish`.
pub async fn publish<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    args: PublishArgs,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    let payload = match (&args.data, &args.file) {
        (Some(data), _) => data.clone().into_bytes(),
        (None, Some(path)) => read_json(path)?,
        (None, None) => b"{}".to_vec(),
    };
    let published = outbound
        .publish(PublishRequest {
            tenant: &args.tenant,
            event_type: &args.event_type,
            payload: &payload,
            idempotency_key: args.idempotency_key.as_deref(),
        })
        .await
        .map_err(|e| CliError::Outbound(e.to_string()))?;
    if out.json() {
        return out.document(&serde_json::json!({
            "message_id": published.message_id.as_str(),
            "duplicate": published.duplicate,
            "deliveries": published.deliveries,
        }));
    }
    writeln!(
        out,
        "message {}{}: {} deliveries",
        published.message_id,
        if published.duplicate {
            " (published before)"
        } else {
            ""
        },
        published.deliveries
    )?;
    Ok(())
}

/// `hookctl deliveries ...`.
pub async fn deliveries<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    command: DeliveriesCommand,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    match command {
        DeliveriesCommand::List(args) => list(outbound, args, out).await,
        DeliveriesCommand::Resend(args) => {
            let report = outbound
                .resend(
                    &args.tenant,
                    &args.message,
                    args.endpoint.as_ref(),
                    args.dry_run,
                )
                .await
                .map_err(|e| CliError::Outbound(e.to_string()))?;
            report_json(&report, out)
        }
        DeliveriesCommand::Recover(args) => {
            let EndpointRef { tenant, endpoint } = args.endpoint;
            let since = UNIX_EPOCH + Duration::from_secs(args.since);
            let report = outbound
                .recover_failed(&tenant, &endpoint, since, args.dry_run)
                .await
                .map_err(|e| CliError::Outbound(e.to_string()))?;
            report_json(&report, out)
        }
    }
}

async fn list<S, Q, C>(
    outbound: &Outbound<S, Q, C>,
    args: DeliveriesListArgs,
    out: &mut Out<'_>,
) -> Result<(), CliError>
where
    S: OutboundStore,
    Q: DeliveryQueue,
    C: Clock,
{
    let store = &outbound.store;
    let next = args.next.as_deref();
    if args.attempts {
        let page = match (&args.endpoint, &args.message) {
            (Some(endpoint), _) => {
                store
                    .attempts_of_endpoint(&args.tenant, endpoint, args.limit, next)
                    .await?
            }
            (None, Some(message)) => {
                store
                    .attempts_of_message(&args.tenant, message, args.limit, next)
                    .await?
            }
            (None, None) => return Err(CliError::Outbound("name --endpoint or --message".into())),
        };
        if out.json() {
            let attempts: Vec<_> = page.items.iter().map(views::attempt).collect();
            return out.document(&serde_json::json!({ "attempts": attempts, "next": page.next }));
        }
        let rows: Vec<[String; 7]> = page.items.iter().map(attempt_row).collect();
        table(
            out,
            [
                "AT", "MESSAGE", "ENDPOINT", "#", "STATUS", "LATENCY", "ERROR",
            ],
            &rows,
        )?;
        return print_next(page.next, out);
    }
    let (items, next) = match (&args.endpoint, &args.message) {
        (Some(endpoint), _) => {
            let page = store
                .deliveries_of_endpoint(&args.tenant, endpoint, None, args.limit, next)
                .await?;
            (page.items, page.next)
        }
        (None, Some(message)) => (
            store.deliveries_of_message(&args.tenant, message).await?,
            None,
        ),
        (None, None) => return Err(CliError::Outbound("name --endpoint or --message".into())),
    };
    if out.json() {
        let deliveries: Vec<_> = items.iter().map(views::delivery).collect();
        return out.document(&serde_json::json!({ "deliveries": deliveries, "next": next }));
    }
    let rows: Vec<[String; 7]> = items.iter().map(delivery_row).collect();
    table(
        out,
        [
            "CREATED", "MESSAGE", "ENDPOINT", "TYPE", "STATUS", "ATTEMPTS", "LAST",
        ],
        &rows,
    )?;
    print_next(next, out)
}

fn delivery_row(d: &Delivery) -> [String; 7] {
    [
        timestamp(d.created_at),
        d.key.message_id.to_string(),
        d.key.endpoint_id.to_string(),
        d.event_type.to_string(),
        d.status.to_string(),
        d.attempts.to_string(),
        match (d.last_status_code, &d.last_error) {
            (Some(code), _) => code.to_string(),
            (None, Some(error)) => sanitize(&error.chars().take(60).collect::<String>()),
            (None, None) => String::new(),
        },
    ]
}

fn attempt_row(a: &Attempt) -> [String; 7] {
    [
        timestamp(a.at),
        a.key.message_id.to_string(),
        a.key.endpoint_id.to_string(),
        a.number.to_string(),
        a.status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        format!("{} ms", a.latency.as_millis()),
        a.error_class.map(|c| c.to_string()).unwrap_or_default(),
    ]
}

fn print_next(next: Option<String>, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(next) = next {
        writeln!(out, "more: --next {next}")?;
    }
    Ok(())
}

fn report_json(report: &impl serde::Serialize, out: &mut dyn Write) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| CliError::Outbound(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

fn state(e: &Endpoint, now: SystemTime) -> String {
    match e.disabled() {
        Some(reason) => format!("disabled ({reason})"),
        None if e.is_paused(now) => format!("paused ({} failures)", e.health.consecutive_failures),
        None if e.health.consecutive_failures > 0 => {
            format!("failing ({} in a row)", e.health.consecutive_failures)
        }
        None => "enabled".into(),
    }
}

/// The endpoint's fields; with `--output json`, its JSON view.
fn describe(e: &Endpoint, out: &mut Out<'_>) -> Result<(), CliError> {
    if out.json() {
        return out.document(&views::endpoint(e, SystemTime::now()));
    }
    writeln!(out, "endpoint     {}", e.id)?;
    writeln!(out, "tenant       {}", e.tenant)?;
    writeln!(out, "url          {}", sanitize(&e.url.as_str()))?;
    writeln!(out, "filter       {}", e.filter)?;
    writeln!(out, "state        {}", state(e, SystemTime::now()))?;
    if !e.description.is_empty() {
        writeln!(out, "description  {}", sanitize(&e.description))?;
    }
    if let Some(limit) = e.rate_limit {
        writeln!(out, "rate limit   {limit}/s")?;
    }
    for name in e.headers.names() {
        writeln!(out, "header       {name}: (sealed; --reveal shows it)")?;
    }
    if let Some(at) = e.health.last_success_at {
        writeln!(out, "last success {}", timestamp(at))?;
    }
    Ok(())
}

fn print_secrets(e: &Endpoint, out: &mut dyn Write) -> Result<(), CliError> {
    let Some(secrets) = &e.secrets else {
        return Ok(());
    };
    writeln!(out, "secret       {}", secrets.current.expose())?;
    if let Some(previous) = &secrets.previous {
        writeln!(
            out,
            "previous     {} (signs too until {})",
            previous.secret.expose(),
            timestamp(previous.expires_at)
        )?;
    }
    Ok(())
}

/// The custom headers' values, shown only by `show --reveal` (an add or update does not echo
/// them).
fn print_header_values(e: &Endpoint, out: &mut dyn Write) -> Result<(), CliError> {
    for (name, value) in e.headers.opened().into_iter().flat_map(CustomHeaders::iter) {
        writeln!(out, "header value {name}: {}", sanitize(value))?;
    }
    Ok(())
}

fn print_attempt(a: &Attempt, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(out, "url       {}", sanitize(&a.url))?;
    match a.status {
        Some(status) => writeln!(out, "status    {status}")?,
        None => writeln!(out, "status    no answer")?,
    }
    writeln!(out, "latency   {} ms", a.latency.as_millis())?;
    if let (Some(class), Some(error)) = (a.error_class, &a.error) {
        writeln!(out, "error     {class}: {}", sanitize(error))?;
    }
    if !a.response_body.is_empty() {
        writeln!(out, "answer    {}", sanitize(&a.response_body))?;
    }
    Ok(())
}

pub(crate) fn read_json(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::ReadFile {
        path: path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::{
        clock::ManualClock,
        memory::{MemoryDeliveryQueue, MemoryOutboundStore, ScriptedTransport},
        outbound::{OutboundSettings, ports::EndpointStore, ssrf::StaticResolver},
        processor::NoJitter,
    };

    use super::*;

    type TestDispatcher = Dispatcher<
        MemoryOutboundStore,
        Arc<MemoryDeliveryQueue>,
        Arc<MemoryDeliveryQueue>,
        ScriptedTransport,
        ManualClock,
        NoJitter,
    >;

    fn dispatcher() -> TestDispatcher {
        let queue = Arc::new(MemoryDeliveryQueue::new());
        let outbound = Outbound::new(
            MemoryOutboundStore::new(),
            queue.clone(),
            ManualClock::at_unix(1_750_000_000),
            OutboundSettings::default(),
        )
        .with_resolver(Arc::new(
            StaticResolver::default()
                .with("partner.example", &["93.184.216.34".parse().expect("ip")]),
        ));
        Dispatcher::new(outbound, queue, ScriptedTransport::new(), NoJitter)
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    async fn run(d: &TestDispatcher, command: EndpointCommand) -> Result<String, CliError> {
        let mut out = Vec::new();
        endpoint(d, command, &mut Out::text(&mut out)).await?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    async fn run_json(d: &TestDispatcher, command: EndpointCommand) -> serde_json::Value {
        let mut out = Vec::new();
        endpoint(
            d,
            command,
            &mut Out::new(&mut out, crate::output::Format::Json),
        )
        .await
        .expect("ran");
        serde_json::from_slice(&out).expect("one JSON document")
    }

    #[tokio::test]
    async fn json_output_gives_scripts_the_endpoint_its_secret_once_and_the_listing() {
        let d = dispatcher();
        let added = run_json(
            &d,
            EndpointCommand::Add(EndpointAddArgs {
                tenant: acme(),
                url: "https://partner.example/hooks".into(),
                change: ChangeArgs {
                    headers: vec!["X-Api-Key: sk_partner_value".into()],
                    ..ChangeArgs::default()
                },
                secret: None,
            }),
        )
        .await;
        let id = added["id"].as_str().expect("id").to_owned();
        assert!(
            added["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_"))
        );
        assert_eq!(added["headers"], serde_json::json!(["x-api-key"]));
        assert!(added.get("header_values").is_none(), "{added}");
        let listed = run_json(&d, EndpointCommand::List(TenantArg { tenant: acme() })).await;
        assert_eq!(listed["endpoints"][0]["id"], id.as_str());
        assert!(listed["endpoints"][0].get("secret").is_none(), "{listed}");
        let show = |reveal| {
            EndpointCommand::Show(EndpointShowArgs {
                endpoint: EndpointRef {
                    tenant: acme(),
                    endpoint: EndpointId::parse(&id).expect("id"),
                },
                reveal,
            })
        };
        assert!(run_json(&d, show(false)).await.get("secret").is_none());
        let revealed = run_json(&d, show(true)).await;
        assert_eq!(revealed["header_values"]["x-api-key"], "sk_partner_value");
    }

    #[tokio::test]
    async fn an_endpoint_is_added_listed_tested_and_its_secrets_shown_only_when_asked() {
        let d = dispatcher();
        let added = run(
            &d,
            EndpointCommand::Add(EndpointAddArgs {
                tenant: acme(),
                url: "https://partner.example/hooks".into(),
                change: ChangeArgs {
                    filter: Some("invoice.*".into()),
                    headers: vec!["X-Api-Key: sk_partner_value".into()],
                    ..ChangeArgs::default()
                },
                secret: None,
            }),
        )
        .await
        .expect("added");
        assert!(added.contains("secret       whsec_"), "{added}");
        assert!(added.contains("x-api-key: (sealed"), "{added}");
        assert!(!added.contains("sk_partner_value"), "{added}");
        let id = d.outbound.store.endpoints(&acme()).await.expect("list")[0]
            .id
            .clone();

        let listed = run(&d, EndpointCommand::List(TenantArg { tenant: acme() }))
            .await
            .expect("list");
        assert!(
            listed.contains(id.as_str()) && listed.contains("invoice.*"),
            "{listed}"
        );
        assert!(!listed.contains("whsec_"));
        let shown = run(
            &d,
            EndpointCommand::Show(EndpointShowArgs {
                endpoint: EndpointRef {
                    tenant: acme(),
                    endpoint: id.clone(),
                },
                reveal: false,
            }),
        )
        .await
        .expect("show");
        assert!(!shown.contains("whsec_"), "{shown}");
        assert!(!shown.contains("sk_partner_value"), "{shown}");
        let revealed = run(
            &d,
            EndpointCommand::Show(EndpointShowArgs {
                endpoint: EndpointRef {
                    tenant: acme(),
                    endpoint: id.clone(),
                },
                reveal: true,
            }),
        )
        .await
        .expect("show --reveal");
        assert!(revealed.contains("secret       whsec_"), "{revealed}");
        assert!(
            revealed.contains("header value x-api-key: sk_partner_value"),
            "{revealed}"
        );

        let tested = run(
            &d,
            EndpointCommand::Test(EndpointTestArgs {
                endpoint: EndpointRef {
                    tenant: acme(),
                    endpoint: id,
                },
                event_type: None,
                file: None,
            }),
        )
        .await
        .expect("tested");
        assert!(tested.contains("status    200"), "{tested}");
    }

    #[tokio::test]
    async fn a_refused_url_is_an_error_and_nothing_is_stored() {
        let d = dispatcher();
        let refused = run(
            &d,
            EndpointCommand::Add(EndpointAddArgs {
                tenant: acme(),
                url: "http://partner.example/hooks".into(),
                change: ChangeArgs::default(),
                secret: None,
            }),
        )
        .await;
        assert!(
            matches!(refused, Err(CliError::Outbound(ref m)) if m.contains("https")),
            "{refused:?}"
        );
        assert!(
            d.outbound
                .store
                .endpoints(&acme())
                .await
                .expect("list")
                .is_empty()
        );
    }
}
