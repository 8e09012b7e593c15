//! actix-web 4 with actix-ws 0.4: keepalive for an existing handler by changing one call.
//!
//! [`handle`] stands in for `actix_ws::handle`: same arguments, same `(response, session,
//! stream)`, and the [`MessageStream`] it returns has actix-ws's `recv` and `max_frame_size`
//! and is a `Stream` of the same items, so a handler body written for actix-ws runs
//! unchanged. While the handler reads it, the stream pings the client through a clone of the
//! session, answers the client's pings (actix-ws leaves that to the handler; here it is done
//! for it, exactly once per ping), hides pings and pongs, answers and hides application
//! heartbeats when the layer has a [`protocol`](HeartbeatLayer::protocol), and ends with an
//! error carrying [`Dead`] when the client stops answering, after a best-effort Close frame
//! (1011) that also closes the handler's session.
//!
//! The settings come from a `web::Data<HeartbeatLayer>` in the app data (or a plain
//! `HeartbeatLayer` there), else the defaults; [`handle_with`] takes them explicitly and
//! [`wrap`] wraps what `actix_ws::handle_with_protocols` returned.
//!
//! actix-ws's own documented handler, with [`handle`] swapped in and nothing else changed
//! (the `Ping` arm never runs now: pings are answered and hidden before the handler sees
//! them):
//!
//! ```no_run
//! use std::io;
//! use actix_web::{middleware::Logger, web, App, HttpRequest, HttpServer, Responder};
//! use actix_ws::Message;
//! use ws_heartbeat::HeartbeatLayer;
//!
//! async fn ws(req: HttpRequest, body: web::Payload) -> actix_web::Result<impl Responder> {
//!     let (response, mut session, mut msg_stream) = ws_heartbeat::actix::handle(&req, body)?;
//!
//!     actix_web::rt::spawn(async move {
//!         while let Some(Ok(msg)) = msg_stream.recv().await {
//!             match msg {
//!                 Message::Ping(bytes) => {
//!                     if session.pong(&bytes).await.is_err() {
//!                         return;
//!                     }
//!                 }
//!
//!                 Message::Text(msg) => println!("Got text: {msg}"),
//!                 _ => break,
//!             }
//!         }
//!
//!         let _ = session.close(None).await;
//!     });
//!
//!     Ok(response)
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> io::Result<()> {
//!     let keepalive = web::Data::new(HeartbeatLayer::new()); // settings, optional
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(keepalive.clone())
//!             .route("/ws", web::get().to(ws))
//!             .wrap(Logger::default())
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! - **Only while read.** The handler writes through actix-ws's own [`Session`], which the
//!   heartbeat does not see; the heartbeat runs inside the stream's polls. A handler that
//!   only writes keeps a reader loop going (`actix_web::rt::spawn` one), as the documented
//!   handler does: the reader gets the `Dead` error, and the writer's next send fails with
//!   `Closed`, the death's Close frame having closed the session.
//! - **`Dead`** arrives as `ProtocolError::Io`, an [`std::io::Error`] of kind
//!   [`TimedOut`](std::io::ErrorKind::TimedOut) carrying it: [`Dead::find`] recognises it.
//! - **A closed session** (the handler closed it, or the connection is gone) takes our pings
//!   and pongs and drops them, as the closed connection would: the stream then reports what
//!   the connection itself says (the client's Close, the end), never an error of ours. A
//!   client that never finishes the close is found dead all the same.
//! - With [`forward_pings`](HeartbeatLayer::forward_pings) the client's pings reach the handler
//!   too, already answered: a handler that answers them as well sends a second pong.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::actix_web::{HttpRequest, HttpResponse, web};
use ::actix_ws::{CloseCode, CloseReason, Message, ProtocolError, Session};
use futures_core::Stream;
use futures_sink::Sink;

use crate::error::Dead;
use crate::handle::HeartbeatHandle;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppFrame, AppMessage, SharedFrame};

/// Begins handling WebSocket traffic, like `actix_ws::handle`, with a heartbeat on the stream.
///
/// The settings are those of a `web::Data<HeartbeatLayer>` in the app data
/// (`App::app_data(web::Data::new(layer))`), or of a `HeartbeatLayer` put there as it is,
/// else the defaults. The session is actix-ws's own; the stream pings through a clone of it.
///
/// # Errors
/// As `actix_ws::handle`: the request is not a valid WebSocket upgrade.
pub fn handle(
    req: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Session, MessageStream), ::actix_web::Error> {
    match layer_of(req) {
        Some(layer) => handle_with(layer, req, body),
        None => handle_with(&HeartbeatLayer::new(), req, body),
    }
}

/// [`handle`] with these settings, whatever the app data holds.
///
/// # Errors
/// As `actix_ws::handle`: the request is not a valid WebSocket upgrade.
pub fn handle_with(
    layer: &HeartbeatLayer,
    req: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Session, MessageStream), ::actix_web::Error> {
    let (response, session, stream) = ::actix_ws::handle(req, body)?;
    let stream = wrap(layer, stream, &session);
    Ok((response, session, stream))
}

/// Wraps what actix-ws handed out, for its other entry points
/// (`actix_ws::handle_with_protocols`): `stream` with a heartbeat that pings through a clone
/// of `session`.
///
/// ```no_run
/// # fn f(req: actix_web::HttpRequest, body: actix_web::web::Payload) -> actix_web::Result<()> {
/// let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, &["chat"])?;
/// let stream = ws_heartbeat::actix::wrap(&ws_heartbeat::HeartbeatLayer::new(), stream, &session);
/// # Ok(())
/// # }
/// ```
pub fn wrap(
    layer: &HeartbeatLayer,
    stream: ::actix_ws::MessageStream,
    session: &Session,
) -> MessageStream {
    MessageStream {
        inner: layer.wrap(Connection {
            stream,
            session: session.clone(),
            closed: false,
        }),
    }
}

fn layer_of(req: &HttpRequest) -> Option<&HeartbeatLayer> {
    req.app_data::<web::Data<HeartbeatLayer>>()
        .map(|data| data.get_ref())
        .or_else(|| req.app_data::<HeartbeatLayer>())
}

/// The client's messages, like `actix_ws::MessageStream`, with a heartbeat: pings and pongs
/// never come out, the client's pings are answered, and a dead client ends it with one
/// `Err` carrying [`Dead`].
///
/// Not `Send`, like actix-ws's: actix runs each connection on one worker thread.
#[must_use = "streams do nothing unless polled"]
pub struct MessageStream {
    inner: Heartbeat<Connection>,
}

impl MessageStream {
    /// Waits for the next message, like `actix_ws::MessageStream::recv`. Heartbeat traffic
    /// never comes out; a dead client comes out as one `Err` (see [`Dead::find`]), then the
    /// end.
    #[must_use]
    pub async fn recv(&mut self) -> Option<Result<Message, ProtocolError>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The largest frame accepted from the client, like
    /// `actix_ws::MessageStream::max_frame_size` (64 KiB by default). The heartbeat goes on
    /// as it was.
    pub fn max_frame_size(self, max_size: usize) -> Self {
        Self {
            inner: self.inner.map_inner(|connection| Connection {
                stream: connection.stream.max_frame_size(max_size),
                ..connection
            }),
        }
    }

    /// A handle to this connection's heartbeat: RTT, counters, and the interval.
    pub fn handle(&self) -> HeartbeatHandle {
        self.inner.handle()
    }
}

impl Stream for MessageStream {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("heartbeat", &self.inner.handle().stats())
            .finish_non_exhaustive()
    }
}

/// actix-ws's stream and a clone of its session as one `Stream + Sink`, which is what the
/// adapter wraps: it reads the stream and writes its pings and answers to the session.
struct Connection {
    stream: ::actix_ws::MessageStream,
    session: Session,
    /// The session refused a frame: it is closed (by the handler, or the connection is
    /// gone). Our frames are dropped from then on.
    closed: bool,
}

impl Stream for Connection {
    type Item = Result<Message, ProtocolError>;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

impl Connection {
    /// The session's `op`, a closed session taking everything: our pings and pongs on a
    /// closed connection are lost as any frame would be, and the handler hears of the close
    /// from the stream itself (the client's Close, the end), not from a heartbeat's error.
    fn session_op(
        mut self: Pin<&mut Self>,
        op: impl FnOnce(Pin<&mut Session>) -> Poll<Result<(), ::actix_ws::Closed>>,
    ) -> Poll<Result<(), ProtocolError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        match op(Pin::new(&mut self.session)) {
            Poll::Ready(Err(::actix_ws::Closed)) => {
                self.closed = true;
                Poll::Ready(Ok(()))
            }
            poll => poll.map(|_| Ok(())),
        }
    }
}

impl Sink<Message> for Connection {
    type Error = ProtocolError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        self.session_op(|session| session.poll_ready(cx))
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), ProtocolError> {
        if !self.closed && Pin::new(&mut self.session).start_send(msg).is_err() {
            self.closed = true;
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        self.session_op(|session| session.poll_flush(cx))
    }

    /// Closes the session for every clone (the handler's too): after the death's Close frame.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ProtocolError>> {
        self.session_op(|session| session.poll_close(cx))
    }
}

impl WsMessage for Message {
    fn ping(payload: [u8; 8]) -> Self {
        Message::Ping(::actix_web::web::Bytes::copy_from_slice(&payload))
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Message::Close(Some(CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
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
            Message::Close(reason) => MessageKind::Close(
                reason
                    .as_ref()
                    .map(|r| (u16::from(r.code), r.description.as_deref().unwrap_or(""))),
            ),
            // Continuation frames are the parts of a data message; `Nop` is never received.
            Message::Text(_) | Message::Binary(_) | Message::Continuation(_) | Message::Nop => {
                MessageKind::Data
            }
        }
    }

    #[inline]
    fn as_app(&self) -> Option<AppFrame<'_>> {
        match self {
            Message::Text(text) => Some(AppFrame::Text(text)),
            Message::Binary(bytes) => Some(AppFrame::Binary(bytes)),
            _ => None,
        }
    }

    fn shared(&self) -> Option<SharedFrame> {
        match self {
            Message::Text(text) => Some(SharedFrame::Text(text.as_bytes().clone())),
            Message::Binary(bytes) => Some(SharedFrame::Binary(bytes.clone())),
            _ => None,
        }
    }

    fn from_shared(frame: SharedFrame) -> Self {
        match frame {
            // Taken from a text message, the check passes (the only way to a `ByteString`
            // without `unsafe`); a broken `shared` loses nothing either.
            SharedFrame::Text(bytes) => match bytes.clone().try_into() {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Text(String::from_utf8_lossy(&bytes).into_owned().into()),
            },
            SharedFrame::Binary(bytes) => Message::Binary(bytes),
        }
    }

    /// actix-ws hands the client's pings to the handler and answers none: the heartbeat
    /// answers each with a pong carrying the same payload (a cheap clone of its `Bytes`).
    #[inline]
    fn answer_ping(&self) -> Option<Self> {
        match self {
            Message::Ping(payload) => Some(Message::Pong(payload.clone())),
            _ => None,
        }
    }
}

impl From<Dead> for ProtocolError {
    fn from(dead: Dead) -> Self {
        ProtocolError::Io(dead.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::actix_web::web::Bytes;
    use std::io;

    #[test]
    fn text_and_binary_payloads_are_shared() {
        crate::message::assert_shares([
            Message::Text("text".into()),
            Message::Binary(Bytes::from(vec![1, 2])),
        ]);
    }

    #[test]
    fn dead_is_found_inside_a_protocol_error_of_kind_timed_out() {
        let dead = Dead::new(3, std::time::Duration::from_secs(30));
        let err: ProtocolError = dead.into();
        assert!(matches!(&err, ProtocolError::Io(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(Dead::find(&err), Some(&dead));
    }

    #[test]
    fn settings_come_from_the_app_data_as_data_or_bare() {
        use ::actix_web::test::TestRequest;
        use std::time::Duration;

        let layer = HeartbeatLayer::new().interval(Duration::from_secs(7));
        let interval = |req: &HttpRequest| layer_of(req).map(|l| l.settings().interval());
        let req = TestRequest::default()
            .app_data(web::Data::new(layer.clone()))
            .to_http_request();
        assert_eq!(interval(&req), Some(Duration::from_secs(7)));
        let req = TestRequest::default().app_data(layer).to_http_request();
        assert_eq!(interval(&req), Some(Duration::from_secs(7)));
        // None: `handle` then uses the defaults.
        assert_eq!(interval(&TestRequest::default().to_http_request()), None);
    }

    #[test]
    fn messages_are_classified_built_and_pings_answered() {
        assert_eq!(
            Message::Ping(Bytes::from_static(b"a")).kind(),
            MessageKind::Ping
        );
        assert_eq!(
            Message::Pong(Bytes::from_static(b"ab")).kind(),
            MessageKind::Pong(b"ab")
        );
        assert_eq!(Message::Close(None).kind(), MessageKind::Close(None));
        assert_eq!(Message::Nop.kind(), MessageKind::Data);
        assert_eq!(
            Message::Text("x".into()).as_app(),
            Some(AppFrame::Text("x"))
        );
        assert_eq!(
            Message::from_app(AppMessage::Binary(vec![1])),
            Message::Binary(Bytes::from_static(&[1]))
        );
        assert_eq!(
            Message::Ping(Bytes::from_static(b"seq")).answer_ping(),
            Some(Message::Pong(Bytes::from_static(b"seq")))
        );
        assert_eq!(Message::Text("ping".into()).answer_ping(), None);
        let close = <Message as WsMessage>::close(1011, "keepalive timeout");
        assert_eq!(
            close.kind(),
            MessageKind::Close(Some((1011, "keepalive timeout")))
        );
    }
}
