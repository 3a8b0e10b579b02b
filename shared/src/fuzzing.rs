//! The fuzz targets' bodies: every parser that reads a sender's or an operator's bytes, driven
//! from arbitrary input. `fuzz/` runs them under libFuzzer (`make fuzz`); the unit test below
//! runs every input kept in `fuzz/regressions/<target>/` (a crash found once stays a test) and
//! the sample payloads through each, in `make test`. The only property checked is the one a
//! fuzzer can check: no input panics, overflows or loops (an error is a fine answer).

use std::time::{Duration, UNIX_EPOCH};

use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    clock::ManualClock,
    extract::extract,
    memory::{MemoryDeadLetterQueue, MemoryDirectory, MemoryEventStore, MemoryQueue},
    message::QueueMessage,
    operations::Operations,
    outbound::actions::OutboundAction,
    processor::messages,
    provider::Provider,
    secret::{Secret, SecretSet},
    verify::{PublicKeys, RequestUrl, VerifyContext},
};

/// Every header a scheme or an extraction reads.
const HEADERS: [&str; 27] = [
    "stripe-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "x-github-delivery",
    "x-github-event",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-shopify-topic",
    "x-webhook-signature",
    "x-webhook-timestamp",
    "x-webhook-id",
    "x-twilio-signature",
    "x-circle-signature",
    "x-circle-key-id",
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "content-type",
    "x-request-id",
];

/// Headers and body from one input: the text before the first NUL gives header values, one
/// per line, dealt to [`HEADERS`] in turn; the rest is the body.
fn request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in HEADERS.iter().zip(head.split(|b| *b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    (headers, body)
}

/// Every provider under the fuzzer; a representative of each declared shape in the unit tests,
/// which run the targets on many inputs in a debug build.
fn providers() -> Box<dyn Iterator<Item = Provider>> {
    if cfg!(test) {
        Box::new(Provider::representatives())
    } else {
        Box::new(Provider::all())
    }
}

/// Every provider's signature check on arbitrary headers and body.
pub fn signature_headers(data: &[u8]) {
    let (headers, body) = request(data);
    let secrets = SecretSet::single(Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let url = RequestUrl::parse("https://hooks.example.com/webhooks/acme/twilio?a=1").ok();
    let keys = PublicKeys::default();
    let context = VerifyContext {
        url: url.as_ref(),
        public_keys: Some(&keys),
        paypal: None,
        google: None,
    };
    for provider in providers() {
        let config = crate::tenant::ProviderConfig::new(
            crate::ids::TenantId::parse("acme").expect("a valid tenant"),
            provider,
            secrets.current.clone(),
        );
        let _ = config
            .verifier()
            .verify_with(body, &headers, &secrets, &context, now);
    }
}

/// Every provider's event extraction (ids, types, times) on arbitrary headers and body.
pub fn event_extraction(data: &[u8]) {
    let (headers, body) = request(data);
    for provider in providers() {
        let _ = extract(provider, &headers, body, None);
    }
}

/// The processor's reading of an SQS batch and of each pointer message.
pub fn queue_message(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(message) = QueueMessage::parse(text)
    {
        let _ = message.key();
    }
    if let Ok(event) = serde_json::from_slice(data) {
        let _ = messages(&event);
    }
}

/// The replay function's console events, parsed and run against empty in-memory stores (an
/// operator's typo must be an `{"error"}` summary).
pub fn console_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = serde_json::from_value::<OutboundAction>(event.clone());
    let operations = Operations::new(
        MemoryEventStore::new(),
        MemoryQueue::new(),
        MemoryDeadLetterQueue::new(),
        MemoryDirectory::new(),
        ManualClock::at_unix(1_750_000_000),
    )
    .with_metrics(crate::metrics::CapturedMetrics::new());
    // The memory adapters never wait: the future is ready on its first poll.
    let _ = operations.run_json(event).now_or_never();
}

/// A public key in Google's JWKS form (2048-bit, made for this target; its private half was
/// discarded): tokens naming `fuzz` reach the signature check.
const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":"fuzz","e":"AQAB","n":"nEajkLazsnEAVCHHq4OT0TRw-yseGiPhfOLmtttpZdT22U5NvDSzs51iBu4LR2riUkP5XV0diBYLeQBKkbc7Kj4BBZWvvIqpzyrHIfleAoHVxo-UUZVo8avPFFptILlmxxOu9OlxJHDPoWsljgOm3QOdM9aRMCRPd5-PglSJ66xLD5YEB0HI_Jot4ZqY4ohxBECHPNg4H1vw6SYBoal4CE9xLJ_yLmaWKCiZ8r6QAz96cyWcciZ34ikPVWJcd34OzIzOhb5XttfcoSsr0NugLoLH5EAnc9k_MNinGfvVDbXgEJMM_ee5DOJX_u5uyQO2aT-lSTQJXqnGKKpyT6UGPw"}]}"#;

/// Google's OIDC bearer tokens: the input (as text) through the JWT parser and the claim rules
/// unsigned, then as the token of `Authorization: Bearer` and as the whole header value through
/// the full check against a published key.
pub fn google_oidc_token(data: &[u8]) {
    use std::sync::Arc;

    use crate::verify::google_oidc::{self, GoogleKeys, GoogleOidcExpectation, StaticJwks};

    let text = String::from_utf8_lossy(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let expect = GoogleOidcExpectation::new(
        "https://hooks.example.com/webhooks/acme/pubsub",
        "pubsub-push@acme-prod.iam.gserviceaccount.com",
    );
    google_oidc::unsigned_stages(&text, &expect, now);
    let keys = GoogleKeys::new(Arc::new(StaticJwks::new(FUZZ_JWKS, None)));
    for value in [format!("Bearer {text}"), text.into_owned()] {
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        // The in-memory key source never waits: the future is ready on its first poll.
        let _ = google_oidc::verify(&headers, &expect, &keys, now).now_or_never();
    }
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/` and `fuzz/regressions/` name them.
pub const TARGETS: [(&str, Target); 5] = [
    ("signature_headers", signature_headers),
    ("event_extraction", event_extraction),
    ("queue_message", queue_message),
    ("console_event", console_event),
    ("google_oidc_token", google_oidc_token),
];

/// Structured hostile input for the property tests: JSON rather than random bytes, so the
/// parsers get past their first `{` and meet the numbers and shapes that break naive code.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;
    use serde_json::Value;

    /// JSON values that break naive code: extreme numbers, huge strings, deep nesting.
    pub fn hostile_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![
                Just(u64::MAX),
                Just(u64::MAX - 1),
                Just(i64::MAX as u64),
                Just(253_402_300_800),
                any::<u64>(),
            ]
            .prop_map(Value::from),
            prop_oneof![Just(i64::MIN), Just(-1i64), any::<i64>()].prop_map(Value::from),
            prop_oneof![
                Just(f64::MAX),
                Just(f64::MIN_POSITIVE),
                Just(-0.0),
                any::<f64>()
            ]
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[ -~]{0,40}".prop_map(Value::String),
            Just(Value::String("x".repeat(100_000))),
        ];
        leaf.prop_recursive(8, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An event body whose well-known fields (ids, types, every time field a provider uses)
    /// hold hostile values.
    pub fn hostile_event() -> impl Strategy<Value = Vec<u8>> {
        let fields = [
            "id",
            "type",
            "created",
            "timestamp",
            "created_at",
            "event_time",
            "event_id",
            "event",
        ];
        proptest::collection::vec(hostile_value(), fields.len()).prop_map(move |values| {
            let object: serde_json::Map<String, Value> =
                fields.iter().map(|f| (*f).to_owned()).zip(values).collect();
            serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::*;

    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(self::files(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    #[test]
    fn every_kept_crash_input_and_every_sample_runs_through_every_target() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let samples = files(&root.join("events"));
        assert!(samples.len() > 20, "the samples are found");
        let mut regressions = 0;
        for (name, target) in TARGETS {
            for path in files(&root.join("fuzz/regressions").join(name)) {
                target(&fs::read(&path).expect("readable"));
                regressions += 1;
            }
            for path in &samples {
                target(&fs::read(path).expect("readable"));
            }
        }
        assert!(regressions >= TARGETS.len(), "the kept inputs are found");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Hostile JSON as a body (with its numbers as header values too), as a console event
        /// and as a queue message: every target answers, none panics.
        #[test]
        fn hostile_json_runs_through_every_target(
            body in strategies::hostile_event(),
            value in strategies::hostile_value(),
        ) {
            let rendered = serde_json::to_string(&value).unwrap_or_default();
            let head = HEADERS.iter().map(|_| rendered.replace(['\n', '\r', '\0'], " ")).collect::<Vec<_>>().join("\n");
            let mut input = head.into_bytes();
            input.push(0);
            input.extend_from_slice(&body);
            for (_, target) in TARGETS {
                target(&input);
                target(&body);
            }
            let action = serde_json::json!({"action": "redrive", "limit": value.clone(), "tenant": value.clone()});
            console_event(action.to_string().as_bytes());
            let pointer = serde_json::json!({"tenant": value.clone(), "provider": "stripe", "event_id": value});
            queue_message(pointer.to_string().as_bytes());
        }
    }

    #[test]
    fn the_headers_of_an_input_are_dealt_in_order() {
        let (headers, body) = request(b"t=1,v1=ab\nmsg_1\0{\"id\":1}");
        assert_eq!(headers["stripe-signature"], "t=1,v1=ab");
        assert_eq!(headers["svix-id"], "msg_1");
        assert_eq!(body, b"{\"id\":1}");
    }
}
