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
//! - **Bounded.** All the sessions of a server keep at most [`Resume::memory`] bytes
//!   together (512 MiB by default): as it fills, the sessions that hold the most wait, a
//!   parked one that needs more ends, and new sessions are refused with 1013 (try again
//!   later). At most [`Resume::max_parked`] sessions wait for their client at a time; a
//!   session whose socket goes down beyond that ends at once. Each holds at most its buffer
//!   plus one message of what its handler sent.
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

mod budget;
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
pub(crate) use ledger::{Kept, Ledger};
#[cfg(feature = "reconnect")]
pub(crate) use rules::{
    Ahead, Core, Finishing, Sorted, VIOLATION_CLOSE, close_ends_session, weight,
};
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
/// | [`buffer`](Self::buffer) | 100 KiB | bytes of sent, unacknowledged messages a side keeps before its sends wait |
/// | [`memory`](Self::memory) | 512 MiB | bytes all of a server's sessions keep, together |
/// | [`share_from`](Self::share_from) | 16 KiB | messages this large are kept by reference, not copied |
/// | [`max_parked`](Self::max_parked) | 10 000 | sessions a server keeps waiting at once |
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | how long a server waits for a new socket's `hello` |
///
/// ```
/// use std::time::Duration;
/// use ws_heartbeat::resume::Resume;
///
/// let resume = Resume::new().window(Duration::from_secs(60)).buffer(16 * 1024);
/// assert_eq!(resume.worst_case_parked_bytes(), 10_000 * (16 * 1024 + Resume::PER_SESSION));
/// // 10 000 × 100 KiB would be more than the memory budget: the budget bounds them.
/// assert_eq!(Resume::new().worst_case_parked_bytes(), 512 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Resume {
    window: Duration,
    buffer: usize,
    share_from: usize,
    memory: usize,
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
            buffer: 100 * 1024,
            share_from: 16 * 1024,
            memory: 512 << 20,
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
    /// The default, 100 KiB, is SignalR's order (100 000 bytes): a session sends at most a
    /// buffer per round trip while acknowledgements are on their way (1 MB/s at a 100 ms
    /// round trip, plenty for chat, dashboards and games), and a server of sessions whose
    /// clients stopped acknowledging holds 100 KiB for each (5 000 of them fill the default
    /// [memory budget](Self::memory)). Raise it for bulk transfers over long round trips.
    ///
    /// # Panics
    /// If `bytes` is zero.
    #[track_caller]
    pub const fn buffer(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "the session buffer needs room for one message");
        self.buffer = bytes;
        self
    }

    /// Messages of at least this many payload bytes are kept by reference until the peer
    /// acknowledges them, not copied, where the message type holds its payload as
    /// reference-counted bytes ([`WsMessage::shared`](crate::WsMessage::shared)); smaller
    /// ones are copied into the session's buffer. Both ends, and each counts a message's own
    /// bytes against the [buffer](Self::buffer) and the [memory budget](Self::memory) either
    /// way.
    ///
    /// | message type | kept by reference from `share_from` on | copied |
    /// |---|---|---|
    /// | `tungstenite::Message`, `axum::extract::ws::Message`, `actix_ws::Message`, `tokio_websockets::Message` | text and binary payloads (`Bytes`, or a UTF-8 wrapper of one) | smaller payloads |
    /// | your own [`WsMessage`](crate::WsMessage) without `shared` | nothing | every payload |
    ///
    /// What a reference keeps alive may be more than the message: a message read from a
    /// socket and sent on (an echo, a relay) is a slice of the buffer the WebSocket library
    /// read it into, and keeping it keeps that whole allocation until the acknowledgement
    /// (the library reads on into a new one). With tungstenite's default 128 KiB read buffer
    /// that is at most 8 times a 16 KiB message, and about its own size when consecutive
    /// messages are all kept (each allocation then holds kept messages only). The default,
    /// 16 KiB, bounds that factor at 8 against a copy's cost (callgrind counts a copy's
    /// `memcpy` at about one instruction a byte, BENCHMARKS.md, "Sessions"); `usize::MAX`
    /// copies every message, and the budget then counts exactly what sessions hold.
    pub const fn share_from(mut self, bytes: usize) -> Self {
        self.share_from = bytes;
        self
    }

    /// Bytes all the sessions of one [`Sessions`] keep, together:
    /// [`PER_SESSION`](Self::PER_SESSION) for each session held, plus the messages each
    /// keeps until its client acknowledges them. Server only.
    ///
    /// The default, 512 MiB, is an eighth of a 4 GiB server: without a bound, clients that
    /// open sessions and never acknowledge (or go away, parking them) pin a buffer each,
    /// and a few thousand of them take the server down. Set it to what the server can give
    /// its sessions besides its sockets and handlers.
    ///
    /// How it is shared: a session whose kept messages reach its room asks for room up to
    /// 8 KiB beyond them, and gives it back as its client acknowledges them. Room is granted
    /// only if the session then holds no more than what stays free, so the sessions that hold the most are the
    /// first to wait as the budget fills (with `n` of them growing, each stops at about
    /// `memory / (n + 1)`; no session takes more than half), and a newcomer always finds
    /// room; when a session gives back, the waiting that hold the least go first.
    ///
    /// - A live session without room waits: its handler's sends are pending (as with a full
    ///   buffer), until its client acknowledges or others give back.
    /// - A parked session whose handler's messages would need more ends, with
    ///   [`Reason::OverBudget`]: its client is away and cannot make room.
    /// - A new session is refused, closed with 1013 ("try again later",
    ///   [`AcceptError::Busy`]), unless its `PER_SESSION` and
    ///   8 KiB fit under that rule. The Rust client and the browser module try again after
    ///   their backoff.
    ///
    /// The total may pass the budget by each session's last message, as a buffer may.
    /// Messages read ahead for a handler waiting to send are bounded by each session's
    /// buffer, not by this.
    pub const fn memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
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

    /// The size from which messages are kept by reference ([`share_from`](Self::share_from)).
    pub const fn share_threshold(&self) -> usize {
        self.share_from
    }

    /// The memory budget in bytes ([`memory`](Self::memory)).
    pub const fn memory_limit(&self) -> usize {
        self.memory
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
    /// PER_SESSION)` or the [memory budget](Self::memory), whichever is less, plus, for
    /// each, the largest message its handler sent last (which may take the kept bytes past
    /// the buffer).
    pub const fn worst_case_parked_bytes(&self) -> usize {
        let parked = self
            .max_parked
            .saturating_mul(self.buffer.saturating_add(Self::PER_SESSION));
        if parked < self.memory {
            parked
        } else {
            self.memory
        }
    }
}
