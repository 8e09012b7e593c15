//! Sessions that survive the network: every data message either side sends reaches the
//! other side's application exactly once and in order, across any number of reconnects
//! within a window, and the server's handler never notices the blip.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::TcpListener;
//! use ws_heartbeat::HeartbeatLayer;
//! use ws_heartbeat::resume::{Resume, Sessions};
//!
//! # async fn serve() -> std::io::Result<()> {
//! let sessions: Sessions = HeartbeatLayer::new()
//!     .interval(Duration::from_secs(10))
//!     .resume(Resume::new().window(Duration::from_secs(30)).buffer(1 << 20));
//! let listener = TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let sessions = sessions.clone();
//!     tokio::spawn(async move {
//!         let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
//!         match sessions.accept(ws).await {
//!             // A new session: a `Stream + Sink` of the socket's own messages.
//!             Ok(Some(mut session)) => {
//!                 while let Some(Ok(msg)) = session.next().await {
//!                     if msg.is_text() && session.send(msg).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             }
//!             Ok(None) => {}   // this socket resumed a session: its handler carries on
//!             Err(err) => eprintln!("refused: {err}"), // already closed with its code
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! The client: [`Reconnect`](crate::reconnect::Reconnect) with
//! [`ReconnectBuilder::resume`](crate::reconnect::ReconnectBuilder::resume), or the browser
//! module's `new HeartbeatSocket(url, { resume: true })`.
//!
//! # What holds
//!
//! - **Exactly once, in order, both ways.** Messages are numbered implicitly (the k-th data
//!   message of a direction is number k) and acknowledged by count; each side keeps what it
//!   sent until acknowledged and sends the rest again after a resume. Data travels
//!   unchanged, except the rare message that starts with the byte 0x10 or looks like a
//!   heartbeat, which gets two bytes in front (PROTOCOL.md).
//! - **Nothing dropped silently.** A side whose unacknowledged messages reach
//!   [`Resume::buffer`] bytes waits (`poll_ready` is pending). A session that can no longer
//!   resume ends with a [`Dead`](crate::Dead) whose source is a [`SessionLost`], saying how
//!   many of its messages were never acknowledged.
//! - **When a session ends.** A Close frame from either side ends it (except 1011, the
//!   heartbeat's own "keepalive timeout"); the heartbeat finding the peer dead, an I/O error
//!   or an end without a Close park it for [`Resume::window`]: meanwhile the handler's
//!   reads wait and its sends are kept (up to the buffer). A socket that resumes a session
//!   whose old socket is still up takes over; the old one is dropped.
//! - **Bounded.** At most [`Resume::max_parked`] sessions wait for their client at a time;
//!   a session whose socket goes down beyond that ends at once. Each holds at most its
//!   buffer plus one message of what its handler sent.
//!
//! - **Tokens.** 128-bit ids and tokens from the OS's random source, compared in constant
//!   time, rotated at every resume.
//! - **One handler call per session.** In front of a connection-handler service
//!   (`ServiceBuilder::new().layer(sessions)`, [`SessionService`]) and in the axum drop-in,
//!   the handler runs once per session with the [`Session`]; a call whose socket resumes a
//!   session, or is refused, completes at once with `Response::default()`.
//! - **The handle follows.** [`Session::handle`] shows the heartbeat of the socket the session
//!   is on, and an interval set through it holds on the sockets that follow.
//!
//! Limits. Sessions live in the memory of their server process: a restart loses them (clients
//! get a "session lost"), and behind a load balancer a client must come back to the same
//! process (PROTOCOL.md, "Behind a load balancer": route on a key the client puts in its URL,
//! nginx's `hash $arg_ws_session consistent;`). Control frames (pings the handler sends) are
//! not kept or replayed. A session that ends while its client is away is reported to the
//! client as lost (4410) rather than by its Close code. The Rust client's on-connect hook
//! cannot be combined with a session (its messages would land mid-stream).
//!
//! The design: ARCHITECTURE.md, "Sessions"; the wire: PROTOCOL.md; the cost per message:
//! BENCHMARKS.md, "Sessions".

mod ledger;
mod registry;
mod rules;
mod service;
mod session;
mod sessions;
mod token;
pub(crate) mod wire;

use std::time::Duration;

pub use crate::error::{Reason, SessionLost};
pub(crate) use ledger::Ledger;
#[cfg(feature = "reconnect")]
pub(crate) use rules::{Ahead, Core, Sorted, VIOLATION_CLOSE, close_ends_session, weight};
pub use service::SessionService;
pub use session::Session;
pub use sessions::{AcceptError, Sessions};
#[cfg(feature = "reconnect")]
pub(crate) use token::{Secret, SessionId};

use crate::config::MAX_DURATION;

/// The settings of sessions: [`HeartbeatLayer::resume`](crate::HeartbeatLayer::resume) on
/// the server, [`ReconnectBuilder::resume`](crate::reconnect::ReconnectBuilder::resume) on a
/// Rust client.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`window`](Self::window) | 30 s | how long a session whose socket went down waits for its client |
/// | [`buffer`](Self::buffer) | 1 MiB | bytes of sent, unacknowledged messages a side keeps before its sends wait |
/// | [`max_parked`](Self::max_parked) | 10 000 | sessions a server keeps waiting at once |
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | how long a server waits for a new socket's `hello` |
///
/// ```
/// use std::time::Duration;
/// use ws_heartbeat::resume::Resume;
///
/// let resume = Resume::new().window(Duration::from_secs(60)).buffer(256 * 1024);
/// assert_eq!(resume.worst_case_parked_bytes(), 10_000 * (256 * 1024 + Resume::PER_SESSION));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Resume {
    window: Duration,
    buffer: usize,
    max_parked: usize,
    handshake_timeout: Duration,
}

impl Default for Resume {
    fn default() -> Self {
        Self::new()
    }
}

impl Resume {
    /// Bytes a parked session holds besides its kept messages (measured in
    /// `tests/resume.rs`): the session's state, its registry entry and its timer.
    pub const PER_SESSION: usize = 1024;

    /// The defaults (see the table above).
    pub const fn new() -> Self {
        Self {
            window: Duration::from_secs(30),
            buffer: 1 << 20,
            max_parked: 10_000,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// How long a session whose socket went down waits for its client to come back. On a
    /// client: the longest it tries (the smaller of this and the server's, which the
    /// server announces).
    ///
    /// # Panics
    /// If `window` is zero or longer than 24 hours.
    #[track_caller]
    pub const fn window(mut self, window: Duration) -> Self {
        assert!(
            !window.is_zero() && window.as_secs() <= MAX_DURATION.as_secs(),
            "window must be in (0, 24 h]"
        );
        self.window = window;
        self
    }

    /// Bytes of sent and not yet acknowledged data messages a side keeps (each message
    /// counts its payload plus 8 bytes). When they reach it, sends wait for an
    /// acknowledgement. A message may take the total past it by its own size.
    ///
    /// # Panics
    /// If `bytes` is zero.
    #[track_caller]
    pub const fn buffer(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "the session buffer needs room for one message");
        self.buffer = bytes;
        self
    }

    /// How many sessions a server keeps waiting for their clients at once. A session whose
    /// socket goes down when that many wait ends at once, with [`Reason::TooManyParked`].
    pub const fn max_parked(mut self, sessions: usize) -> Self {
        self.max_parked = sessions;
        self
    }

    /// How long a server waits for a new socket's first frame, the `hello`.
    ///
    /// # Panics
    /// If `timeout` is zero or longer than 24 hours.
    #[track_caller]
    pub const fn handshake_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero() && timeout.as_secs() <= MAX_DURATION.as_secs(),
            "handshake timeout must be in (0, 24 h]"
        );
        self.handshake_timeout = timeout;
        self
    }

    /// The window ([`window`](Self::window)).
    pub const fn window_len(&self) -> Duration {
        self.window
    }

    /// The buffer in bytes ([`buffer`](Self::buffer)).
    pub const fn buffer_len(&self) -> usize {
        self.buffer
    }

    /// The bound on parked sessions ([`max_parked`](Self::max_parked)).
    pub const fn parked_limit(&self) -> usize {
        self.max_parked
    }

    /// The handshake timeout ([`handshake_timeout`](Self::handshake_timeout)).
    pub const fn handshake_limit(&self) -> Duration {
        self.handshake_timeout
    }

    /// The most memory parked sessions can hold at once: `max_parked × (buffer +
    /// PER_SESSION)`, plus, for each, the largest message its handler sent last (which may
    /// take the kept bytes past the buffer).
    pub const fn worst_case_parked_bytes(&self) -> usize {
        self.max_parked
            .saturating_mul(self.buffer.saturating_add(Self::PER_SESSION))
    }
}
