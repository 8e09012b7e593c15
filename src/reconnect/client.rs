//! [`Reconnect`]: the state machine of a reconnecting client, and its `Stream + Sink`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_sink::Sink;
use tokio::time::{Instant, Sleep};

use super::builder::{Overflow, ReconnectBuilder};
use super::error::Failed;
use super::{Connection, Error, Event, Reason};
use crate::error::Dead;
use crate::halves::Halves;
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
#[cfg(feature = "resume")]
use crate::resume::{Ahead, Reason as Lost, Sorted, weight};

#[cfg(feature = "resume")]
use super::session::{ClientSession, Welcome, close_for_violation};

mod connect;

/// A connect attempt in flight: the connection and, with a session, the server's `welcome`.
type Attempt<S> = BoxFuture<'static, Result<(Heartbeat<S>, Option<Welcome>), Failed>>;

/// Without sessions there is no `welcome`.
#[cfg(not(feature = "resume"))]
type Welcome = std::convert::Infallible;

// `Connected` is the state of almost every poll: boxing it to shrink the others would put an
// indirection on every message.
#[allow(clippy::large_enum_variant)]
enum State<S: Connection> {
    /// Not started: the first poll starts the first attempt.
    Idle,
    /// A connect attempt; with a session, its handshake too.
    Connecting(Attempt<S>),
    Connected {
        ws: Heartbeat<S>,
        since: Instant,
        /// The server's Close frame, once seen: the stream ends right after it.
        closed_by_server: Option<(u16, String)>,
    },
    Waiting(Pin<Box<Sleep>>),
    /// The application closed: the stream reads on until the server completes the closing
    /// handshake; no reconnection.
    Closing(Heartbeat<S>),
    /// Ended; the error is still to be reported by the stream.
    Done(Option<Error>),
}

/// A reconnecting WebSocket client: a `Stream + Sink` of `S::Message`. See the
/// [module documentation](super).
///
/// It is `Send` (it can move to another task or thread) but not `Sync`: the connect function
/// is only required to be `Send`, and so is the connect attempt in progress, which the client
/// owns. Nothing needs a shared `&Reconnect` anyway: reading and writing take `&mut`. To read
/// and write from two tasks, [`split`](futures_util::StreamExt::split) it (both halves are
/// `Send`); to share it, put it in a `Mutex`.
#[must_use = "streams do nothing unless polled"]
pub struct Reconnect<S: Connection> {
    settings: ReconnectBuilder<S>,
    state: State<S>,
    /// Reconnection attempts in a row since the last stable connection.
    retry: u32,
    buffer: VecDeque<S::Message>,
    /// Messages handed to the current connection since the server was last heard from.
    unconfirmed: u64,
    /// The current connection's pong count when last looked at.
    pongs_seen: u64,
    /// The reading and the writing half (one task, or two after a `split`), each registered
    /// at every poll, woken at every change of state.
    halves: Arc<Halves>,
    /// A waker of both halves: every poll of the connection, the attempt and the backoff's
    /// timer goes through it (ARCHITECTURE.md, "The wake hub").
    both: Waker,
    /// The session, with [`ReconnectBuilder::resume`]. `buffer` then holds numbered
    /// messages in wire form (and acknowledgements), all kept in the session's ledger.
    #[cfg(feature = "resume")]
    session: Option<ClientSession>,
    /// Data read while the writer waited for an acknowledgement, for the next reads.
    #[cfg(feature = "resume")]
    ahead: Ahead<S::Message>,
}

impl<S: Connection> std::fmt::Debug for Reconnect<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Connecting(_) => "connecting",
            State::Connected { .. } => "connected",
            State::Waiting(_) => "waiting",
            State::Closing(_) => "closing",
            State::Done(_) => "done",
        };
        f.debug_struct("Reconnect")
            .field("state", &state)
            .field("retry", &self.retry)
            .field("queued", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

// Nothing in it is ever pinned in place: the connection is `Unpin`, the futures are boxed.
impl<S: Connection> Unpin for Reconnect<S> {}

impl<S: Connection> Reconnect<S> {
    pub(super) fn new(settings: ReconnectBuilder<S>) -> Self {
        #[cfg(feature = "resume")]
        let session = settings
            .resume
            .map(|resume| ClientSession::new(resume, settings.heartbeat.protocol_of()));
        let halves = Arc::new(Halves::default());
        Reconnect {
            both: futures_util::task::waker(halves.clone()),
            halves,
            buffer: VecDeque::with_capacity(settings.buffer.min(1024)),
            settings,
            state: State::Idle,
            retry: 0,
            unconfirmed: 0,
            pongs_seen: 0,
            #[cfg(feature = "resume")]
            session,
            #[cfg(feature = "resume")]
            ahead: Ahead::default(),
        }
    }

    /// Messages waiting in the send buffer. (Not `buffered`: that name is taken by
    /// `StreamExt`.)
    pub fn queued(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    fn emit(&self, event: Event) {
        tracing::debug!(?event, "reconnecting websocket");
        if let Some(on_event) = &self.settings.on_event {
            on_event(&event);
        }
    }

    /// Moves to `state`, waking both sides: whichever waits must see the change.
    fn set(&mut self, state: State<S>) {
        self.state = state;
        self.halves.wake_both();
    }

    /// Runs `poll` with a context whose waker wakes both halves; the half that polls has
    /// registered its own.
    #[inline]
    fn with_both<R>(&mut self, poll: impl FnOnce(&mut Self, &mut Context<'_>) -> R) -> R {
        let both = std::mem::replace(&mut self.both, Waker::noop().clone());
        let r = poll(self, &mut Context::from_waker(&both));
        self.both = both;
        r
    }

    /// Hands buffered messages to the connection while it takes them, then flushes.
    /// `Ready(Ok)`: all handed over and flushed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::WsError>> {
        let State::Connected { ws, .. } = &mut self.state else {
            return Poll::Pending;
        };
        while !self.buffer.is_empty() {
            match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let pongs = ws.handle().stats().pongs_received;
            if pongs != self.pongs_seen {
                // The server answered a ping since the last write: it was there.
                self.pongs_seen = pongs;
                self.unconfirmed = 0;
            }
            let msg = self.buffer.pop_front().expect("not empty");
            Pin::new(&mut *ws).start_send(msg)?;
            self.unconfirmed += 1;
        }
        Pin::new(&mut *ws).poll_flush(cx)
    }

    /// Reads the connection once. `Ready(Some)`: a message for the application;
    /// `Ready(None)`: something changed (a Close, an acknowledgement, the connection
    /// ended), look again.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<S::Message>> {
        let State::Connected {
            ws,
            closed_by_server,
            ..
        } = &mut self.state
        else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut *ws).poll_next(cx) {
            Poll::Ready(Some(Ok(msg))) => {
                self.unconfirmed = 0;
                #[cfg(feature = "resume")]
                let Some(session) = &mut self.session else {
                    return Poll::Ready(plain_message(msg, closed_by_server));
                };
                #[cfg(not(feature = "resume"))]
                return Poll::Ready(plain_message(msg, closed_by_server));
                #[cfg(feature = "resume")]
                match session.sort(msg) {
                    Sorted::Deliver(msg) => {
                        if let Some(ack) = session.ack(ws.pings_sent()) {
                            self.buffer.push_front(ack);
                        }
                        Poll::Ready(Some(msg))
                    }
                    Sorted::Close { msg, .. } => {
                        let (code, reason) = match msg.kind() {
                            MessageKind::Close(frame) => frame.unwrap_or((1005, "")),
                            _ => unreachable!("a Close"),
                        };
                        *closed_by_server = Some((code, reason.to_owned()));
                        Poll::Ready(None)
                    }
                    Sorted::Handled { room } => {
                        if room {
                            self.halves.writer.wake();
                        }
                        Poll::Ready(None)
                    }
                    Sorted::Finish => {
                        let protocol = self.settings.heartbeat.protocol_of();
                        let answer = session.finish(&protocol);
                        self.buffer.push_front(answer);
                        self.halves.writer.wake();
                        Poll::Ready(None)
                    }
                    Sorted::Violation(what) => {
                        close_for_violation(ws, cx);
                        let lost = session.lost(Lost::Violation(what));
                        self.lose(lost);
                        Poll::Ready(None)
                    }
                }
            }
            Poll::Ready(Some(Err(err))) => {
                self.disconnect(Self::reason_of(err));
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.disconnect(Reason::Ended);
                Poll::Ready(None)
            }
            Poll::Pending => {
                #[cfg(feature = "resume")]
                if let Some(session) = &mut self.session {
                    // A tick sent a ping: the acknowledgement rides along. Look again: the
                    // caller's drain sends it.
                    if let Some(ack) = session.ack(ws.pings_sent()) {
                        self.buffer.push_front(ack);
                        return Poll::Ready(None);
                    }
                }
                Poll::Pending
            }
        }
    }

    /// The reason a connection failed with `err`.
    fn reason_of(err: S::WsError) -> Reason {
        match Dead::find(&err) {
            Some(dead) => Reason::Dead(*dead),
            None => Reason::Failed(Arc::new(err)),
        }
    }

    /// What `Event::Closed` reports as never delivered: the buffer, or with a session, every
    /// message the server has not acknowledged (sent or not).
    fn unsent(&self) -> usize {
        #[cfg(feature = "resume")]
        if let Some(session) = &self.session {
            let next = session
                .next
                .as_ref()
                .map_or(0, |n| n.core.ledger().unconfirmed());
            return (session.core.ledger().unconfirmed() + next) as usize;
        }
        self.buffer.len()
    }

    /// Whether a message may be sent now: room in the buffer, or with a session, in its
    /// ledger of unacknowledged messages.
    fn has_room(&self) -> bool {
        #[cfg(feature = "resume")]
        if let Some(session) = &self.session {
            return session.sending_ref().core.ledger().has_room();
        }
        self.buffer.len() < self.settings.buffer
    }

    /// Whether the writer, waiting for an acknowledgement, may read one more message ahead
    /// for the reader: with a session, up to its own buffer in bytes.
    #[cfg(feature = "resume")]
    fn may_read_ahead(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|session| self.ahead.has_room(session.core.ledger().buffer()))
    }

    /// The terminal error, if there is one to report, for the sink.
    fn sink_error(&self) -> Error {
        match &self.state {
            State::Done(Some(err)) => err.clone(),
            _ => Error::Closed,
        }
    }
}

/// A message of a connection without a session: for the application, but a Close, which is
/// noted (`None`: the stream ends right after it).
fn plain_message<M: WsMessage>(msg: M, closed_by_server: &mut Option<(u16, String)>) -> Option<M> {
    if let MessageKind::Close(frame) = msg.kind() {
        let (code, reason) = frame.unwrap_or((1005, ""));
        *closed_by_server = Some((code, reason.to_owned()));
        return None;
    }
    Some(msg)
}

impl<S: Connection> Stream for Reconnect<S> {
    type Item = Result<S::Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.halves.reader.register(cx.waker());
        this.with_both(Self::poll_next_both)
    }
}

// The bodies of the `Stream` and `Sink` methods, run with the waker of both halves.
impl<S: Connection> Reconnect<S> {
    fn poll_next_both(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<S::Message, Error>>> {
        loop {
            match self.poll_connected(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(false) => match &mut self.state {
                    State::Done(err) => return Poll::Ready(err.take().map(Err)),
                    State::Closing(ws) => match Pin::new(ws).poll_next(cx) {
                        Poll::Ready(Some(Ok(msg)))
                            if !matches!(msg.kind(), MessageKind::Close(_)) =>
                        {
                            return Poll::Ready(Some(Ok(msg)));
                        }
                        Poll::Ready(Some(Ok(_))) => continue,
                        Poll::Ready(_) => {
                            self.set(State::Done(None));
                            return Poll::Ready(None);
                        }
                        Poll::Pending => return Poll::Pending,
                    },
                    _ => unreachable!("poll_connected ended"),
                },
                Poll::Ready(true) => {}
            }
            // Buffered messages go out as soon as a connection is up, reader or not.
            if let Poll::Ready(Err(err)) = self.poll_drain(cx) {
                self.disconnect(Self::reason_of(err));
                continue;
            }
            #[cfg(feature = "resume")]
            if let Some(msg) = self.ahead.pop() {
                return Poll::Ready(Some(Ok(msg)));
            }
            match self.poll_read(cx) {
                Poll::Ready(Some(msg)) => return Poll::Ready(Some(Ok(msg))),
                Poll::Ready(None) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_ready_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if let State::Closing(_) | State::Done(_) = self.state {
                return Poll::Ready(Err(self.sink_error()));
            }
            if self.has_room() {
                return Poll::Ready(Ok(()));
            }
            if self.settings.overflow == Overflow::Fail {
                return Poll::Ready(Err(Error::BufferFull));
            }
            match self.poll_connected(cx) {
                Poll::Ready(true) => match self.poll_drain(cx) {
                    Poll::Ready(Err(err)) => self.disconnect(Self::reason_of(err)),
                    _ if self.has_room() => {}
                    #[cfg(feature = "resume")]
                    _ if self.may_read_ahead() => {
                        // Read on for the acknowledgement that makes room; what arrives
                        // meanwhile is the reader's.
                        match self.poll_read(cx) {
                            Poll::Ready(Some(msg)) => {
                                let bytes = weight(&msg);
                                self.ahead.push(msg, bytes);
                                self.halves.reader.wake();
                            }
                            Poll::Ready(None) => {}
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    _ => return Poll::Pending,
                },
                Poll::Ready(false) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_flush_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match self.poll_connected(cx) {
                Poll::Ready(true) => match self.poll_drain(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(err)) => self.disconnect(Self::reason_of(err)),
                    Poll::Pending => return Poll::Pending,
                },
                Poll::Ready(false) => return Poll::Ready(Err(self.sink_error())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_close_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let State::Connected { .. } = self.state {
            if self.poll_drain(cx).is_pending() {
                return Poll::Pending;
            }
            let State::Connected { ws, .. } = &mut self.state else {
                unreachable!("connected")
            };
            if Pin::new(&mut *ws).poll_close(cx).is_pending() {
                return Poll::Pending;
            }
            self.emit(Event::Closed {
                by_server: None,
                unsent: self.unsent(),
            });
            let State::Connected { ws, .. } = std::mem::replace(&mut self.state, State::Idle)
            else {
                unreachable!("connected")
            };
            self.set(State::Closing(ws));
        } else if !matches!(self.state, State::Closing(_) | State::Done(_)) {
            self.emit(Event::Closed {
                by_server: None,
                unsent: self.unsent(),
            });
            self.set(State::Done(None));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: Connection> Sink<S::Message> for Reconnect<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.halves.writer.register(cx.waker());
        this.with_both(Self::poll_ready_both)
    }

    fn start_send(self: Pin<&mut Self>, msg: S::Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let State::Closing(_) | State::Done(_) = this.state {
            return Err(this.sink_error());
        }
        #[cfg(feature = "resume")]
        let msg = match &mut this.session {
            // The server asked to finish: kept for the next session, sent after its welcome.
            Some(session) if session.next.is_some() => {
                session.sending().send(msg);
                return Ok(());
            }
            Some(session) => session.send(msg),
            None => msg,
        };
        this.buffer.push_back(msg);
        Ok(())
    }

    /// Waits until every buffered message was handed to a connection and flushed, through
    /// reconnections if need be.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.halves.writer.register(cx.waker());
        this.with_both(Self::poll_flush_both)
    }

    /// Ends the client with no further attempt: hands what it can to a live connection and
    /// sends its Close frame; the stream then yields what still arrives until the server
    /// completes the closing handshake. What stays in the buffer is reported in
    /// [`Event::Closed`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.halves.writer.register(cx.waker());
        this.with_both(Self::poll_close_both)
    }
}
