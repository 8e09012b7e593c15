//! [`Reconnect`]: the state machine of a reconnecting client, and its `Stream + Sink`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_sink::Sink;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;

use super::builder::{Overflow, ReconnectBuilder};
use super::{Connection, Error, Event, Reason};
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
use crate::random::random_u64;
use crate::resume::wire::Welcome;
use crate::resume::{Reason as Lost, SessionLost};

use super::session::{ClientSession, Sorted, handshake};

/// Messages a session's client reads ahead while its writer waits for an acknowledgement.
const AHEAD: usize = 1024;

/// A connect attempt in flight: the socket, and the session's welcome if it has one.
type Attempt<S> = BoxFuture<'static, Result<(Heartbeat<S>, Option<Welcome>), Reason>>;

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
    /// The tasks waiting to read and to write, woken at every change of state.
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The session, with [`ReconnectBuilder::resume`]. `buffer` then holds numbered
    /// messages in wire form (and acknowledgements), all kept in the session's ledger.
    session: Option<ClientSession>,
    /// Data read while the writer waited for an acknowledgement, for the next reads.
    ahead: VecDeque<S::Message>,
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
        let session = settings
            .resume
            .map(|resume| ClientSession::new(resume, settings.heartbeat.protocol_of()));
        Reconnect {
            buffer: VecDeque::with_capacity(settings.buffer.min(1024)),
            settings,
            state: State::Idle,
            retry: 0,
            unconfirmed: 0,
            pongs_seen: 0,
            reader: None,
            writer: None,
            session,
            ahead: VecDeque::new(),
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
        for waker in [self.reader.take(), self.writer.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }

    fn start_attempt(&mut self) {
        self.emit(Event::Connecting { retry: self.retry });
        let connect = (self.settings.connect)();
        let timeout = self.settings.connect_timeout;
        let layer = self.settings.heartbeat.clone();
        let on_connect = self.settings.on_connect.clone();
        let hello = self.session.as_mut().map(ClientSession::hello);
        let attempt = async move {
            let socket = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(socket)) => socket,
                Ok(Err(err)) => return Err(Reason::ConnectFailed(err)),
                Err(_) => return Err(Reason::ConnectTimedOut(timeout)),
            };
            let mut ws = layer.layer(socket);
            if let Some(hello) = hello {
                // The connect timeout covers the session handshake too.
                return match tokio::time::timeout(timeout, handshake(&mut ws, hello)).await {
                    Ok(Ok(welcome)) => Ok((ws, Some(welcome))),
                    Ok(Err(reason)) => Err(reason),
                    Err(_) => Err(Reason::ConnectTimedOut(timeout)),
                };
            }
            match on_connect {
                Some(hook) => hook(ws)
                    .await
                    .map(|ws| (ws, None))
                    .map_err(Reason::OnConnectFailed),
                None => Ok((ws, None)),
            }
        };
        self.set(State::Connecting(Box::pin(attempt)));
    }

    /// A connection or an attempt ended for `reason`: end, or wait and try again.
    fn after(&mut self, reason: Reason, stable: bool) {
        if let Reason::ServerClosed { code, reason: text } = &reason {
            if let (4410, Some(session)) = (*code, &self.session) {
                let lost = session.lost(Lost::Refused);
                return self.lose(lost);
            }
            // A session ends at any Close but the heartbeat's own (PROTOCOL.md, section 6).
            let is_final = match self.session {
                Some(_) => *code != 1011,
                None => (self.settings.is_final)(*code, text),
            };
            if is_final {
                let (code, text) = (*code, text.clone());
                self.emit(Event::Closed {
                    by_server: Some((code, text.clone())),
                    unsent: self.buffer.len(),
                });
                return self.set(State::Done(Some(Error::Rejected { code, reason: text })));
            }
        }
        self.retry = if stable { 1 } else { self.retry + 1 };
        if !self.settings.backoff.allows(self.retry) {
            let retries = self.retry - 1;
            self.emit(Event::GaveUp {
                retries,
                last: reason.clone(),
            });
            return self.set(State::Done(Some(Error::GaveUp {
                retries,
                last: reason,
            })));
        }
        let mut delay = self.settings.backoff.delay(self.retry, random_u64());
        if let Some(session) = &self.session {
            // The window runs from the loss of a socket the session was on (`disconnect`):
            // a server down from the start is retried like without a session.
            match session.window_left() {
                // The last attempt comes before the server forgets the session.
                Some(left) => delay = delay.min(left.saturating_sub(left / 4)),
                None => {
                    let lost = session.lost(Lost::WindowPassed);
                    return self.lose(lost);
                }
            }
        }
        self.emit(Event::Reconnecting {
            retry: self.retry,
            delay,
            after: reason,
        });
        self.set(State::Waiting(Box::pin(tokio::time::sleep(delay))));
    }

    /// The session can no longer resume: the client ends.
    fn lose(&mut self, lost: SessionLost) {
        self.emit(Event::SessionLost(lost));
        self.set(State::Done(Some(Error::SessionLost(lost))));
    }

    /// The current connection ended for `reason`, or for the server's Close frame if one
    /// came first (whatever went wrong after it).
    fn disconnect(&mut self, reason: Reason) {
        let State::Connected {
            since,
            closed_by_server,
            ..
        } = &mut self.state
        else {
            return;
        };
        let stable = since.elapsed() >= self.settings.stable_after;
        let reason = match closed_by_server.take() {
            Some((code, reason)) => Reason::ServerClosed { code, reason },
            None => reason,
        };
        if let Some(session) = &mut self.session {
            self.unconfirmed = session.ledger.unconfirmed();
            session.went_down();
        }
        self.emit(Event::Disconnected {
            reason: reason.clone(),
            unconfirmed: self.unconfirmed,
        });
        self.unconfirmed = 0;
        self.after(reason, stable);
    }

    /// Drives attempts and backoff until a connection is up (`Ready(true)`), the client has
    /// ended (`Ready(false)`), or it must wait.
    fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match &mut self.state {
                State::Idle => self.start_attempt(),
                State::Connecting(attempt) => match attempt.as_mut().poll(cx) {
                    Poll::Ready(Ok((ws, welcome))) => {
                        if let (Some(session), Some(welcome)) = (&mut self.session, welcome) {
                            match session.welcomed(&welcome) {
                                Ok(replay) => self.buffer = replay.into(),
                                Err(violation) => {
                                    let lost = session.lost(violation);
                                    self.lose(lost);
                                    continue;
                                }
                            }
                            session.pings_seen = ws.pings_sent();
                        }
                        self.pongs_seen = ws.handle().stats().pongs_received;
                        self.emit(Event::Connected { retry: self.retry });
                        let since = Instant::now();
                        self.set(State::Connected {
                            ws,
                            since,
                            closed_by_server: None,
                        });
                    }
                    Poll::Ready(Err(reason)) => self.after(reason, false),
                    Poll::Pending => return Poll::Pending,
                },
                State::Waiting(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.start_attempt();
                }
                State::Connected { .. } => return Poll::Ready(true),
                State::Closing(_) | State::Done(_) => return Poll::Ready(false),
            }
        }
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
                if let MessageKind::Close(frame) = msg.kind() {
                    let (code, reason) = frame.unwrap_or((1005, ""));
                    *closed_by_server = Some((code, reason.to_owned()));
                    return Poll::Ready(None);
                }
                let Some(session) = &mut self.session else {
                    return Poll::Ready(Some(msg));
                };
                if !matches!(msg.kind(), MessageKind::Data) {
                    return Poll::Ready(Some(msg));
                }
                let mut ack = None;
                match session.sort(msg, &mut ack) {
                    Sorted::Deliver(msg) => {
                        if let Some(ack) = ack {
                            self.buffer.push_front(ack);
                        }
                        Poll::Ready(Some(msg))
                    }
                    Sorted::Handled(room) => {
                        if room {
                            if let Some(waker) = self.writer.take() {
                                waker.wake();
                            }
                        }
                        Poll::Ready(None)
                    }
                    Sorted::Violation(what) => {
                        let _ = Pin::new(&mut *ws)
                            .start_send(S::Message::close(1002, "session protocol error"));
                        let _ = Pin::new(&mut *ws).poll_flush(cx);
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
                if let Some(session) = &mut self.session {
                    let pings = ws.pings_sent();
                    if pings != session.pings_seen {
                        // A tick sent a ping: the acknowledgement rides along.
                        session.pings_seen = pings;
                        if let Some(ack) = session.ack() {
                            // Look again: the caller's drain sends it.
                            self.buffer.push_front(ack);
                            return Poll::Ready(None);
                        }
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

    /// Whether a message may be sent now: room in the buffer, or with a session, in its
    /// ledger of unacknowledged messages.
    fn has_room(&self) -> bool {
        match &self.session {
            Some(session) => session.ledger.has_room(),
            None => self.buffer.len() < self.settings.buffer,
        }
    }

    /// The terminal error, if there is one to report, for the sink.
    fn sink_error(&self) -> Error {
        match &self.state {
            State::Done(Some(err)) => err.clone(),
            _ => Error::Closed,
        }
    }
}

impl<S: Connection> Stream for Reconnect<S> {
    type Item = Result<S::Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.poll_connected(cx) {
                Poll::Pending => break,
                Poll::Ready(false) => match &mut this.state {
                    State::Done(err) => return Poll::Ready(err.take().map(Err)),
                    State::Closing(ws) => match Pin::new(ws).poll_next(cx) {
                        Poll::Ready(Some(Ok(msg)))
                            if !matches!(msg.kind(), MessageKind::Close(_)) =>
                        {
                            return Poll::Ready(Some(Ok(msg)));
                        }
                        Poll::Ready(Some(Ok(_))) => continue,
                        Poll::Ready(_) => {
                            this.set(State::Done(None));
                            return Poll::Ready(None);
                        }
                        Poll::Pending => break,
                    },
                    _ => unreachable!("poll_connected ended"),
                },
                Poll::Ready(true) => {}
            }
            // Buffered messages go out as soon as a connection is up, reader or not.
            if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
                this.disconnect(Self::reason_of(err));
                continue;
            }
            if let Some(msg) = this.ahead.pop_front() {
                return Poll::Ready(Some(Ok(msg)));
            }
            match this.poll_read(cx) {
                Poll::Ready(Some(msg)) => return Poll::Ready(Some(Ok(msg))),
                Poll::Ready(None) => {}
                Poll::Pending => break,
            }
        }
        this.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<S: Connection> Sink<S::Message> for Reconnect<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        loop {
            if let State::Closing(_) | State::Done(_) = this.state {
                return Poll::Ready(Err(this.sink_error()));
            }
            if this.has_room() {
                return Poll::Ready(Ok(()));
            }
            if this.settings.overflow == Overflow::Fail {
                return Poll::Ready(Err(Error::BufferFull));
            }
            match this.poll_connected(cx) {
                Poll::Ready(true) => match this.poll_drain(cx) {
                    Poll::Ready(Err(err)) => this.disconnect(Self::reason_of(err)),
                    _ if this.has_room() => {}
                    _ if this.session.is_some() && this.ahead.len() < AHEAD => {
                        // Read on for the acknowledgement that makes room.
                        match this.poll_read(cx) {
                            Poll::Ready(Some(msg)) => this.ahead.push_back(msg),
                            Poll::Ready(None) => {}
                            Poll::Pending => break,
                        }
                    }
                    _ => break,
                },
                Poll::Ready(false) => {}
                Poll::Pending => break,
            }
        }
        this.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, msg: S::Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let State::Closing(_) | State::Done(_) = this.state {
            return Err(this.sink_error());
        }
        let msg = match &mut this.session {
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
        loop {
            match this.poll_connected(cx) {
                Poll::Ready(true) => match this.poll_drain(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(err)) => this.disconnect(Self::reason_of(err)),
                    Poll::Pending => break,
                },
                Poll::Ready(false) => return Poll::Ready(Err(this.sink_error())),
                Poll::Pending => break,
            }
        }
        this.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ends the client with no further attempt: hands what it can to a live connection and
    /// sends its Close frame; the stream then yields what still arrives until the server
    /// completes the closing handshake. What stays in the buffer is reported in
    /// [`Event::Closed`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if let State::Connected { .. } = this.state {
            if this.poll_drain(cx).is_pending() {
                this.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let State::Connected { ws, .. } = &mut this.state else {
                unreachable!("connected")
            };
            if Pin::new(&mut *ws).poll_close(cx).is_pending() {
                this.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            this.emit(Event::Closed {
                by_server: None,
                unsent: this.buffer.len(),
            });
            let State::Connected { ws, .. } = std::mem::replace(&mut this.state, State::Idle)
            else {
                unreachable!("connected")
            };
            this.set(State::Closing(ws));
        } else if !matches!(this.state, State::Closing(_) | State::Done(_)) {
            this.emit(Event::Closed {
                by_server: None,
                unsent: this.buffer.len(),
            });
            this.set(State::Done(None));
        }
        Poll::Ready(Ok(()))
    }
}
