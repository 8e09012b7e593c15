//! The echo server the Autobahn conformance cases run against (tests/autobahn): with the
//! heartbeat, or `--bare` without it, to compare the two.
//!
//! ```text
//! cargo run --release --example autobahn_echo -- 127.0.0.1:9001 [--bare] [--interval-ms 60000]
//! ```
//!
//! The first tick comes after exactly one interval (no jitter): with the default 60 s no
//! ping of ours falls inside a case, whose strict event lists would count it as a failure.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

async fn echo<S>(mut ws: S)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:9001", String::as_str);
    let bare = args.iter().any(|a| a == "--bare");
    let interval = args
        .iter()
        .position(|a| a == "--interval-ms")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let keepalive = HeartbeatLayer::new().interval(interval).jitter(false);
    let listener = TcpListener::bind(addr).await?;
    println!(
        "listening on {} ({})",
        listener.local_addr()?,
        if bare { "bare" } else { "with heartbeat" }
    );
    // The suite's largest messages are 16 MiB.
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    loop {
        let (tcp, _) = listener.accept().await?;
        let keepalive = keepalive.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
                return;
            };
            if bare {
                echo(ws).await;
            } else {
                echo(keepalive.layer(ws)).await;
            }
        });
    }
}
