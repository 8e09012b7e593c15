//! [`HeartbeatHandle`]: what other tasks can see of, and change in, a live heartbeat.
//!
//! The design: ARCHITECTURE.md, "Interval changes through the handle".

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::config::checked_interval;
use crate::wake::Shared;

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
/// It stays valid after the connection is gone (it then shows the final figures).
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
#[derive(Clone, Debug)]
pub struct HeartbeatHandle {
    shared: Arc<Shared>,
}

impl HeartbeatHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The latest round-trip time: from handing a ping to the connection to reading its pong,
    /// in whole microseconds. `None` until the first pong.
    pub fn rtt(&self) -> Option<Duration> {
        match self.shared.rtt_micros.load(Relaxed) {
            u32::MAX => None,
            micros => Some(Duration::from_micros(u64::from(micros))),
        }
    }

    /// The counters of this connection's heartbeat.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            pings_sent: u64::from(s.pings_sent.load(Relaxed)),
            pongs_received: u64::from(s.pongs_received.load(Relaxed)),
            rtt_samples: u64::from(s.rtt_samples.load(Relaxed)),
            missed: u32::from(s.missed.load(Relaxed)),
        }
    }

    /// The interval in force: the layer's, or the latest [`set_interval`](Self::set_interval)
    /// (or interval the peer asked for, with
    /// [`follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval)).
    pub fn interval(&self) -> Duration {
        self.shared.interval()
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
        self.shared.set_interval(checked_interval(interval));
    }
}
