//! [`Dead`]: the error a heartbeat ends a connection with, and its conversions into the
//! error types of the WebSocket libraries it wraps; with sessions, [`SessionLost`], the end
//! of a session that can no longer resume, which travels inside a `Dead`.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

/// The peer stopped answering: `missed` pings in a row went unanswered.
///
/// A [`Heartbeat`](crate::Heartbeat) yields it once, wrapped in the inner stream's own error
/// type (an [`io::Error`] of kind [`TimedOut`](io::ErrorKind::TimedOut) inside
/// `tungstenite::Error::Io`, `tokio_websockets::Error::Io` or `actix_ws::ProtocolError::Io`;
/// inside `axum::Error`), so handlers keep their error type. [`Dead::find`] recognises it
/// in any such error.
///
/// ```
/// use std::time::Duration;
/// use ws_heartbeat::Dead;
///
/// # fn handle(err: tungstenite::Error) {
/// if let Some(dead) = Dead::find(&err) {
///     eprintln!("peer gone: {} pings missed, silent for {:?}", dead.missed(), dead.silent_for());
/// }
/// # }
/// ```
///
/// A session ([`crate::resume`]) that can no longer resume ends with a `Dead` too, carrying
/// the [`SessionLost`](crate::resume::SessionLost) as its [`source`](Error::source):
/// [`SessionLost::find`](crate::resume::SessionLost::find) recognises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dead {
    missed: u32,
    silent_for: Duration,
    #[cfg(feature = "resume")]
    lost: Option<SessionLost>,
}

impl Dead {
    pub(crate) const fn new(missed: u32, silent_for: Duration) -> Self {
        Self {
            missed,
            silent_for,
            #[cfg(feature = "resume")]
            lost: None,
        }
    }

    /// The end of a session that can no longer resume.
    #[cfg(feature = "resume")]
    pub(crate) const fn session_lost(lost: SessionLost) -> Self {
        Self {
            missed: 0,
            silent_for: Duration::ZERO,
            lost: Some(lost),
        }
    }

    /// Why the session ended, if this is the end of a session rather than of one socket.
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    pub const fn lost(&self) -> Option<&SessionLost> {
        self.lost.as_ref()
    }

    /// How many pings in a row went unanswered (the configured `max_missed`).
    pub const fn missed(&self) -> u32 {
        self.missed
    }

    /// How long the peer had been silent when it was declared dead.
    ///
    /// Measured from the tick at which the peer was last heard, so the true silence is at
    /// least this long and less than one interval longer.
    pub const fn silent_for(&self) -> Duration {
        self.silent_for
    }

    /// Finds a `Dead` in `err`, in the error it wraps, or anywhere down its
    /// [`source`](Error::source) chain, including inside an [`io::Error`] (whose `source`
    /// skips the error it carries).
    ///
    /// ```
    /// use std::io;
    /// use ws_heartbeat::Dead;
    ///
    /// let other = io::Error::new(io::ErrorKind::TimedOut, "slow disk");
    /// assert!(Dead::find(&other).is_none());
    /// ```
    pub fn find<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a Dead> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(dead) = err.downcast_ref::<Dead>() {
                return Some(dead);
            }
            if let Some(carried) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
                if let Some(dead) = Dead::find(carried) {
                    return Some(dead);
                }
            }
            current = err.source();
        }
        None
    }
}

impl fmt::Display for Dead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "resume")]
        if self.lost.is_some() {
            return f.write_str("websocket session ended");
        }
        write!(
            f,
            "websocket peer is dead: {} pings unanswered, silent for at least {:?}",
            self.missed, self.silent_for
        )
    }
}

impl Error for Dead {
    /// The [`SessionLost`](crate::resume::SessionLost) of a session's end.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        #[cfg(feature = "resume")]
        if let Some(lost) = &self.lost {
            return Some(lost);
        }
        None
    }
}

impl From<Dead> for io::Error {
    fn from(dead: Dead) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, dead)
    }
}

#[cfg(feature = "tungstenite")]
impl From<Dead> for tungstenite::Error {
    fn from(dead: Dead) -> Self {
        tungstenite::Error::Io(dead.into())
    }
}

#[cfg(feature = "tokio-websockets")]
impl From<Dead> for tokio_websockets::Error {
    fn from(dead: Dead) -> Self {
        tokio_websockets::Error::Io(dead.into())
    }
}

/// Why a session ended without a Close: it can no longer resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg(feature = "resume")]
pub enum Reason {
    /// Its socket went down and no client came back within the window.
    WindowPassed,
    /// The server refused the resume (close 4410): it does not hold the session (it ended,
    /// its window passed, the server restarted) or the token was not valid.
    Refused,
    /// Its socket went down while the server already kept `max_parked` sessions waiting.
    TooManyParked,
    /// While its client was away, its handler's messages would have taken the sessions'
    /// memory past their budget ([`Resume::memory`](crate::resume::Resume::memory)).
    OverBudget,
    /// The peer broke the session protocol (PROTOCOL.md); the socket was closed with 1002.
    Violation(&'static str),
    /// The session had already ended (a Close from either side); nothing more can be sent.
    Closed,
    /// The server drained ([`HeartbeatLayer::drain`](crate::HeartbeatLayer::drain)) and the
    /// session did not finish by the end of the drain's window and close timeout (PROTOCOL.md,
    /// section 8): its client was away, or did not answer the `finish`.
    Drained,
}

#[cfg(feature = "resume")]
impl Reason {
    /// The `reason` label of the metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::WindowPassed => "window_passed",
            Reason::Refused => "refused",
            Reason::TooManyParked => "too_many_parked",
            Reason::OverBudget => "over_budget",
            Reason::Violation(_) => "violation",
            Reason::Closed => "closed",
            Reason::Drained => "drained",
        }
    }
}

/// A session that can no longer resume: why, and how many of this side's data messages
/// were never acknowledged by the other (they may or may not have arrived).
///
/// It reaches a server's handler as the [`source`](Error::source) of a
/// [`Dead`](crate::Dead) inside the socket's own error type, and a Rust client as
/// [`reconnect::Error::SessionLost`](crate::reconnect::Error::SessionLost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(feature = "resume")]
pub struct SessionLost {
    pub(crate) reason: Reason,
    pub(crate) unconfirmed: u64,
}

#[cfg(feature = "resume")]
impl SessionLost {
    /// Why.
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// This side's data messages never acknowledged.
    pub const fn unconfirmed(&self) -> u64 {
        self.unconfirmed
    }

    /// Finds a `SessionLost` in `err` or down its source chain (inside a
    /// [`Dead`](crate::Dead), inside an `io::Error`), like [`Dead::find`](crate::Dead::find).
    pub fn find<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a SessionLost> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(lost) = err.downcast_ref::<SessionLost>() {
                return Some(lost);
            }
            if let Some(lost) = Dead::find(err).and_then(Dead::lost) {
                return Some(lost);
            }
            current = err.source();
        }
        None
    }
}

#[cfg(feature = "resume")]
impl fmt::Display for SessionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            Reason::WindowPassed => "the peer did not come back within the window",
            Reason::Refused => "the server no longer holds the session",
            Reason::TooManyParked => "too many sessions were waiting for their clients",
            Reason::OverBudget => {
                "the sessions' memory budget was reached while its client was away"
            }
            Reason::Violation(what) => what,
            Reason::Closed => "the session was closed",
            Reason::Drained => "the server drained before the session could finish",
        };
        write!(
            f,
            "session lost: {why}; {} sent messages unconfirmed",
            self.unconfirmed
        )
    }
}

#[cfg(feature = "resume")]
impl Error for SessionLost {}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Dead = Dead::new(3, Duration::from_secs(30));

    #[test]
    fn found_directly() {
        assert_eq!(Dead::find(&DEAD), Some(&DEAD));
    }

    #[test]
    fn found_inside_io_error_with_kind_timed_out() {
        let err: io::Error = DEAD.into();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Dead::find(&err), Some(&DEAD));
    }

    #[cfg(feature = "tungstenite")]
    #[test]
    fn found_inside_tungstenite_error() {
        let err: tungstenite::Error = DEAD.into();
        assert!(matches!(&err, tungstenite::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(Dead::find(&err), Some(&DEAD));
    }

    #[cfg(feature = "tokio-websockets")]
    #[test]
    fn found_inside_tokio_websockets_error() {
        let err: tokio_websockets::Error = DEAD.into();
        assert!(
            matches!(&err, tokio_websockets::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut)
        );
        assert_eq!(Dead::find(&err), Some(&DEAD));
    }

    #[derive(Debug)]
    struct Wrapper(io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn found_down_a_source_chain() {
        let err = Wrapper(DEAD.into());
        assert_eq!(Dead::find(&err), Some(&DEAD));
    }

    #[test]
    fn not_found_in_other_errors() {
        let err = Wrapper(io::Error::new(io::ErrorKind::TimedOut, "other"));
        assert_eq!(Dead::find(&err), None);
        assert_eq!(Dead::find(&io::Error::from(io::ErrorKind::TimedOut)), None);
    }

    #[test]
    fn message_names_the_figures() {
        assert_eq!(
            DEAD.to_string(),
            "websocket peer is dead: 3 pings unanswered, silent for at least 30s"
        );
    }
}
