//! [`Heartbeat<S>`]: the `Stream + Sink` adapter that runs the pacemaker over a WebSocket.
//!
//! The connection's state is [`State`] (where it is in its life) and [`Flags`] (what the
//! heartbeat owes it); `schedule` runs the outbound side (ticks, pings, answers), `inbound`
//! the read side (what the peer sent, the pong-flush rule, read-ahead), `stream` and `sink`
//! the two traits with their direct per-message paths. ARCHITECTURE.md ("The adapter")
//! describes the whole.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use futures_util::task::waker_ref;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::config::{Config, Nanos, Rules};
use crate::handle::HeartbeatHandle;
use crate::kit::Kit;
use crate::message::WsMessage;
use crate::pacemaker::Pacemaker;
use crate::progress::Progress;
use crate::protocol::{AppMessage, Protocol};
use crate::random;
use crate::stamp::Stamp;
use crate::wake::{Hub, Shared};

mod drain;
mod inbound;
mod parts;
mod rare;
mod schedule;
mod sink;
mod state;
mod stream;

use rare::Rare;
use state::{Flags, State};

pin_project! {
    /// A WebSocket with a heartbeat: sends pings on a schedule, hides the pongs, and ends
    /// with a [`Dead`](crate::Dead) error when the peer stops answering.
    ///
    /// Same `Item` and same `Sink` error as `S`, so a handler written for `S` takes a
    /// `Heartbeat<S>` unchanged. It asks nothing more of `S` than to be a WebSocket
    /// `Stream + Sink`: not `Send` (a stream on a `LocalSet` works), not `'static` (a
    /// `&mut` borrowed stream works, and is usable bare again afterwards). It is `Unpin`,
    /// `Send` and `Sync` when `S` is. Built by [`HeartbeatLayer`] (`layer.layer(ws)`) or
    /// [`Heartbeat::new`] with the defaults.
    ///
    /// The heartbeat runs while the connection is polled: reading (`poll_next`) or writing
    /// (`poll_ready`, `poll_flush`, `poll_close`) both drive it, and both report the death.
    /// A handler that stops polling for longer than the dead bound (a long `await` on
    /// something else) holds the heartbeat still: use
    /// [`Background`](crate::background::Background) (`HeartbeatLayer::background`), whose
    /// connection is driven by a task of its own, or `split()` the stream and keep a reader
    /// loop running.
    ///
    /// A handler that only writes never reads its pongs: while a ping awaits its pong and
    /// nothing has read since it went out, the writing side reads on the reader's behalf (at
    /// most 64 frames a poll), hides the heartbeat frames, and keeps the first data message
    /// (or error) for the reader's next `poll_next`, reading no further: nothing a peer sends
    /// grows a queue. [`into_parts`](Heartbeat::into_parts) hands that message back with the
    /// stream.
    ///
    /// Wrapped around a tower [`Service`](tower_service::Service) (through
    /// [`ServiceBuilder::layer`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html#method.layer)),
    /// `Heartbeat<Svc>` is a connection-handler service that wraps each WebSocket it is
    /// called with before handing it to `Svc`.
    ///
    /// [`HeartbeatLayer`]: crate::HeartbeatLayer
    #[must_use = "streams do nothing unless polled"]
    pub struct Heartbeat<S> {
        #[pin]
        inner: S,
        shared: Hub,
        conn: Conn,
    }
}

/// The per-connection heartbeat state, apart from the inner stream.
struct Conn {
    /// The settings kept for the connection's life. (The interval in force is the hub's: a
    /// handle or the peer may change it.)
    rules: Rules,
    state: State,
    flags: Flags,
    /// What few connections need, allocated on first use.
    rare: Option<Box<Rare>>,
}

/// What one poll of the adapter works with besides the connection's state: the inner
/// stream, the hub it shares with the ticker and the handles (and, through it, the layer's
/// kit: the application protocol) and the task's context.
struct Io<'a, 'cx, S> {
    inner: Pin<&'a mut S>,
    shared: &'a Arc<Shared>,
    cx: &'a mut Context<'cx>,
}

impl<S> Io<'_, '_, S> {
    /// The connection's heartbeat protocol: off the per-message path (the connection's
    /// `Rules` tell whether it is an application protocol).
    fn protocol(&self) -> &Protocol {
        Kit::protocol_of(self.shared.kit.as_ref())
    }

    /// `f` on the same stream with a waker that wakes both the reader and the writer: for a
    /// poll that one side makes on the other's behalf, so that neither side's wake-up is lost
    /// when the inner stream keeps only the latest waker.
    fn for_both_sides<R>(&mut self, f: impl FnOnce(&mut Io<'_, '_, S>) -> R) -> R {
        let waker = waker_ref(self.shared);
        let mut cx = Context::from_waker(&waker);
        f(&mut Io {
            inner: self.inner.as_mut(),
            shared: self.shared,
            cx: &mut cx,
        })
    }
}

/// The side of the handler a poll comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Reader,
    Writer,
}

impl<S> Heartbeat<S> {
    /// Wraps `inner` with the default settings (interval 10 s, `max_missed` 3). Use
    /// [`HeartbeatLayer`](crate::HeartbeatLayer) to choose others.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, Config::DEFAULT, None)
    }

    /// `inner` with these settings, as a new connection of the layer whose `kit` it gets
    /// (its protocol, and the group it joins at its first poll). `config`'s rules tell
    /// whether the kit's protocol is an application protocol.
    pub(crate) fn with_config(inner: S, config: Config, kit: Option<Arc<Kit>>) -> Self {
        let shared = Arc::new(Shared::new(config.interval.get(), kit));
        // Due at once: the first poll takes the full path, which files the deadline with the
        // runtime's ticker (the constructor may run outside a runtime), and the direct paths
        // need not ask whether that happened.
        shared.due.set();
        Self {
            inner,
            shared: Hub(shared),
            conn: Conn::new(config),
        }
    }

    /// Counts bytes moving on the transport under the WebSocket as life, so that a peer in
    /// the middle of a huge, slow message is not declared dead, nor one slowly reading a huge
    /// message of ours. See [`Progress::track`].
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.conn.rare().progress = Some(progress);
        self
    }

    /// A handle to this connection's heartbeat: RTT, counters, and the interval.
    pub fn handle(&self) -> HeartbeatHandle {
        HeartbeatHandle::new(self.shared.0.clone())
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably. Reading from or writing to it directly bypasses the
    /// heartbeat.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream, pinned.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().inner
    }

    /// Stops the heartbeat and returns the wrapped stream. A message the writing side read
    /// ahead for the reader (see [`Heartbeat`]) is dropped: use
    /// [`into_parts`](Heartbeat::into_parts) to get it too.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The same connection, heartbeat and all, around `f(inner)`: for a wrapped stream's
    /// builder methods that take it by value (actix-ws's `max_frame_size`).
    #[cfg_attr(not(feature = "actix"), allow(dead_code))]
    pub(crate) fn map_inner<T>(self, f: impl FnOnce(S) -> T) -> Heartbeat<T> {
        let Heartbeat {
            inner,
            shared,
            conn,
        } = self;
        Heartbeat {
            inner: f(inner),
            shared,
            conn,
        }
    }

    /// This connection's wake hub (which its handles read).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared.0
    }

    /// Pings this heartbeat has sent: a session acknowledges at each new one.
    #[cfg(feature = "resume")]
    pub(crate) fn pings_sent(&self) -> u64 {
        u64::from(
            self.shared
                .pings_sent
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The close timeout of the settings.
    #[cfg(feature = "resume")]
    pub(crate) fn close_timeout(&self) -> std::time::Duration {
        self.conn.rules.close_timeout()
    }

    /// The settings as they stand (the interval in force, which a handle or the peer may
    /// have changed).
    pub(crate) fn config(&self) -> Config {
        self.conn.config(&self.shared)
    }

    /// `other` wrapped with the same settings, as a fresh connection.
    pub(crate) fn wrap_like<W>(&self, other: W) -> Heartbeat<W> {
        Heartbeat::with_config(other, self.config(), self.shared.kit.clone())
    }

    /// The connection's state and the context of one poll, apart.
    #[inline(always)]
    fn split<'a, 'cx>(
        self: Pin<&'a mut Self>,
        cx: &'a mut Context<'cx>,
    ) -> (&'a mut Conn, Io<'a, 'cx, S>) {
        let this = self.project();
        let io = Io {
            inner: this.inner,
            shared: &this.shared.0,
            cx,
        };
        (this.conn, io)
    }
}

impl<S: Clone> Clone for Heartbeat<S> {
    /// A clone wraps a clone of the inner value with the same settings and a fresh
    /// heartbeat (this is what a cloned connection-handler service needs).
    fn clone(&self) -> Self {
        self.wrap_like(self.inner.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Heartbeat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("inner", &self.inner)
            .field("interval", &self.shared.interval())
            .field("max_missed", &self.conn.rules.max_missed())
            .field("missed", &self.conn.state.missed())
            .field("state", &self.conn.state.name())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection whose handshake is now: the first tick one interval away, or at a random
    /// moment of the first interval with `jitter`.
    fn new(config: Config) -> Self {
        let now = Instant::now();
        let interval = config.interval.get();
        let first_tick = if config.rules.jitter() {
            random::first_tick(now, interval)
        } else {
            now + interval
        };
        Conn {
            rules: config.rules,
            state: State::start(
                Pacemaker::new(random::first_seq(), now.into_std()),
                Stamp::new(first_tick.into_std()),
                interval,
            ),
            flags: Flags::new(),
            rare: None,
        }
    }

    /// The settings as they stand: the rules, and the interval in force.
    fn config(&self, shared: &Shared) -> Config {
        Config {
            interval: Nanos::new(shared.interval()),
            rules: self.rules,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    #[inline]
    fn answer_pending(&self) -> bool {
        self.flags.any(Flags::ANSWER_OWED)
    }

    #[inline]
    fn has_read_ahead(&self) -> bool {
        self.flags.any(Flags::KEPT)
    }

    /// The answer to the peer's latest application ping, to send; it replaces an unsent one.
    fn owe_answer(&mut self, answer: AppMessage) {
        self.rare().pending_answer = Some(answer);
        self.flags.set(Flags::ANSWER_OWED);
    }

    /// The pong to the peer's control ping, for a WebSocket library that does not answer
    /// pings itself (`WsMessage::answer_ping`). Out of line: only such pings come here.
    #[inline(never)]
    fn owe_pong<M: Send + Sync + 'static>(&mut self, pong: M) {
        self.rare().pong.put(pong);
        self.flags.set(Flags::ANSWER_OWED);
    }

    /// A pong of ours to the peer's control ping waits in the rare box.
    fn pong_unsent(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| rare.pong.is_owed())
    }

    /// The next frame owed to the peer, if any: the pong to its control ping first (reading
    /// waits for it, see `poll_pong_flushed`), then the answer to its application ping, then
    /// a drain's Close (after which nothing more is sent).
    fn take_owed<M: WsMessage + 'static>(&mut self) -> Option<M> {
        let Some(rare) = self.rare.as_mut() else {
            self.flags.clear(Flags::ANSWER_OWED);
            return None;
        };
        let owed = match rare.pong.take::<M>() {
            Some(pong) => Some(pong),
            None => match rare.pending_answer.take() {
                Some(answer) => Some(M::from_app(answer)),
                None => self.take_drain_close(),
            },
        };
        let more = self
            .rare
            .as_ref()
            .is_some_and(|rare| rare.pong.is_owed() || rare.pending_answer.is_some())
            || self.drain_close_owed();
        self.flags.clear_if(Flags::ANSWER_OWED, !more);
        owed
    }

    /// Nothing owed is sent any more (the peer is dead).
    fn drop_owed(&mut self) {
        self.flags.clear(Flags::ANSWER_OWED);
        if let Some(rare) = self.rare.as_mut() {
            rare.pending_answer = None;
            rare.pong.discard();
        }
    }

    /// An item read ahead, kept for the reader.
    fn keep<T: Send + Sync + 'static>(&mut self, item: T) {
        self.rare().read_ahead.put(item);
        self.flags.set(Flags::KEPT);
    }

    #[inline]
    fn take_kept<T: 'static>(&mut self) -> Option<T> {
        if !self.has_read_ahead() {
            return None;
        }
        self.flags.clear(Flags::KEPT);
        self.rare.as_mut()?.read_ahead.take()
    }

    /// Nothing for the heartbeat to do before the inner stream or sink is polled, but
    /// possibly the `flags` not named: the connection runs and is not marked due (a new one
    /// is, until its first poll files its deadline). The direct per-message paths start here.
    #[inline(always)]
    fn idle_but(&self, shared: &Shared, flags: u8) -> bool {
        self.state.runs() && !shared.due.is_set() && !self.flags.any(flags)
    }

    /// The full `poll_next` would only read: nothing due, no frame of ours to send or flush,
    /// no pong owed, no answer owed, nothing read ahead, and the reader has polled since the
    /// last ping (the first read after a ping takes the full path, which notes that it did:
    /// the direct path then stores nothing).
    #[inline(always)]
    fn reads_directly(&self, shared: &Shared) -> bool {
        self.idle_but(
            shared,
            Flags::PING_DUE
                | Flags::UNFLUSHED
                | Flags::PONG_OWED
                | Flags::ANSWER_OWED
                | Flags::KEPT
                | Flags::UNREAD,
        )
    }

    /// The full sink path would only flush the inner sink: nothing due, no ping or answer
    /// waiting, no frame of ours handed over and not yet flushed (the direct flush then has
    /// no flag to keep), no read-ahead owed to a send-only handler.
    #[inline(always)]
    fn writes_directly(&self, shared: &Shared) -> bool {
        const OURS: u8 = Flags::PING_DUE | Flags::ANSWER_OWED | Flags::UNFLUSHED;
        // Tested with `UNREAD` first: one test for a connection whose handler reads.
        self.idle_but(shared, OURS | Flags::UNREAD)
            || (self.idle_but(shared, OURS) && (self.has_read_ahead() || !self.awaiting_pong()))
    }

    fn awaiting_pong(&self) -> bool {
        match &self.state {
            State::Running(running) => running.pacemaker.awaiting_pong(),
            State::Dead(_) | State::Ended => false,
        }
    }
}

/// The clock and the timer, behind two functions that unit tests count, to prove that the
/// per-message path uses neither.
mod probe {
    use tokio::time::Instant;

    #[cfg(test)]
    thread_local! {
        pub(super) static CLOCK_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        pub(super) static FILINGS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    #[inline]
    pub(super) fn now() -> Instant {
        #[cfg(test)]
        CLOCK_READS.with(|n| n.set(n.get() + 1));
        Instant::now()
    }

    /// A deadline filed with the ticker: the timer (re-)armed.
    #[inline]
    pub(super) fn filed() {
        #[cfg(test)]
        FILINGS.with(|n| n.set(n.get() + 1));
    }
}

#[cfg(test)]
mod tests;
