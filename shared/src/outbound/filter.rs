//! Which event types an endpoint receives: exact names and trailing wildcards (`invoice.*`), or
//! everything when the filter is empty.

use std::fmt;

use thiserror::Error;

use super::ids::EventType;

/// The most patterns one endpoint may list: enough for any real subscription, and a bound on
/// the item and on the work per fan-out.
pub const MAX_PATTERNS: usize = 100;

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error(
        "filter pattern {0:?} is malformed: use an event type (invoice.paid) or a prefix and .* (invoice.*)"
    )]
    Malformed(String),
    #[error("a filter lists at most {MAX_PATTERNS} patterns")]
    TooMany,
}

/// One pattern: an exact type, or every type under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pattern {
    Exact(String),
    /// `invoice.*`: the prefix with its dot (`invoice.`), matching `invoice.paid` and
    /// `invoice.payment.failed`, not `invoice` itself.
    Under(String),
    /// `*` alone: every type.
    Any,
}

impl Pattern {
    fn parse(raw: &str) -> Result<Self, FilterError> {
        let raw = raw.trim();
        let malformed = || FilterError::Malformed(raw.chars().take(140).collect());
        if raw == "*" {
            return Ok(Self::Any);
        }
        match raw.strip_suffix(".*") {
            Some(prefix) => EventType::parse(prefix)
                .map(|p| Self::Under(format!("{p}.")))
                .map_err(|_| malformed()),
            None => EventType::parse(raw)
                .map(|t| Self::Exact(t.to_string()))
                .map_err(|_| malformed()),
        }
    }

    fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::Exact(name) => name == event_type.as_str(),
            Self::Under(prefix) => event_type.as_str().starts_with(prefix.as_str()),
            Self::Any => true,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Under(prefix) => write!(f, "{prefix}*"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// An endpoint's event-type filter. Empty means every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter(Vec<Pattern>);

impl EventFilter {
    /// Every event type.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parse patterns (blank ones ignored), sorted and without repeats.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, FilterError> {
        let mut parsed = patterns
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| !p.trim().is_empty())
            .map(Pattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort();
        parsed.dedup();
        if parsed.len() > MAX_PATTERNS {
            return Err(FilterError::TooMany);
        }
        Ok(Self(parsed))
    }

    /// Parse a comma-separated list (`invoice.*,user.created`), as the CLI and forms take it.
    pub fn parse_list(list: &str) -> Result<Self, FilterError> {
        Self::parse(&list.split(',').collect::<Vec<_>>())
    }

    pub fn matches(&self, event_type: &EventType) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(event_type))
    }

    /// The patterns as written, for storage and display.
    pub fn patterns(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    pub fn is_all(&self) -> bool {
        self.0.is_empty() || self.0.contains(&Pattern::Any)
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("*");
        }
        f.write_str(&self.patterns().join(","))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(name: &str) -> EventType {
        EventType::parse(name).expect("type")
    }

    #[test]
    fn exact_names_and_wildcards_match() {
        let filter = EventFilter::parse(&["invoice.*", "user.created"]).expect("filter");
        assert!(filter.matches(&t("invoice.paid")));
        assert!(filter.matches(&t("invoice.payment.failed")));
        assert!(filter.matches(&t("user.created")));
        assert!(!filter.matches(&t("invoice")));
        assert!(!filter.matches(&t("user.deleted")));
        assert!(!filter.matches(&t("invoices.paid")));
        assert_eq!(filter.to_string(), "user.created,invoice.*");
    }

    #[test]
    fn empty_and_star_match_everything() {
        assert!(EventFilter::all().matches(&t("anything.at.all")));
        assert!(EventFilter::parse_list(" , ").expect("blank").is_all());
        assert!(EventFilter::parse(&["*"]).expect("star").matches(&t("x.y")));
    }

    #[test]
    fn malformed_patterns_are_refused_by_name() {
        for bad in [
            "inv*",
            "invoice.*.paid",
            "*.paid",
            "invoice..paid",
            "a#b",
            "invoice.**",
        ] {
            assert!(
                matches!(EventFilter::parse(&[bad]), Err(FilterError::Malformed(p)) if p == bad),
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("t{i}")).collect();
        assert_eq!(EventFilter::parse(&many), Err(FilterError::TooMany));
    }

    #[test]
    fn patterns_round_trip_sorted_without_repeats() {
        let filter = EventFilter::parse_list("user.created,invoice.*,user.created").expect("f");
        assert_eq!(filter.patterns(), ["user.created", "invoice.*"]);
        assert_eq!(EventFilter::parse(&filter.patterns()), Ok(filter));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = EventFilter::parse_list(&s);
        }
    }
}
