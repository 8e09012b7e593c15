//! A client that survives its server: it sends a message every second through a
//! `Reconnect`, prints the echoes and every reconnection event, and carries on when the
//! server goes away and comes back.
//!
//! ```text
//! cargo run --example hyper_server -- --no-demo &    # an echo server on 127.0.0.1:3000
//! cargo run --example reconnecting_client            # stop and restart the server to watch
//! cargo run --example reconnecting_client -- ws://host:port --seconds 30
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Error, Event, Reconnect};

/// Talks to the echo server at `url` for `seconds` (or forever), reporting every event to
/// `on_event`; returns how many echoes came back.
pub async fn run(
    url: &str,
    seconds: Option<u64>,
    on_event: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<usize, Error> {
    let url = url.to_owned();
    let client = Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(
        HeartbeatLayer::new()
            .interval(Duration::from_secs(2))
            .max_missed(3),
    )
    .backoff(
        Backoff::new()
            .initial(Duration::from_millis(500))
            .max_delay(Duration::from_secs(10)),
    )
    .connect_timeout(Duration::from_secs(5))
    .on_connect(|mut ws| async move {
        // Whatever a session needs before messages flow: authenticate, re-subscribe.
        ws.send(Message::text("hello, I am back")).await?;
        Ok::<_, WsError>(ws)
    })
    .on_event(on_event)
    .build();

    let (mut tx, mut rx) = client.split();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        while seconds.is_none_or(|s| n < s) {
            tick.tick().await;
            // Waits in the client's buffer while the server is away.
            tx.feed(Message::text(format!("message {n}"))).await?;
            n += 1;
        }
        tx.flush().await?;
        tx.close().await
    });
    let mut echoes = 0;
    while let Some(msg) = rx.next().await {
        if let Message::Text(text) = msg? {
            println!("echo: {text}");
            echoes += 1;
        }
    }
    sender.await.expect("the sender task")?;
    Ok(echoes)
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
    match run(url, seconds, |event| println!("event: {event:?}")).await {
        Ok(echoes) => println!("done: {echoes} echoes"),
        Err(err) => {
            // Each error in the chain says only its own part: print them all.
            let mut message = format!("ended: {err}");
            let mut cause = std::error::Error::source(&err);
            while let Some(next) = cause {
                message += &format!(": {next}");
                cause = next.source();
            }
            eprintln!("{message}");
            std::process::exit(1);
        }
    }
}
