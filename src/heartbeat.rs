//! [`Heartbeat<S>`]: the `Stream + Sink` adapter that runs the pacemaker over a WebSocket.
//!
//! Its deadline is filed with the runtime's shared timer (`ticker`) once per tick. Per
//! message it checks whether the ticker marked it due (one atomic load), classifies the
//! message and sets a flag: no clock read, no timer reset, no allocation. Pings go out
//! through the inner sink between the handler's messages, never inside a `poll_ready` ..
//! `start_send` reservation.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use futures_util::task::{ArcWake, waker_ref};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::config::{Config, Nanos};
use crate::error::Dead;
use crate::handle::{HeartbeatHandle, Shared};
use crate::message::{MessageKind, WsMessage};
use crate::pacemaker::{Pacemaker, Pong, Tick};
use crate::progress::Progress;
use crate::protocol::{AppMessage, Protocol, Verdict};
use crate::random;
use crate::stamp::Stamp;
use crate::ticker::Ticker;

/// Status code and reason of the Close frame sent to a dead peer (RFC 6455 §7.4.1: 1011,
/// an unexpected condition prevented the request from being fulfilled).
const DEAD_CLOSE_CODE: u16 = 1011;
const DEAD_CLOSE_REASON: &str = "keepalive timeout";

/// Heartbeat frames (pongs, hidden pings) read in one poll before yielding to the executor,
/// so a peer flooding them cannot monopolise the task.
const HIDDEN_PER_POLL: u32 = 64;

pin_project! {
    /// A WebSocket with a heartbeat: sends pings on a schedule, hides the pongs, and ends
    /// with a [`Dead`] error when the peer stops answering.
    ///
    /// Same `Item` and same `Sink` error as `S`, so a handler written for `S` takes a
    /// `Heartbeat<S>` unchanged; it is `Unpin` when `S` is. Built by [`HeartbeatLayer`]
    /// (`layer.layer(ws)`) or [`Heartbeat::new`] with the defaults.
    ///
    /// The heartbeat runs while the connection is polled: reading (`poll_next`) or writing
    /// (`poll_ready`, `poll_flush`, `poll_close`) both drive it, and both report the death.
    /// A handler that stops polling for longer than the dead bound (a long `await` on
    /// something else) holds the heartbeat still; `split()` the stream and keep a reader
    /// loop running if the handler waits elsewhere.
    ///
    /// Wrapped in a tower [`Service`](tower_service::Service) (through
    /// [`ServiceBuilder::layer`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html#method.layer)),
    /// `Heartbeat<Svc>` is a connection-handler service that wraps each WebSocket it is
    /// called with before handing it to `Svc`.
    ///
    /// [`HeartbeatLayer`]: crate::HeartbeatLayer
    #[must_use = "streams do nothing unless polled"]
    pub struct Heartbeat<S> {
        #[pin]
        inner: S,
        protocol: Protocol,
        shared: Arc<Shared>,
        conn: Conn,
    }
}

/// The per-connection heartbeat state, apart from the inner stream.
struct Conn {
    /// The settings; `config.interval` is the interval in force (a handle may change it).
    config: Config,
    /// The next tick, or once the peer is dead the end of the close timeout.
    deadline: Stamp,
    /// The runtime's shared timer, with which `deadline` is filed; `None` until the first
    /// poll (it needs a runtime, the constructor does not).
    ticker: Option<Arc<Ticker>>,
    pacemaker: Pacemaker,
    phase: Phase,
    /// The latest ping is due but not yet handed to the sink (the sink was full or
    /// reserved). A newer tick replaces it.
    ping_due: bool,
    /// A heartbeat frame was handed to the sink but not flushed yet.
    unflushed: bool,
    /// The handler got `Ready` from `poll_ready` and owns the next `start_send`.
    reserved: bool,
    /// `poll_next` ran since the last ping went out. If not, the writing side reads the pong
    /// itself (a send-only handler), keeping at most one data message for the reader.
    reader_polled: bool,
    /// The peer pinged: the WebSocket library queued a pong that may not be flushed yet.
    pong_owed: bool,
    /// What few connections need, allocated on first use.
    rare: Option<Box<Rare>>,
}

/// The state that most connections never need: one pointer in each connection instead of
/// 80 bytes, allocated the first time one of these is needed (an application ping to
/// answer, a message read ahead, progress tracking, a death) and kept.
#[derive(Default)]
struct Rare {
    /// The answer to the peer's latest application ping, not yet handed to the sink. One
    /// slot: a newer ping replaces an unsent answer, so a flood of pings queues nothing.
    pending_answer: Option<AppMessage>,
    /// Set once the phase is `Dead`.
    death: Death,
    /// Byte-level progress of the transport, if it is tracked.
    progress: Option<Progress>,
    read_ahead: ReadAhead,
}

impl Rare {
    /// No answer to send and no message kept for the reader: what is left here (progress
    /// tracking, a death) does not concern reading.
    fn nothing_owed(&self) -> bool {
        self.pending_answer.is_none() && self.read_ahead.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Live,
    /// A Close frame went out or came in: ticks go on, but pings cannot be written any more,
    /// so they count as unanswered and a peer that never completes the close is still found
    /// dead.
    Closing,
    /// The peer is dead (the details are in `Rare::death`). The stream reports it once; the
    /// sink every time.
    Dead,
    /// The inner stream ended: the heartbeat has stopped.
    Ended,
}

/// How a dead peer was found, and what is left to do about it.
struct Death {
    dead: Dead,
    reported: bool,
    close: DeadClose,
}

impl Default for Death {
    fn default() -> Self {
        Death {
            dead: Dead::new(0, Duration::ZERO),
            reported: false,
            close: DeadClose::Unsent,
        }
    }
}

/// Progress of the best-effort Close frame to a dead peer, bounded by the close timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DeadClose {
    Unsent,
    Sent,
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Reader,
    Writer,
}

/// One item read ahead by the writing side, waiting for the reader. Type-erased because
/// `Heartbeat<S>` is also the tower `Service` wrapper, where `S` has no item type.
#[derive(Default)]
struct ReadAhead(Option<Box<dyn Any + Send + Sync>>);

impl ReadAhead {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn put<T: Send + Sync + 'static>(&mut self, item: T) {
        self.0 = Some(Box::new(item));
    }

    #[inline]
    fn take<T: 'static>(&mut self) -> Option<T> {
        // Only one type is ever put, so the downcast cannot fail.
        self.0
            .take()
            .and_then(|item| item.downcast().ok())
            .map(|item| *item)
    }
}

impl<S> Heartbeat<S> {
    /// Wraps `inner` with the default settings (interval 10 s, `max_missed` 3). Use
    /// [`HeartbeatLayer`](crate::HeartbeatLayer) to choose others.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, Config::DEFAULT, Protocol::Control)
    }

    pub(crate) fn with_config(inner: S, config: Config, protocol: Protocol) -> Self {
        let now = Instant::now();
        let first_tick = if config.jitter {
            random::first_tick(now, config.interval.get())
        } else {
            now + config.interval.get()
        };
        Self {
            inner,
            protocol,
            shared: Arc::new(Shared::new(config.interval.get())),
            conn: Conn {
                config,
                deadline: Stamp::new(first_tick.into_std()),
                ticker: None,
                pacemaker: Pacemaker::new(random::first_seq(), now.into_std()),
                phase: Phase::Live,
                ping_due: false,
                unflushed: false,
                reserved: false,
                reader_polled: false,
                pong_owed: false,
                rare: None,
            },
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
        HeartbeatHandle::new(self.shared.clone())
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
    /// ahead for the reader (see [`Heartbeat`]) is lost.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `other` wrapped with the same settings, as a fresh connection.
    pub(crate) fn wrap_like<W>(&self, other: W) -> Heartbeat<W> {
        Heartbeat::with_config(other, self.conn.config, self.protocol.clone())
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
        let phase = match self.conn.phase {
            Phase::Live => "live",
            Phase::Closing => "closing",
            Phase::Dead => "dead",
            Phase::Ended => "ended",
        };
        f.debug_struct("Heartbeat")
            .field("inner", &self.inner)
            .field("interval", &self.conn.config.interval.get())
            .field("max_missed", &self.conn.config.max_missed)
            .field("missed", &self.conn.pacemaker.missed())
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}

impl Conn {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    #[inline]
    fn answer_pending(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|rare| rare.pending_answer.is_some())
    }

    #[inline]
    fn has_read_ahead(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|rare| !rare.read_ahead.is_empty())
    }

    #[inline]
    fn take_read_ahead<T: 'static>(&mut self) -> Option<T> {
        self.rare.as_mut()?.read_ahead.take()
    }

    fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// The inner sink's `op`, noting its success: the handler's reservation after `Ready`,
    /// our frames flushed after `Flush` or `Close`.
    #[inline(always)]
    fn poll_inner<S, M>(
        &mut self,
        inner: Pin<&mut S>,
        cx: &mut Context<'_>,
        op: SinkOp,
    ) -> Poll<Result<(), S::Error>>
    where
        S: Sink<M>,
    {
        let poll = match op {
            SinkOp::Ready => inner.poll_ready(cx),
            SinkOp::Flush => inner.poll_flush(cx),
            SinkOp::Close => inner.poll_close(cx),
        };
        let done = matches!(poll, Poll::Ready(Ok(())));
        match op {
            SinkOp::Ready => self.reserved |= done,
            SinkOp::Flush | SinkOp::Close => self.unflushed &= !done,
        }
        poll
    }

    /// Live or closing, the deadline filed with the ticker and not marked due.
    #[inline]
    fn nothing_due(&self, shared: &Shared) -> bool {
        matches!(self.phase, Phase::Live | Phase::Closing)
            && self.ticker.is_some()
            && !shared.due.is_set()
    }

    /// Nothing for the heartbeat to do before the inner sink is polled: live or closing, the
    /// deadline filed and not passed, no frame of ours waiting, no read-ahead owed to a
    /// send-only handler. Then `poll_sink` would only poll the inner sink.
    #[inline]
    fn quiet(&self, shared: &Shared) -> bool {
        self.nothing_due(shared)
            && !self.ping_due
            && !self.answer_pending()
            && (self.reader_polled || !self.pacemaker.awaiting_pong() || self.has_read_ahead())
    }

    /// Nothing for the heartbeat to do before the inner stream is read: live or closing, the
    /// deadline filed and not passed, no frame of ours to send or flush, no pong owed, no
    /// answer owed, nothing read ahead. Then the full `poll_next` would only read. (A
    /// browser's connection has the rare box from its first ping on: it reads directly too
    /// between its pings.)
    #[inline]
    fn reads_quietly(&self, shared: &Shared) -> bool {
        self.nothing_due(shared)
            && !(self.ping_due | self.unflushed | self.pong_owed)
            && self.rare.as_deref().is_none_or(Rare::nothing_owed)
    }

    /// Runs a due tick and moves a pending ping into the sink.
    #[inline]
    fn drive<S, M, E>(
        &mut self,
        inner: Pin<&mut S>,
        shared: &Arc<Shared>,
        protocol: &Protocol,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Result<(), E>
    where
        S: Sink<M, Error = E>,
        M: WsMessage,
    {
        if let Some(now) = self.due(shared) {
            self.tick(shared, now);
        }
        // Only while live: once a Close went out, the library refuses further frames.
        if (self.ping_due || self.answer_pending() || self.unflushed)
            && matches!(self.phase, Phase::Live)
        {
            self.send_heartbeats(inner, shared, protocol, cx, side)?;
        }
        Ok(())
    }

    /// The deadline is filed with the runtime's ticker, at the first poll.
    #[inline]
    fn ensure_filed(&mut self, shared: &Arc<Shared>) {
        if self.ticker.is_none() {
            self.file_first(shared);
        }
    }

    #[cold]
    fn file_first(&mut self, shared: &Arc<Shared>) {
        self.ticker = Some(Ticker::current());
        self.file(shared);
    }

    fn file(&self, shared: &Arc<Shared>) {
        if let Some(ticker) = &self.ticker {
            probe::filed();
            ticker.file(self.deadline, shared);
        }
    }

    /// `Some(now)` if the deadline has passed: the ticker marked the connection due and the
    /// clock agrees (a filing from before the deadline moved later can fire early). Per
    /// message this is one relaxed load.
    #[inline]
    fn due(&mut self, shared: &Arc<Shared>) -> Option<Instant> {
        self.ensure_filed(shared);
        if shared.due.is_set() {
            self.due_now(shared)
        } else {
            None
        }
    }

    #[cold]
    fn due_now(&self, shared: &Shared) -> Option<Instant> {
        shared.due.clear();
        let now = probe::now();
        (Stamp::new(now.into_std()) >= self.deadline).then_some(now)
    }

    fn tick(&mut self, shared: &Arc<Shared>, now: Instant) {
        if let Some(interval) = shared.take_interval_change() {
            self.config.interval = Nanos::new(interval);
        }
        let progress = self.rare.as_ref().and_then(|rare| rare.progress.as_ref());
        if progress.is_some_and(Progress::take) {
            self.pacemaker.on_progress();
        }
        let tick = self.pacemaker.on_tick(&self.config, now.into_std());
        shared.set_missed(self.pacemaker.missed());
        match tick {
            Tick::Dead(dead) => return self.die(dead, shared, now),
            Tick::Ping(_) if matches!(self.phase, Phase::Live) => self.ping_due = true,
            // While closing the ping cannot be written: it counts as unanswered.
            Tick::Ping(_) | Tick::Skip => {}
        }
        let interval = self.config.interval.get();
        let next = self.deadline.add(interval);
        let now = Stamp::new(now.into_std());
        // After a stall longer than an interval, tick once and start a fresh schedule
        // rather than firing a burst of ticks that the peer had no chance to answer.
        self.deadline = if next > now { next } else { now.add(interval) };
        self.file(shared);
    }

    fn die(&mut self, dead: Dead, shared: &Arc<Shared>, now: Instant) {
        tracing::warn!(
            missed = dead.missed(),
            silent_for = ?dead.silent_for(),
            "websocket peer is dead"
        );
        self.phase = Phase::Dead;
        self.rare().death = Death {
            dead,
            reported: false,
            close: DeadClose::Unsent,
        };
        self.ping_due = false;
        if let Some(rare) = &mut self.rare {
            rare.pending_answer = None;
        }
        self.deadline = Stamp::new(now.into_std()).add(self.config.close_timeout.get());
        self.file(shared);
        // Whichever side is parked (a reader waiting for data, a writer waiting for room)
        // must learn at once.
        ArcWake::wake_by_ref(shared);
    }

    /// Whether the ticker may have marked the connection due, after applying an interval
    /// changed through a handle. `Pending` leaves the wake-up to the ticker, which wakes the
    /// waker the caller registered in `shared` (reader or writer); `Ready` means: look
    /// again (`drive` reads the clock).
    fn poll_timer(&mut self, shared: &Arc<Shared>) -> Poll<()> {
        self.ensure_filed(shared);
        if let Some(interval) = shared.take_interval_change() {
            let last_tick = self.deadline.sub(self.config.interval.get());
            self.deadline = last_tick.add(interval);
            self.config.interval = Nanos::new(interval);
            self.file(shared);
        }
        if shared.due.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// `side` waits for the inner stream or sink: its waker goes where the ticker wakes it,
    /// then `poll_timer`.
    #[inline]
    fn park(&mut self, shared: &Arc<Shared>, side: Side, cx: &Context<'_>) -> Poll<()> {
        match side {
            Side::Reader => shared.reader.register(cx.waker()),
            Side::Writer => shared.writer.register(cx.waker()),
        }
        self.poll_timer(shared)
    }

    fn send_heartbeats<S, M, E>(
        &mut self,
        inner: Pin<&mut S>,
        shared: &Arc<Shared>,
        protocol: &Protocol,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Result<(), E>
    where
        S: Sink<M, Error = E>,
        M: WsMessage,
    {
        // The handler owns the sink's readiness until its `start_send`: a ping now could
        // make that `start_send` fail. The ping waits for the next poll.
        if self.reserved {
            return Ok(());
        }
        match side {
            Side::Writer => self.push_heartbeats(inner, shared, protocol, cx),
            // The reader polls the sink for the writer's sake: let a wake-up reach both, or
            // a writer parked on a full sink would miss the moment it drains.
            Side::Reader => {
                shared.reader.register(cx.waker());
                let waker = waker_ref(shared);
                self.push_heartbeats(inner, shared, protocol, &mut Context::from_waker(&waker))
            }
        }
    }

    /// Hands the pending answer and the pending ping to the sink, each after a `Ready` of
    /// its `poll_ready`, then flushes.
    fn push_heartbeats<S, M, E>(
        &mut self,
        mut inner: Pin<&mut S>,
        shared: &Shared,
        protocol: &Protocol,
        cx: &mut Context<'_>,
    ) -> Result<(), E>
    where
        S: Sink<M, Error = E>,
        M: WsMessage,
    {
        while self.answer_pending() || self.ping_due {
            match inner.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Err(err),
                Poll::Pending => return Ok(()),
            }
            let answer = self
                .rare
                .as_mut()
                .and_then(|rare| rare.pending_answer.take());
            if let Some(answer) = answer {
                inner.as_mut().start_send(M::from_app(answer))?;
            } else {
                self.ping_due = false;
                let seq = self.pacemaker.latest_seq();
                let ping = match protocol {
                    Protocol::Control => M::ping(seq.to_be_bytes()),
                    Protocol::App(app) => M::from_app(app.ping(seq)),
                };
                inner.as_mut().start_send(ping)?;
                self.reader_polled = false;
                self.pacemaker.on_ping_written(seq, probe::now().into_std());
                shared.ping_sent();
            }
            self.unflushed = true;
        }
        match inner.poll_flush(cx) {
            Poll::Ready(Ok(())) => self.unflushed = false,
            Poll::Ready(Err(err)) => return Err(err),
            Poll::Pending => {}
        }
        Ok(())
    }

    /// The WebSocket library answered the peer's last ping with a pong that may still sit in
    /// its write buffer. Reading on would queue one more pong per ping, and tungstenite's
    /// write buffer has no bound: a peer flooding pings without reading could grow it
    /// forever. So nothing more is read until that pong is flushed; a flood then meets
    /// backpressure instead of memory. `cx` must wake both sides (see `send_heartbeats`).
    fn poll_pong_flushed<S, M, E>(
        &mut self,
        inner: Pin<&mut S>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), E>>
    where
        S: Sink<M, Error = E>,
    {
        if self.pong_owed {
            std::task::ready!(inner.poll_flush(cx))?;
            self.pong_owed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads what the peer sent, for the heartbeat's sake. Returns `true` if the message is
    /// heartbeat traffic to hide from the handler.
    #[inline(always)]
    fn observe<M: WsMessage>(&mut self, msg: &M, protocol: &Protocol, shared: &Shared) -> bool {
        match msg.kind() {
            MessageKind::Pong(payload) => {
                let verdict = self.pacemaker.on_pong(payload, probe::now().into_std());
                record_pong(verdict, shared);
                true
            }
            MessageKind::Ping => {
                // The WebSocket library has queued the pong; it must go out before we read on
                // (see `poll_pong_flushed`).
                self.pacemaker.on_inbound();
                self.pong_owed = true;
                !self.config.forward_pings
            }
            MessageKind::Data => {
                self.pacemaker.on_inbound();
                match protocol {
                    Protocol::Control => false,
                    Protocol::App(_) => self.observe_app(msg, protocol, shared),
                }
            }
            MessageKind::Close(_) => {
                // The peer started (or finished) the closing handshake: no more pings; ticks
                // go on, so a peer that then never ends the connection is still found dead.
                self.pacemaker.on_inbound();
                if matches!(self.phase, Phase::Live) {
                    self.phase = Phase::Closing;
                }
                false
            }
        }
    }

    /// An application heartbeat looks at a text or binary message: the peer's ping gets an
    /// answer, a pong counts like a control pong; both are hidden.
    #[inline(never)]
    fn observe_app<M: WsMessage>(&mut self, msg: &M, protocol: &Protocol, shared: &Shared) -> bool {
        let (Protocol::App(app), Some(frame)) = (protocol, msg.as_app()) else {
            return false;
        };
        match app.classify(frame) {
            Verdict::Data => false,
            Verdict::Ping { answer } => {
                self.rare().pending_answer = Some(answer);
                true
            }
            Verdict::Pong { seq } => {
                let verdict = self.pacemaker.on_app_pong(seq, probe::now().into_std());
                record_pong(verdict, shared);
                true
            }
        }
    }

    /// A handler that only writes never reads the pongs. While a ping waits for its answer
    /// and the reader has not polled since the ping, the writing side reads: heartbeat
    /// frames are consumed, the first data message is kept for the reader, and reading
    /// stops there (nothing a peer sends can grow a queue).
    #[inline]
    fn read_ahead<S, M, E>(
        &mut self,
        inner: Pin<&mut S>,
        shared: &Arc<Shared>,
        protocol: &Protocol,
        cx: &mut Context<'_>,
    ) where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        if !self.reader_polled
            && self.pacemaker.awaiting_pong()
            && !self.has_read_ahead()
            && matches!(self.phase, Phase::Live | Phase::Closing)
        {
            self.read_ahead_now(inner, shared, protocol, cx);
        }
    }

    #[inline(never)]
    fn read_ahead_now<S, M, E>(
        &mut self,
        mut inner: Pin<&mut S>,
        shared: &Arc<Shared>,
        protocol: &Protocol,
        cx: &mut Context<'_>,
    ) where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        // Reading on the writer's behalf must not steal a parked reader's wake-up.
        shared.writer.register(cx.waker());
        let waker = waker_ref(shared);
        let mut cx = Context::from_waker(&waker);
        for _ in 0..HIDDEN_PER_POLL {
            match self.poll_pong_flushed(inner.as_mut(), &mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) | Poll::Pending => return, // the reader will see it
            }
            match inner.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if !self.observe(&msg, protocol, shared) {
                        self.rare().read_ahead.put::<Result<M, E>>(Ok(msg));
                        break;
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    self.rare().read_ahead.put::<Result<M, E>>(Err(err));
                    break;
                }
                Poll::Ready(None) => {
                    self.phase = Phase::Ended;
                    break;
                }
                Poll::Pending => return,
            }
        }
        shared.reader.wake();
    }

    /// The death, the first time the stream is asked after it; `None` after that.
    fn report_death(&mut self) -> Option<Dead> {
        if !self.is_dead() || self.rare().death.reported {
            return None;
        }
        let death = &mut self.rare().death;
        death.reported = true;
        Some(death.dead)
    }

    /// Moves the best-effort Close frame to a dead peer along. `Ready` once it was flushed,
    /// failed, or ran out of time; it never waits past the close timeout.
    fn poll_dead_close<S, M, E>(
        &mut self,
        mut inner: Pin<&mut S>,
        shared: &Arc<Shared>,
        cx: &mut Context<'_>,
    ) -> Poll<()>
    where
        S: Sink<M, Error = E>,
        M: WsMessage,
    {
        if self.reserved && self.is_dead() {
            // The handler owns the next `start_send`; the Close frame goes after it.
            return Poll::Pending;
        }
        loop {
            if !self.is_dead() {
                return Poll::Ready(());
            }
            let close = self.rare().death.close;
            let progress = match close {
                DeadClose::Done => return Poll::Ready(()),
                DeadClose::Unsent => match inner.as_mut().poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let frame = M::close(DEAD_CLOSE_CODE, DEAD_CLOSE_REASON);
                        Poll::Ready(match inner.as_mut().start_send(frame) {
                            Ok(()) => DeadClose::Sent,
                            Err(_) => DeadClose::Done,
                        })
                    }
                    Poll::Ready(Err(_)) => Poll::Ready(DeadClose::Done),
                    Poll::Pending => Poll::Pending,
                },
                DeadClose::Sent => inner.as_mut().poll_close(cx).map(|_| DeadClose::Done),
            };
            let next = match progress {
                Poll::Ready(next) => next,
                // The close timeout ran out (the caller registered its waker in `shared`).
                Poll::Pending if self.due(shared).is_some() => DeadClose::Done,
                Poll::Pending => return Poll::Pending,
            };
            self.rare().death.close = next;
        }
    }
}

impl<S, M, E> Stream for Heartbeat<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Item = Result<M, E>;

    /// Every message comes through here, so the common case is kept small: with nothing of
    /// the heartbeat's to do, read the inner stream directly and look at what comes; the full
    /// path (out of line) runs otherwise.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let conn = this.conn;
        if conn.reads_quietly(this.shared) {
            conn.reader_polled = true;
            // Returned as it came (not taken apart and rebuilt), so that the inner stream can
            // write it straight into our caller's slot.
            let poll = this.inner.as_mut().poll_next(cx);
            match &poll {
                Poll::Ready(Some(Ok(msg))) => {
                    if !conn.observe(msg, this.protocol, this.shared) {
                        return poll;
                    }
                }
                Poll::Ready(Some(Err(_))) => return poll,
                Poll::Ready(None) => {
                    conn.phase = Phase::Ended;
                    return poll;
                }
                Poll::Pending => {
                    if conn.park(this.shared, Side::Reader, cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
        Heartbeat::poll_next_full(this.inner, this.protocol, this.shared, conn, cx)
    }
}

impl<S> Heartbeat<S> {
    /// `poll_next` when the heartbeat has something to do: a tick, a ping or an answer to
    /// send, a pong to flush, a message read ahead, a death to report.
    #[inline(never)]
    fn poll_next_full<M, E>(
        mut inner: Pin<&mut S>,
        protocol: &Protocol,
        shared: &Arc<Shared>,
        conn: &mut Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<M, E>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        conn.reader_polled = true;
        if let Some(item) = conn.take_read_ahead::<Result<M, E>>() {
            return Poll::Ready(Some(item));
        }
        let mut hidden = 0;
        loop {
            match conn.phase {
                Phase::Live | Phase::Closing => {}
                Phase::Ended => return Poll::Ready(None),
                Phase::Dead => {
                    // Move the Close frame along, but never make the handler wait for it.
                    let _ = conn.poll_dead_close(inner.as_mut(), shared, cx);
                    return Poll::Ready(conn.report_death().map(|dead| Err(dead.into())));
                }
            }
            if let Err(err) = conn.drive(inner.as_mut(), shared, protocol, cx, Side::Reader) {
                return Poll::Ready(Some(Err(err)));
            }
            if conn.is_dead() {
                continue;
            }
            if conn.pong_owed {
                shared.reader.register(cx.waker());
                let waker = waker_ref(shared);
                match conn.poll_pong_flushed(inner.as_mut(), &mut Context::from_waker(&waker)) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err))),
                    Poll::Pending => {
                        if conn.poll_timer(shared).is_pending() {
                            return Poll::Pending;
                        }
                        continue;
                    }
                }
            }
            let poll = inner.as_mut().poll_next(cx);
            match &poll {
                Poll::Ready(Some(Ok(msg))) => {
                    if !conn.observe(msg, protocol, shared) {
                        return poll;
                    }
                    hidden += 1;
                    if hidden == HIDDEN_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Some(Err(_))) => return poll,
                Poll::Ready(None) => {
                    conn.phase = Phase::Ended;
                    return poll;
                }
                Poll::Pending => {
                    if conn.park(shared, Side::Reader, cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<S, M, E> FusedStream for Heartbeat<S>
where
    S: FusedStream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    fn is_terminated(&self) -> bool {
        match self.conn.phase {
            Phase::Ended => true,
            Phase::Dead => self
                .conn
                .rare
                .as_ref()
                .is_some_and(|rare| rare.death.reported),
            Phase::Live | Phase::Closing => {
                !self.conn.has_read_ahead() && self.inner.is_terminated()
            }
        }
    }
}

fn record_pong(verdict: Pong, shared: &Shared) {
    let rtt = match verdict {
        Pong::Rtt(rtt) => Some(rtt),
        Pong::Answer | Pong::Unmatched => None,
    };
    if let Some(rtt) = rtt {
        tracing::debug!(?rtt, "websocket heartbeat round trip");
    }
    shared.pong_received(rtt);
}

/// Which inner sink operation a `poll_*` of the adapter waits for.
#[derive(Clone, Copy)]
enum SinkOp {
    Ready,
    Flush,
    Close,
}

impl<S> Heartbeat<S> {
    /// `poll_ready`, `poll_flush` and `poll_close` share everything but the inner call: run
    /// the heartbeat, read ahead for a send-only handler, then wait on the inner sink and the
    /// timer together. (Out of line: the per-message paths avoid it.)
    #[inline(never)]
    fn poll_sink<M, E>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: SinkOp,
    ) -> Poll<Result<(), E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let mut this = self.project();
        let conn = this.conn;
        if let SinkOp::Close = op {
            // Closing gives up a reservation the handler did not use.
            conn.reserved = false;
        }
        loop {
            match conn.phase {
                Phase::Live if matches!(op, SinkOp::Close) => conn.phase = Phase::Closing,
                Phase::Live | Phase::Closing => {}
                Phase::Ended => return conn.poll_inner(this.inner, cx, op),
                Phase::Dead => {
                    let dead = conn.rare().death.dead;
                    // The ticker wakes this waker when the close timeout runs out.
                    this.shared.writer.register(cx.waker());
                    let closed = conn.poll_dead_close(this.inner.as_mut(), this.shared, cx);
                    return match op {
                        SinkOp::Close => closed.map(Ok),
                        SinkOp::Ready | SinkOp::Flush => Poll::Ready(Err(dead.into())),
                    };
                }
            }
            if let Err(err) = conn.drive(
                this.inner.as_mut(),
                this.shared,
                this.protocol,
                cx,
                Side::Writer,
            ) {
                return Poll::Ready(Err(err));
            }
            if conn.is_dead() {
                continue;
            }
            conn.read_ahead(this.inner.as_mut(), this.shared, this.protocol, cx);
            if let Poll::Ready(result) = conn.poll_inner(this.inner.as_mut(), cx, op) {
                return Poll::Ready(result);
            }
            if conn.park(this.shared, Side::Writer, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S, M, E> Sink<M> for Heartbeat<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Error = E;

    /// Runs the heartbeat only when it has to wait: a send ends with a `poll_flush`, which
    /// runs it, so the timer is checked once per message, not twice.
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let this = self.as_mut().project();
        if let Phase::Live | Phase::Closing = this.conn.phase {
            if let Poll::Ready(result) = this.conn.poll_inner(this.inner, cx, SinkOp::Ready) {
                return Poll::Ready(result);
            }
        }
        self.poll_sink(cx, SinkOp::Ready)
    }

    // Inlined by force (`#[inline]` was not enough): out of line, this and `poll_flush`
    // cost every send a call and a move of the message, 27 instructions.
    #[inline(always)]
    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), E> {
        let this = self.project();
        let conn = this.conn;
        // A `start_send` after a successful `poll_ready` succeeds, even if the peer was
        // found dead in between (the next `poll_flush` reports it): the reservation is kept
        // for the handler, the Close frame to the dead peer waits for it.
        if conn.is_dead() && !conn.reserved {
            return Err(conn.rare().death.dead.into());
        }
        conn.reserved = false;
        if matches!(conn.phase, Phase::Live) && matches!(item.kind(), MessageKind::Close(_)) {
            conn.phase = Phase::Closing;
        }
        this.inner.start_send(item)
    }

    /// Every send ends here, so the common case is kept small: with nothing of the
    /// heartbeat's to do, flush the inner sink directly; the full path runs otherwise.
    #[inline(always)]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let this = self.as_mut().project();
        if this.conn.quiet(this.shared) {
            if let Poll::Ready(result) = this.conn.poll_inner(this.inner, cx, SinkOp::Flush) {
                return Poll::Ready(result);
            }
        }
        self.poll_sink(cx, SinkOp::Flush)
    }

    /// Closes the inner sink. After the peer was found dead, this finishes the best-effort
    /// Close frame (within the close timeout) and returns `Ok`.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.poll_sink(cx, SinkOp::Close)
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
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::WebSocketStream;
    use tower_layer::Layer;
    use tungstenite::{Message, protocol::Role};

    use super::*;
    use crate::HeartbeatLayer;

    /// The adapter's own fields, inline beside the inner stream. (Besides: the `Arc` shared
    /// with handles and the ticker, and 8 bytes in the ticker's list; see BENCHMARKS.md.)
    #[test]
    fn the_adapter_adds_at_most_120_bytes_inline() {
        let added = std::mem::size_of::<Heartbeat<()>>();
        assert!(added <= 120, "{added}");
    }

    /// (clock reads, filings with the ticker) by the adapter on this thread so far.
    fn probes() -> (u64, u64) {
        (
            probe::CLOCK_READS.with(Cell::get),
            probe::FILINGS.with(Cell::get),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn messages_read_no_clock_and_reset_no_timer_only_ticks_do() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut peer = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let layer = HeartbeatLayer::new()
            .interval(Duration::from_secs(3600))
            .jitter(false);
        let mut ws = layer.layer(server);
        let mut echo = async |n: usize| {
            for i in 0..n {
                peer.send(Message::text(i.to_string())).await.unwrap();
                let msg = ws.next().await.unwrap().unwrap();
                ws.send(msg).await.unwrap();
                assert_eq!(
                    peer.next().await.unwrap().unwrap(),
                    Message::text(i.to_string())
                );
            }
        };
        // The first poll files the first deadline with the ticker: one filing per connection.
        echo(1).await;
        let armed = probes();
        assert_eq!(armed, (0, 1));

        echo(10_000).await;
        assert_eq!(
            probes(),
            armed,
            "10 000 echoed messages read the clock or filed a deadline"
        );

        // One tick: the clock is read for the tick and for the ping's send time, and the
        // next deadline is filed once.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let waited = tokio::time::timeout(Duration::from_millis(1), ws.next()).await;
        assert!(waited.is_err(), "no message: {waited:?}");
        assert_eq!(ws.handle().stats().pings_sent, 1);
        assert_eq!(probes(), (armed.0 + 2, armed.1 + 1));
    }
}
