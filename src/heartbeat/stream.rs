//! `Stream` for [`Heartbeat`]: the handler's reads, with a direct path for the common case.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;

use super::inbound::HIDDEN_PER_POLL;
use super::state::{Flags, State};
use super::{Conn, Heartbeat, Io, Side};
use crate::ending::Cause;
use crate::error::Dead;
use crate::message::WsMessage;

impl<S, M, E> Stream for Heartbeat<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Item = Result<M, E>;

    /// Every message comes through here, so the common case is kept small: with nothing of
    /// the heartbeat's to do, read the inner stream directly, and a data message without an
    /// application protocol goes straight back; anything else read that way is looked at out
    /// of line, and the full path (out of line too) runs when there is something to do.
    /// Small enough that the caller's `poll_next_unpin` can take it in: what the default
    /// profile's 16 codegen units would otherwise make a call of its own.
    #[inline(always)]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (conn, mut io) = self.as_mut().split(cx);
        if conn.reads_directly(io.shared) {
            // Returned as it came, so that the inner stream's value moves straight into our
            // caller's slot.
            let poll = io.inner.as_mut().poll_next(io.cx);
            if let Poll::Ready(Some(Ok(msg))) = &poll {
                if conn.takes_data(msg) {
                    return poll;
                }
            }
            return self.after_direct_read(poll, cx);
        }
        self.poll_next_full(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items_left()
    }
}

impl<S> Heartbeat<S> {
    /// What the direct read got, when it is not data for the handler as it is: a control
    /// frame, a message an application protocol looks at, an error, the end, or nothing yet.
    #[inline(never)]
    fn after_direct_read<M, E>(
        self: Pin<&mut Self>,
        poll: Poll<Option<Result<M, E>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<M, E>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let (conn, mut io) = self.split(cx);
        conn.poll_next_full(&mut io, Some(poll))
    }

    /// `poll_next` when the heartbeat has something to do: a tick, a ping or an answer to
    /// send, a pong to flush, a message read ahead, a death to report. Out of line, and
    /// taking the adapter rather than an `Io`, so that the direct path builds no context in
    /// memory.
    #[inline(never)]
    fn poll_next_full<M, E>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<M, E>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let (conn, mut io) = self.split(cx);
        conn.poll_next_full(&mut io, None)
    }
}

impl Conn {
    /// The full read loop. `read`: what the direct path read (it found nothing to do before
    /// reading), looked at first, before anything else of the loop's.
    fn poll_next_full<S, M, E>(
        &mut self,
        io: &mut Io<'_, '_, S>,
        mut read: Option<Poll<Option<Result<M, E>>>>,
    ) -> Poll<Option<Result<M, E>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        if read.is_none() {
            self.flags.clear(Flags::UNREAD);
            if let Some(item) = self.take_kept::<Result<M, E>>() {
                return Poll::Ready(Some(item));
            }
        }
        let mut hidden = 0;
        loop {
            let poll = match read.take() {
                Some(poll) => poll,
                None => {
                    match self.state {
                        State::Running(_) => {}
                        State::Ended => return Poll::Ready(None),
                        State::Dead(_) => {
                            // Move the Close frame along, but never make the handler wait
                            // for it.
                            let _ = self.poll_dead_close(io);
                            return Poll::Ready(
                                self.state.report_death().map(|dead| Err(dead.into())),
                            );
                        }
                    }
                    if let Err(err) = self.drive(io, Side::Reader) {
                        return Poll::Ready(Some(Err(err)));
                    }
                    // What the tick read before judging.
                    if let Some(item) = self.take_kept::<Result<M, E>>() {
                        return Poll::Ready(Some(item));
                    }
                    if !self.state.runs() {
                        continue;
                    }
                    if self.flags.any(Flags::PONG_OWED) {
                        io.shared.register_reader(io.cx.waker());
                        match io.for_both_sides(|io| self.poll_pong_flushed(io)) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err))),
                            Poll::Pending => {
                                if self.poll_timer(io.shared).is_pending() {
                                    return Poll::Pending;
                                }
                                continue;
                            }
                        }
                    }
                    io.inner.as_mut().poll_next(io.cx)
                }
            };
            if let Some(done) = self.after_read(poll, io, &mut hidden) {
                return done;
            }
        }
    }

    /// What the loop does with what it read: `Some`, return it (data for the handler, an
    /// error, the end, `Pending`); `None`, read on (a heartbeat frame hidden, the timer due).
    #[inline(always)]
    fn after_read<S, M, E>(
        &mut self,
        poll: Poll<Option<Result<M, E>>>,
        io: &mut Io<'_, '_, S>,
        hidden: &mut u32,
    ) -> Option<Poll<Option<Result<M, E>>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        match &poll {
            Poll::Ready(Some(Ok(msg))) => {
                if !self.observe(msg, io) {
                    return Some(poll);
                }
                *hidden += 1;
                if *hidden == HIDDEN_PER_POLL {
                    io.cx.waker().wake_by_ref();
                    return Some(Poll::Pending);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                io.shared.ended(Cause::Error);
                return Some(poll);
            }
            Poll::Ready(None) => {
                self.end(io.shared);
                return Some(poll);
            }
            Poll::Pending => {
                if self.park(io.shared, Side::Reader, io.cx).is_pending() {
                    return Some(Poll::Pending);
                }
            }
        }
        None
    }
}

impl<S, M, E> FusedStream for Heartbeat<S>
where
    S: FusedStream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    fn is_terminated(&self) -> bool {
        match &self.conn.state {
            State::Ended => true,
            State::Dead(death) => death.reported,
            State::Running(_) => !self.conn.has_read_ahead() && self.inner.is_terminated(),
        }
    }
}
