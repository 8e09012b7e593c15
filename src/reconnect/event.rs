//! What a reconnecting client reports: its events, the reasons connections end, and the
//! errors that end it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Dead;

/// A shareable error from a connection or a connect attempt.
pub type SharedError = Arc<dyn StdError + Send + Sync>;

/// Why a connection (or an attempt at one) ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Reason {
    /// The heartbeat found the server dead.
    Dead(Dead),
    /// The connect function failed.
    ConnectFailed(SharedError),
    /// The connect function did not finish within the connect timeout.
    ConnectTimedOut(Duration),
    /// The on-connect hook failed.
    OnConnectFailed(SharedError),
    /// The server closed with a Close frame (`code` 1005 if it gave none).
    ServerClosed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The connection ended without a Close frame (abnormal closure, 1006).
    Ended,
    /// The connection failed with an error.
    Failed(SharedError),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Dead(dead) => dead.fmt(f),
            Reason::ConnectFailed(err) => write!(f, "connect failed: {err}"),
            Reason::ConnectTimedOut(after) => write!(f, "connect timed out after {after:?}"),
            Reason::OnConnectFailed(err) => write!(f, "on-connect hook failed: {err}"),
            Reason::ServerClosed { code, reason } => {
                write!(f, "server closed with {code} {reason:?}")
            }
            Reason::Ended => f.write_str("connection ended without a Close frame"),
            Reason::Failed(err) => write!(f, "connection failed: {err}"),
        }
    }
}

/// What happens to a reconnecting client, in this order:
///
/// `Connecting` → `Connected` → `Disconnected` → `Reconnecting` → `Connecting` → … and at
/// the end either `GaveUp` or `Closed`. A failed attempt goes from `Connecting` straight to
/// `Reconnecting` (or `GaveUp`).
///
/// `retry` counts reconnection attempts in a row: 0 for the first connection, then 1, 2, …
/// until a connection stays up for the stability window, after which it starts again at 1.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// An attempt starts.
    Connecting {
        /// Which retry this is (0: the first connection).
        retry: u32,
    },
    /// The attempt succeeded and the on-connect hook ran: messages flow.
    Connected {
        /// Which retry this was.
        retry: u32,
    },
    /// A connection ended.
    Disconnected {
        /// Why.
        reason: Reason,
        /// Messages handed to the connection after the server was last heard from: they may
        /// or may not have arrived. (Messages still waiting in the client's buffer are not
        /// lost: they go out on the next connection.)
        unconfirmed: u64,
    },
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// Which retry the next attempt is (1 or more).
        retry: u32,
        /// The backoff delay drawn for it.
        delay: Duration,
        /// Why the last attempt or connection ended.
        after: Reason,
    },
    /// The maximum number of retries was reached: the client has ended.
    GaveUp {
        /// Retries made.
        retries: u32,
        /// Why the last one failed.
        last: Reason,
    },
    /// The client has ended: closed by the application, or by a server close marked final.
    Closed {
        /// `None` when the application closed; the server's close code and reason otherwise.
        by_server: Option<(u16, String)>,
        /// Buffered messages that were never handed to a connection.
        unsent: usize,
    },
}

/// How a reconnecting client ends, or why a send was refused.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The maximum number of retries was reached.
    GaveUp {
        /// Retries made.
        retries: u32,
        /// Why the last one failed.
        last: Reason,
    },
    /// The server closed with a code or reason the configuration marks as final (a kick).
    Rejected {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The send buffer is full and the client is configured to fail rather than wait. The
    /// message was not taken; the client goes on.
    BufferFull,
    /// The client has ended; nothing more can be sent.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::GaveUp { retries, last } => {
                write!(
                    f,
                    "gave up reconnecting after {retries} retries; the last failed: {last}"
                )
            }
            Error::Rejected { code, reason } => {
                write!(
                    f,
                    "the server closed with {code} {reason:?}, marked final: not reconnecting"
                )
            }
            Error::BufferFull => f.write_str("send buffer full"),
            Error::Closed => f.write_str("the reconnecting client has ended"),
        }
    }
}

impl StdError for Error {}
