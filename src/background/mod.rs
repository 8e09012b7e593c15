//! Background mode: a connection driven by a task of its own, so that its heartbeat keeps
//! going while the handler is away (a slow database call between a request and its
//! answer): pings go out, the peer's pings are answered, a dead peer is found.
//!
//! [`HeartbeatLayer::background`] makes a [`BackgroundLayer`] of a layer's settings; in
//! front of a connection-handler service it hands the handler a [`Background<W>`] for each
//! WebSocket `W`; [`BackgroundLayer::wrap`] (or [`Background::new`] around a
//! [`Heartbeat`]) makes one directly. A `Background<S>` is a `Stream + Sink` with the
//! same item and error as `S`, so a handler written for the bare stream takes it unchanged.
//!
//! ```
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::TcpStream;
//! use tokio_tungstenite::WebSocketStream;
//! use tower::{ServiceBuilder, ServiceExt};
//! use ws_heartbeat::HeartbeatLayer;
//! use ws_heartbeat::background::Background;
//!
//! # async fn serve(ws: WebSocketStream<TcpStream>) -> Result<(), tungstenite::Error> {
//! let keepalive = HeartbeatLayer::new().interval(Duration::from_secs(20)).background();
//! let handler = ServiceBuilder::new()
//!     .layer(keepalive)
//!     .service_fn(|mut ws: Background<WebSocketStream<TcpStream>>| async move {
//!         while let Some(msg) = ws.next().await {
//!             let msg = msg?;
//!             tokio::time::sleep(Duration::from_secs(90)).await; // away: the heartbeat goes on
//!             ws.send(msg).await?;
//!         }
//!         Ok::<_, tungstenite::Error>(())
//!     });
//! handler.oneshot(ws).await
//! # }
//! ```
//!
//! # What holds
//!
//! - **Who reads.** While the handler waits in a read, it reads the connection itself, as a
//!   plain [`Heartbeat`] does. While it is away (between an item and its next read), every
//!   wake-up of the connection (the socket's, the heartbeat's ticks) goes to a driver task,
//!   which reads what comes into a queue, running the heartbeat: pings go out, the peer's
//!   pings are answered, a dead peer is found. The driver is spawned (`tokio::spawn` on the
//!   runtime of the first poll: it needs one, and `S: Send + 'static`) at the first wake-up
//!   that finds the handler away: a handler that always waits in its read before anything
//!   comes never gets one. Connections start at their first poll, or at once in the service
//!   form and the axum drop-in (which hand the handler its connection unpolled, so that a
//!   handler away before its first read is covered).
//! - **A read left unpolled** (a `select!` whose other arm won, then other work): the
//!   connection takes the handler for away at the second tick it did not look at, and the
//!   driver reads from then on until the handler reads again.
//! - **Bounded.** What arrives while the handler is away waits in a queue of 32 messages;
//!   when it is full the driver stops reading. That silence is ours: the next tick does not
//!   count it against the peer (the pause is noted in the connection's hub).
//! - **Order and the end.** Messages reach the handler in the order they came, the queue's
//!   first; the `Dead` error, and the end of the stream, after everything read before them.
//!   The handler's writes go to the connection under the lock it shares with the driver. A
//!   handler that drops its `Background` drops the connection at once (the socket closes),
//!   and the driver with it.
//! - **Cost.** A lock per read and per write, and wake-ups through the connection's router:
//!   see BENCHMARKS.md ("Background mode") for the figures. The plain [`Heartbeat`] pays
//!   none of it.
//!
//! [`Heartbeat`]: crate::Heartbeat

mod link;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::Dead;
use crate::handle::HeartbeatHandle;
use crate::heartbeat::Heartbeat;
use crate::layer::{HeartbeatLayer, Settings};
use crate::message::WsMessage;
use crate::wake::Shared;

use link::Link;

/// A [`HeartbeatLayer`]'s settings in background mode: made by
/// [`HeartbeatLayer::background`]. In front of a connection-handler service it hands the
/// handler a [`Background<W>`] for each WebSocket `W` ([`BackgroundService`]);
/// [`wrap`](Self::wrap) makes one of a single stream. Cheap to clone.
#[derive(Clone, Debug, Default)]
#[must_use = "a BackgroundLayer does nothing until it wraps a WebSocket or a service"]
pub struct BackgroundLayer {
    layer: HeartbeatLayer,
}

impl HeartbeatLayer {
    /// Background mode ([`crate::background`]): each connection driven by a task of its own,
    /// so that its heartbeat keeps going while the handler is away. Set the other settings
    /// first; they are read back from [`BackgroundLayer::settings`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_heartbeat::HeartbeatLayer;
    ///
    /// let layer = HeartbeatLayer::new().interval(Duration::from_secs(20)).background();
    /// assert_eq!(layer.settings().interval(), Duration::from_secs(20));
    /// ```
    pub fn background(self) -> BackgroundLayer {
        BackgroundLayer { layer: self }
    }
}

impl BackgroundLayer {
    /// The settings, read back ([`HeartbeatLayer::settings`]).
    pub fn settings(&self) -> Settings<'_> {
        self.layer.settings()
    }

    /// `ws` with a heartbeat of these settings, driven in the background from its first poll.
    pub fn wrap<S: Stream>(&self, ws: S) -> Background<S> {
        Background::new(self.layer.wrap(ws))
    }
}

impl<Svc> Layer<Svc> for BackgroundLayer {
    type Service = BackgroundService<Svc>;

    fn layer(&self, inner: Svc) -> BackgroundService<Svc> {
        BackgroundService {
            inner,
            layer: self.layer.clone(),
        }
    }
}

/// A connection handler behind a [`BackgroundLayer`]: calling it with a WebSocket `W` calls
/// the inner handler with a [`Background<W>`] whose driver has already started, so that a
/// handler away before its first read is covered.
#[derive(Clone, Debug)]
pub struct BackgroundService<Svc> {
    inner: Svc,
    layer: HeartbeatLayer,
}

impl<Svc, W, M, E> Service<W> for BackgroundService<Svc>
where
    Svc: Service<Background<W>>,
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Response = Svc::Response;
    type Error = Svc::Error;
    type Future = Svc::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, ws: W) -> Self::Future {
        let mut ws = Background::new(self.layer.wrap(ws));
        ws.start();
        self.inner.call(ws)
    }
}

/// A WebSocket whose heartbeat runs on a task of its own ([`crate::background`]): a
/// `Stream + Sink` with the same item and error as `S`.
#[must_use = "streams do nothing unless polled"]
pub struct Background<S: Stream> {
    state: Phase<S>,
    /// The connection's hub, for handles.
    hub: Arc<Shared>,
}

/// Where the connection is.
enum Phase<S: Stream> {
    /// Waiting for its first poll, to move to its driver.
    Parked(Pin<Box<Heartbeat<S>>>),
    /// Shared with its driver. `ended`: the handler has read the end.
    Driven { link: Arc<Link<S>>, ended: bool },
    /// For the moment of the move.
    Moving,
}

impl<S: Stream> Background<S> {
    /// `heartbeat`, to be driven by a task of its own from its first poll.
    pub fn new(heartbeat: Heartbeat<S>) -> Self {
        Self {
            hub: heartbeat.shared().clone(),
            state: Phase::Parked(Box::pin(heartbeat)),
        }
    }

    /// A handle to this connection's heartbeat: RTT, counters, and the interval.
    pub fn handle(&self) -> HeartbeatHandle {
        HeartbeatHandle::new(self.hub.clone())
    }
}

impl<S, M, E> Background<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// Starts driving the connection now, if it has not started: it reads what has come
    /// (into the queue) and from then on a driver task takes over whenever the handler is
    /// away.
    ///
    /// # Panics
    /// Outside a tokio runtime (the driver is spawned on the current one).
    pub fn start(&mut self) {
        if let Phase::Parked(_) = self.state {
            let Phase::Parked(conn) = std::mem::replace(&mut self.state, Phase::Moving) else {
                unreachable!("parked")
            };
            let link = Arc::new(Link::new(conn));
            // The first look, as the driver's: the socket and the heartbeat's ticks learn the
            // router, and what came already waits in the queue.
            if let Some(inner) = link.lock().as_mut() {
                link.take_over(inner);
            }
            self.state = Phase::Driven { link, ended: false };
        }
    }

    /// The connection's link with its driver, which starts here at the first poll.
    #[inline]
    fn link(&mut self) -> (&Arc<Link<S>>, &mut bool) {
        self.start();
        match &mut self.state {
            Phase::Driven { link, ended } => (link, ended),
            Phase::Parked(_) | Phase::Moving => unreachable!("started"),
        }
    }
}

impl<S: Stream> Drop for Background<S> {
    /// The handler dropped its connection: the connection goes now (the socket closes), and
    /// the driver, if there is one, ends at once rather than at the peer's next frame.
    fn drop(&mut self) {
        if let Phase::Driven { link, .. } = &self.state {
            link.drop_handler();
        }
    }
}

impl<S, M, E> Stream for Background<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Item = Result<M, E>;

    /// The next item the driver read.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (link, ended) = self.get_mut().link();
        if *ended {
            return Poll::Ready(None);
        }
        let next = link.poll_next(cx);
        *ended = matches!(next, Poll::Ready(None));
        next
    }
}

impl<S, M, E> FusedStream for Background<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    fn is_terminated(&self) -> bool {
        matches!(self.state, Phase::Driven { ended: true, .. })
    }
}

/// The handler's writes go to the connection itself, under the lock it shares with the
/// driver (which holds it only while it polls).
impl<S, M, E> Sink<M> for Background<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Error = E;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.get_mut().link().0.poll_write(cx, Sink::poll_ready)
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), E> {
        self.get_mut().link().0.start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.get_mut().link().0.poll_write(cx, Sink::poll_flush)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.get_mut().link().0.poll_write(cx, Sink::poll_close)
    }
}

impl<S: Stream> fmt::Debug for Background<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            Phase::Parked(_) | Phase::Moving => "parked",
            Phase::Driven { ended: false, .. } => "driven",
            Phase::Driven { ended: true, .. } => "ended",
        };
        f.debug_struct("Background")
            .field("state", &state)
            .field("interval", &self.hub.interval())
            .finish_non_exhaustive()
    }
}
