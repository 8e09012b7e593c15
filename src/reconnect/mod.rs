//! A client that survives its server: [`Reconnect`] is a `Stream + Sink` of messages that
//! connects through a function of yours, wraps every connection in a [`Heartbeat`](crate::Heartbeat), and
//! reconnects with exponential backoff and full jitter when a connection dies.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite::Message;
//! use ws_heartbeat::HeartbeatLayer;
//! use ws_heartbeat::reconnect::{Backoff, Reconnect};
//!
//! # async fn run() -> Result<(), ws_heartbeat::reconnect::Error> {
//! let url = "ws://127.0.0.1:3000";
//! let mut client = Reconnect::builder(move || async move {
//!     tokio_tungstenite::connect_async(url).await.map(|(ws, _response)| ws)
//! })
//! .heartbeat(HeartbeatLayer::new().interval(Duration::from_secs(10)))
//! .backoff(Backoff::new().initial(Duration::from_millis(500)).max_delay(Duration::from_secs(30)))
//! .on_connect(|mut ws| async move {
//!     ws.send(Message::text(r#"{"auth":"token"}"#)).await?; // before anything else
//!     Ok::<_, tokio_tungstenite::tungstenite::Error>(ws)
//! })
//! .on_event(|event| println!("{event:?}"))
//! .build();
//!
//! client.send(Message::text("hello")).await?; // waits in the buffer while disconnected
//! while let Some(msg) = client.next().await {
//!     println!("{:?}", msg?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//!
//! - The first connection is attempted at the first poll. When a connection or an attempt
//!   ends, the next attempt waits for a delay drawn from the [`Backoff`] (full jitter); the
//!   retry count starts again only after a connection has stayed up for the stability window
//!   ([`ReconnectBuilder::stable_after`], default 30 s), so a server that accepts and then
//!   drops connections is backed off from like one that refuses them.
//! - Each attempt has a connect timeout ([`ReconnectBuilder::connect_timeout`], default
//!   10 s): a handshake that hangs is a failed attempt.
//! - One attempt at a time, whatever mix of errors on the reading and the writing side ended
//!   the connection.
//! - No reconnection after the application closes the client (`close()`), after a server
//!   close that [`ReconnectBuilder::final_close`] marks final (by default 1000 normal
//!   closure, 1008 policy violation, and 4000-4999, the application's own codes, e.g. a
//!   kick), or after [`Backoff::max_retries`]. Everything else (a dead server, I/O errors, a
//!   connection that ends without a Close frame, other close codes such as 1001 going away or
//!   1012 restart) reconnects.
//! - Messages sent while disconnected wait in a bounded buffer
//!   ([`ReconnectBuilder::buffer`], default 256) and go out in order once connected, after
//!   the on-connect hook. When the buffer is full, `poll_ready` waits, or with
//!   [`Overflow::Fail`] fails with [`Error::BufferFull`] without taking the message. Nothing
//!   is dropped silently: [`Event::Disconnected`] counts the messages handed to a connection
//!   after the server was last heard from, [`Event::Closed`] the ones never sent.
//! - The stream yields the server's messages (not its Close frame: that is an event). After
//!   `close()` it yields what still arrives until the server completes the closing handshake,
//!   then `None`; a client that ends otherwise yields one [`Error`] (`GaveUp`, `Rejected`),
//!   then `None`.
//!
//! Like [`Heartbeat`](crate::Heartbeat), it runs inside `poll`: keep reading (or sending) for it to make
//! progress. The event callback runs inside those polls, so keep it short (a channel send).
//!
//! The design: ARCHITECTURE.md, "The reconnecting client".

mod backoff;
mod builder;
mod client;
mod error;
mod event;
#[cfg(feature = "resume")]
mod session;

use std::error::Error as StdError;

use futures_core::Stream;
use futures_sink::Sink;

pub use backoff::Backoff;
pub use builder::{Overflow, ReconnectBuilder};
pub use client::Reconnect;
pub use error::{Error, Reason, SharedError};
pub use event::Event;

use crate::error::Dead;
use crate::message::WsMessage;

/// A WebSocket connection a [`Reconnect`] can use: a `Stream + Sink` of messages such as
/// tokio-tungstenite's `WebSocketStream`. Implemented for every type that fits.
pub trait Connection:
    Stream<Item = Result<Self::Message, Self::WsError>>
    + Sink<Self::Message, Error = Self::WsError>
    + Unpin
    + Send
    + 'static
{
    /// The message type.
    type Message: WsMessage + Send + Sync + 'static;
    /// The error type.
    type WsError: From<Dead> + StdError + Send + Sync + 'static;
}

impl<S, M, E> Connection for S
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + StdError + Send + Sync + 'static,
{
    type Message = M;
    type WsError = E;
}
