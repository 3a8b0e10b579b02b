//! The providers a route can name (`/webhooks/{tenant}/{provider}`) and the signature scheme
//! each one signs with by default.

use std::{fmt, str::FromStr};

use thiserror::Error;

use crate::verify::{GenericHeaders, Scheme, declared};

/// A webhook provider, as it appears in the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Stripe,
    Clerk,
    Resend,
    Svix,
    StandardWebhooks,
    GitHub,
    Slack,
    Shopify,
    Generic,
    Twilio,
    PayPal,
    Circle,
    /// Google Cloud's OIDC-authenticated push (Pub/Sub push subscriptions, Eventarc, Cloud
    /// Tasks, Cloud Scheduler), the way Firebase calls out.
    Firebase,
    /// Braintree's signed notification forms (`bt_signature`, `bt_payload`).
    Braintree,
    /// A provider described as data ([`declared`]): GitLab, Discord, Zoom, Paddle, ...
    Declared(&'static declared::Declaration),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown provider")]
pub struct UnknownProvider;

impl Provider {
    /// The providers with a scheme of their own; [`Provider::all`] adds the declared ones.
    pub const BUILT_IN: [Provider; 14] = [
        Self::Stripe,
        Self::Clerk,
        Self::Resend,
        Self::Svix,
        Self::StandardWebhooks,
        Self::GitHub,
        Self::Slack,
        Self::Shopify,
        Self::Generic,
        Self::Twilio,
        Self::PayPal,
        Self::Circle,
        Self::Firebase,
        Self::Braintree,
    ];

    /// Every provider a route can name.
    pub fn all() -> impl Iterator<Item = Provider> {
        Self::BUILT_IN.into_iter().chain(
            declared::catalog::ALL
                .iter()
                .map(|declaration| Self::Declared(declaration)),
        )
    }

    /// The built-in providers and one declared provider of each shape: for property tests that
    /// run every provider on many inputs.
    pub fn representatives() -> impl Iterator<Item = Provider> {
        Self::BUILT_IN.into_iter().chain(
            declared::catalog::REPRESENTATIVES
                .iter()
                .map(|declaration| Self::Declared(declaration)),
        )
    }

    /// The check the provider makes of an endpoint, if any, answered by the ingress
    /// ([`declared::Handshake`]).
    pub fn handshake(self) -> Option<declared::Handshake> {
        match self {
            Self::Declared(declaration) => declaration.handshake,
            Self::Slack => Some(declared::Handshake::SlackUrlVerification),
            Self::Braintree => Some(declared::Handshake::BraintreeChallenge),
            _ => None,
        }
    }

    /// The route segment and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Clerk => "clerk",
            Self::Resend => "resend",
            Self::Svix => "svix",
            Self::StandardWebhooks => "standard-webhooks",
            Self::GitHub => "github",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
            Self::Generic => "generic",
            Self::Twilio => "twilio",
            Self::PayPal => "paypal",
            Self::Circle => "circle",
            Self::Firebase => "firebase",
            Self::Braintree => "braintree",
            Self::Declared(declaration) => declaration.name,
        }
    }

    /// The scheme the provider signs with. Clerk and Resend deliver through Svix. Twilio,
    /// PayPal and Circle also need a [`crate::verify::VerifyContext`] (the requested URL, the
    /// webhook id and certificate source, the public keys).
    pub fn default_scheme(self) -> Scheme {
        match self {
            Self::Stripe => Scheme::Stripe,
            Self::Clerk | Self::Resend | Self::Svix | Self::StandardWebhooks => {
                Scheme::StandardWebhooks
            }
            Self::GitHub => Scheme::GitHub,
            Self::Slack => Scheme::Slack,
            Self::Shopify => Scheme::Shopify,
            Self::Generic => Scheme::Generic(GenericHeaders::default()),
            Self::Twilio => Scheme::Twilio,
            Self::PayPal => Scheme::PayPal,
            Self::Circle => Scheme::Circle,
            Self::Firebase => Scheme::GoogleOidc,
            Self::Braintree => Scheme::Braintree,
            Self::Declared(declaration) => Scheme::Declared(declaration),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    /// Exact, lowercase names only: a route is a name, not a guess.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::all().find(|p| p.as_str() == s).ok_or(UnknownProvider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::all() {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
    }

    #[test]
    fn unknown_or_miscased_names_are_refused() {
        for bad in [
            "Stripe", "stripe ", "PayPal", "pay-pal", "Paddle", "gitlab ", "",
        ] {
            assert_eq!(bad.parse::<Provider>(), Err(UnknownProvider), "{bad:?}");
        }
    }

    #[test]
    fn there_are_at_least_forty_routes_and_no_name_twice() {
        let names: Vec<&str> = Provider::all().map(Provider::as_str).collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a route name is used twice");
        assert!(names.len() >= 40, "{} routes", names.len());
    }

    #[test]
    fn declared_providers_route_to_their_declarations() {
        let paddle: Provider = "paddle".parse().expect("paddle");
        assert_eq!(paddle.as_str(), "paddle");
        assert!(matches!(paddle.default_scheme(), Scheme::Declared(d) if d.name == "paddle"));
    }

    #[test]
    fn clerk_and_resend_sign_with_svix() {
        assert_eq!(Provider::Clerk.default_scheme(), Scheme::StandardWebhooks);
        assert_eq!(Provider::Resend.default_scheme(), Scheme::StandardWebhooks);
    }

    #[test]
    fn the_newer_providers_route_to_their_schemes() {
        for (name, scheme) in [
            ("twilio", Scheme::Twilio),
            ("paypal", Scheme::PayPal),
            ("circle", Scheme::Circle),
        ] {
            let provider: Provider = name.parse().expect(name);
            assert_eq!(provider.default_scheme(), scheme);
        }
    }
}
