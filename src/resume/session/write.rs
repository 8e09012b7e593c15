//! The handler's writes of a [`Session`]: the session's own messages first, the direct
//! path, waiting for room (and the acknowledgement that makes it), flush and close.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::room::Grown;
use super::{Phase, Session};
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::WsMessage;
use crate::resume::Reason;

impl<S, M, E> Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// A writer's poll straight on the socket, when the session is plain: `Some` when it
    /// is done there; `None` for the full path (not plain, or the socket failed: parked).
    #[inline(always)]
    pub(super) fn poll_writer_direct(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut Heartbeat<S>>, &mut Context<'_>) -> Poll<Result<(), E>>,
    ) -> Option<Poll<Result<(), E>>> {
        if !self.is_plain() {
            return None;
        }
        let ws = self.ws.as_mut().expect("live");
        match poll(ws.as_mut(), cx) {
            Poll::Ready(Ok(())) => Some(Poll::Ready(Ok(()))),
            Poll::Ready(Err(_)) => {
                self.park();
                None
            }
            Poll::Pending => {
                self.mailbox.halves.writer.register(cx.waker());
                // Registered before this look: a socket delivered since is not missed.
                self.is_plain().then_some(Poll::Pending)
            }
        }
    }

    /// The error a writer gets once the session is over.
    pub(super) fn closed_error(&self) -> E {
        let lost = match &self.phase {
            Phase::Ended {
                lost: Some(lost), ..
            } => *lost,
            _ => self.core.lost(Reason::Closed),
        };
        E::from(Dead::session_lost(lost))
    }

    pub(super) fn poll_ready_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        loop {
            self.adopt();
            self.step_finish(cx);
            if self.refuses_sends() {
                return Poll::Ready(Err(self.closed_error()));
            }
            match &self.phase {
                Phase::Ended { .. } | Phase::Closing { .. } => {
                    return Poll::Ready(Err(self.closed_error()));
                }
                Phase::Parked { .. } => {
                    if self.core.ledger().has_room() {
                        return Poll::Ready(Ok(()));
                    }
                    match self.grow_room(None) {
                        Grown::Yes => return Poll::Ready(Ok(())),
                        // Its client is away: nothing will make room.
                        Grown::Refused => {
                            self.lose(Reason::OverBudget);
                            continue;
                        }
                        Grown::BufferFull => {}
                    }
                    match self.poll_window(cx) {
                        Poll::Ready(()) => continue,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Phase::Live => {}
            }
            match self.poll_out(cx) {
                Poll::Ready(false) => continue,
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {}
            }
            if !self.core.ledger().has_room() && self.grow_room(Some(cx)) != Grown::Yes {
                // Read on for the acknowledgement that makes room (or wait for others to give
                // some back); data read meanwhile waits for the handler, up to our buffer.
                match self.read_ahead(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            let ws = self.ws.as_mut().expect("live");
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => self.park(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Hands a message to the live socket; a socket that fails parks the session (a kept
    /// message goes again after the resume).
    #[inline(always)]
    pub(super) fn forward(&mut self, msg: M) -> Result<(), E> {
        if let Some(ws) = self.ws.as_mut() {
            if ws.as_mut().start_send(msg).is_err() {
                self.park();
            }
        }
        Ok(())
    }

    pub(super) fn poll_flush_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.step_finish(cx);
        if let Phase::Parked { .. } | Phase::Ended { .. } = self.phase {
            return Poll::Ready(Ok(()));
        }
        match self.poll_out(cx) {
            Poll::Ready(false) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(true) => {}
        }
        let ws = self.ws.as_mut().expect("live");
        match ws.as_mut().poll_flush(cx) {
            Poll::Ready(Err(_)) => {
                self.park();
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    pub(super) fn poll_close_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        match self.phase {
            Phase::Parked { .. } => {
                self.end(None);
                return Poll::Ready(Ok(()));
            }
            Phase::Ended { .. } => return Poll::Ready(Ok(())),
            Phase::Live | Phase::Closing { .. } => {}
        }
        if self.poll_out(cx).is_pending() {
            return Poll::Pending;
        }
        if self.ws.is_none() {
            return Poll::Ready(Ok(()));
        }
        if let Phase::Live = self.phase {
            self.closing(None);
        }
        let ws = self.ws.as_mut().expect("checked");
        let closed = ws.as_mut().poll_close(cx);
        if closed.is_ready() {
            self.end(None);
        }
        closed.map(|_| Ok(()))
    }
}
