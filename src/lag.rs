//! How late ticks run: the runtime's lateness, which is ours and not the peer's silence.
//!
//! A tick runs when the connection's task gets to run after its deadline. On a runtime with
//! spare time that is within a millisecond; on an overloaded one, the task waits in the run
//! queue and every tick runs late. The heartbeat stays sound (ARCHITECTURE.md, "Ticks and
//! the schedule": a late tick reads before it judges and counts at most one miss), but
//! detection takes longer by the lateness, and only the operator can fix that, by raising
//! the interval or adding capacity. So the lateness is counted here, process-wide, and a
//! `tracing` warning says so, at most once per [`WARN_EVERY`].
//!
//! Cost: at every tick, one relaxed load (the worst lateness so far) and a comparison;
//! shared counters are written only by late ticks, so connections on different cores do
//! not contend for them while the runtime keeps up.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use crate::stamp::Stamp;
use crate::wake::nanos;

/// A tick is late when it runs more than this share of its interval after its time: by
/// then the dead bound, `interval × (max_missed + 1)`, has grown by a sixteenth or more
/// (with the default `max_missed` 3).
const LATE_SHARE: u32 = 4;

/// At most one warning per this much time, however many ticks run late.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

static WORST: AtomicU64 = AtomicU64::new(0);
static LATE_TICKS: AtomicU64 = AtomicU64::new(0);
static LATEST: AtomicU64 = AtomicU64::new(0);
/// The late ticks counted at the last warning.
static LATE_AT_WARNING: AtomicU64 = AtomicU64::new(0);
/// The time of the last warning, as a `Stamp`'s nanoseconds (`i64::MIN`: never).
static WARNED_AT: AtomicI64 = AtomicI64::new(i64::MIN);

/// How late the heartbeats' ticks have run in this process: [`tick_lag`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TickLag {
    /// Ticks that ran more than a quarter of their interval after their time.
    pub late_ticks: u64,
    /// How late the latest of those ran.
    pub latest: Duration,
    /// The most any tick has run late (late or not by the quarter rule).
    pub worst: Duration,
}

/// How late the heartbeats' ticks have run, over every connection of this process.
///
/// A tick runs when its connection's task gets to run after the tick's time. While the
/// runtime keeps up, that is within a millisecond or two. When it does not (more work than
/// its threads can do), every tick runs late, and a dead peer is found late by as much
/// (up to `max_missed + 1` times as much after stalls longer than an interval); no live
/// peer is declared dead for it (ARCHITECTURE.md, "Ticks and the schedule").
/// `late_ticks` growing between two readings means the runtime is behind now: raise the
/// interval ([`HeartbeatHandle::set_interval`](crate::HeartbeatHandle::set_interval) changes
/// live connections), or add capacity. The same is logged as a `tracing` warning, at most
/// once every 10 seconds.
///
/// ```
/// let lag = ws_heartbeat::tick_lag();
/// if lag.late_ticks > 0 {
///     eprintln!("heartbeat ticks run late, up to {:?}", lag.worst);
/// }
/// ```
pub fn tick_lag() -> TickLag {
    TickLag {
        late_ticks: LATE_TICKS.load(Relaxed),
        latest: Duration::from_nanos(LATEST.load(Relaxed)),
        worst: Duration::from_nanos(WORST.load(Relaxed)),
    }
}

/// A tick whose time was `late` ago ran at `now`.
#[inline]
pub(crate) fn record(late: Duration, interval: Duration, now: Stamp) {
    let late_nanos = nanos(late);
    if late_nanos > WORST.load(Relaxed) {
        WORST.fetch_max(late_nanos, Relaxed);
    }
    if late > interval / LATE_SHARE {
        record_late(late, interval, now);
    }
}

#[cold]
fn record_late(late: Duration, interval: Duration, now: Stamp) {
    let count = LATE_TICKS.fetch_add(1, Relaxed) + 1;
    LATEST.store(nanos(late), Relaxed);
    let warned_at = WARNED_AT.load(Relaxed);
    let due = warned_at == i64::MIN || now.since(Stamp::from_nanos(warned_at)) >= WARN_EVERY;
    // One thread wins the right to warn for this period.
    if due
        && WARNED_AT
            .compare_exchange(warned_at, now.to_nanos(), Relaxed, Relaxed)
            .is_ok()
    {
        let since_last = count - LATE_AT_WARNING.swap(count, Relaxed);
        tracing::warn!(
            ?late,
            ?interval,
            late_ticks = since_last,
            "websocket heartbeat ticks run late: the runtime is overloaded, so dead peers are \
             found late by as much; raise the interval or add capacity"
        );
    }
}
