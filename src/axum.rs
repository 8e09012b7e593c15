//! axum 0.8: keepalive for an existing WebSocket handler by changing one `use` line.
//!
//! [`WebSocketUpgrade`] and [`WebSocket`] here stand in for axum's: the extractor hands the
//! callback a [`WebSocket`] with a heartbeat, which has axum's `recv`, `send` and `protocol`
//! methods (and is a `Stream + Sink` with axum's item and error types), so the handler body
//! does not change. The settings come from the request extensions
//! (`Router::layer(Extension(layer))`: a [`HeartbeatLayer`], a [`BackgroundLayer`] or
//! [`Sessions`]), or from [`WebSocketUpgrade::heartbeat`], or are
//! the defaults; the handler's `WebSocket` is one type whichever they are.
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
//! With [`Sessions`] ([`HeartbeatLayer::resume`]), the callback
//! gets a session ([`crate::resume`]): it runs once per session, a socket that resumes one
//! is handed to it without a call, and a socket without a valid session handshake is closed
//! with the code that says why (PROTOCOL.md) without a call. Clones of `Sessions` share its
//! registry, so the one in the request extensions serves every upgrade of the router.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::Error;
use ::axum::body::Bytes;
use ::axum::extract::FromRequestParts;
use ::axum::extract::ws::rejection::WebSocketUpgradeRejection;
use ::axum::extract::ws::{self, CloseFrame, Message, Utf8Bytes};
use ::axum::http::HeaderValue;
use ::axum::http::request::Parts;
use ::axum::response::Response;
use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};

use crate::background::{Background, BackgroundLayer};
use crate::error::Dead;
use crate::handle::HeartbeatHandle;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppFrame, AppMessage, SharedFrame};
#[cfg(feature = "resume")]
use crate::resume::{Session, Sessions};

/// axum's WebSocket with a heartbeat: a drop-in for `axum::extract::ws::WebSocket`, with its
/// `recv`, `send` and `protocol`, and a `Stream + Sink` of axum's `Message` and `Error`.
///
/// One type whatever the settings: inside it is a [`Heartbeat`], a [`Background`] or a
/// [`Session`], as the layer chose (see [`Keepalive`]), so a
/// handler's signature does not change with them.
#[must_use = "streams do nothing unless polled"]
pub struct WebSocket {
    mode: Mode,
}

/// What a [`WebSocket`] is inside, as the layer chose.
enum Mode {
    Plain(Heartbeat<ws::WebSocket>),
    /// With the subprotocol of the handshake, kept before the socket went to its driver.
    Background(Background<ws::WebSocket>, Option<HeaderValue>),
    /// With the subprotocol of the session's first socket.
    #[cfg(feature = "resume")]
    Session(Session<ws::WebSocket>, Option<HeaderValue>),
}

/// The settings a [`WebSocketUpgrade`] runs a socket with: a plain [`HeartbeatLayer`], a
/// [`BackgroundLayer`] ([`HeartbeatLayer::background`]) or [`Sessions`]
/// ([`HeartbeatLayer::resume`]). Each converts into it, so
/// [`WebSocketUpgrade::heartbeat`] takes any of them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Keepalive {
    /// A heartbeat in the handler's task ([`Heartbeat`]).
    Plain(HeartbeatLayer),
    /// A heartbeat on a task of its own ([`Background`]).
    Background(BackgroundLayer),
    /// Sessions: the callback runs once per session ([`Session`]).
    #[cfg(feature = "resume")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
    Sessions(Sessions),
}

impl From<HeartbeatLayer> for Keepalive {
    fn from(layer: HeartbeatLayer) -> Self {
        Keepalive::Plain(layer)
    }
}

impl From<BackgroundLayer> for Keepalive {
    fn from(layer: BackgroundLayer) -> Self {
        Keepalive::Background(layer)
    }
}

#[cfg(feature = "resume")]
impl From<Sessions> for Keepalive {
    fn from(sessions: Sessions) -> Self {
        Keepalive::Sessions(sessions)
    }
}

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

    fn shared(&self) -> Option<SharedFrame> {
        match self {
            Message::Text(text) => Some(SharedFrame::Text(text.clone().into())),
            Message::Binary(bytes) => Some(SharedFrame::Binary(bytes.clone())),
            _ => None,
        }
    }

    fn from_shared(frame: SharedFrame) -> Self {
        match frame {
            // Taken from a text message, the check passes (the only way to a `Utf8Bytes`
            // without `unsafe`); a broken `shared` loses nothing either.
            SharedFrame::Text(bytes) => match Utf8Bytes::try_from(bytes.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::text(String::from_utf8_lossy(&bytes).into_owned()),
            },
            SharedFrame::Binary(bytes) => Message::Binary(bytes),
        }
    }
}

impl From<Dead> for Error {
    fn from(dead: Dead) -> Self {
        Error::new(dead)
    }
}

/// axum's inherent methods, so a handler written for axum's `WebSocket` compiles unchanged.
impl WebSocket {
    /// Receives the next message, like `axum::extract::ws::WebSocket::recv`. Heartbeat
    /// traffic never comes out; a dead peer comes out as one `Err` (see [`Dead::find`]).
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// Sends a message, like `axum::extract::ws::WebSocket::send`.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        SinkExt::send(self, msg).await
    }

    /// The subprotocol chosen in the handshake, like `axum::extract::ws::WebSocket::protocol`
    /// (a session's: its first socket's).
    pub fn protocol(&self) -> Option<&HeaderValue> {
        match &self.mode {
            Mode::Plain(ws) => ws.get_ref().protocol(),
            Mode::Background(_, protocol) => protocol.as_ref(),
            #[cfg(feature = "resume")]
            Mode::Session(_, protocol) => protocol.as_ref(),
        }
    }

    /// A handle to the heartbeat: RTT, counters, and the interval (a session's follows it
    /// from socket to socket).
    pub fn handle(&self) -> HeartbeatHandle {
        match &self.mode {
            Mode::Plain(ws) => ws.handle(),
            Mode::Background(ws, _) => ws.handle(),
            #[cfg(feature = "resume")]
            Mode::Session(session, _) => session.handle(),
        }
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().mode {
            Mode::Plain(ws) => Pin::new(ws).poll_next(cx),
            Mode::Background(ws, _) => Pin::new(ws).poll_next(cx),
            #[cfg(feature = "resume")]
            Mode::Session(session, _) => Pin::new(session).poll_next(cx),
        }
    }
}

impl FusedStream for WebSocket {
    fn is_terminated(&self) -> bool {
        match &self.mode {
            Mode::Plain(ws) => ws.is_terminated(),
            Mode::Background(ws, _) => ws.is_terminated(),
            #[cfg(feature = "resume")]
            Mode::Session(session, _) => session.is_terminated(),
        }
    }
}

/// Forwards a sink operation to whatever the socket is inside.
macro_rules! each_mode {
    ($self:ident, $ws:ident => $call:expr) => {
        match &mut $self.get_mut().mode {
            Mode::Plain($ws) => {
                let $ws = Pin::new($ws);
                $call
            }
            Mode::Background($ws, _) => {
                let $ws = Pin::new($ws);
                $call
            }
            #[cfg(feature = "resume")]
            Mode::Session($ws, _) => {
                let $ws = Pin::new($ws);
                $call
            }
        }
    };
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    #[inline]
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each_mode!(self, ws => ws.poll_ready(cx))
    }

    #[inline]
    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        each_mode!(self, ws => ws.start_send(msg))
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each_mode!(self, ws => ws.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each_mode!(self, ws => ws.poll_close(cx))
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Plain(ws) => ws.fmt(f),
            Mode::Background(ws, _) => ws.fmt(f),
            #[cfg(feature = "resume")]
            Mode::Session(session, _) => session.fmt(f),
        }
    }
}

/// axum's `WebSocketUpgrade` extractor, handing the callback a [`WebSocket`] with a
/// heartbeat.
#[derive(Debug)]
#[must_use]
pub struct WebSocketUpgrade {
    inner: ws::WebSocketUpgrade,
    keepalive: Keepalive,
}

impl WebSocketUpgrade {
    /// Completes the upgrade and runs `callback` with the socket, wrapped in the heartbeat.
    /// With [`Sessions`], the callback runs once per session: a
    /// socket that resumes one is handed to it, a refused one is closed with its code
    /// (logged at debug level), neither calls it.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.keepalive {
            Keepalive::Plain(layer) => self.inner.on_upgrade(move |socket| {
                callback(WebSocket {
                    mode: Mode::Plain(layer.wrap(socket)),
                })
            }),
            Keepalive::Background(layer) => self.inner.on_upgrade(move |socket| {
                let protocol = socket.protocol().cloned();
                let mut socket = layer.wrap(socket);
                // The driver starts before the handler runs, which may be away before its
                // first read.
                socket.start();
                callback(WebSocket {
                    mode: Mode::Background(socket, protocol),
                })
            }),
            #[cfg(feature = "resume")]
            Keepalive::Sessions(sessions) => self.inner.on_upgrade(move |socket| async move {
                let protocol = socket.protocol().cloned();
                match sessions.accept(socket).await {
                    Ok(Some(session)) => {
                        callback(WebSocket {
                            mode: Mode::Session(session, protocol),
                        })
                        .await
                    }
                    Ok(None) => {}
                    Err(err) => tracing::debug!(%err, "websocket session refused"),
                }
            }),
        }
    }

    /// Heartbeat settings for this upgrade, instead of the ones in the request extensions:
    /// a [`HeartbeatLayer`], a [`BackgroundLayer`] or [`Sessions`].
    pub fn heartbeat(mut self, keepalive: impl Into<Keepalive>) -> Self {
        self.keepalive = keepalive.into();
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

/// The settings in the request extensions: a [`HeartbeatLayer`], a [`BackgroundLayer`] or
/// [`Sessions`], looked for in that order; the defaults without.
fn keepalive_of(parts: &Parts) -> Keepalive {
    let extensions = &parts.extensions;
    if let Some(layer) = extensions.get::<HeartbeatLayer>() {
        return layer.clone().into();
    }
    if let Some(layer) = extensions.get::<BackgroundLayer>() {
        return layer.clone().into();
    }
    #[cfg(feature = "resume")]
    if let Some(sessions) = extensions.get::<Sessions>() {
        return sessions.clone().into();
    }
    HeartbeatLayer::new().into()
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let inner = ws::WebSocketUpgrade::from_request_parts(parts, state).await?;
        let keepalive = keepalive_of(parts);
        Ok(Self { inner, keepalive })
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
    fn text_and_binary_payloads_are_shared() {
        crate::message::assert_shares([Message::text("text"), Message::binary(vec![1, 2])]);
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
