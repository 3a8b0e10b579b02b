//! The slow lane: an endpoint that answers, but slowly, must not hold the dispatcher's
//! concurrency that every other endpoint shares.
//!
//! Two signals, one durable and one local:
//! - **Slow, for everyone** ([`super::endpoint::EndpointHealth::slow_since`]): an attempt that
//!   took [`SLOW_AFTER`] or timed out marks the endpoint slow; the main lane then sends its
//!   deliveries to the slow lane (its own queue, consumed with a small bounded concurrency)
//!   without attempting them. An attempt there that answers within [`FAST_BELOW`] clears the
//!   mark, and its deliveries come back to the main lane. Written on those changes only.
//! - **Unproven, in this process** ([`Flights`]): until one of its attempts here answered
//!   within [`FAST_BELOW`], an endpoint has at most [`UNPROVEN_IN_FLIGHT`] attempts in flight
//!   in this process; the others come back in a second. So the attempts that discover an
//!   endpoint has turned slow hold a few slots of each dispatcher, never all of them.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    delivery::{ErrorClass, Exchange},
    ids::EndpointId,
};
use crate::{adapters::lock, ids::TenantId};

/// An attempt that takes this long (or times out) marks its endpoint slow.
pub const SLOW_AFTER: Duration = Duration::from_secs(5);
/// An attempt answered within this proves its endpoint fast (and clears a slow mark).
pub const FAST_BELOW: Duration = Duration::from_secs(1);
/// How many attempts an endpoint not proven fast may have in flight in one process.
pub const UNPROVEN_IN_FLIGHT: u32 = 2;
/// How many endpoints one process remembers (the least recently seen are forgotten first).
const REMEMBERED: usize = 10_000;

/// What an attempt says about its endpoint's speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Fast,
    /// Neither: it changes nothing.
    Steady,
    Slow,
}

/// The pace of an attempt: answered (any status) within [`FAST_BELOW`], or slower than
/// [`SLOW_AFTER`] or timed out. Connection failures say nothing about speed.
pub fn pace(exchange: &Exchange) -> Pace {
    let timed_out = matches!(exchange.error, Some((ErrorClass::Timeout, _)));
    if timed_out || exchange.latency >= SLOW_AFTER {
        Pace::Slow
    } else if exchange.status.is_some() && exchange.latency < FAST_BELOW {
        Pace::Fast
    } else {
        Pace::Steady
    }
}

#[derive(Debug, Default)]
struct Flight {
    in_flight: u32,
    proven_fast: bool,
}

type Key = (TenantId, EndpointId);

/// Attempts in flight per endpoint in this process, and which endpoints answered fast here.
#[derive(Debug, Clone)]
pub struct Flights {
    state: Arc<Mutex<lru::LruCache<Key, Flight>>>,
}

impl Default for Flights {
    fn default() -> Self {
        let size = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self {
            state: Arc::new(Mutex::new(lru::LruCache::new(size))),
        }
    }
}

impl Flights {
    /// Let one more attempt to the endpoint go, unless it is not proven fast and has
    /// [`UNPROVEN_IN_FLIGHT`] in flight already. The ticket counts it until dropped.
    pub fn admit(&self, tenant: &TenantId, endpoint: &EndpointId) -> Option<Ticket> {
        let key = (tenant.clone(), endpoint.clone());
        let mut state = lock(&self.state);
        let flight = state.get_or_insert_mut(key.clone(), Flight::default);
        if !flight.proven_fast && flight.in_flight >= UNPROVEN_IN_FLIGHT {
            return None;
        }
        flight.in_flight += 1;
        Some(Ticket {
            flights: self.clone(),
            key,
        })
    }

    /// Note an attempt's pace: fast proves the endpoint here, slow takes the proof back.
    pub fn observe(&self, tenant: &TenantId, endpoint: &EndpointId, pace: Pace) {
        let mut state = lock(&self.state);
        if let Some(flight) = state.get_mut(&(tenant.clone(), endpoint.clone())) {
            match pace {
                Pace::Fast => flight.proven_fast = true,
                Pace::Slow => flight.proven_fast = false,
                Pace::Steady => {}
            }
        }
    }

    fn land(&self, key: &Key) {
        if let Some(flight) = lock(&self.state).get_mut(key) {
            flight.in_flight = flight.in_flight.saturating_sub(1);
        }
    }

    #[cfg(test)]
    fn in_flight(&self, tenant: &TenantId, endpoint: &EndpointId) -> u32 {
        lock(&self.state)
            .peek(&(tenant.clone(), endpoint.clone()))
            .map_or(0, |f| f.in_flight)
    }
}

/// One attempt in flight; counted until dropped, whichever way the attempt ends.
#[derive(Debug)]
pub struct Ticket {
    flights: Flights,
    key: Key,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.flights.land(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(status: Option<u16>, latency_ms: u64, error: Option<ErrorClass>) -> Exchange {
        Exchange {
            status,
            retry_after: None,
            body: String::new(),
            latency: Duration::from_millis(latency_ms),
            error: error.map(|class| (class, "x".to_owned())),
        }
    }

    #[test]
    fn an_attempts_pace_is_read_from_its_latency_and_timeouts() {
        assert_eq!(pace(&exchange(Some(200), 80, None)), Pace::Fast);
        assert_eq!(
            pace(&exchange(Some(500), 80, Some(ErrorClass::HttpStatus))),
            Pace::Fast
        );
        assert_eq!(pace(&exchange(Some(200), 2_000, None)), Pace::Steady);
        assert_eq!(pace(&exchange(Some(200), 5_000, None)), Pace::Slow);
        assert_eq!(
            pace(&exchange(None, 3_000, Some(ErrorClass::Timeout))),
            Pace::Slow
        );
        assert_eq!(
            pace(&exchange(None, 10, Some(ErrorClass::Connection))),
            Pace::Steady
        );
    }

    #[test]
    fn an_unproven_endpoint_has_two_attempts_in_flight_a_proven_one_any_number() {
        let flights = Flights::default();
        let tenant = TenantId::parse("acme").expect("tenant");
        let endpoint = EndpointId::parse("ep_1").expect("endpoint");

        let first = flights.admit(&tenant, &endpoint).expect("first");
        let second = flights.admit(&tenant, &endpoint).expect("second");
        assert!(flights.admit(&tenant, &endpoint).is_none(), "a third waits");
        drop(first);
        let third = flights.admit(&tenant, &endpoint).expect("a slot landed");

        flights.observe(&tenant, &endpoint, Pace::Fast);
        let many: Vec<Ticket> = (0..50)
            .map(|_| flights.admit(&tenant, &endpoint).expect("proven"))
            .collect();
        assert_eq!(flights.in_flight(&tenant, &endpoint), 52);

        // Slow again: back to two, once those in flight land.
        flights.observe(&tenant, &endpoint, Pace::Slow);
        assert!(flights.admit(&tenant, &endpoint).is_none());
        drop(many);
        drop((second, third));
        assert_eq!(flights.in_flight(&tenant, &endpoint), 0);
        assert!(flights.admit(&tenant, &endpoint).is_some());
    }
}
