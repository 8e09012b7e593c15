//! [`Sessions`]: a server's registry of sessions and its `accept`, the server half of the
//! handshake (PROTOCOL.md, section 4).

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::task::ArcWake;

use super::session::Session;
use super::token::{Secret, Tokens};
use super::wire::{self, Hello, Incoming, Message};
use super::{Ledger, Resume};
use crate::config::Config;
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::Protocol;
use crate::wake::Halves;

/// A server's sessions: give every accepted WebSocket to [`accept`](Self::accept), which
/// starts a new session (and returns it for the handler) or hands the socket to the session
/// it resumes. Cheap to clone (an `Arc`); clones share the registry. See the
/// [module documentation](super).
#[derive(Clone)]
pub struct Sessions {
    registry: Arc<Registry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
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

/// What the sessions of one layer share: the settings, the live and parked sessions by id,
/// and the count of parked ones.
pub(crate) struct Registry {
    pub(crate) config: Config,
    pub(crate) protocol: Protocol,
    pub(crate) resume: Resume,
    map: Mutex<HashMap<Secret, Entry>>,
    parked: AtomicUsize,
}

/// One session as the registry knows it.
struct Entry {
    tokens: Tokens,
    /// The session's [`Mailbox`], its socket type erased (`Sessions` serves any).
    mailbox: Arc<dyn Any + Send + Sync>,
}

/// Where `accept` leaves a resuming socket for its session, which adopts it at its next
/// poll (only the session's owner may touch its sockets and accounts).
pub(crate) struct Mailbox<S> {
    /// Set when `slot` holds a socket: the one check a session makes per poll.
    pub(crate) full: AtomicBool,
    pub(crate) slot: Mutex<Option<Handover<S>>>,
    /// The handler's reading and writing halves (one task, or two after a `split`). The
    /// mailbox is itself a waker that wakes both, with which the session polls its socket
    /// and its window. (Here rather than in an `Arc` of their own: a parked session holds
    /// one allocation fewer.)
    pub(crate) halves: Halves,
}

impl<S: Send + 'static> ArcWake for Mailbox<S> {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.halves.wake_both();
    }
}

/// A socket that resumed a session.
pub(crate) struct Handover<S> {
    pub(crate) ws: Pin<Box<Heartbeat<S>>>,
    pub(crate) token: Secret,
    /// The client's received count, from its `hello`.
    pub(crate) peer_received: u64,
}

impl<S> Mailbox<S> {
    fn new() -> Self {
        Self {
            full: AtomicBool::new(false),
            slot: Mutex::new(None),
            halves: Halves::default(),
        }
    }

    fn deliver(&self, handover: Handover<S>) {
        // A socket still waiting is replaced: the newest resume wins.
        *lock(&self.slot) = Some(handover);
        self.full.store(true, Ordering::Release);
        self.halves.wake_both();
    }

    pub(crate) fn take(&self) -> Option<Handover<S>> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        self.full.store(false, Ordering::Relaxed);
        lock(&self.slot).take()
    }
}

/// A lock that a panic elsewhere does not poison for us: the data are counters and slots
/// that stay consistent at every step.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    /// The sessions of `layer`: its heartbeat for every socket, and its
    /// [`resume`](HeartbeatLayer::resume) settings (the defaults of [`Resume::new`] if it
    /// has none). Clones of one layer share one registry, so the service form and the axum
    /// drop-ins built from that layer resume the sessions this one accepts.
    pub fn new(layer: HeartbeatLayer) -> Self {
        let registry = layer.session_registry();
        Self { registry }
    }

    pub(crate) fn from_registry(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// Sessions that can be resumed now: on a socket or parked, not yet closed (a session
    /// whose Close has gone either way is no longer counted, while its handler finishes).
    pub fn len(&self) -> usize {
        lock(&self.registry.map).len()
    }

    /// Whether no session can be resumed ([`len`](Self::len) is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions waiting for their client to come back.
    pub fn parked(&self) -> usize {
        self.registry.parked.load(Ordering::Relaxed)
    }

    /// Runs the handshake on a new WebSocket. `Ok(Some(session))`: a new session, to hand
    /// to the handler (the same `Heartbeat<S>` the layer makes, with the socket's own item
    /// and error). `Ok(None)`: the socket resumed a live session and was handed to it; its
    /// handler carries on. `Err`: no valid handshake; the socket was closed with the code
    /// [`AcceptError::close_code`] names.
    ///
    /// The socket heartbeats from the start (the layer's settings). Background mode
    /// ([`HeartbeatLayer::background`]) does not apply to sessions.
    pub async fn accept<S, M, E>(&self, ws: S) -> Result<Option<Heartbeat<S>>, AcceptError<E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        // In a box: the handshake's state (timers, the socket's heartbeat) would otherwise
        // stay in the size of the caller's task for the whole session.
        Box::pin(self.handshake(ws)).await
    }

    async fn handshake<S, M, E>(&self, ws: S) -> Result<Option<Heartbeat<S>>, AcceptError<E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let registry = &self.registry;
        let mut hb = Box::pin(Heartbeat::for_session(
            ws,
            registry.config,
            registry.protocol.clone(),
        ));
        let hello = match tokio::time::timeout(
            self.registry.resume.handshake_timeout,
            first_hello(hb.as_mut()),
        )
        .await
        {
            Ok(Ok(hello)) => hello,
            Ok(Err(err)) => return refuse(hb, err).await,
            Err(_) => return refuse(hb, AcceptError::NotASession).await,
        };
        match self.registry.admit::<S>(hello).map_err(AcceptError::widen) {
            Ok(Admission::New {
                sid,
                token,
                peer_buffer,
            }) => {
                let mut ledger = Ledger::new(self.registry.resume.buffer, peer_buffer);
                let welcome = wire::welcome_text(
                    token,
                    ledger.told_in_handshake(),
                    self.registry.resume.buffer as u64,
                    self.registry.resume.window.as_millis() as u64,
                );
                if let Err(err) = send(
                    hb.as_mut(),
                    M::from_app(crate::protocol::AppMessage::Text(welcome)),
                )
                .await
                {
                    self.registry.forget(&sid);
                    return Err(AcceptError::Socket(Some(err)));
                }
                let mailbox = self
                    .registry
                    .mailbox::<S>(&sid)
                    .expect("registered by admit");
                let shared = hb.shared();
                let session = Session::new(hb, ledger, self.registry.clone(), sid, mailbox);
                Ok(Some(Heartbeat::from_session(
                    session,
                    registry.config,
                    registry.protocol.clone(),
                    shared,
                )))
            }
            Ok(Admission::Resume {
                mailbox,
                token,
                peer_received,
            }) => {
                mailbox.deliver(Handover {
                    ws: hb,
                    token,
                    peer_received,
                });
                Ok(None)
            }
            Err(err) => refuse(hb, err).await,
        }
    }
}

enum Admission<S> {
    New {
        sid: Secret,
        token: Secret,
        peer_buffer: u64,
    },
    Resume {
        mailbox: Arc<Mailbox<S>>,
        token: Secret,
        peer_received: u64,
    },
}

impl Registry {
    pub(crate) fn new(config: Config, protocol: Protocol, resume: Resume) -> Self {
        Self {
            config,
            protocol,
            resume,
            map: Mutex::new(HashMap::new()),
            parked: AtomicUsize::new(0),
        }
    }

    /// The registry's decision on a `hello`, under its lock, so that two sockets racing
    /// for one session are ordered.
    fn admit<S: Send + 'static>(
        &self,
        hello: Hello,
    ) -> Result<Admission<S>, AcceptError<std::convert::Infallible>> {
        let mut map = lock(&self.map);
        let (sid, presented, peer_received, new) = match hello {
            Hello::New {
                sid,
                secret,
                buffer,
                ..
            } => {
                if let std::collections::hash_map::Entry::Vacant(vacant) = map.entry(sid) {
                    let tokens = Tokens::new(secret).map_err(AcceptError::Random)?;
                    let token = tokens.issued();
                    let mailbox: Arc<dyn Any + Send + Sync> = Arc::new(Mailbox::<S>::new());
                    vacant.insert(Entry { tokens, mailbox });
                    return Ok(Admission::New {
                        sid,
                        token,
                        peer_buffer: buffer,
                    });
                }
                // The same start again (its welcome was lost): a resume from nothing.
                (sid, secret, 0, true)
            }
            Hello::Resume {
                sid,
                token,
                received,
                ..
            } => (sid, token, received, false),
        };
        let Some(entry) = map.get_mut(&sid) else {
            return Err(AcceptError::SessionLost);
        };
        if !entry.tokens.accepts(&presented) {
            return Err(if new {
                AcceptError::IdInUse
            } else {
                AcceptError::SessionLost
            });
        }
        let Ok(mailbox) = entry.mailbox.clone().downcast::<Mailbox<S>>() else {
            // Another socket type than the session's: it cannot take over.
            return Err(AcceptError::SessionLost);
        };
        let token = entry
            .tokens
            .rotate(presented)
            .map_err(AcceptError::Random)?;
        Ok(Admission::Resume {
            mailbox,
            token,
            peer_received,
        })
    }

    fn mailbox<S: Send + 'static>(&self, sid: &Secret) -> Option<Arc<Mailbox<S>>> {
        lock(&self.map).get(sid)?.mailbox.clone().downcast().ok()
    }

    /// The session ended: its id and tokens stop being valid.
    pub(crate) fn forget(&self, sid: &Secret) {
        let mut map = lock(&self.map);
        map.remove(sid);
        // After a peak the table gives its room back (amortised: only once it is a quarter
        // full, to half).
        if map.capacity() > 64 && map.len() * 4 < map.capacity() {
            let keep = map.len() * 2;
            map.shrink_to(keep);
        }
    }

    /// A session's socket went down: `false` if `max_parked` sessions wait already.
    pub(crate) fn try_park(&self) -> bool {
        self.parked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.resume.max_parked).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn unpark(&self) {
        self.parked.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads the socket's first data frame and parses it as a `hello`.
async fn first_hello<S, M, E>(mut hb: Pin<&mut Heartbeat<S>>) -> Result<Hello, AcceptError<E>>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    loop {
        let msg = match std::future::poll_fn(|cx| hb.as_mut().poll_next_msg(cx)).await {
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

/// Closes a refused socket with the code that says why, within the layer's close timeout.
async fn refuse<S, M, E, T>(
    mut hb: Pin<Box<Heartbeat<S>>>,
    err: AcceptError<E>,
) -> Result<T, AcceptError<E>>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    if let Some(code) = err.close_code() {
        let close = M::close(code, err.close_reason());
        let timeout = hb.close_timeout();
        let _ = tokio::time::timeout(timeout, async {
            send(hb.as_mut(), close).await?;
            std::future::poll_fn(|cx| hb.as_mut().poll_close_msg(cx)).await
        })
        .await;
    }
    Err(err)
}

/// Sends one message through a socket's heartbeat and flushes it.
pub(crate) async fn send<S, M, E>(mut hb: Pin<&mut Heartbeat<S>>, msg: M) -> Result<(), E>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    std::future::poll_fn(|cx| hb.as_mut().poll_ready_msg(cx)).await?;
    hb.as_mut().start_send_msg(msg)?;
    std::future::poll_fn(|cx| hb.as_mut().poll_flush_msg(cx)).await
}

impl<E> AcceptError<E> {
    fn widen<F>(self) -> AcceptError<F> {
        match self {
            AcceptError::NotASession => AcceptError::NotASession,
            AcceptError::BadHandshake => AcceptError::BadHandshake,
            AcceptError::IdInUse => AcceptError::IdInUse,
            AcceptError::SessionLost => AcceptError::SessionLost,
            AcceptError::Random(err) => AcceptError::Random(err),
            AcceptError::Socket(_) => AcceptError::Socket(None),
        }
    }
}
