//! Why a reconnecting client's connections end ([`Reason`]) and the errors that end the
//! client ([`Error`]).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Dead;
#[cfg(feature = "resume")]
use crate::resume::SessionLost;

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

// The cause of a variant that has one is its `source`, not part of its message, so that a
// report walking the chain (`anyhow`, `Dead::find`) shows each cause once.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Dead(_) => f.write_str("the heartbeat found the server dead"),
            Reason::ConnectFailed(_) => f.write_str("connect failed"),
            Reason::ConnectTimedOut(after) => write!(f, "connect timed out after {after:?}"),
            Reason::OnConnectFailed(_) => f.write_str("on-connect hook failed"),
            Reason::ServerClosed { code, reason } => {
                write!(f, "server closed with {code} {reason:?}")
            }
            Reason::Ended => f.write_str("connection ended without a Close frame"),
            Reason::Failed(_) => f.write_str("connection failed"),
        }
    }
}

/// A `Reason` is an error in its own right: [`Event`](super::Event)s carry it, and
/// [`Error::GaveUp`] has it as its [`source`](StdError::source).
impl StdError for Reason {
    /// The [`Dead`], or the error of the connect function, the hook or the connection.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Reason::Dead(dead) => Some(dead),
            Reason::ConnectFailed(err) | Reason::OnConnectFailed(err) | Reason::Failed(err) => {
                Some(&**err)
            }
            Reason::ConnectTimedOut(_) | Reason::ServerClosed { .. } | Reason::Ended => None,
        }
    }
}

/// Why an attempt failed.
pub(crate) enum Failed {
    /// Try again, or end, as the settings say.
    Retry(Reason),
    /// The server broke the session handshake (PROTOCOL.md, section 3); the socket was
    /// closed with 1002, and the session is lost.
    #[cfg(feature = "resume")]
    Violation(&'static str),
}

impl From<Reason> for Failed {
    fn from(reason: Reason) -> Self {
        Failed::Retry(reason)
    }
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
    /// The session ([`ReconnectBuilder::resume`](super::ReconnectBuilder::resume)) can no
    /// longer resume: the server refused it (4410), its window passed, or the server broke
    /// the protocol. Says how many of the application's messages were never acknowledged.
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    SessionLost(SessionLost),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::GaveUp { retries, .. } => {
                write!(f, "gave up reconnecting after {retries} retries")
            }
            Error::Rejected { code, reason } => {
                write!(
                    f,
                    "the server closed with {code} {reason:?}, marked final: not reconnecting"
                )
            }
            Error::BufferFull => f.write_str("send buffer full"),
            Error::Closed => f.write_str("the reconnecting client has ended"),
            #[cfg(feature = "resume")]
            Error::SessionLost(_) => f.write_str("the session ended"),
        }
    }
}

impl StdError for Error {
    /// For [`Error::GaveUp`], the [`Reason`] the last attempt or connection ended; its own
    /// `source` goes on down to the [`Dead`] or the I/O error, so [`Dead::find`] sees
    /// through it.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::GaveUp { last, .. } => Some(last),
            #[cfg(feature = "resume")]
            Error::SessionLost(lost) => Some(lost),
            Error::Rejected { .. } | Error::BufferFull | Error::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn the_source_chain_leads_to_the_cause_and_each_message_says_it_once() {
        let refused: SharedError = Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused));
        let err = Error::GaveUp {
            retries: 3,
            last: Reason::ConnectFailed(refused),
        };
        let mut chain = vec![err.to_string()];
        let mut cause = err.source();
        while let Some(next) = cause {
            chain.push(next.to_string());
            cause = next.source();
        }
        assert_eq!(
            chain,
            [
                "gave up reconnecting after 3 retries",
                "connect failed",
                &io::Error::from(io::ErrorKind::ConnectionRefused).to_string(),
            ]
        );
    }

    #[test]
    fn a_dead_server_is_found_through_the_client_error() {
        let dead = Dead::new(3, Duration::from_secs(30));
        let err = Error::GaveUp {
            retries: 1,
            last: Reason::Dead(dead),
        };
        assert_eq!(Dead::find(&err), Some(&dead));
        assert!(Error::Closed.source().is_none());
        assert!(Reason::Ended.source().is_none());
    }
}
