//! The command line, as clap parses it. Values are parsed into domain types here (tenant ids,
//! providers, statuses, secrets), so the commands never see an unchecked string.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::{
    ids::{EventId, TenantId},
    outbound::ids::MessageId,
    provider::Provider,
    record::EventStatus,
    secret::Secret,
    verify::DEFAULT_TOLERANCE,
    verify::PublicKey,
};

/// The longest replay window a tenant may configure: beyond a day a window stops protecting
/// against replays.
pub const MAX_TOLERANCE_SECS: u64 = 24 * 60 * 60;

/// The longest a rotated-out secret may stay valid.
pub const MAX_GRACE_HOURS: u64 = 30 * 24;

/// The most events one listing returns.
pub const MAX_LIST_LIMIT: u32 = 1_000;

/// Where the stack's settings are listed in `--help`: apart from each command's own options,
/// since `make dev`'s or the stack's environment usually provides them.
const DEPLOYMENT: &str = "Deployment settings (usually from the environment)";

/// Operate the webhook system: tenants' provider configuration, event records, signed sample
/// deliveries, partner endpoints, the event catalog and the portal.
#[derive(Debug, Parser)]
#[command(name = "hookctl", version)]
pub struct Cli {
    /// DynamoDB table holding tenants' provider configuration.
    #[arg(long, env = "TENANTS_TABLE", global = true, help_heading = DEPLOYMENT, value_name = "TABLE")]
    pub tenants_table: Option<String>,

    /// DynamoDB table holding event records.
    #[arg(long, env = "EVENTS_TABLE", global = true, help_heading = DEPLOYMENT, value_name = "TABLE")]
    pub events_table: Option<String>,

    /// The KMS key tenants' secrets are sealed with (the stack's `SecretsKeyId` output).
    #[arg(long, env = "SECRETS_KEY_ID", global = true, help_heading = DEPLOYMENT, value_name = "KEY")]
    pub secrets_key: Option<String>,

    #[command(flatten)]
    pub outbound: OutboundFlags,

    /// text for people; json prints one JSON document (fields listed in the README).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "HOOKCTL_OUTPUT"
    )]
    pub output: crate::output::Format,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the outbound side lives.
#[derive(Debug, Args, Clone, Default)]
pub struct OutboundFlags {
    /// DynamoDB table holding partner endpoints, messages and deliveries.
    #[arg(long, env = "OUTBOUND_TABLE", global = true, help_heading = DEPLOYMENT, value_name = "TABLE")]
    pub outbound_table: Option<String>,

    /// The KMS HMAC key that authenticates portal links (the stack's `PortalLinkKeyId`).
    #[arg(long, env = "PORTAL_LINK_KEY_ID", global = true, help_heading = DEPLOYMENT, value_name = "KEY")]
    pub portal_link_key: Option<String>,

    /// The deliveries queue (the stack's `DeliveriesQueueUrl` output).
    #[arg(long, env = "DELIVERIES_QUEUE_URL", global = true, help_heading = DEPLOYMENT, value_name = "URL")]
    pub deliveries_queue_url: Option<String>,

    /// Local development only: accept http and loopback endpoint URLs (a deployed dispatcher
    /// still refuses to connect to them).
    #[arg(long, env = "HOOKCTL_ALLOW_LOOPBACK", global = true, help_heading = DEPLOYMENT)]
    pub allow_loopback: bool,

    /// Ports below 1024 endpoint URLs may use besides 443, comma-separated: the stack's
    /// `EgressAllowedPorts`, so a URL its dispatcher would refuse is refused here first.
    #[arg(long, env = "EGRESS_ALLOWED_PORTS", global = true, help_heading = DEPLOYMENT, value_name = "PORTS", value_parser = parse_low_ports, default_value = "")]
    pub egress_allowed_ports: shared::outbound::ssrf::LowPorts,

    /// How many endpoints a tenant may have: the stack's `MaxEndpointsPerTenant`.
    #[arg(long, env = "MAX_ENDPOINTS_PER_TENANT", global = true, help_heading = DEPLOYMENT, value_name = "N", default_value_t = shared::outbound::DEFAULT_MAX_ENDPOINTS)]
    pub max_endpoints: usize,
}

fn parse_low_ports(raw: &str) -> Result<shared::outbound::ssrf::LowPorts, String> {
    shared::outbound::ssrf::LowPorts::parse(raw)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage a tenant's provider configuration (secrets, replay window, unsigned policy).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Read event records.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Erase an event's or an outbound message's payload (a data-subject request), keeping its
    /// record as a tombstone so a redelivery or a repeated publish is still a duplicate.
    /// Audited; --dry-run changes nothing.
    Erase(EraseArgs),
    /// Sign a payload as the provider would and POST it to a deployed (or local) ingress.
    Send(SendArgs),
    /// Run a replay function action from here, through the same use cases: redrive, replay,
    /// reconcile, list, health, discard (see events/replay/README.md).
    Replay(ReplayArgs),
    /// Manage a tenant's partner endpoints (outbound webhooks).
    Endpoint {
        #[command(subcommand)]
        command: crate::endpoints::EndpointCommand,
    },
    /// A tenant's event catalog: types, their JSON Schemas and examples.
    EventType {
        #[command(subcommand)]
        command: crate::event_types::EventTypeCommand,
    },
    /// Publish a message to a tenant's partner endpoints.
    Publish(crate::endpoints::PublishArgs),
    /// Outbound deliveries: list, resend, recover.
    Deliveries {
        #[command(subcommand)]
        command: crate::endpoints::DeliveriesCommand,
    },
    /// Receive outbound deliveries on this machine, verify and print them.
    Listen(crate::listen::ListenArgs),
    /// The partner portal: one-time links for a tenant's partners (`PORTAL_LINK_KEY_ID`).
    Portal {
        #[command(subcommand)]
        command: crate::portal::PortalCommand,
    },
    /// Print a shell completion script: `source <(hookctl completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Configure a provider for a tenant. Without --secret a strong secret is generated and
    /// printed once.
    Add(AddArgs),
    /// Make a new secret current; the old one stays valid for the grace period.
    Rotate(RotateArgs),
    /// Allow or refuse unsigned deliveries on a tenant's unguessable route.
    Unsigned(UnsignedArgs),
    /// List configurations (never secrets or route tokens).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Tenant id: lowercase letters, digits, '-' and '_'.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_provider, help = provider_help())]
    pub provider: Provider,
    /// The signing secret the provider issued; generated when absent. `-` reads it from
    /// standard input, or from a prompt that does not echo when that is a terminal (a secret on
    /// a command line can be read from the shell's history).
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
    /// Replay window for signed timestamps, in seconds.
    #[arg(
        long,
        default_value_t = DEFAULT_TOLERANCE.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_TOLERANCE_SECS),
        value_name = "SECS"
    )]
    pub tolerance_secs: u64,
    /// Accept unsigned deliveries on a generated, unguessable route (printed once).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Circle: a public key the provider publishes, as `KEY_ID=BASE64` (DER of a P-256 key);
    /// repeat for several.
    #[arg(long = "public-key", value_parser = parse_public_key, value_name = "ID=KEY")]
    pub public_keys: Vec<PublicKey>,
    /// PayPal: the id of the webhook subscription (PayPal signs it into every delivery).
    #[arg(long, value_name = "ID")]
    pub paypal_webhook_id: Option<String>,
    /// Twilio, Square, HubSpot, Trello, Firebase: the public base URL the provider calls
    /// (`https://hooks.example.com`) when a custom domain fronts the API; they sign the URL they
    /// called (Firebase's token names it as its audience).
    #[arg(long, value_name = "URL")]
    pub public_base_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Tenant id: lowercase letters, digits, '-' and '_'.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_provider, help = provider_help())]
    pub provider: Provider,
    /// The new secret; generated when absent; `-` reads it from standard input or a prompt.
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
    /// Circle: the provider's new public key, `KEY_ID=BASE64`; the keys configured so far stay
    /// valid for the grace period.
    #[arg(long = "public-key", value_parser = parse_public_key, value_name = "ID=KEY")]
    pub public_key: Option<PublicKey>,
    /// How long the previous secret stays valid, in hours (0 ends it now).
    #[arg(
        long,
        default_value_t = 24,
        value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE_HOURS),
        value_name = "HOURS"
    )]
    pub grace_hours: u64,
}

#[derive(Debug, Args)]
pub struct UnsignedArgs {
    /// Tenant id: lowercase letters, digits, '-' and '_'.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_provider, help = provider_help())]
    pub provider: Provider,
    /// allow: accept unsigned deliveries on a new unguessable route; refuse: signed only.
    pub policy: PolicyArg,
}

/// Whether unsigned deliveries are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    Allow,
    Refuse,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this tenant's configurations.
    #[arg(value_parser = parse_tenant)]
    pub tenant: Option<TenantId>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// A tenant's newest events, of every status or of one (--status).
    List(EventsListArgs),
    /// One event record. The payload shows as its size and hash unless --payload.
    Show(EventsShowArgs),
}

#[derive(Debug, Args)]
pub struct EventsListArgs {
    /// Tenant id.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// Only this status: received, enqueued, processing, processed, failed or dead.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<EventStatus>,
    /// How many events at most.
    #[arg(
        long,
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIST_LIMIT))
    )]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct EventsShowArgs {
    /// Tenant id: lowercase letters, digits, '-' and '_'.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    #[arg(value_parser = parse_provider, help = provider_help())]
    pub provider: Provider,
    /// The provider's event id (`evt_...`, `msg_...`, a delivery GUID).
    #[arg(value_parser = parse_event_id)]
    pub event_id: EventId,
    /// Print the payload itself (it may hold personal data).
    #[arg(long)]
    pub payload: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
pub struct EraseArgs {
    /// Tenant id: only this tenant's records are ever reached.
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// The inbound event whose payload to erase, as PROVIDER/ID (e.g. stripe/evt_1).
    #[arg(long, group = "target", value_parser = parse_event_ref, value_name = "PROVIDER/ID")]
    pub event: Option<(Provider, EventId)>,
    /// The outbound message whose payload to erase (its id, the publish's idempotency key).
    #[arg(long, group = "target", value_parser = parse_message_id, value_name = "MSG_ID")]
    pub message: Option<MessageId>,
    /// Every inbound event of the tenant received before TIME (RFC 3339, or a day
    /// `YYYY-MM-DD` meaning its start in UTC), oldest first, at most --limit per run.
    #[arg(long, group = "target", value_parser = parse_time, value_name = "TIME")]
    pub before: Option<std::time::SystemTime>,
    /// With --before: at most this many events per run (run again for the rest).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Say what would be erased, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who erases, for the audit record (defaults to the OS user, `$USER`).
    #[arg(long, env = "USER", value_name = "NAME")]
    pub actor: Option<String>,
    /// The bucket payloads too large for their record are kept in (the stack's
    /// `PayloadsBucket`): needed to erase those.
    #[arg(long, env = "PAYLOADS_BUCKET", value_name = "BUCKET")]
    pub payloads_bucket: Option<String>,
}

/// RFC 3339 (`2026-01-31T00:00:00Z`), or a day (`2026-01-31`) meaning its start in UTC.
fn parse_time(raw: &str) -> Result<std::time::SystemTime, String> {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};
    let text = if raw.len() == 10 {
        format!("{raw}T00:00:00Z")
    } else {
        raw.to_owned()
    };
    OffsetDateTime::parse(&text, &Rfc3339)
        .map(Into::into)
        .map_err(|_| "expected RFC 3339 (2026-01-31T00:00:00Z) or a day (2026-01-31)".to_owned())
}

fn parse_message_id(raw: &str) -> Result<MessageId, String> {
    MessageId::parse(raw).map_err(|e| e.to_string())
}

/// `PROVIDER/ID`: split at the first `/` (provider names hold none; an id may).
fn parse_event_ref(raw: &str) -> Result<(Provider, EventId), String> {
    let (provider, id) = raw
        .split_once('/')
        .ok_or_else(|| "expected PROVIDER/ID, e.g. stripe/evt_1".to_owned())?;
    Ok((parse_provider(provider)?, parse_event_id(id)?))
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The action as JSON, e.g. '{"action":"list","tenant":"acme"}', or @PATH to read a console
    /// event such as @events/replay/redrive.json. Every action the replay function takes,
    /// outbound ones (deliveries_redrive, resend, recover_failed, outbound_reconcile) included.
    pub action: String,
    /// The events queue, where redrive, replay and reconcile send pointers.
    #[arg(long, env = "EVENTS_QUEUE_URL", value_name = "URL")]
    pub events_queue_url: Option<String>,
    /// The events queue's dead-letter queue, which redrive drains.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL", value_name = "URL")]
    pub dead_letter_queue_url: Option<String>,
    /// The deliveries' dead-letter queue, which `deliveries_redrive` drains.
    #[arg(long, env = "DELIVERIES_DLQ_URL", value_name = "URL")]
    pub deliveries_dlq_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The API's base URL, e.g. http://127.0.0.1:3000 or https://<api>.execute-api.<region>.amazonaws.com
    pub url: String,
    /// Tenant id.
    #[arg(long, value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// Provider (route name), e.g. stripe.
    #[arg(long, value_parser = parse_provider)]
    pub provider: Provider,
    /// The payload to send, byte for byte (samples in events/payloads/). Without it, a small
    /// fresh event in the provider's shape is sent.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Sign with this secret instead of the tenant's current one (then no table is read).
    #[arg(long, value_parser = parse_secret, value_name = "SECRET")]
    pub secret: Option<Secret>,
    /// The event id for schemes that send it in a header (Standard Webhooks, GitHub, Shopify,
    /// generic). Defaults to the payload's `id`, else a fresh one.
    #[arg(long, value_parser = parse_event_id, value_name = "ID")]
    pub id: Option<EventId>,
    /// The event type for schemes that send it in a header (GitHub `X-GitHub-Event`, Shopify
    /// `X-Shopify-Topic`). GitHub defaults to the file's name (`push.json` → `push`).
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
}

pub(crate) fn parse_tenant(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw).map_err(|e| e.to_string())
}

fn parse_event_id(raw: &str) -> Result<EventId, String> {
    EventId::parse(raw).map_err(|e| e.to_string())
}

/// Every route name, from the providers themselves, so the help never lags behind them.
fn provider_help() -> String {
    let names: Vec<&str> = Provider::all().map(Provider::as_str).collect();
    format!("Provider, the route name: {}.", names.join(", "))
}

fn parse_provider(raw: &str) -> Result<Provider, String> {
    raw.parse().map_err(|_| {
        let names: Vec<&str> = Provider::all().map(Provider::as_str).collect();
        format!("unknown provider; expected one of: {}", names.join(", "))
    })
}

fn parse_status(raw: &str) -> Result<EventStatus, String> {
    raw.parse().map_err(|_| {
        let names: Vec<&str> = EventStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status; expected one of: {}", names.join(", "))
    })
}

/// `KEY_ID=BASE64`: checked later, by the command, against the scheme.
fn parse_public_key(raw: &str) -> Result<PublicKey, String> {
    let (id, key) = raw
        .split_once('=')
        .filter(|(id, key)| !id.is_empty() && !key.is_empty())
        .ok_or_else(|| "expected KEY_ID=BASE64".to_owned())?;
    Ok(PublicKey::new(id, key))
}

/// A secret as typed. Checked later, by the command, because clap quotes a refused value in its
/// error message and a secret must not be printed.
pub(crate) fn parse_secret(raw: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(raw))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hookctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tenant_add_takes_defaults() {
        let cli = parse(&["tenant", "add", "acme", "stripe"]).expect("parses");
        let Command::Tenant {
            command: TenantCommand::Add(add),
        } = cli.command
        else {
            panic!("not tenant add: {cli:?}");
        };
        assert_eq!(add.tenant.as_str(), "acme");
        assert_eq!(add.provider, Provider::Stripe);
        assert_eq!(add.secret, None);
        assert_eq!(add.tolerance_secs, 300);
        assert!(!add.allow_unsigned);
    }

    #[test]
    fn tenant_add_takes_every_flag() {
        let cli = parse(&[
            "tenant",
            "add",
            "acme",
            "generic",
            "--secret",
            "s3cret-value",
            "--tolerance-secs",
            "60",
            "--allow-unsigned",
            "--tenants-table",
            "tenants-dev",
        ])
        .expect("parses");
        assert_eq!(cli.tenants_table.as_deref(), Some("tenants-dev"));
        let Command::Tenant {
            command: TenantCommand::Add(add),
        } = cli.command
        else {
            panic!("not tenant add");
        };
        assert_eq!(add.secret, Some(Secret::new("s3cret-value")));
        assert_eq!(add.tolerance_secs, 60);
        assert!(add.allow_unsigned);
    }

    #[test]
    fn bad_values_are_refused_before_any_call() {
        for args in [
            &["tenant", "add", "Acme", "stripe"][..],
            &["tenant", "add", "acme", "paddel"],
            &["tenant", "add", "acme", "Stripe"],
            &["tenant", "add", "acme", "stripe", "--tolerance-secs", "0"],
            &[
                "tenant",
                "add",
                "acme",
                "stripe",
                "--tolerance-secs",
                "86401",
            ],
            &["tenant", "rotate", "acme", "stripe", "--grace-hours", "-1"],
            &["tenant", "rotate", "acme", "stripe", "--grace-hours", "721"],
            &["tenant", "unsigned", "acme", "stripe", "maybe"],
            &["events", "list", "acme", "--status", "lost"],
            &["events", "list", "acme", "--status", "dead", "--limit", "0"],
            &[
                "events", "list", "acme", "--status", "dead", "--limit", "1001",
            ],
            &["events", "show", "acme", "stripe", "evt 1"],
            &["send", "http://localhost:3000", "--tenant", "acme"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn provider_help_names_every_provider() {
        let command = Cli::command();
        let add = command
            .find_subcommand("tenant")
            .and_then(|t| t.find_subcommand("add"))
            .expect("tenant add");
        let help = add
            .get_arguments()
            .find(|a| a.get_id() == "provider")
            .and_then(|a| a.get_help())
            .expect("provider help")
            .to_string();
        for provider in Provider::all() {
            assert!(
                help.contains(provider.as_str()),
                "{provider} missing: {help}"
            );
        }
    }

    #[test]
    fn rotate_defaults_to_a_day_of_grace() {
        let cli = parse(&["tenant", "rotate", "acme", "clerk"]).expect("parses");
        let Command::Tenant {
            command: TenantCommand::Rotate(rotate),
        } = cli.command
        else {
            panic!("not rotate");
        };
        assert_eq!(rotate.grace_hours, 24);
        assert_eq!(rotate.provider, Provider::Clerk);
    }

    #[test]
    fn unsigned_policy_and_listing_parse() {
        let cli = parse(&["tenant", "unsigned", "acme", "generic", "allow"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Tenant {
                command: TenantCommand::Unsigned(UnsignedArgs {
                    policy: PolicyArg::Allow,
                    ..
                })
            }
        ));
        let cli = parse(&["tenant", "list"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Tenant {
                command: TenantCommand::List(ListArgs { tenant: None })
            }
        ));
    }

    #[test]
    fn events_commands_parse() {
        let cli =
            parse(&["events", "list", "acme", "--status", "dead", "--limit", "5"]).expect("parses");
        let Command::Events {
            command: EventsCommand::List(list),
        } = cli.command
        else {
            panic!("not events list");
        };
        assert_eq!(list.status, Some(EventStatus::Dead));
        assert_eq!(list.limit, 5);

        let cli =
            parse(&["events", "show", "acme", "stripe", "evt_1", "--payload"]).expect("parses");
        let Command::Events {
            command: EventsCommand::Show(show),
        } = cli.command
        else {
            panic!("not events show");
        };
        assert_eq!(show.event_id.as_str(), "evt_1");
        assert!(show.payload);
    }

    #[test]
    fn erase_parses_provider_and_id_and_keeps_slashes_in_the_id() {
        let cli = parse(&[
            "erase",
            "acme",
            "--event",
            "stripe/../other/evt_1",
            "--dry-run",
            "--actor",
            "dpo",
        ])
        .expect("parses");
        let Command::Erase(erase) = cli.command else {
            panic!("not erase");
        };
        assert_eq!(erase.tenant.as_str(), "acme");
        let (provider, id) = erase.event.expect("event");
        assert_eq!(provider, Provider::Stripe);
        assert_eq!(id.as_str(), "../other/evt_1");
        assert!(erase.dry_run);
        assert_eq!(erase.actor.as_deref(), Some("dpo"));
        assert!(parse(&["erase", "acme", "--event", "evt_1"]).is_err());
        // By age: a day or an RFC 3339 time, never beside --event.
        let cli =
            parse(&["erase", "acme", "--before", "2026-01-31", "--limit", "50"]).expect("parses");
        let Command::Erase(by_age) = cli.command else {
            panic!("not erase");
        };
        assert_eq!(
            by_age.before,
            Some(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_769_817_600))
        );
        assert_eq!(by_age.limit, 50);
        assert!(parse(&["erase", "acme", "--before", "2026-01-31T12:00:00Z"]).is_ok());
        assert!(parse(&["erase", "acme", "--before", "yesterday"]).is_err());
        assert!(
            parse(&[
                "erase",
                "acme",
                "--before",
                "2026-01-31",
                "--event",
                "stripe/evt_1"
            ])
            .is_err()
        );
        assert!(parse(&["erase", "acme", "--before", "2026-01-31", "--limit", "0"]).is_err());
        assert!(parse(&["erase", "acme", "--event", "nope/evt_1"]).is_err());
        assert!(parse(&["erase", "acme"]).is_err());
    }

    #[test]
    fn erase_takes_exactly_one_of_event_and_message() {
        let cli =
            parse(&["erase", "acme", "--message", "order-1", "--actor", "dpo"]).expect("parses");
        let Command::Erase(erase) = cli.command else {
            panic!("not erase");
        };
        assert_eq!(erase.message.expect("message").as_str(), "order-1");
        assert!(erase.event.is_none());
        let both = [
            "erase",
            "acme",
            "--message",
            "order-1",
            "--event",
            "stripe/evt_1",
        ];
        assert!(parse(&both).is_err());
        assert!(parse(&["erase", "acme", "--message", "a#b"]).is_err());
    }

    #[test]
    fn send_parses() {
        let cli = parse(&[
            "send",
            "http://127.0.0.1:3000",
            "--tenant",
            "acme",
            "--provider",
            "stripe",
            "--file",
            "events/payloads/stripe/invoice.paid.json",
        ])
        .expect("parses");
        let Command::Send(send) = cli.command else {
            panic!("not send");
        };
        assert_eq!(send.url, "http://127.0.0.1:3000");
        assert_eq!(send.provider, Provider::Stripe);
        assert_eq!(
            send.file,
            Some(PathBuf::from("events/payloads/stripe/invoice.paid.json"))
        );
        assert_eq!(send.secret, None);
    }

    #[test]
    fn debug_output_of_parsed_arguments_hides_the_secret() {
        let cli = parse(&[
            "tenant",
            "add",
            "acme",
            "stripe",
            "--secret",
            "whsec_do_not_print",
        ])
        .expect("parses");
        assert!(!format!("{cli:?}").contains("do_not_print"));
    }

    #[tokio::test]
    async fn completions_are_printed_for_each_shell() {
        for (shell, marker) in [
            ("bash", "_hookctl()"),
            ("zsh", "#compdef hookctl"),
            ("fish", "complete -c hookctl"),
        ] {
            let cli = parse(&["completions", shell]).expect("parses");
            let mut out = Vec::new();
            crate::run(cli, &mut out).await.expect("printed");
            let script = String::from_utf8(out).expect("utf-8");
            assert!(
                script.contains(marker),
                "{shell}: {}",
                &script[..script.len().min(200)]
            );
            assert!(
                script.contains("event-type"),
                "{shell} knows the subcommands"
            );
        }
        assert!(parse(&["completions", "tcsh"]).is_err());
    }
}
