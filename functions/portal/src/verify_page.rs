//! "Verify your webhooks": how a partner checks that a delivery is genuine, with copy-ready code
//! in seven languages using the official Standard Webhooks libraries (Svix's verify the same
//! signatures). The snippets are files (`functions/portal/snippets/`); the Python and Node ones
//! run in `make test` against a real delivery from the stack, so a snippet that stops working
//! fails the build (`outbound::the_portals_python_and_node_snippets_verify_*`).

use maud::{Markup, html};
use shared::portal::Session;

use crate::pages::layout;

/// One language's snippet: its id, name, and code; `tested` when `make test` runs it.
pub struct Snippet {
    pub id: &'static str,
    pub language: &'static str,
    pub code: &'static str,
    pub tested: bool,
}

pub const SNIPPETS: [Snippet; 7] = [
    Snippet {
        id: "python",
        language: "Python",
        code: include_str!("../snippets/verify.py"),
        tested: true,
    },
    Snippet {
        id: "node",
        language: "Node.js",
        code: include_str!("../snippets/verify.js"),
        tested: true,
    },
    Snippet {
        id: "go",
        language: "Go",
        code: include_str!("../snippets/verify.go"),
        tested: false,
    },
    Snippet {
        id: "ruby",
        language: "Ruby",
        code: include_str!("../snippets/verify.rb"),
        tested: false,
    },
    Snippet {
        id: "php",
        language: "PHP",
        code: include_str!("../snippets/verify.php"),
        tested: false,
    },
    Snippet {
        id: "java",
        language: "Java",
        code: include_str!("../snippets/Verify.java"),
        tested: false,
    },
    Snippet {
        id: "rust",
        language: "Rust",
        code: include_str!("../snippets/verify.rs"),
        tested: false,
    },
];

pub fn page(session: &Session) -> Markup {
    layout(
        "Verify your webhooks",
        Some(session),
        html! {
            h1 { "Verify your webhooks" }
            p { "Every delivery is signed with your endpoint's secret, as the " a href="https://www.standardwebhooks.com/" { "Standard Webhooks" } " specification says, so any of its official libraries (or Svix's) verifies it. Check each delivery before you act on it:" }
            ol #steps {
                li { "Open your endpoint's page and press " b { "Reveal secret" } ". Keep the " code { "whsec_…" } " value in your secret store, as " code { "WEBHOOK_SECRET" } "." }
                li { "Read the request body " b { "exactly as received" } ", before any JSON parsing: the signature covers its bytes." }
                li { "Verify it with the headers " code { "webhook-id" } ", " code { "webhook-timestamp" } " and " code { "webhook-signature" } ". The library refuses a forged or altered body, and a timestamp more than five minutes from your clock." }
                li { "Answer 2xx within 15 seconds, then do the work. Anything else is retried for about a day (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), so drop a " code { "webhook-id" } " you already handled." }
            }
            p.muted { "While a secret is being rotated, deliveries carry two signatures (old and new) for 24 hours: the libraries accept either, so you can switch whenever you like." }
            nav #languages { @for s in &SNIPPETS { a href={ "#" (s.id) } { (s.language) } " " } }
            @for s in &SNIPPETS {
                section.card id=(s.id) {
                    h2 {
                        (s.language)
                        @if s.tested { " " span.badge.ok title="Run against a real delivery in this project's tests" { "tested" } }
                    }
                    pre { code { (s.code) } }
                }
            }
        },
    )
}
