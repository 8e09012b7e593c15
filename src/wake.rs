//! [`Shared`]: the per-connection hub through which the adapter, the runtime's ticker and
//! the connection's handles meet. The ticker marks the connection due and wakes it here;
//! handles read the counters and change the interval here; the adapter parks its reader and
//! writer wakers here.
//!
//! The design: ARCHITECTURE.md, "The wake hub".

#[cfg(feature = "metrics")]
use std::sync::atomic::Ordering::AcqRel;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use futures_util::task::ArcWake;

use crate::drain::Group;
use crate::filing::Filing;
use crate::kit::Kit;

/// State shared between a [`Heartbeat`](crate::Heartbeat) and its handles. Written by the
/// adapter only at heartbeat events (a tick, a ping, a pong), never per message. Every
/// connection allocates one, so its fields are as narrow as their values allow.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Latest RTT sample in microseconds (saturating at 71 minutes); `u32::MAX` until the
    /// first one.
    pub(crate) rtt_micros: AtomicU32,
    pub(crate) interval_nanos: AtomicU64,
    /// The connection's filing with the runtime's ticker: the ticker fires only that one,
    /// and carries a tick's on by the interval.
    pub(crate) filed: Filing,
    /// The counters of [`Stats`](crate::Stats), wrapping at 2^32 (a ping every second takes
    /// 136 years to get there).
    pub(crate) pings_sent: AtomicU32,
    pub(crate) pongs_received: AtomicU32,
    pub(crate) rtt_samples: AtomicU32,
    /// The pacemaker's count, which `max_missed` keeps within `u16`.
    pub(crate) missed: AtomicU16,
    /// Set by the runtime's ticker when the connection's deadline may have passed. A byte of
    /// its own: it is read per message.
    pub(crate) due: DueFlag,
    /// `INTERVAL_CHANGED`, `PAUSED`, `WAS_PAUSED`: events of the handles and the background
    /// driver, taken at ticks; `MEMBER`, `PLANNED`, `DRAINED`: where the connection is in its
    /// layer's drain.
    events: AtomicU8,
    /// What the connections of the layer this one was made by share: the application
    /// protocol, and the group a drain closes (`None` for `Heartbeat::new`, which has no
    /// layer).
    pub(crate) kit: Option<Arc<Kit>>,
    /// When the connection joined its layer (its first poll), for its duration's metric.
    #[cfg(feature = "metrics")]
    opened: std::sync::atomic::AtomicI64,
    /// The last task that waited to read, and the last that waited to write. The adapter
    /// polls the inner stream on behalf of one side with a waker that wakes both (see
    /// [`ArcWake`] below), so that neither side's wake-up gets lost when the other one
    /// replaces it inside the inner stream.
    parked: Parked,
}

/// An adapter's pointer to its hub. When the adapter goes (dropped, or unwrapped with
/// `into_inner`), the ticker stops carrying its ticks: a handle may keep the hub alive long
/// after.
pub(crate) struct Hub(pub(crate) Arc<Shared>);

impl std::ops::Deref for Hub {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.0.filed.stop_carrying();
        if let Some(group) = self.0.group() {
            let events = self.0.events.load(Acquire);
            if events & MEMBER != 0 {
                group.leave(events & PLANNED != 0, events & DRAINED != 0);
                // Dropped while open: the handler ended it.
                self.0.ended(crate::ending::Cause::LocalClose);
                #[cfg(feature = "metrics")]
                if let Some(kit) = &self.0.kit {
                    kit.metrics().connections.decrement(1.0);
                }
            }
        }
    }
}

/// The reader's and the writer's wakers behind one lock: 32 bytes, where two `AtomicWaker`s
/// take 48 (every connection has one). The writer's is boxed, made the first time the
/// writing side waits: most connections' writers never do (a sink waits only on a full
/// socket), and the box saves every connection 8 bytes. The lock is held only to swap a
/// waker in or out: wakers are woken and dropped outside it, so a waker that runs code (and
/// registers again) cannot deadlock.
#[derive(Debug, Default)]
struct Parked(Mutex<Slots>);

#[derive(Debug, Default)]
struct Slots {
    reader: Option<Waker>,
    /// `None` until the writer first waits; after that, the box stays (emptied when woken).
    writer: Option<Box<Option<Waker>>>,
}

/// Which of the two wakers `register` and `wake` work on.
#[derive(Clone, Copy)]
enum Side {
    Reader,
    Writer,
}

impl Slots {
    /// The side's slot; the writer's box is made here, when the writer first waits.
    fn slot(&mut self, side: Side) -> &mut Option<Waker> {
        match side {
            Side::Reader => &mut self.reader,
            Side::Writer => self.writer.get_or_insert_with(Box::default),
        }
    }

    fn take(&mut self, side: Side) -> Option<Waker> {
        match side {
            Side::Reader => self.reader.take(),
            Side::Writer => self.writer.as_mut().and_then(|slot| slot.take()),
        }
    }
}

impl Parked {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while the lock is held; should it, the wakers are still sound.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn register(&self, side: Side, waker: &Waker) {
        let mut slots = self.lock();
        let slot = slots.slot(side);
        if slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
            return;
        }
        let old = slot.replace(waker.clone());
        drop(slots);
        drop(old);
    }

    fn wake(&self, side: Side) {
        let waker = self.lock().take(side);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_both(&self) {
        let (reader, writer) = {
            let mut slots = self.lock();
            (slots.take(Side::Reader), slots.take(Side::Writer))
        };
        for waker in [reader, writer].into_iter().flatten() {
            waker.wake();
        }
    }
}

/// A handle changed the interval; the adapter files the tick it moved when it next runs.
const INTERVAL_CHANGED: u8 = 1;
/// Background mode: the driver stopped reading because the handler's queue is full
/// (`PAUSED`), or did since the last tick (`WAS_PAUSED`). That silence is ours: the tick
/// does not count it against the peer.
const PAUSED: u8 = 1 << 1;
const WAS_PAUSED: u8 = 1 << 2;
/// The connection joined its group (at its first poll): its adapter leaves it when it goes.
const MEMBER: u8 = 1 << 3;
/// It took its moment in the group's drain (or closed at once, having joined during one).
const PLANNED: u8 = 1 << 4;
/// The drain counted how it closed (`closed` or `forced`).
const DRAINED: u8 = 1 << 5;
/// Its end was counted in the metrics (feature `metrics`).
#[cfg(feature = "metrics")]
const ENDED: u8 = 1 << 6;
/// The handler's Close went first (a `local_close`).
const LOCAL_CLOSED: u8 = 1 << 7;

impl Shared {
    pub(crate) fn new(interval: Duration, kit: Option<Arc<Kit>>) -> Self {
        Self {
            rtt_micros: AtomicU32::new(u32::MAX),
            interval_nanos: AtomicU64::new(nanos(interval)),
            // Never filed: the first poll files (`Conn::due_now`).
            filed: Filing::default(),
            pings_sent: AtomicU32::new(0),
            pongs_received: AtomicU32::new(0),
            rtt_samples: AtomicU32::new(0),
            missed: AtomicU16::new(0),
            due: DueFlag::default(),
            events: AtomicU8::new(0),
            kit,
            #[cfg(feature = "metrics")]
            opened: std::sync::atomic::AtomicI64::new(0),
            parked: Parked::default(),
        }
    }

    /// The interval in force: the layer's, or the latest a handle or the peer asked for.
    #[inline]
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos.load(Relaxed))
    }

    /// The reading side waits: the ticker (or a death, or a new interval) wakes `waker`.
    #[inline]
    pub(crate) fn register_reader(&self, waker: &Waker) {
        self.parked.register(Side::Reader, waker);
    }

    /// The writing side waits, as `register_reader`.
    pub(crate) fn register_writer(&self, waker: &Waker) {
        self.parked.register(Side::Writer, waker);
    }

    /// Wakes the reading side alone (the writing side did something for it).
    pub(crate) fn wake_reader(&self) {
        self.parked.wake(Side::Reader);
    }

    /// The background driver stops (`true`) or resumes reading.
    pub(crate) fn pause_reading(&self, paused: bool) {
        if paused {
            self.events.fetch_or(PAUSED | WAS_PAUSED, Relaxed);
        } else {
            self.events.fetch_and(!PAUSED, Relaxed);
        }
    }

    /// At a tick: whether reading was paused at any moment since the last tick (the flag
    /// stays set while it still is).
    pub(crate) fn take_paused(&self) -> bool {
        self.events.load(Relaxed) & (PAUSED | WAS_PAUSED) != 0
            && self.events.fetch_and(!WAS_PAUSED, Relaxed) & (PAUSED | WAS_PAUSED) != 0
    }

    pub(crate) fn ping_sent(&self) {
        count(&self.pings_sent);
        #[cfg(feature = "metrics")]
        if let Some(kit) = &self.kit {
            kit.metrics().pings.increment(1);
        }
    }

    pub(crate) fn pong_received(&self, rtt: Option<Duration>) {
        count(&self.pongs_received);
        if let Some(rtt) = rtt {
            #[cfg(feature = "metrics")]
            if let Some(kit) = &self.kit {
                kit.metrics().rtt.record(rtt.as_secs_f64());
            }
            let micros = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
            self.rtt_micros.store(micros.min(u32::MAX - 1), Relaxed);
            count(&self.rtt_samples);
        }
    }

    /// The ticker found the deadline passed: wake whoever polls the connection.
    pub(crate) fn mark_due(self: &Arc<Self>) {
        self.due.set();
        ArcWake::wake_by_ref(self);
    }

    /// `missed` is the pacemaker's, at most `max_missed`: within `u16`.
    pub(crate) fn set_missed(&self, missed: u32) {
        self.missed
            .store(u16::try_from(missed).unwrap_or(u16::MAX), Relaxed);
    }

    /// A handle's new interval, in force at once: the next tick is due one new interval after
    /// the last. Whoever polls the connection is woken to file that tick with the ticker, so
    /// that the change does not wait for the old interval's tick.
    pub(crate) fn set_interval(self: &Arc<Self>, interval: Duration) {
        self.interval_nanos.store(nanos(interval), Relaxed);
        self.events.fetch_or(INTERVAL_CHANGED, Release);
        // Due: the adapter looks at its timer, where it takes the change.
        self.mark_due();
    }

    /// The adapter itself changes the interval (the peer asked for it). A handle's change not
    /// yet taken then refiles this value (a no-op): the later of the two wins.
    pub(crate) fn note_interval(&self, interval: Duration) {
        self.interval_nanos.store(nanos(interval), Relaxed);
    }

    /// Whether a handle changed the interval since the last call.
    pub(crate) fn take_interval_change(&self) -> bool {
        // Acquire pairs with the Release in `set_interval`: the new value is visible.
        self.events.load(Relaxed) & INTERVAL_CHANGED != 0
            && self.events.fetch_and(!INTERVAL_CHANGED, Acquire) & INTERVAL_CHANGED != 0
    }
}

/// The connection's part in its layer's drain; each a cold call, at a poll's tick or at the
/// drain's events.
impl Shared {
    /// The group of the connection's layer, if it has one.
    #[inline]
    pub(crate) fn group(&self) -> Option<&Arc<Group>> {
        self.kit.as_ref().map(|kit| &kit.group)
    }

    /// The connection's first poll: joins its group. `true` if the group drains already.
    pub(crate) fn join_group(&self) -> bool {
        let Some(group) = self.group() else {
            return false;
        };
        self.events.fetch_or(MEMBER, Release);
        tracing::debug!(conn = %self.id(), layer = self.layer_name(), "websocket connection opened");
        #[cfg(feature = "metrics")]
        if let Some(kit) = &self.kit {
            let metrics = kit.metrics();
            metrics.connections.increment(1.0);
            metrics.opened.increment(1);
            self.opened
                .store(crate::stamp::Stamp::now().to_nanos(), Relaxed);
        }
        let draining = group.join();
        if draining {
            self.note_planned();
        }
        draining
    }

    /// It took its moment (or closes at once): the drain wakes it no more. Counted once.
    pub(crate) fn note_planned(&self) {
        if self.events.fetch_or(PLANNED, Release) & PLANNED == 0 {
            if let Some(group) = self.group() {
                group.count_planned();
            }
        }
    }

    /// The drain counted how it closed.
    pub(crate) fn note_drained(&self) {
        self.events.fetch_or(DRAINED, Release);
    }

    /// What identifies the connection in its log lines (the `conn` field): its hub's
    /// address, unique while it lives, free to get (nothing stored, formatted only when a
    /// line is written).
    pub(crate) fn id(&self) -> ConnId {
        ConnId(std::ptr::from_ref(self) as usize)
    }

    /// The name of its layer (the `layer` field of its log lines and label of its metrics).
    pub(crate) fn layer_name(&self) -> &str {
        self.kit.as_ref().map_or("", |kit| &kit.name)
    }

    /// The handler's Close went out first: its end is a `local_close`.
    pub(crate) fn note_local_close(&self) {
        self.events.fetch_or(LOCAL_CLOSED, Relaxed);
    }

    /// Whether the handler's Close went out first.
    pub(crate) fn local_closed(&self) -> bool {
        self.events.load(Relaxed) & LOCAL_CLOSED != 0
    }

    /// The connection ended for `cause`: counted once, by its first cause (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn ended(&self, cause: crate::ending::Cause) {
        #[cfg(feature = "metrics")]
        if let Some(kit) = &self.kit {
            let events = self.events.fetch_or(ENDED, AcqRel);
            if events & (ENDED | MEMBER) == MEMBER {
                // Closed by a drain, whatever came after.
                let cause = if events & DRAINED != 0 {
                    crate::ending::Cause::Drained
                } else {
                    cause
                };
                let opened = crate::stamp::Stamp::from_nanos(self.opened.load(Relaxed));
                let lasted = crate::stamp::Stamp::now().since(opened).as_secs_f64();
                kit.metrics().ended(cause, lasted);
            }
        }
    }

    /// A tick ran `late` after its deadline (feature `metrics`): recorded from 1 ms on (the
    /// timer rounds every deadline up to the millisecond, so anything less is on time; a
    /// sample per on-time tick would cost every connection a histogram write per interval).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn tick_ran_late(&self, late: Duration) {
        #[cfg(feature = "metrics")]
        if late >= Duration::from_millis(1) {
            if let Some(kit) = &self.kit {
                kit.metrics().tick_lag.record(late.as_secs_f64());
            }
        }
    }

    /// The peer was found dead (feature `metrics`).
    pub(crate) fn died(&self) {
        #[cfg(feature = "metrics")]
        if let Some(kit) = &self.kit {
            kit.metrics().deaths.increment(1);
        }
        self.ended(crate::ending::Cause::Dead);
    }

    /// A member of `group` that has not taken its moment: the drain wakes it.
    pub(crate) fn awaits_moment_in(&self, group: &Arc<Group>) -> bool {
        self.group().is_some_and(|g| Arc::ptr_eq(g, group))
            && self.events.load(Acquire) & (MEMBER | PLANNED) == MEMBER
    }
}

impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.parked.wake_both();
    }
}

/// A connection's id in its log lines: its hub's address, in hex.
#[derive(Clone, Copy)]
pub(crate) struct ConnId(usize);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// One more on a counter of `Stats`. A load and a store, not a read-modify-write: the
/// connection's adapter is each counter's only writer (handles only read), and a locked
/// add costs every ping and pong an atomic operation that would guard against nobody.
fn count(counter: &AtomicU32) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_takes_72_bytes() {
        // Every connection allocates one: the reader's waker and the writer's box behind a
        // lock (32), the RTT and the interval (12), the filing (4), the counters (12),
        // `missed` (2), `due` and the events (1 each), the layer's kit (8: the protocol and the drain's group).
        // With the `metrics` feature, the first poll's time too (8).
        let metrics = if cfg!(feature = "metrics") { 8 } else { 0 };
        assert_eq!(std::mem::size_of::<Shared>(), 72 + metrics);
    }

    #[test]
    fn the_writer_gets_its_box_when_it_first_waits_and_both_sides_are_woken() {
        use futures_util::task::{ArcWake, waker};
        use std::sync::atomic::AtomicUsize;

        struct Count(AtomicUsize);
        impl ArcWake for Count {
            fn wake_by_ref(arc_self: &Arc<Self>) {
                arc_self.0.fetch_add(1, Relaxed);
            }
        }
        let (reader, writer) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let shared = Arc::new(Shared::new(Duration::from_secs(1), None));
        shared.register_reader(&waker(reader.clone()));
        assert!(shared.parked.lock().writer.is_none());
        ArcWake::wake_by_ref(&shared);
        assert_eq!((reader.0.load(Relaxed), writer.0.load(Relaxed)), (1, 0));

        shared.register_writer(&waker(writer.clone()));
        shared.register_reader(&waker(reader.clone()));
        assert!(shared.parked.lock().writer.is_some());
        ArcWake::wake_by_ref(&shared);
        assert_eq!((reader.0.load(Relaxed), writer.0.load(Relaxed)), (2, 1));
        // Woken wakers are gone; the writer's box stays, empty.
        ArcWake::wake_by_ref(&shared);
        assert_eq!((reader.0.load(Relaxed), writer.0.load(Relaxed)), (2, 1));
        assert!(
            shared
                .parked
                .lock()
                .writer
                .as_ref()
                .is_some_and(|slot| slot.is_none())
        );
        shared.register_reader(&waker(reader.clone()));
        shared.wake_reader();
        assert_eq!((reader.0.load(Relaxed), writer.0.load(Relaxed)), (3, 1));
    }

    #[test]
    fn the_events_sharing_a_byte_are_taken_each_on_its_own() {
        let shared = Arc::new(Shared::new(Duration::from_secs(1), None));
        assert!(!shared.take_paused());
        assert!(!shared.take_interval_change());

        shared.pause_reading(true);
        shared.set_interval(Duration::from_secs(2));
        // Still paused: taken at every tick while it lasts.
        assert!(shared.take_paused());
        assert!(shared.take_paused());
        assert!(shared.take_interval_change());
        assert_eq!(shared.interval(), Duration::from_secs(2));
        assert!(!shared.take_interval_change());
        assert!(shared.take_paused());

        // Resumed after that tick: nothing more to take.
        shared.pause_reading(false);
        shared.set_interval(Duration::from_secs(3));
        assert!(!shared.take_paused());
        // Paused and resumed between two ticks: taken once.
        shared.pause_reading(true);
        shared.pause_reading(false);
        assert!(shared.take_paused());
        assert!(!shared.take_paused());
        assert!(shared.take_interval_change());
        assert_eq!(shared.interval(), Duration::from_secs(3));
        // A new interval marks the connection due (where it is taken); pausing does not.
        assert!(shared.due.is_set());
        shared.due.clear();
        shared.pause_reading(true);
        assert!(!shared.due.is_set());
    }
}
