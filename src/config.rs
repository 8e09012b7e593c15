//! The settings of a heartbeat, their defaults, and the one place they are checked.
//!
//! The design: ARCHITECTURE.md, "Liveness: life, misses, death".

use std::time::Duration;

/// Default time between two ticks of the pacemaker.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default number of unanswered pings after which the peer is dead.
pub(crate) const DEFAULT_MAX_MISSED: u32 = 3;
/// Default time a best-effort Close frame may take after the peer was declared dead.
pub(crate) const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted interval or close timeout. Far beyond any useful heartbeat; it keeps
/// `Instant + interval * (max_missed + 1)` away from overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Every setting of one heartbeat. Copied into each connection, so it stays small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) interval: Nanos,
    pub(crate) max_missed: u32,
    pub(crate) any_inbound_is_alive: bool,
    pub(crate) idle_only: bool,
    pub(crate) forward_pings: bool,
    pub(crate) jitter: bool,
    pub(crate) close_timeout: Nanos,
}

/// A checked duration (at most `MAX_DURATION`) in 8 bytes, where a `Duration` takes 16:
/// every connection keeps two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Nanos(u64);

impl Nanos {
    /// `d` must have been checked against `MAX_DURATION`, which fits with room to spare.
    pub(crate) const fn new(d: Duration) -> Self {
        Self(d.as_nanos() as u64)
    }

    pub(crate) const fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl Config {
    pub(crate) const DEFAULT: Config = Config {
        interval: Nanos::new(DEFAULT_INTERVAL),
        max_missed: DEFAULT_MAX_MISSED,
        any_inbound_is_alive: true,
        idle_only: false,
        forward_pings: false,
        jitter: true,
        close_timeout: Nanos::new(DEFAULT_CLOSE_TIMEOUT),
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Checks an interval: every way of setting one (layer or live handle) goes through here.
#[track_caller]
pub(crate) const fn checked_interval(interval: Duration) -> Duration {
    assert!(
        !interval.is_zero(),
        "heartbeat interval must be greater than zero"
    );
    assert!(
        interval.as_nanos() <= MAX_DURATION.as_nanos(),
        "heartbeat interval must be at most 24 hours"
    );
    interval
}

/// The bounds within which a connection follows the interval its peer's application pings
/// ask for (`HeartbeatLayer::follow_peer_interval`). Kept with the application protocol, not
/// in `Config`: only such connections need it, and `Config` is copied into every one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Follow {
    min: Nanos,
    max: Nanos,
}

impl Follow {
    /// The bounds, each checked like an interval, `min` at most `max`.
    #[track_caller]
    pub(crate) const fn new(min: Duration, max: Duration) -> Self {
        let (min, max) = (checked_interval(min), checked_interval(max));
        assert!(
            min.as_nanos() <= max.as_nanos(),
            "the peer's interval bounds must have min <= max"
        );
        Self {
            min: Nanos::new(min),
            max: Nanos::new(max),
        }
    }

    pub(crate) const fn bounds(self) -> (Duration, Duration) {
        (self.min.get(), self.max.get())
    }

    /// The interval a peer's request comes to: a peer may not ask for an hour, nor for a
    /// microsecond.
    pub(crate) fn clamp(self, requested: Duration) -> Duration {
        requested.clamp(self.min.get(), self.max.get())
    }
}

/// Checks the number of unanswered pings that make a peer dead. The pacemaker counts misses
/// in a `u16` (a connection's size is counted); more than 65 535 would not be a heartbeat.
#[track_caller]
pub(crate) const fn checked_max_missed(max_missed: u32) -> u32 {
    assert!(max_missed > 0, "max_missed must be at least 1");
    assert!(
        max_missed <= u16::MAX as u32,
        "max_missed must be at most 65535"
    );
    max_missed
}

/// Checks the close timeout (zero is allowed: give up on the Close frame at once).
#[track_caller]
pub(crate) const fn checked_close_timeout(timeout: Duration) -> Duration {
    assert!(
        timeout.as_nanos() <= MAX_DURATION.as_nanos(),
        "close timeout must be at most 24 hours"
    );
    timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.interval.get(), Duration::from_secs(10));
        assert_eq!(c.max_missed, 3);
        assert!(c.any_inbound_is_alive);
        assert!(!c.idle_only);
        assert!(!c.forward_pings);
        assert!(c.jitter);
        assert_eq!(c.close_timeout.get(), Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "greater than zero")]
    fn zero_interval_is_rejected() {
        checked_interval(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "at most 24 hours")]
    fn huge_interval_is_rejected() {
        checked_interval(MAX_DURATION + Duration::from_nanos(1));
    }

    #[test]
    fn day_long_interval_is_accepted() {
        assert_eq!(checked_interval(MAX_DURATION), MAX_DURATION);
    }

    #[test]
    fn a_peer_interval_is_clamped_into_the_bounds() {
        let follow = Follow::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            follow.bounds(),
            (Duration::from_millis(100), Duration::from_secs(2))
        );
        assert_eq!(follow.clamp(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(
            follow.clamp(Duration::from_secs(3600)),
            Duration::from_secs(2)
        );
        assert_eq!(
            follow.clamp(Duration::from_nanos(1)),
            Duration::from_millis(100)
        );
        let exact = Follow::new(Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(exact.clamp(Duration::from_secs(9)), Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "min <= max")]
    fn peer_interval_bounds_in_the_wrong_order_are_rejected() {
        Follow::new(Duration::from_secs(2), Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "greater than zero")]
    fn a_zero_peer_interval_minimum_is_rejected() {
        Follow::new(Duration::ZERO, Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "at most 24 hours")]
    fn a_peer_interval_maximum_over_a_day_is_rejected() {
        Follow::new(
            Duration::from_secs(1),
            MAX_DURATION + Duration::from_nanos(1),
        );
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn zero_max_missed_is_rejected() {
        checked_max_missed(0);
    }

    #[test]
    #[should_panic(expected = "max_missed must be at most 65535")]
    fn max_missed_over_u16_is_rejected() {
        checked_max_missed(65_536);
    }

    #[test]
    fn max_missed_up_to_u16_is_accepted() {
        assert_eq!(checked_max_missed(1), 1);
        assert_eq!(checked_max_missed(65_535), 65_535);
    }

    #[test]
    #[should_panic(expected = "at most 24 hours")]
    fn huge_close_timeout_is_rejected() {
        checked_close_timeout(Duration::MAX);
    }
}
