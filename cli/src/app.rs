//! The binary's wiring: settings from flags or the environment, the DynamoDB adapters, the
//! system clock and the operating system's randomness.

use std::{io::Write, time::SystemTime};

use shared::{
    aws::{
        DynamoEventStore, DynamoOutboundStore, DynamoPortalStore, DynamoTenantDirectory,
        DynamoTenantNames, KmsLinkSigner, SqsDeadLetterQueue, SqsDeliveryQueue, SqsEventQueue,
        sdk_config, secrets_keys,
    },
    clock::SystemClock,
    env::Env,
    operations::{Operations, ReplaySettings},
    outbound::{
        Outbound, OutboundSettings, actions::OutboundAction, dispatch::Dispatcher,
        ssrf::EgressPolicy, transport::HttpTransport,
    },
    portal::PortalAccess,
    ports::TenantDirectory,
    processor::SystemJitter,
};

use crate::{
    args::{Cli, Command},
    endpoints, erase,
    error::CliError,
    event_types, events, listen,
    output::Out,
    portal, replay,
    secrets::{self, OsEntropy},
    send, tenants,
};

/// Run the parsed command line, writing its report to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let out = &mut Out::new(out, cli.output);
    let now = SystemTime::now();
    let entropy = OsEntropy;
    match cli.command {
        Command::Tenant { command } => {
            let command = secrets::read_secret_input(command)?;
            let directory = tenant_directory(cli.tenants_table, cli.secrets_key).await?;
            tenants::run(&directory, command, now, &entropy, out).await
        }
        Command::Events { command } => {
            let table = non_empty(cli.events_table).ok_or(CliError::MissingSetting {
                what: "the events table",
                flag: "events-table",
                env: "EVENTS_TABLE",
            })?;
            let store = DynamoEventStore::new(dynamodb().await, table);
            events::run(&store, command, out).await
        }
        Command::Erase(mut args) => {
            // `--actor`, else `$USER` (clap reads it), else the other names systems use.
            if args.actor.is_none() {
                args.actor = ["LOGNAME", "USERNAME"]
                    .into_iter()
                    .find_map(|name| std::env::var(name).ok());
            }
            let table = non_empty(cli.events_table).ok_or(CliError::MissingSetting {
                what: "the events table",
                flag: "events-table",
                env: "EVENTS_TABLE",
            })?;
            let sdk = sdk_config().await;
            let mut store = DynamoEventStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            let bucket = non_empty(args.payloads_bucket.clone());
            if args.message.is_some() {
                // Every erasure's audit lives in the events table; the message in the outbound
                // one. Its secrets are never needed; the bucket only for a dry run's reading of
                // a relayed payload (the erase drops the reference, never the object).
                let outbound = non_empty(cli.outbound.outbound_table.clone()).ok_or(
                    CliError::MissingSetting {
                        what: "the outbound table",
                        flag: "outbound-table",
                        env: "OUTBOUND_TABLE",
                    },
                )?;
                let mut messages = DynamoOutboundStore::without_secrets(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    outbound,
                );
                if let Some(bucket) = bucket {
                    messages = messages.with_payloads(shared::aws::s3_on_first_use(&sdk), bucket);
                }
                return erase::run_message(&messages, &store, args, now, out).await;
            }
            // Only payloads too large for their record need the bucket; without it, erasing
            // one of those is refused before anything changes.
            if let Some(bucket) = bucket {
                store = store.with_payloads(shared::aws::s3_on_first_use(&sdk), bucket);
            }
            if args.before.is_some() {
                return erase::run_before(&store, args, now, out).await;
            }
            erase::run(&store, args, now, out).await
        }
        Command::Send(args) => {
            // A secret on the command line needs no table (and no AWS credentials).
            let directory = match args.secret {
                Some(_) => None,
                None => Some(tenant_directory(cli.tenants_table, cli.secrets_key).await?),
            };
            let delivery = send::prepare(
                args,
                directory.as_ref().map(|d| d as &dyn TenantDirectory),
                now,
                &entropy,
            )
            .await?;
            send::deliver(delivery, out).await
        }
        Command::Replay(args) => {
            let action = replay::read_action(&args.action)?;
            if OutboundAction::is_outbound(&action) {
                let dispatcher = outbound_dispatcher(&cli.outbound, None, false).await?;
                let dlq_url =
                    non_empty(args.deliveries_dlq_url).ok_or(CliError::MissingSetting {
                        what: "the deliveries DLQ",
                        flag: "deliveries-dlq-url",
                        env: "DELIVERIES_DLQ_URL",
                    })?;
                let sdk = sdk_config().await;
                let dlq = SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), dlq_url);
                return replay::run_outbound(&dispatcher.outbound, &dlq, action, out).await;
            }
            // The deployed function's settings (RETRY_SCHEDULE, RETENTION_DAYS, ...), read the
            // same way, so a replay from a shell acts as the console's would.
            let settings = ReplaySettings::from_env(&Env::process())
                .map_err(|e| CliError::Replay(e.to_string()))?;
            let setting = |value: Option<String>, what, flag, env| {
                non_empty(value).ok_or(CliError::MissingSetting { what, flag, env })
            };
            let events_table = setting(
                cli.events_table,
                "the events table",
                "events-table",
                "EVENTS_TABLE",
            )?;
            let tenants_table = setting(
                cli.tenants_table,
                "the tenants table",
                "tenants-table",
                "TENANTS_TABLE",
            )?;
            let queue_url = setting(
                args.events_queue_url,
                "the events queue",
                "events-queue-url",
                "EVENTS_QUEUE_URL",
            )?;
            let dlq_url = setting(
                args.dead_letter_queue_url,
                "the dead-letter queue",
                "dead-letter-queue-url",
                "DEAD_LETTER_QUEUE_URL",
            )?;
            let sdk = sdk_config().await;
            let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let operations = Operations::new(
                DynamoEventStore::new(dynamodb.clone(), events_table),
                SqsEventQueue::new(sqs.clone(), queue_url),
                SqsDeadLetterQueue::new(sqs, dlq_url),
                DynamoTenantNames::new(dynamodb, tenants_table),
                SystemClock,
            )
            .with_settings(settings);
            replay::run(&operations, action, out).await
        }
        Command::Listen(args) => listen::run(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "hookctl", out);
            Ok(())
        }
        Command::Endpoint { command } => {
            let dispatcher =
                outbound_dispatcher(&cli.outbound, cli.secrets_key.as_deref(), true).await?;
            endpoints::endpoint(&dispatcher, command, out).await
        }
        Command::EventType { command } => {
            let dispatcher = outbound_dispatcher(&cli.outbound, None, false).await?;
            event_types::event_type(&dispatcher.outbound, command, out).await
        }
        Command::Publish(args) => {
            let dispatcher = outbound_dispatcher(&cli.outbound, None, false).await?;
            endpoints::publish(&dispatcher.outbound, args, out).await
        }
        Command::Deliveries { command } => {
            let dispatcher = outbound_dispatcher(&cli.outbound, None, false).await?;
            endpoints::deliveries(&dispatcher.outbound, command, out).await
        }
        Command::Portal { command } => {
            let key = non_empty(cli.outbound.portal_link_key.clone()).ok_or(
                CliError::MissingSetting {
                    what: "the portal link key",
                    flag: "portal-link-key",
                    env: "PORTAL_LINK_KEY_ID",
                },
            )?;
            let table = non_empty(cli.outbound.outbound_table.clone()).unwrap_or_default();
            let sdk = sdk_config().await;
            // Issuing a link writes nothing: the store is only read when a link is used.
            let access = PortalAccess::new(
                DynamoPortalStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
                KmsLinkSigner::new(aws_sdk_kms::Client::new(&sdk), key),
                SystemClock,
            );
            portal::run(&access, command, out).await
        }
    }
}

/// The outbound use cases as the deployed functions run them, from the operator's machine.
/// `secrets`: with the KMS key (seal and open endpoint secrets), else without.
async fn outbound_dispatcher(
    settings: &crate::args::OutboundFlags,
    secrets_key: Option<&str>,
    secrets: bool,
) -> Result<
    Dispatcher<
        DynamoOutboundStore,
        SqsDeliveryQueue,
        SqsDeliveryQueue,
        HttpTransport,
        SystemClock,
        SystemJitter,
    >,
    CliError,
> {
    let table = non_empty(settings.outbound_table.clone()).ok_or(CliError::MissingSetting {
        what: "the outbound table",
        flag: "outbound-table",
        env: "OUTBOUND_TABLE",
    })?;
    let queue_url =
        non_empty(settings.deliveries_queue_url.clone()).ok_or(CliError::MissingSetting {
            what: "the deliveries queue",
            flag: "deliveries-queue-url",
            env: "DELIVERIES_QUEUE_URL",
        })?;
    let sdk = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = match (secrets, non_empty(secrets_key.map(str::to_owned))) {
        (true, Some(key)) => DynamoOutboundStore::new(dynamodb, table, secrets_keys(&sdk, &key)),
        (true, None) => {
            return Err(CliError::MissingSetting {
                what: "the key endpoint secrets are sealed with",
                flag: "secrets-key",
                env: "SECRETS_KEY_ID",
            });
        }
        (false, _) => DynamoOutboundStore::without_secrets(dynamodb, table),
    };
    let queue = SqsDeliveryQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url, String::new());
    let egress = EgressPolicy {
        low_ports: settings.egress_allowed_ports,
        ..if settings.allow_loopback {
            EgressPolicy::LOCAL_DEVELOPMENT
        } else {
            EgressPolicy::PUBLIC
        }
    };
    let outbound_settings = OutboundSettings {
        egress,
        max_endpoints: settings.max_endpoints,
        ..OutboundSettings::default()
    };
    let transport = HttpTransport::new(egress).map_err(CliError::Output)?;
    Ok(Dispatcher::new(
        Outbound::new(store, queue.clone(), SystemClock, outbound_settings),
        queue,
        transport,
        SystemJitter,
    ))
}

async fn tenant_directory(
    table: Option<String>,
    secrets_key: Option<String>,
) -> Result<DynamoTenantDirectory, CliError> {
    let table = non_empty(table).ok_or(CliError::MissingSetting {
        what: "the tenants table",
        flag: "tenants-table",
        env: "TENANTS_TABLE",
    })?;
    let key = non_empty(secrets_key).ok_or(CliError::MissingSetting {
        what: "the key tenants' secrets are sealed with",
        flag: "secrets-key",
        env: "SECRETS_KEY_ID",
    })?;
    let sdk = sdk_config().await;
    Ok(DynamoTenantDirectory::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        secrets_keys(&sdk, &key),
    ))
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

fn non_empty(setting: Option<String>) -> Option<String> {
    setting.filter(|s| !s.trim().is_empty())
}
