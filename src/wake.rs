//! [`Shared`]: the per-connection hub through which the adapter, the runtime's ticker and
//! the connection's handles meet. The ticker marks the connection due and wakes it here;
//! handles read the counters and change the interval here; the adapter parks its reader and
//! writer wakers here.
//!
//! The design: ARCHITECTURE.md, "The wake hub".

use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};
use std::time::Duration;

use futures_util::task::{ArcWake, AtomicWaker};

/// State shared between a [`Heartbeat`](crate::Heartbeat) and its handles. Written by the
/// adapter only at heartbeat events (a tick, a ping, a pong), never per message.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Latest RTT sample in nanoseconds; `u64::MAX` until the first one.
    pub(crate) rtt_nanos: AtomicU64,
    pub(crate) pings_sent: AtomicU64,
    pub(crate) pongs_received: AtomicU64,
    pub(crate) rtt_samples: AtomicU64,
    pub(crate) missed: AtomicU32,
    pub(crate) interval_nanos: AtomicU64,
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
    /// Background mode: the driver stopped reading because the handler's queue is full
    /// (`PAUSED`), or did since the last tick (`WAS_PAUSED`). That silence is ours: the tick
    /// does not count it against the peer.
    paused: AtomicU8,
}

const PAUSED: u8 = 1;
const WAS_PAUSED: u8 = 2;

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
            paused: AtomicU8::new(0),
        }
    }

    /// The background driver stops (`true`) or resumes reading.
    pub(crate) fn pause_reading(&self, paused: bool) {
        if paused {
            self.paused.store(PAUSED | WAS_PAUSED, Relaxed);
        } else {
            self.paused.fetch_and(!PAUSED, Relaxed);
        }
    }

    /// At a tick: whether reading was paused at any moment since the last tick (the flag
    /// stays set while it still is).
    pub(crate) fn take_paused(&self) -> bool {
        self.paused.load(Relaxed) != 0 && self.paused.fetch_and(PAUSED, Relaxed) != 0
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

    /// A handle's new interval, applied by the adapter when it next runs; whoever polls the
    /// connection is woken so that the change does not wait for the old interval's tick.
    pub(crate) fn set_interval(self: &Arc<Self>, interval: Duration) {
        self.interval_nanos.store(nanos(interval), Relaxed);
        self.interval_changed.store(true, Release);
        ArcWake::wake_by_ref(self);
    }

    /// The adapter itself changed the interval (the peer asked for it): handles read it. A
    /// handle's change not yet applied then applies this value (a no-op): the later of the
    /// two wins.
    pub(crate) fn note_interval(&self, interval: Duration) {
        self.interval_nanos.store(nanos(interval), Relaxed);
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

/// The wakers of something a handler or a client may poll from two tasks (after a
/// `split`): a session (`resume::Session`) and a reconnecting client (`Reconnect`). Each
/// half registers its own at every poll; both poll what lies beneath them (sockets, timers,
/// connect attempts) with a waker that wakes both (`Halves` itself, or the session's
/// mailbox): what one half does there (reading on the writer's behalf, flushing for it,
/// adopting a new socket) replaces the other's waker or concerns it.
#[derive(Debug, Default)]
pub(crate) struct Halves {
    pub(crate) reader: AtomicWaker,
    pub(crate) writer: AtomicWaker,
}

impl Halves {
    pub(crate) fn wake_both(&self) {
        self.reader.wake();
        self.writer.wake();
    }
}

impl ArcWake for Halves {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.wake_both();
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a connection's filing has fired since it last looked.
#[derive(Debug, Default)]
pub(crate) struct DueFlag(AtomicBool);

impl DueFlag {
    pub(crate) fn set(&self) {
        self.0.store(true, Relaxed);
    }

    /// One relaxed load: cheap enough for every message.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, Relaxed);
    }
}
