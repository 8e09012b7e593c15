//! The drain of a layer's connections ([`HeartbeatLayer::drain`](crate::HeartbeatLayer::drain)):
//! the group every connection of a layer joins, the plan that gives each its moment, and the
//! report.
//!
//! A connection joins its layer's [`Group`] at its first poll and leaves it when its adapter
//! goes; it carries one pointer to the group, in its hub. The group keeps no list of its
//! connections: the drain wakes them through the runtimes' tickers, which hold every filed
//! connection already (`Ticker::wake_where`), and each connection, at its next poll, takes a
//! rank in the plan and so its moment. The design: ARCHITECTURE.md, "Draining".

use std::fmt;
use std::pin::pin;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed, SeqCst};
use std::time::Duration;

use futures_util::future::{self, Either};
use tokio::sync::Notify;

use crate::stamp::Stamp;

/// The Close a drained connection gets: 1012, service restart (RFC 6455 §7.4.1 as registered
/// with IANA): the client should come back, to another server or this one restarted.
pub(crate) const DRAIN_CLOSE_CODE: u16 = 1012;
pub(crate) const DRAIN_CLOSE_REASON: &str = "server restart";

/// The connections of one layer and its clones, and the drain if one began.
#[derive(Default)]
pub(crate) struct Group {
    /// Connections that joined (were polled) and whose adapter has not gone, and sessions
    /// held: what the drain waits for.
    live: AtomicUsize,
    /// Of those, the sessions: not connections of their own (a session's socket is one).
    sessions: AtomicUsize,
    /// Of those, the ones that took their moment: the others still need a wake-up.
    planned: AtomicUsize,
    /// Set once, by the first `drain`.
    plan: OnceLock<Plan>,
    /// Ranks handed out: the k-th connection to ask closes at the k-th of `count` moments.
    ranks: AtomicUsize,
    closed: AtomicUsize,
    forced: AtomicUsize,
    ended_early: AtomicUsize,
    sessions_finished: AtomicUsize,
    /// Woken when `live` falls to zero during a drain.
    empty: Notify,
}

/// When the drain began, over how long, and how many connections shared it then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) start: Stamp,
    pub(crate) window: Duration,
    /// Connections live when the drain began: the window is cut into this many moments.
    count: usize,
    /// When the drain future resolves at the latest.
    pub(crate) ends_by: Stamp,
}

/// What a drain did, once [`HeartbeatLayer::drain`](crate::HeartbeatLayer::drain)
/// resolves: how each connection of the layer that was open, or opened, during the drain
/// ended. A connection is counted once, in the first of these that applies to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Sent the Close 1012 at its moment, and the close finished within the close timeout:
    /// the peer's Close came, or the stream ended.
    pub closed: usize,
    /// Sent the Close 1012 (or started closing otherwise) and the peer had not answered it
    /// within the close timeout: the connection ended as after a death.
    pub forced: usize,
    /// Ended before its moment or before the peer's answer, on its own: the peer closed or
    /// went, or the handler dropped the connection.
    pub ended_early: usize,
    /// Sessions ([`crate::resume`]) that finished across the drain: told at their moment,
    /// each side acknowledged all the other sent, then closed; their clients go on with a
    /// new session elsewhere.
    pub sessions_finished: usize,
    /// Still held by their handlers when the drain's time ran out (the window, the close
    /// timeout and one second more): a handler that keeps a connection it stopped polling,
    /// or one that ended without dropping it.
    pub held: usize,
}

impl Group {
    /// The drain, if one began.
    #[inline]
    pub(crate) fn plan(&self) -> Option<&Plan> {
        self.plan.get()
    }

    /// Starts the drain at `now`, or finds the one that began first (a second call joins it).
    pub(crate) fn begin(&self, now: Stamp, window: Duration, close_timeout: Duration) -> Plan {
        *self.plan.get_or_init(|| Plan {
            start: now,
            window,
            count: (self.live.load(SeqCst)).saturating_sub(self.sessions.load(SeqCst)),
            ends_by: now.add(window + close_timeout + Duration::from_secs(1)),
        })
    }

    /// A connection's first poll. `true` if a drain had begun: the connection closes at once.
    pub(crate) fn join(&self) -> bool {
        self.live.fetch_add(1, SeqCst);
        self.plan.get().is_some()
    }

    /// The moment of a connection that joined before the drain began: the k-th to ask gets
    /// `start + window × (k + 1) / count`, so that the moments fall evenly in
    /// `(start, start + window]` whatever the order connections ask in. One that joined
    /// while the plan was being made, past the count, gets the window's end.
    pub(crate) fn moment(&self, plan: &Plan) -> Stamp {
        let rank = self.ranks.fetch_add(1, Relaxed);
        let count = plan.count.max(1);
        let share = (rank + 1).min(count);
        // In nanoseconds as u128: a window of hours times a million connections fits.
        let nanos = plan.window.as_nanos() * share as u128 / count as u128;
        plan.start.add(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// A connection took its moment (or closes at once, having joined during the drain):
    /// the drain need not wake it any more. Once per connection (`Shared::note_planned`).
    pub(crate) fn count_planned(&self) {
        self.planned.fetch_add(1, Relaxed);
    }

    /// A session ([`crate::resume`]) is held: the drain waits for it too, its client may
    /// come back to finish it. (Its sockets are members of their own; the session needs no
    /// wake-up from the drain, its socket's or its client's brings it to its moment.)
    #[cfg_attr(not(feature = "resume"), allow(dead_code))]
    pub(crate) fn hold(&self) {
        self.planned.fetch_add(1, Relaxed);
        self.sessions.fetch_add(1, SeqCst);
        self.live.fetch_add(1, SeqCst);
    }

    /// The session [`hold`](Self::hold) counted has ended.
    #[cfg_attr(not(feature = "resume"), allow(dead_code))]
    pub(crate) fn release(&self) {
        self.planned.fetch_sub(1, Relaxed);
        self.sessions.fetch_sub(1, SeqCst);
        if self.live.fetch_sub(1, AcqRel) == 1 && self.plan.get().is_some() {
            self.empty.notify_waiters();
        }
    }

    /// A session finished across the drain: everything either side sent was acknowledged.
    #[cfg_attr(not(feature = "resume"), allow(dead_code))]
    pub(crate) fn count_session_finished(&self) {
        self.sessions_finished.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_closed(&self) {
        self.closed.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_forced(&self) {
        self.forced.fetch_add(1, Relaxed);
    }

    /// A connection's adapter went. `planned`: it had taken its moment; `drained`: it was
    /// counted as closed or forced already.
    pub(crate) fn leave(&self, planned: bool, drained: bool) {
        if planned {
            self.planned.fetch_sub(1, Relaxed);
        }
        let draining = self.plan.get().is_some();
        if draining && !drained {
            self.ended_early.fetch_add(1, Relaxed);
        }
        if self.live.fetch_sub(1, AcqRel) == 1 && draining {
            self.empty.notify_waiters();
        }
    }

    /// Connections live that have not taken their moment yet.
    pub(crate) fn unplanned(&self) -> usize {
        self.live
            .load(SeqCst)
            .saturating_sub(self.planned.load(Relaxed))
    }

    /// Resolves once no connection of the group is live, or at `until` (whichever first);
    /// `nudge` runs now and again while some connection has not taken its moment (it wakes
    /// them: a connection between two filings of its ticker may miss one wake-up).
    pub(crate) async fn wait_empty(&self, until: tokio::time::Instant, mut nudge: impl FnMut()) {
        let mut pause = Duration::from_millis(10);
        loop {
            let mut empty = pin!(self.empty.notified());
            empty.as_mut().enable();
            if self.live.load(SeqCst) == 0 {
                return;
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return;
            }
            let wake_at = if self.unplanned() > 0 {
                (now + pause).min(until)
            } else {
                until
            };
            let sleep = pin!(tokio::time::sleep_until(wake_at));
            if let Either::Left(_) = future::select(empty, sleep).await {
                return;
            }
            if self.unplanned() > 0 {
                nudge();
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// The counts as they stand.
    pub(crate) fn report(&self) -> DrainReport {
        DrainReport {
            closed: self.closed.load(Relaxed),
            forced: self.forced.load(Relaxed),
            ended_early: self.ended_early.load(Relaxed),
            sessions_finished: self.sessions_finished.load(Relaxed),
            held: self.live.load(SeqCst),
        }
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("live", &self.live.load(Relaxed))
            .field("plan", &self.plan.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn moments_cut_the_window_evenly_in_any_order() {
        let group = Group::default();
        for _ in 0..4 {
            assert!(!group.join());
        }
        let start = Stamp::new(std::time::Instant::now());
        let plan = group.begin(start, 8 * SECOND, SECOND);
        // A second drain joins the first.
        let again = group.begin(start.add(SECOND), 60 * SECOND, SECOND);
        assert_eq!((again.start, again.window), (start, 8 * SECOND));
        let moments: Vec<Duration> = (0..5).map(|_| group.moment(&plan).since(start)).collect();
        // Four connections: 2, 4, 6, 8 s; a fifth (joined while the plan was made) at 8 s.
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(moments, [secs(2), secs(4), secs(6), secs(8), secs(8)]);
        assert_eq!(plan.ends_by.since(start), secs(10));
        // Joined after the drain began: closes at once.
        assert!(group.join());
    }

    #[test]
    fn the_report_counts_each_connection_once() {
        let group = Group::default();
        for _ in 0..5 {
            group.join();
        }
        let plan = group.begin(Stamp::new(std::time::Instant::now()), SECOND, SECOND);
        for _ in 0..4 {
            group.moment(&plan);
            group.count_planned();
        }
        assert_eq!(group.unplanned(), 1);
        group.count_closed();
        group.leave(true, true);
        group.count_forced();
        group.leave(true, true);
        group.leave(true, false);
        assert_eq!(
            group.report(),
            DrainReport {
                closed: 1,
                forced: 1,
                ended_early: 1,
                sessions_finished: 0,
                held: 2,
            }
        );
        assert_eq!(group.unplanned(), 1);
    }
}
