//! The outbound side: the deadline filed with the runtime's ticker, ticks, and the heartbeat
//! frames (pings, answers to application pings) handed to the sink between the handler's
//! messages.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::task::ArcWake;
use tokio::time::Instant;

use super::state::{Flags, Phase, State};
use super::{Conn, Io, Side, probe};
use crate::config::Follow;
use crate::ending::Cause;
use crate::error::Dead;
use crate::lag;
use crate::message::WsMessage;
use crate::pacemaker::Tick;
use crate::progress::Progress;
use crate::protocol::Protocol;
use crate::stamp::Stamp;
use crate::ticker::Ticker;
use crate::wake::Shared;

impl Conn {
    /// Runs a due tick and moves a pending ping or answer into the sink.
    #[inline]
    pub(super) fn drive<S, M, E>(&mut self, io: &mut Io<'_, '_, S>, side: Side) -> Result<(), E>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let ticked = self.due(io.shared);
        if let Some(now) = ticked {
            self.read_before_judging(io, side);
            self.tick(io.shared, now);
        }
        // Only while live: once a Close went out, the library refuses further frames.
        if (self.flags.any(Flags::PING_DUE | Flags::UNFLUSHED) || self.answer_pending())
            && self.state.is_live()
        {
            self.send_heartbeats(io, side, ticked)?;
        }
        Ok(())
    }

    /// The first filing, at the first poll (a new connection is due, so that its first poll
    /// comes to `due_now`). With `jitter`, the first tick may move to a moment of its first
    /// interval where other connections' ticks are filed already (`Ticker::file_first`), so
    /// that a few thousand connections do not wake the runtime at all of the grid's moments.
    #[cold]
    fn file_first(&mut self, shared: &Arc<Shared>) {
        let interval = shared.interval();
        match self.state.running() {
            Some(running) if self.rules.jitter() && interval > Duration::from_millis(1) => {
                probe::filed();
                let opened = running.pacemaker.last_alive();
                let window = (
                    opened,
                    running.next_tick(interval),
                    opened.add(interval - Duration::from_millis(1)),
                );
                let first = Ticker::with_current(|ticker| ticker.file_first(window, shared));
                running.last_tick = first.sub(interval);
            }
            _ => self.file(shared),
        }
    }

    /// Files the deadline with the runtime's ticker. A running connection's deadline is a
    /// tick, which the ticker carries on; a dead one's is the close timeout, fired once.
    ///
    /// A drain's moment or close timeout, when earlier, is filed instead (once: the tick
    /// that follows files itself again, see `tick`).
    fn file(&self, shared: &Arc<Shared>) {
        let deadline = self.state.deadline(shared.interval());
        let (deadline, periodic) = match (deadline, self.drain_deadline()) {
            (Some(at), Some(drain)) if drain < at => (drain, false),
            (Some(at), _) => (at, self.state.runs()),
            (None, _) => return,
        };
        Ticker::with_current(|ticker| ticker.file(deadline, periodic, shared));
        probe::filed();
    }

    /// The transition to `Ended`: no more ticks, so the ticker stops carrying them. (Once
    /// per connection, out of the per-message read path.)
    #[cold]
    #[inline(never)]
    pub(super) fn end(&mut self, shared: &Shared) {
        // Who closed first: the handler (noted when its Close went), the peer (the stream
        // saw its Close), or nobody (the socket ended without one).
        let cause = match &self.state {
            _ if shared.local_closed() => Cause::LocalClose,
            State::Running(_) if !self.state.is_live() => Cause::PeerClose,
            _ => Cause::Error,
        };
        self.state.end();
        shared.filed.stop_carrying();
        if shared.kit.is_some() {
            self.close_finished(shared);
        }
        tracing::debug!(conn = %shared.id(), layer = shared.layer_name(), cause = cause.label(), "websocket connection ended");
        shared.ended(cause);
    }

    /// `Some(now)` if the deadline has passed: the ticker marked the connection due and the
    /// clock agrees (a filing from before the deadline moved later can fire early). Per
    /// message this is one relaxed load.
    #[inline]
    pub(super) fn due(&mut self, shared: &Arc<Shared>) -> Option<Instant> {
        if shared.due.is_set() {
            self.due_now(shared)
        } else {
            None
        }
    }

    #[cold]
    fn due_now(&mut self, shared: &Arc<Shared>) -> Option<Instant> {
        shared.due.clear();
        let now = probe::now();
        let at = Stamp::new(now.into_std());
        if !shared.filed.ever_filed() {
            // The first poll joins the layer's group; during a drain it closes at once.
            // (A session's socket is let in: its session decides, a resume may finish.)
            if shared.join_group() && !self.rules.session_socket() {
                self.drain_at_once(at);
            }
            self.file_first(shared);
        }
        // A handle's new interval marks the connection due too (`Shared::set_interval`), so
        // that a poll checks one flag, not two.
        if shared.take_interval_change() {
            self.move_interval(shared);
        }
        if shared.kit.is_some() && !self.rules.session_socket() && self.step_drain(shared, at) {
            self.file(shared);
        }
        let deadline = self.state.deadline(shared.interval())?;
        (at >= deadline).then_some(now)
    }

    fn tick(&mut self, shared: &Arc<Shared>, now: Instant) {
        let progressed = self
            .rare
            .as_ref()
            .and_then(|rare| rare.progress.as_ref())
            .is_some_and(Progress::take);
        // Background mode with the handler's queue full: the driver stopped reading, so the
        // peer's frames wait unread. Counted as life, like progress: the silence is ours.
        let progressed = shared.take_paused() || progressed;
        let Some(running) = self.state.running() else {
            return;
        };
        if progressed {
            running.pacemaker.on_progress();
        }
        let interval = shared.interval();
        let at = Stamp::new(now.into_std());
        let due_at = running.next_tick(interval);
        // A deadline an interval change moved into the past is not the runtime's lateness.
        if !self.flags.any(Flags::MOVED) {
            lag::record(at.since(due_at), interval, at);
            shared.tick_ran_late(at.since(due_at));
        }
        self.flags.clear(Flags::MOVED);
        let tick = running.pacemaker.on_tick(&self.rules, now.into_std());
        shared.set_missed(running.pacemaker.missed());
        match tick {
            Tick::Dead(dead) => return self.die(dead, shared, now),
            Tick::Ping(_) if running.phase() == Phase::Live => self.flags.set(Flags::PING_DUE),
            // While closing the ping cannot be written: it counts as unanswered.
            Tick::Ping(_) | Tick::Skip => {}
        }
        // After a stall longer than an interval, tick once and start a fresh schedule
        // rather than firing a burst of ticks that the peer had no chance to answer.
        let on_schedule = due_at.add(interval) > at;
        running.last_tick = if on_schedule { due_at } else { at };
        // A tick on time files nothing: the ticker carried its filing to the next tick
        // (`ticker::carry`), which an interval of whole milliseconds puts exactly there.
        // A connection with a drain's deadline filed that one instead (`file`).
        let carried = shared.filed.take_carried() && self.drain_deadline().is_none();
        if !(carried && on_schedule && interval.subsec_nanos() % 1_000_000 == 0) {
            self.file(shared);
        }
    }

    /// The transition to `Dead`, with what it owes: nothing more to send but the Close frame,
    /// which has until the close timeout.
    fn die(&mut self, dead: Dead, shared: &Arc<Shared>, now: Instant) {
        tracing::warn!(
            conn = %shared.id(),
            layer = shared.layer_name(),
            missed = dead.missed(),
            silent_for = ?dead.silent_for(),
            "websocket peer is dead"
        );
        let close_by = Stamp::new(now.into_std()).add(self.rules.close_timeout());
        self.state.die(dead, close_by);
        shared.died();
        self.flags.clear(Flags::PING_DUE);
        self.drop_owed();
        self.file(shared);
        // Whichever side is parked (a reader waiting for data, a writer waiting for room)
        // must learn at once.
        ArcWake::wake_by_ref(shared);
    }

    /// Whether the ticker (or a handle's new interval) may have marked the connection due.
    /// `Pending` leaves the wake-up to the ticker, which wakes the waker the caller
    /// registered in `shared` (reader or writer); `Ready` means: look again (`drive` reads
    /// the clock).
    pub(super) fn poll_timer(&mut self, shared: &Arc<Shared>) -> Poll<()> {
        if shared.due.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The hub's interval changed: the next tick moves to the previous tick plus the new
    /// interval (at once, if that has passed), filed here; the missed count carries over.
    fn move_interval(&mut self, shared: &Arc<Shared>) {
        // Only a running heartbeat has a tick to move; a dead one keeps its close timeout.
        if self.state.runs() {
            self.flags.set(Flags::MOVED);
            self.file(shared);
        }
    }

    /// The peer's application ping asked for `requested` (`HeartbeatLayer::follow_peer_interval`):
    /// clamped into the bounds, it applies like a handle's change, but at once, since the
    /// connection is running anyway. An unchanged interval costs nothing more: a page
    /// repeats its request in every ping.
    pub(super) fn follow_peer(
        &mut self,
        requested: Option<Duration>,
        follow: Follow,
        shared: &Arc<Shared>,
    ) {
        let Some(requested) = requested.filter(|d| !d.is_zero()) else {
            return;
        };
        let interval = follow.clamp(requested);
        if interval != shared.interval() {
            shared.note_interval(interval);
            self.move_interval(shared);
        }
    }

    /// `side` waits for the inner stream or sink: its waker goes where the ticker wakes it,
    /// then `poll_timer`.
    #[inline]
    pub(super) fn park(&mut self, shared: &Arc<Shared>, side: Side, cx: &Context<'_>) -> Poll<()> {
        match side {
            Side::Reader => shared.register_reader(cx.waker()),
            Side::Writer => shared.register_writer(cx.waker()),
        }
        self.poll_timer(shared)
    }

    /// `now`: the time of a tick in this same poll, if there was one; a ping it sends counts
    /// as written then (one clock read per tick, not two).
    fn send_heartbeats<S, M, E>(
        &mut self,
        io: &mut Io<'_, '_, S>,
        side: Side,
        now: Option<Instant>,
    ) -> Result<(), E>
    where
        S: Sink<M, Error = E>,
        M: WsMessage + 'static,
    {
        // The handler owns the sink's readiness until its `start_send`: a ping now could
        // make that `start_send` fail. The ping waits for the next poll.
        if self.flags.any(Flags::RESERVED) {
            return Ok(());
        }
        match side {
            Side::Writer if self.pong_unsent() => {
                // A reader waits for this pong (the pong-flush rule) and may have found the
                // sink reserved: nothing else would wake it once the pong is handed over.
                self.push_heartbeats(io, now)?;
                if !self.pong_unsent() {
                    io.shared.wake_reader();
                }
                Ok(())
            }
            Side::Writer => self.push_heartbeats(io, now),
            // The reader polls the sink for the writer's sake: let a wake-up reach both, or
            // a writer parked on a full sink would miss the moment it drains.
            Side::Reader => {
                io.shared.register_reader(io.cx.waker());
                io.for_both_sides(|io| self.push_heartbeats(io, now))
            }
        }
    }

    /// Hands the pending answers (our pong to the peer's ping first, then the answer to its
    /// application ping) and the pending ping to the sink, each after a `Ready` of its
    /// `poll_ready`, then flushes.
    fn push_heartbeats<S, M, E>(
        &mut self,
        io: &mut Io<'_, '_, S>,
        now: Option<Instant>,
    ) -> Result<(), E>
    where
        S: Sink<M, Error = E>,
        M: WsMessage + 'static,
    {
        while self.answer_pending() || self.flags.any(Flags::PING_DUE) {
            match io.inner.as_mut().poll_ready(io.cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Err(err),
                Poll::Pending => return Ok(()),
            }
            if let Some(answer) = self.take_owed::<M>() {
                io.inner.as_mut().start_send(answer)?;
            } else if let Some(running) = self.state.running() {
                self.flags.clear(Flags::PING_DUE);
                let seq = running.pacemaker.latest_seq();
                let ping = match io.protocol() {
                    Protocol::Control => M::ping(seq.to_be_bytes()),
                    Protocol::App(app) => M::from_app(app.protocol.ping(seq)),
                };
                io.inner.as_mut().start_send(ping)?;
                self.flags.set(Flags::UNREAD);
                running
                    .pacemaker
                    .on_ping_written(seq, now.unwrap_or_else(probe::now).into_std());
                io.shared.ping_sent();
            } else {
                // Only a running heartbeat owes pings (`die` drops the one due).
                break;
            }
            self.flags.set(Flags::UNFLUSHED);
        }
        match io.inner.as_mut().poll_flush(io.cx) {
            Poll::Ready(Ok(())) => self.flags.clear(Flags::UNFLUSHED),
            Poll::Ready(Err(err)) => return Err(err),
            Poll::Pending => {}
        }
        Ok(())
    }
}
