//! [`HeartbeatHandle`]: what other tasks can see of, and change in, a live heartbeat.

use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::Duration;

use futures_util::task::{ArcWake, AtomicWaker};

use crate::config::checked_interval;
use crate::ticker::DueFlag;

/// State shared between a [`Heartbeat`](crate::Heartbeat) and its handles. Written by the
/// adapter only at heartbeat events (a tick, a ping, a pong), never per message.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Latest RTT sample in nanoseconds; `u64::MAX` until the first one.
    rtt_nanos: AtomicU64,
    pings_sent: AtomicU64,
    pongs_received: AtomicU64,
    rtt_samples: AtomicU64,
    missed: AtomicU32,
    interval_nanos: AtomicU64,
    /// A handle changed the interval; the adapter applies it when it next runs.
    interval_changed: AtomicBool,
    /// The last task that waited to read, and the last that waited to write. The adapter
    /// polls the inner stream on behalf of one side with a waker that wakes both (see
    /// [`ArcWake`] below), so that neither side's wake-up gets lost when the other one
    /// replaces it inside the inner stream.
    pub(crate) reader: AtomicWaker,
    pub(crate) writer: AtomicWaker,
    /// Set by the runtime's ticker when the connection's deadline may have passed.
    pub(crate) due: DueFlag,
}

impl Shared {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            rtt_nanos: AtomicU64::new(u64::MAX),
            pings_sent: AtomicU64::new(0),
            pongs_received: AtomicU64::new(0),
            rtt_samples: AtomicU64::new(0),
            missed: AtomicU32::new(0),
            interval_nanos: AtomicU64::new(nanos(interval)),
            interval_changed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            due: DueFlag::default(),
        }
    }

    pub(crate) fn ping_sent(&self) {
        self.pings_sent.fetch_add(1, Relaxed);
    }

    pub(crate) fn pong_received(&self, rtt: Option<Duration>) {
        self.pongs_received.fetch_add(1, Relaxed);
        if let Some(rtt) = rtt {
            self.rtt_nanos.store(nanos(rtt).min(u64::MAX - 1), Relaxed);
            self.rtt_samples.fetch_add(1, Relaxed);
        }
    }

    /// The ticker found the deadline passed: wake whoever polls the connection.
    pub(crate) fn mark_due(self: &Arc<Self>) {
        self.due.set();
        ArcWake::wake_by_ref(self);
    }

    pub(crate) fn set_missed(&self, missed: u32) {
        self.missed.store(missed, Relaxed);
    }

    /// The new interval, if a handle changed it since the last call.
    pub(crate) fn take_interval_change(&self) -> Option<Duration> {
        // Acquire pairs with the Release in `set_interval`: the new value is visible.
        if self.interval_changed.load(Relaxed) && self.interval_changed.swap(false, Acquire) {
            Some(Duration::from_nanos(self.interval_nanos.load(Relaxed)))
        } else {
            None
        }
    }
}

impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.reader.wake();
        arc_self.writer.wake();
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counters of one heartbeat, read through [`HeartbeatHandle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Pings handed to the connection (a ping the full sink could not take is not counted
    /// here, though it counts as unanswered).
    pub pings_sent: u64,
    /// Pongs received, matched or not.
    pub pongs_received: u64,
    /// Pongs that answered the latest ping and so gave a round-trip time.
    pub rtt_samples: u64,
    /// Ticks in a row at which the peer had not been heard while a ping was outstanding.
    pub missed: u32,
}

/// A cheap, cloneable view of one connection's heartbeat, usable from any task.
///
/// It stays valid after the connection is gone (it then shows the final figures).
///
/// ```
/// # async fn demo(ws: ws_heartbeat::Heartbeat<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>) {
/// use std::time::Duration;
///
/// let handle = ws.handle();
/// tokio::spawn(async move {
///     if let Some(rtt) = handle.rtt() {
///         println!("round trip {rtt:?}");
///     }
///     // The connection went to the background: ping less often from the next tick on.
///     handle.set_interval(Duration::from_secs(60));
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HeartbeatHandle {
    shared: Arc<Shared>,
}

impl HeartbeatHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The latest round-trip time: from handing a ping to the connection to reading its pong.
    /// `None` until the first pong.
    pub fn rtt(&self) -> Option<Duration> {
        match self.shared.rtt_nanos.load(Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The counters of this connection's heartbeat.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            pings_sent: s.pings_sent.load(Relaxed),
            pongs_received: s.pongs_received.load(Relaxed),
            rtt_samples: s.rtt_samples.load(Relaxed),
            missed: s.missed.load(Relaxed),
        }
    }

    /// The interval currently in force (or about to be, after [`set_interval`](Self::set_interval)).
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.shared.interval_nanos.load(Relaxed))
    }

    /// Changes the interval of the live connection. The next tick comes one new interval
    /// after the previous tick (at once, if that moment has passed); the missed count and
    /// `max_missed` carry over, so the dead bound scales with the new interval.
    ///
    /// The connection's task is woken to apply it. A connection so busy that its stream is
    /// never idle applies it at its next tick instead (checking for it per message would
    /// cost every message an atomic load).
    ///
    /// # Panics
    /// If `interval` is zero or longer than 24 hours, like
    /// [`HeartbeatLayer::interval`](crate::HeartbeatLayer::interval).
    #[track_caller]
    pub fn set_interval(&self, interval: Duration) {
        let interval = checked_interval(interval);
        self.shared.interval_nanos.store(nanos(interval), Relaxed);
        self.shared.interval_changed.store(true, Release);
        // Wake whoever polls the connection so that the change does not wait for the old
        // interval's tick.
        ArcWake::wake_by_ref(&self.shared);
    }
}
