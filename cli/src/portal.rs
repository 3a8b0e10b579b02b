//! `hookctl portal link`: a one-time link to the partner portal for one tenant.

use std::{io::Write, time::Duration};

use clap::{Args, Subcommand};
use shared::{
    clock::Clock,
    ids::TenantId,
    portal::{Grant, LinkSigner, PortalAccess, PortalStore},
};

use crate::{args::parse_tenant, error::CliError, output::Out};

#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Print a one-time, expiring link that opens a portal session for TENANT's endpoints.
    /// Hand it to the partner over a channel you trust; it works once.
    Link(LinkArgs),
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    #[arg(value_parser = parse_tenant)]
    pub tenant: TenantId,
    /// The session can look but not change anything.
    #[arg(long)]
    pub read_only: bool,
    /// For the tenant's operators: its received events, their health and its DLQ besides
    /// the partner pages.
    #[arg(long)]
    pub operator: bool,
    /// How long the link (and its session) lives: `30m`, `1h`, `8h` (1 minute to 24 hours).
    #[arg(long, value_parser = parse_ttl, default_value = "1h")]
    pub ttl: Duration,
    /// The deployment's base URL (the stack's `WebhookBaseUrl` output).
    #[arg(long, env = "PORTAL_BASE_URL", default_value = "http://localhost:3000")]
    pub base_url: String,
}

/// `90s`, `30m`, `1h`, `1d`, or plain seconds.
pub fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let (number, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map_or((raw, ""), |at| raw.split_at(at));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration like 30m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("`{raw}`: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Run a portal command.
pub async fn run<S: PortalStore, L: LinkSigner, C: Clock>(
    access: &PortalAccess<S, L, C>,
    command: PortalCommand,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    match command {
        PortalCommand::Link(args) => {
            let token = access
                .link(
                    &args.tenant,
                    Grant {
                        read_only: args.read_only,
                        operator: args.operator,
                    },
                    args.ttl,
                )
                .await
                .map_err(|e| CliError::Outbound(e.to_string()))?;
            let base = args.base_url.trim_end_matches('/');
            if out.json() {
                return out.document(&serde_json::json!({
                    "url": format!("{base}/portal/login?token={token}"),
                    "tenant": args.tenant.as_str(),
                    "read_only": args.read_only,
                    "operator": args.operator,
                    "expires_in_secs": args.ttl.as_secs(),
                }));
            }
            writeln!(out, "{base}/portal/login?token={token}")?;
            writeln!(
                out,
                "# one-time, {}{}{}, expires in {} min",
                args.tenant,
                if args.operator { ", operator" } else { "" },
                if args.read_only { ", read-only" } else { "" },
                args.ttl.as_secs() / 60
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::{
        clock::ManualClock,
        memory::{HmacLinkSigner, MemoryPortalStore},
    };

    use super::*;
    use shared::portal::DEFAULT_TTL;

    #[test]
    fn ttls_read_like_people_write_them() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_ttl("1h"), Ok(DEFAULT_TTL));
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "h", "1w", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_link_is_printed_for_the_base_url_and_opens_a_read_only_session() {
        let access = PortalAccess::new(
            MemoryPortalStore::new(),
            HmacLinkSigner(b"k".to_vec()),
            ManualClock::at_unix(1_750_000_000),
        );
        let mut out = Vec::new();
        run(
            &access,
            PortalCommand::Link(LinkArgs {
                tenant: TenantId::parse("acme").expect("tenant"),
                read_only: true,
                operator: false,
                ttl: Duration::from_secs(600),
                base_url: "https://hooks.example.com/".into(),
            }),
            &mut Out::text(&mut out),
        )
        .await
        .expect("printed");
        let text = String::from_utf8(out).expect("utf-8");
        let link = text.lines().next().expect("a line");
        let token = link
            .strip_prefix("https://hooks.example.com/portal/login?token=")
            .expect("the base url, once");
        let session = access.exchange(token).await.expect("opens");
        assert!(session.read_only);
        assert!(text.contains("read-only, expires in 10 min"), "{text}");
        let too_long = run(
            &access,
            PortalCommand::Link(LinkArgs {
                tenant: TenantId::parse("acme").expect("tenant"),
                read_only: false,
                operator: false,
                ttl: Duration::from_secs(2 * 86_400),
                base_url: "https://hooks.example.com".into(),
            }),
            &mut Out::text(&mut Vec::new()),
        )
        .await;
        assert!(too_long.is_err());
    }
}
