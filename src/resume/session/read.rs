//! The handler's reads of a [`Session`]: what a message from the socket means, the direct
//! path, the full loop (adopting sockets, waiting out the window), and the writer's reading
//! ahead for an acknowledgement.

use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::{Out, Phase, Session};
use crate::error::Dead;
use crate::message::{MessageKind, WsMessage};
use crate::resume::rules::{Sorted, weight};

impl<S, M, E> Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// What a message read from the socket means here: `Some` for the handler.
    #[inline(always)]
    pub(super) fn receive(&mut self, msg: M) -> Option<M> {
        match self.core.sort(msg) {
            Sorted::Deliver(msg) => {
                self.queue_ack();
                Some(msg)
            }
            Sorted::Close {
                msg,
                ends_session: true,
            } => {
                let code = match msg.kind() {
                    MessageKind::Close(frame) => frame.map(|(code, _)| code),
                    _ => None,
                };
                self.closing(code);
                Some(msg)
            }
            // The client found this socket dead: the session parks.
            Sorted::Close {
                ends_session: false,
                ..
            } => {
                self.park();
                None
            }
            Sorted::Handled { room } => {
                if room {
                    self.give_back_room();
                    self.mailbox.halves.writer.wake();
                }
                None
            }
            Sorted::Finish => {
                self.give_back_room();
                self.client_finished();
                None
            }
            Sorted::Violation(what) => {
                self.violated(what);
                None
            }
        }
    }

    /// The socket failed or ended: a closing session ends (`Some`: what the handler reads,
    /// the socket's own error or end), any other parks.
    pub(super) fn socket_gone(
        &mut self,
        item: Option<Result<M, E>>,
    ) -> Option<Option<Result<M, E>>> {
        if let Phase::Closing { .. } = self.phase {
            self.end(None);
            return Some(item);
        }
        self.park();
        None
    }

    /// The reader's direct path, taken when the session [`is_plain`](Self::is_plain): it
    /// reads the socket with the reader's own waker (as a plain `Heartbeat` does, split or
    /// not) and registers the reader with the mailbox only when it waits. `None`: go the
    /// full way.
    #[inline(always)]
    pub(super) fn poll_next_direct(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Option<Result<M, E>>>> {
        let ws = self.ws.as_mut().expect("live");
        match ws.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(msg))) => {
                return self.receive(msg).map(|msg| Poll::Ready(Some(Ok(msg))));
            }
            Poll::Ready(Some(Err(_)) | None) => self.park(),
            Poll::Pending => {
                self.queue_ack();
                self.mailbox.halves.reader.register(cx.waker());
                // Registered before this look: a socket delivered since is not missed.
                if self.is_plain() {
                    return Some(Poll::Pending);
                }
            }
        }
        None
    }

    pub(super) fn poll_next_both(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<M, E>>> {
        loop {
            self.adopt();
            self.step_finish(cx);
            if let Some(item) = self.ahead.pop() {
                return Poll::Ready(Some(item));
            }
            match &mut self.phase {
                Phase::Ended { lost } => {
                    return Poll::Ready(
                        lost.take()
                            .map(|lost| Err(E::from(Dead::session_lost(lost)))),
                    );
                }
                Phase::Parked { .. } => match self.poll_window(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                },
                Phase::Live | Phase::Closing { .. } => {}
            }
            if let Poll::Ready(false) = self.poll_out(cx) {
                continue;
            }
            let ws = self.ws.as_mut().expect("live");
            match ws.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if let Some(msg) = self.receive(msg) {
                        return Poll::Ready(Some(Ok(msg)));
                    }
                }
                Poll::Ready(gone) => {
                    if let Some(item) = self.socket_gone(gone) {
                        return Poll::Ready(item);
                    }
                }
                Poll::Pending => {
                    self.queue_ack();
                    if !self.out.is_empty() && self.poll_out(cx) == Poll::Ready(false) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Reads one message for the writer's sake. `Ready`: something changed, look again.
    pub(super) fn read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.ahead.has_room(self.core.ledger().buffer()) {
            return Poll::Pending;
        }
        let ws = self.ws.as_mut().expect("live");
        match ws.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(msg))) => {
                if let Some(msg) = self.receive(msg) {
                    let bytes = weight(&msg);
                    self.ahead.push(Ok(msg), bytes);
                    self.mailbox.halves.reader.wake();
                }
            }
            Poll::Ready(gone) => {
                if let Some(item) = self.socket_gone(gone) {
                    if let Some(item) = item {
                        self.ahead.push(item, 0);
                    }
                    self.mailbox.halves.reader.wake();
                }
            }
            Poll::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }

    /// Queues the acknowledgement due, if any: after a quarter of the client's buffer, or
    /// at a tick of the socket's heartbeat (one load per message, so that a reader that is
    /// never idle sees the ticks). At a tick, the storage a burst grew goes back.
    #[inline]
    pub(super) fn queue_ack(&mut self) {
        let Some(ws) = &self.ws else {
            return;
        };
        if let Some((ack, ticked)) = self.core.ack_or_tick(ws.pings_sent()) {
            if let Some(ack) = ack {
                self.out.push_back(Out::App(ack));
            }
            if ticked {
                self.trim_room();
            }
        }
    }
}
