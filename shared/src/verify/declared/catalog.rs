//! The declared providers, in the order the README lists them. Each line of a declaration is
//! what the provider's documentation (linked in `docs`) says; its tests are the provider's
//! published vectors where it has them (`vectors.rs`), its official library where one exists
//! (the interop tests), and the engine's table tests otherwise.

use super::{
    Algorithm::{self, *},
    Auth, Carrier, Declaration,
    Encoding::{self, *},
    Field, Handshake, IdFrom, Part, Signature, Stamp, TimeField, TimeUnit,
};

/// A signature over the body alone, in one header.
const fn body_mac(
    algorithm: Algorithm,
    header: &'static str,
    prefix: &'static str,
    encoding: Encoding,
) -> Auth {
    Auth::Signed(Signature {
        algorithm,
        carrier: Carrier::Header {
            name: header,
            prefix,
        },
        encoding,
        signed: &[Part::Body],
        timestamp: None,
    })
}

/// `t=<time>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, as Stripe made common.
const fn stripe_like(header: &'static str, unit: TimeUnit) -> Auth {
    Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Fields {
            header,
            separator: ',',
            key: "v1",
        },
        encoding: Hex,
        signed: &[Part::Timestamp, Part::Text("."), Part::Body],
        timestamp: Some(Stamp::Field { key: "t", unit }),
    })
}

const fn header_id(name: &'static str) -> IdFrom {
    IdFrom::Header {
        name,
        signed: false,
    }
}

use Field::{Body as B, Header as H};
use TimeUnit::{Millis, Rfc3339, Secs};

/// The Meta family share one contract under three route names.
const fn meta(name: &'static str, title: &'static str, docs: &'static str) -> Declaration {
    Declaration {
        name,
        title,
        docs,
        auth: body_mac(HmacSha256, "x-hub-signature-256", "sha256=", Hex),
        id: IdFrom::BodyHash,
        event_type: B("/object"),
        created_at: TimeField::Body("/entry/0/time", Secs),
        handshake: Some(Handshake::MetaSubscribe),
    }
}

/// Basic authentication, the secret being `user:password`.
const fn basic(
    name: &'static str,
    title: &'static str,
    docs: &'static str,
    id: IdFrom,
    event_type: Field,
    created_at: TimeField,
) -> Declaration {
    Declaration {
        name,
        title,
        docs,
        auth: Auth::Basic,
        id,
        event_type,
        created_at,
        handshake: None,
    }
}

pub const GITLAB: Declaration = Declaration {
    name: "gitlab",
    title: "GitLab",
    docs: "https://docs.gitlab.com/user/project/integrations/webhooks/",
    auth: Auth::Token {
        header: "x-gitlab-token",
    },
    // `X-Gitlab-Event-UUID` is shared by recursive hooks, and `Idempotency-Key` arrived only in
    // GitLab 17.4: a retry carries the same bytes, so the body is the id. (GitLab's newer
    // signing tokens are Standard Webhooks: use the `standard-webhooks` route for those.)
    id: IdFrom::BodyHash,
    event_type: H("x-gitlab-event"),
    created_at: TimeField::None,
    handshake: None,
};

pub const BITBUCKET: Declaration = Declaration {
    name: "bitbucket",
    title: "Bitbucket Cloud",
    docs: "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
    auth: body_mac(HmacSha256, "x-hub-signature", "sha256=", Hex),
    id: header_id("x-request-uuid"),
    event_type: H("x-event-key"),
    created_at: TimeField::None,
    handshake: None,
};

pub const GITEA: Declaration = Declaration {
    name: "gitea",
    title: "Gitea and Forgejo",
    docs: "https://docs.gitea.com/usage/webhooks",
    auth: body_mac(HmacSha256, "x-gitea-signature", "", Hex),
    id: header_id("x-gitea-delivery"),
    event_type: H("x-gitea-event"),
    created_at: TimeField::None,
    handshake: None,
};

pub const JIRA: Declaration = Declaration {
    name: "jira",
    title: "Jira (Atlassian)",
    docs: "https://developer.atlassian.com/cloud/jira/platform/webhooks/",
    auth: body_mac(HmacSha256, "x-hub-signature", "sha256=", Hex),
    id: header_id("x-atlassian-webhook-identifier"),
    event_type: B("/webhookEvent"),
    created_at: TimeField::Body("/timestamp", Millis),
    handshake: None,
};

pub const DISCORD: Declaration = Declaration {
    name: "discord",
    title: "Discord interactions",
    docs: "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint",
    auth: Auth::Signed(Signature {
        algorithm: Ed25519,
        carrier: Carrier::Header {
            name: "x-signature-ed25519",
            prefix: "",
        },
        encoding: Hex,
        signed: &[Part::Timestamp, Part::Body],
        timestamp: Some(Stamp::Header {
            name: "x-signature-timestamp",
            unit: Secs,
        }),
    }),
    id: IdFrom::Body("/id"),
    event_type: B("/type"),
    created_at: TimeField::Signed,
    handshake: Some(Handshake::DiscordPing),
};

pub const ZOOM: Declaration = Declaration {
    name: "zoom",
    title: "Zoom",
    docs: "https://developers.zoom.us/docs/api/webhooks/",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "x-zm-signature",
            prefix: "v0=",
        },
        encoding: Hex,
        signed: &[
            Part::Text("v0:"),
            Part::Timestamp,
            Part::Text(":"),
            Part::Body,
        ],
        timestamp: Some(Stamp::Header {
            name: "x-zm-request-timestamp",
            unit: Secs,
        }),
    }),
    id: IdFrom::BodyHash,
    event_type: B("/event"),
    created_at: TimeField::Body("/event_ts", Millis),
    handshake: Some(Handshake::ZoomUrlValidation),
};

pub const META: Declaration = meta(
    "meta",
    "Meta (Facebook) Graph webhooks",
    "https://developers.facebook.com/docs/graph-api/webhooks/getting-started",
);

pub const WHATSAPP: Declaration = meta(
    "whatsapp",
    "WhatsApp Cloud API",
    "https://developers.facebook.com/docs/whatsapp/cloud-api/guides/set-up-webhooks",
);

pub const INSTAGRAM: Declaration = meta(
    "instagram",
    "Instagram",
    "https://developers.facebook.com/docs/instagram-platform/webhooks",
);

pub const MSGRAPH: Declaration = Declaration {
    name: "msgraph",
    title: "Microsoft Graph change notifications",
    docs: "https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
    auth: Auth::ClientState,
    id: IdFrom::BodyHash,
    event_type: B("/value/0/changeType"),
    created_at: TimeField::None,
    handshake: Some(Handshake::GraphValidation),
};

pub const TWITCH: Declaration = Declaration {
    name: "twitch",
    title: "Twitch EventSub",
    docs: "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "twitch-eventsub-message-signature",
            prefix: "sha256=",
        },
        encoding: Hex,
        signed: &[Part::Id, Part::Timestamp, Part::Body],
        timestamp: Some(Stamp::Header {
            name: "twitch-eventsub-message-timestamp",
            unit: Rfc3339,
        }),
    }),
    id: IdFrom::Header {
        name: "twitch-eventsub-message-id",
        signed: true,
    },
    event_type: H("twitch-eventsub-subscription-type"),
    created_at: TimeField::Signed,
    handshake: Some(Handshake::TwitchChallenge),
};

pub const DROPBOX: Declaration = Declaration {
    name: "dropbox",
    title: "Dropbox",
    docs: "https://www.dropbox.com/developers/reference/webhooks",
    auth: body_mac(HmacSha256, "x-dropbox-signature", "", Hex),
    id: IdFrom::BodyHash,
    event_type: Field::None,
    created_at: TimeField::None,
    handshake: Some(Handshake::DropboxChallenge),
};

pub const SQUARE: Declaration = Declaration {
    name: "square",
    title: "Square",
    docs: "https://developer.squareup.com/docs/webhooks/step3validate",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "x-square-hmacsha256-signature",
            prefix: "",
        },
        encoding: Base64,
        signed: &[Part::Url, Part::Body],
        timestamp: None,
    }),
    id: IdFrom::Body("/event_id"),
    event_type: B("/type"),
    created_at: TimeField::Body("/created_at", Rfc3339),
    handshake: None,
};

pub const PADDLE: Declaration = Declaration {
    name: "paddle",
    title: "Paddle Billing",
    docs: "https://developer.paddle.com/webhooks/signature-verification",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Fields {
            header: "paddle-signature",
            separator: ';',
            key: "h1",
        },
        encoding: Hex,
        signed: &[Part::Timestamp, Part::Text(":"), Part::Body],
        timestamp: Some(Stamp::Field {
            key: "ts",
            unit: Secs,
        }),
    }),
    id: IdFrom::Body("/event_id"),
    event_type: B("/event_type"),
    created_at: TimeField::Body("/occurred_at", Rfc3339),
    handshake: None,
};

pub const LEMONSQUEEZY: Declaration = Declaration {
    name: "lemonsqueezy",
    title: "Lemon Squeezy",
    docs: "https://docs.lemonsqueezy.com/help/webhooks/signing-requests",
    auth: body_mac(HmacSha256, "x-signature", "", Hex),
    id: IdFrom::BodyHash,
    event_type: H("x-event-name"),
    created_at: TimeField::Body("/data/attributes/updated_at", Rfc3339),
    handshake: None,
};

pub const LINEAR: Declaration = Declaration {
    name: "linear",
    title: "Linear",
    docs: "https://linear.app/developers/webhooks",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "linear-signature",
            prefix: "",
        },
        encoding: Hex,
        signed: &[Part::Body],
        timestamp: Some(Stamp::Body {
            pointer: "/webhookTimestamp",
            unit: Millis,
        }),
    }),
    id: header_id("linear-delivery"),
    event_type: H("linear-event"),
    created_at: TimeField::Signed,
    handshake: None,
};

pub const SENDGRID: Declaration = Declaration {
    name: "sendgrid",
    title: "Twilio SendGrid event webhook",
    docs: "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
    auth: Auth::Signed(Signature {
        algorithm: EcdsaP256,
        carrier: Carrier::Header {
            name: "x-twilio-email-event-webhook-signature",
            prefix: "",
        },
        encoding: Base64,
        signed: &[Part::Timestamp, Part::Body],
        timestamp: Some(Stamp::Header {
            name: "x-twilio-email-event-webhook-timestamp",
            unit: Secs,
        }),
    }),
    id: IdFrom::BodyHash,
    event_type: B("/0/event"),
    created_at: TimeField::Body("/0/timestamp", Secs),
    handshake: None,
};

pub const MAILGUN: Declaration = Declaration {
    name: "mailgun",
    title: "Mailgun",
    docs: "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Body {
            pointer: "/signature/signature",
        },
        encoding: Hex,
        signed: &[
            Part::BodyField("/signature/timestamp"),
            Part::BodyField("/signature/token"),
        ],
        timestamp: Some(Stamp::Body {
            pointer: "/signature/timestamp",
            unit: Secs,
        }),
    }),
    id: IdFrom::Body("/event-data/id"),
    event_type: B("/event-data/event"),
    created_at: TimeField::Body("/event-data/timestamp", Secs),
    handshake: None,
};

pub const POSTMARK: Declaration = basic(
    "postmark",
    "Postmark",
    "https://postmarkapp.com/developer/webhooks/webhooks-overview",
    IdFrom::BodyHash,
    B("/RecordType"),
    TimeField::None,
);

pub const HUBSPOT: Declaration = Declaration {
    name: "hubspot",
    title: "HubSpot (signature v3)",
    docs: "https://developers.hubspot.com/docs/api/webhooks/validating-requests",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "x-hubspot-signature-v3",
            prefix: "",
        },
        encoding: Base64,
        signed: &[
            Part::Text("POST"),
            Part::UrlHubSpotDecoded,
            Part::Body,
            Part::Timestamp,
        ],
        timestamp: Some(Stamp::Header {
            name: "x-hubspot-request-timestamp",
            unit: Millis,
        }),
    }),
    id: IdFrom::BodyHash,
    event_type: B("/0/subscriptionType"),
    created_at: TimeField::Body("/0/occurredAt", Millis),
    handshake: None,
};

pub const INTERCOM: Declaration = Declaration {
    name: "intercom",
    title: "Intercom",
    docs: "https://developers.intercom.com/docs/webhooks/webhook-notifications",
    auth: body_mac(HmacSha1, "x-hub-signature", "sha1=", Hex),
    id: IdFrom::Body("/id"),
    event_type: B("/topic"),
    created_at: TimeField::Body("/created_at", Secs),
    handshake: None,
};

pub const TYPEFORM: Declaration = Declaration {
    name: "typeform",
    title: "Typeform",
    docs: "https://www.typeform.com/developers/webhooks/secure-your-webhooks/",
    auth: body_mac(HmacSha256, "typeform-signature", "sha256=", Base64),
    id: IdFrom::Body("/event_id"),
    event_type: B("/event_type"),
    created_at: TimeField::Body("/form_response/submitted_at", Rfc3339),
    handshake: None,
};

pub const WOOCOMMERCE: Declaration = Declaration {
    name: "woocommerce",
    title: "WooCommerce",
    docs: "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks",
    auth: body_mac(HmacSha256, "x-wc-webhook-signature", "", Base64),
    id: header_id("x-wc-webhook-delivery-id"),
    event_type: H("x-wc-webhook-topic"),
    created_at: TimeField::None,
    handshake: Some(Handshake::WooCommercePing),
};

pub const CALENDLY: Declaration = Declaration {
    name: "calendly",
    title: "Calendly",
    docs: "https://developer.calendly.com/api-docs/4c305798a61d3-webhook-signatures",
    auth: stripe_like("calendly-webhook-signature", Secs),
    id: IdFrom::BodyHash,
    event_type: B("/event"),
    created_at: TimeField::Body("/created_at", Rfc3339),
    handshake: None,
};

pub const MUX: Declaration = Declaration {
    name: "mux",
    title: "Mux",
    docs: "https://www.mux.com/docs/core/verify-webhook-signatures",
    auth: stripe_like("mux-signature", Secs),
    id: IdFrom::Body("/id"),
    event_type: B("/type"),
    created_at: TimeField::Body("/created_at", Rfc3339),
    handshake: None,
};

pub const WORKOS: Declaration = Declaration {
    name: "workos",
    title: "WorkOS",
    docs: "https://workos.com/docs/events/data-syncing/webhooks",
    auth: stripe_like("workos-signature", Millis),
    id: IdFrom::Body("/id"),
    event_type: B("/event"),
    created_at: TimeField::Body("/created_at", Rfc3339),
    handshake: None,
};

pub const PERSONA: Declaration = Declaration {
    name: "persona",
    title: "Persona",
    docs: "https://docs.withpersona.com/docs/webhooks-best-practices",
    auth: stripe_like("persona-signature", Secs),
    id: IdFrom::Body("/data/id"),
    event_type: B("/data/attributes/name"),
    created_at: TimeField::Body("/data/attributes/created-at", Rfc3339),
    handshake: None,
};

pub const VERCEL: Declaration = Declaration {
    name: "vercel",
    title: "Vercel",
    docs: "https://vercel.com/docs/webhooks/webhooks-api",
    auth: body_mac(HmacSha1, "x-vercel-signature", "", Hex),
    id: IdFrom::Body("/id"),
    event_type: B("/type"),
    created_at: TimeField::Body("/createdAt", Millis),
    handshake: None,
};

pub const SENTRY: Declaration = Declaration {
    name: "sentry",
    title: "Sentry integration platform",
    docs: "https://docs.sentry.io/organization/integrations/integration-platform/webhooks/",
    auth: body_mac(HmacSha256, "sentry-hook-signature", "", Hex),
    id: header_id("request-id"),
    event_type: H("sentry-hook-resource"),
    created_at: TimeField::Header("sentry-hook-timestamp", Secs),
    handshake: None,
};

pub const PAGERDUTY: Declaration = Declaration {
    name: "pagerduty",
    title: "PagerDuty (v3 webhooks)",
    docs: "https://developer.pagerduty.com/docs/webhooks-overview#webhook-signatures",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Fields {
            header: "x-pagerduty-signature",
            separator: ',',
            key: "v1",
        },
        encoding: Hex,
        signed: &[Part::Body],
        timestamp: None,
    }),
    id: IdFrom::Body("/event/id"),
    event_type: B("/event/event_type"),
    created_at: TimeField::Body("/event/occurred_at", Rfc3339),
    handshake: None,
};

pub const COINBASE_COMMERCE: Declaration = Declaration {
    name: "coinbase-commerce",
    title: "Coinbase Commerce",
    docs: "https://docs.cdp.coinbase.com/commerce/docs/webhooks-security",
    auth: body_mac(HmacSha256, "x-cc-webhook-signature", "", Hex),
    id: IdFrom::Body("/event/id"),
    event_type: B("/event/type"),
    created_at: TimeField::Body("/event/created_at", Rfc3339),
    handshake: None,
};

pub const RAZORPAY: Declaration = Declaration {
    name: "razorpay",
    title: "Razorpay",
    docs: "https://razorpay.com/docs/webhooks/validate-test/",
    auth: body_mac(HmacSha256, "x-razorpay-signature", "", Hex),
    id: header_id("x-razorpay-event-id"),
    event_type: B("/event"),
    created_at: TimeField::Body("/created_at", Secs),
    handshake: None,
};

pub const DOCUSIGN: Declaration = Declaration {
    name: "docusign",
    title: "DocuSign Connect",
    docs: "https://developers.docusign.com/platform/webhooks/connect/hmac/",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Headers {
            names: &[
                "x-docusign-signature-1",
                "x-docusign-signature-2",
                "x-docusign-signature-3",
                "x-docusign-signature-4",
                "x-docusign-signature-5",
            ],
        },
        encoding: Base64,
        signed: &[Part::Body],
        timestamp: None,
    }),
    id: IdFrom::BodyHash,
    event_type: B("/event"),
    created_at: TimeField::Body("/generatedDateTime", Rfc3339),
    handshake: None,
};

pub const OKTA: Declaration = Declaration {
    name: "okta",
    title: "Okta event hooks",
    docs: "https://developer.okta.com/docs/concepts/event-hooks/",
    auth: Auth::Token {
        header: "authorization",
    },
    id: IdFrom::Body("/eventId"),
    event_type: B("/eventType"),
    created_at: TimeField::Body("/eventTime", Rfc3339),
    handshake: Some(Handshake::OktaVerification),
};

pub const TRELLO: Declaration = Declaration {
    name: "trello",
    title: "Trello",
    docs: "https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha1,
        carrier: Carrier::Header {
            name: "x-trello-webhook",
            prefix: "",
        },
        encoding: Base64,
        signed: &[Part::Body, Part::Url],
        timestamp: None,
    }),
    id: IdFrom::Body("/action/id"),
    event_type: B("/action/type"),
    created_at: TimeField::Body("/action/date", Rfc3339),
    handshake: Some(Handshake::TrelloHead),
};

pub const CAL_COM: Declaration = Declaration {
    name: "cal-com",
    title: "Cal.com",
    docs: "https://cal.com/docs/developing/guides/automation/webhooks",
    auth: body_mac(HmacSha256, "x-cal-signature-256", "", Hex),
    id: IdFrom::BodyHash,
    event_type: B("/triggerEvent"),
    created_at: TimeField::Body("/createdAt", Rfc3339),
    handshake: None,
};

pub const TELEGRAM: Declaration = Declaration {
    name: "telegram",
    title: "Telegram Bot API",
    docs: "https://core.telegram.org/bots/api#setwebhook",
    auth: Auth::Token {
        header: "x-telegram-bot-api-secret-token",
    },
    id: IdFrom::Body("/update_id"),
    event_type: Field::None,
    created_at: TimeField::Body("/message/date", Secs),
    handshake: None,
};

pub const XERO: Declaration = Declaration {
    name: "xero",
    title: "Xero",
    docs: "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/",
    auth: body_mac(HmacSha256, "x-xero-signature", "", Base64),
    id: IdFrom::BodyHash,
    event_type: B("/events/0/eventType"),
    created_at: TimeField::Body("/events/0/eventDateUtc", Rfc3339),
    handshake: None,
};

pub const SEGMENT: Declaration = Declaration {
    name: "segment",
    title: "Segment",
    docs: "https://segment.com/docs/connections/destinations/catalog/actions-webhook/",
    auth: body_mac(HmacSha1, "x-signature", "", Hex),
    id: IdFrom::Body("/messageId"),
    event_type: B("/type"),
    created_at: TimeField::Body("/timestamp", Rfc3339),
    handshake: None,
};

pub const ZENDESK: Declaration = Declaration {
    name: "zendesk",
    title: "Zendesk",
    docs: "https://developer.zendesk.com/documentation/webhooks/verifying/",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "x-zendesk-webhook-signature",
            prefix: "",
        },
        encoding: Base64,
        signed: &[Part::Timestamp, Part::Body],
        timestamp: Some(Stamp::Header {
            name: "x-zendesk-webhook-signature-timestamp",
            unit: Rfc3339,
        }),
    }),
    id: IdFrom::Body("/id"),
    event_type: B("/type"),
    created_at: TimeField::Body("/time", Rfc3339),
    handshake: None,
};

pub const WEBFLOW: Declaration = Declaration {
    name: "webflow",
    title: "Webflow",
    docs: "https://developers.webflow.com/data/docs/working-with-webhooks",
    auth: Auth::Signed(Signature {
        algorithm: HmacSha256,
        carrier: Carrier::Header {
            name: "x-webflow-signature",
            prefix: "",
        },
        encoding: Hex,
        signed: &[Part::Timestamp, Part::Text(":"), Part::Body],
        timestamp: Some(Stamp::Header {
            name: "x-webflow-timestamp",
            unit: Millis,
        }),
    }),
    id: IdFrom::BodyHash,
    event_type: B("/triggerType"),
    created_at: TimeField::Signed,
    handshake: None,
};

pub const CLICKUP: Declaration = Declaration {
    name: "clickup",
    title: "ClickUp",
    docs: "https://developer.clickup.com/docs/webhooksignature",
    auth: body_mac(HmacSha256, "x-signature", "", Hex),
    id: IdFrom::BodyHash,
    event_type: B("/event"),
    created_at: TimeField::None,
    handshake: None,
};

pub const CHARGEBEE: Declaration = basic(
    "chargebee",
    "Chargebee",
    "https://www.chargebee.com/docs/billing/2.0/site-configuration/webhook_settings",
    IdFrom::Body("/id"),
    B("/event_type"),
    TimeField::Body("/occurred_at", Secs),
);

pub const OPENAI: Declaration = Declaration {
    name: "openai",
    title: "OpenAI",
    docs: "https://platform.openai.com/docs/guides/webhooks",
    auth: Auth::StandardWebhooks,
    id: IdFrom::Header {
        name: "webhook-id",
        signed: true,
    },
    event_type: B("/type"),
    created_at: TimeField::Body("/created_at", Secs),
    handshake: None,
};

pub const REPLICATE: Declaration = Declaration {
    name: "replicate",
    title: "Replicate",
    docs: "https://replicate.com/docs/topics/webhooks/verify-webhook",
    auth: Auth::StandardWebhooks,
    id: IdFrom::Header {
        name: "webhook-id",
        signed: true,
    },
    event_type: B("/status"),
    created_at: TimeField::Body("/created_at", Rfc3339),
    handshake: None,
};

/// Every declared provider.
pub const ALL: &[&Declaration] = &[
    &GITLAB,
    &BITBUCKET,
    &GITEA,
    &JIRA,
    &DISCORD,
    &ZOOM,
    &META,
    &WHATSAPP,
    &INSTAGRAM,
    &MSGRAPH,
    &TWITCH,
    &DROPBOX,
    &SQUARE,
    &PADDLE,
    &LEMONSQUEEZY,
    &LINEAR,
    &SENDGRID,
    &MAILGUN,
    &POSTMARK,
    &HUBSPOT,
    &INTERCOM,
    &TYPEFORM,
    &WOOCOMMERCE,
    &CALENDLY,
    &MUX,
    &WORKOS,
    &PERSONA,
    &VERCEL,
    &SENTRY,
    &PAGERDUTY,
    &COINBASE_COMMERCE,
    &RAZORPAY,
    &DOCUSIGN,
    &OKTA,
    &TRELLO,
    &CAL_COM,
    &TELEGRAM,
    &XERO,
    &SEGMENT,
    &ZENDESK,
    &WEBFLOW,
    &CLICKUP,
    &CHARGEBEE,
    &OPENAI,
    &REPLICATE,
];

/// One declaration of each shape the engine reads (each auth, carrier, stamp, id source and
/// pointer kind), for tests that run every provider on many inputs: the rest differ only in
/// names, which the per-declaration tests cover.
pub const REPRESENTATIVES: &[&Declaration] = &[
    &PADDLE, &SENDGRID, &MAILGUN, &DISCORD, &GITLAB, &POSTMARK, &MSGRAPH, &OPENAI, &TWITCH,
    &SQUARE, &DOCUSIGN, &LINEAR, &TELEGRAM, &ZENDESK,
];

/// The README's table of declared providers, generated so it cannot drift from the code: a
/// test compares it with the README.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Route | Provider | Authentication | Event id | Handshake |\n| --- | --- | --- | --- | --- |\n",
    );
    for d in ALL {
        let handshake = d.handshake.map_or("", |h| h.describe());
        out.push_str(&format!(
            "| `{}` | [{}]({}) | {} | {} | {} |\n",
            d.name,
            d.title,
            d.docs,
            describe_auth(&d.auth),
            describe_id(d.id),
            handshake
        ));
    }
    out
}

fn describe_auth(auth: &Auth) -> String {
    match auth {
        Auth::Token { header } => format!("`{header}` is the secret"),
        Auth::Basic => "HTTP Basic, secret `user:password`".to_owned(),
        Auth::ClientState => "every `clientState` is the secret".to_owned(),
        Auth::StandardWebhooks => "Standard Webhooks".to_owned(),
        Auth::Signed(s) => {
            let algorithm = match s.algorithm {
                HmacSha1 => "HMAC-SHA1",
                HmacSha256 => "HMAC-SHA256",
                Ed25519 => "Ed25519",
                EcdsaP256 => "ECDSA P-256",
            };
            let encoding = match s.encoding {
                Hex => "hex",
                Base64 => "base64",
            };
            let carrier = match &s.carrier {
                Carrier::Header { name, prefix } => format!("`{name}: {prefix}…`"),
                Carrier::Headers { names } => {
                    format!("`{}`…", names.first().copied().unwrap_or_default())
                }
                Carrier::Fields { header, key, .. } => format!("`{header}` field `{key}`"),
                Carrier::Body { pointer } => format!("body `{pointer}`"),
            };
            let signed: Vec<String> = s
                .signed
                .iter()
                .map(|part| match part {
                    Part::Body => "body".to_owned(),
                    Part::Timestamp => "timestamp".to_owned(),
                    Part::Id => "id".to_owned(),
                    Part::Url => "URL".to_owned(),
                    Part::UrlHubSpotDecoded => "URL (HubSpot's escapes decoded)".to_owned(),
                    Part::Text(t) => format!("`{t}`"),
                    Part::BodyField(p) => format!("`{p}`"),
                })
                .collect();
            let window = if s.timestamp.is_some() {
                ", replay window"
            } else {
                ""
            };
            format!(
                "{algorithm} {encoding} in {carrier} over {}{window}",
                signed.join(" + ")
            )
        }
    }
}

fn describe_id(id: IdFrom) -> String {
    match id {
        IdFrom::Header { name, .. } => format!("`{name}`"),
        IdFrom::Body(pointer) => format!("body `{pointer}`"),
        IdFrom::BodyHash => "SHA-256 of the body".to_owned(),
    }
}
