//! [`SessionService`]: a connection-handler service behind [`Sessions`], called once per
//! session.

use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_sink::Sink;
use tower_layer::Layer;
use tower_service::Service;

use super::Session;
use super::sessions::Sessions;
use crate::error::Dead;
use crate::message::WsMessage;

/// A connection handler behind [`Sessions`] (`ServiceBuilder::new().layer(sessions)`):
/// calling it with a WebSocket `W` runs the session handshake, then calls the inner handler
/// with the new [`Session<W>`]. A call whose WebSocket resumed a session (handed to it), or
/// was refused (closed with the code that says why, logged at debug level), completes at
/// once with `Ok(Response::default())` without calling the handler.
///
/// So it asks more of the handler than the plain form does: `Clone` (a clone goes with each
/// call's future, which runs the handshake first), `Send + 'static` futures and a `Default`
/// response.
#[derive(Clone, Debug)]
pub struct SessionService<Svc> {
    inner: Svc,
    sessions: Sessions,
}

impl<Svc> Layer<Svc> for Sessions {
    type Service = SessionService<Svc>;

    fn layer(&self, inner: Svc) -> SessionService<Svc> {
        SessionService {
            inner,
            sessions: self.clone(),
        }
    }
}

impl<Svc, W, M, E> Service<W> for SessionService<Svc>
where
    Svc: Service<Session<W>> + Clone + Send + 'static,
    Svc::Future: Send + 'static,
    Svc::Response: Default + Send + 'static,
    Svc::Error: Send + 'static,
    W: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Response = Svc::Response;
    type Error = Svc::Error;
    type Future = BoxFuture<'static, Result<Svc::Response, Svc::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, ws: W) -> Self::Future {
        let sessions = self.sessions.clone();
        // The handler is called later, once the handshake says whether this is a new
        // session: a clone of it goes with the future (tower's usual way), and the one made
        // ready stays for the next call.
        let clone = self.inner.clone();
        let mut handler = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match sessions.accept(ws).await {
                Ok(Some(session)) => handler.call(session).await,
                Ok(None) => Ok(Svc::Response::default()),
                Err(err) => {
                    tracing::debug!(close = ?err.close_code(), "websocket session refused");
                    Ok(Svc::Response::default())
                }
            }
        })
    }
}
