//! Interoperability with the providers' own code: requests signed by their official libraries
//! (PyPI `stripe`, `svix`, `standardwebhooks`, `slack_sdk`, `twilio`, in the virtualenv `make
//! test` installs) are accepted by the deployed ingress handler, and the same requests with one
//! byte changed are refused. None of these signatures comes from this project's signers.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use shared::{
    clock::ManualClock,
    ids::TenantId,
    ingress::{Ingress, IngressSettings},
    memory::{MemoryDirectory, MemoryEventStore, MemoryQueue},
    provider::Provider,
    secret::Secret,
    tenant::ProviderConfig,
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/sign.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the interop signer ({e}): run `make test`"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for case in cases {
            writeln!(stdin, "{case}").expect("write a case");
        }
    }
    let output = child.wait_with_output().expect("the signer ran");
    assert!(
        output.status.success(),
        "the official signers failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a signed request"))
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
