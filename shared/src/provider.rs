//! The providers a route can name (`/webhooks/{tenant}/{provider}`) and the signature scheme
//! each one signs with by default.

use std::{fmt, str::FromStr};

use thiserror::Error;

use crate::verify::{GenericHeaders, Scheme};

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
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown provider")]
pub struct UnknownProvider;

impl Provider {
    pub const ALL: [Provider; 12] = [
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
    ];

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
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownProvider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
    }

    #[test]
    fn unknown_or_miscased_names_are_refused() {
        for bad in ["Stripe", "stripe ", "PayPal", "pay-pal", "paddle", ""] {
            assert_eq!(bad.parse::<Provider>(), Err(UnknownProvider), "{bad:?}");
        }
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
