//! [`HeartbeatLayer`]: the tower `Layer` that adds a heartbeat, the builder of its
//! settings, and [`Settings`], their read-only view.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::stamp::Stamp;
use crate::ticker::Ticker;

use crate::config::{self, Config, Follow, Nanos};
use crate::drain::DrainReport;
use crate::heartbeat::Heartbeat;
use crate::kit::Kit;
use crate::protocol::{App, HeartbeatProtocol, Protocol};

/// Adds a heartbeat to a WebSocket, or to every WebSocket a connection-handler service is
/// called with. Holds the settings; cheap to clone (an application protocol is shared).
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`interval`](Self::interval) | 10 s | time between two ticks; each tick may send a ping |
/// | [`max_missed`](Self::max_missed) | 3 | unanswered pings in a row that make the peer dead |
/// | [`any_inbound_is_alive`](Self::any_inbound_is_alive) | `true` | any frame proves life, not only a pong |
/// | [`idle_only`](Self::idle_only) | `false` | skip the ping of a tick when the peer proved alive since the last one |
/// | [`forward_pings`](Self::forward_pings) | `false` | hand the peer's pings to the handler too |
/// | [`jitter`](Self::jitter) | `true` | first tick at a random point of the first interval (shared by runs of 64 connections opened in a row) |
/// | [`close_timeout`](Self::close_timeout) | 1 s | time allowed for the Close frame to a dead peer |
/// | [`protocol`](Self::protocol) | control frames | what pings and pongs look like: WebSocket Ping/Pong frames, or application messages ([`crate::protocol`]) |
/// | [`follow_peer_interval`](Self::follow_peer_interval) | off | follow the interval the peer's application pings ask for, clamped into `[min, max]` |
///
/// Each setting is read back under the same name from [`settings`](Self::settings):
/// `layer.settings().interval()`.
///
/// A peer silent since `t0` is declared dead strictly after `t0 + interval × max_missed` and
/// no later than `t0 + interval × (max_missed + 1)` ([`detection_bound`](Self::detection_bound));
/// with `idle_only`, up to one interval later.
///
/// ```
/// use std::time::Duration;
/// use tower::Layer;
/// use ws_heartbeat::{Heartbeat, HeartbeatLayer};
///
/// let keepalive = HeartbeatLayer::new()
///     .interval(Duration::from_secs(20))
///     .max_missed(2);
/// assert_eq!(keepalive.detection_bound(), Duration::from_secs(60));
///
/// # async fn wrap(keepalive: HeartbeatLayer, ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
/// let ws: Heartbeat<_> = keepalive.layer(ws);
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a HeartbeatLayer does nothing until it wraps a WebSocket or a service"]
pub struct HeartbeatLayer {
    config: Config,
    protocol: Protocol,
    /// As set, whatever the protocol; an application protocol carries a copy to its
    /// connections.
    follow: Option<Follow>,
    /// What the connections share: `protocol` again, and the group of the connections
    /// made through this layer and every layer made from it (clones, and the builder's
    /// calls on them), which [`drain`](Self::drain) closes. Rebuilt with the protocol.
    kit: Arc<Kit>,
}

impl Default for HeartbeatLayer {
    /// [`HeartbeatLayer::new`]: the defaults, and a group of connections of its own.
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatLayer {
    /// The defaults: interval 10 s, `max_missed` 3, see the table above.
    pub fn new() -> Self {
        Self {
            config: Config::DEFAULT,
            protocol: Protocol::Control,
            follow: None,
            kit: Arc::new(Kit::new(
                Protocol::Control,
                Arc::default(),
                Arc::from("default"),
            )),
        }
    }

    /// Names the layer: the `layer` label of its metrics (feature `metrics`,
    /// [`crate::metrics`]) and of its reconnecting clients'. Default `"default"`. The name
    /// goes to the layer's clones and to layers made from it, as its connections' group does.
    ///
    /// ```
    /// use ws_heartbeat::HeartbeatLayer;
    ///
    /// let chat = HeartbeatLayer::new().name("chat");
    /// assert_eq!(chat.settings().name(), "chat");
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.kit = Arc::new(Kit::new(
            self.protocol.clone(),
            self.kit.group.clone(),
            name.into(),
        ));
        self
    }

    /// Sets the protocol, in the kit too, and the rules' bit that tells the per-message path
    /// whether it is an application protocol.
    fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.config.rules =
            (self.config.rules).with_app_protocol(matches!(protocol, Protocol::App(_)));
        self.kit = Arc::new(Kit::new(
            protocol.clone(),
            self.kit.group.clone(),
            self.kit.name.clone(),
        ));
        self.protocol = protocol;
        self
    }

    /// Heartbeats with application messages instead of WebSocket Ping/Pong frames, for
    /// browser clients: the layer answers and hides the peer's pings of that shape, and
    /// pings the peer with them too ([`crate::protocol`]).
    ///
    /// ```
    /// use ws_heartbeat::{HeartbeatLayer, protocol::Json};
    ///
    /// let layer = HeartbeatLayer::new().protocol(Json::new());
    /// ```
    pub fn protocol(self, protocol: impl HeartbeatProtocol) -> Self {
        let app = Protocol::App(Arc::new(App {
            protocol: Arc::new(protocol),
            follow: self.follow,
        }));
        self.with_protocol(app)
    }

    /// Follows the interval the peer's application pings ask for, clamped into
    /// `[min, max]`: a browser page that slows its heartbeat in the background is then
    /// neither found dead at the old bound nor waited for longer than its new one. Default:
    /// off, the field is ignored.
    ///
    /// When a ping arrives whose request ([`HeartbeatProtocol::peer_interval`]: the
    /// `"interval"` field of a [`Json`](crate::protocol::Json) ping, in milliseconds; the
    /// 12-byte payload of a [`BinaryCommand`](crate::protocol::BinaryCommand) ping), once
    /// clamped, differs from the interval in force, it applies like
    /// [`HeartbeatHandle::set_interval`](crate::HeartbeatHandle::set_interval): the next tick
    /// moves to the previous tick plus the new interval, the missed count and `max_missed`
    /// carry over, and [`HeartbeatHandle::interval`](crate::HeartbeatHandle::interval)
    /// reports it. A handle's change and the peer's apply in the order they come: the
    /// latest wins. Pings without a request change nothing. With WebSocket control frames
    /// (no [`protocol`](Self::protocol)) this has no effect: a Ping frame carries no
    /// interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_heartbeat::{HeartbeatLayer, protocol::Json};
    ///
    /// // {"type":"ping","seq":7,"interval":30000} moves this page's connection to 30 s.
    /// let layer = HeartbeatLayer::new()
    ///     .interval(Duration::from_secs(10))
    ///     .protocol(Json::new())
    ///     .follow_peer_interval(Duration::from_secs(1), Duration::from_secs(60));
    /// assert_eq!(
    ///     layer.settings().follow_peer_interval(),
    ///     Some((Duration::from_secs(1), Duration::from_secs(60)))
    /// );
    /// ```
    ///
    /// # Panics
    /// If `min` is zero, `min` is greater than `max`, or `max` is longer than 24 hours.
    #[track_caller]
    pub fn follow_peer_interval(mut self, min: Duration, max: Duration) -> Self {
        let follow = Follow::new(min, max);
        self.follow = Some(follow);
        match &self.protocol {
            Protocol::App(app) => {
                let app = Protocol::App(Arc::new(App {
                    protocol: app.protocol.clone(),
                    follow: Some(follow),
                }));
                self.with_protocol(app)
            }
            Protocol::Control => self,
        }
    }

    /// Back to WebSocket Ping/Pong control frames (the default).
    pub fn control_frames(self) -> Self {
        self.with_protocol(Protocol::Control)
    }

    /// Time between two ticks. At each tick a ping is sent (unless [`idle_only`](Self::idle_only)
    /// skips it) and an unanswered earlier ping counts as missed. Keep it well under the idle
    /// timeout of the proxies on the path (nginx and most load balancers: 60 s).
    ///
    /// # Panics
    /// If `interval` is zero or longer than 24 hours.
    #[track_caller]
    pub const fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = Nanos::new(config::checked_interval(interval));
        self
    }

    /// Unanswered pings in a row after which the peer is dead.
    ///
    /// # Panics
    /// If `max_missed` is zero or more than 65 535.
    #[track_caller]
    pub const fn max_missed(mut self, max_missed: u32) -> Self {
        self.config.rules = self.config.rules.with_max_missed(max_missed);
        self
    }

    /// With `true` (the default) any frame from the peer proves it alive. With `false` only
    /// a pong answering one of our pings does: a peer whose application keeps talking while
    /// its WebSocket layer no longer answers pings is then found dead too.
    pub const fn any_inbound_is_alive(mut self, any_frame_counts: bool) -> Self {
        self.config.rules = self
            .config
            .rules
            .with_any_inbound_is_alive(any_frame_counts);
        self
    }

    /// With `true`, a tick sends no ping when the peer already proved alive since the
    /// previous tick (see [`any_inbound_is_alive`](Self::any_inbound_is_alive)). Saves the
    /// pings of busy connections, and their RTT samples; detection takes up to one interval
    /// longer. Default `false`: every tick pings.
    pub const fn idle_only(mut self, only_when_idle: bool) -> Self {
        self.config.rules = self.config.rules.with_idle_only(only_when_idle);
        self
    }

    /// With `true`, the peer's pings also reach the handler (they are answered by the
    /// WebSocket library either way, exactly once). Default `false`: hidden, like pongs,
    /// which never reach the handler.
    pub const fn forward_pings(mut self, forward: bool) -> Self {
        self.config.rules = self.config.rules.with_forward_pings(forward);
        self
    }

    /// With `true` (the default) the first tick of each connection comes at a random point
    /// in `(0, interval]`, so connections opened together do not ping together. Later ticks
    /// follow every `interval`. With `false` the first tick comes after exactly one interval.
    ///
    /// The random points are one of about 128 per interval, and runs of 64 connections
    /// opened in a row on one thread share theirs: such connections sit together in memory,
    /// and a tick that wakes them together finds them in the CPU's caches (measured in
    /// BENCHMARKS.md, "Measurements behind design choices").
    /// A burst of 100 000 connections still makes about 1 560 groups, pinging in about 128
    /// waves.
    pub const fn jitter(mut self, enabled: bool) -> Self {
        self.config.rules = self.config.rules.with_jitter(enabled);
        self
    }

    /// How long the Close frame (1011, "keepalive timeout") to a dead peer may take before
    /// the adapter gives up on it. The `Dead` error never waits for it. Kept in whole
    /// milliseconds, rounded up (the timer wakes connections on the millisecond).
    ///
    /// # Panics
    /// If `timeout` is longer than 24 hours.
    #[track_caller]
    pub const fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.rules = self.config.rules.with_close_timeout(timeout);
        self
    }

    /// The longest time from a peer's last frame to its `Dead`:
    /// `interval × (max_missed + 1)`, plus one interval with [`idle_only`](Self::idle_only).
    pub const fn detection_bound(&self) -> Duration {
        detection_bound(self.config)
    }

    /// Every setting, read back under its own name: `layer.settings().interval()`.
    ///
    /// The setters take the layer by value and are named after the setting, so the getters
    /// live on this view instead of beside them (with the same names and no `get_` prefix).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_heartbeat::HeartbeatLayer;
    ///
    /// let layer = HeartbeatLayer::new().interval(Duration::from_secs(20)).jitter(false);
    /// let settings = layer.settings();
    /// assert_eq!(settings.interval(), Duration::from_secs(20));
    /// assert_eq!(settings.max_missed(), 3);
    /// assert!(!settings.jitter());
    /// assert!(settings.protocol().is_none()); // WebSocket Ping/Pong frames
    /// ```
    pub fn settings(&self) -> Settings<'_> {
        Settings {
            config: self.config,
            protocol: &self.protocol,
            follow: self.follow,
            name: &self.kit.name,
        }
    }
}

/// The settings of a [`HeartbeatLayer`], read back: made by [`HeartbeatLayer::settings`].
/// Each getter is named after the setter of the layer that sets it.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    config: Config,
    protocol: &'a Protocol,
    follow: Option<Follow>,
    name: &'a str,
}

impl<'a> Settings<'a> {
    /// The layer's name ([`HeartbeatLayer::name`]).
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// Time between two ticks ([`HeartbeatLayer::interval`]).
    pub const fn interval(&self) -> Duration {
        self.config.interval.get()
    }

    /// Unanswered pings in a row that make the peer dead ([`HeartbeatLayer::max_missed`]).
    pub const fn max_missed(&self) -> u32 {
        self.config.rules.max_missed()
    }

    /// Whether any frame proves the peer alive, not only a pong
    /// ([`HeartbeatLayer::any_inbound_is_alive`]).
    pub const fn any_inbound_is_alive(&self) -> bool {
        self.config.rules.any_inbound_is_alive()
    }

    /// Whether a tick skips its ping when the peer proved alive since the previous one
    /// ([`HeartbeatLayer::idle_only`]).
    pub const fn idle_only(&self) -> bool {
        self.config.rules.idle_only()
    }

    /// Whether the peer's pings reach the handler ([`HeartbeatLayer::forward_pings`]).
    pub const fn forward_pings(&self) -> bool {
        self.config.rules.forward_pings()
    }

    /// Whether the first tick comes at a random point of the first interval
    /// ([`HeartbeatLayer::jitter`]).
    pub const fn jitter(&self) -> bool {
        self.config.rules.jitter()
    }

    /// Time allowed for the Close frame to a dead peer ([`HeartbeatLayer::close_timeout`]).
    pub const fn close_timeout(&self) -> Duration {
        self.config.rules.close_timeout()
    }

    /// The application heartbeat ([`HeartbeatLayer::protocol`]), or `None` for WebSocket
    /// Ping/Pong control frames (the default, [`HeartbeatLayer::control_frames`]).
    pub fn protocol(&self) -> Option<&'a dyn HeartbeatProtocol> {
        match self.protocol {
            Protocol::Control => None,
            Protocol::App(app) => Some(&*app.protocol),
        }
    }

    /// The bounds `(min, max)` within which the interval follows the peer's requests, or
    /// `None` when off (the default; [`HeartbeatLayer::follow_peer_interval`]). Read back as
    /// set, also under control frames, where it has no effect.
    pub const fn follow_peer_interval(&self) -> Option<(Duration, Duration)> {
        match self.follow {
            Some(follow) => Some(follow.bounds()),
            None => None,
        }
    }

    /// The longest time from a peer's last frame to its `Dead`:
    /// `interval × (max_missed + 1)`, plus one interval with `idle_only`
    /// ([`HeartbeatLayer::detection_bound`]).
    pub const fn detection_bound(&self) -> Duration {
        detection_bound(self.config)
    }
}

/// `interval × (max_missed + 1)`, plus one interval with `idle_only`.
const fn detection_bound(config: Config) -> Duration {
    let ticks = config.rules.max_missed() as u64 + 1 + config.rules.idle_only() as u64;
    let nanos = config.interval.get().as_nanos() * ticks as u128;
    Duration::from_nanos(nanos as u64)
}

impl HeartbeatLayer {
    /// Closes every connection of this layer over `window`, for a server that is about to
    /// stop; resolves once they are all gone, with what happened to them.
    ///
    /// Covers every connection made through this layer, its clones and the layers made from
    /// them by the builder's methods, in every mode (plain, [`background`](Self::background),
    /// the drop-ins), whichever task or runtime polls it. Sessions
    /// ([`resume`](Self::resume)) finish instead of being closed, and a resume is let in
    /// during the drain so that its session can finish ([`resume::Session`](crate::resume::Session)):
    ///
    /// - **Spread.** Each connection open now gets its own moment in `(now, now + window]`:
    ///   the window is cut into as many equal steps as there are connections, and each
    ///   connection takes the next step when it first looks (every connection is woken at
    ///   once to look), so closes, and the reconnects they cause elsewhere, arrive at an even
    ///   rate, not in a spike.
    /// - **Close.** At its moment the heartbeat itself sends a Close with code **1012**
    ///   (service restart) and the reason `"server restart"`, after whatever send the handler
    ///   has reserved; no handler code is involved, but the connection must be polled, as for
    ///   its pings. After it the connection is closing, as after the handler's own Close:
    ///   what the peer sent before it saw the Close still arrives, then the peer's Close, then
    ///   the end (`None`), and a send fails as after a Close. A connection already closing at
    ///   its moment sends nothing more and waits for its end.
    /// - **Bounded.** A peer that has not answered the Close within the close timeout
    ///   ([`close_timeout`](Self::close_timeout)) ends the connection as a dead one: the
    ///   stream reports [`Dead`](crate::Dead) once, then ends.
    /// - **Latecomers.** A connection first polled after the drain began closes with 1012 at
    ///   that poll: a server keeps accepting during the drain (behind a load balancer,
    ///   connections still arrive until it notices) and each such client is told to go
    ///   elsewhere.
    /// - **Resolves** when every connection of the layer has been dropped, or at
    ///   `window` + close timeout + 1 s at the latest, with a [`DrainReport`].
    ///   A second call joins the first drain (its window, its end, the same report); a
    ///   zero window closes every connection at once.
    ///
    /// The cost: 8 bytes per connection (the pointer to its layer's group), and nothing per
    /// message; the drain itself wakes each connection once to take its moment and once at
    /// it.
    ///
    /// ```no_run
    /// # async fn serve(keepalive: ws_heartbeat::HeartbeatLayer) {
    /// use std::time::Duration;
    ///
    /// // ... on SIGTERM:
    /// let report = keepalive.drain(Duration::from_secs(30)).await;
    /// tracing::info!(?report, "connections drained");
    /// # }
    /// ```
    pub fn drain(&self, window: Duration) -> impl Future<Output = DrainReport> + Send + 'static {
        let group = self.kit.group.clone();
        let name = self.kit.name.clone();
        let close_timeout = self.config.rules.close_timeout();
        async move {
            let plan = group.begin(Stamp::now(), window, close_timeout);
            tracing::info!(layer = &*name, ?window, "websocket drain begins");
            let nudge = || Ticker::wake_where(|shared| shared.awaits_moment_in(&group));
            nudge();
            let ends_by = tokio::time::Instant::from_std(plan.ends_by.instant());
            group.wait_empty(ends_by, nudge).await;
            let report = group.report();
            tracing::info!(layer = &*name, ?report, "websocket drain over");
            report
        }
    }

    /// The same layer for a session's sockets: in a drain their sessions finish themselves
    /// (`resume::Session`), so their heartbeats do not close them.
    #[cfg(feature = "resume")]
    pub(crate) fn for_sessions(mut self) -> Self {
        self.config.rules = self.config.rules.with_session_socket(true);
        self
    }

    /// The group a drain of this layer closes.
    #[cfg(feature = "resume")]
    pub(crate) fn group(&self) -> &Arc<crate::drain::Group> {
        &self.kit.group
    }

    /// The heartbeat protocol of this layer's connections.
    #[cfg(feature = "resume")]
    pub(crate) fn protocol_of(&self) -> Protocol {
        self.protocol.clone()
    }

    /// `inner` with a heartbeat of these settings.
    pub(crate) fn wrap<S>(&self, inner: S) -> Heartbeat<S> {
        Heartbeat::with_config(inner, self.config, Some(self.kit.clone()))
    }
}

impl<S> Layer<S> for HeartbeatLayer {
    type Service = Heartbeat<S>;

    fn layer(&self, inner: S) -> Heartbeat<S> {
        self.wrap(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Text;

    #[test]
    fn every_setting_reads_back() {
        let layer = HeartbeatLayer::new()
            .interval(Duration::from_secs(7))
            .max_missed(5)
            .any_inbound_is_alive(false)
            .idle_only(true)
            .forward_pings(true)
            .jitter(false)
            .close_timeout(Duration::from_millis(250))
            .follow_peer_interval(Duration::from_millis(100), Duration::from_secs(2))
            .protocol(Text::new());
        let settings = layer.settings();
        assert_eq!(settings.interval(), Duration::from_secs(7));
        assert_eq!(settings.max_missed(), 5);
        assert!(!settings.any_inbound_is_alive());
        assert!(settings.idle_only());
        assert!(settings.forward_pings());
        assert!(!settings.jitter());
        assert_eq!(settings.close_timeout(), Duration::from_millis(250));
        assert_eq!(
            settings.follow_peer_interval(),
            Some((Duration::from_millis(100), Duration::from_secs(2)))
        );
        assert_eq!(
            format!(
                "{:?}",
                settings.protocol().expect("an application protocol")
            ),
            format!("{:?}", Text::new())
        );
        assert_eq!(settings.detection_bound(), Duration::from_secs(7 * 7));
        assert_eq!(layer.detection_bound(), settings.detection_bound());
        assert!(layer.control_frames().settings().protocol().is_none());
    }

    #[test]
    fn the_defaults_read_back() {
        let layer = HeartbeatLayer::new();
        let settings = layer.settings();
        assert_eq!(settings.interval(), Duration::from_secs(10));
        assert_eq!(settings.max_missed(), 3);
        assert!(settings.any_inbound_is_alive());
        assert!(!settings.idle_only());
        assert!(!settings.forward_pings());
        assert!(settings.jitter());
        assert_eq!(settings.close_timeout(), Duration::from_secs(1));
        assert!(settings.protocol().is_none());
        assert_eq!(settings.follow_peer_interval(), None);
    }

    /// The bounds reach the connections whichever of `protocol` and `follow_peer_interval`
    /// comes first, and only through an application protocol.
    #[test]
    fn the_peer_interval_bounds_travel_with_the_protocol_in_either_order() {
        let follow = |layer: &HeartbeatLayer| match &layer.protocol {
            Protocol::Control => None,
            Protocol::App(app) => Some(app.follow.map(Follow::bounds)),
        };
        let bounds = (Duration::from_millis(100), Duration::from_secs(2));
        let before = HeartbeatLayer::new()
            .follow_peer_interval(bounds.0, bounds.1)
            .protocol(Text::new());
        let after = HeartbeatLayer::new()
            .protocol(Text::new())
            .follow_peer_interval(bounds.0, bounds.1);
        assert_eq!(follow(&before), Some(Some(bounds)));
        assert_eq!(follow(&after), Some(Some(bounds)));
        assert_eq!(
            follow(&HeartbeatLayer::new().protocol(Text::new())),
            Some(None)
        );
        let control = after.control_frames();
        assert_eq!(follow(&control), None);
        assert_eq!(control.settings().follow_peer_interval(), Some(bounds));
    }

    #[test]
    #[should_panic(expected = "min <= max")]
    fn peer_interval_bounds_are_checked() {
        let _ = HeartbeatLayer::new()
            .follow_peer_interval(Duration::from_secs(2), Duration::from_secs(1));
    }
}
