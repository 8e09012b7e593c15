//! Unpredictable numbers for the first tick's jitter and the first ping's sequence number,
//! from the standard library's randomly keyed SipHash: no extra dependency, no shared state
//! beyond one counter.
//!
//! The design: ARCHITECTURE.md, "Ticks and the schedule".

use std::cell::Cell;
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
/// peer do not match. 32 bits, so that a JavaScript peer echoes every one exactly (its
/// numbers are doubles) in a JSON heartbeat.
pub(crate) fn first_seq() -> u32 {
    (random_u64() >> 32) as u32
}

/// How many moments of an interval first ticks are spread over.
const JITTER_SLOTS: u64 = 128;

/// How many connections started in a row on one thread share their first tick's moment.
const JITTER_GROUP: u32 = 64;

/// The moment of a connection's first tick, for a connection starting `now`: random within
/// `(now, now + interval]`, so that connections opened together do not ping together, and
/// never `now` itself, so that a peer silent since the handshake is declared dead strictly
/// after `interval * max_missed`.
///
/// Not any moment, though: one of a process-wide grid of moments `JITTER_SLOTS` per interval
/// apart (in whole milliseconds, the timer's resolution). Later ticks follow every interval,
/// so they stay on the grid. Connections then ping in 128 waves per interval, not all at
/// once, while the runtime's timer wakes about 128 times per interval instead of once per
/// connection (BENCHMARKS.md, "Measurements behind design choices").
///
/// And not a moment of its own: runs of `JITTER_GROUP` connections started in a row on one
/// thread draw the same moment (if they start within one grid step), because they were
/// allocated together and a tick that wakes neighbours in memory finds them in the caches.
/// A random moment for each connection costs far more CPU at scale (BENCHMARKS.md,
/// "Measurements behind design choices"). A burst of arrivals is still spread: 100 000 connections
/// opened at once make about 1 560 groups over the 128 moments.
pub(crate) fn first_tick(now: Instant, interval: Duration) -> Instant {
    thread_local! {
        static DRAWS: Cell<GroupedDraw> = const { Cell::new(GroupedDraw::new()) };
    }
    let draw = DRAWS.with(|draws| {
        let mut grouped = draws.get();
        let draw = grouped.next();
        draws.set(grouped);
        draw
    });
    tick_in_slot(now, interval, draw)
}

/// The grid moment that `draw` picks among those in `(now, now + interval)`, keeping 1 ms
/// free at the end.
fn tick_in_slot(now: Instant, interval: Duration, draw: u64) -> Instant {
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
    now + to_grid + step * (draw % moments) as u32
}

/// A random draw renewed every `JITTER_GROUP` calls.
#[derive(Clone, Copy)]
struct GroupedDraw {
    left: u32,
    draw: u64,
}

impl GroupedDraw {
    const fn new() -> Self {
        Self { left: 0, draw: 0 }
    }

    fn next(&mut self) -> u64 {
        if self.left == 0 {
            self.draw = random_u64();
            self.left = JITTER_GROUP;
        }
        self.left -= 1;
        self.draw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ticks_stay_in_range_spread_out_and_share_a_grid() {
        let interval = Duration::from_millis(1280);
        let now = Instant::now();
        let ticks: Vec<Instant> = (0..1000)
            .map(|_| tick_in_slot(now, interval, random_u64()))
            .collect();
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
    fn connections_started_in_a_row_share_a_tick_in_groups() {
        let mut grouped = GroupedDraw::new();
        let draws: Vec<u64> = (0..3 * JITTER_GROUP).map(|_| grouped.next()).collect();
        let groups: Vec<&[u64]> = draws.chunks(JITTER_GROUP as usize).collect();
        for group in &groups {
            assert!(group.iter().all(|draw| *draw == group[0]));
        }
        // Random 64-bit draws: equal by chance with probability 2^-64.
        assert_ne!(groups[0][0], groups[1][0]);
        assert_ne!(groups[1][0], groups[2][0]);

        // Through `first_tick`: 100 groups' worth of connections started together take at
        // most 101 moments (the thread may be inside a group already) and are spread over
        // many (100 draws among 127 or 128 moments: about 70 distinct, below 40 with probability
        // under 1e-9).
        let interval = Duration::from_millis(1280);
        let now = Instant::now();
        let mut ticks: Vec<Instant> = (0..100 * JITTER_GROUP)
            .map(|_| first_tick(now, interval))
            .collect();
        ticks.sort();
        ticks.dedup();
        assert!((40..=101).contains(&ticks.len()), "{} moments", ticks.len());
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
    fn first_sequence_numbers_use_all_32_bits() {
        // 1 000 draws: each of the top and bottom bits is set in some and clear in others
        // (a failure has odds of 2^-999).
        let seqs: Vec<u32> = (0..1000).map(|_| first_seq()).collect();
        for bit in [0, 31] {
            assert!(seqs.iter().any(|s| s >> bit & 1 == 1));
            assert!(seqs.iter().any(|s| s >> bit & 1 == 0));
        }
    }
}
