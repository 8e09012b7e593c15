//! The read side: what the peer sent, seen by the heartbeat (pongs, pings, data, a Close,
//! application heartbeats), the rule that a pong is flushed before reading on, and the
//! read-ahead that lets a send-only handler see its pongs.

use std::sync::Arc;
use std::task::Poll;

use futures_core::Stream;
use futures_sink::Sink;

use super::state::{Flags, State};
use super::{Conn, Io, Side, probe};
use crate::message::{MessageKind, WsMessage};
use crate::pacemaker::Pong;
use crate::protocol::{Protocol, Verdict};
use crate::wake::Shared;

/// Heartbeat frames (pongs, hidden pings) read in one poll before yielding to the executor,
/// so a peer flooding them cannot monopolise the task.
pub(super) const HIDDEN_PER_POLL: u32 = 64;

impl Conn {
    /// The direct read's test: `msg` is data and no application protocol looks at data, so
    /// it goes to the handler as it is, the peer counted alive (what `observe` does for it,
    /// in one test of the kind and one bit of the rules). Anything else: `false`, with
    /// nothing done, for `observe`.
    #[inline(always)]
    pub(super) fn takes_data<M: WsMessage>(&mut self, msg: &M) -> bool {
        if matches!(msg.kind(), MessageKind::Data) && !self.rules.app_protocol() {
            if let Some(running) = self.state.running() {
                running.pacemaker.on_inbound();
                return true;
            }
        }
        false
    }

    /// Reads what the peer sent, for the heartbeat's sake. Returns `true` if the message is
    /// heartbeat traffic to hide from the handler.
    #[inline(always)]
    /// Only a running heartbeat reads.
    pub(super) fn observe<S, M>(&mut self, msg: &M, io: &Io<'_, '_, S>) -> bool
    where
        M: WsMessage + Send + Sync + 'static,
    {
        let Some(running) = self.state.running() else {
            return false;
        };
        match msg.kind() {
            MessageKind::Pong(payload) => {
                let verdict = running.pacemaker.on_pong(payload, probe::now().into_std());
                record_pong(verdict, io.shared);
                true
            }
            MessageKind::Ping => {
                // The WebSocket library has queued the pong, or, if it leaves that to us,
                // gives it to us to send; either way it must go out before we read on (see
                // `poll_pong_flushed`). For a library that answers, `answer_ping` is the
                // default `None`, and this branch is what it was.
                running.pacemaker.on_inbound();
                self.flags.set(Flags::PONG_OWED);
                if let Some(pong) = msg.answer_ping() {
                    self.owe_pong(pong);
                }
                !self.rules.forward_pings()
            }
            MessageKind::Data => {
                running.pacemaker.on_inbound();
                // The rules' bit, not the kit: nothing more loaded per message.
                if self.rules.app_protocol() {
                    self.observe_app(msg, io.protocol(), io.shared)
                } else {
                    false
                }
            }
            MessageKind::Close(_) => {
                // The peer started (or finished) the closing handshake: no more pings; ticks
                // go on, so a peer that then never ends the connection is still found dead.
                running.pacemaker.on_inbound();
                running.pacemaker.close();
                if io.shared.kit.is_some() {
                    self.close_finished(io.shared);
                }
                false
            }
        }
    }

    /// An application heartbeat looks at a text or binary message: the peer's ping gets an
    /// answer, a pong counts like a control pong; both are hidden.
    #[inline(never)]
    fn observe_app<M: WsMessage>(
        &mut self,
        msg: &M,
        protocol: &Protocol,
        shared: &Arc<Shared>,
    ) -> bool {
        let (Protocol::App(app), Some(frame)) = (protocol, msg.as_app()) else {
            return false;
        };
        match app.protocol.classify(frame) {
            Verdict::Data => false,
            Verdict::Ping { answer } => {
                self.owe_answer(answer);
                // Only here, and only when opted in: the per-message path stays as it was.
                if let Some(follow) = app.follow {
                    self.follow_peer(app.protocol.peer_interval(frame), follow, shared);
                }
                true
            }
            Verdict::Pong { seq } => {
                let Some(running) = self.state.running() else {
                    return true;
                };
                let verdict = running.pacemaker.on_app_pong(seq, probe::now().into_std());
                record_pong(verdict, shared);
                true
            }
        }
    }

    /// The WebSocket library answered the peer's last ping with a pong that may still sit in
    /// its write buffer. Reading on would queue one more pong per ping, and tungstenite's
    /// write buffer has no bound: a peer flooding pings without reading could grow it
    /// forever. So nothing more is read until that pong is flushed; a flood then meets
    /// backpressure instead of memory. `io` must wake both sides (`Io::for_both_sides`).
    ///
    /// For a library that leaves answering to us, the pong is ours to hand to the sink
    /// first (`send_heartbeats`, which wakes the reader when the writer hands it over): so
    /// each ping gets its own pong, exactly once, and a flood meets the same backpressure.
    pub(super) fn poll_pong_flushed<S, M, E>(
        &mut self,
        io: &mut Io<'_, '_, S>,
    ) -> Poll<Result<(), E>>
    where
        S: Sink<M, Error = E>,
    {
        if self.flags.any(Flags::PONG_OWED) {
            if self.pong_unsent() {
                if self.state.is_live() {
                    return Poll::Pending;
                }
                // Once a Close went out or came in, no more frames of ours are written.
                self.drop_owed();
            }
            std::task::ready!(io.inner.as_mut().poll_flush(io.cx))?;
            self.flags.clear(Flags::PONG_OWED);
        }
        Poll::Ready(Ok(()))
    }

    /// A handler that only writes never reads the pongs. While a ping waits for its answer
    /// and the reader has not polled since the ping, the writing side reads: heartbeat
    /// frames are consumed, the first data message is kept for the reader, and reading
    /// stops there (nothing a peer sends can grow a queue).
    #[inline]
    pub(super) fn read_ahead<S, M, E>(&mut self, io: &mut Io<'_, '_, S>)
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        if self.flags.any(Flags::UNREAD) && !self.has_read_ahead() && self.awaiting_pong() {
            self.read_for_the_reader(io);
        }
    }

    /// The writing side reads on the reader's behalf; a reader parked in the inner stream
    /// must not lose its wake-up, and learns of what was kept.
    fn read_for_the_reader<S, M, E>(&mut self, io: &mut Io<'_, '_, S>)
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        io.shared.register_writer(io.cx.waker());
        if io.for_both_sides(|io| self.read_ahead_now(io)) {
            io.shared.wake_reader();
        }
    }

    /// A due tick is about to judge a peer that has not shown life since the last one while
    /// a ping is out: first read what the socket already holds. On an overloaded runtime the
    /// tick and the peer's answer wake the task together, and the tick would otherwise run
    /// first; the lateness is ours, and must not make an answered ping a miss
    /// (ARCHITECTURE.md, "Ticks and the schedule"). Heartbeat frames are read (up to
    /// `HIDDEN_PER_POLL`), and the first data message is kept for the reader. Only a peer
    /// that would miss costs this read: one that answered on time was read already.
    pub(super) fn read_before_judging<S, M, E>(&mut self, io: &mut Io<'_, '_, S>, side: Side)
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let State::Running(running) = &self.state else {
            return;
        };
        if self.has_read_ahead() || !running.pacemaker.would_miss(&self.rules) {
            return;
        }
        match side {
            // The reader returns what it kept at once (`poll_next_full`).
            Side::Reader => {
                self.read_ahead_now(io);
            }
            Side::Writer => self.read_for_the_reader(io),
        }
    }

    /// Reads heartbeat frames until the inner stream waits, keeping the first data message
    /// (or error, or the end) for the reader. `true` if the reader has something to look at:
    /// what was kept, the end, or more frames past the per-poll limit.
    #[inline(never)]
    fn read_ahead_now<S, M, E>(&mut self, io: &mut Io<'_, '_, S>) -> bool
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        for _ in 0..HIDDEN_PER_POLL {
            match self.poll_pong_flushed(io) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) | Poll::Pending => return false, // the reader will see it
            }
            match io.inner.as_mut().poll_next(io.cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if !self.observe(&msg, io) {
                        self.keep::<Result<M, E>>(Ok(msg));
                        break;
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    self.keep::<Result<M, E>>(Err(err));
                    break;
                }
                Poll::Ready(None) => {
                    self.end(io.shared);
                    break;
                }
                Poll::Pending => return false,
            }
        }
        true
    }
}

fn record_pong(verdict: Pong, shared: &Shared) {
    let rtt = match verdict {
        Pong::Rtt(rtt) => Some(rtt),
        Pong::Answer | Pong::Unmatched => None,
    };
    if let Some(rtt) = rtt {
        tracing::trace!(conn = %shared.id(), ?rtt, "websocket heartbeat round trip");
    }
    shared.pong_received(rtt);
}
