//! When a failed event runs again. The processor sets the SQS message's visibility to the
//! delay for the attempt that failed; the schedule's length is the number of attempts, which
//! must match the queue's `maxReceiveCount` so SQS redrives to the DLQ exactly when the
//! schedule gives up. Randomness is injected, so tests never depend on chance.

use std::{fmt, str::FromStr, time::Duration};

use thiserror::Error;

/// SQS's longest visibility timeout, counted from when the message was received.
pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// The delays between attempts, with jitter so failures that happen together (an outage)
/// do not retry together.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[n]` is how long attempt `n + 1` waits; `delays[0]` is the first delivery's.
    delays: Vec<Duration>,
    /// The jitter's half-width as a fraction of the delay: 0.2 spreads a delay over ±20 %.
    jitter: f64,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("a retry schedule needs at least one attempt")]
    Empty,
    #[error("retry delay {position} is not a whole number of seconds")]
    NotSeconds { position: usize },
    #[error("retry delay {position} is longer than SQS's 43200 s visibility limit")]
    TooLong { position: usize },
}

impl Default for RetrySchedule {
    /// Immediate, 1 min, 5 min, 30 min, 2 h, 12 h: six attempts, ±20 % jitter.
    fn default() -> Self {
        Self {
            delays: [0, 60, 300, 1_800, 7_200, 43_200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// A schedule with these delays (the first is the first delivery's) and ±20 % jitter.
    pub fn new(delays: Vec<Duration>) -> Result<Self, ScheduleError> {
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(position) = delays.iter().position(|d| *d > SQS_MAX_VISIBILITY) {
            return Err(ScheduleError::TooLong {
                position: position + 1,
            });
        }
        Ok(Self {
            delays,
            jitter: 0.2,
        })
    }

    /// Use `fraction` (clamped to 0..=1) as the jitter's half-width; 0 turns jitter off.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// How many attempts an event gets: the queue's `maxReceiveCount`.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX)
    }

    /// The longest wait between two attempts.
    pub fn longest_delay(&self) -> Duration {
        self.delays.iter().copied().max().unwrap_or_default()
    }

    /// Whether `attempt` (1-based) is the last one: if it fails, the event is dead.
    pub fn is_last(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts()
    }

    /// How long to wait after attempt `attempt` (1-based) failed, before attempt
    /// `attempt + 1`, in whole seconds (SQS's unit): the schedule's delay moved by up to
    /// ±jitter, never negative and never over 12 h. `jitter` yields numbers in 0..1; a
    /// number outside is clamped. Past the last attempt the last delay repeats.
    pub fn delay_for(&self, attempt: u32, jitter: &mut impl FnMut() -> f64) -> Duration {
        let index = usize::try_from(attempt)
            .unwrap_or(usize::MAX)
            .min(self.delays.len() - 1);
        let base = self.delays[index].as_secs_f64();
        let r = jitter();
        let r = if r.is_nan() { 0.5 } else { r.clamp(0.0, 1.0) };
        let secs = (base * (1.0 + self.jitter * (2.0 * r - 1.0))).round();
        let max = SQS_MAX_VISIBILITY.as_secs_f64();
        // `as` saturates, and the value is already within 0..=43200.
        Duration::from_secs(secs.clamp(0.0, max) as u64)
    }
}

/// `delay` shortened so the message's total visibility, counted from when SQS delivered it
/// (`in_flight` ago), stays within SQS's 12 h: SQS rejects a longer one rather than trim it.
pub fn within_sqs_limit(delay: Duration, in_flight: Duration) -> Duration {
    delay.min(SQS_MAX_VISIBILITY.saturating_sub(in_flight))
}

impl FromStr for RetrySchedule {
    type Err = ScheduleError;

    /// Seconds per attempt, comma-separated: `"0,60,300,1800,7200,43200"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(ScheduleError::Empty);
        }
        let delays = s
            .split(',')
            .enumerate()
            .map(|(i, part)| {
                part.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ScheduleError::NotSeconds { position: i + 1 })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(delays)
    }
}

impl fmt::Display for RetrySchedule {
    /// The configuration string the schedule parses from (jitter aside).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.delays.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", d.as_secs())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn no_jitter() -> impl FnMut() -> f64 {
        || 0.5
    }

    #[test]
    fn the_default_is_six_attempts_from_immediate_to_twelve_hours() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 6);
        assert_eq!(s.to_string(), "0,60,300,1800,7200,43200");
        let delays: Vec<_> = (0..6).map(|a| s.delay_for(a, &mut no_jitter())).collect();
        assert_eq!(
            delays,
            [
                secs(0),
                secs(60),
                secs(300),
                secs(1800),
                secs(7200),
                secs(43200)
            ]
        );
    }

    #[test]
    fn the_sixth_attempt_is_the_last() {
        let s = RetrySchedule::default();
        assert!(!s.is_last(5));
        assert!(s.is_last(6));
        assert!(s.is_last(7));
    }

    #[test]
    fn jitter_spreads_twenty_percent_either_way() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_for(1, &mut || 0.0), secs(48));
        assert_eq!(s.delay_for(1, &mut || 1.0), secs(72));
        assert_eq!(s.delay_for(2, &mut || 0.25), secs(270));
        assert_eq!(s.delay_for(0, &mut || 1.0), secs(0));
    }

    #[test]
    fn jitter_never_passes_sqs_limit_nor_goes_negative() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_for(5, &mut || 1.0), SQS_MAX_VISIBILITY);
        assert_eq!(s.delay_for(99, &mut || 1.0), SQS_MAX_VISIBILITY);
        let wide = RetrySchedule::default().with_jitter(5.0);
        assert_eq!(wide.delay_for(1, &mut || 0.0), secs(0));
        assert_eq!(s.delay_for(1, &mut || f64::NAN), secs(60));
        assert_eq!(s.delay_for(1, &mut || -3.0), secs(48));
    }

    #[test]
    fn jitter_can_be_turned_off() {
        let s = RetrySchedule::default().with_jitter(0.0);
        assert_eq!(s.delay_for(3, &mut || 0.0), secs(1800));
    }

    #[test]
    fn the_remaining_visibility_caps_the_delay() {
        assert_eq!(within_sqs_limit(secs(43_200), secs(30)), secs(43_170));
        assert_eq!(within_sqs_limit(secs(60), secs(30)), secs(60));
        assert_eq!(within_sqs_limit(secs(60), secs(50_000)), secs(0));
    }

    #[test]
    fn schedules_parse_from_configuration() {
        let s: RetrySchedule = " 0, 30 ,120".parse().expect("schedule");
        assert_eq!(s.max_attempts(), 3);
        assert_eq!(s.to_string(), "0,30,120");
        assert_eq!(
            RetrySchedule::default().to_string().parse(),
            Ok(RetrySchedule::default())
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_its_position() {
        assert_eq!("".parse::<RetrySchedule>(), Err(ScheduleError::Empty));
        assert_eq!(
            "0,1m".parse::<RetrySchedule>(),
            Err(ScheduleError::NotSeconds { position: 2 })
        );
        assert_eq!(
            "0,-5".parse::<RetrySchedule>(),
            Err(ScheduleError::NotSeconds { position: 2 })
        );
        assert_eq!(
            "0,60,".parse::<RetrySchedule>(),
            Err(ScheduleError::NotSeconds { position: 3 })
        );
        assert_eq!(
            "43201".parse::<RetrySchedule>(),
            Err(ScheduleError::TooLong { position: 1 })
        );
        assert_eq!(RetrySchedule::new(vec![]), Err(ScheduleError::Empty));
    }

    proptest! {
        #[test]
        fn delays_stay_within_the_jitter_band(attempt in 0u32..10, r in 0.0f64..1.0) {
            let s = RetrySchedule::default();
            let base = s.delay_for(attempt, &mut || 0.5).as_secs_f64();
            let d = s.delay_for(attempt, &mut || r).as_secs_f64();
            prop_assert!(d >= (base * 0.8).floor() && d <= (base * 1.2).ceil());
            prop_assert!(d <= SQS_MAX_VISIBILITY.as_secs_f64());
        }
    }
}
