//! [`ReconnectBuilder`]: the settings of a [`Reconnect`], checked as they are set.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_core::future::BoxFuture;

use super::{Backoff, Connection, Event, Reconnect, SharedError};
use crate::config::MAX_DURATION;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
#[cfg(feature = "resume")]
use crate::resume::Resume;

/// Default time one call of the connect function may take.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection must stay up for the retry count to start again.
const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(30);
/// Default capacity of the send buffer.
const DEFAULT_BUFFER: usize = 256;

/// What `poll_ready` does when the send buffer is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room (backpressure). The default.
    #[default]
    Wait,
    /// Fail with [`Error::BufferFull`](super::Error::BufferFull), without taking the
    /// message.
    Fail,
}

pub(super) type Connect<S> = Box<dyn FnMut() -> BoxFuture<'static, Result<S, SharedError>> + Send>;
pub(super) type OnConnect<S> = Arc<
    dyn Fn(Heartbeat<S>) -> BoxFuture<'static, Result<Heartbeat<S>, SharedError>> + Send + Sync,
>;
pub(super) type IsFinal = Arc<dyn Fn(u16, &str) -> bool + Send + Sync>;
pub(super) type OnEvent = Arc<dyn Fn(&Event) + Send + Sync>;

/// The settings of a [`Reconnect`]; made by [`Reconnect::builder`].
#[must_use = "call .build() to get the client"]
pub struct ReconnectBuilder<S> {
    pub(super) connect: Connect<S>,
    pub(super) heartbeat: HeartbeatLayer,
    pub(super) backoff: Backoff,
    pub(super) connect_timeout: Duration,
    pub(super) stable_after: Duration,
    pub(super) buffer: usize,
    pub(super) overflow: Overflow,
    pub(super) is_final: IsFinal,
    pub(super) on_connect: Option<OnConnect<S>>,
    pub(super) on_event: Option<OnEvent>,
    #[cfg(feature = "resume")]
    pub(super) resume: Option<Resume>,
}

impl<S: Connection> ReconnectBuilder<S> {
    /// The heartbeat every connection gets (default: [`HeartbeatLayer::new`]).
    pub fn heartbeat(mut self, layer: HeartbeatLayer) -> Self {
        self.heartbeat = layer;
        self
    }

    /// The delays between attempts, and when to give up.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one call of the connect function may take (default 10 s): an attempt that
    /// takes longer fails with [`Reason::ConnectTimedOut`](super::Reason::ConnectTimedOut).
    ///
    /// # Panics
    /// If `timeout` is zero (every attempt would fail) or longer than 24 hours.
    #[track_caller]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = checked_connect_timeout(timeout);
        self
    }

    /// How long a connection must stay up for the retry count to start again (default 30 s),
    /// so that a server that accepts connections and drops them at once is backed off from.
    /// Zero counts every connection as stable: only failed attempts back off. A server's
    /// Close 1012 (service restart) or 1001 (going away) restarts the count whatever the
    /// connection's age (the next attempt within the initial delay, so a draining server's
    /// clients come back spread over it); a Close 1013 (try again later) grows it, as a
    /// failed attempt does.
    ///
    /// # Panics
    /// If `window` is longer than 24 hours.
    #[track_caller]
    pub fn stable_after(mut self, window: Duration) -> Self {
        self.stable_after = checked_stable_after(window);
        self
    }

    /// The send buffer: how many messages may wait (default 256), and what a send does when
    /// it is full (default: wait).
    ///
    /// # Panics
    /// If `capacity` is zero.
    #[track_caller]
    pub fn buffer(mut self, capacity: usize, overflow: Overflow) -> Self {
        assert!(capacity > 0, "the send buffer needs room for one message");
        self.buffer = capacity;
        self.overflow = overflow;
        self
    }

    /// Which server closes end the client instead of reconnecting: `is_final(code, reason)`.
    /// The default marks 1000 (normal closure), 1008 (policy violation) and 4000-4999 final.
    ///
    /// ```
    /// # fn f(b: ws_heartbeat::reconnect::ReconnectBuilder<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>) {
    /// // Only an explicit kick is final; a normal closure reconnects too.
    /// let b = b.final_close(|code, reason| code == 4001 || reason == "kicked");
    /// # }
    /// ```
    pub fn final_close(
        mut self,
        is_final: impl Fn(u16, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_final = Arc::new(is_final);
        self
    }

    /// Code to run after each successful connect, before buffered messages flow
    /// (authenticate, re-subscribe). It gets the connection and hands it back; an error is a
    /// failed attempt.
    pub fn on_connect<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: Fn(Heartbeat<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Heartbeat<S>, E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.on_connect = Some(Arc::new(move |ws| {
            let fut = hook(ws);
            Box::pin(async move { fut.await.map_err(shared) })
        }));
        self
    }

    /// A callback for every [`Event`], in order. It runs inside the client's polls: keep it
    /// short (forward to a channel for anything slow).
    pub fn on_event(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(callback));
        self
    }

    /// A session across connections ([`crate::resume`]): every message reaches the server's
    /// handler exactly once and in order, and the server's reach the application the same
    /// way, across reconnects within the window (the smaller of `resume`'s and the
    /// server's). Each connection starts with the session handshake (PROTOCOL.md); the
    /// on-connect hook cannot be combined with it (what the application sends first reaches
    /// the handler first, once: a session needs no per-connection setup).
    ///
    /// With a session, sends wait when [`Resume::buffer`] bytes are unacknowledged (the
    /// message-count buffer of [`buffer`](Self::buffer) does not apply), every server
    /// Close but 1011 ends the client ([`Error::Rejected`](super::Error::Rejected)), and a
    /// session the server refuses (4410) or whose window passes ends it with
    /// [`Error::SessionLost`](super::Error::SessionLost). A `hello` answered with 1013 (the
    /// server's sessions are at their [memory budget](Resume::memory)) is tried again after
    /// the backoff.
    ///
    /// ```no_run
    /// use ws_heartbeat::reconnect::Reconnect;
    /// use ws_heartbeat::resume::Resume;
    ///
    /// // One key per client, in the URL: a load balancer hashing on it sends every
    /// // reconnect to the server that holds the session.
    /// let route = format!("{:032x}", rand_key());
    /// let client = Reconnect::builder(move || {
    ///     let url = format!("ws://127.0.0.1:3000/?ws_session={route}");
    ///     async move { tokio_tungstenite::connect_async(url).await.map(|(ws, _)| ws) }
    /// })
    /// .resume(Resume::new())
    /// .build();
    /// # fn rand_key() -> u128 { 7 }
    /// ```
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    pub fn resume(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// The client. Nothing happens until it is first polled.
    ///
    /// # Panics
    /// If both [`resume`](Self::resume) and [`on_connect`](Self::on_connect) are set, or the
    /// OS's random source fails to make a session's ids.
    pub fn build(self) -> Reconnect<S> {
        #[cfg(feature = "resume")]
        assert!(
            self.resume.is_none() || self.on_connect.is_none(),
            "a session (resume) cannot be combined with an on-connect hook"
        );
        Reconnect::new(self)
    }
}

pub(super) fn shared(err: impl Into<Box<dyn StdError + Send + Sync>>) -> SharedError {
    Arc::from(err.into())
}

impl<S: Connection> Reconnect<S> {
    /// Starts the settings of a client that connects by calling `connect`.
    pub fn builder<F, Fut, E>(mut connect: F) -> ReconnectBuilder<S>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        ReconnectBuilder {
            connect: Box::new(move || {
                let fut = connect();
                Box::pin(async move { fut.await.map_err(shared) })
            }),
            heartbeat: HeartbeatLayer::new(),
            backoff: Backoff::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stable_after: DEFAULT_STABLE_AFTER,
            buffer: DEFAULT_BUFFER,
            overflow: Overflow::Wait,
            is_final: Arc::new(|code, _| matches!(code, 1000 | 1008 | 4000..=4999)),
            on_connect: None,
            on_event: None,
            #[cfg(feature = "resume")]
            resume: None,
        }
    }
}

/// Checks a connect timeout like the heartbeat's own durations: not zero, at most 24 hours.
#[track_caller]
fn checked_connect_timeout(timeout: Duration) -> Duration {
    assert!(
        !timeout.is_zero(),
        "connect timeout must be greater than zero"
    );
    assert!(
        timeout <= MAX_DURATION,
        "connect timeout must be at most 24 hours"
    );
    timeout
}

/// Checks a stability window (zero is allowed: every connection counts as stable).
#[track_caller]
fn checked_stable_after(window: Duration) -> Duration {
    assert!(
        window <= MAX_DURATION,
        "stable_after must be at most 24 hours"
    );
    window
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_up_to_a_day_are_accepted() {
        assert_eq!(checked_connect_timeout(MAX_DURATION), MAX_DURATION);
        assert_eq!(checked_stable_after(MAX_DURATION), MAX_DURATION);
        assert_eq!(checked_stable_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "connect timeout must be greater than zero")]
    fn a_zero_connect_timeout_is_rejected() {
        checked_connect_timeout(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "connect timeout must be at most 24 hours")]
    fn a_huge_connect_timeout_is_rejected() {
        checked_connect_timeout(MAX_DURATION + Duration::from_nanos(1));
    }

    #[test]
    #[should_panic(expected = "stable_after must be at most 24 hours")]
    fn a_huge_stability_window_is_rejected() {
        checked_stable_after(Duration::MAX);
    }
}
