//! Instants in 8 bytes, where `Instant` takes 16: every connection keeps two of them.
//!
//! A [`Stamp`] counts signed nanoseconds from a process-wide base: the first instant ever
//! converted (so this module reads no clock of its own). Instants before the base, such as
//! those of a paused test clock started earlier, are negative; 64 signed bits reach 292
//! years either way.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BASE: OnceLock<Instant> = OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(i64);

impl Stamp {
    pub(crate) fn new(at: Instant) -> Self {
        let base = *BASE.get_or_init(|| at);
        match at.checked_duration_since(base) {
            Some(after) => Stamp(nanos(after)),
            None => Stamp(-nanos(base.duration_since(at))),
        }
    }

    /// Now, on tokio's clock (paused in tests).
    pub(crate) fn now() -> Self {
        Stamp::new(tokio::time::Instant::now().into_std())
    }

    pub(crate) fn instant(self) -> Instant {
        let base = *BASE.get().expect("a stamp was made, so the base is set");
        let offset = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            base + offset
        } else {
            base - offset
        }
    }

    /// The stamp as nanoseconds from the base, to keep in an atomic.
    pub(crate) fn to_nanos(self) -> i64 {
        self.0
    }

    pub(crate) fn from_nanos(nanos: i64) -> Self {
        Stamp(nanos)
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    pub(crate) fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(nanos(d)))
    }

    pub(crate) fn sub(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_sub(nanos(d)))
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_on_both_sides_of_the_base() {
        let base = *BASE.get_or_init(Instant::now);
        assert_eq!(Stamp::new(base), Stamp(0));
        for offset in [1, 999, 1_000_000_007, 86_400_000_000_000] {
            let d = Duration::from_nanos(offset);
            assert_eq!(Stamp::new(base + d).instant(), base + d);
            assert_eq!(Stamp::new(base + d).since(Stamp::new(base)), d);
            if let Some(before) = base.checked_sub(d) {
                assert!(Stamp::new(before) < Stamp(0));
                assert_eq!(Stamp::new(before).instant(), before);
                assert_eq!(Stamp::new(base).since(Stamp::new(before)), d);
            }
        }
    }

    #[test]
    fn arithmetic_matches_instants() {
        let t = Stamp::new(Instant::now());
        let d = Duration::from_millis(1500);
        assert_eq!(t.add(d).since(t), d);
        assert_eq!(t.since(t.add(d)), Duration::ZERO);
        assert_eq!(t.add(d).sub(d), t);
        assert!(t.add(d) > t && t.sub(d) < t);
        assert_eq!(t.add(d).instant(), t.instant() + d);
    }
}
