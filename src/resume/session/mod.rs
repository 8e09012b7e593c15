//! [`Session`]: one server-side session, the handler's `Stream + Sink`. It owns the current
//! socket (a heartbeat of its own), the session's rules and accounts ([`Core`]), and the
//! phase: live on a socket, parked without one, or ended. Only its owner's polls touch
//! them; a resuming socket waits in the session's mailbox until the next poll adopts it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use tokio::time::Sleep;

mod finish;
mod read;
mod room;
mod write;

use self::finish::Finish;
use super::budget::Share;
use super::registry::{Mailbox, Registry};
use super::rules::{Ahead, Core, VIOLATION_CLOSE};
use super::token::SessionId;
use super::wire;
use super::{Kept, Ledger, Reason, SessionLost};
use crate::drain::Group;
use crate::error::Dead;
use crate::handle::{Following, Follows, HeartbeatHandle};
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::AppMessage;

/// Where a session is in its life.
enum Phase {
    /// On a socket.
    Live,
    /// On a socket, after a Close from either side (`code`, if it had one): the stream reads
    /// on to its end. The session is still held: a client that resumes meanwhile (its socket
    /// froze before the Close reached it) gets what it missed, then the Close, which ends it.
    Closing { code: Option<u16> },
    /// Without a socket, waiting for its client until the window passes.
    Parked { until: Pin<Box<Sleep>> },
    /// Over; `lost` is still to be reported by the stream, once.
    Ended { lost: Option<SessionLost> },
}

/// A session on the server ([`crate::resume`]): what [`Sessions::accept`] gives the handler
/// of a new session, a `Stream + Sink` with the socket's own item and error. Messages
/// reach the handler exactly once and in order across the sockets the session moves
/// through; its reads wait while no socket is up, its sends are kept meanwhile (up to the
/// buffer). A session that can no longer resume ends with one `Err` carrying a
/// [`Dead`] whose source is a [`SessionLost`], then the stream ends.
///
/// **In a drain** of its layer ([`HeartbeatLayer::drain`](crate::HeartbeatLayer::drain)) a
/// session finishes instead of being closed (PROTOCOL.md, section 8): at its moment the
/// client is told; the handler reads everything the client sent before its answer, then
/// its sends fail (as after a Close: keep reading to the end, the stream ends once the
/// client has acknowledged all the handler sent and the server closed with 1012). The client
/// goes on with a new session, elsewhere. Not finished by the end of the drain's window and
/// close timeout, the session is lost ([`Reason::Drained`](super::Reason::Drained)).
///
/// [`Sessions::accept`]: super::Sessions::accept
#[must_use = "streams do nothing unless polled"]
pub struct Session<S: Stream> {
    ws: Option<Pin<Box<Heartbeat<S>>>>,
    core: Core,
    /// Session messages, replays in wire form and a Close owed to a resumed socket, to write
    /// before anything else.
    out: VecDeque<Out>,
    /// Data read while waiting for room to send, for the handler's next reads.
    ahead: Ahead<S::Item>,
    phase: Phase,
    registry: Arc<Registry>,
    sid: SessionId,
    /// Whether the registry still holds the session (under `sid`): until it closes or ends.
    registered: bool,
    mailbox: Arc<Mailbox<S>>,
    /// The mailbox as a waker of both halves of the handler: every poll of the socket and of
    /// the window goes through it.
    both: Waker,
    /// The session's part of the memory budget: the ledger's room, given back on drop.
    share: Share,
    /// Data messages sent when the heartbeat last ticked: none since, and the session gives
    /// its room back.
    sent_at_tick: u64,
    /// The group a drain of the sessions' layer closes: while it drains, every poll takes
    /// the full path, where the session finishes (`finish.rs`).
    group: Arc<Group>,
    /// The session's finish, once a drain began.
    finish: Option<Box<Finish>>,
}

/// What a session writes before the handler's messages.
enum Out {
    /// A session message.
    App(AppMessage),
    /// A replayed message, in wire form.
    Replay(Kept),
    /// The session's Close, to a client that resumed while it was closing.
    Close(u16),
}

impl<S: Stream> fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Live => "live",
            Phase::Closing { .. } => "closing",
            Phase::Parked { .. } => "parked",
            Phase::Ended { .. } => "ended",
        };
        f.debug_struct("Session")
            .field("phase", &phase)
            .field("unconfirmed", &self.core.ledger().unconfirmed())
            .finish_non_exhaustive()
    }
}

impl<S: Send + 'static> Follows for Mailbox<S> {
    fn following(&self) -> &Following {
        &self.following
    }
}

impl<S: Stream + Send + 'static> Session<S> {
    /// A handle to the heartbeat of the socket the session is on, which follows it to the
    /// next ([`HeartbeatHandle`]).
    pub fn handle(&self) -> HeartbeatHandle {
        HeartbeatHandle::following(self.mailbox.clone())
    }
}
impl<S, M, E> Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    pub(crate) fn new(
        ws: Pin<Box<Heartbeat<S>>>,
        ledger: Ledger,
        registry: Arc<Registry>,
        sid: SessionId,
        mailbox: Arc<Mailbox<S>>,
        share: Share,
    ) -> Self {
        let mut core = Core::new(ledger, registry.layer.protocol_of());
        core.on_socket(ws.pings_sent());
        core.ledger_mut().set_room(share.room());
        let both = futures_util::task::waker(mailbox.clone());
        let group = registry.layer.group().clone();
        group.hold();
        Self {
            ws: Some(ws),
            core,
            out: VecDeque::new(),
            ahead: Ahead::default(),
            phase: Phase::Live,
            registry,
            sid,
            registered: true,
            mailbox,
            both,
            share,
            sent_at_tick: 0,
            group,
            finish: None,
        }
    }

    /// Sends a new session's `welcome` on its first socket.
    pub(crate) async fn greet(&mut self, welcome: AppMessage) -> Result<(), E> {
        use futures_util::SinkExt;
        let ws = self.ws.as_mut().expect("a new session is live");
        ws.send(M::from_app(welcome)).await
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
        if self.mailbox.handoff.is_full() {
            self.adopt_waiting();
        }
    }

    #[cold]
    #[inline(never)]
    fn adopt_waiting(&mut self) {
        let Some(handover) = self.mailbox.handoff.take() else {
            return;
        };
        if let Phase::Ended { .. } = self.phase {
            // Delivered before the session took itself out of the registry (`end` answers
            // those), never after.
            return;
        }
        let replay = match self.core.resume_from(handover.peer_received) {
            Ok(replay) => {
                self.give_back_room();
                self.registry.count_resume();
                replay
            }
            Err(violation) => {
                // The client claims more than we sent: not a client of this session. The
                // session stays as it was (parked: still counted once).
                tracing::debug!(?violation, "session resume refused");
                return;
            }
        };
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        let ws = handover.ws;
        self.core.on_socket(ws.pings_sent());
        self.mailbox.following.follow(ws.shared());
        let resume = &self.registry.resume;
        self.out.clear();
        self.out
            .push_back(Out::App(AppMessage::Text(wire::welcome_text(
                handover.token,
                self.core.ledger_mut().told_in_handshake(),
                resume.buffer_len() as u64,
                resume.window_len().as_millis() as u64,
            ))));
        self.out.extend(replay.into_iter().map(Out::Replay));
        if self.finish.is_some() {
            ws.shared().note_planned();
        }
        if self.finish_told() {
            self.tell_finish();
        }
        self.ws = Some(ws);
        match self.phase {
            // The Close never reached the client, whose socket froze: it gets what it missed,
            // then the Close, and the session goes on closing on this socket.
            Phase::Closing { code } => self.out.push_back(Out::Close(farewell_code(code))),
            _ => self.phase = Phase::Live,
        }
        // The other half may wait on the old socket, or on the mailbox.
        self.mailbox.halves.wake_both();
    }

    /// The socket went down: wait for the client, or end if too many wait already.
    fn park(&mut self) {
        self.ws = None;
        // A parked session holds only what it must: what bursts grew goes back.
        self.out = VecDeque::new();
        self.core.ledger_mut().shrink();
        match self.phase {
            Phase::Live => {}
            Phase::Closing { .. } => return self.end(None),
            Phase::Parked { .. } | Phase::Ended { .. } => return,
        }
        if self.registry.try_park() {
            let until = Box::pin(tokio::time::sleep(self.registry.resume.window_len()));
            self.phase = Phase::Parked { until };
        } else {
            self.lose(Reason::TooManyParked);
        }
        // The other half may wait on the socket just dropped.
        self.mailbox.halves.wake_both();
    }

    fn lose(&mut self, reason: Reason) {
        self.registry.count_lost(reason);
        let lost = self.core.lost(reason);
        tracing::info!(session = %self.sid, %lost, "websocket session lost");
        self.end(Some(lost));
    }

    fn end(&mut self, lost: Option<SessionLost>) {
        if !matches!(self.phase, Phase::Ended { .. }) {
            self.group.release();
        }
        let farewell = match (&self.phase, lost) {
            (_, Some(_)) => (4410, "session lost"),
            (Phase::Closing { code }, None) => (farewell_code(*code), FAREWELL),
            _ => (1000, FAREWELL),
        };
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        self.unregister();
        // A resume delivered before the registry forgot the session waits in its mailbox;
        // none can come after. Its client gets the end as the session's Close (or as 4410,
        // lost), not as a refusal of a session that was still held.
        if let Some(handover) = self.mailbox.handoff.take() {
            say_farewell(handover.ws, farewell);
        }
        self.ws = None;
        self.phase = Phase::Ended { lost };
        self.mailbox.halves.wake_both();
    }

    /// A Close (with `code`, if it had one) went one way or the other: the session ends,
    /// however its socket fares.
    fn closing(&mut self, code: Option<u16>) {
        self.phase = Phase::Closing { code };
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
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.park();
                    return Poll::Ready(false);
                }
                Poll::Pending => return Poll::Pending,
            }
            let msg = match self.out.pop_front().expect("not empty") {
                Out::App(msg) => M::from_app(msg),
                Out::Replay(kept) => kept.into_message(),
                Out::Close(code) => M::close(code, FAREWELL),
            };
            if ws.as_mut().start_send(msg).is_err() {
                self.park();
                return Poll::Ready(false);
            }
        }
        if let Poll::Ready(Err(_)) = ws.as_mut().poll_flush(cx) {
            self.park();
            return Poll::Ready(false);
        }
        Poll::Ready(true)
    }

    /// The peer broke the protocol: close with 1002 (best effort) and end.
    fn violated(&mut self, what: &'static str) {
        if let Some(ws) = self.ws.as_mut() {
            let _ = ws
                .as_mut()
                .start_send(M::close(VIOLATION_CLOSE.0, VIOLATION_CLOSE.1));
        }
        self.lose(Reason::Violation(what));
    }

    /// Whether a poll may go straight to the socket: live, nothing waiting in the mailbox,
    /// nothing read ahead, nothing queued to write, no drain.
    #[inline]
    fn is_plain(&self) -> bool {
        matches!(self.phase, Phase::Live)
            && self.out.is_empty()
            && self.ahead.is_empty()
            && !self.mailbox.handoff.is_full()
            && self.group.plan().is_none()
    }
}

impl<S, M, E> Stream for Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Item = Result<M, E>;

    /// The direct path (see `poll_next_direct`) when the session is plain; everything else
    /// goes through `poll_next_both`.
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.is_plain() {
            if let Some(poll) = this.poll_next_direct(cx) {
                return poll;
            }
        }
        this.mailbox.halves.reader.register(cx.waker());
        this.with_both(Self::poll_next_both)
    }
}

impl<S, M, E> FusedStream for Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// Once the session has ended and the handler has read all of it (the error of a lost
    /// session included).
    fn is_terminated(&self) -> bool {
        matches!(self.phase, Phase::Ended { lost: None }) && self.ahead.is_empty()
    }
}

impl<S, M, E> Sink<M> for Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Error = E;

    /// Directly on the socket when the session is plain and has room (see `poll_next`).
    #[inline]
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let this = self.get_mut();
        if this.core.ledger().has_room() {
            if let Some(done) = this.poll_writer_direct(cx, |ws, cx| ws.poll_ready(cx)) {
                return done;
            }
        }
        this.mailbox.halves.writer.register(cx.waker());
        this.with_both(Self::poll_ready_both)
    }

    /// A text or binary message is numbered and kept (and, while no socket is up, only
    /// kept: it goes out with the replay when the client comes back).
    #[inline]
    fn start_send(self: Pin<&mut Self>, msg: M) -> Result<(), E> {
        let this = self.get_mut();
        if let Some(frame) = msg.as_app() {
            let escaped = this.core.keep(&msg, frame);
            if !matches!(this.phase, Phase::Live) {
                return Ok(());
            }
            return this.forward(escaped.map_or(msg, M::from_app));
        }
        match msg.kind() {
            MessageKind::Close(frame) => {
                if let Phase::Live = this.phase {
                    this.closing(frame.map(|(code, _)| code));
                    this.forward(msg)
                } else {
                    this.end(None);
                    Ok(())
                }
            }
            // Another data frame (tungstenite's raw `Frame`), a ping, a pong: passed on,
            // not kept.
            MessageKind::Data | MessageKind::Ping | MessageKind::Pong(_) => this.forward(msg),
        }
    }

    /// Directly on the socket when the session is plain (see `poll_next`).
    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let this = self.get_mut();
        if let Some(done) = this.poll_writer_direct(cx, |ws, cx| ws.poll_flush(cx)) {
            return done;
        }
        this.mailbox.halves.writer.register(cx.waker());
        this.with_both(Self::poll_flush_both)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        let this = self.get_mut();
        this.mailbox.halves.writer.register(cx.waker());
        this.with_both(Self::poll_close_both)
    }
}

/// The reason of the Close a session gives a client that resumed as it ended.
const FAREWELL: &str = "session closed";

/// The code of that Close: the session's own, if its Close had one (1005, "no status", may not
/// be sent), else 1000.
fn farewell_code(code: Option<u16>) -> u16 {
    code.filter(|&code| code != 1005).unwrap_or(1000)
}

/// Closes `ws`, a socket that resumed a session as it ended, with `close`, on a task of its
/// own (the session is not polled after its end), within the socket's close timeout.
fn say_farewell<S, M, E>(mut ws: Pin<Box<Heartbeat<S>>>, (code, reason): (u16, &'static str))
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    use futures_util::SinkExt;
    let timeout = ws.close_timeout();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, async {
            ws.send(M::close(code, reason)).await?;
            ws.close().await
        })
        .await;
    });
}

// Nothing in a session is pinned in place: its socket is boxed.
impl<S: Stream> Unpin for Session<S> {}

impl<S: Stream> Session<S> {
    /// The session's id and tokens stop being valid (once: a new session may take the id).
    fn unregister(&mut self) {
        if self.registered {
            self.registered = false;
            self.registry.forget(&self.sid);
        }
    }
}

impl<S: Stream> Drop for Session<S> {
    fn drop(&mut self) {
        if let Phase::Parked { .. } = self.phase {
            self.registry.unpark();
        }
        if !matches!(self.phase, Phase::Ended { .. }) {
            self.group.release();
        }
        self.unregister();
        self.registry.budget.release(&mut self.share);
    }
}
