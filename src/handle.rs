//! [`HeartbeatHandle`]: what other tasks can see of, and change in, a live heartbeat.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
#[cfg(feature = "resume")]
use std::sync::{Mutex, PoisonError, atomic::AtomicU64};
use std::time::Duration;

use crate::config::checked_interval;
use crate::wake::Shared;
#[cfg(feature = "resume")]
use crate::wake::nanos;

/// Counters of one heartbeat, read through [`HeartbeatHandle::stats`].
///
/// The three counts wrap to zero after 2^32 − 1: each connection keeps them in 32 bits (a
/// ping every second takes 136 years to get there, but a peer may send unsolicited pongs at
/// will). Compare two readings with `!=`, or count between them modulo 2^32:
/// `later.wrapping_sub(earlier) % (1 << 32)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Pings handed to the connection (a ping the full sink could not take is not counted
    /// here, though it counts as unanswered).
    pub pings_sent: u64,
    /// Pongs received, matched or not.
    pub pongs_received: u64,
    /// Pongs that answered the latest ping and so gave a round-trip time.
    pub rtt_samples: u64,
    /// Ticks in a row at which the peer had not been heard while a ping was outstanding.
    pub missed: u32,
}

/// A cheap, cloneable view of one connection's heartbeat, usable from any task.
///
/// It stays valid after the connection is gone (it then shows the final figures). A
/// session's handle ([`resume::Session::handle`](crate::resume::Session::handle)) follows
/// the session from socket to socket: it shows the heartbeat of the socket the session is
/// on (counters start anew with each socket), and an interval set through it stays in force
/// on the sockets that follow.
///
/// ```
/// # async fn demo(ws: ws_heartbeat::Heartbeat<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>) {
/// use std::time::Duration;
///
/// let handle = ws.handle();
/// tokio::spawn(async move {
///     if let Some(rtt) = handle.rtt() {
///         println!("round trip {rtt:?}");
///     }
///     // The connection went to the background: ping less often from the next tick on.
///     handle.set_interval(Duration::from_secs(60));
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct HeartbeatHandle {
    target: Target,
}

#[derive(Clone)]
enum Target {
    /// One connection's hub.
    Connection(Arc<Shared>),
    /// A session's, which follows its sockets.
    #[cfg(feature = "resume")]
    Session(Arc<dyn Follows>),
}

/// What a session shares with its handles: the hub of the socket it is on, and the interval
/// set through a handle, which the session's next sockets take.
#[cfg(feature = "resume")]
#[derive(Debug)]
pub(crate) struct Following {
    hub: Mutex<Arc<Shared>>,
    /// Nanoseconds; 0 while no handle set one.
    interval: AtomicU64,
}

/// Something that holds a [`Following`] (a session's mailbox, shared with the registry
/// already: the handles need no allocation of their own).
#[cfg(feature = "resume")]
pub(crate) trait Follows: Send + Sync {
    fn following(&self) -> &Following;
}

#[cfg(feature = "resume")]
impl Following {
    /// Following the socket whose hub is `hub`.
    pub(crate) fn new(hub: Arc<Shared>) -> Self {
        Self {
            hub: Mutex::new(hub),
            interval: AtomicU64::new(0),
        }
    }

    /// The session moved to the socket whose hub is `hub`: the handles show it from now on,
    /// and an interval set through them applies to it.
    pub(crate) fn follow(&self, hub: &Arc<Shared>) {
        let mut current = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        *current = hub.clone();
        match self.interval.load(Relaxed) {
            0 => {}
            set => hub.set_interval(Duration::from_nanos(set)),
        }
    }

    fn hub(&self) -> Arc<Shared> {
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_interval(&self, interval: Duration) {
        // Under the lock, so that a socket adopted meanwhile gets it either way.
        let current = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        self.interval.store(nanos(interval), Relaxed);
        current.set_interval(interval);
    }
}

impl std::fmt::Debug for HeartbeatHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatHandle")
            .field("stats", &self.stats())
            .field("interval", &self.interval())
            .finish_non_exhaustive()
    }
}

impl HeartbeatHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            target: Target::Connection(shared),
        }
    }

    /// A handle that follows a session from socket to socket.
    #[cfg(feature = "resume")]
    pub(crate) fn following(session: Arc<dyn Follows>) -> Self {
        Self {
            target: Target::Session(session),
        }
    }

    /// `f` of the hub this handle shows now.
    fn with_hub<R>(&self, f: impl FnOnce(&Shared) -> R) -> R {
        match &self.target {
            Target::Connection(shared) => f(shared),
            #[cfg(feature = "resume")]
            Target::Session(session) => f(&session.following().hub()),
        }
    }

    /// The latest round-trip time: from handing a ping to the connection to reading its pong,
    /// in whole microseconds. `None` until the first pong.
    pub fn rtt(&self) -> Option<Duration> {
        match self.with_hub(|s| s.rtt_micros.load(Relaxed)) {
            u32::MAX => None,
            micros => Some(Duration::from_micros(u64::from(micros))),
        }
    }

    /// The counters of this connection's heartbeat.
    pub fn stats(&self) -> Stats {
        self.with_hub(|s| Stats {
            pings_sent: u64::from(s.pings_sent.load(Relaxed)),
            pongs_received: u64::from(s.pongs_received.load(Relaxed)),
            rtt_samples: u64::from(s.rtt_samples.load(Relaxed)),
            missed: u32::from(s.missed.load(Relaxed)),
        })
    }

    /// The interval in force: the layer's, or the latest [`set_interval`](Self::set_interval)
    /// (or interval the peer asked for, with
    /// [`follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval)).
    pub fn interval(&self) -> Duration {
        self.with_hub(Shared::interval)
    }

    /// Changes the interval of the live connection, at once: the next tick comes one new
    /// interval after the previous tick (at once, if that moment has passed); the missed
    /// count and `max_missed` carry over, so the dead bound scales with the new interval.
    ///
    /// The connection's task is woken to file the moved tick with the runtime's timer (a busy
    /// connection does it at its next message, where it checks its timer anyway).
    ///
    /// # Panics
    /// If `interval` is zero or longer than 24 hours, like
    /// [`HeartbeatLayer::interval`](crate::HeartbeatLayer::interval).
    #[track_caller]
    pub fn set_interval(&self, interval: Duration) {
        let interval = checked_interval(interval);
        match &self.target {
            Target::Connection(shared) => shared.set_interval(interval),
            #[cfg(feature = "resume")]
            Target::Session(session) => session.following().set_interval(interval),
        }
    }
}
