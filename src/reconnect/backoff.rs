//! The delay schedule of reconnection: exponential, capped, with full jitter. Pure: the
//! random draw is passed in.

use std::time::Duration;

/// How long to wait before each reconnection attempt, and when to give up.
///
/// The delay before the `n`-th retry (`n = 1` after the first failure) is drawn uniformly from
/// `[0, min(max_delay, initial × factor^(n-1))]`: "full jitter", so that a thousand clients
/// that lost the same server come back spread over the whole window instead of together.
///
/// | setting | default |
/// |---|---|
/// | [`initial`](Self::initial) | 500 ms |
/// | [`factor`](Self::factor) | 2 |
/// | [`max_delay`](Self::max_delay) | 30 s |
/// | [`max_retries`](Self::max_retries) | unlimited |
///
/// ```
/// use std::time::Duration;
/// use ws_heartbeat::reconnect::Backoff;
///
/// let backoff = Backoff::new().initial(Duration::from_millis(100)).max_delay(Duration::from_secs(1));
/// assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(400));
/// assert_eq!(backoff.ceiling(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use = "a Backoff does nothing until it is handed to `ReconnectBuilder::backoff`"]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max_delay: Duration,
    max_retries: Option<u32>,
}

impl Backoff {
    /// The defaults: 500 ms, doubling, at most 30 s, never giving up.
    pub const fn new() -> Self {
        Self {
            initial: Duration::from_millis(500),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            max_retries: None,
        }
    }

    /// The ceiling of the first retry's delay.
    pub const fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// How much the ceiling grows with each retry.
    ///
    /// # Panics
    /// If `factor` is below 1 or not finite.
    #[track_caller]
    pub fn factor(mut self, factor: f64) -> Self {
        assert!(
            factor.is_finite() && factor >= 1.0,
            "backoff factor must be finite and at least 1"
        );
        self.factor = factor;
        self
    }

    /// The largest ceiling.
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Reconnection attempts in a row after which the client gives up; `None` (the
    /// default): never. The count starts again once a connection has stayed up for the
    /// stability window. `Some(0)`: never reconnect.
    pub const fn max_retries(mut self, max_retries: Option<u32>) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The longest delay before the `retry`-th retry (`retry >= 1`).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(1024) as i32;
        let grown = self.initial.as_secs_f64() * self.factor.powi(exponent);
        if grown >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            Duration::from_secs_f64(grown)
        }
    }

    /// The delay before the `retry`-th retry, for a uniform random draw `random`.
    pub(crate) fn delay(&self, retry: u32, random: u64) -> Duration {
        // 53 random bits make a uniform fraction in [0, 1).
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        self.ceiling(retry).mul_f64(fraction)
    }

    /// Whether retry number `retry` (the first is 1) may be made.
    pub(crate) fn allows(&self, retry: u32) -> bool {
        self.max_retries.is_none_or(|max| retry <= max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::random_u64;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceilings_grow_by_the_factor_up_to_the_cap() {
        // 100, 200, 400, 800, 1 000 (cap), 1 000 ...
        let b = Backoff::new().initial(ms(100)).max_delay(ms(1000));
        let ceilings: Vec<_> = (1..=7).map(|n| b.ceiling(n)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000].map(ms));
        assert_eq!(b.ceiling(u32::MAX), ms(1000));
        let slow = Backoff::new()
            .initial(ms(100))
            .factor(1.5)
            .max_delay(ms(1000));
        assert_eq!(slow.ceiling(3), ms(225));
    }

    #[test]
    fn every_delay_lies_within_its_jitter_bounds_and_uses_the_whole_window() {
        let b = Backoff::new().initial(ms(100)).max_delay(ms(1000));
        for retry in 1..=8 {
            let ceiling = b.ceiling(retry);
            let delays: Vec<_> = (0..2000).map(|_| b.delay(retry, random_u64())).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "retry {retry}");
            // Full jitter: some delays in the lowest and in the highest tenth of the window.
            assert!(delays.iter().any(|d| *d < ceiling / 10), "retry {retry}");
            assert!(
                delays.iter().any(|d| *d > ceiling * 9 / 10),
                "retry {retry}"
            );
        }
        assert_eq!(b.delay(1, 0), Duration::ZERO);
        assert!(b.delay(1, u64::MAX) <= ms(100));
    }

    #[test]
    fn retries_are_limited_only_when_asked() {
        assert!(Backoff::new().allows(u32::MAX));
        let b = Backoff::new().max_retries(Some(3));
        assert!(b.allows(3) && !b.allows(4));
        assert!(!Backoff::new().max_retries(Some(0)).allows(1));
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn a_factor_below_one_is_rejected() {
        let _ = Backoff::new().factor(0.5);
    }
}
