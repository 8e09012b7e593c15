//! The settings of a heartbeat, their defaults, and the one place they are checked.
//!
//! What each setting means: [`HeartbeatLayer`](crate::HeartbeatLayer) and the crate docs,
//! "Semantics".

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

/// Every setting of one heartbeat: the interval it starts with, and the rules it keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// Where a connection starts. From then on the interval in force is in its hub
    /// (`wake::Shared`), where handles and the peer may change it.
    pub(crate) interval: Nanos,
    pub(crate) rules: Rules,
}

impl Config {
    pub(crate) const DEFAULT: Config = Config {
        interval: Nanos::new(DEFAULT_INTERVAL),
        rules: Rules::DEFAULT,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The settings a connection keeps for its life, copied into each: 7 bytes, packed, so that
/// the connection's one-byte flags fill the eighth (a connection's size is counted). The
/// switches in one byte, the close timeout in whole milliseconds (the timer rounds every
/// deadline up to one anyway), `max_missed` in the `u16` the pacemaker counts in. Its fields
/// are only ever copied out, never borrowed (a packed field cannot be).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, packed)]
pub(crate) struct Rules {
    close_timeout_ms: u32,
    max_missed: u16,
    switches: u8,
}

/// A checked duration (at most `MAX_DURATION`) in 8 bytes, where a `Duration` takes 16.
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

/// The on/off settings, bits of `Rules::switches`.
const ANY_INBOUND_IS_ALIVE: u8 = 1;
const IDLE_ONLY: u8 = 1 << 1;
const FORWARD_PINGS: u8 = 1 << 2;
const JITTER: u8 = 1 << 3;
/// The connection heartbeats with an application protocol (its hub's kit holds it): the
/// per-message path tests this bit, not the kit.
const APP_PROTOCOL: u8 = 1 << 4;
/// The connection is a session's socket: in a drain the session finishes itself (its
/// `finish`), so the heartbeat neither closes it at its moment nor at a first poll.
const SESSION_SOCKET: u8 = 1 << 5;

impl Rules {
    pub(crate) const DEFAULT: Rules = Rules {
        close_timeout_ms: DEFAULT_CLOSE_TIMEOUT.as_millis() as u32,
        max_missed: DEFAULT_MAX_MISSED as u16,
        switches: ANY_INBOUND_IS_ALIVE | JITTER,
    };

    const fn switch(self, bit: u8) -> bool {
        self.switches & bit != 0
    }

    const fn with_switch(mut self, bit: u8, on: bool) -> Self {
        self.switches = if on {
            self.switches | bit
        } else {
            self.switches & !bit
        };
        self
    }

    pub(crate) const fn max_missed(self) -> u32 {
        self.max_missed as u32
    }

    /// `max_missed` checked (`checked_max_missed`).
    pub(crate) const fn with_max_missed(mut self, max_missed: u32) -> Self {
        self.max_missed = checked_max_missed(max_missed) as u16;
        self
    }

    pub(crate) const fn close_timeout(self) -> Duration {
        Duration::from_millis(self.close_timeout_ms as u64)
    }

    /// The close timeout, checked (`checked_close_timeout`) and rounded up to whole
    /// milliseconds.
    pub(crate) const fn with_close_timeout(mut self, timeout: Duration) -> Self {
        let timeout = checked_close_timeout(timeout);
        let ms = timeout.as_millis() + (timeout.subsec_nanos() % 1_000_000 != 0) as u128;
        self.close_timeout_ms = ms as u32;
        self
    }

    pub(crate) const fn any_inbound_is_alive(self) -> bool {
        self.switch(ANY_INBOUND_IS_ALIVE)
    }

    pub(crate) const fn with_any_inbound_is_alive(self, on: bool) -> Self {
        self.with_switch(ANY_INBOUND_IS_ALIVE, on)
    }

    pub(crate) const fn idle_only(self) -> bool {
        self.switch(IDLE_ONLY)
    }

    pub(crate) const fn with_idle_only(self, on: bool) -> Self {
        self.with_switch(IDLE_ONLY, on)
    }

    pub(crate) const fn session_socket(self) -> bool {
        self.switch(SESSION_SOCKET)
    }

    #[cfg_attr(not(feature = "resume"), allow(dead_code))]
    pub(crate) const fn with_session_socket(self, on: bool) -> Self {
        self.with_switch(SESSION_SOCKET, on)
    }

    pub(crate) const fn app_protocol(self) -> bool {
        self.switch(APP_PROTOCOL)
    }

    pub(crate) const fn with_app_protocol(self, on: bool) -> Self {
        self.with_switch(APP_PROTOCOL, on)
    }

    pub(crate) const fn forward_pings(self) -> bool {
        self.switch(FORWARD_PINGS)
    }

    pub(crate) const fn with_forward_pings(self, on: bool) -> Self {
        self.with_switch(FORWARD_PINGS, on)
    }

    pub(crate) const fn jitter(self) -> bool {
        self.switch(JITTER)
    }

    pub(crate) const fn with_jitter(self, on: bool) -> Self {
        self.with_switch(JITTER, on)
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("interval", &self.interval.get());
        self.rules.fields(&mut d).finish()
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fields(&mut f.debug_struct("Rules")).finish()
    }
}

impl Rules {
    fn fields<'a, 'b, 'c>(
        &self,
        d: &'a mut std::fmt::DebugStruct<'b, 'c>,
    ) -> &'a mut std::fmt::DebugStruct<'b, 'c> {
        d.field("max_missed", &self.max_missed())
            .field("any_inbound_is_alive", &self.any_inbound_is_alive())
            .field("idle_only", &self.idle_only())
            .field("forward_pings", &self.forward_pings())
            .field("jitter", &self.jitter())
            .field("close_timeout", &self.close_timeout())
    }
}

impl Default for Rules {
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
        assert_eq!(Config::default().interval.get(), Duration::from_secs(10));
        let c = Config::default().rules;
        assert_eq!(c.max_missed(), 3);
        assert!(c.any_inbound_is_alive());
        assert!(!c.idle_only());
        assert!(!c.forward_pings());
        assert!(c.jitter());
        assert_eq!(c.close_timeout(), Duration::from_secs(1));
        // Seven bytes, so that a connection's flags fill the eighth.
        assert_eq!(std::mem::size_of::<Rules>(), 7);
    }

    #[test]
    fn each_switch_and_the_close_timeout_are_kept_on_their_own() {
        let c = Rules::default()
            .with_idle_only(true)
            .with_any_inbound_is_alive(false)
            .with_max_missed(65_535)
            .with_close_timeout(Duration::from_micros(2_001));
        assert!(c.idle_only() && !c.any_inbound_is_alive() && c.jitter() && !c.forward_pings());
        assert_eq!(c.max_missed(), 65_535);
        // Rounded up: never given up before the time asked for.
        assert_eq!(c.close_timeout(), Duration::from_millis(3));
        let c = c
            .with_forward_pings(true)
            .with_jitter(false)
            .with_idle_only(false);
        assert!(!c.idle_only() && !c.any_inbound_is_alive() && !c.jitter() && c.forward_pings());
        assert_eq!(
            c.with_close_timeout(Duration::ZERO).close_timeout(),
            Duration::ZERO
        );
        assert_eq!(
            c.with_close_timeout(MAX_DURATION).close_timeout(),
            MAX_DURATION
        );
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
