//! Generated secrets, route tokens and ids. Randomness comes through [`Entropy`], the operating
//! system's source in the binary.

use std::{
    io::{BufRead, IsTerminal},
    time::SystemTime,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use shared::{provider::Provider, secret::Secret, verify::Scheme};

use crate::{args::TenantCommand, error::CliError, output::scheme_name};

/// Bytes of randomness in a generated secret or route token: 256 bits.
pub const SECRET_BYTES: usize = 32;

/// A source of unpredictable bytes.
pub trait Entropy: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> Result<(), CliError>;
}

/// The operating system's random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), CliError> {
        getrandom::fill(buf).map_err(CliError::Random)
    }
}

fn random<const N: usize>(entropy: &dyn Entropy) -> Result<[u8; N], CliError> {
    let mut bytes = [0u8; N];
    entropy.fill(&mut bytes)?;
    Ok(bytes)
}

/// A strong secret in the shape `scheme` expects: `whsec_` + base64 for Standard Webhooks / Svix
/// (the key is the decoded bytes), 64 lowercase hex characters for the others (the key is the
/// text itself).
pub fn generate_secret(scheme: &Scheme, entropy: &dyn Entropy) -> Result<Secret, CliError> {
    let bytes = random::<SECRET_BYTES>(entropy)?;
    Ok(Secret::new(match scheme {
        Scheme::StandardWebhooks => format!("whsec_{}", STANDARD.encode(bytes)),
        _ => hex::encode(bytes),
    }))
}

/// The unguessable segment of a tenant's unsigned route: 64 lowercase hex characters.
pub fn generate_path_token(entropy: &dyn Entropy) -> Result<Secret, CliError> {
    Ok(Secret::new(hex::encode(random::<SECRET_BYTES>(entropy)?)))
}

/// A fresh event id in the shape the provider uses for its header ids.
pub fn generate_event_id(provider: Provider, entropy: &dyn Entropy) -> Result<String, CliError> {
    let bytes = random::<16>(entropy)?;
    Ok(match provider {
        Provider::GitHub | Provider::Shopify | Provider::Circle => uuid_v4(bytes),
        Provider::Clerk | Provider::Resend | Provider::Svix | Provider::StandardWebhooks => {
            format!("msg_{}", hex::encode(bytes))
        }
        Provider::Slack => format!("Ev{}", hex::encode_upper(bytes)),
        Provider::Stripe
        | Provider::Generic
        | Provider::Twilio
        | Provider::PayPal
        | Provider::Firebase
        | Provider::Braintree
        | Provider::Declared(_) => format!("evt_{}", hex::encode(bytes)),
    })
}

fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Refuse a secret that was mistyped (empty, padded with spaces, holding control characters) or
/// that the scheme cannot derive a key from (a Standard Webhooks secret that is not base64, say),
/// with the same code the ingress verifies with: by signing an empty body, or, for a key that
/// only verifies (a `whpk_` public key), by parsing it. The error never quotes the secret.
pub fn check_usable(scheme: &Scheme, secret: &Secret, now: SystemTime) -> Result<(), CliError> {
    let text = secret.expose();
    if text.is_empty() {
        return Err(CliError::MalformedSecret("it is empty"));
    }
    if text.trim() != text {
        return Err(CliError::MalformedSecret(
            "it has leading or trailing whitespace",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(CliError::MalformedSecret("it contains control characters"));
    }
    // Twilio signs a URL: any will do to see whether the secret can sign at all.
    let url = shared::verify::RequestUrl::parse("https://hookctl.example/check")
        .map_err(|e| CliError::Sign(e.to_string()))?;
    let context = shared::verify::VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    scheme
        .check_secret(secret, now, &context)
        .map_err(|source| CliError::UnusableSecret {
            scheme: scheme_name(scheme),
            source,
        })
}

/// Whether the provider issues the signing secret itself (in its dashboard), so a generated one
/// only suits test deliveries made with `hookctl send`.
pub fn provider_issues_secret(provider: Provider) -> bool {
    matches!(
        provider,
        Provider::Stripe
            | Provider::Clerk
            | Provider::Resend
            | Provider::Svix
            | Provider::Slack
            | Provider::Shopify
            | Provider::Twilio
    )
}

/// The `tenant` command with a `--secret -` read from standard input: one line, or a prompt
/// that does not echo when standard input is a terminal. Any other secret is left as given.
pub fn read_secret_input(command: TenantCommand) -> Result<TenantCommand, CliError> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    resolve_secret_input(command, || {
        if interactive {
            rpassword::prompt_password("Secret (not echoed): ").map_err(CliError::Output)
        } else {
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(CliError::Output)?;
            Ok(line)
        }
    })
}

/// [`read_secret_input`] with the reading injected, for tests.
pub fn resolve_secret_input(
    command: TenantCommand,
    read: impl FnOnce() -> Result<String, CliError>,
) -> Result<TenantCommand, CliError> {
    let from_input = |secret: &Option<Secret>| secret.as_ref().is_some_and(|s| s.expose() == "-");
    let mut read = Some(read);
    let mut take = |slot: &mut Option<Secret>| -> Result<(), CliError> {
        if from_input(slot) {
            let reader = read.take().ok_or(CliError::MalformedSecret("read twice"))?;
            let line = reader()?;
            let secret = line.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                return Err(CliError::MalformedSecret(
                    "no secret was given on standard input",
                ));
            }
            *slot = Some(Secret::new(secret));
        }
        Ok(())
    };
    let mut command = command;
    match &mut command {
        TenantCommand::Add(args) => take(&mut args.secret)?,
        TenantCommand::Rotate(args) => take(&mut args.secret)?,
        TenantCommand::Unsigned(_) | TenantCommand::List(_) => {}
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use shared::{
        secret::SecretSet,
        verify::{GenericHeaders, Verifier},
    };

    use super::*;

    fn schemes() -> Vec<Scheme> {
        vec![
            Scheme::Stripe,
            Scheme::StandardWebhooks,
            Scheme::GitHub,
            Scheme::Slack,
            Scheme::Shopify,
            Scheme::Generic(GenericHeaders::default()),
        ]
    }

    #[test]
    fn standard_webhooks_secrets_are_whsec_and_32_bytes_of_base64() {
        let secret = generate_secret(&Scheme::StandardWebhooks, &OsEntropy).expect("secret");
        let encoded = secret
            .expose()
            .strip_prefix("whsec_")
            .expect("whsec_ prefix");
        let key = STANDARD.decode(encoded).expect("base64");
        assert_eq!(key.len(), SECRET_BYTES);
    }

    #[test]
    fn other_secrets_are_64_lowercase_hex_characters() {
        for scheme in schemes()
            .into_iter()
            .filter(|s| *s != Scheme::StandardWebhooks)
        {
            let secret = generate_secret(&scheme, &OsEntropy).expect("secret");
            let text = secret.expose();
            assert_eq!(text.len(), 64, "{scheme:?}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn generated_secrets_sign_and_verify_with_every_scheme() {
        let now = SystemTime::now();
        for scheme in schemes() {
            let secret = generate_secret(&scheme, &OsEntropy).expect("secret");
            check_usable(&scheme, &secret, now).expect("usable");
            let body = br#"{"id":"evt_1","type":"t","created":1}"#;
            let signed = scheme.sign(body, &secret, now, "msg_1").expect("signs");
            let headers = crate::send::header_map(&signed).expect("headers");
            Verifier::new(scheme.clone())
                .verify(body, &headers, &SecretSet::single(secret), now)
                .expect("verifies");
        }
    }

    #[test]
    fn generated_values_do_not_repeat() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            for scheme in [Scheme::Stripe, Scheme::StandardWebhooks] {
                let secret = generate_secret(&scheme, &OsEntropy).expect("secret");
                assert!(seen.insert(secret.expose().to_owned()), "repeated secret");
            }
            let token = generate_path_token(&OsEntropy).expect("token");
            assert_eq!(token.expose().len(), 64);
            assert!(seen.insert(token.expose().to_owned()), "repeated token");
        }
    }

    #[test]
    fn a_failing_random_source_is_an_error_not_a_weak_secret() {
        struct Broken;
        impl Entropy for Broken {
            fn fill(&self, _: &mut [u8]) -> Result<(), CliError> {
                Err(CliError::Random(getrandom::Error::UNSUPPORTED))
            }
        }
        assert!(generate_secret(&Scheme::Stripe, &Broken).is_err());
        assert!(generate_path_token(&Broken).is_err());
    }

    #[test]
    fn generated_ids_are_valid_event_ids_in_the_provider_shape() {
        for provider in Provider::all() {
            let id = generate_event_id(provider, &OsEntropy).expect("id");
            shared::ids::EventId::parse(&id).expect("valid event id");
        }
        let uuid = generate_event_id(Provider::GitHub, &OsEntropy).expect("id");
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
        assert!(
            generate_event_id(Provider::Clerk, &OsEntropy)
                .expect("id")
                .starts_with("msg_")
        );
    }

    #[test]
    fn unusable_secrets_are_refused_without_echoing_them() {
        let err = check_usable(
            &Scheme::StandardWebhooks,
            &Secret::new("whsec_not base64!"),
            SystemTime::now(),
        )
        .expect_err("refused");
        assert!(!err.to_string().contains("not base64!"), "{err}");
        for typo in ["", " whsec_padded", "whsec_tab\t", "whsec_\u{7}bell"] {
            let err = check_usable(&Scheme::Stripe, &Secret::new(typo), SystemTime::now())
                .expect_err("malformed");
            assert!(matches!(err, CliError::MalformedSecret(_)), "{typo:?}");
            if !typo.is_empty() {
                assert!(!err.to_string().contains(typo.trim()), "{err}");
            }
        }
        check_usable(
            &Scheme::Stripe,
            &Secret::new("whsec_anything"),
            SystemTime::now(),
        )
        .expect("stripe keys with the whole text");
    }
}
