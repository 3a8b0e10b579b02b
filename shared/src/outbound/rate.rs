//! An endpoint's rate limit as a schedule of slots (the generic cell rate algorithm).
//!
//! Each delivery over the limit reserves the next free slot once and is hidden until then, so
//! a backlog waits in line instead of asking every second: it spends neither the queue's
//! receives (no false dead letters) nor the limiter's writes. The limiter keeps one time per
//! endpoint: when its next free slot begins. A delivery whose slot begins within the coming
//! second goes now, so `limit` deliveries may go at once after a quiet spell, and a backlog
//! then goes out evenly spaced.

use std::time::{Duration, SystemTime};

/// How far ahead a slot may begin and its delivery still go now: a second's worth of slots.
pub const BURST: Duration = Duration::from_secs(1);

/// The time between two slots of an endpoint limited to `limit` deliveries per second.
pub fn interval(limit: u32) -> Duration {
    BURST / limit.max(1)
}

/// Reserve the next free slot: when it begins, and the next free slot after it. `next_free`
/// is the limiter's stored time (none yet, or in the past: the endpoint is idle).
pub fn reserve(
    next_free: Option<SystemTime>,
    limit: u32,
    now: SystemTime,
) -> (SystemTime, SystemTime) {
    let slot = next_free.filter(|free| *free > now).unwrap_or(now);
    (slot, slot + interval(limit))
}

/// Whether a delivery holding `slot` may go at `now`.
pub fn goes_now(slot: SystemTime, now: SystemTime) -> bool {
    slot < now + BURST
}

/// How long a delivery whose slot is not near waits: to the slot, in the whole seconds the
/// queue's delays are counted in, so it never comes back before it.
pub fn wait_for(slot: SystemTime, now: SystemTime) -> Duration {
    let wait = slot.duration_since(now).unwrap_or_default();
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn an_idle_endpoint_gives_the_slot_now() {
        assert_eq!(reserve(None, 4, at(10_000)), (at(10_000), at(10_250)));
        // A next free slot in the past is idle time, not credit for a larger burst.
        assert_eq!(
            reserve(Some(at(1_000)), 4, at(10_000)),
            (at(10_000), at(10_250))
        );
    }

    #[test]
    fn a_backlog_goes_a_second_at_once_then_evenly_spaced() {
        let now = at(10_000);
        let mut next = None;
        let mut slots = Vec::new();
        for _ in 0..10 {
            let (slot, free) = reserve(next, 4, now);
            slots.push(slot);
            next = Some(free);
        }
        let going: Vec<bool> = slots.iter().map(|s| goes_now(*s, now)).collect();
        assert_eq!(
            going,
            [
                true, true, true, true, false, false, false, false, false, false
            ]
        );
        assert_eq!(slots[4], at(11_000));
        assert_eq!(slots[9], at(12_250));
        assert_eq!(wait_for(slots[4], now), Duration::from_secs(1));
        // Rounded up: the queue never brings it back before its slot.
        assert_eq!(wait_for(slots[9], now), Duration::from_secs(3));
        assert_eq!(wait_for(slots[9], at(13_000)), Duration::ZERO);
    }

    #[test]
    fn a_limit_of_zero_is_read_as_one() {
        assert_eq!(interval(0), Duration::from_secs(1));
        assert_eq!(interval(1000), Duration::from_millis(1));
    }
}
