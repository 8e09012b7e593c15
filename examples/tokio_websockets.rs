//! tokio-websockets 0.13 with keepalive on both ends: an echo server whose handler is
//! tokio-websockets' own echo loop, and a client that talks to it. On each side
//! `HeartbeatLayer::layer` wraps the `WebSocketStream` and nothing else changes.
//!
//! ```text
//! cargo run --example tokio_websockets                      # a server and a client, 5 s
//! cargo run --example tokio_websockets -- server 127.0.0.1:3001
//! cargo run --example tokio_websockets -- client ws://127.0.0.1:3001 --seconds 10
//! ```

use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_websockets::{ClientBuilder, Error, Message, ServerBuilder};
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer, Stats};

/// The handler, exactly as it would be without keepalive: echo text and binary messages.
pub async fn echo<S>(mut ws: S) -> Result<(), Error>
where
    S: Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Unpin,
{
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// How one server connection ended.
#[derive(Debug)]
pub struct Ended {
    /// From the handshake to the end.
    pub lasted: Duration,
    pub result: Result<(), Error>,
    pub stats: Stats,
}

/// Accepts WebSockets on `listener` and echoes on each behind `keepalive`, reporting each
/// connection's end on `ended`.
pub async fn serve(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (keepalive, ended) = (keepalive.clone(), ended.clone());
        tokio::spawn(async move {
            let Ok((_request, ws)) = ServerBuilder::new().accept(tcp).await else {
                return;
            };
            let connected = Instant::now();
            let ws = keepalive.layer(ws);
            let handle = ws.handle();
            let result = echo(ws).await;
            if let Some(dead) = result.as_ref().err().and_then(|err| Dead::find(err)) {
                eprintln!("client gone: {dead}");
            }
            let (lasted, stats) = (connected.elapsed(), handle.stats());
            let _ = ended.send(Ended {
                lasted,
                result,
                stats,
            });
        });
    }
}

/// Talks to the echo server at `url` for `seconds`, a message a second, and returns the
/// heartbeat's counters. A dead server ends it with an error carrying `Dead`.
pub async fn client(url: &str, keepalive: HeartbeatLayer, seconds: u64) -> Result<Stats, Error> {
    let builder = ClientBuilder::new()
        .uri(url)
        .map_err(|err| Error::Io(std::io::Error::other(err)))?;
    let (ws, _response) = builder.connect().await?;
    let mut ws = keepalive.layer(ws);
    let handle = ws.handle();
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0;
    loop {
        tokio::select! {
            _ = every_second.tick() => {
                if sent == seconds {
                    // Sends a Close and reads on until the server answers it.
                    ws.close().await?;
                    return Ok(handle.stats());
                }
                ws.send(Message::text(format!("hello {sent}"))).await?;
                sent += 1;
            }
            msg = ws.next() => match msg.transpose()? {
                Some(msg) if msg.is_text() => {
                    println!("echo: {:<10} rtt: {:?}", msg.as_text().unwrap_or(""), handle.rtt());
                }
                Some(_) => {}
                None => return Ok(handle.stats()),
            },
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let keepalive = HeartbeatLayer::new()
        .interval(Duration::from_secs(2))
        .max_missed(3);
    let (ended, mut report) = mpsc::unbounded_channel::<Ended>();
    tokio::spawn(async move {
        while let Some(ended) = report.recv().await {
            println!(
                "server: connection ended after {:?}: {:?}",
                ended.lasted, ended.stats
            );
        }
    });
    match args.first().map(String::as_str) {
        Some("server") => {
            let addr = args.get(1).map_or("127.0.0.1:3001", String::as_str);
            let listener = TcpListener::bind(addr).await?;
            println!(
                "tokio-websockets echo server on ws://{}",
                listener.local_addr()?
            );
            serve(listener, keepalive, ended).await;
            Ok(())
        }
        Some("client") => {
            let url = args.get(1).map_or("ws://127.0.0.1:3001", String::as_str);
            let stats = client(url, keepalive, seconds).await?;
            println!("client: closed: {stats:?}");
            Ok(())
        }
        _ => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("ws://{}", listener.local_addr()?);
            tokio::spawn(serve(listener, keepalive.clone(), ended));
            let stats = client(&url, keepalive, seconds).await?;
            println!("client: closed: {stats:?}");
            Ok(())
        }
    }
}
