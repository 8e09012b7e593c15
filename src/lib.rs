#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! A heartbeat for any WebSocket: keepalive pings on a schedule, dead-peer detection,
//! round-trip times, as a [`tower`](https://docs.rs/tower) layer.
//!
//! TCP keeps a silently broken connection "established" for hours (a pulled cable, a NAT
//! that forgot the flow, a phone that suspended the app, a frozen process), and proxies cut
//! connections that carry nothing for a minute. [`HeartbeatLayer`] wraps a WebSocket
//! `Stream + Sink` in a [`Heartbeat`] that pings the peer every interval, hides the pongs,
//! and ends the stream with a [`Dead`] error when the peer stops answering. The handler
//! keeps its types: same item, same error, so code written for the bare stream takes the
//! wrapped one unchanged.
//!
//! # Server: in front of an unchanged handler
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use tokio_tungstenite::{WebSocketStream, tungstenite::Error};
//! use tower::{ServiceBuilder, ServiceExt};
//! use ws_heartbeat::{Dead, Heartbeat, HeartbeatLayer};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let keepalive = HeartbeatLayer::new().interval(Duration::from_secs(20)).max_missed(3);
//!     let listener = TcpListener::bind("127.0.0.1:3000").await?;
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         let keepalive = keepalive.clone();
//!         tokio::spawn(async move {
//!             let ws = tokio_tungstenite::accept_async(tcp).await?;
//!             let handler = ServiceBuilder::new().layer(keepalive).service_fn(echo);
//!             if let Err(err) = handler.oneshot(ws).await {
//!                 if let Some(dead) = Dead::find(&err) {
//!                     eprintln!("client gone: {dead}");
//!                 }
//!             }
//!             Ok::<_, Error>(())
//!         });
//!     }
//! }
//!
//! async fn echo(mut ws: Heartbeat<WebSocketStream<TcpStream>>) -> Result<(), Error> {
//!     while let Some(msg) = ws.next().await {
//!         let msg = msg?;
//!         if msg.is_text() || msg.is_binary() {
//!             ws.send(msg).await?;
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Client
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite::Message;
//! use tower::Layer;
//! use ws_heartbeat::{Dead, HeartbeatLayer};
//!
//! # async fn client() -> Result<(), tokio_tungstenite::tungstenite::Error> {
//! let (ws, _) = tokio_tungstenite::connect_async("ws://127.0.0.1:3000").await?;
//! let mut ws = HeartbeatLayer::new().interval(Duration::from_secs(20)).layer(ws);
//! let heartbeat = ws.handle();
//! ws.send(Message::text("hello")).await?;
//! while let Some(msg) = ws.next().await {
//!     match msg {
//!         Ok(msg) => println!("{msg} (round trip {:?})", heartbeat.rtt()),
//!         Err(err) if Dead::find(&err).is_some() => break, // the server is gone: reconnect
//!         Err(err) => return Err(err),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Browsers
//!
//! Browsers answer WebSocket pings but cannot send them. With
//! [`HeartbeatLayer::protocol`] the layer heartbeats with ordinary messages instead
//! ([`protocol::Json`], [`protocol::Text`], [`protocol::BinaryCommand`], or your own
//! [`protocol::HeartbeatProtocol`]): it answers and hides the page's pings and pings the page
//! the same way. A page that slows its heartbeat can ask the server to follow
//! ([`HeartbeatLayer::follow_peer_interval`]). With the `axum` feature, `ws_heartbeat::axum`
//! has drop-ins for axum's `WebSocketUpgrade` and `WebSocket`, so an axum handler gets
//! keepalive by changing one `use` line; with the `actix` feature,
//! `ws_heartbeat::actix::handle` stands in for `actix_ws::handle` the same way. The page's side ships with the crate:
//! [`browser::SCRIPT`], the `ws-heartbeat.js` module (with the `axum` feature,
//! `browser::script` serves it).
//!
//! ```
//! use std::time::Duration;
//! use ws_heartbeat::{HeartbeatLayer, protocol::Json};
//!
//! // {"type":"ping","id":7} from the page is answered with {"type":"pong","id":7}.
//! let keepalive = HeartbeatLayer::new().interval(Duration::from_secs(20)).protocol(Json::new());
//! ```
//!
//! # Modes
//!
//! The plain [`Heartbeat`] runs inside the handler's polls, at no cost of its own, and asks of
//! the stream only that it is a WebSocket `Stream + Sink` (not `Send`, not `'static`). What
//! needs more is a type of its own, chosen when the layer is built:
//!
//! - [`background`]: [`HeartbeatLayer::background`] drives each connection from a task of
//!   its own ([`background::Background`]), so that its heartbeat keeps going while the
//!   handler is away (a slow database call between a request and its answer).
//! - [`resume`] (feature `resume`): [`HeartbeatLayer::resume`] gives
//!   [`resume::Sessions`]: every message reaches the other side exactly once and in order
//!   across reconnects, and the handler runs once per session ([`resume::Session`]).
//! - [`reconnect`] (feature `reconnect`): [`reconnect::Reconnect`] is a `Stream + Sink` of
//!   messages that connects through a function of yours, heartbeats every connection, and
//!   reconnects with exponential backoff and full jitter, keeping what the application sends
//!   meanwhile in a bounded buffer.
//!
//! The axum drop-in's `WebSocket` is one type whichever the layer chose.
//!
//! # Semantics
//!
//! Time runs in ticks of `interval`. At each tick:
//!
//! 1. **Alive?** The peer is alive if it was heard since the previous tick: any frame (data,
//!    ping, pong matched or not, Close, application heartbeat) by default, or only a pong
//!    answering one of our pings with
//!    [`any_inbound_is_alive(false)`](HeartbeatLayer::any_inbound_is_alive). Bytes moving on
//!    the transport count too, with [`Progress::track`] under the WebSocket and
//!    [`Heartbeat::with_progress`]: alive but slow (a huge message crawling either way) is
//!    not dead.
//! 2. **If alive**, the missed count is 0 and every ping sent so far is forgiven. **If not**,
//!    and a ping went out since the peer was last alive, one more is missed; at `max_missed`
//!    the peer is dead.
//! 3. **Then a ping**, unless [`idle_only`](HeartbeatLayer::idle_only) is on and the peer was
//!    alive. A ping the sink cannot take (the peer stopped reading) counts as sent and
//!    unanswered: backpressure does not hide a dead peer.
//!
//! What follows:
//!
//! - **Bounds.** A peer silent since `t0` is dead strictly after `t0 + interval × max_missed`
//!   and no later than `t0 + interval × (max_missed + 1)`, after exactly `max_missed`
//!   unanswered pings (with `idle_only`: one interval later on both bounds;
//!   [`HeartbeatLayer::detection_bound`]). Defaults: interval 10 s, `max_missed` 3: dead 30
//!   to 40 s after its last frame. The handshake counts as the first sign of life; in real
//!   time add the timer's rounding (under 1 ms) and scheduling delay to the upper bound.
//! - **First ticks** are jittered within the first interval, so connections opened together
//!   do not ping together (in groups of 64 opened in a row, see
//!   [`jitter`](HeartbeatLayer::jitter)).
//! - **Pongs** never reach the handler. Our pings carry a 32-bit sequence number (random at
//!   first, 8 bytes on the wire); a pong matches if its number is one of the outstanding
//!   pings', and answers that ping and every earlier one. Other pongs are traffic, never an
//!   error, and never an answer (a forged one matches one guess in 2^32).
//! - **Round trips:** a pong answering the latest ping gives a sample, from handing the ping
//!   to the sink to reading the pong, read through [`HeartbeatHandle::rtt`] and logged with
//!   `tracing` at debug level.
//! - **The peer's pings** are answered exactly once, by the WebSocket library itself, or by
//!   the heartbeat for a library that leaves that to the application (actix-ws,
//!   [`WsMessage::answer_ping`]), and hidden unless
//!   [`forward_pings`](HeartbeatLayer::forward_pings). The next frame is read only once the
//!   answer is flushed, so a peer that floods pings without reading meets backpressure, not
//!   our memory.
//! - **Death:** the stream yields one `Err` carrying [`Dead`] (inside the inner error type:
//!   `tungstenite::Error::Io` of kind `TimedOut`, and likewise for the other libraries;
//!   [`Dead::find`] recognises it), then ends; the sink reports it on every call. A Close
//!   frame (1011, "keepalive timeout") is attempted within
//!   [`close_timeout`](HeartbeatLayer::close_timeout), never delaying the error.
//! - **Overload.** On a runtime with more work than threads ticks run late. A late tick reads
//!   what the socket already holds before it judges, counts at most one miss, and gives each
//!   ping a full interval, so no answering peer is declared dead for our lateness; a dead one
//!   is found late by the lateness (with every tick at most `L` late, by
//!   `t0 + (max_missed + 1) × (interval + L)`). [`tick_lag`] tells how late ticks run, and a
//!   `tracing` warning says so at most every 10 s: raise the interval.
//! - **Shutdown.** [`HeartbeatLayer::drain`] closes every connection of a layer with 1012
//!   (service restart), each at its own moment of a window, and resolves with a
//!   [`DrainReport`] once they are gone.
//!
//! The heartbeat runs inside the stream's `poll_next` and the sink's `poll_*` calls: no task
//! is spawned per connection (one shared timer task per runtime). A handler that reads in a
//! loop, or that writes steadily, keeps it running (a handler that only writes gets its
//! pongs read for it, see [`Heartbeat`]); a handler that is away for longer than the dead
//! bound holds it still: use [`background`], or `split()` the stream and keep a reader loop
//! going (which it needs anyway for the WebSocket library to answer pings and Close frames).
//!
//! # Cost
//!
//! Per message the adapter checks whether its deadline has come (one atomic load), classifies
//! the message and sets a flag: no clock read, no timer reset, no allocation (tested).
//! Echoing small messages through tokio-tungstenite costs about 1% more instructions than the
//! bare stream and less than the usual hand-written `tokio::select!` loop (BENCHMARKS.md,
//! "Per message: instructions").
//!
//! Timers: the connections of one runtime share one timer. Each files its next deadline once
//! per tick with the runtime's ticker, a single task (started by the first filing, ended
//! once nothing has been filed for a second) that wakes the connections whose millisecond has
//! come. Ticks are rounded up to the millisecond, like tokio's own timers.
//!
//! Memory per connection, beside the wrapped stream: the adapter's fields, one `Arc` shared
//! with [`HeartbeatHandle`]s (counters and wakers) and an entry in the ticker's list
//! (BENCHMARKS.md, "At scale").
//!
//! # Logging
//!
//! Events go through `tracing`, at the rare moments only (never per message). Each line of a
//! connection carries `conn`, an id of the connection (its shared state's address in hex,
//! unique while it lives: nothing is stored or allocated for it), and `layer`, its layer's
//! [name](HeartbeatLayer::name), the label of its metrics (feature `metrics`): a line and a
//! metric tie together by `layer`, lines of one connection by `conn`.
//!
//! | level | message | fields |
//! |---|---|---|
//! | debug | `websocket connection opened` | `conn`, `layer` (at its first poll) |
//! | debug | `websocket connection ended` | `conn`, `layer`, `cause` (`peer_close`, `local_close`, `error`, and `drained`; a death and a drop log otherwise) |
//! | warn | `websocket peer is dead` | `conn`, `layer`, `missed`, `silent_for` |
//! | trace | `websocket heartbeat round trip` | `conn`, `rtt` |
//! | warn | `websocket heartbeat ticks run late: …` | `late`, `interval`, `late_ticks` (process-wide, at most every 10 s; [`tick_lag`]) |
//! | info | `websocket drain begins`, `websocket drain over` | `layer`, `window`; `report` |
//! | info | `websocket drained: no answer to the Close within the close timeout` | `conn`, `layer` |
//! | info | `websocket session lost` | `session` (its id), `lost` (why, and the messages unconfirmed) |
//! | debug | `websocket session refused` | `close` or `err` (the axum drop-in and `SessionService`) |
//! | debug | `reconnecting websocket` | `event` (each `reconnect::Event`) |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tungstenite` | yes | [`WsMessage`] for `tungstenite::Message` and `From<Dead>` for `tungstenite::Error`: tokio-tungstenite, hyper-tungstenite and everything else on tungstenite 0.30 |
//! | `json` | yes | `protocol::Json`, the JSON application heartbeat (brings in `serde` and `serde_json`) |
//! | `reconnect` | yes | `ws_heartbeat::reconnect`, the reconnecting client |
//! | `resume` | yes | `ws_heartbeat::resume`, sessions that survive reconnects (and, with `reconnect`, the client's side of them); brings in `getrandom` for their secrets |
//! | `axum` | no | `ws_heartbeat::axum`: drop-ins for axum 0.8's `WebSocketUpgrade` and `WebSocket`, [`WsMessage`] for its `Message`, `From<Dead>` for `axum::Error`; `browser::script`, the handler that serves the browser module |
//! | `actix` | no | `ws_heartbeat::actix`: `handle`, a drop-in for actix-ws 0.4's (actix-web 4), whose `MessageStream` heartbeats and answers the client's pings; [`WsMessage`] for `actix_ws::Message`, `From<Dead>` for `actix_ws::ProtocolError`. Needs Rust 1.88 (actix-ws's own minimum) |
//! | `tokio-websockets` | no | [`WsMessage`] for `tokio_websockets::Message`, `From<Dead>` for `tokio_websockets::Error`: `HeartbeatLayer::layer` takes its `WebSocketStream`, server or client. Needs Rust 1.89 (tokio-websockets' own minimum) |
//! | `metrics` | no | `ws_heartbeat::metrics`: connections, ends by cause, deaths, pings, RTT, tick lag, sessions and reconnects through the `metrics` facade, labelled by [`HeartbeatLayer::name`] |
//!
//! Other message types plug in by implementing [`WsMessage`]; their error type needs
//! `From<Dead>` (`std::io::Error` has it). The [`protocol::Text`] and
//! [`protocol::BinaryCommand`] heartbeats, [`background`] mode, and the browser module's text
//! ([`browser`]) need no feature. With `default-features = false` the crate needs only tokio,
//! tower's two traits, futures' core traits and tracing.
//!
//! # Reading the settings back, taking the stream apart
//!
//! Each setting of a [`HeartbeatLayer`] is set by its method of that name and read back
//! under the same name from [`HeartbeatLayer::settings`] (`layer.settings().interval()`); a
//! live connection's interval is on its [`HeartbeatHandle`]. [`Heartbeat::into_parts`] stops
//! the heartbeat and returns the wrapped stream with the message the writing side may have
//! read ahead for a send-only handler ([`Heartbeat::into_inner`] drops it).

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod background;
pub mod browser;
mod config;
mod drain;
mod ending;
mod error;
mod filing;
#[cfg(any(feature = "resume", feature = "reconnect"))]
mod halves;
mod handle;
mod heartbeat;
mod kit;
mod lag;
mod layer;
mod message;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod pacemaker;
mod progress;
pub mod protocol;
mod random;
#[cfg(feature = "reconnect")]
#[cfg_attr(docsrs, doc(cfg(feature = "reconnect")))]
pub mod reconnect;
#[cfg(feature = "resume")]
#[cfg_attr(docsrs, doc(cfg(feature = "resume")))]
pub mod resume;
mod service;
mod stamp;
mod sync;
mod ticker;
mod wake;

#[cfg(test)]
mod auto_traits;
#[cfg(all(test, feature = "json"))]
mod vectors;

/// Cases per property test: `PROPTEST_CASES` if set (CI's fuzz step raises it), else
/// `default`.
#[cfg(test)]
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

pub use drain::DrainReport;
pub use error::Dead;
pub use handle::{HeartbeatHandle, Stats};
pub use heartbeat::Heartbeat;
pub use lag::{TickLag, tick_lag};
pub use layer::{HeartbeatLayer, Settings};
pub use message::{MessageKind, WsMessage};
pub use progress::{Progress, Tracked};
