//! axum 0.8: keepalive for an existing WebSocket handler by changing one `use` line.
//!
//! [`WebSocketUpgrade`] and [`WebSocket`] here stand in for axum's: the extractor hands the
//! callback a [`Heartbeat`] of axum's socket, which has axum's `recv`, `send` and `protocol`
//! methods (and is a `Stream + Sink` with axum's item and error types), so the handler body
//! does not change. The heartbeat's settings come from a [`HeartbeatLayer`] in the request
//! extensions (`Router::layer(Extension(layer))`), or from [`WebSocketUpgrade::heartbeat`],
//! or are the defaults.
//!
//! ```
//! use axum::{Extension, Router, response::Response, routing::get};
//! // Before: use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! use axum::extract::ws::Message;
//! use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};
//! use ws_heartbeat::{HeartbeatLayer, protocol::Json};
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(handle_socket)
//! }
//!
//! async fn handle_socket(mut socket: WebSocket) {
//!     while let Some(msg) = socket.recv().await {
//!         let Ok(msg) = msg else { return }; // a dead client ends here with an error
//!         if socket.send(msg).await.is_err() {
//!             return;
//!         }
//!     }
//! }
//!
//! let keepalive = HeartbeatLayer::new().protocol(Json::new()); // browsers ping with JSON
//! let app: Router = Router::new()
//!     .route("/ws", get(handler))
//!     .layer(Extension(keepalive));
//! ```
//!
//! A [`Dead`] peer surfaces as an `axum::Error` that [`Dead::find`] recognises.
//!
//! With [`HeartbeatLayer::resume`] in the layer, the callback gets a session
//! ([`crate::resume`]): it runs once per session, a socket that resumes one is handed to it
//! without a call, and a socket without a valid session handshake is closed with the code
//! that says why (PROTOCOL.md) without a call. Clones of one layer share its sessions, so
//! the layer in the request extensions serves every upgrade of the router.

use std::future::Future;

use ::axum::Error;
use ::axum::body::Bytes;
use ::axum::extract::FromRequestParts;
use ::axum::extract::ws::rejection::WebSocketUpgradeRejection;
use ::axum::extract::ws::{self, CloseFrame, Message, Utf8Bytes};
use ::axum::http::HeaderValue;
use ::axum::http::request::Parts;
use ::axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tower_layer::Layer;

use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppFrame, AppMessage};
use crate::resume::Sessions;

/// axum's WebSocket with a heartbeat: a drop-in for `axum::extract::ws::WebSocket`.
pub type WebSocket = Heartbeat<ws::WebSocket>;

impl WsMessage for Message {
    fn ping(payload: [u8; 8]) -> Self {
        Message::Ping(Bytes::copy_from_slice(&payload))
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }))
    }

    fn from_app(msg: AppMessage) -> Self {
        match msg {
            AppMessage::Text(text) => Message::Text(text.into()),
            AppMessage::Binary(bytes) => Message::Binary(bytes.into()),
        }
    }

    #[inline]
    fn kind(&self) -> MessageKind<'_> {
        match self {
            Message::Ping(_) => MessageKind::Ping,
            Message::Pong(payload) => MessageKind::Pong(payload),
            Message::Close(frame) => {
                MessageKind::Close(frame.as_ref().map(|f| (f.code, f.reason.as_str())))
            }
            Message::Text(_) | Message::Binary(_) => MessageKind::Data,
        }
    }

    #[inline]
    fn as_app(&self) -> Option<AppFrame<'_>> {
        match self {
            Message::Text(text) => Some(AppFrame::Text(text.as_str())),
            Message::Binary(bytes) => Some(AppFrame::Binary(bytes)),
            _ => None,
        }
    }
}

impl From<Dead> for Error {
    fn from(dead: Dead) -> Self {
        Error::new(dead)
    }
}

/// axum's inherent methods, so a handler written for axum's `WebSocket` compiles unchanged.
impl Heartbeat<ws::WebSocket> {
    /// Receives the next message, like `axum::extract::ws::WebSocket::recv`. Heartbeat
    /// traffic never comes out; a dead peer comes out as one `Err` (see [`Dead::find`]).
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// Sends a message, like `axum::extract::ws::WebSocket::send`.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        SinkExt::send(self, msg).await
    }

    /// The subprotocol chosen in the handshake, like `axum::extract::ws::WebSocket::protocol`.
    pub fn protocol(&self) -> Option<&HeaderValue> {
        match self.keepsake::<HeaderValue>() {
            // In background mode the socket is with its driver, and a session's sockets come
            // and go: the subprotocol was kept (a session's: its first socket's).
            Some(protocol) => Some(protocol),
            None if self.is_away() => None,
            None => self.get_ref().protocol(),
        }
    }
}

/// axum's `WebSocketUpgrade` extractor, handing the callback a [`WebSocket`] with a
/// heartbeat.
#[derive(Debug)]
#[must_use]
pub struct WebSocketUpgrade {
    inner: ws::WebSocketUpgrade,
    heartbeat: HeartbeatLayer,
}

impl WebSocketUpgrade {
    /// Completes the upgrade and runs `callback` with the socket, wrapped in the heartbeat.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let heartbeat = self.heartbeat;
        if heartbeat.settings().resume().is_some() {
            // Sessions: the callback runs once per session; a socket that resumes one is
            // handed to it, a refused one is closed with its code (logged at debug level).
            let sessions = Sessions::new(heartbeat);
            return self.inner.on_upgrade(move |socket| async move {
                // The handler's `protocol()`: the subprotocol of the session's first socket.
                let protocol = socket.protocol().cloned();
                match sessions.accept(socket).await {
                    Ok(Some(mut session)) => {
                        if let Some(protocol) = protocol {
                            session.keep_for_session(protocol);
                        }
                        callback(session).await
                    }
                    Ok(None) => {}
                    Err(err) => tracing::debug!(%err, "websocket session refused"),
                }
            });
        }
        self.inner.on_upgrade(move |socket| {
            let mut socket = heartbeat.layer(socket);
            // In background mode the driver starts before the handler runs.
            socket.start_background(|ws| ws.protocol().cloned());
            callback(socket)
        })
    }

    /// Heartbeat settings for this upgrade, instead of the ones in the request extensions.
    pub fn heartbeat(mut self, layer: HeartbeatLayer) -> Self {
        self.heartbeat = layer;
        self
    }

    /// Configures axum's extractor (subprotocols, frame and message sizes...).
    ///
    /// ```
    /// # fn f(ws: ws_heartbeat::axum::WebSocketUpgrade) -> ws_heartbeat::axum::WebSocketUpgrade {
    /// ws.map(|ws| ws.protocols(["chat"]).max_message_size(1 << 20))
    /// # }
    /// ```
    pub fn map(mut self, f: impl FnOnce(ws::WebSocketUpgrade) -> ws::WebSocketUpgrade) -> Self {
        self.inner = f(self.inner);
        self
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let inner = ws::WebSocketUpgrade::from_request_parts(parts, state).await?;
        let heartbeat = parts
            .extensions
            .get::<HeartbeatLayer>()
            .cloned()
            .unwrap_or_default();
        Ok(Self { inner, heartbeat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_is_found_inside_axum_error() {
        let dead = Dead::new(3, std::time::Duration::from_secs(30));
        let err: Error = dead.into();
        assert_eq!(Dead::find(&err), Some(&dead));
    }

    #[test]
    fn messages_are_classified_and_built() {
        assert_eq!(
            Message::Pong(Bytes::from_static(b"ab")).kind(),
            MessageKind::Pong(b"ab")
        );
        assert_eq!(
            Message::Text("x".into()).as_app(),
            Some(AppFrame::Text("x"))
        );
        assert_eq!(
            Message::from_app(AppMessage::Binary(vec![1])),
            Message::Binary(Bytes::from_static(&[1]))
        );
        let Message::Close(Some(frame)) = <Message as WsMessage>::close(1011, "keepalive timeout")
        else {
            panic!()
        };
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (1011, "keepalive timeout")
        );
    }
}
