//! Reading a function's settings from its environment, the way every function does: required
//! names fail the cold start with a clear message, optional ones fall back to a default.

use std::{fmt::Display, str::FromStr, time::Duration};

use thiserror::Error;

use crate::{
    record::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS},
    retry::{RetrySchedule, SQS_MAX_VISIBILITY},
};

/// How long a processor's claim holds when the deployment says nothing: longer than the
/// processor's timeout, so a live processor never loses it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The shortest lease a deployment may set: one second past the processor's 30 s timeout.
pub const MIN_LEASE_SECS: u64 = 31;

/// A missing or unreadable setting: the function refuses to start rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Settings looked up through a function, so tests never touch the process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env<F>(pub F);

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A value that must be present and non-empty.
    pub fn required(&self, name: &'static str) -> Result<String, EnvError> {
        (self.0)(name)
            .filter(|v| !v.is_empty())
            .ok_or(EnvError::Missing(name))
    }

    /// A value parsed with `FromStr`, or `default` when unset.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match (self.0)(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| EnvError::Invalid {
                name,
                problem: e.to_string(),
            }),
        }
    }

    /// A whole number within `range`, or `default` when unset: a deployment parameter past
    /// what the code or the store can hold fails the cold start, not a request later.
    pub fn parsed_within<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, EnvError>
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.parsed_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(EnvError::Invalid {
                name,
                problem: format!("must be between {} and {}", range.start(), range.end()),
            })
        }
    }

    /// `RETRY_SCHEDULE`: the processor's attempts, which the queue's `maxReceiveCount` and
    /// reconcile's patience follow. One reading for every function and `hookctl`.
    pub fn retry_schedule(&self) -> Result<RetrySchedule, EnvError> {
        self.parsed_or("RETRY_SCHEDULE", RetrySchedule::default())
    }

    /// `LEASE_SECS`: how long a processor's claim holds: longer than the processor's 30 s
    /// timeout (so a live processor never loses it), at most SQS's 12 h visibility limit.
    pub fn lease(&self) -> Result<Duration, EnvError> {
        let secs = self.parsed_within(
            "LEASE_SECS",
            DEFAULT_LEASE.as_secs(),
            MIN_LEASE_SECS..=SQS_MAX_VISIBILITY.as_secs(),
        )?;
        Ok(Duration::from_secs(secs))
    }

    /// `RETENTION_DAYS`: how long processed and discarded records are kept, at most
    /// [`MAX_RETENTION_DAYS`].
    pub fn retention(&self) -> Result<Duration, EnvError> {
        let days: u64 = self.parsed_or("RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?;
        if days == 0 || days > MAX_RETENTION_DAYS {
            return Err(EnvError::Invalid {
                name: "RETENTION_DAYS",
                problem: format!("must be between 1 and {MAX_RETENTION_DAYS} days"),
            });
        }
        Ok(Duration::from_secs(days * 24 * 60 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_bounded_and_defaults_to_thirty_days() {
        assert_eq!(
            env(&[]).retention(),
            Ok(Duration::from_secs(30 * 24 * 60 * 60))
        );
        for bad in ["0", "3651", "18446744073709551615", "-1"] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("RETENTION_DAYS", bad)]));
            assert!(env(pairs).retention().is_err(), "{bad}");
        }
        assert!(env(&[("LEASE_SECS", "30")]).lease().is_err());
        assert!(env(&[("LEASE_SECS", "43201")]).lease().is_err());
        assert_eq!(env(&[]).lease(), Ok(DEFAULT_LEASE));
        assert_eq!(
            env(&[("RETRY_SCHEDULE", "0,5")])
                .retry_schedule()
                .map(|s| s.max_attempts()),
            Ok(2)
        );
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn required_values_must_be_present_and_non_empty() {
        let e = env(&[("A", "x"), ("B", "")]);
        assert_eq!(e.required("A"), Ok("x".into()));
        assert_eq!(e.required("B"), Err(EnvError::Missing("B")));
        assert_eq!(e.required("C"), Err(EnvError::Missing("C")));
    }

    #[test]
    fn parsed_values_default_when_unset_and_fail_when_unreadable() {
        let e = env(&[("N", " 42 "), ("BAD", "lots")]);
        assert_eq!(e.parsed_or("N", 1u64), Ok(42));
        assert_eq!(e.parsed_or("UNSET", 7u64), Ok(7));
        assert!(matches!(
            e.parsed_or("BAD", 1u64),
            Err(EnvError::Invalid { name: "BAD", .. })
        ));
    }
}
