//! `Heartbeat<Svc>` as a tower `Service`: in front of a connection-handler service, it wraps
//! every WebSocket the service is called with.

use std::task::{Context, Poll};

use tower_service::Service;

use crate::heartbeat::Heartbeat;

/// A connection handler behind [`HeartbeatLayer`](crate::HeartbeatLayer): calling it with a
/// WebSocket `W` calls the inner handler with `Heartbeat<W>`, a fresh heartbeat with the
/// layer's settings. It asks nothing of the handler but to take `Heartbeat<W>`: its future,
/// response and error are the handler's own, and it need not be `Clone`.
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
impl<Svc, W> Service<W> for Heartbeat<Svc>
where
    Svc: Service<Heartbeat<W>>,
{
    type Response = Svc::Response;
    type Error = Svc::Error;
    type Future = Svc::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx)
    }

    fn call(&mut self, ws: W) -> Self::Future {
        let ws = self.wrap_like(ws);
        self.get_mut().call(ws)
    }
}
