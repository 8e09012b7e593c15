//! What a [`Background`](super::Background) connection's handler and its driver task share:
//! the connection and the queue of what the driver read, behind one lock, and the router
//! through which every wake-up of the connection goes; and the driver task itself.
//!
//! The handler reads the connection itself while it polls; the driver takes over only while
//! the handler is away. Who is where is the router's state, which the connection's wakers
//! (the socket's, the heartbeat's ticks) consult when they fire:
//!
//! - the handler waits to read (`READING`): the wake-up goes to the handler, which reads the
//!   connection itself, as a plain [`Heartbeat`](crate::Heartbeat) would;
//! - the handler is away (not waiting in a read): the wake-up goes to the driver, which reads
//!   what came into the queue (spawned at the first such wake-up: a handler that is never
//!   away never gets one);
//! - a wake-up that finds the handler woken before, not having looked since, and a tick of
//!   the heartbeat due: the handler left its read unpolled (a `select!` arm that lost, then
//!   other work), and the driver takes over (a burst of wake-ups from one write of the peer's
//!   is not that: no tick is due);
//! - the handler waits to write (`WRITING`): its writer is woken, and the driver too unless
//!   the handler also waits to read.
//!
//! A wake-up that reached the handler while it polled, and that it may not have served (it
//! returned an item and went away), is passed on to the driver when it leaves. Everything
//! here is under the lock or an atomic read-modify-write: the driver looks at the state under
//! the lock, where the handler sets it, so that it never reads while the handler waits.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::task::{ArcWake, waker_ref};

use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::WsMessage;
use crate::sync::{AtomicBool, AtomicU8, AtomicWaker, Mutex, MutexGuard, lock};
use crate::wake::Shared;

/// Items read while the handler is away wait in a queue of this many; when it is full, the
/// driver stops reading until the handler takes one.
pub(crate) const QUEUE: usize = 32;

/// What an emptied queue keeps: room for a steady trickle of messages, so that one does not
/// allocate per message.
const KEEP: usize = 4;

/// The handler waits in a read: wake-ups go to it.
const READING: u8 = 1;
/// The handler waits in a write: its writer is woken too.
const WRITING: u8 = 1 << 1;
/// The driver task exists (spawned at the first wake-up that found the handler away).
const SPAWNED: u8 = 1 << 2;
/// The handler dropped its side: the driver ends.
const DROPPED: u8 = 1 << 3;

pub(super) struct Link<S: Stream> {
    /// `READING`, `WRITING`, `SPAWNED`, `DROPPED`.
    state: AtomicU8,
    /// A wake-up came since the reader last began a poll.
    woken: AtomicBool,
    /// The connection's hub, whose due flag tells a tick nobody ran.
    hub: Arc<Shared>,
    reader: AtomicWaker,
    writer: AtomicWaker,
    driver: AtomicWaker,
    /// The runtime the driver is spawned on: the handler's, whichever thread the wake-up
    /// that spawns it comes from.
    runtime: tokio::runtime::Handle,
    /// `None` once the handler dropped its side (the connection goes with it).
    inner: Mutex<Option<Inner<S>>>,
}

/// The connection and what the driver read of it.
pub(super) struct Inner<S: Stream> {
    pub(super) conn: Pin<Box<Heartbeat<S>>>,
    queue: VecDeque<S::Item>,
    /// The queue was full and the driver stopped reading (noted in the hub).
    paused: bool,
}

/// The connection, which is there as long as the handler's side is (only its drop takes
/// it): the handler's calls find it.
fn held<'a, S: Stream>(guard: &'a mut MutexGuard<'_, Option<Inner<S>>>) -> &'a mut Inner<S> {
    guard
        .as_mut()
        .expect("the handler's side holds the connection")
}

/// How a look at the connection ended for the driver.
pub(super) enum Taken {
    /// Nothing more to read now, or no room: woken again when there is.
    Waiting,
    /// The connection ended: nothing more will come.
    Ended,
}

impl<S: Stream> Link<S> {
    /// Must be called inside a tokio runtime (the driver's).
    pub(super) fn new(conn: Pin<Box<Heartbeat<S>>>) -> Self {
        Self {
            state: AtomicU8::new(0),
            woken: AtomicBool::new(false),
            hub: conn.shared().clone(),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            driver: AtomicWaker::new(),
            runtime: tokio::runtime::Handle::current(),
            inner: Mutex::new(Some(Inner {
                conn,
                queue: VecDeque::new(),
                paused: false,
            })),
        }
    }

    /// The connection and the queue, locked. Nothing panics while the lock is held but the
    /// inner stream itself; a poisoned lock still holds a connection whose state is whole
    /// between polls.
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Inner<S>>> {
        lock(&self.inner)
    }

    /// The handler dropped its side: the connection goes now (the socket closes), and the
    /// driver, if any, ends at its next poll.
    pub(super) fn drop_handler(&self) {
        self.state.fetch_or(DROPPED, SeqCst);
        let conn = self.lock().take();
        drop(conn);
        self.driver.wake();
    }
}

impl<S, M, E> Link<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// The handler's read: what the driver read first, then the connection itself.
    #[inline]
    pub(super) fn poll_next(self: &Arc<Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut guard = self.lock();
        let inner = held(&mut guard);
        if !inner.queue.is_empty() {
            return Poll::Ready(self.take(inner));
        }
        // Waiting from here: a wake-up now comes to this task. Registered before the poll:
        // one that comes during it (a tick) is then not lost should the poll wait.
        self.reader.register(cx.waker());
        if self.state.load(Relaxed) & READING == 0 {
            self.state.fetch_or(READING, SeqCst);
        }
        self.woken.store(false, SeqCst);
        let router = waker_ref(self);
        let poll = inner
            .conn
            .as_mut()
            .poll_next(&mut Context::from_waker(&router));
        if poll.is_pending() {
            return Poll::Pending;
        }
        // Away from here. The read that returned an item left nothing registered with the
        // socket, and the wake-up that brought it took the router out of the hub: the hub
        // gets it back, so that the next tick reaches the driver. (Before `READING` goes: a
        // tick in between comes to us, and to the driver below.)
        self.hub.register_reader(&router);
        self.state.fetch_and(!READING, SeqCst);
        // A wake-up that came to us while we polled may be one we did not serve: the driver
        // looks.
        if self.woken.load(SeqCst) {
            drop(guard);
            self.wake_driver();
        }
        poll
    }

    /// The oldest item the driver read; a full queue's driver resumes.
    #[cold]
    fn take(&self, inner: &mut Inner<S>) -> Option<S::Item> {
        let item = inner.queue.pop_front();
        if inner.queue.is_empty() && inner.queue.capacity() > KEEP {
            // Give back what a burst grew.
            inner.queue.shrink_to(KEEP);
        }
        if inner.paused {
            inner.paused = false;
            inner.conn.shared().pause_reading(false);
            self.driver.wake();
        }
        item
    }

    /// A write of the handler's, `op` on the connection: on the fast path one poll under
    /// the lock. Waiting, the writer is registered and `WRITING` set before one more poll,
    /// so that no wake-up between the two goes to the driver alone.
    #[inline]
    pub(super) fn poll_write(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        mut op: impl FnMut(Pin<&mut Heartbeat<S>>, &mut Context<'_>) -> Poll<Result<(), E>>,
    ) -> Poll<Result<(), E>> {
        let mut guard = self.lock();
        let inner = held(&mut guard);
        let router = waker_ref(self);
        let mut rcx = Context::from_waker(&router);
        let poll = op(inner.conn.as_mut(), &mut rcx);
        let writing = self.state.load(Relaxed) & WRITING != 0;
        match (poll.is_pending(), writing) {
            (false, false) => poll,
            (false, true) => {
                self.state.fetch_and(!WRITING, SeqCst);
                poll
            }
            (true, _) => {
                self.writer.register(cx.waker());
                if !writing {
                    self.state.fetch_or(WRITING, SeqCst);
                }
                let poll = op(inner.conn.as_mut(), &mut rcx);
                if poll.is_ready() {
                    self.state.fetch_and(!WRITING, SeqCst);
                }
                poll
            }
        }
    }

    /// The handler's `start_send`.
    pub(super) fn start_send(&self, item: M) -> Result<(), E> {
        held(&mut self.lock()).conn.as_mut().start_send(item)
    }

    /// Whether the handler, waiting to read, has left a wake-up and a tick unserved: it is
    /// not listening.
    fn unheard(&self) -> bool {
        self.woken.load(SeqCst) && self.hub.due.is_set()
    }

    /// Reads what came into the queue while the handler is away, until nothing more comes
    /// or the queue is full (then the driver waits for room, and the pause is noted in the
    /// hub: that silence is ours, and the next tick does not count it against the peer).
    /// Nothing while the handler waits to read, unless it is not listening: then it counts
    /// as away until it reads again.
    pub(super) fn take_over(self: &Arc<Self>, inner: &mut Inner<S>) -> Taken {
        if self.state.load(SeqCst) & READING != 0 {
            if !self.unheard() {
                return Taken::Waiting;
            }
            self.state.fetch_and(!READING, SeqCst);
        }
        let router = waker_ref(self);
        let mut rcx = Context::from_waker(&router);
        let mut read = false;
        let taken = loop {
            if inner.queue.len() >= QUEUE {
                if !inner.paused {
                    inner.paused = true;
                    inner.conn.shared().pause_reading(true);
                }
                break Taken::Waiting;
            }
            match inner.conn.as_mut().poll_next(&mut rcx) {
                Poll::Ready(Some(item)) => {
                    inner.queue.push_back(item);
                    read = true;
                }
                Poll::Ready(None) => break Taken::Ended,
                Poll::Pending => break Taken::Waiting,
            }
        };
        if read {
            // One wake-up for the batch, should the handler wait.
            self.reader.wake();
        }
        taken
    }

    /// A wake-up for the driver: spawned at the first.
    fn wake_driver(self: &Arc<Self>) {
        if self.state.load(Relaxed) & SPAWNED == 0
            && self.state.fetch_or(SPAWNED, SeqCst) & SPAWNED == 0
        {
            // Detached: it ends with the connection, or when the handler drops its side.
            drop(self.runtime.spawn(Driver { link: self.clone() }));
        } else {
            self.driver.wake();
        }
    }
}

/// The router: the waker the connection is polled with, by the handler and the driver alike.
impl<S, M, E> ArcWake for Link<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    fn wake_by_ref(link: &Arc<Self>) {
        // `woken` before the state, and the handler clears `READING` before it reads
        // `woken`: one of the two sees the other (SeqCst), so that a wake-up the handler
        // leaves unserved reaches the driver.
        let woken_before = link.woken.swap(true, SeqCst);
        let state = link.state.load(SeqCst);
        if state & WRITING != 0 {
            link.writer.wake();
        }
        if state & READING != 0 {
            link.reader.wake();
            let due = link.hub.due.is_set();
            if !(woken_before && due) {
                if due {
                    // The hub gave up its waker with this wake-up: should the handler not
                    // look, the next tick must still come here to be judged.
                    link.hub.register_reader(&waker_ref(link));
                }
                return;
            }
        }
        if state & DROPPED == 0 {
            link.wake_driver();
        }
    }
}

/// The driver task's future, spawned at the first wake-up that finds the handler away: it
/// reads the connection (which runs its heartbeat) into the queue while the handler is
/// away, and does nothing while the handler reads itself. One pointer, so that the task is
/// as small as tokio makes one.
struct Driver<S: Stream> {
    link: Arc<Link<S>>,
}

impl<S, M, E> Future for Driver<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let link = &self.link;
        // Registered before the look, so that a wake-up during it is not lost.
        link.driver.register(cx.waker());
        if link.state.load(SeqCst) & DROPPED != 0 {
            return Poll::Ready(());
        }
        let mut guard = link.lock();
        let Some(inner) = guard.as_mut() else {
            return Poll::Ready(());
        };
        match link.take_over(inner) {
            Taken::Waiting => Poll::Pending,
            Taken::Ended => Poll::Ready(()),
        }
    }
}
