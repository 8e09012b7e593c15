//! [`Sessions`]: a server's sessions, the layer of session mode, and its `accept`, the
//! server half of the handshake (PROTOCOL.md, section 4).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::SinkExt;
use futures_util::StreamExt;

use super::registry::{Admission, Refusal, Registry};
use super::session::Session;
use super::wire::{self, Hello, Incoming, Message};
use super::{Ledger, Resume};
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::layer::{HeartbeatLayer, Settings};
use crate::message::{MessageKind, WsMessage};
use crate::protocol::AppMessage;

/// A server's sessions, and the layer of session mode: give every accepted WebSocket to
/// [`accept`](Self::accept), which starts a new session (and returns it for the handler) or
/// hands the socket to the session it resumes; or put it in front of a connection-handler
/// service (`ServiceBuilder::new().layer(sessions)`), which then runs the handler once per
/// session ([`SessionService`](super::SessionService)). Made by [`HeartbeatLayer::resume`] or [`Sessions::new`].
/// Cheap to clone (an `Arc`); clones share the registry. See the
/// [module documentation](super).
#[derive(Clone)]
pub struct Sessions {
    registry: Arc<Registry>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("resume", &self.registry.resume)
            .field("sessions", &self.len())
            .field("parked", &self.parked())
            .finish()
    }
}

impl HeartbeatLayer {
    /// Sessions that survive the network ([`crate::resume`]), with this layer's heartbeat
    /// on every socket: every data message reaches the other side exactly once and in order
    /// across reconnects within `resume`'s window. Set the heartbeat's settings first; they
    /// are read back from [`Sessions::settings`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_heartbeat::HeartbeatLayer;
    /// use ws_heartbeat::resume::Resume;
    ///
    /// let sessions = HeartbeatLayer::new()
    ///     .interval(Duration::from_secs(10))
    ///     .resume(Resume::new().window(Duration::from_secs(60)).buffer(256 * 1024));
    /// assert_eq!(sessions.resume().buffer_len(), 256 * 1024);
    /// assert_eq!(sessions.settings().interval(), Duration::from_secs(10));
    /// ```
    pub fn resume(self, resume: Resume) -> Sessions {
        Sessions::new(self, resume)
    }
}

/// Why [`Sessions::accept`] refused a socket; the socket was closed with the code each
/// variant names (PROTOCOL.md, section 4).
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError<E> {
    /// The first frame was not a session `hello` (a client that does not speak sessions),
    /// or none came within the handshake timeout: closed with 1008.
    NotASession,
    /// A malformed `hello`, or a version this server does not speak: closed with 4400.
    BadHandshake,
    /// `hello new` for a session id in use with another secret: closed with 4409.
    IdInUse,
    /// `hello resume` for a session this server does not hold, or with a token that is
    /// not valid: closed with 4410.
    SessionLost,
    /// `hello new`, and the sessions' [memory budget](super::Resume::memory) has no room
    /// for another: closed with 1013 (try again later).
    Busy,
    /// `hello new` while the layer drains ([`HeartbeatLayer::drain`]): closed with 1012
    /// (service restart), the client starts its session elsewhere. (A resume is let in, so
    /// that its session can finish.)
    Draining,
    /// The socket failed or ended during the handshake.
    Socket(Option<E>),
    /// The OS's random source failed: no token could be made. Closed with 1011.
    Random(std::io::Error),
}

impl<E> AcceptError<E> {
    /// The close code the socket was closed with, if any.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            AcceptError::NotASession => Some(1008),
            AcceptError::BadHandshake => Some(4400),
            AcceptError::IdInUse => Some(4409),
            AcceptError::SessionLost => Some(4410),
            AcceptError::Busy => Some(1013),
            AcceptError::Draining => Some(1012),
            AcceptError::Random(_) => Some(1011),
            AcceptError::Socket(_) => None,
        }
    }

    fn close_reason(&self) -> &'static str {
        match self {
            AcceptError::NotASession => "session handshake required",
            AcceptError::BadHandshake => "bad session handshake",
            AcceptError::IdInUse => "session id in use",
            AcceptError::SessionLost => "session lost",
            AcceptError::Busy => "try again later",
            AcceptError::Draining => "server restart",
            AcceptError::Random(_) => "no randomness",
            AcceptError::Socket(_) => "",
        }
    }
}

impl<E: fmt::Display> fmt::Display for AcceptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::Socket(Some(err)) => {
                write!(f, "the socket failed during the session handshake: {err}")
            }
            AcceptError::Socket(None) => {
                f.write_str("the socket ended during the session handshake")
            }
            AcceptError::Random(err) => write!(f, "the OS's random source failed: {err}"),
            other => write!(
                f,
                "session handshake refused: {} (closed with {})",
                other.close_reason(),
                other.close_code().unwrap_or(0)
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AcceptError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcceptError::Socket(Some(err)) => Some(err),
            AcceptError::Random(err) => Some(err),
            _ => None,
        }
    }
}

impl Sessions {
    /// The sessions of `layer`'s heartbeat with `resume`'s settings
    /// ([`HeartbeatLayer::resume`]).
    pub fn new(layer: HeartbeatLayer, resume: Resume) -> Self {
        Self {
            registry: Arc::new(Registry::new(layer.for_sessions(), resume)),
        }
    }

    /// The heartbeat's settings, read back ([`HeartbeatLayer::settings`]).
    pub fn settings(&self) -> Settings<'_> {
        self.registry.layer.settings()
    }

    /// The session settings ([`HeartbeatLayer::resume`]).
    pub fn resume(&self) -> Resume {
        self.registry.resume
    }

    /// Sessions held now: on a socket, parked, or closing (a client that resumes a closing
    /// session gets what it missed, then the Close). A session stops being held when it
    /// ends.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether no session can be resumed ([`len`](Self::len) is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions waiting for their client to come back.
    pub fn parked(&self) -> usize {
        self.registry.parked()
    }

    /// Bytes of the [memory budget](Resume::memory) the sessions hold now:
    /// [`Resume::PER_SESSION`] for each, plus the room each took for its kept messages.
    pub fn memory_used(&self) -> usize {
        self.registry.budget.used()
    }

    /// Runs the handshake on a new WebSocket. `Ok(Some(session))`: a new session, to hand
    /// to the handler (a `Stream + Sink` with the socket's own item and error).
    /// `Ok(None)`: the socket resumed a live session and was handed to it; its handler
    /// carries on. `Err`: no valid handshake; the socket was closed with the code
    /// [`AcceptError::close_code`] names.
    ///
    /// The socket heartbeats from the start, with the layer's settings.
    pub async fn accept<S, M, E>(&self, ws: S) -> Result<Option<Session<S>>, AcceptError<E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        // In a box: the handshake's state (timers, the socket's heartbeat) would otherwise
        // stay in the size of the caller's task for the whole session.
        Box::pin(self.handshake(ws)).await
    }

    async fn handshake<S, M, E>(&self, ws: S) -> Result<Option<Session<S>>, AcceptError<E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let registry = &self.registry;
        let mut hb = Box::pin(registry.layer.wrap(ws));
        let hello =
            match tokio::time::timeout(registry.resume.handshake_limit(), first_hello(hb.as_mut()))
                .await
            {
                Ok(Ok(hello)) => hello,
                Ok(Err(err)) => return refuse(hb, err).await,
                Err(_) => return refuse(hb, AcceptError::NotASession).await,
            };
        if matches!(hello, Hello::New { .. }) && registry.layer.group().plan().is_some() {
            return refuse(hb, AcceptError::Draining).await;
        }
        match registry.admit::<S>(hello, hb) {
            Ok(Admission::New {
                sid,
                token,
                peer_buffer,
                mailbox,
                share,
                ws: hb,
            }) => {
                let mut ledger = Ledger::of(&registry.resume, peer_buffer);
                let welcome = wire::welcome_text(
                    token,
                    ledger.told_in_handshake(),
                    registry.resume.buffer_len() as u64,
                    registry.resume.window_len().as_millis() as u64,
                );
                // The session first: if the welcome fails, or this future is dropped, its drop
                // takes it out of the registry and gives its share back.
                let mut session = Session::new(hb, ledger, registry.clone(), sid, mailbox, share);
                session
                    .greet(AppMessage::Text(welcome))
                    .await
                    .map_err(|err| AcceptError::Socket(Some(err)))?;
                Ok(Some(session))
            }
            Ok(Admission::Resumed) => Ok(None),
            Err((refusal, hb)) => {
                let err = match refusal {
                    Refusal::IdInUse => AcceptError::IdInUse,
                    Refusal::Lost => AcceptError::SessionLost,
                    Refusal::Random(err) => AcceptError::Random(err),
                    Refusal::Busy => AcceptError::Busy,
                };
                refuse(hb, err).await
            }
        }
    }
}

/// Reads the socket's first data frame and parses it as a `hello`.
async fn first_hello<S, M, E>(mut hb: Pin<&mut Heartbeat<S>>) -> Result<Hello, AcceptError<E>>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    loop {
        let msg = match hb.next().await {
            Some(Ok(msg)) => msg,
            Some(Err(err)) => return Err(AcceptError::Socket(Some(err))),
            None => return Err(AcceptError::Socket(None)),
        };
        match msg.kind() {
            MessageKind::Data => {}
            MessageKind::Close(_) => return Err(AcceptError::Socket(None)),
            MessageKind::Ping | MessageKind::Pong(_) => continue,
        }
        let Some(frame) = msg.as_app() else {
            return Err(AcceptError::NotASession);
        };
        return match wire::incoming(frame) {
            // Any version from 1 up: the client speaks ours too (the `welcome` says 1).
            Incoming::Session(Message::Hello(hello)) => Ok(hello),
            Incoming::Session(Message::Malformed(_)) => Err(AcceptError::BadHandshake),
            _ => Err(AcceptError::NotASession),
        };
    }
}

/// Closes a refused socket with the code that says why (or answers the client's own Close),
/// within the layer's close timeout.
async fn refuse<S, M, E, T>(
    mut hb: Pin<Box<Heartbeat<S>>>,
    err: AcceptError<E>,
) -> Result<T, AcceptError<E>>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    // A socket that ended with the client's Close still owes it the answer.
    let close = err
        .close_code()
        .map(|code| M::close(code, err.close_reason()));
    let timeout = hb.close_timeout();
    let _ = tokio::time::timeout(timeout, async {
        if let Some(close) = close {
            hb.send(close).await?;
        }
        hb.close().await
    })
    .await;
    Err(err)
}
