//! A tokio-tungstenite client with a heartbeat: it sends a message every second, prints the
//! echo with the latest round-trip time, and stops when the server is found dead.
//!
//! ```text
//! cargo run --example hyper_server &
//! cargo run --example client                         # ws://127.0.0.1:3000, runs until stopped
//! cargo run --example client -- ws://host:port --seconds 10
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer, Stats};

/// Talks to the echo server at `url` for `seconds` (or until the connection ends) and
/// returns the heartbeat's counters.
pub async fn run(
    url: &str,
    keepalive: HeartbeatLayer,
    seconds: Option<u64>,
) -> Result<Stats, WsError> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut ws = keepalive.layer(ws);
    let handle = ws.handle();
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = every_second.tick() => {
                if seconds.is_some_and(|s| sent >= s) {
                    ws.close().await?;
                    // Read on until the server acknowledges the close.
                    while ws.next().await.transpose()?.is_some() {}
                    return Ok(handle.stats());
                }
                ws.send(Message::text(format!("hello {sent}"))).await?;
                sent += 1;
            }
            msg = ws.next() => match msg.transpose()? {
                Some(Message::Text(text)) => println!("echo: {text:<10} rtt: {:?}", handle.rtt()),
                Some(_) => {}
                None => return Ok(handle.stats()),
            },
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .iter()
        .find(|a| a.starts_with("ws://") || a.starts_with("wss://"))
        .map_or("ws://127.0.0.1:3000", String::as_str);
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let keepalive = HeartbeatLayer::new()
        .interval(Duration::from_secs(2))
        .max_missed(3);
    match run(url, keepalive, seconds).await {
        Ok(stats) => println!("closed: {stats:?}"),
        Err(err) => {
            match Dead::find(&err) {
                Some(dead) => eprintln!("server dead: {dead}"),
                None => eprintln!("connection failed: {err}"),
            }
            std::process::exit(1);
        }
    }
}
