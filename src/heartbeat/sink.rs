//! `Sink` for [`Heartbeat`]: the handler's sends, with direct paths for the common case, and
//! the best-effort Close frame to a dead peer.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::state::{DeadClose, Flags, State};
use super::{Conn, Heartbeat, Io, Side};
use crate::error::Dead;
use crate::message::{MessageKind, WsMessage};

/// Status code and reason of the Close frame sent to a dead peer (RFC 6455 §7.4.1: 1011,
/// an unexpected condition prevented the request from being fulfilled).
const DEAD_CLOSE_CODE: u16 = 1011;
const DEAD_CLOSE_REASON: &str = "keepalive timeout";

/// Which inner sink operation a `poll_*` of the adapter waits for.
#[derive(Clone, Copy)]
enum SinkOp {
    Ready,
    Flush,
    Close,
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
    // Inlined by force, like `start_send` and `poll_flush`: every send goes through the three,
    // and as calls they made the caller's send future (`futures_util`'s `Feed`) too large for
    // the compiler to inline into `Send`, and cost each send calls and moves of the message.
    #[inline(always)]
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let (conn, mut io) = self.as_mut().split(cx);
        if conn.state.runs() {
            if let Poll::Ready(result) = conn.poll_inner(&mut io, SinkOp::Ready) {
                return Poll::Ready(result);
            }
        }
        self.poll_sink(cx, SinkOp::Ready)
    }

    #[inline(always)]
    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), E> {
        let this = self.project();
        let conn = this.conn;
        // A `start_send` after a successful `poll_ready` succeeds, even if the peer was
        // found dead in between (the next `poll_flush` reports it): the reservation is kept
        // for the handler, the Close frame to the dead peer waits for it.
        if !conn.flags.any(Flags::RESERVED) {
            if let State::Dead(death) = &conn.state {
                return Err(death.dead.into());
            }
        }
        conn.flags.clear(Flags::RESERVED);
        if let MessageKind::Close(_) = item.kind() {
            if conn.state.is_live() {
                this.shared.note_local_close();
            }
            conn.state.close();
        }
        this.inner.start_send(item)
    }

    /// Every send ends here, so the common case is kept small: with nothing of the
    /// heartbeat's to do (nor of ours unflushed, so no flag to keep), flush the inner sink
    /// directly; the full path runs otherwise.
    #[inline(always)]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let (conn, io) = self.as_mut().split(cx);
        if conn.writes_directly(io.shared) {
            if let Poll::Ready(result) = io.inner.poll_flush(io.cx) {
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

impl<S> Heartbeat<S> {
    /// The full sink path, out of line so that the direct paths stay small. It takes the
    /// adapter rather than an `Io`: the direct paths then build no context in memory.
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
        let (conn, mut io) = self.split(cx);
        conn.poll_sink(&mut io, op)
    }
}

impl Conn {
    /// The inner sink's `op`, noting its success: the handler's reservation after `Ready`,
    /// our frames flushed after `Flush` or `Close`.
    #[inline(always)]
    fn poll_inner<S, M>(&mut self, io: &mut Io<'_, '_, S>, op: SinkOp) -> Poll<Result<(), S::Error>>
    where
        S: Sink<M>,
    {
        let poll = match op {
            SinkOp::Ready => io.inner.as_mut().poll_ready(io.cx),
            SinkOp::Flush => io.inner.as_mut().poll_flush(io.cx),
            SinkOp::Close => io.inner.as_mut().poll_close(io.cx),
        };
        let done = matches!(poll, Poll::Ready(Ok(())));
        match op {
            SinkOp::Ready => self.flags.set_if(Flags::RESERVED, done),
            SinkOp::Flush | SinkOp::Close => self.flags.clear_if(Flags::UNFLUSHED, done),
        }
        poll
    }

    /// `poll_ready`, `poll_flush` and `poll_close` share everything but the inner call: run
    /// the heartbeat, read ahead for a send-only handler, then wait on the inner sink and the
    /// timer together.
    fn poll_sink<S, M, E>(&mut self, io: &mut Io<'_, '_, S>, op: SinkOp) -> Poll<Result<(), E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        if let SinkOp::Close = op {
            // Closing gives up a reservation the handler did not use, and starts the close.
            self.flags.clear(Flags::RESERVED);
            if self.state.is_live() {
                io.shared.note_local_close();
            }
            self.state.close();
        }
        loop {
            match &self.state {
                State::Running(_) => {}
                State::Ended => return self.poll_inner(io, op),
                State::Dead(death) => {
                    let dead = death.dead;
                    // The ticker wakes this waker when the close timeout runs out.
                    io.shared.register_writer(io.cx.waker());
                    let closed = self.poll_dead_close(io);
                    return match op {
                        SinkOp::Close => closed.map(Ok),
                        SinkOp::Ready | SinkOp::Flush => Poll::Ready(Err(dead.into())),
                    };
                }
            }
            if let Err(err) = self.drive(io, Side::Writer) {
                return Poll::Ready(Err(err));
            }
            if !self.state.runs() {
                continue;
            }
            self.read_ahead(io);
            if let Poll::Ready(result) = self.poll_inner(io, op) {
                return Poll::Ready(result);
            }
            if self.park(io.shared, Side::Writer, io.cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Moves the best-effort Close frame to a dead peer along. `Ready` once it was flushed,
    /// failed, or ran out of time; it never waits past the close timeout.
    pub(super) fn poll_dead_close<S, M, E>(&mut self, io: &mut Io<'_, '_, S>) -> Poll<()>
    where
        S: Sink<M, Error = E>,
        M: WsMessage,
    {
        if self.flags.any(Flags::RESERVED) && self.state.death().is_some() {
            // The handler owns the next `start_send`; the Close frame goes after it.
            return Poll::Pending;
        }
        loop {
            let Some(death) = self.state.death() else {
                return Poll::Ready(());
            };
            let progress = match death.close {
                DeadClose::Done => return Poll::Ready(()),
                DeadClose::Unsent => match io.inner.as_mut().poll_ready(io.cx) {
                    Poll::Ready(Ok(())) => {
                        let frame = M::close(DEAD_CLOSE_CODE, DEAD_CLOSE_REASON);
                        Poll::Ready(match io.inner.as_mut().start_send(frame) {
                            Ok(()) => DeadClose::Sent,
                            Err(_) => DeadClose::Done,
                        })
                    }
                    Poll::Ready(Err(_)) => Poll::Ready(DeadClose::Done),
                    Poll::Pending => Poll::Pending,
                },
                DeadClose::Sent => io.inner.as_mut().poll_close(io.cx).map(|_| DeadClose::Done),
            };
            let next = match progress {
                Poll::Ready(next) => next,
                // The close timeout ran out (the caller registered its waker in `shared`).
                Poll::Pending if self.due(io.shared).is_some() => DeadClose::Done,
                Poll::Pending => return Poll::Pending,
            };
            if let Some(death) = self.state.death() {
                death.close = next;
            }
        }
    }
}
