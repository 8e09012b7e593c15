//! `Heartbeat<Svc>` as a tower `Service`: in front of a connection-handler service, it wraps
//! every WebSocket the service is called with.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_sink::Sink;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::WsMessage;
use crate::resume::Sessions;

/// A connection handler behind [`HeartbeatLayer`](crate::HeartbeatLayer): calling it with a
/// WebSocket `W` calls the inner handler with `Heartbeat<W>`.
///
/// With [`HeartbeatLayer::resume`](crate::HeartbeatLayer::resume), the WebSocket goes
/// through the layer's sessions first ([`crate::resume`]): the handler is called once per
/// session, with the session. A call whose WebSocket resumed a session (handed to it), or
/// was refused (closed with the code that says why, logged at debug level), completes at
/// once with `Ok(Response::default())` without calling the handler.
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
    S: Service<Heartbeat<W>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Default + Send + 'static,
    S::Error: Send + 'static,
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx)
    }

    fn call(&mut self, ws: W) -> Self::Future {
        if let Some(registry) = self.sessions() {
            let sessions = Sessions::from_registry(registry.clone());
            // The handler is called later, once the handshake says whether this is a new
            // session: a clone of it goes with the future (tower's usual way).
            let mut handler = self.get_ref().clone();
            return ResponseFuture {
                inner: Inner::Session {
                    future: Box::pin(async move {
                        match sessions.accept(ws).await {
                            Ok(Some(session)) => {
                                std::future::poll_fn(|cx| handler.poll_ready(cx)).await?;
                                handler.call(session).await
                            }
                            Ok(None) => Ok(S::Response::default()),
                            Err(err) => {
                                tracing::debug!(close = ?err.close_code(), "websocket session refused");
                                Ok(S::Response::default())
                            }
                        }
                    }),
                },
            };
        }
        let mut ws = self.wrap_like(ws);
        // In background mode the driver starts before the handler runs, which may be away
        // (authenticating, loading) before its first read.
        ws.start_background::<M, E, ()>(|_| None);
        ResponseFuture {
            inner: Inner::Handler {
                future: self.get_mut().call(ws),
            },
        }
    }
}

pin_project! {
    /// The future of a call of `Heartbeat<Svc>`: the handler's own, or, with sessions, the
    /// handshake and then the handler's.
    pub struct ResponseFuture<F, R, Er> {
        #[pin]
        inner: Inner<F, R, Er>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F, R, Er> {
        Handler { #[pin] future: F },
        Session { future: BoxFuture<'static, Result<R, Er>> },
    }
}

impl<F, R, Er> Future for ResponseFuture<F, R, Er>
where
    F: Future<Output = Result<R, Er>>,
{
    type Output = Result<R, Er>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Handler { future } => future.poll(cx),
            InnerProj::Session { future } => future.as_mut().poll(cx),
        }
    }
}
