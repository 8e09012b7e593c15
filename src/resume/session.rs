//! [`Session`]: one server-side session, as the handler's `Heartbeat<S>` holds it in
//! session mode. It owns the current socket (a heartbeat of its own), the accounts, and
//! the phase: live on a socket, parked without one, or ended. Only its owner's polls touch
//! them; a resuming socket waits in the session's mailbox until the next poll adopts it.
//!
//! The design: ARCHITECTURE.md, "Sessions".

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::Sleep;

use super::sessions::{Mailbox, Registry};
use super::wire::{self, Incoming, Message};
use super::{Ledger, Reason, Secret, SessionLost, payload_len};
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppMessage, Protocol};

/// Where a session is in its life.
enum Phase {
    /// On a socket.
    Live,
    /// On a socket, after a Close from either side: the stream reads on to its end. The
    /// registry has forgotten the session: a Close ends it, so no resume may bring it back.
    Closing,
    /// Without a socket, waiting for its client until the window passes.
    Parked { until: Pin<Box<Sleep>> },
    /// Over; `lost` is still to be reported by the stream, once.
    Ended { lost: Option<SessionLost> },
}

/// What a received message was.
enum Sorted<M> {
    /// For the handler.
    Deliver(M),
    /// The session's own (an acknowledgement); read on.
    Handled,
    /// The peer broke the protocol.
    Violation(&'static str),
    /// A Close frame 1011: the peer found this socket dead, the session parks.
    Park,
}

pub(crate) struct Session<S, M, E> {
    ws: Option<Pin<Box<Heartbeat<S>>>>,
    ledger: Ledger,
    /// Session messages and replays to write before anything else.
    out: VecDeque<M>,
    /// Data read while waiting for room to send, for the handler's next reads.
    ahead: VecDeque<Result<M, E>>,
    ahead_bytes: usize,
    phase: Phase,
    /// The socket's pings when we last acknowledged: a new ping is a tick to ride.
    pings_seen: u64,
    protocol: Protocol,
    registry: Arc<Registry>,
    sid: Secret,
    /// Whether the registry still holds the session (under `sid`): until it closes or ends.
    registered: bool,
    mailbox: Arc<Mailbox<S>>,
    /// The mailbox as a waker of both halves of the handler: every poll of the socket and of
    /// the window goes through it.
    both: Waker,
}

impl<S, M, E> Session<S, M, E>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    pub(crate) fn new(
        ws: Pin<Box<Heartbeat<S>>>,
        ledger: Ledger,
        registry: Arc<Registry>,
        sid: Secret,
        mailbox: Arc<Mailbox<S>>,
    ) -> Self {
        let pings_seen = ws.pings_sent();
        let both = futures_util::task::waker(mailbox.clone());
        Self {
            protocol: registry.protocol.clone(),
            ws: Some(ws),
            ledger,
            out: VecDeque::new(),
            ahead: VecDeque::new(),
            ahead_bytes: 0,
            phase: Phase::Live,
            pings_seen,
            registry,
            sid,
            registered: true,
            mailbox,
            both,
        }
    }

    /// Runs `poll` with a context whose waker wakes both halves of the handler
    /// (ARCHITECTURE.md, "The wake hub"); the half that polls has registered its own.
    #[inline]
    fn with_both<R>(&mut self, poll: impl FnOnce(&mut Self, &mut Context<'_>) -> R) -> R {
        let both = std::mem::replace(&mut self.both, Waker::noop().clone());
        let r = poll(self, &mut Context::from_waker(&both));
        self.both = both;
        r
    }

    /// Adopts a socket that resumed this session, if one waits: the old socket (if any) is
    /// dropped, the client hears our count and token, and our kept messages go again. One
    /// atomic load per poll when none waits.
    #[inline]
    fn adopt(&mut self) {
        if self.mailbox.full.load(std::sync::atomic::Ordering::Acquire) {
            self.adopt_waiting();
        }
    }

    #[cold]
    #[inline(never)]
    fn adopt_waiting(&mut self) {
        let Some(handover) = self.mailbox.take() else {
            return;
        };
        match &self.phase {
            // Closed or over: the socket is dropped, and the client's next resume is refused
            // with 4410 (the registry no longer holds the session). A resume that came while
            // a Close was on its way would otherwise reopen a session its handler had closed.
            Phase::Ended { .. } | Phase::Closing => return,
            Phase::Parked { .. } | Phase::Live => {}
        }
        if let Err(violation) = self.ledger.acknowledged(handover.peer_received) {
            // The client claims more than we sent: not a client of this session. The session
            // stays as it was (parked: still counted once).
            tracing::debug!(?violation, "session resume refused");
            return;
        }
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        let ws = handover.ws;
        self.pings_seen = ws.pings_sent();
        self.out.clear();
        self.out
            .push_back(M::from_app(AppMessage::Text(wire::welcome_text(
                handover.token,
                self.ledger.told_in_handshake(),
                self.ledger.buffer() as u64,
                self.registry.resume.window.as_millis() as u64,
            ))));
        for msg in self.ledger.replay() {
            self.out.push_back(self.wire_form(msg));
        }
        self.ws = Some(ws);
        self.phase = Phase::Live;
        // The other half may wait on the old socket, or on the mailbox.
        self.mailbox.halves.wake_both();
    }

    /// A replayed message as it goes on the wire (escaped if it must be).
    fn wire_form(&self, msg: AppMessage) -> M {
        let frame = match &msg {
            AppMessage::Text(t) => crate::protocol::AppFrame::Text(t),
            AppMessage::Binary(b) => crate::protocol::AppFrame::Binary(b),
        };
        if wire::needs_escape(frame, &self.protocol) {
            M::from_app(wire::escaped(frame))
        } else {
            M::from_app(msg)
        }
    }

    /// The socket went down: wait for the client, or end if too many wait already.
    fn park(&mut self) {
        self.ws = None;
        // A parked session holds only what it must: what bursts grew goes back.
        self.out = VecDeque::new();
        self.ledger.shrink();
        if !matches!(self.phase, Phase::Live) {
            if matches!(self.phase, Phase::Closing) {
                self.end(None);
            }
            return;
        }
        if self.registry.try_park() {
            let until = Box::pin(tokio::time::sleep(self.registry.resume.window));
            self.phase = Phase::Parked { until };
        } else {
            self.lose(Reason::TooManyParked);
        }
        // The other half may wait on the socket just dropped.
        self.mailbox.halves.wake_both();
    }

    fn lose(&mut self, reason: Reason) {
        let lost = SessionLost {
            reason,
            unconfirmed: self.ledger.unconfirmed(),
        };
        tracing::debug!(%lost, "session ended");
        self.end(Some(lost));
    }

    fn end(&mut self, lost: Option<SessionLost>) {
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        self.unregister();
        self.ws = None;
        self.phase = Phase::Ended { lost };
        self.mailbox.halves.wake_both();
    }

    /// A Close went one way or the other: the session ends, however its socket fares.
    fn closing(&mut self) {
        self.phase = Phase::Closing;
        self.unregister();
    }

    /// While parked: `Ready` once the window has passed (the session then ended).
    fn poll_window(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Parked { until } = &mut self.phase else {
            return Poll::Ready(());
        };
        // A socket delivered since `adopt` looked wakes us: the half polling registered
        // before.
        if until.as_mut().poll(cx).is_ready() {
            self.lose(Reason::WindowPassed);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Writes the queued session messages and replays while the socket takes them.
    /// `Ready(true)`: all written (or nothing to write); `Ready(false)`: the socket went
    /// down (parked).
    #[inline]
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.out.is_empty() {
            return Poll::Ready(self.ws.is_some());
        }
        self.poll_out_queued(cx)
    }

    #[inline(never)]
    fn poll_out_queued(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(false);
        };
        while !self.out.is_empty() {
            match ws.as_mut().poll_ready_msg(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.park();
                    return Poll::Ready(false);
                }
                Poll::Pending => return Poll::Pending,
            }
            let msg = self.out.pop_front().expect("not empty");
            if ws.as_mut().start_send_msg(msg).is_err() {
                self.park();
                return Poll::Ready(false);
            }
        }
        if let Poll::Ready(Err(_)) = ws.as_mut().poll_flush_msg(cx) {
            self.park();
            return Poll::Ready(false);
        }
        Poll::Ready(true)
    }

    /// If a tick sent a ping since we last looked, the acknowledgement rides along (when
    /// data arrived since the last one).
    #[inline]
    fn ack_at_tick(&mut self) {
        if let Some(ws) = &self.ws {
            let pings = ws.pings_sent();
            if pings != self.pings_seen {
                self.pings_seen = pings;
                self.queue_ack();
            }
        }
    }

    /// Queues an acknowledgement if the count moved.
    fn queue_ack(&mut self) {
        if let Some(count) = self.ledger.ack() {
            self.out
                .push_back(M::from_app(AppMessage::Text(wire::ack_text(count))));
        }
    }

    /// Sorts a message read from the socket.
    #[inline(always)]
    fn sort(&mut self, msg: M) -> Sorted<M> {
        // Text and binary first (`as_app` is `Some` for those only): the common case asks
        // one question.
        let Some(frame) = msg.as_app() else {
            return match msg.kind() {
                MessageKind::Close(Some((1011, _))) => Sorted::Park,
                MessageKind::Close(_) => {
                    self.closing();
                    Sorted::Deliver(msg)
                }
                MessageKind::Data | MessageKind::Ping | MessageKind::Pong(_) => {
                    Sorted::Deliver(msg)
                }
            };
        };
        match wire::incoming(frame) {
            Incoming::Data => {
                if self.ledger.received(payload_len(frame)) {
                    self.queue_ack();
                }
                Sorted::Deliver(msg)
            }
            Incoming::Escaped => {
                let data = wire::unescaped(frame);
                if self.ledger.received(payload_len(frame) - 2) {
                    self.queue_ack();
                }
                Sorted::Deliver(M::from_app(data))
            }
            Incoming::Session(Message::Ack(count)) => match self.ledger.acknowledged(count) {
                Ok(()) => {
                    self.mailbox.halves.writer.wake();
                    Sorted::Handled
                }
                Err(violation) => Sorted::Violation(violation.0),
            },
            Incoming::Session(Message::Unknown(_)) => Sorted::Handled,
            Incoming::Session(_) => Sorted::Violation("unexpected session message"),
            Incoming::Reserved => Sorted::Violation("reserved binary frame"),
        }
    }

    /// The peer broke the protocol: close with 1002 (best effort) and end.
    fn violated(&mut self, what: &'static str) {
        if let Some(ws) = self.ws.as_mut() {
            let _ = ws
                .as_mut()
                .start_send_msg(M::close(1002, "session protocol error"));
        }
        self.lose(Reason::Violation(what));
    }

    /// Whether a poll may go straight to the socket: live, nothing waiting in the mailbox,
    /// nothing read ahead, nothing queued to write.
    #[inline]
    fn is_plain(&self) -> bool {
        matches!(self.phase, Phase::Live)
            && self.out.is_empty()
            && self.ahead.is_empty()
            && !self.mailbox.full.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The reader's poll. The direct path, taken when the session [`is_plain`](Self::is_plain),
    /// reads the socket with the reader's own waker (as a plain `Heartbeat` does, split or
    /// not) and registers the reader with the mailbox only when it waits; everything else
    /// goes through `poll_next_both`.
    #[inline]
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<M, E>>> {
        if self.is_plain() {
            let ws = self.ws.as_mut().expect("live");
            match ws.as_mut().poll_next_msg(cx) {
                Poll::Ready(Some(Ok(msg))) => match self.sort(msg) {
                    Sorted::Deliver(msg) => {
                        // A reader that is never idle sees the ticks here (one load per
                        // message).
                        self.ack_at_tick();
                        return Poll::Ready(Some(Ok(msg)));
                    }
                    Sorted::Handled => {}
                    Sorted::Park => self.park(),
                    Sorted::Violation(what) => self.violated(what),
                },
                Poll::Ready(Some(Err(_)) | None) => self.park(),
                Poll::Pending => {
                    self.ack_at_tick();
                    self.mailbox.halves.reader.register(cx.waker());
                    // Registered before this look: a socket delivered since is not missed.
                    if self.is_plain() {
                        return Poll::Pending;
                    }
                }
            }
        }
        self.mailbox.halves.reader.register(cx.waker());
        self.with_both(Self::poll_next_both)
    }

    fn poll_next_both(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<M, E>>> {
        loop {
            self.adopt();
            if let Some(item) = self.ahead.pop_front() {
                if let Ok(msg) = &item {
                    self.ahead_bytes -= msg.as_app().map_or(0, payload_len);
                }
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
                Phase::Live | Phase::Closing => {}
            }
            if let Poll::Ready(false) = self.poll_out(cx) {
                continue;
            }
            let ws = self.ws.as_mut().expect("live");
            match ws.as_mut().poll_next_msg(cx) {
                Poll::Ready(Some(Ok(msg))) => match self.sort(msg) {
                    Sorted::Deliver(msg) => {
                        // A reader that is never idle (never `Pending`) sees the ticks here
                        // (one load per message).
                        self.ack_at_tick();
                        return Poll::Ready(Some(Ok(msg)));
                    }
                    Sorted::Handled => {}
                    Sorted::Park => self.park(),
                    Sorted::Violation(what) => self.violated(what),
                },
                Poll::Ready(Some(Err(err))) => {
                    if let Phase::Closing = self.phase {
                        self.end(None);
                        return Poll::Ready(Some(Err(err)));
                    }
                    self.park();
                }
                Poll::Ready(None) => {
                    if let Phase::Closing = self.phase {
                        self.end(None);
                        return Poll::Ready(None);
                    }
                    self.park();
                }
                Poll::Pending => {
                    self.ack_at_tick();
                    if !self.out.is_empty() && self.poll_out(cx) == Poll::Ready(false) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The writer's poll for room: directly on the socket when the session is plain and
    /// has room (see `poll_next`).
    #[inline]
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if self.ledger.has_room() {
            if let Some(done) = self.poll_writer_direct(cx, Heartbeat::poll_ready_msg) {
                return done;
            }
        }
        self.mailbox.halves.writer.register(cx.waker());
        self.with_both(Self::poll_ready_both)
    }

    /// A writer's poll straight on the socket, when the session is plain: `Some` when it
    /// is done there; `None` for the full path (not plain, or the socket failed: parked).
    #[inline(always)]
    fn poll_writer_direct(
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

    fn poll_ready_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        loop {
            self.adopt();
            match &self.phase {
                Phase::Ended { lost } => {
                    let lost = lost.unwrap_or(SessionLost {
                        reason: Reason::Closed,
                        unconfirmed: self.ledger.unconfirmed(),
                    });
                    return Poll::Ready(Err(E::from(Dead::session_lost(lost))));
                }
                Phase::Closing => {
                    let lost = SessionLost {
                        reason: Reason::Closed,
                        unconfirmed: self.ledger.unconfirmed(),
                    };
                    return Poll::Ready(Err(E::from(Dead::session_lost(lost))));
                }
                Phase::Parked { .. } => {
                    if self.ledger.has_room() {
                        return Poll::Ready(Ok(()));
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
            if !self.ledger.has_room() {
                // Read on for the acknowledgement that makes room; data read meanwhile
                // waits for the handler, up to our buffer.
                match self.read_ahead(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            let ws = self.ws.as_mut().expect("live");
            match ws.as_mut().poll_ready_msg(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => self.park(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads one message for the writer's sake. `Ready`: something changed, look again.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.ahead_bytes >= self.ledger.buffer() {
            return Poll::Pending;
        }
        let ws = self.ws.as_mut().expect("live");
        match ws.as_mut().poll_next_msg(cx) {
            Poll::Ready(Some(Ok(msg))) => match self.sort(msg) {
                Sorted::Deliver(msg) => {
                    self.ahead_bytes += msg.as_app().map_or(0, payload_len);
                    self.ahead.push_back(Ok(msg));
                    self.mailbox.halves.reader.wake();
                }
                Sorted::Handled => {}
                Sorted::Park => self.park(),
                Sorted::Violation(what) => self.violated(what),
            },
            Poll::Ready(Some(Err(_)) | None) if matches!(self.phase, Phase::Closing) => {
                self.end(None)
            }
            Poll::Ready(Some(Err(_)) | None) => self.park(),
            Poll::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }

    #[inline]
    pub(crate) fn start_send(&mut self, msg: M) -> Result<(), E> {
        if let Some(frame) = msg.as_app() {
            // A text or binary message: numbered and kept.
            self.ledger.keep(frame);
            if !matches!(self.phase, Phase::Live) {
                // Kept: it goes out with the replay when the client comes back.
                return Ok(());
            }
            let msg = if wire::needs_escape(frame, &self.protocol) {
                M::from_app(wire::escaped(frame))
            } else {
                msg
            };
            return self.forward(msg);
        }
        match msg.kind() {
            // Another data frame (tungstenite's raw `Frame`): passed on, not kept.
            MessageKind::Data => self.forward(msg),
            MessageKind::Close(_) => {
                if let Phase::Live = self.phase {
                    self.closing();
                    self.forward(msg)
                } else {
                    self.end(None);
                    Ok(())
                }
            }
            MessageKind::Ping | MessageKind::Pong(_) => self.forward(msg),
        }
    }

    /// Hands a message to the live socket; a socket that fails parks the session (a kept
    /// message goes again after the resume).
    #[inline(always)]
    fn forward(&mut self, msg: M) -> Result<(), E> {
        match self.ws.as_mut() {
            Some(ws) => {
                if ws.as_mut().start_send_msg(msg).is_err() {
                    self.park();
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The writer's flush: directly on the socket when the session is plain (see
    /// `poll_next`).
    #[inline]
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if let Some(done) = self.poll_writer_direct(cx, Heartbeat::poll_flush_msg) {
            return done;
        }
        self.mailbox.halves.writer.register(cx.waker());
        self.with_both(Self::poll_flush_both)
    }

    fn poll_flush_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        if let Phase::Parked { .. } | Phase::Ended { .. } = self.phase {
            return Poll::Ready(Ok(()));
        }
        match self.poll_out(cx) {
            Poll::Ready(false) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(true) => {}
        }
        let ws = self.ws.as_mut().expect("live");
        match ws.as_mut().poll_flush_msg(cx) {
            Poll::Ready(Err(_)) => {
                self.park();
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.mailbox.halves.writer.register(cx.waker());
        self.with_both(Self::poll_close_both)
    }

    fn poll_close_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        match self.phase {
            Phase::Parked { .. } => {
                self.end(None);
                return Poll::Ready(Ok(()));
            }
            Phase::Ended { .. } => return Poll::Ready(Ok(())),
            Phase::Live | Phase::Closing => {}
        }
        if self.poll_out(cx).is_pending() {
            return Poll::Pending;
        }
        if self.ws.is_none() {
            return Poll::Ready(Ok(()));
        }
        self.closing();
        let ws = self.ws.as_mut().expect("checked");
        let closed = ws.as_mut().poll_close_msg(cx);
        if closed.is_ready() {
            self.end(None);
        }
        closed.map(|_| Ok(()))
    }
}

impl<S, M, E> Session<S, M, E> {
    /// The session's id and tokens stop being valid (once: a new session may take the id).
    fn unregister(&mut self) {
        if self.registered {
            self.registered = false;
            self.registry.forget(&self.sid);
        }
    }
}

impl<S, M, E> Drop for Session<S, M, E> {
    fn drop(&mut self) {
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        self.unregister();
    }
}
