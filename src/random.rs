//! Unpredictable numbers for the first tick's jitter and the first ping's sequence number,
//! from the standard library's randomly keyed SipHash: no extra dependency, no shared state
//! beyond one counter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

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

/// How many moments of an interval first ticks are spread over.
const JITTER_SLOTS: u64 = 128;

/// The moment of a connection's first tick, for a connection starting `now`: random within
/// `(now, now + interval]`, so that connections opened together do not ping together, and
/// never `now` itself, so that a peer silent since the handshake is declared dead strictly
/// after `interval * max_missed`.
///
/// Not any moment, though: one of a process-wide grid of moments `JITTER_SLOTS` per interval
/// apart (in whole milliseconds, the timer's resolution). Later ticks follow every interval,
/// so they stay on the grid. Connections then ping in 128 waves per interval, not all at
/// once, while the runtime's timer wakes at most 128 times per interval instead of once per
/// connection: at 10 000 connections on a 2 s interval, jitter to the nanosecond cost 3.6
/// times the CPU of no jitter at all (BENCHMARKS.md).
pub(crate) fn first_tick(now: Instant, interval: Duration) -> Instant {
    static ANCHOR: OnceLock<std::time::Instant> = OnceLock::new();
    let step = Duration::from_millis((interval.as_millis() as u64 / JITTER_SLOTS).max(1));
    // The timer may fire up to 1 ms after its deadline: keep that inside the interval.
    let latest = interval.saturating_sub(Duration::from_millis(1));
    if latest < step {
        return now + interval;
    }
    let anchor = *ANCHOR.get_or_init(|| now.into_std());
    let step_nanos = step.as_nanos();
    let phase = match now.into_std().checked_duration_since(anchor) {
        Some(since) => since.as_nanos() % step_nanos,
        None => (step_nanos - (anchor - now.into_std()).as_nanos() % step_nanos) % step_nanos,
    };
    // From now to the next grid moment, in (0, step].
    let to_grid = Duration::from_nanos((step_nanos - phase) as u64);
    let moments = 1 + ((latest - to_grid).as_nanos() / step_nanos) as u64;
    now + to_grid + step * (random_u64() % moments) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ticks_stay_in_range_spread_out_and_share_a_grid() {
        let interval = Duration::from_millis(1280);
        let now = Instant::now();
        let ticks: Vec<Instant> = (0..1000).map(|_| first_tick(now, interval)).collect();
        assert!(
            ticks
                .iter()
                .all(|t| *t > now && *t <= now + interval - Duration::from_millis(1))
        );
        // Ten buckets of 128 ms: 1 000 uniform draws put at least 50 in each (expected 100;
        // the chance of any bucket below 50 is under 1e-6).
        for bucket in 0..10u32 {
            let lo = now + Duration::from_millis(128) * bucket;
            let n = ticks
                .iter()
                .filter(|t| **t > lo && **t <= lo + Duration::from_millis(128))
                .count();
            assert!(n >= 50, "bucket {bucket} has {n} of 1000");
        }
        // Connections starting at other moments land on the same grid: 10 ms apart.
        let later = now + Duration::from_micros(3_217);
        for t in (0..100).map(|_| first_tick(later, interval)) {
            assert_eq!((t - ticks[0]).as_nanos() % 10_000_000, 0);
        }
    }

    #[test]
    fn intervals_too_short_to_spread_tick_after_one_interval() {
        let now = Instant::now();
        assert_eq!(
            first_tick(now, Duration::from_millis(1)),
            now + Duration::from_millis(1)
        );
        assert_eq!(
            first_tick(now, Duration::from_nanos(7)),
            now + Duration::from_nanos(7)
        );
    }

    #[test]
    fn first_sequence_numbers_are_exact_in_a_javascript_number() {
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        for _ in 0..1000 {
            assert!(first_seq() + (1 << 51) <= MAX_SAFE_INTEGER);
        }
    }
}
