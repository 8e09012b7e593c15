//! What a reconnecting client reports as it goes: its events.

use std::time::Duration;

use super::Reason;
#[cfg(feature = "resume")]
use crate::resume::SessionLost;

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
    /// The session ([`ReconnectBuilder::resume`](super::ReconnectBuilder::resume)) can no
    /// longer resume: the client ends with [`Error::SessionLost`](super::Error::SessionLost).
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    SessionLost(SessionLost),
    /// The server finished the session in a drain (PROTOCOL.md, section 8): everything
    /// either side sent on it was delivered once, and the next connection starts a new
    /// session, carrying what the application sent since, in order. The server that ran the
    /// old one is going away with all it held for it: state kept there (subscriptions, a
    /// login) must be set up again, as after a fresh start.
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    NewSession,
    /// The client has ended: closed by the application, or by a server close marked final.
    Closed {
        /// `None` when the application closed; the server's close code and reason otherwise.
        by_server: Option<(u16, String)>,
        /// Buffered messages that were never handed to a connection; with a session
        /// ([`ReconnectBuilder::resume`](super::ReconnectBuilder::resume)), the messages the
        /// server never acknowledged, sent or not. (A session closed while no connection is
        /// up cannot tell the server: it waits for the client until its window passes.)
        unsent: usize,
    },
}
