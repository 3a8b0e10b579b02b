//! Interoperability with the providers' own code: requests signed by their official libraries
//! (PyPI `stripe`, `svix`, `standardwebhooks`, `slack_sdk`, `twilio`, in the virtualenv `make
//! test` installs) are accepted by the deployed ingress handler, and the same requests with one
//! byte changed are refused. None of these signatures comes from this project's signers.
//! Google's OIDC tokens are signed and judged by Google's `google-auth`, and our verdicts must
//! agree with its verdicts. GitHub's signatures are made and judged by GitHub's npm package
//! `@octokit/webhooks-methods` (in `tests/interop/node`), and our verdicts must agree with its.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use shared::{
    clock::ManualClock,
    ids::TenantId,
    ingress::{Ingress, IngressSettings},
    memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
    provider::Provider,
    secret::Secret,
    tenant::ProviderConfig,
    verify::google_oidc::{
        self, GoogleKeys, GoogleOidcExpectation, StaticJwks, TestSigner, google_claims, jwks,
    },
};

use crate::support::*;

/// The interpreter of the providers' libraries. `make test` sets it; without it the test fails
/// loudly rather than skip.
fn python() -> String {
    std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!("INTEROP_PYTHON is not set: run the tests with `make test`, which installs the providers' libraries")
    })
}

/// Sign `cases` with the official libraries; one signed request per case.
fn sign_officially(cases: &[Value]) -> Vec<Value> {
    run_interop_script("sign.py", cases)
}

/// Run `tests/interop/{script}` on `cases`, one JSON line each way.
fn run_interop_script(script: &str, cases: &[Value]) -> Vec<Value> {
    let script = format!("{}/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python());
    command.arg(&script);
    run_lines(command, &script, cases)
}

/// The Node libraries `make test` installs from `tests/interop/node/package-lock.json`, checked
/// to hold `package`. Without them the test fails loudly rather than skip.
fn node_modules(package: &str) -> String {
    let modules = std::env::var("INTEROP_NODE_MODULES").unwrap_or_else(|_| {
        panic!("INTEROP_NODE_MODULES is not set: run the tests with `make test`, which installs the Node libraries")
    });
    let manifest = format!("{modules}/{package}/package.json");
    assert!(
        std::path::Path::new(&manifest).is_file(),
        "{package} is not installed in INTEROP_NODE_MODULES ({modules}): run `make test`, which runs `npm ci` in tests/interop/node"
    );
    modules
}

/// Run `tests/interop/node/{script}` with Node on `cases`, one JSON line each way, with
/// `package` from INTEROP_NODE_MODULES.
fn run_node_interop_script(script: &str, package: &str, cases: &[Value]) -> Vec<Value> {
    let script = format!("{}/interop/node/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("node");
    command.env("NODE_PATH", node_modules(package)).arg(&script);
    run_lines(command, &script, cases)
}

/// Run `command` (which runs `script`) with `cases` on its stdin, one JSON line each; the JSON
/// lines it prints.
fn run_lines(mut command: Command, script: &str, cases: &[Value]) -> Vec<Value> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} {script} ({e}): run `make test`"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for case in cases {
            writeln!(stdin, "{case}").expect("write a case");
        }
    }
    let output = child.wait_with_output().expect("the script ran");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{script} printed a line that is not JSON ({e}): {line}")
            })
        })
        .collect()
}

const STRIPE_SECRET: &str = "whsec_interop_stripe_0123456789";
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TWILIO_TOKEN: &str = "12345678901234567890123456789012";
const HOST: &str = "hooks.example.com";

fn config(provider: Provider, secret: &str) -> ProviderConfig {
    ProviderConfig::new(
        TenantId::parse("acme").expect("tenant"),
        provider,
        Secret::new(secret),
    )
}

#[tokio::test]
async fn requests_signed_by_the_providers_own_libraries_are_accepted_and_tampered_ones_refused() {
    // GIVEN a tenant configured for each provider, and requests its official library signed
    let configs = vec![
        config(Provider::Stripe, STRIPE_SECRET),
        config(Provider::Svix, SVIX_SECRET),
        config(Provider::Clerk, SVIX_SECRET),
        config(Provider::Resend, SVIX_SECRET),
        config(Provider::StandardWebhooks, SVIX_SECRET),
        config(Provider::Slack, SLACK_SECRET),
        config(Provider::Twilio, TWILIO_TOKEN),
    ];
    let json_body = |id: &str| {
        json!({"id": id, "type": "interop.ping", "created": NOW, "created_at": "2023-11-14T22:13:20Z",
               "timestamp": NOW * 1000, "data": {"object": {"object": "interop"}}})
        .to_string()
    };
    let cases = vec![
        json!({"provider": "stripe", "secret": STRIPE_SECRET, "id": "evt_interop_1",
               "body": json_body("evt_interop_1"), "timestamp": NOW}),
        json!({"provider": "svix", "secret": SVIX_SECRET, "id": "msg_interop_svix",
               "body": json_body("x"), "timestamp": NOW}),
        json!({"provider": "clerk", "secret": SVIX_SECRET, "id": "msg_interop_clerk",
               "body": json_body("x"), "timestamp": NOW}),
        json!({"provider": "resend", "secret": SVIX_SECRET, "id": "msg_interop_resend",
               "body": json_body("x"), "timestamp": NOW}),
        json!({"provider": "standard-webhooks", "secret": SVIX_SECRET, "id": "msg_interop_std",
               "body": json_body("x"), "timestamp": NOW}),
        json!({"provider": "slack", "secret": SLACK_SECRET, "id": "-",
               "body": json!({"type": "event_callback", "event_id": "Ev_interop",
                              "event_time": NOW, "event": {"type": "app_mention"}}).to_string(),
               "timestamp": NOW}),
        json!({"provider": "slack", "secret": SLACK_SECRET, "id": "-",
               "body": "token=t&team_id=T1&command=%2Fdeploy&text=prod&trigger_id=13345224609.738474920.8088930838d88f008e0",
               "timestamp": NOW}),
        json!({"provider": "twilio", "secret": TWILIO_TOKEN, "id": "-",
               "body": "AccountSid=AC1&MessageSid=SMinterop&MessageStatus=delivered&To=%2B15550100",
               "url": format!("https://{HOST}/webhooks/acme/twilio"), "timestamp": NOW}),
    ];
    let signed = sign_officially(&cases);
    assert_eq!(signed.len(), cases.len());

    for signed_request in &signed {
        let provider = signed_request["provider"]
            .as_str()
            .expect("provider")
            .to_owned();
        let body = signed_request["body"]
            .as_str()
            .expect("body")
            .as_bytes()
            .to_vec();
        let mut headers: Vec<(String, String)> = signed_request["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().expect("name").to_owned(),
                    pair[1].as_str().expect("value").to_owned(),
                )
            })
            .collect();
        headers.push(("host".into(), HOST.into()));
        let ingress = Ingress::new(
            MemoryEventStore::new(),
            MemoryQueue::new(),
            MemoryDirectory::with(configs.clone()),
            ManualClock::at_unix(NOW),
            IngressSettings::default(),
        );

        // WHEN the ingress receives it as sent
        let (status, answer) =
            call(&ingress, request("acme", &provider, None, &headers, &body)).await;
        // THEN it is accepted
        assert_eq!(status, 200, "{provider}: {answer}");
        assert_eq!(answer["received"], true, "{provider}: {answer}");

        // AND with one byte of the body changed, it is refused and nothing more is stored
        let mut tampered = body.clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x01;
        let (status, _) = call(
            &ingress,
            request("acme", &provider, None, &headers, &tampered),
        )
        .await;
        assert_eq!(status, 401, "{provider} tampered");
        assert_eq!(ingress.store.all().len(), 1, "{provider}");
    }
}

const GOOGLE_AUDIENCE: &str = "https://hooks.example.com/webhooks/acme/pubsub";
const GOOGLE_SERVICE_ACCOUNT: &str = "pubsub-push@acme-prod.iam.gserviceaccount.com";

#[tokio::test]
async fn google_oidc_tokens_signed_by_google_auth_are_accepted_and_bad_ones_refused_by_both() {
    // GIVEN a key published as Google publishes its keys (a JWK, served from memory), and a
    // tenant expecting its push subscription's audience and service account
    let signer = TestSigner::generate("interop-google-kid");
    let keys = GoogleKeys::new(Arc::new(StaticJwks::new(
        jwks(&[signer.jwk()]),
        Some(Duration::from_secs(3600)),
    )));
    let expect = GoogleOidcExpectation::new(GOOGLE_AUDIENCE, GOOGLE_SERVICE_ACCOUNT);
    // google-auth reads the real clock, so the tokens are made around it, with wide margins.
    let now = SystemTime::now();
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims_with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = google_claims(&expect, now_secs - 5);
        if let Value::Object(map) = &mut claims {
            edit(map);
        }
        claims
    };
    // (case, claims, our expected refusal reason: None when the token must pass)
    let table: Vec<(&str, Value, Option<&str>)> = vec![
        ("valid", claims_with(&|_| {}), None),
        (
            "valid, the other issuer form",
            claims_with(&|c| {
                c.insert("iss".into(), "accounts.google.com".into());
            }),
            None,
        ),
        (
            "wrong audience",
            claims_with(&|c| {
                c.insert("aud".into(), "https://hooks.example.com/other".into());
            }),
            Some("invalid_token"),
        ),
        (
            "wrong issuer",
            claims_with(&|c| {
                c.insert("iss".into(), "https://evil.example.com".into());
            }),
            Some("invalid_token"),
        ),
        (
            "another service account",
            claims_with(&|c| {
                c.insert(
                    "email".into(),
                    "intruder@other.iam.gserviceaccount.com".into(),
                );
            }),
            Some("invalid_token"),
        ),
        (
            "email not verified",
            claims_with(&|c| {
                c.insert("email_verified".into(), false.into());
            }),
            Some("invalid_token"),
        ),
        (
            "expired an hour ago",
            claims_with(&|c| {
                c.insert("iat".into(), (now_secs - 7200).into());
                c.insert("exp".into(), (now_secs - 3600).into());
            }),
            Some("stale_timestamp"),
        ),
        (
            "issued ten minutes ahead",
            claims_with(&|c| {
                c.insert("iat".into(), (now_secs + 600).into());
                c.insert("exp".into(), (now_secs + 4200).into());
            }),
            Some("future_timestamp"),
        ),
    ];

    // WHEN google-auth signs each case's claims with the key
    let sign_cases: Vec<Value> = table
        .iter()
        .map(|(_, claims, _)| {
            json!({"private_key_pem": signer.private_key_pem(), "kid": signer.kid(),
                   "claims": claims})
        })
        .collect();
    let signed = run_interop_script("google_oidc.py", &sign_cases);
    assert_eq!(signed.len(), table.len());
    let mut tokens: Vec<(String, String, Option<&str>)> = table
        .iter()
        .zip(&signed)
        .map(|((name, _, expected), signed)| {
            let token = signed["token"].as_str().expect("a token").to_owned();
            ((*name).to_owned(), token, *expected)
        })
        .collect();

    // AND the valid token is tampered with: other claims under its signature, and one
    // signature byte flipped
    let valid = tokens[0].1.clone();
    let (signing_input, signature) = valid.rsplit_once('.').expect("three segments");
    let (header, _) = signing_input.split_once('.').expect("three segments");
    let forged_claims = claims_with(&|c| {
        c.insert("aud".into(), "https://hooks.example.com/other".into());
    });
    tokens.push((
        "other claims under a genuine signature".into(),
        format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(forged_claims.to_string())
        ),
        Some("signature_mismatch"),
    ));
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    flipped[100] ^= 0x01;
    tokens.push((
        "a signature byte flipped".into(),
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
        Some("signature_mismatch"),
    ));
    // AND a token this project's test signer made must satisfy google-auth too
    tokens.push((
        "signed by our test signer".into(),
        signer.sign(&claims_with(&|_| {})),
        None,
    ));

    // THEN google-auth and our verifier agree on every token
    let verdict_cases: Vec<Value> = tokens
        .iter()
        .map(|(_, token, _)| {
            json!({"token": token, "certs": {signer.kid(): signer.jwk()},
                   "audience": GOOGLE_AUDIENCE, "service_account": GOOGLE_SERVICE_ACCOUNT})
        })
        .collect();
    let verdicts = run_interop_script("google_oidc.py", &verdict_cases);
    assert_eq!(verdicts.len(), tokens.len());
    for ((name, token, expected), theirs) in tokens.iter().zip(&verdicts) {
        let headers = http::HeaderMap::from_iter([(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii"),
        )]);
        let ours = google_oidc::verify(&headers, &expect, &keys, now).await;
        match expected {
            None => {
                assert_eq!(
                    theirs["valid"], true,
                    "{name}: google-auth refused: {theirs}"
                );
                let verified = ours.unwrap_or_else(|e| panic!("{name}: we refused: {e}"));
                assert_eq!(verified.key_id.as_deref(), Some(signer.kid()), "{name}");
            }
            Some(reason) => {
                assert_eq!(theirs["valid"], false, "{name}: google-auth accepted");
                let err = ours.expect_err(name);
                assert_eq!(err.reason(), *reason, "{name}: {err}");
            }
        }
    }

    // AND google-auth reads the same key as a PEM public key, as its certificates usually come
    let pem_case = json!({"token": valid, "certs": {signer.kid(): signer.public_key_pem()},
                          "audience": GOOGLE_AUDIENCE});
    assert_eq!(
        run_interop_script("google_oidc.py", &[pem_case])[0]["valid"],
        true
    );
}

/// What our verifier says of one request to a declared provider: `Ok` accepted, `Err` the reason.
fn our_verdict(
    provider: &str,
    signed: &Value,
    body: &str,
    url: &str,
    now: SystemTime,
) -> Result<(), String> {
    use std::str::FromStr;

    use shared::{
        secret::SecretSet,
        verify::{RequestUrl, Verifier, VerifyContext},
    };

    let provider =
        Provider::from_str(provider).map_err(|_| format!("no provider named {provider}"))?;
    let mut headers = http::HeaderMap::new();
    for pair in signed["headers"].as_array().expect("headers") {
        headers.append(
            http::HeaderName::from_bytes(pair[0].as_str().expect("name").as_bytes())
                .expect("header name"),
            http::HeaderValue::from_str(pair[1].as_str().expect("value")).expect("header value"),
        );
    }
    let url = RequestUrl::parse(url).expect("url");
    let context = VerifyContext {
        url: Some(&url),
        ..Default::default()
    };
    let secrets = SecretSet::single(Secret::new(signed["secret"].as_str().expect("secret")));
    Verifier::new(provider.default_scheme())
        .verify_with(body.as_bytes(), &headers, &secrets, &context, now)
        .map(drop)
        .map_err(|e| format!("{}: {e}", e.reason()))
}

/// `signed`'s headers with `name`'s value replaced by `value`.
fn with_header(signed: &Value, name: &str, value: &str) -> Value {
    let mut changed = signed.clone();
    for pair in changed["headers"].as_array_mut().expect("headers") {
        if pair[0]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
        {
            pair[1] = value.into();
        }
    }
    changed
}

#[test]
fn new_providers_agree_with_their_official_libraries() {
    // GIVEN requests signed with each provider's official library (PyNaCl for Discord, whose
    // documentation verifies with it; cryptography's ECDSA, approved by sendgrid's EventWebhook;
    // squareup and paddle-python-sdk), at this machine's time, because paddle-python-sdk checks
    // signed times against the real clock
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let now = UNIX_EPOCH + Duration::from_secs(now_secs);
    let square_url = format!("https://{HOST}/webhooks/acme/square");
    let other_url = format!("https://{HOST}/webhooks/acme/square2");
    let discord_body =
        json!({"type": 2, "id": "1300000000000000001", "application_id": "1200000000000000002",
                              "token": "interop", "version": 1, "data": {"name": "deploy"}})
        .to_string();
    let sendgrid_body = format!(
        "{}\r\n",
        json!([{"email": "a@example.com", "event": "delivered", "sg_event_id": "interop-1",
                "sg_message_id": "m1", "timestamp": now_secs}])
    );
    let square_body = json!({"merchant_id": "MLEFBHHSJGVHD", "type": "payment.created",
                             "event_id": "ac3ac95b-f97d-458c-a6e6-18981597e05f",
                             "created_at": "2023-11-14T22:13:20Z", "data": {"type": "payment", "id": "p1"}})
    .to_string();
    let paddle_body = json!({"event_id": "evt_01hv8x2acma2gz3he1e9rsjbty", "event_type": "transaction.completed",
                             "occurred_at": "2023-11-14T22:13:20.000000Z", "notification_id": "ntf_interop",
                             "data": {"id": "txn_interop"}})
    .to_string();
    let paddle_secret = "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_interopinteropinteropinterop";
    let cases = vec![
        json!({"op": "sign", "provider": "discord", "body": discord_body, "timestamp": now_secs}),
        json!({"op": "sign", "provider": "sendgrid", "body": sendgrid_body, "timestamp": now_secs}),
        json!({"op": "sign", "provider": "square", "body": square_body, "timestamp": now_secs,
               "secret": "Ibxx_5AKakO-3qeNVR61Dw", "url": square_url}),
        json!({"op": "sign", "provider": "paddle", "body": paddle_body, "timestamp": now_secs,
               "secret": paddle_secret}),
        // signed an hour ago: stale for the library and for us (both given a 300 s window)
        json!({"op": "sign", "provider": "paddle", "body": paddle_body, "timestamp": now_secs - 3600,
               "secret": paddle_secret}),
    ];
    let signed = run_interop_script("declared.py", &cases);
    assert_eq!(signed.len(), cases.len());

    // AND the tampered variants: one body byte, the signed timestamp (Square signs none, so the
    // notification URL it signs instead), and the stale Paddle request
    let flip = |body: &str| {
        let mut bytes = body.as_bytes().to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        String::from_utf8(bytes).expect("ascii")
    };
    let ts = (now_secs + 1).to_string();
    // (label, provider, request, body, url, authentic)
    let mut requests: Vec<(String, &str, Value, String, String, bool)> = Vec::new();
    for (request, provider) in signed
        .iter()
        .take(4)
        .zip(["discord", "sendgrid", "square", "paddle"])
    {
        assert_eq!(request["provider"], provider, "{request}");
        let body = request["body"].as_str().expect("body").to_owned();
        requests.push((
            format!("{provider} as signed"),
            provider,
            request.clone(),
            body.clone(),
            square_url.clone(),
            true,
        ));
        requests.push((
            format!("{provider} one body byte changed"),
            provider,
            request.clone(),
            flip(&body),
            square_url.clone(),
            false,
        ));
        let other_time = match provider {
            "discord" => Some(with_header(request, "X-Signature-Timestamp", &ts)),
            "sendgrid" => Some(with_header(
                request,
                "X-Twilio-Email-Event-Webhook-Timestamp",
                &ts,
            )),
            "paddle" => {
                let header = request["headers"][0][1].as_str().expect("Paddle-Signature");
                let h1 = header.split_once(";h1=").expect("ts=..;h1=..").1;
                Some(with_header(
                    request,
                    "Paddle-Signature",
                    &format!("ts={ts};h1={h1}"),
                ))
            }
            _ => None,
        };
        match other_time {
            Some(changed) => requests.push((
                format!("{provider} another timestamp"),
                provider,
                changed,
                body,
                square_url.clone(),
                false,
            )),
            None => requests.push((
                format!("{provider} another notification URL"),
                provider,
                request.clone(),
                body,
                other_url.clone(),
                false,
            )),
        }
    }
    let stale = &signed[4];
    requests.push((
        "paddle signed an hour ago".into(),
        "paddle",
        stale.clone(),
        stale["body"].as_str().expect("body").to_owned(),
        square_url.clone(),
        false,
    ));

    // WHEN each library judges each request
    let verdict_cases: Vec<Value> = requests
        .iter()
        .map(|(_, provider, request, body, url, _)| {
            json!({"op": "verify", "provider": provider, "secret": request["secret"],
                   "headers": request["headers"], "body": body, "url": url})
        })
        .collect();
    let verdicts = run_interop_script("declared.py", &verdict_cases);
    assert_eq!(verdicts.len(), requests.len());

    // THEN the library accepts exactly the authentic requests, and so do we
    let mut disagreements = Vec::new();
    for ((label, provider, request, body, url, authentic), theirs) in requests.iter().zip(&verdicts)
    {
        if theirs["valid"] != *authentic {
            disagreements.push(format!("{label}: the official library says {theirs}"));
        }
        match (our_verdict(provider, request, body, url, now), authentic) {
            (Ok(()), false) => disagreements.push(format!("{label}: we accepted it")),
            (Err(why), true) => disagreements.push(format!("{label}: we refused it ({why})")),
            _ => {}
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

const GITHUB_SECRET: &str = "interop-github-webhook-secret-0123456789";
const OTHER_GITHUB_SECRET: &str = "interop-github-another-secret-9876543210";
const OCTOKIT: &str = "@octokit/webhooks-methods";

/// GitHub's library, `@octokit/webhooks-methods`, on `cases` (`sign` or `verify`, one each).
fn octokit(cases: &[Value]) -> Vec<Value> {
    let answers = run_node_interop_script("github.js", OCTOKIT, cases);
    assert_eq!(
        answers.len(),
        cases.len(),
        "one answer per case: {answers:?}"
    );
    answers
}

/// The signature in one of octokit's `sign` answers.
fn octokit_signature(answer: &Value) -> String {
    answer["signature"]
        .as_str()
        .unwrap_or_else(|| panic!("octokit did not sign: {answer}"))
        .to_owned()
}

/// What this project's GitHub verifier says of `body` delivered with `signature`.
fn our_github_verdict(
    body: &str,
    signature: &str,
) -> Result<shared::verify::Verified, shared::verify::VerifyError> {
    use shared::{
        secret::SecretSet,
        verify::{Scheme, Verifier},
    };

    let headers = http::HeaderMap::from_iter([
        (
            http::HeaderName::from_static("x-hub-signature-256"),
            http::HeaderValue::from_str(signature).expect("header value"),
        ),
        (
            http::HeaderName::from_static("x-github-delivery"),
            http::HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ),
        (
            http::HeaderName::from_static("x-github-event"),
            http::HeaderValue::from_static("push"),
        ),
    ]);
    Verifier::new(Scheme::GitHub).verify(
        body.as_bytes(),
        &headers,
        &SecretSet::single(Secret::new(GITHUB_SECRET)),
        at(NOW),
    )
}

#[test]
fn github_signatures_agree_with_octokit() {
    use shared::verify::Scheme;

    // GIVEN bodies as GitHub sends them: ASCII JSON, UTF-8 with an emoji and other non-ASCII
    // text, and one ending in a newline
    let bodies: Vec<(&str, String)> = vec![
        (
            "ascii json",
            json!({"zen": "Design for failure.", "hook_id": 123_456,
                   "repository": {"full_name": "acme/widgets"}, "sender": {"login": "octocat"}})
            .to_string(),
        ),
        (
            "utf-8 with emoji",
            json!({"action": "created", "comment": {"body": "Ship it 🚀 — déjà vu, 日本語 ✅"},
                   "sender": {"login": "octocat"}})
            .to_string(),
        ),
        (
            "trailing newline",
            format!(
                "{}\n",
                json!({"ref": "refs/heads/main", "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"})
            ),
        ),
    ];

    // WHEN octokit signs each body, and signs the first with another secret
    let mut sign_cases: Vec<Value> = bodies
        .iter()
        .map(|(_, body)| json!({"op": "sign", "secret": GITHUB_SECRET, "body": body}))
        .collect();
    sign_cases.push(json!({"op": "sign", "secret": OTHER_GITHUB_SECRET, "body": bodies[0].1}));
    let signed = octokit(&sign_cases);
    let other_secrets_signature = octokit_signature(&signed[bodies.len()]);

    // (label, body, signature, authentic)
    let mut requests: Vec<(String, String, String, bool)> = Vec::new();
    for ((name, body), answer) in bodies.iter().zip(&signed) {
        let signature = octokit_signature(answer);
        let hex = signature
            .strip_prefix("sha256=")
            .unwrap_or_else(|| panic!("{name}: octokit signed {signature}"));
        assert_eq!(hex.len(), 64, "{name}: {signature}");

        // THEN this project signs each body exactly as octokit does
        let ours = Scheme::GitHub
            .sign(body.as_bytes(), &Secret::new(GITHUB_SECRET), at(NOW), "id")
            .expect("sign");
        let our_signature = ours
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case("x-hub-signature-256"))
            .map(|(_, value)| value.clone())
            .expect("x-hub-signature-256");
        assert_eq!(our_signature, signature, "{name}: our signature");

        // AND our verifier accepts octokit's signature, with GitHub's delivery and event
        let verified = our_github_verdict(body, &signature)
            .unwrap_or_else(|e| panic!("{name}: we refused octokit's signature: {e}"));
        assert_eq!(
            verified.event_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "{name}"
        );
        assert_eq!(verified.event_type.as_deref(), Some("push"), "{name}");

        // the tampered variants, built from the genuine signature
        let mut tampered = body.as_bytes().to_vec();
        let at_byte = (tampered.len() / 2..tampered.len())
            .find(|&i| tampered[i].is_ascii_alphanumeric())
            .expect("an ASCII letter or digit in the second half");
        tampered[at_byte] ^= 0x01;
        let tampered = String::from_utf8(tampered).expect("still utf-8");
        requests.extend([
            (
                format!("{name}: as signed by octokit"),
                body.clone(),
                signature.clone(),
                true,
            ),
            (
                format!("{name}: as signed by us"),
                body.clone(),
                our_signature,
                true,
            ),
            (
                format!("{name}: one body byte changed"),
                tampered,
                signature.clone(),
                false,
            ),
            (
                format!("{name}: uppercase hex"),
                body.clone(),
                format!("sha256={}", hex.to_uppercase()),
                false,
            ),
            (
                format!("{name}: sha1= prefix"),
                body.clone(),
                format!("sha1={hex}"),
                false,
            ),
            (
                format!("{name}: truncated signature"),
                body.clone(),
                signature[..signature.len() - 2].to_owned(),
                false,
            ),
        ]);
    }
    requests.push((
        "ascii json: signed with another secret".into(),
        bodies[0].1.clone(),
        other_secrets_signature,
        false,
    ));

    // AND octokit's verify judges every request
    let verdict_cases: Vec<Value> = requests
        .iter()
        .map(|(_, body, signature, _)| {
            json!({"op": "verify", "secret": GITHUB_SECRET, "body": body, "signature": signature})
        })
        .collect();
    let verdicts = octokit(&verdict_cases);

    // THEN octokit and our verifier both accept exactly the authentic requests
    let mut disagreements = Vec::new();
    for ((label, body, signature, authentic), theirs) in requests.iter().zip(&verdicts) {
        if theirs["valid"] != *authentic {
            disagreements.push(format!("{label}: octokit says {theirs}"));
        }
        match (our_github_verdict(body, signature), authentic) {
            (Ok(_), false) => disagreements.push(format!("{label}: we accepted it")),
            (Err(e), true) => disagreements.push(format!("{label}: we refused it ({e})")),
            _ => {}
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Braintree signs inside the form, with the SHA-1 of the private key as the HMAC key: the
/// library's own sample notifications verify here, tampered ones are refused by both, and the
/// destination challenge is answered exactly as the library answers it.
#[tokio::test]
async fn braintree_notifications_and_challenges_agree_with_braintree_s_library() {
    use shared::verify::{Scheme, Verifier, braintree};
    const PUBLIC: &str = "interop_public_key";
    const PRIVATE: &str = "interop_private_key_0123";
    let secret = format!("{PUBLIC}:{PRIVATE}");
    let keys = json!({"public_key": PUBLIC, "private_key": PRIVATE});
    let with = |extra: Value| {
        let mut case = keys.clone();
        case.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        case
    };
    let samples = run_interop_script(
        "braintree_lib.py",
        &[
            with(
                json!({"op": "sample", "kind": "subscription_charged_successfully", "id": "sub_1"}),
            ),
            with(json!({"op": "sample", "kind": "dispute_opened", "id": "dp_1"})),
        ],
    );
    let verifier = Verifier::new(Scheme::Braintree);
    let secrets = shared::secret::SecretSet::single(Secret::new(&secret));
    let none = http::HeaderMap::new();
    // Form encoding, as Braintree posts it: everything but unreserved characters escaped.
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let form = |signature: &str, payload: &str| {
        format!(
            "bt_signature={}&bt_payload={}",
            encode(signature),
            encode(payload)
        )
    };
    let mut verdicts = Vec::new();
    for (sample, kind) in samples
        .iter()
        .zip(["subscription_charged_successfully", "dispute_opened"])
    {
        let (signature, payload) = (
            sample["bt_signature"].as_str().expect("signature"),
            sample["bt_payload"].as_str().expect("payload"),
        );
        // Signed by the library: accepted, and its kind read from the XML.
        let body = form(signature, payload);
        verifier
            .verify(body.as_bytes(), &none, &secrets, SystemTime::now())
            .expect("the library's notification verifies");
        let meta = shared::extract::extract(Provider::Braintree, &none, body.as_bytes(), None)
            .expect("meta");
        assert_eq!(meta.event_type.as_deref(), Some(kind));
        // Tampered: the payload's first character changed, or another key's signature.
        let tampered_payload = format!(
            "{}{}",
            if payload.starts_with('P') { "Q" } else { "P" },
            &payload[1..]
        );
        let foreign = signature.replace(PUBLIC, "someone_else");
        for (sig, pay) in [
            (signature, tampered_payload.as_str()),
            (foreign.as_str(), payload),
        ] {
            let ours = verifier
                .verify(
                    form(sig, pay).as_bytes(),
                    &none,
                    &secrets,
                    SystemTime::now(),
                )
                .is_ok();
            verdicts.push((
                ours,
                with(json!({"op": "parse", "bt_signature": sig, "bt_payload": pay})),
            ));
        }
    }
    // This project's signer, judged by the library.
    let xml = br#"<notification><timestamp type="datetime">2023-11-14T22:13:20Z</timestamp><kind>check</kind><subject><check type="boolean">true</check></subject></notification>"#;
    let ours = braintree::sign(xml, &Secret::new(&secret)).expect("sign");
    let (signature, payload) = braintree::fields(&ours).expect("fields");
    verdicts.push((
        true,
        with(json!({"op": "parse", "bt_signature": signature, "bt_payload": payload})),
    ));

    let cases: Vec<Value> = verdicts.iter().map(|(_, case)| case.clone()).collect();
    let theirs = run_interop_script("braintree_lib.py", &cases);
    for ((ours, case), theirs) in verdicts.iter().zip(&theirs) {
        assert_eq!(Some(*ours), theirs["valid"].as_bool(), "{case}");
    }

    // The destination challenge: the same answer as the library's.
    let challenge = "20f9f8ed05f77439fe955c977e4c8a53";
    let theirs = run_interop_script(
        "braintree_lib.py",
        &[with(json!({"op": "challenge", "challenge": challenge}))],
    );
    assert_eq!(
        braintree::challenge(&Secret::new(&secret), challenge).expect("answer"),
        theirs[0]["answer"].as_str().expect("answer")
    );
}
