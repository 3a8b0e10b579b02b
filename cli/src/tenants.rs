//! `hookctl tenant ...`: a tenant's provider configuration, through [`TenantAdmin`].
//!
//! A secret or route token is printed once, when this command created it, and never again: the
//! listing shows only whether one exists and when a rotated-out secret expires.

use std::{
    io::Write,
    time::{Duration, SystemTime},
};

use serde_json::json;
use shared::{
    ids::TenantId,
    ports::{StoreError, TenantAdmin},
    provider::Provider,
    secret::Secret,
    tenant::{ProviderConfig, TokenDigest, UnsignedPolicy},
    verify::{
        PublicKey, PublicKeys,
        declared::{Handshake, meta_verify_token},
    },
};

use crate::{
    args::{AddArgs, ListArgs, PolicyArg, RotateArgs, TenantCommand, UnsignedArgs},
    error::CliError,
    output::{Out, scheme_name, table, timestamp},
    secrets::{
        Entropy, check_usable, generate_path_token, generate_secret, provider_issues_secret,
    },
    views,
};

/// Run one `tenant` subcommand.
pub async fn run(
    admin: &dyn TenantAdmin,
    command: TenantCommand,
    now: SystemTime,
    entropy: &dyn Entropy,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    match command {
        TenantCommand::Add(args) => add(admin, args, now, entropy, out).await,
        TenantCommand::Rotate(args) => rotate(admin, args, now, entropy, out).await,
        TenantCommand::Unsigned(args) => unsigned(admin, args, entropy, out).await,
        TenantCommand::List(args) => list(admin, args, now, out).await,
    }
}

pub async fn add(
    admin: &dyn TenantAdmin,
    args: AddArgs,
    now: SystemTime,
    entropy: &dyn Entropy,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let AddArgs {
        tenant,
        provider,
        secret,
        tolerance_secs,
        allow_unsigned,
        public_keys,
        paypal_webhook_id,
        public_base_url,
    } = args;
    if admin.provider_config(&tenant, provider).await?.is_some() {
        return Err(CliError::ConfigExists { tenant, provider });
    }
    let scheme = provider.default_scheme();
    let (secret, generated) = if signs_with_keys_it_holds(provider) {
        // Circle and PayPal sign with keys only they hold: there is no shared secret.
        if secret.is_some() {
            return Err(CliError::NotForProvider {
                what: "--secret",
                provider,
            });
        }
        (Secret::new(""), false)
    } else {
        let (secret, generated) = match secret {
            Some(given) => (given, false),
            None if !scheme.secret_can_be_generated() => {
                return Err(CliError::SecretRequired { provider });
            }
            None => (generate_secret(&scheme, entropy)?, true),
        };
        check_usable(&scheme, &secret, now)?;
        (secret, generated)
    };
    let settings =
        ProviderSettings::checked(provider, public_keys, paypal_webhook_id, public_base_url)?;

    let mut config = ProviderConfig::new(tenant, provider, secret);
    config.public_keys = settings.public_keys;
    config.paypal_webhook_id = settings.paypal_webhook_id;
    config.public_base_url = settings.public_base_url;
    config.tolerance = Duration::from_secs(tolerance_secs);
    let path_token = if allow_unsigned {
        let token = generate_path_token(entropy)?;
        config.unsigned = UnsignedPolicy::Allow {
            token_digest: TokenDigest::of(token.expose()),
        };
        Some(token)
    } else {
        None
    };
    // Conditioned on no configuration existing: a concurrent `add` is never overwritten.
    admin.put_config(&config).await.map_err(|e| match e {
        StoreError::Conflict(_) => CliError::ConfigExists {
            tenant: config.tenant.clone(),
            provider,
        },
        other => other.into(),
    })?;

    if out.json() {
        return out.document(&json!({
            "tenant": config.tenant.as_str(),
            "provider": provider.as_str(),
            "scheme": scheme_name(&scheme),
            "tolerance_secs": tolerance_secs,
            "unsigned": allow_unsigned,
            "secret": (generated && !signs_with_keys_it_holds(provider))
                .then(|| config.secrets.current.expose().to_owned()),
            "unsigned_route": path_token.as_ref().map(|token| unsigned_route(&config.tenant, provider, token)),
            "verify_token": verify_token(&config),
        }));
    }
    writeln!(
        out,
        "Added {provider} for tenant {tenant}: scheme {scheme}, replay window {tolerance_secs}s, \
         unsigned deliveries {unsigned}.",
        tenant = config.tenant,
        scheme = scheme_name(&scheme),
        unsigned = if allow_unsigned { "allowed" } else { "refused" },
    )?;
    if !signs_with_keys_it_holds(provider) {
        print_secret(out, &config, generated, "Signing secret")?;
    }
    print_verify_token(out, &config)?;
    if let Some(token) = &path_token {
        print_unsigned_route(out, &config.tenant, provider, token)?;
    }
    Ok(())
}

pub async fn rotate(
    admin: &dyn TenantAdmin,
    args: RotateArgs,
    now: SystemTime,
    entropy: &dyn Entropy,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let RotateArgs {
        tenant,
        provider,
        secret,
        public_key,
        grace_hours,
    } = args;
    let mut config = existing(admin, tenant, provider).await?;
    if provider == Provider::Circle {
        let key = public_key.ok_or(CliError::MissingPublicKey)?;
        check_public_key(&key)?;
        let grace = Duration::from_secs(grace_hours.saturating_mul(60 * 60));
        let until = now + grace;
        let kept: Vec<PublicKey> = config
            .public_keys
            .iter()
            .filter(|k| k.id != key.id)
            .map(|k| {
                let ends = k.expires_at.map_or(until, |at| at.min(until));
                k.clone().expiring(ends)
            })
            .collect();
        config.public_keys = PublicKeys::new(std::iter::once(key).chain(kept));
        admin.put_config(&config).await?;
        if out.json() {
            return out.document(&json!({
                "tenant": config.tenant.as_str(),
                "provider": provider.as_str(),
                "previous_keys_valid_until": timestamp(until),
            }));
        }
        writeln!(
            out,
            "Rotated {provider} for tenant {tenant}: the new key is current; the keys before it \
             stay valid until {until}.",
            tenant = config.tenant,
            until = timestamp(until),
        )?;
        return Ok(());
    }
    if public_key.is_some() {
        return Err(CliError::NotForProvider {
            what: "--public-key",
            provider,
        });
    }
    let scheme = config.verifier().scheme;
    let (secret, generated) = match secret {
        Some(given) => (given, false),
        None if !scheme.secret_can_be_generated() => {
            return Err(CliError::SecretRequired { provider });
        }
        None => (generate_secret(&scheme, entropy)?, true),
    };
    check_usable(&scheme, &secret, now)?;
    if secret == config.secrets.current {
        return Err(CliError::SameSecret);
    }
    let grace = Duration::from_secs(grace_hours.saturating_mul(60 * 60));
    config.rotate(secret, now, grace);
    admin.put_config(&config).await?;
    if out.json() {
        return out.document(&json!({
            "tenant": config.tenant.as_str(),
            "provider": provider.as_str(),
            "previous_secret_valid_until": timestamp(now + grace),
            "secret": generated.then(|| config.secrets.current.expose().to_owned()),
            "verify_token": verify_token(&config),
        }));
    }

    writeln!(
        out,
        "Rotated {provider} for tenant {tenant}: the previous secret stays valid until {until}.",
        tenant = config.tenant,
        until = timestamp(now + grace),
    )?;
    print_secret(out, &config, generated, "New signing secret")?;
    print_verify_token(out, &config)
}

pub async fn unsigned(
    admin: &dyn TenantAdmin,
    args: UnsignedArgs,
    entropy: &dyn Entropy,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let UnsignedArgs {
        tenant,
        provider,
        policy,
    } = args;
    let mut config = existing(admin, tenant, provider).await?;
    // Decide and write once; then say it, in words or as JSON.
    let was_allowed = matches!(config.unsigned, UnsignedPolicy::Allow { .. });
    let allow = policy == PolicyArg::Allow;
    let path_token = match (allow, was_allowed) {
        (true, false) => {
            let path_token = generate_path_token(entropy)?;
            config.unsigned = UnsignedPolicy::Allow {
                token_digest: TokenDigest::of(path_token.expose()),
            };
            admin.put_config(&config).await?;
            Some(path_token)
        }
        (false, true) => {
            config.unsigned = UnsignedPolicy::Refuse;
            admin.put_config(&config).await?;
            None
        }
        _ => None,
    };
    if out.json() {
        return out.document(&json!({
            "tenant": config.tenant.as_str(),
            "provider": provider.as_str(),
            "unsigned": allow,
            "unsigned_route": path_token.as_ref().map(|token| unsigned_route(&config.tenant, provider, token)),
        }));
    }
    match (allow, was_allowed) {
        (true, true) => {
            writeln!(
                out,
                "Unsigned deliveries are already allowed for {provider} of tenant {}; the route is \
                 unchanged. To issue a new route, refuse and then allow again.",
                config.tenant
            )?;
        }
        (false, false) => {
            writeln!(
                out,
                "Unsigned deliveries are already refused for {provider} of tenant {}.",
                config.tenant
            )?;
        }
        (true, false) => {
            writeln!(
                out,
                "Unsigned deliveries are now allowed for {provider} of tenant {}.",
                config.tenant
            )?;
            if let Some(token) = &path_token {
                print_unsigned_route(out, &config.tenant, provider, token)?;
            }
        }
        (false, true) => {
            writeln!(
                out,
                "Unsigned deliveries are now refused for {provider} of tenant {}; the unsigned \
                 route no longer works.",
                config.tenant
            )?;
        }
    }
    Ok(())
}

pub async fn list(
    admin: &dyn TenantAdmin,
    args: ListArgs,
    now: SystemTime,
    out: &mut Out<'_>,
) -> Result<(), CliError> {
    let mut configs = admin.list_configs(args.tenant.as_ref()).await?;
    configs.sort_by(|a, b| (&a.tenant, a.provider.as_str()).cmp(&(&b.tenant, b.provider.as_str())));
    if out.json() {
        let listed: Vec<_> = configs
            .iter()
            .map(|c| views::provider_config(c, now))
            .collect();
        return out.document(&json!({ "configurations": listed }));
    }
    if configs.is_empty() {
        match &args.tenant {
            Some(tenant) => writeln!(out, "No provider is configured for tenant {tenant}.")?,
            None => writeln!(out, "No tenant is configured.")?,
        }
        return Ok(());
    }
    let rows: Vec<[String; 6]> = configs.iter().map(|c| listing_row(c, now)).collect();
    table(
        out,
        [
            "TENANT", "PROVIDER", "SCHEME", "WINDOW", "UNSIGNED", "ROTATION",
        ],
        &rows,
    )?;
    Ok(())
}

/// One listing line. Built field by field from what may be shown: adding a field to
/// `ProviderConfig` cannot make a secret appear here.
fn listing_row(config: &ProviderConfig, now: SystemTime) -> [String; 6] {
    let rotation = match &config.secrets.previous {
        None => "-".to_owned(),
        Some(previous) if previous.expires_at > now => format!(
            "previous secret expires at {}",
            timestamp(previous.expires_at)
        ),
        Some(previous) => format!(
            "previous secret expired at {}",
            timestamp(previous.expires_at)
        ),
    };
    [
        config.tenant.to_string(),
        config.provider.to_string(),
        scheme_name(&config.verifier().scheme).to_owned(),
        format!("{}s", config.tolerance.as_secs()),
        match config.unsigned {
            UnsignedPolicy::Allow { .. } => "allowed",
            UnsignedPolicy::Refuse => "refused",
        }
        .to_owned(),
        rotation,
    ]
}

/// Circle and PayPal sign with private keys only they hold: a tenant configures their public
/// side (Circle's keys, PayPal's certificate chain and webhook id), not a shared secret.
fn signs_with_keys_it_holds(provider: Provider) -> bool {
    matches!(provider, Provider::Circle | Provider::PayPal)
}

fn check_public_key(key: &PublicKey) -> Result<(), CliError> {
    shared::verify::circle::check_key(&key.encoded).map_err(|source| CliError::UnusableSecret {
        scheme: "circle",
        source,
    })
}

/// The settings only some providers take, checked against the provider.
struct ProviderSettings {
    public_keys: PublicKeys,
    paypal_webhook_id: Option<String>,
    public_base_url: Option<String>,
}

impl ProviderSettings {
    fn checked(
        provider: Provider,
        public_keys: Vec<PublicKey>,
        paypal_webhook_id: Option<String>,
        public_base_url: Option<String>,
    ) -> Result<Self, CliError> {
        let only = |what, given: bool, for_provider: Provider| {
            if given && provider != for_provider {
                Err(CliError::NotForProvider { what, provider })
            } else {
                Ok(())
            }
        };
        only("--public-key", !public_keys.is_empty(), Provider::Circle)?;
        only(
            "--paypal-webhook-id",
            paypal_webhook_id.is_some(),
            Provider::PayPal,
        )?;
        if public_base_url.is_some() && !provider.default_scheme().signs_the_url() {
            return Err(CliError::NotForProvider {
                what: "--public-base-url",
                provider,
            });
        }
        if provider == Provider::Circle && public_keys.is_empty() {
            return Err(CliError::MissingPublicKey);
        }
        for key in &public_keys {
            check_public_key(key)?;
        }
        if provider == Provider::PayPal
            && paypal_webhook_id
                .as_deref()
                .is_none_or(|id| id.trim().is_empty())
        {
            return Err(CliError::MissingSetting {
                what: "PayPal's webhook id",
                flag: "paypal-webhook-id",
                env: "(none)",
            });
        }
        if let Some(url) = &public_base_url {
            let usable = url.starts_with("https://")
                && shared::verify::RequestUrl::parse(url).is_ok()
                && !url.contains(['?', '#']);
            if !usable {
                return Err(CliError::InvalidUrl {
                    url: url.clone(),
                    reason: "a public base URL is https://host[/path], without query".into(),
                });
            }
        }
        Ok(Self {
            public_keys: PublicKeys::new(public_keys),
            paypal_webhook_id,
            public_base_url,
        })
    }
}

async fn existing(
    admin: &dyn TenantAdmin,
    tenant: TenantId,
    provider: Provider,
) -> Result<ProviderConfig, CliError> {
    admin
        .provider_config(&tenant, provider)
        .await?
        .ok_or(CliError::ConfigNotFound { tenant, provider })
}

/// The secret, the one time it is shown; a secret the operator typed is not echoed back.
fn print_secret(
    out: &mut dyn Write,
    config: &ProviderConfig,
    generated: bool,
    label: &str,
) -> Result<(), CliError> {
    if !generated {
        writeln!(out, "{label}: as given (not shown).")?;
        return Ok(());
    }
    writeln!(
        out,
        "{label} (shown once; it cannot be read back):\n  {}",
        config.secrets.current.expose()
    )?;
    if provider_issues_secret(config.provider) {
        writeln!(
            out,
            "Note: {} issues its own signing secret. Real deliveries verify only after you store \
             that one with --secret; this generated secret suits `hookctl send` tests.",
            config.provider
        )?;
    }
    Ok(())
}

/// Meta's dashboard asks for a verify token beside the callback URL: the one the ingress
/// answers Meta's subscription check for, derived from the current app secret.
fn verify_token(config: &ProviderConfig) -> Option<String> {
    match config.provider {
        Provider::Declared(declaration)
            if declaration.handshake == Some(Handshake::MetaSubscribe) =>
        {
            Some(meta_verify_token(&config.secrets.current))
        }
        _ => None,
    }
}

fn print_verify_token(out: &mut dyn Write, config: &ProviderConfig) -> Result<(), CliError> {
    if let Some(token) = verify_token(config) {
        writeln!(
            out,
            "Verify token for Meta's dashboard (it follows the app secret):\n  {token}"
        )?;
    }
    Ok(())
}

fn print_unsigned_route(
    out: &mut dyn Write,
    tenant: &TenantId,
    provider: Provider,
    path_token: &Secret,
) -> Result<(), CliError> {
    writeln!(
        out,
        "Unsigned route (shown once; anyone holding it can post unsigned events):\n  POST {}",
        unsigned_route(tenant, provider, path_token)
    )?;
    Ok(())
}

/// The path of a tenant's unsigned route.
fn unsigned_route(tenant: &TenantId, provider: Provider, path_token: &Secret) -> String {
    format!("/webhooks/{tenant}/{provider}/{}", path_token.expose())
}

#[cfg(test)]
mod tests {
    use shared::{
        memory::MemoryDirectory, ports::TenantDirectory, secret::SecretSet, verify::Verifier,
    };

    use super::*;
    use crate::secrets::OsEntropy;

    const NOW: u64 = 1_700_000_000;

    /// The token of the unsigned route a command printed.
    fn printed_token(printed: &str) -> &str {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix("POST /webhooks/"))
            .and_then(|route| route.rsplit('/').next())
            .unwrap_or_else(|| panic!("no route printed: {printed}"))
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    fn add_args(provider: Provider) -> AddArgs {
        AddArgs {
            public_keys: Vec::new(),
            paypal_webhook_id: None,
            public_base_url: None,
            tenant: tenant("acme"),
            provider,
            secret: None,
            tolerance_secs: 300,
            allow_unsigned: false,
        }
    }

    async fn run_to_string(
        admin: &dyn TenantAdmin,
        command: TenantCommand,
    ) -> Result<String, CliError> {
        let mut out = Vec::new();
        run(admin, command, now(), &OsEntropy, &mut Out::text(&mut out)).await?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    async fn run_json(admin: &dyn TenantAdmin, command: TenantCommand) -> serde_json::Value {
        let mut out = Vec::new();
        let mut json = Out::new(&mut out, crate::output::Format::Json);
        run(admin, command, now(), &OsEntropy, &mut json)
            .await
            .expect("ran");
        serde_json::from_slice(&out).expect("one JSON document")
    }

    #[tokio::test]
    async fn json_output_gives_the_generated_secret_once_and_lists_without_secrets() {
        let dir = MemoryDirectory::new();
        let added = run_json(&dir, TenantCommand::Add(add_args(Provider::Clerk))).await;
        let secret = added["secret"].as_str().expect("generated").to_owned();
        assert_eq!(added["scheme"], "standard-webhooks");
        assert_eq!(
            stored(&dir, Provider::Clerk).await.secrets.current.expose(),
            secret
        );
        let listed = run_json(&dir, TenantCommand::List(ListArgs { tenant: None })).await;
        assert_eq!(listed["configurations"][0]["provider"], "clerk");
        assert!(!listed.to_string().contains(&secret), "{listed}");
    }

    async fn stored(admin: &dyn TenantAdmin, provider: Provider) -> ProviderConfig {
        admin
            .provider_config(&tenant("acme"), provider)
            .await
            .expect("reachable")
            .expect("stored")
    }

    #[tokio::test]
    async fn add_stores_a_generated_secret_and_prints_it_exactly_once() {
        // GIVEN an empty directory
        let dir = MemoryDirectory::new();
        // WHEN a Clerk configuration is added without a secret
        let printed = run_to_string(&dir, TenantCommand::Add(add_args(Provider::Clerk)))
            .await
            .expect("added");
        // THEN a whsec_ secret is stored and shown once, and unsigned stays refused
        let config = stored(&dir, Provider::Clerk).await;
        let secret = config.secrets.current.expose();
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(printed.matches(secret).count(), 1, "{printed}");
        assert_eq!(config.unsigned, UnsignedPolicy::Refuse);
        assert!(!printed.contains("/webhooks/"), "{printed}");
        assert!(printed.contains("clerk issues its own signing secret"));
    }

    #[tokio::test]
    async fn add_with_a_given_secret_does_not_echo_it() {
        let dir = MemoryDirectory::new();
        let mut args = add_args(Provider::Stripe);
        args.secret = Some(Secret::new("whsec_from_the_dashboard"));
        args.tolerance_secs = 120;
        let printed = run_to_string(&dir, TenantCommand::Add(args))
            .await
            .expect("added");
        let config = stored(&dir, Provider::Stripe).await;
        assert_eq!(
            config.secrets.current,
            Secret::new("whsec_from_the_dashboard")
        );
        assert_eq!(config.tolerance, Duration::from_secs(120));
        assert!(!printed.contains("from_the_dashboard"), "{printed}");
    }

    #[tokio::test]
    async fn add_with_allow_unsigned_prints_a_working_route_once() {
        let dir = MemoryDirectory::new();
        let mut args = add_args(Provider::Generic);
        args.allow_unsigned = true;
        let printed = run_to_string(&dir, TenantCommand::Add(args))
            .await
            .expect("added");
        let config = stored(&dir, Provider::Generic).await;
        assert!(matches!(config.unsigned, UnsignedPolicy::Allow { .. }));
        let token = printed_token(&printed);
        assert_eq!(token.len(), 64);
        assert!(config.admits_unsigned(Some(token)));
        assert_eq!(printed.matches(token).count(), 1, "{printed}");
        assert!(printed.contains(&format!("POST /webhooks/acme/generic/{token}")));
        assert!(!printed.contains("issues its own"), "{printed}");
    }

    #[tokio::test]
    async fn add_refuses_to_overwrite_and_unusable_secrets() {
        let dir = MemoryDirectory::new();
        run_to_string(&dir, TenantCommand::Add(add_args(Provider::GitHub)))
            .await
            .expect("added");
        let before = stored(&dir, Provider::GitHub).await;
        let err = run_to_string(&dir, TenantCommand::Add(add_args(Provider::GitHub)))
            .await
            .expect_err("exists");
        assert!(matches!(err, CliError::ConfigExists { .. }), "{err}");
        assert_eq!(stored(&dir, Provider::GitHub).await, before);

        let mut args = add_args(Provider::Resend);
        args.secret = Some(Secret::new("not-base64!"));
        let err = run_to_string(&dir, TenantCommand::Add(args))
            .await
            .expect_err("unusable");
        assert!(matches!(err, CliError::UnusableSecret { .. }), "{err}");
        assert!(
            dir.provider_config(&tenant("acme"), Provider::Resend)
                .await
                .expect("reachable")
                .is_none()
        );
    }

    #[tokio::test]
    async fn rotate_keeps_the_old_secret_for_the_grace_and_prints_only_the_new_one() {
        // GIVEN a Svix configuration with a known secret
        let old = "whsec_b2xkIHNlY3JldCBvbGQgc2VjcmV0";
        let dir = MemoryDirectory::with([ProviderConfig::new(
            tenant("acme"),
            Provider::Svix,
            Secret::new(old),
        )]);
        // WHEN it is rotated with 2 hours of grace
        let printed = run_to_string(
            &dir,
            TenantCommand::Rotate(RotateArgs {
                public_key: None,
                tenant: tenant("acme"),
                provider: Provider::Svix,
                secret: None,
                grace_hours: 2,
            }),
        )
        .await
        .expect("rotated");
        // THEN the new secret is current and printed once, the old one valid for 2 hours
        let config = stored(&dir, Provider::Svix).await;
        let new = config.secrets.current.expose();
        assert_ne!(new, old);
        assert!(new.starts_with("whsec_"));
        assert_eq!(printed.matches(new).count(), 1, "{printed}");
        assert!(!printed.contains(old), "{printed}");
        let previous = config.secrets.previous.as_ref().expect("previous kept");
        assert_eq!(previous.secret, Secret::new(old));
        assert_eq!(previous.expires_at, now() + Duration::from_secs(2 * 3600));
        assert!(printed.contains("2023-11-15T00:13:20Z"), "{printed}");
    }

    /// A fresh P-256 public key as Circle publishes it.
    fn circle_key() -> String {
        use shared::verify::circle::test_key;
        test_key()
    }

    #[tokio::test]
    async fn circle_takes_public_keys_not_a_secret_and_rotates_them_with_a_grace() {
        let dir = MemoryDirectory::new();
        // No key, a secret, or a key that does not decode: refused, nothing stored.
        for args in [
            add_args(Provider::Circle),
            AddArgs {
                secret: Some(Secret::new("s")),
                public_keys: vec![PublicKey::new("k1", circle_key())],
                ..add_args(Provider::Circle)
            },
            AddArgs {
                public_keys: vec![PublicKey::new("k1", "bm90IGEga2V5")],
                ..add_args(Provider::Circle)
            },
        ] {
            assert!(run_to_string(&dir, TenantCommand::Add(args)).await.is_err());
        }
        assert!(dir.list_configs(None).await.expect("list").is_empty());
        // A key given for another provider is refused by name.
        let err = run_to_string(
            &dir,
            TenantCommand::Add(AddArgs {
                public_keys: vec![PublicKey::new("k1", circle_key())],
                ..add_args(Provider::Stripe)
            }),
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, CliError::NotForProvider { .. }), "{err}");

        let first = circle_key();
        run_to_string(
            &dir,
            TenantCommand::Add(AddArgs {
                public_keys: vec![PublicKey::new("k1", first.clone())],
                ..add_args(Provider::Circle)
            }),
        )
        .await
        .expect("added");
        let second = circle_key();
        run_to_string(
            &dir,
            TenantCommand::Rotate(RotateArgs {
                tenant: tenant("acme"),
                provider: Provider::Circle,
                secret: None,
                public_key: Some(PublicKey::new("k2", second.clone())),
                grace_hours: 2,
            }),
        )
        .await
        .expect("rotated");
        let keys: Vec<PublicKey> = stored(&dir, Provider::Circle)
            .await
            .public_keys
            .iter()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                PublicKey::new("k2", second),
                PublicKey::new("k1", first).expiring(now() + Duration::from_secs(7_200)),
            ]
        );
    }

    #[tokio::test]
    async fn rotate_refuses_a_missing_config_and_the_same_secret() {
        let dir = MemoryDirectory::with([ProviderConfig::new(
            tenant("acme"),
            Provider::Generic,
            Secret::new("same"),
        )]);
        let args = |provider, secret: Option<&str>| RotateArgs {
            public_key: None,
            tenant: tenant("acme"),
            provider,
            secret: secret.map(Secret::new),
            grace_hours: 24,
        };
        let err = run_to_string(&dir, TenantCommand::Rotate(args(Provider::Slack, None)))
            .await
            .expect_err("missing");
        assert!(matches!(err, CliError::ConfigNotFound { .. }), "{err}");
        let err = run_to_string(
            &dir,
            TenantCommand::Rotate(args(Provider::Generic, Some("same"))),
        )
        .await
        .expect_err("same secret");
        assert!(matches!(err, CliError::SameSecret), "{err}");
        assert!(
            stored(&dir, Provider::Generic)
                .await
                .secrets
                .previous
                .is_none()
        );
    }

    #[tokio::test]
    async fn unsigned_allow_then_refuse() {
        let dir = MemoryDirectory::with([ProviderConfig::new(
            tenant("acme"),
            Provider::Generic,
            Secret::new("s"),
        )]);
        let policy = |policy| {
            TenantCommand::Unsigned(UnsignedArgs {
                tenant: tenant("acme"),
                provider: Provider::Generic,
                policy,
            })
        };
        let printed = run_to_string(&dir, policy(PolicyArg::Allow))
            .await
            .expect("allowed");
        let token = printed_token(&printed).to_owned();
        assert_eq!(printed.matches(&token).count(), 1);
        let allowed = stored(&dir, Provider::Generic).await.unsigned;
        assert_eq!(
            allowed,
            UnsignedPolicy::Allow {
                token_digest: TokenDigest::of(&token)
            },
            "only the token's digest is stored"
        );

        // Allowing again neither changes nor reprints the token.
        let again = run_to_string(&dir, policy(PolicyArg::Allow))
            .await
            .expect("allowed");
        assert!(!again.contains(&token), "{again}");
        assert_eq!(stored(&dir, Provider::Generic).await.unsigned, allowed);

        run_to_string(&dir, policy(PolicyArg::Refuse))
            .await
            .expect("refused");
        let config = stored(&dir, Provider::Generic).await;
        assert_eq!(config.unsigned, UnsignedPolicy::Refuse);
        assert!(!config.admits_unsigned(Some(&token)));
    }

    #[tokio::test]
    async fn listings_never_print_a_secret_or_a_token() {
        // GIVEN configurations holding every kind of secret material: current and previous
        // secrets (one rotation live, one expired) and an unsigned route token
        let mut rotating = ProviderConfig::new(
            tenant("acme"),
            Provider::Stripe,
            Secret::new("whsec_CURRENT1"),
        );
        rotating.rotate(
            Secret::new("whsec_CURRENT2"),
            now(),
            Duration::from_secs(3600),
        );
        let mut expired = ProviderConfig::new(
            tenant("beta"),
            Provider::GitHub,
            Secret::new("gh_OLDSECRET"),
        );
        expired.rotate(
            Secret::new("gh_NEWSECRET"),
            now() - Duration::from_secs(7200),
            Duration::from_secs(3600),
        );
        let mut unsigned =
            ProviderConfig::new(tenant("acme"), Provider::Generic, Secret::new("gen_SECRET"));
        unsigned.unsigned = UnsignedPolicy::Allow {
            token_digest: TokenDigest::of("TOKEN0123456789abcdef"),
        };
        let dir = MemoryDirectory::with([rotating, expired, unsigned]);
        let forbidden = [
            "CURRENT1",
            "CURRENT2",
            "OLDSECRET",
            "NEWSECRET",
            "gen_SECRET",
            "TOKEN0123456789abcdef",
            "whsec_",
        ];

        // WHEN every tenant, then one tenant, is listed
        for filter in [None, Some(tenant("acme")), Some(tenant("beta"))] {
            let printed = run_to_string(&dir, TenantCommand::List(ListArgs { tenant: filter }))
                .await
                .expect("listed");
            // THEN no secret material appears
            for secret in forbidden {
                assert!(!printed.contains(secret), "{secret} in\n{printed}");
            }
        }

        let all = run_to_string(&dir, TenantCommand::List(ListArgs { tenant: None }))
            .await
            .expect("listed");
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 4, "{all}");
        assert!(lines[0].starts_with("TENANT"));
        assert!(lines[1].contains("generic") && lines[1].contains("allowed"));
        assert!(lines[2].starts_with("acme") && lines[2].contains("stripe"));
        assert!(lines[2].contains("previous secret expires at 2023-11-14T23:13:20Z"));
        assert!(lines[3].starts_with("beta") && lines[3].contains("previous secret expired at"));
    }

    #[tokio::test]
    async fn an_empty_listing_says_so() {
        let printed = run_to_string(
            &MemoryDirectory::new(),
            TenantCommand::List(ListArgs {
                tenant: Some(tenant("nobody")),
            }),
        )
        .await
        .expect("listed");
        assert_eq!(printed, "No provider is configured for tenant nobody.\n");
    }

    #[tokio::test]
    async fn an_outage_is_an_error() {
        let dir = MemoryDirectory::new();
        dir.set_unavailable(true);
        let err = run_to_string(&dir, TenantCommand::List(ListArgs { tenant: None }))
            .await
            .expect_err("down");
        assert!(matches!(err, CliError::Store(_)), "{err}");
    }

    #[tokio::test]
    async fn a_verify_only_public_key_is_added_and_rotated_and_verifies_v1a_deliveries() {
        // A sender's key pairs (the Standard Webhooks asymmetric test vector's, and a second).
        let signing = Secret::new(
            "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==",
        );
        let public = Secret::new("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=");
        let dir = MemoryDirectory::new();

        // WHEN only the public key is given, THEN it is stored, not refused for not signing
        let mut args = add_args(Provider::StandardWebhooks);
        args.secret = Some(public.clone());
        run_to_string(&dir, TenantCommand::Add(args))
            .await
            .expect("a whpk_ key is accepted");
        let config = stored(&dir, Provider::StandardWebhooks).await;
        assert_eq!(config.secrets.current, public);

        // AND a delivery the sender signs with its private key (v1a) verifies with it
        let body = br#"{"type":"invoice.paid","data":{}}"#;
        let scheme = config.verifier().scheme;
        let signed = scheme
            .sign(body, &signing, now(), "msg_v1a")
            .expect("the whsk_ key signs");
        assert!(
            signed.iter().any(|(_, v)| v.starts_with("v1a,")),
            "{signed:?}"
        );
        let headers = crate::send::header_map(&signed).expect("headers");
        Verifier::new(scheme.clone())
            .verify(body, &headers, &config.secrets, now())
            .expect("verifies with the stored public key");

        // WHEN it is rotated to another public key, THEN that one is accepted as well, and a
        // public key that is not one is still refused
        run_to_string(
            &dir,
            TenantCommand::Rotate(RotateArgs {
                public_key: None,
                tenant: tenant("acme"),
                provider: Provider::StandardWebhooks,
                secret: Some(Secret::new(
                    "whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )),
                grace_hours: 1,
            }),
        )
        .await
        .expect("rotated to a public key");
        let mut bad = add_args(Provider::Svix);
        bad.secret = Some(Secret::new("whpk_c2hvcnQ="));
        let err = run_to_string(&dir, TenantCommand::Add(bad))
            .await
            .expect_err("not a key");
        assert!(matches!(err, CliError::UnusableSecret { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_generated_secret_verifies_deliveries_signed_with_it() {
        let dir = MemoryDirectory::new();
        run_to_string(&dir, TenantCommand::Add(add_args(Provider::Resend)))
            .await
            .expect("added");
        let config = stored(&dir, Provider::Resend).await;
        let body = br#"{"type":"email.sent","created_at":"2023-11-14T22:13:20Z","data":{}}"#;
        let signed = config
            .verifier()
            .scheme
            .sign(body, &config.secrets.current, now(), "msg_1")
            .expect("signs");
        let headers = crate::send::header_map(&signed).expect("headers");
        Verifier::new(config.verifier().scheme)
            .verify(
                body,
                &headers,
                &SecretSet::single(config.secrets.current),
                now(),
            )
            .expect("verifies");
    }
}
