//! Injected time. Verification windows, leases, backoff and retention all read a [`Clock`], so
//! tests move time by hand instead of sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// The machine's clock, used by the deployed functions.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<SystemTime>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock standing at `unix_secs` seconds after the epoch.
    pub fn at_unix(unix_secs: u64) -> Self {
        Self(std::sync::Mutex::new(
            UNIX_EPOCH + Duration::from_secs(unix_secs),
        ))
    }

    pub fn set(&self, to: SystemTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whole seconds since the Unix epoch; times before it count as 0.
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch; times before it count as 0.
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The instant `millis` milliseconds after the epoch (negative values clamp to the epoch).
pub fn from_unix_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// `t` as RFC 3339 in UTC, to the second (`2026-12-07T22:56:06Z`): how JSON answers show times.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs(t))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix(1_700_000_000);
        assert_eq!(unix_secs(clock.now()), 1_700_000_000);
        clock.advance(Duration::from_secs(90));
        assert_eq!(unix_secs(clock.now()), 1_700_000_090);
    }

    #[test]
    fn millis_round_trip() {
        let t = from_unix_millis(1_700_000_000_123);
        assert_eq!(unix_millis(t), 1_700_000_000_123);
        assert_eq!(unix_millis(from_unix_millis(-5)), 0);
    }
}
