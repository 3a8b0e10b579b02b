//! Published test vectors: requests the providers themselves (their documentation, or their
//! official SDKs' own tests) say are validly signed, or must be refused. None of these was
//! produced by this project's signers; each row names where it comes from, so a failure here
//! means our reading of a provider differs from the provider's own.
//!
//! Rows per provider:
//! - coinbase-commerce: 1 valid, 1 refused
//! - hubspot: 1 valid, 0 refused
//! - mux: 4 valid, 2 refused
//! - openai: 1 valid, 1 refused
//! - paddle: 3 valid, 2 refused
//! - razorpay: 1 valid, 1 refused
//! - replicate: 1 valid, 1 refused
//! - sendgrid: 1 valid, 4 refused
//! - square: 2 valid, 4 refused
//! - workos: 2 valid, 1 refused
//!
//! `now_unix` is the vector's own signed time (or, where nothing is signed but time, any time),
//! so a replay window passes; a row that is refused only for its age says so. Every valid row is
//! also checked with one body byte changed, which must be refused.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    provider::Provider,
    secret::{Secret, SecretSet},
    verify::{RequestUrl, Verifier, VerifyContext},
};

/// One request, as the provider documents it.
#[derive(Debug)]
struct Vector {
    /// The route name (`/webhooks/{tenant}/{provider}`).
    provider: &'static str,
    /// Where the vector is published: a URL, or a repository path at a commit.
    source: &'static str,
    /// The secret (or public key) exactly as the provider shows it to the tenant.
    secret: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    /// The URL the provider requested, for schemes that sign it.
    url: Option<&'static str>,
    now_unix: u64,
    /// Whether the provider says the request is authentic.
    valid: bool,
}

/// The replay window the vectors are checked with: every provider's documented window is at
/// least this wide, and `now_unix` is the signed time itself.
const TOLERANCE: Duration = Duration::from_secs(300);

const VECTORS: &[Vector] = &[
    Vector {
        provider: "paddle",
        source: "https://github.com/PaddleHQ/paddle-python-sdk/blob/48c8cc04ecd5eb87b1861731bc56f7ec1abfe284/tests/Unit/Notification/test_Verifier.py (test_validate_payload_body_integrity, _fixtures/standard_payload.json, stripped)",
        secret: "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I",
        headers: &[(
            "Paddle-Signature",
            "ts=1710498758;h1=558bf93944dbeb4790c7a8af6cb2ea435c8ca9c8396aafc1a4e37424ac132744",
        )],
        body: r#"{"data":{"id":"ctm_01hs0tqf76sxmp7ba5e4mw1sc8","name":"John Doe","email":"blackhole+verification2@paddle.com","locale":"en","status":"active","created_at":"2024-03-15T10:32:37.862Z","updated_at":"2024-03-15T10:32:37.862Z","custom_data":null,"import_meta":null,"marketing_consent":false},"event_id":"evt_01hs0tqfme2xwb2hvwv87p8y3w","event_type":"customer.created","occurred_at":"2024-03-15T10:32:38.286848Z","notification_id":"ntf_01hs0tqfrhgkyp39x4wyvy7h6n"}"#,
        url: None,
        now_unix: 1710498758,
        valid: true,
    },
    Vector {
        provider: "paddle",
        source: "https://github.com/PaddleHQ/paddle-python-sdk/blob/48c8cc04ecd5eb87b1861731bc56f7ec1abfe284/tests/Unit/Notification/test_Verifier.py (test_validate_payload_body_integrity, _fixtures/special_payload.json, stripped)",
        secret: "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I",
        headers: &[(
            "Paddle-Signature",
            "ts=1710498288;h1=38219b3ba1578184e625c29d201a27cd25bd69e2ec9c3ab87dcb90d87ff73a41",
        )],
        body: "{\"data\":{\"id\":\"ctm_01hs0t94g83hs5jdw282ztqa4z\",\"name\":\"\\u00dc\\u00c4\\u00c5\\u00e5\\u00d6\\u00dc\\u00c4\\u00c5\\u00e5\\u00d6\",\"email\":\"blackhole+verification1@paddle.com\",\"locale\":\"en\",\"status\":\"active\",\"created_at\":\"2024-03-15T10:24:48.136Z\",\"updated_at\":\"2024-03-15T10:24:48.136Z\",\"custom_data\":null,\"import_meta\":null,\"marketing_consent\":false},\"event_id\":\"evt_01hs0t94tjvtv62azjmkbeysz7\",\"event_type\":\"customer.created\",\"occurred_at\":\"2024-03-15T10:24:48.466759Z\",\"notification_id\":\"ntf_01hs0t94ws0ay8keh5t4rq70ht\"}",
        url: None,
        now_unix: 1710498288,
        valid: true,
    },
    Vector {
        // The SDK's own header carries a first `h1=dummy`; the SDK skips it and accepts the second.
        provider: "paddle",
        source: "https://github.com/PaddleHQ/paddle-python-sdk/blob/48c8cc04ecd5eb87b1861731bc56f7ec1abfe284/tests/Unit/Notification/test_Verifier.py (test_validate_paddle_signature_header_integrity: the third secret passes)",
        secret: "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
        headers: &[(
            "Paddle-Signature",
            "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02",
        )],
        body: "hello-world",
        url: None,
        now_unix: 1696195954,
        valid: true,
    },
    Vector {
        provider: "paddle",
        source: r#"https://github.com/PaddleHQ/paddle-python-sdk/blob/48c8cc04ecd5eb87b1861731bc56f7ec1abfe284/tests/Unit/Notification/test_Verifier.py (test_validate_paddle_signature_header_integrity: "should fail" secret)"#,
        secret: "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
        headers: &[(
            "Paddle-Signature",
            "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02",
        )],
        body: "hello-world",
        url: None,
        now_unix: 1696195954,
        valid: false,
    },
    Vector {
        provider: "paddle",
        source: r#"https://github.com/PaddleHQ/paddle-python-sdk/blob/48c8cc04ecd5eb87b1861731bc56f7ec1abfe284/tests/Unit/Notification/test_Verifier.py (test_validate_paddle_signature_header_integrity: "should fail" secret)"#,
        secret: "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
        headers: &[(
            "Paddle-Signature",
            "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02",
        )],
        body: "hello-world",
        url: None,
        now_unix: 1696195954,
        valid: false,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/tests/integration/test_webhooks_helper.py (test_signature_validation_pass)",
        secret: "Ibxx_5AKakO-3qeNVR61Dw",
        headers: &[(
            "x-square-hmacsha256-signature",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        )],
        body: r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#,
        url: Some("https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        now_unix: 1657744259,
        valid: true,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/tests/integration/test_webhooks_helper.py (test_signature_validation_escaped_pass)",
        secret: "signature-key",
        headers: &[(
            "x-square-hmacsha256-signature",
            "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=",
        )],
        body: r#"{"data":{"type":"webhooks","id":">id<"}}"#,
        url: Some("https://webhook.site/webhooks"),
        now_unix: 1657744259,
        valid: true,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/tests/integration/test_webhooks_helper.py (test_signature_validation_url_mismatch)",
        secret: "Ibxx_5AKakO-3qeNVR61Dw",
        headers: &[(
            "x-square-hmacsha256-signature",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        )],
        body: r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#,
        url: Some("https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        now_unix: 1657744259,
        valid: false,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/tests/integration/test_webhooks_helper.py (test_signature_validation_invalid_signature_key)",
        secret: "MCmhFRxGX82xMwg5FsaoQA",
        headers: &[(
            "x-square-hmacsha256-signature",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        )],
        body: r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#,
        url: Some("https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        now_unix: 1657744259,
        valid: false,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/tests/integration/test_webhooks_helper.py (test_signature_validation_invalid_signature_header)",
        secret: "Ibxx_5AKakO-3qeNVR61Dw",
        headers: &[(
            "x-square-hmacsha256-signature",
            "1z2n3DEJJiUPKcPzQo1ftvbxGdw=",
        )],
        body: r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#,
        url: Some("https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        now_unix: 1657744259,
        valid: false,
    },
    Vector {
        provider: "square",
        source: "https://github.com/square/square-python-sdk/blob/24302bac57d9227c905e9d14e83c1d39b27aece0/legacy/tests/utilities/test_webhooks_helper.py (test_signature_validation_body_mismatch)",
        secret: "Ibxx_5AKakO-3qeNVR61Dw",
        headers: &[(
            "x-square-hmacsha256-signature",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        )],
        body: r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-06-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#,
        url: Some("https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        now_unix: 1657744259,
        valid: false,
    },
    Vector {
        provider: "sendgrid",
        source: "https://github.com/sendgrid/sendgrid-python/blob/76788e70a76b11ce2990821f190e52f887ab9ed6/test/unit/test_eventwebhook.py (test_verify_valid_signature)",
        secret: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        headers: &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "1600112502"),
        ],
        body: "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n",
        url: None,
        now_unix: 1600112502,
        valid: true,
    },
    Vector {
        provider: "sendgrid",
        source: "https://github.com/sendgrid/sendgrid-python/blob/76788e70a76b11ce2990821f190e52f887ab9ed6/test/unit/test_eventwebhook.py (test_verify_bad_key)",
        secret: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==",
        headers: &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "1600112502"),
        ],
        body: "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n",
        url: None,
        now_unix: 1600112502,
        valid: false,
    },
    Vector {
        provider: "sendgrid",
        source: "https://github.com/sendgrid/sendgrid-python/blob/76788e70a76b11ce2990821f190e52f887ab9ed6/test/unit/test_eventwebhook.py (test_verify_bad_payload)",
        secret: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        headers: &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "1600112502"),
        ],
        body: "payload",
        url: None,
        now_unix: 1600112502,
        valid: false,
    },
    Vector {
        provider: "sendgrid",
        source: "https://github.com/sendgrid/sendgrid-python/blob/76788e70a76b11ce2990821f190e52f887ab9ed6/test/unit/test_eventwebhook.py (test_verify_bad_signature)",
        secret: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        headers: &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "1600112502"),
        ],
        body: "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n",
        url: None,
        now_unix: 1600112502,
        valid: false,
    },
    Vector {
        provider: "sendgrid",
        source: "https://github.com/sendgrid/sendgrid-python/blob/76788e70a76b11ce2990821f190e52f887ab9ed6/test/unit/test_eventwebhook.py (test_verify_bad_timestamp)",
        secret: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        headers: &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "timestamp"),
        ],
        body: "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n",
        url: None,
        now_unix: 1600112502,
        valid: false,
    },
    Vector {
        provider: "hubspot",
        source: "https://github.com/HubSpot/hubspot-api-python/blob/a2a528a97f4c1131d7f65d0303bfbd2e523a8eba/tests/spec/utils/test_signature.py (test_get_signature__v3)",
        secret: "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        headers: &[
            (
                "X-HubSpot-Signature-v3",
                "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
            ),
            ("X-HubSpot-Request-Timestamp", "1693657560000"),
        ],
        body: "{'example_field':'example_value'}",
        url: Some("https://www.example.com/webhook_uri"),
        now_unix: 1693657560,
        valid: true,
    },
    Vector {
        provider: "openai",
        source: "https://github.com/openai/openai-python/blob/e43b422412a9e96c9cc5192c61fffbe2d7e04836/tests/lib/test_webhooks.py (test_verify_signature_valid)",
        secret: "whsec_RdvaYFYUXuIFuEbvZHwMfYFhUf7aMYjYcmM24+Aj40c=",
        headers: &[
            ("webhook-id", "wh_685c059ae39c8190af8c71ed1022a24d"),
            ("webhook-timestamp", "1750861210"),
            (
                "webhook-signature",
                "v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY=",
            ),
        ],
        body: r#"{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}"#,
        url: None,
        now_unix: 1750861210,
        valid: true,
    },
    Vector {
        provider: "openai",
        source: r#"https://github.com/openai/openai-python/blob/e43b422412a9e96c9cc5192c61fffbe2d7e04836/tests/lib/test_webhooks.py (test_verify_signature_invalid: secret "invalid_secret")"#,
        secret: "invalid_secret",
        headers: &[
            ("webhook-id", "wh_685c059ae39c8190af8c71ed1022a24d"),
            ("webhook-timestamp", "1750861210"),
            (
                "webhook-signature",
                "v1,gUAg4R2hWouRZqRQG4uJypNS8YK885G838+EHb4nKBY=",
            ),
        ],
        body: r#"{"id": "evt_685c059ae3a481909bdc86819b066fb6", "object": "event", "created_at": 1750861210, "type": "response.completed", "data": {"id": "resp_123"}}"#,
        url: None,
        now_unix: 1750861210,
        valid: false,
    },
    Vector {
        provider: "replicate",
        source: "https://github.com/replicate/replicate-python/blob/0110c2c5639763a44e73d69011eaec28a15334f7/tests/test_webhooks.py (test_get_webhook_secret)",
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        headers: &[
            ("Webhook-ID", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("Webhook-Timestamp", "1614265330"),
            (
                "Webhook-Signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ],
        body: r#"{"test": 2432232314}"#,
        url: None,
        now_unix: 1614265330,
        valid: true,
    },
    Vector {
        provider: "replicate",
        source: "https://github.com/replicate/replicate-python/blob/0110c2c5639763a44e73d69011eaec28a15334f7/tests/test_webhooks.py (test_validate_webhook_invalid_signature)",
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        headers: &[
            ("Webhook-ID", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("Webhook-Timestamp", "1614265330"),
            ("Webhook-Signature", "v1,invalid_signature"),
        ],
        body: r#"{"test": 2432232314}"#,
        url: None,
        now_unix: 1614265330,
        valid: false,
    },
    Vector {
        provider: "workos",
        source: "https://github.com/workos/workos-python/blob/f57e7cca9b9d7f733429160af96841d7f64be862/tests/test_webhooks.py (mock_event_body, mock_header, mock_secret)",
        secret: "2sAZJlbjP8Ce3rwkKEv2GfKef",
        headers: &[(
            "WorkOS-Signature",
            "t=1722443701539, v1=bd54a3768f461461c8439c2f97ab0d646ef3976f84d5d5b132d18f2fa89cdad5",
        )],
        body: r#"{"id":"event_01J44T8116Q5M0RYCFA6KWNXN9","data":{"id":"conn_01EHWNC0FCBHZ3BJ7EGKYXK0E6","name":"Foo Corp's Connection","state":"active","object":"connection","status":"linked","domains":[{"id":"conn_domain_01EHWNFTAFCF3CQAE5A9Q0P1YB","domain":"foo-corp.com","object":"connection_domain"}],"created_at":"2021-06-25T19:07:33.155Z","updated_at":"2021-06-25T19:07:33.155Z","external_key":"3QMR4u0Tok6SgwY2AWG6u6mkQ","connection_type":"OktaSAML","organization_id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"},"event":"connection.activated","created_at":"2021-06-25T19:07:33.155Z"}"#,
        url: None,
        now_unix: 1722443701,
        valid: true,
    },
    Vector {
        provider: "workos",
        source: "https://github.com/workos/workos-python/blob/f57e7cca9b9d7f733429160af96841d7f64be862/tests/test_webhooks.py (mock_unknown_webhook_body, mock_unknown_webhook_header)",
        secret: "2sAZJlbjP8Ce3rwkKEv2GfKef",
        headers: &[(
            "WorkOS-Signature",
            "t=1722443701539, v1=f82f88dd60d5bc8a803686a27f83ce148b8c37c54490c52b77d00d62da891f1b",
        )],
        body: r#"{"id":"event_01J44T8116Q5M0RYCFA6KWNXN9","data":{"id":"meow_123","name":"Meow Corp","object":"kitten","status":"cuteness","created_at":"2021-06-25T19:07:33.155Z","updated_at":"2021-06-25T19:07:33.155Z"},"event":"kitten.created","created_at":"2021-06-25T19:07:33.155Z"}"#,
        url: None,
        now_unix: 1722443701,
        valid: true,
    },
    Vector {
        provider: "workos",
        source: "https://github.com/workos/workos-python/blob/f57e7cca9b9d7f733429160af96841d7f64be862/tests/test_webhooks.py (mock_bad_secret)",
        secret: "this_is_not_it_123",
        headers: &[(
            "WorkOS-Signature",
            "t=1722443701539, v1=bd54a3768f461461c8439c2f97ab0d646ef3976f84d5d5b132d18f2fa89cdad5",
        )],
        body: r#"{"id":"event_01J44T8116Q5M0RYCFA6KWNXN9","data":{"id":"conn_01EHWNC0FCBHZ3BJ7EGKYXK0E6","name":"Foo Corp's Connection","state":"active","object":"connection","status":"linked","domains":[{"id":"conn_domain_01EHWNFTAFCF3CQAE5A9Q0P1YB","domain":"foo-corp.com","object":"connection_domain"}],"created_at":"2021-06-25T19:07:33.155Z","updated_at":"2021-06-25T19:07:33.155Z","external_key":"3QMR4u0Tok6SgwY2AWG6u6mkQ","connection_type":"OktaSAML","organization_id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"},"event":"connection.activated","created_at":"2021-06-25T19:07:33.155Z"}"#,
        url: None,
        now_unix: 1722443701,
        valid: false,
    },
    Vector {
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/28c52da6473c4b9e99077442697874241f2b2b76/tests/api-resources/webhooks.test.ts (verifySignature: should pass for valid signature)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7",
        )],
        body: r#"{"test":"body"}"#,
        url: None,
        now_unix: 1565125718,
        valid: true,
    },
    Vector {
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/28c52da6473c4b9e99077442697874241f2b2b76/tests/api-resources/webhooks.test.ts (unwrap_times)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v1=bd315c24bce1c2b8ad325696f26530c8ef7d7d830afb7c1381903705d04607be",
        )],
        body: r#"{"test":{"nested":{"nanos":718234, "seconds":1691711005}}}"#,
        url: None,
        now_unix: 1565125718,
        valid: true,
    },
    Vector {
        // Mux's own test: an unparseable v1 beside a good one is skipped, not fatal.
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/28c52da6473c4b9e99077442697874241f2b2b76/tests/api-resources/webhooks.test.ts (should pass for multiple signatures)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v1=invalid-sig,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7",
        )],
        body: r#"{"test":"body"}"#,
        url: None,
        now_unix: 1565125718,
        valid: true,
    },
    Vector {
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/28c52da6473c4b9e99077442697874241f2b2b76/tests/api-resources/webhooks.test.ts (should pass for multiple signatures with different version)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v2=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7",
        )],
        body: r#"{"test":"body"}"#,
        url: None,
        now_unix: 1565125718,
        valid: true,
    },
    Vector {
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/28c52da6473c4b9e99077442697874241f2b2b76/tests/api-resources/webhooks.test.ts (should throw for different signature version)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v2=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7",
        )],
        body: r#"{"test":"body"}"#,
        url: None,
        now_unix: 1565125718,
        valid: false,
    },
    Vector {
        // 6 minutes after the signed time: beyond Mux's 5-minute tolerance (the SDK test mocks now + 360 s).
        provider: "mux",
        source: "https://github.com/muxinc/mux-node-sdk/blob/c014b8108e3ddce75d6359e431e703d4befb6a42/test/unit/webhooks/webhooks.spec.js (older SDK, same vector; timestamp outside threshold)",
        secret: "SuperSecret123",
        headers: &[(
            "mux-signature",
            "t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7",
        )],
        body: r#"{"test":"body"}"#,
        url: None,
        now_unix: 1565126078,
        valid: false,
    },
    Vector {
        provider: "coinbase-commerce",
        source: "https://github.com/coinbase/coinbase-commerce-python/blob/91af61acf8cae6390dac91220e0cb3aa93983ca8/tests/test_webhook.py (test_success_signature_verification)",
        secret: "30291a20-0bd1-4267-9b0f-e6e7b123c0bf",
        headers: &[(
            "X-CC-Webhook-Signature",
            "8be7742c7d372f08a6a3224edadf18a22b65fa9e28f3f2de97376cdaa092590d",
        )],
        body: r#"{"id":1,"scheduled_for":"2017-01-31T20:50:02Z","attempt_number":1,"event":{"id":"24934862-d980-46cb-9402-43c81b0cdba6","type":"charge:created","api_version":"2018-03-22","created_at":"2017-01-31T20:49:02Z","data":{"code":"66BEOV2A","name":"The Sovereign Individual","description":"Mastering the Transition to the Information Age","hosted_url":"https://commerce.coinbase.com/charges/66BEOV2A","created_at":"2017-01-31T20:49:02Z","expires_at":"2017-01-31T21:04:02Z","timeline":[{"time":"2017-01-31T20:49:02Z","status":"NEW"}],"metadata":{},"pricing_type":"no_price","payments":[],"addresses":{"bitcoin":"0000000000000000000000000000000000","ethereum":"0x0000000000000000000000000000000000000000","litecoin":"3000000000000000000000000000000000","bitcoincash":"bitcoincash:000000000000000000000000000000000000000000"}}}}"#,
        url: None,
        now_unix: 1485895802,
        valid: true,
    },
    Vector {
        provider: "coinbase-commerce",
        source: "https://github.com/coinbase/coinbase-commerce-python/blob/91af61acf8cae6390dac91220e0cb3aa93983ca8/tests/test_webhook.py (test_fail_signature_verification: every '3' made '1')",
        secret: "30291a20-0bd1-4267-9b0f-e6e7b123c0bf",
        headers: &[(
            "X-CC-Webhook-Signature",
            "8be7742c7d172f08a6a1224edadf18a22b65fa9e28f1f2de97176cdaa092590d",
        )],
        body: r#"{"id":1,"scheduled_for":"2017-01-31T20:50:02Z","attempt_number":1,"event":{"id":"24934862-d980-46cb-9402-43c81b0cdba6","type":"charge:created","api_version":"2018-03-22","created_at":"2017-01-31T20:49:02Z","data":{"code":"66BEOV2A","name":"The Sovereign Individual","description":"Mastering the Transition to the Information Age","hosted_url":"https://commerce.coinbase.com/charges/66BEOV2A","created_at":"2017-01-31T20:49:02Z","expires_at":"2017-01-31T21:04:02Z","timeline":[{"time":"2017-01-31T20:49:02Z","status":"NEW"}],"metadata":{},"pricing_type":"no_price","payments":[],"addresses":{"bitcoin":"0000000000000000000000000000000000","ethereum":"0x0000000000000000000000000000000000000000","litecoin":"3000000000000000000000000000000000","bitcoincash":"bitcoincash:000000000000000000000000000000000000000000"}}}}"#,
        url: None,
        now_unix: 1485895802,
        valid: false,
    },
    Vector {
        provider: "razorpay",
        source: "https://github.com/razorpay/razorpay-python/blob/b56ac018bf023e2b244a73a4bda2ea861115edcf/tests/test_client_utility.py (test_verify_webhook_signature; body tests/mocks/fake_payment_authorized_webhook.json, secret the test client's key_secret)",
        secret: "key_secret",
        headers: &[(
            "X-Razorpay-Signature",
            "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9",
        )],
        body: r#"{
  "event": "payment.authorized",
  "entity": "event",
  "contains": [
    "payment"
  ],
  "payload": {
    "payment": {
      "entity": {
        "id": "pay_6koWN7bvxujzxM",
        "entity": "payment",
        "amount": 1000000,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_100000000order",
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": true,
        "description": "random description",
        "card_id": "card_6koWNAT6LASUqy",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "a@b.com",
        "contact": "+919999999999",
        "notes": {
          "merchant_order_id": "random order id"
        },
        "fee": 23000,
        "service_tax": 3000,
        "error_code": null,
        "error_description": null,
        "created_at": 1479978483
      }
    }
  },
  "created_at": 1400826760
}
"#,
        url: None,
        now_unix: 1400826760,
        valid: true,
    },
    Vector {
        provider: "razorpay",
        source: "https://github.com/razorpay/razorpay-python/blob/b56ac018bf023e2b244a73a4bda2ea861115edcf/tests/test_client_utility.py (test_verify_webhook_signature_with_exception)",
        secret: "key_secret",
        headers: &[("X-Razorpay-Signature", "test_signature")],
        body: r#"{
  "event": "payment.authorized",
  "entity": "event",
  "contains": [
    "payment"
  ],
  "payload": {
    "payment": {
      "entity": {
        "id": "pay_6koWN7bvxujzxM",
        "entity": "payment",
        "amount": 1000000,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_100000000order",
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": true,
        "description": "random description",
        "card_id": "card_6koWNAT6LASUqy",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "a@b.com",
        "contact": "+919999999999",
        "notes": {
          "merchant_order_id": "random order id"
        },
        "fee": 23000,
        "service_tax": 3000,
        "error_code": null,
        "error_description": null,
        "created_at": 1479978483
      }
    }
  },
  "created_at": 1400826760
}
"#,
        url: None,
        now_unix: 1400826760,
        valid: false,
    },
];

fn header_map(pairs: &[(&str, &str)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name}: {e}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| format!("header value of {name}: {e}"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Run one request through the provider's default scheme: `Ok(Ok(()))` accepted, `Ok(Err(why))`
/// refused, `Err` when the vector could not even be set up (unknown provider, bad URL).
fn verify(vector: &Vector, body: &[u8]) -> Result<Result<(), String>, String> {
    let provider: Provider = vector
        .provider
        .parse()
        .map_err(|_| format!("no provider named {:?}", vector.provider))?;
    let verifier = Verifier::new(provider.default_scheme()).with_tolerance(TOLERANCE);
    let headers = header_map(vector.headers)?;
    let secrets = SecretSet::single(Secret::new(vector.secret));
    let url = vector
        .url
        .map(RequestUrl::parse)
        .transpose()
        .map_err(|e| format!("url: {e}"))?;
    let context = VerifyContext {
        url: url.as_ref(),
        ..Default::default()
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(vector.now_unix);
    Ok(verifier
        .verify_with(body, &headers, &secrets, &context, now)
        .map(drop)
        .map_err(|e| e.to_string()))
}

#[test]
fn every_published_vector_is_accepted_or_refused_as_its_provider_says() {
    assert_eq!(VECTORS.len(), 34);
    let mut failures = Vec::new();
    for (row, vector) in VECTORS.iter().enumerate() {
        let label = format!("#{row} {} ({})", vector.provider, vector.source);
        match verify(vector, vector.body.as_bytes()) {
            Err(setup) => failures.push(format!("{label}: {setup}")),
            Ok(Ok(())) if !vector.valid => failures.push(format!(
                "{label}: accepted, but the provider says it is not authentic"
            )),
            Ok(Err(why)) if vector.valid => failures.push(format!(
                "{label}: refused ({why}), but the provider says it is authentic"
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree:\n{}",
        failures.len(),
        VECTORS.len(),
        failures.join("\n")
    );
}

#[test]
fn a_valid_vector_with_one_body_byte_changed_is_refused() {
    let mut failures = Vec::new();
    for (row, vector) in VECTORS.iter().enumerate().filter(|(_, v)| v.valid) {
        let label = format!("#{row} {} ({})", vector.provider, vector.source);
        let mut body = vector.body.as_bytes().to_vec();
        // Change a byte in the middle, and one at each end, one at a time.
        for at in [body.len() / 2, 0, body.len() - 1] {
            body[at] ^= 0x01;
            match verify(vector, &body) {
                Err(setup) => failures.push(format!("{label}: {setup}")),
                Ok(Ok(())) => failures.push(format!("{label}: accepted with byte {at} changed")),
                Ok(Err(_)) => {}
            }
            body[at] ^= 0x01;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_vector_names_its_source_and_every_provider_has_an_authentic_one() {
    for vector in VECTORS {
        assert!(
            vector.source.starts_with("https://"),
            "{}: {:?}",
            vector.provider,
            vector.source
        );
        assert!(
            VECTORS
                .iter()
                .any(|v| v.provider == vector.provider && v.valid),
            "{} has only negative vectors",
            vector.provider
        );
    }
}
