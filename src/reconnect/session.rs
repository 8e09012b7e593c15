//! A reconnecting client's session ([`ReconnectBuilder::resume`](super::ReconnectBuilder::resume)):
//! the client half of PROTOCOL.md. The client numbers and keeps what it sends, counts what
//! it receives, says `hello` on every connection and carries on from the server's
//! `welcome`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use futures_sink::Sink;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use super::error::Failed;
use super::{Connection, Reason};
use crate::heartbeat::Heartbeat;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppMessage, Protocol};
pub(super) use crate::resume::wire::Welcome;
use crate::resume::wire::{self, Incoming, Message};
use crate::resume::{
    Core, Finishing, Kept, Ledger, Reason as Lost, Resume, Secret, SessionId, SessionLost, Sorted,
    VIOLATION_CLOSE,
};

/// The client's side of one session: the session's rules ([`Core`]) and what only a
/// client has: its id and secret, the latest token, the window's clock.
#[derive(Debug)]
pub(super) struct ClientSession {
    sid: SessionId,
    secret: Secret,
    /// The token of the latest `welcome`; `None` before the first (then `hello new`).
    token: Option<Secret>,
    pub(super) core: Core,
    /// The smaller of ours and the server's (from its `welcome`).
    window: Duration,
    /// When the latest socket went down, while no `welcome` has come since.
    down_since: Option<Instant>,
    /// The settings a next session is made with.
    resume: Resume,
    /// After the server's `finish` (a drain, PROTOCOL.md, section 8): the session that takes
    /// over once this one closes. What the application sends meanwhile is numbered and kept
    /// in it, and goes out after its `welcome`.
    pub(super) next: Option<Box<ClientSession>>,
}

impl ClientSession {
    /// A new session with ids from the OS's random source.
    ///
    /// # Panics
    /// If the OS's random source fails.
    pub(super) fn new(resume: Resume, protocol: Protocol) -> Self {
        const RANDOM: &str = "the OS's random source works";
        Self {
            sid: SessionId::random().expect(RANDOM),
            secret: Secret::random().expect(RANDOM),
            token: None,
            core: Core::new(Ledger::of(&resume, 0), protocol),
            window: resume.window_len(),
            down_since: None,
            resume,
            next: None,
        }
    }

    /// The server's `finish`: our answer (`finish <received>`), after which this session
    /// takes no new data (it goes to the next session) and acknowledges each message the
    /// server still sends at once. Again after a resume: the same answer, the same next.
    pub(super) fn finish<M: WsMessage>(&mut self, protocol: &Protocol) -> M {
        if self.next.is_none() {
            self.next = Some(Box::new(ClientSession::new(self.resume, protocol.clone())));
            self.core.set_finishing(Finishing::AckEach);
        }
        let received = self.core.ledger_mut().told_in_handshake();
        M::from_app(AppMessage::Text(wire::finish_text(received)))
    }

    /// The session new data goes to: the next one once the server asked to finish.
    pub(super) fn sending(&mut self) -> &mut ClientSession {
        if self.next.is_some() {
            self.next.as_deref_mut().expect("checked")
        } else {
            self
        }
    }

    /// The session that new data goes to, to read.
    pub(super) fn sending_ref(&self) -> &ClientSession {
        self.next.as_deref().unwrap_or(self)
    }

    /// The server closed after the finish: if it acknowledged everything we sent, the next
    /// session takes over (`Some`); else the finish failed (`None`).
    pub(super) fn finished(&mut self) -> Option<ClientSession> {
        if self.core.ledger().unconfirmed() > 0 {
            return None;
        }
        self.next.take().map(|next| *next)
    }

    /// A `hello new` refused by a server that drains: a session never welcomed takes a new
    /// id and secret, so that a balancer routing on the id does not send the next try back
    /// to the same server. What it keeps stays.
    pub(super) fn renew_if_unwelcomed(&mut self) {
        if self.token.is_none() {
            const RANDOM: &str = "the OS's random source works";
            self.sid = SessionId::random().expect(RANDOM);
            self.secret = Secret::random().expect(RANDOM);
        }
    }

    /// The `hello` for the next connection.
    pub(super) fn hello(&mut self) -> String {
        let ledger = self.core.ledger_mut();
        match self.token {
            None => wire::hello_new(self.sid, self.secret, ledger.buffer() as u64),
            Some(token) => wire::hello_resume(self.sid, token, ledger.told_in_handshake()),
        }
    }

    /// The server's `welcome` on a connection whose heartbeat has sent `pings` pings: the
    /// session goes on from its count. Returns what to send again, oldest first, in wire
    /// form.
    pub(super) fn welcomed<M: WsMessage>(
        &mut self,
        welcome: &Welcome,
        pings: u64,
    ) -> Result<Vec<M>, Lost> {
        let replay = self
            .core
            .resume_from(welcome.received)
            .map_err(|violation| Lost::Violation(violation.0))?;
        self.token = Some(welcome.token);
        self.window = self.window.min(Duration::from_millis(welcome.window_ms));
        self.core.ledger_mut().set_peer_buffer(welcome.buffer);
        self.core.on_socket(pings);
        self.down_since = None;
        Ok(replay.into_iter().map(Kept::into_message).collect())
    }

    /// Numbers and keeps a data message the application sends; returns its wire form.
    pub(super) fn send<M: WsMessage>(&mut self, msg: M) -> M {
        let escaped = match msg.as_app() {
            Some(frame) => self.core.keep(&msg, frame),
            None => None,
        };
        escaped.map_or(msg, M::from_app)
    }

    /// Sorts a message from the server.
    pub(super) fn sort<M: WsMessage>(&mut self, msg: M) -> Sorted<M> {
        self.core.sort(msg)
    }

    /// The acknowledgement due on a connection whose heartbeat has sent `pings` pings.
    pub(super) fn ack<M: WsMessage>(&mut self, pings: u64) -> Option<M> {
        self.core.ack(pings).map(M::from_app)
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
        self.core.lost(reason)
    }
}

/// Tells the server it broke the session protocol (a Close with 1002), as far as the
/// connection takes it now: the session is lost either way.
pub(super) fn close_for_violation<S: Connection>(ws: &mut Heartbeat<S>, cx: &mut Context<'_>) {
    let (code, reason) = VIOLATION_CLOSE;
    let _ = Pin::new(&mut *ws).start_send(S::Message::close(code, reason));
    let _ = Pin::new(&mut *ws).poll_flush(cx);
}

/// The handshake on a fresh connection: `hello`, then the server's `welcome`, or its Close
/// (4410: the session is lost; 1013 in answer to a `hello new`: try again later; other codes
/// as any server close). Anything else first but pings, pongs and session messages this
/// version does not know breaks the protocol (PROTOCOL.md, section 3): data, a `hello`, an
/// `ack`, a malformed session message. The socket is then closed with 1002.
pub(super) async fn handshake<S: Connection>(
    ws: &mut Heartbeat<S>,
    hello: String,
) -> Result<Welcome, Failed> {
    let failed = |err: S::WsError| Failed::Retry(Reason::Failed(Arc::new(err)));
    ws.send(S::Message::from_app(AppMessage::Text(hello)))
        .await
        .map_err(failed)?;
    loop {
        let msg = match Pin::new(&mut *ws).next().await {
            Some(Ok(msg)) => msg,
            Some(Err(err)) => return Err(failed(err)),
            None => return Err(Reason::Ended.into()),
        };
        match msg.kind() {
            MessageKind::Close(frame) => {
                let (code, reason) = frame.unwrap_or((1005, ""));
                return Err(Reason::ServerClosed {
                    code,
                    reason: reason.to_owned(),
                }
                .into());
            }
            MessageKind::Data => {}
            MessageKind::Ping | MessageKind::Pong(_) => continue,
        }
        let violation = match msg.as_app().map(wire::incoming) {
            Some(Incoming::Session(Message::Welcome(welcome))) => return Ok(welcome),
            // A message of a later version: ignored (PROTOCOL.md, section 3).
            Some(Incoming::Session(Message::Unknown(_))) => continue,
            Some(Incoming::Session(Message::Hello(_))) => "a hello to a client",
            Some(Incoming::Session(Message::Ack(_))) => "an ack before the welcome",
            Some(Incoming::Session(Message::Finish(_))) => "a finish before the welcome",
            Some(Incoming::Session(Message::Malformed(_))) => "a malformed session message",
            Some(Incoming::Reserved) => "reserved binary frame",
            Some(Incoming::Data | Incoming::Escaped) | None => "data before the welcome",
        };
        std::future::poll_fn(|cx| {
            close_for_violation(ws, cx);
            std::task::Poll::Ready(())
        })
        .await;
        return Err(Failed::Violation(violation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_never_welcomed_takes_a_new_id_when_a_draining_server_refuses_it() {
        let mut session = ClientSession::new(Resume::new(), Protocol::Control);
        let first = session.hello();
        session.renew_if_unwelcomed();
        let second = session.hello();
        let sid = |hello: &str| hello.split(' ').nth(3).map(str::to_owned);
        assert!(
            first.starts_with("\u{10}hello 1 new ") && second.starts_with("\u{10}hello 1 new ")
        );
        assert_ne!(sid(&first), sid(&second));
        // Welcomed, it keeps its id: the server holds it.
        session.token = Some(Secret::random().unwrap());
        session.renew_if_unwelcomed();
        assert_eq!(sid(&session.hello()), sid(&second));
    }
}
