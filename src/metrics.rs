//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (cargo feature
//! `metrics`, off by default): what an operator of many connections watches, recorded at
//! opens, ends, ticks, pings and pongs, never per message. Install a recorder (for
//! Prometheus, `metrics-exporter-prometheus`) before the first connection: a layer registers
//! its metrics once, with the recorder installed then.
//!
//! Every metric has the label `layer`, the layer's [name](crate::HeartbeatLayer::name)
//! (`"default"` unless set). As a Prometheus exporter shows them:
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `ws_heartbeat_connections` | gauge | | connections open now (counted from their first poll to their drop) |
//! | `ws_heartbeat_connections_total` | counter | | connections opened |
//! | `ws_heartbeat_closed_total` | counter | `cause` | connections ended, by cause (below) |
//! | `ws_heartbeat_connection_duration_seconds` | histogram | `cause` | seconds from the first poll to the end, by cause |
//! | `ws_heartbeat_deaths_total` | counter | | peers found dead |
//! | `ws_heartbeat_pings_sent_total` | counter | | pings handed to the socket |
//! | `ws_heartbeat_rtt_seconds` | histogram | | round trips measured, in seconds |
//! | `ws_heartbeat_tick_lag_seconds` | histogram | | how late the ticks that ran 1 ms late or more were, in seconds (on time: not recorded) |
//! | `ws_heartbeat_sessions` | gauge | `state`: `live`, `parked` | sessions held ([`crate::resume`]) |
//! | `ws_heartbeat_session_resumes_total` | counter | | sockets that resumed a session |
//! | `ws_heartbeat_sessions_lost_total` | counter | `reason` | sessions lost, by [`Reason`](crate::resume::Reason): `window_passed`, `refused`, `too_many_parked`, `over_budget`, `violation`, `closed`, `drained` |
//! | `ws_heartbeat_reconnects_total` | counter | | the reconnecting client's attempts after the first (its builder's layer) |
//!
//! Causes of an end: `peer_close` (the peer's Close came first), `local_close` (the
//! handler's Close came first, or the handler dropped the connection while it was open),
//! `dead` (the heartbeat found the peer dead), `drained` (closed by
//! [`drain`](crate::HeartbeatLayer::drain)), `error` (the socket failed, or ended without a
//! Close).
//!
//! The facade does not choose a histogram's buckets; these constants do, for an exporter
//! that takes them (`PrometheusBuilder::set_buckets_for_metric`): [`RTT_BUCKETS`] (100 µs
//! to 10 s), [`TICK_LAG_BUCKETS`] (1 ms to 10 s), [`DURATION_BUCKETS`] (1 s to a day).
//!
//! Cost: nothing per message (the data path has no metric); per connection, 8 bytes more in
//! its shared state with the feature (its first poll's time, for the duration).

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::ending::Cause;

/// Gauge: connections open now (from their first poll to their drop).
pub const CONNECTIONS: &str = "ws_heartbeat_connections";
/// Counter: connections opened.
pub const CONNECTIONS_TOTAL: &str = "ws_heartbeat_connections_total";
/// Counter, label `cause`: connections ended.
pub const CLOSED_TOTAL: &str = "ws_heartbeat_closed_total";
/// Histogram, seconds, label `cause`: from the first poll to the end ([`DURATION_BUCKETS`]).
pub const CONNECTION_DURATION: &str = "ws_heartbeat_connection_duration_seconds";
/// Counter: peers found dead.
pub const DEATHS_TOTAL: &str = "ws_heartbeat_deaths_total";
/// Counter: pings handed to the socket.
pub const PINGS_SENT_TOTAL: &str = "ws_heartbeat_pings_sent_total";
/// Histogram, seconds: round trips measured ([`RTT_BUCKETS`]).
pub const RTT: &str = "ws_heartbeat_rtt_seconds";
/// Histogram, seconds: how late the ticks were that ran 1 ms late or more
/// ([`TICK_LAG_BUCKETS`]).
pub const TICK_LAG: &str = "ws_heartbeat_tick_lag_seconds";
/// Gauge, label `state` (`live`, `parked`): sessions held.
pub const SESSIONS: &str = "ws_heartbeat_sessions";
/// Counter: sockets that resumed a session.
pub const SESSION_RESUMES_TOTAL: &str = "ws_heartbeat_session_resumes_total";
/// Counter, label `reason`: sessions lost.
pub const SESSIONS_LOST_TOTAL: &str = "ws_heartbeat_sessions_lost_total";
/// Counter: a reconnecting client's attempts after its first.
pub const RECONNECTS_TOTAL: &str = "ws_heartbeat_reconnects_total";

/// Buckets of [`RTT`], seconds: 100 µs to 10 s, about three a decade (loopback to a
/// phone on a bad network).
pub const RTT_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets of [`TICK_LAG`], seconds: 1 ms (the timer's own rounding) to 10 s.
pub const TICK_LAG_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of [`CONNECTION_DURATION`], seconds: 1 s to a day.
pub const DURATION_BUCKETS: [f64; 10] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 172800.0,
];

/// A layer's metrics, registered once (at its first connection) with the recorder
/// installed then.
pub(crate) struct LayerMetrics {
    pub(crate) connections: Gauge,
    pub(crate) opened: Counter,
    closed: [Counter; 5],
    duration: [Histogram; 5],
    pub(crate) deaths: Counter,
    pub(crate) pings: Counter,
    pub(crate) rtt: Histogram,
    pub(crate) tick_lag: Histogram,
}

impl LayerMetrics {
    pub(crate) fn new(layer: &str) -> Self {
        let name = || layer.to_owned();
        Self {
            connections: gauge!(CONNECTIONS, "layer" => name()),
            opened: counter!(CONNECTIONS_TOTAL, "layer" => name()),
            closed: Cause::ALL
                .map(|cause| counter!(CLOSED_TOTAL, "layer" => name(), "cause" => cause.label())),
            duration: Cause::ALL.map(|cause| {
                histogram!(CONNECTION_DURATION, "layer" => name(), "cause" => cause.label())
            }),
            deaths: counter!(DEATHS_TOTAL, "layer" => name()),
            pings: counter!(PINGS_SENT_TOTAL, "layer" => name()),
            rtt: histogram!(RTT, "layer" => name()),
            tick_lag: histogram!(TICK_LAG, "layer" => name()),
        }
    }

    /// A connection ended for `cause` after `lasted` seconds.
    pub(crate) fn ended(&self, cause: Cause, lasted: f64) {
        let at = Cause::ALL.iter().position(|c| *c == cause).unwrap_or(0);
        self.closed[at].increment(1);
        self.duration[at].record(lasted);
    }
}

/// A server's sessions' metrics, registered with the first session.
#[cfg(feature = "resume")]
pub(crate) struct SessionMetrics {
    pub(crate) live: Gauge,
    pub(crate) parked: Gauge,
    pub(crate) resumes: Counter,
    layer: String,
}

#[cfg(feature = "resume")]
impl SessionMetrics {
    pub(crate) fn new(layer: &str) -> Self {
        let name = || layer.to_owned();
        Self {
            live: gauge!(SESSIONS, "layer" => name(), "state" => "live"),
            parked: gauge!(SESSIONS, "layer" => name(), "state" => "parked"),
            resumes: counter!(SESSION_RESUMES_TOTAL, "layer" => name()),
            layer: name(),
        }
    }

    /// A session was lost, for the reason labelled `reason` (rare: the handle is looked up
    /// now).
    pub(crate) fn lost(&self, reason: &'static str) {
        counter!(SESSIONS_LOST_TOTAL, "layer" => self.layer.clone(), "reason" => reason)
            .increment(1);
    }
}

/// A reconnecting client of the layer named `layer` tries again.
#[cfg(feature = "reconnect")]
pub(crate) fn reconnecting(layer: &str) {
    counter!(RECONNECTS_TOTAL, "layer" => layer.to_owned()).increment(1);
}
