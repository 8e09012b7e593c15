//! Unpredictable numbers for the first tick's jitter and the first ping's sequence number,
//! from the standard library's randomly keyed SipHash: no extra dependency, no shared state
//! beyond one counter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A random `u64`, different at every call.
pub(crate) fn random_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Relaxed));
    hasher.finish()
}

/// The first ping's sequence number: unpredictable, so that pongs forged or replayed by a
/// peer do not match, and below 2^53 with room to count up, so that a JavaScript peer echoes
/// it exactly (its numbers are doubles) in a JSON heartbeat.
pub(crate) fn first_seq() -> u64 {
    random_u64() >> 12
}

/// A random delay in `(0, interval]`: never zero, so that a peer silent since the handshake
/// is still declared dead strictly after `interval * max_missed`.
pub(crate) fn first_tick_delay(interval: Duration) -> Duration {
    let span = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(1 + random_u64() % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_range_and_spread_out() {
        let interval = Duration::from_millis(100);
        let delays: Vec<Duration> = (0..1000).map(|_| first_tick_delay(interval)).collect();
        assert!(delays.iter().all(|d| !d.is_zero() && *d <= interval));
        // Ten buckets of 10 ms: 1000 uniform draws put at least 50 in each (expected 100;
        // the chance of any bucket below 50 is under 1e-6).
        for bucket in 0..10 {
            let lo = Duration::from_millis(bucket * 10);
            let hi = lo + Duration::from_millis(10);
            let n = delays.iter().filter(|d| **d > lo && **d <= hi).count();
            assert!(n >= 50, "bucket {bucket} has {n} of 1000 delays");
        }
    }

    #[test]
    fn first_sequence_numbers_are_exact_in_a_javascript_number() {
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        for _ in 0..1000 {
            assert!(first_seq() + (1 << 51) <= MAX_SAFE_INTEGER);
        }
    }

    #[test]
    fn one_nanosecond_interval_gives_one_nanosecond() {
        assert_eq!(
            first_tick_delay(Duration::from_nanos(1)),
            Duration::from_nanos(1)
        );
    }
}
