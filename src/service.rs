//! `Heartbeat<Svc>` as a tower `Service`: in front of a connection-handler service, it wraps
//! every WebSocket the service is called with.

use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tower_service::Service;

use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::WsMessage;

/// A connection handler behind [`HeartbeatLayer`](crate::HeartbeatLayer): calling it with a
/// WebSocket `W` calls the inner handler with `Heartbeat<W>`.
///
/// ```
/// use std::time::Duration;
/// use futures_util::{SinkExt, StreamExt};
/// use tokio::net::TcpStream;
/// use tokio_tungstenite::WebSocketStream;
/// use tower::{ServiceBuilder, ServiceExt};
/// use ws_heartbeat::{Heartbeat, HeartbeatLayer};
///
/// # async fn serve(ws: WebSocketStream<TcpStream>) -> Result<(), tungstenite::Error> {
/// let handler = ServiceBuilder::new()
///     .layer(HeartbeatLayer::new().interval(Duration::from_secs(20)))
///     .service_fn(|mut ws: Heartbeat<WebSocketStream<TcpStream>>| async move {
///         while let Some(msg) = ws.next().await {
///             ws.send(msg?).await?;
///         }
///         Ok::<_, tungstenite::Error>(())
///     });
/// handler.oneshot(ws).await
/// # }
/// ```
impl<S, W, M, E> Service<W> for Heartbeat<S>
where
    S: Service<Heartbeat<W>>,
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx)
    }

    fn call(&mut self, ws: W) -> Self::Future {
        let mut ws = self.wrap_like(ws);
        // In background mode the driver starts before the handler runs, which may be away
        // (authenticating, loading) before its first read.
        ws.start_background::<M, E, ()>(|_| None);
        self.get_mut().call(ws)
    }
}
