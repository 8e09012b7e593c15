//! A reconnecting client's session ([`ReconnectBuilder::resume`](super::ReconnectBuilder::resume)):
//! the client half of PROTOCOL.md. The client numbers and keeps what it sends, counts what
//! it receives, says `hello` on every connection and carries on from the server's
//! `welcome`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use super::{Connection, Reason};
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppFrame, AppMessage, Protocol};
use crate::resume::wire::{self, Incoming, Message, Welcome};
use crate::resume::{Ledger, Reason as Lost, Resume, Secret, SessionLost, payload_len};

/// The client's side of one session.
#[derive(Debug)]
pub(super) struct ClientSession {
    sid: Secret,
    secret: Secret,
    /// The token of the latest `welcome`; `None` before the first (then `hello new`).
    token: Option<Secret>,
    pub(super) ledger: Ledger,
    /// The smaller of ours and the server's (from its `welcome`).
    window: Duration,
    /// When the latest socket went down, while no `welcome` has come since.
    down_since: Option<Instant>,
    /// The socket's pings when we last acknowledged.
    pub(super) pings_seen: u64,
    protocol: Protocol,
}

/// What a message from the server was.
pub(super) enum Sorted<M> {
    /// For the application.
    Deliver(M),
    /// An acknowledgement or a message of a later version: read on. `true`: room was made.
    Handled(bool),
    /// The server broke the protocol.
    Violation(&'static str),
}

impl ClientSession {
    /// A new session with ids from the OS's random source.
    ///
    /// # Panics
    /// If the OS's random source fails.
    pub(super) fn new(resume: Resume, protocol: Protocol) -> Self {
        let random = || Secret::random().expect("the OS's random source works");
        Self {
            sid: random(),
            secret: random(),
            token: None,
            ledger: Ledger::new(resume.buffer_len(), 0),
            window: resume.window_len(),
            down_since: None,
            pings_seen: 0,
            protocol,
        }
    }

    /// The `hello` for the next connection.
    pub(super) fn hello(&mut self) -> String {
        match self.token {
            None => wire::hello_new(self.sid, self.secret, self.ledger.buffer() as u64),
            Some(token) => wire::hello_resume(self.sid, token, self.ledger.told_in_handshake()),
        }
    }

    /// The server's `welcome`: the session goes on from its count. Returns what to send
    /// again, oldest first, in wire form.
    pub(super) fn welcomed<M: WsMessage>(&mut self, welcome: &Welcome) -> Result<Vec<M>, Lost> {
        self.ledger
            .acknowledged(welcome.received)
            .map_err(|violation| Lost::Violation(violation.0))?;
        self.token = Some(welcome.token);
        self.window = self.window.min(Duration::from_millis(welcome.window_ms));
        self.ledger.set_peer_buffer(welcome.buffer);
        self.down_since = None;
        Ok(self
            .ledger
            .replay()
            .into_iter()
            .map(|m| self.wire_form(m))
            .collect())
    }

    /// A message as it goes on the wire: escaped if it must be.
    pub(super) fn wire_form<M: WsMessage>(&self, msg: AppMessage) -> M {
        let frame = app_frame(&msg);
        if wire::needs_escape(frame, &self.protocol) {
            M::from_app(wire::escaped(frame))
        } else {
            M::from_app(msg)
        }
    }

    /// Numbers and keeps a data message the application sends; returns its wire form.
    pub(super) fn send<M: WsMessage>(&mut self, msg: M) -> M {
        let Some(frame) = msg.as_app() else {
            return msg;
        };
        if !matches!(msg.kind(), MessageKind::Data) {
            return msg;
        }
        self.ledger.keep(frame);
        if wire::needs_escape(frame, &self.protocol) {
            M::from_app(wire::escaped(frame))
        } else {
            msg
        }
    }

    /// Sorts a data message from the server (Close frames and pings are the caller's).
    pub(super) fn sort<M: WsMessage>(&mut self, msg: M, ack: &mut Option<M>) -> Sorted<M> {
        let Some(frame) = msg.as_app() else {
            return Sorted::Deliver(msg);
        };
        let (deliver, len) = match wire::incoming(frame) {
            Incoming::Data => (None, payload_len(frame)),
            Incoming::Escaped => (
                Some(M::from_app(wire::unescaped(frame))),
                payload_len(frame) - 2,
            ),
            Incoming::Session(Message::Ack(count)) => {
                return match self.ledger.acknowledged(count) {
                    Ok(()) => Sorted::Handled(true),
                    Err(violation) => Sorted::Violation(violation.0),
                };
            }
            Incoming::Session(Message::Unknown(_)) => return Sorted::Handled(false),
            Incoming::Session(_) => return Sorted::Violation("unexpected session message"),
            Incoming::Reserved => return Sorted::Violation("reserved binary frame"),
        };
        if self.ledger.received(len) {
            *ack = self.ack();
        }
        Sorted::Deliver(deliver.unwrap_or(msg))
    }

    /// An acknowledgement, if the count moved.
    pub(super) fn ack<M: WsMessage>(&mut self) -> Option<M> {
        self.ledger
            .ack()
            .map(|count| M::from_app(AppMessage::Text(wire::ack_text(count))))
    }

    /// The socket went down (the first time since the last `welcome` starts the window).
    pub(super) fn went_down(&mut self) {
        self.down_since.get_or_insert_with(Instant::now);
    }

    /// How long the window still runs; `None` once it has passed.
    pub(super) fn window_left(&self) -> Option<Duration> {
        match self.down_since {
            None => Some(self.window),
            Some(since) => self
                .window
                .checked_sub(since.elapsed())
                .filter(|d| !d.is_zero()),
        }
    }

    pub(super) fn lost(&self, reason: Lost) -> SessionLost {
        SessionLost {
            reason,
            unconfirmed: self.ledger.unconfirmed(),
        }
    }
}

fn app_frame(msg: &AppMessage) -> AppFrame<'_> {
    match msg {
        AppMessage::Text(t) => AppFrame::Text(t),
        AppMessage::Binary(b) => AppFrame::Binary(b),
    }
}

/// The handshake on a fresh connection: `hello`, then the server's `welcome`, or its Close
/// (4410: the session is lost; other codes as any server close).
pub(super) async fn handshake<S: Connection>(
    ws: &mut Heartbeat<S>,
    hello: String,
) -> Result<Welcome, Reason> {
    let failed = |err: S::WsError| Reason::Failed(Arc::new(err));
    ws.send(S::Message::from_app(AppMessage::Text(hello)))
        .await
        .map_err(failed)?;
    loop {
        let msg = match Pin::new(&mut *ws).next().await {
            Some(Ok(msg)) => msg,
            Some(Err(err)) => return Err(failed(err)),
            None => return Err(Reason::Ended),
        };
        match msg.kind() {
            MessageKind::Close(frame) => {
                let (code, reason) = frame.unwrap_or((1005, ""));
                return Err(Reason::ServerClosed {
                    code,
                    reason: reason.to_owned(),
                });
            }
            MessageKind::Data => {}
            MessageKind::Ping | MessageKind::Pong(_) => continue,
        }
        let welcome = msg.as_app().map(wire::incoming);
        return match welcome {
            Some(Incoming::Session(Message::Welcome(welcome))) => Ok(welcome),
            _ => Err(Reason::Failed(Arc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server did not answer the session hello with a welcome",
            )))),
        };
    }
}
