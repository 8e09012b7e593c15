//! `HeartbeatLayer::drain` at scale, in one process: N in-memory WebSocket pairs
//! (tokio-tungstenite over `tokio::io::duplex`), each server end a `Heartbeat` read by a
//! handler task until its end, each client end read by a peer task that notes when the
//! Close came (tungstenite answers it). Then the layer drains over a window; reported: how
//! long the drain took to resolve, the process CPU it took (over the same time idle, the
//! heartbeat's own), the report, and how many Closes each tenth of the window carried.
//!
//! `cargo bench --bench drain -- 100000` (default 100 000), window `DRAIN_WINDOW_MS`
//! (default 10 000), 2 worker threads, interval 10 s (so that no tick falls in the window
//! but the drain's own wake-ups).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::{config, cpu};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect("a whole number"))
}

async fn run(n: usize, window: Duration) {
    let layer = HeartbeatLayer::new().interval(Duration::from_secs(10));
    let closes = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let (polled_tx, mut polled) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..n {
        let (a, b) = tokio::io::duplex(4096);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, config()).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, config()).await;
        let mut ws = layer.layer(server);
        let polled_tx = polled_tx.clone();
        tokio::spawn(async move {
            // One send first: the connection joins its layer at its first poll.
            let _ = ws.send(Message::text("hi")).await;
            let _ = polled_tx.send(());
            while let Some(Ok(_)) = ws.next().await {}
        });
        let closes = closes.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = client.next().await {
                if msg.is_close() {
                    closes.lock().unwrap().push(Instant::now());
                }
            }
        });
    }
    for _ in 0..n {
        polled.recv().await;
    }
    // The same time idle first: the heartbeat's own CPU, to tell the drain's apart.
    let (idle_start, idle_cpu) = (Instant::now(), cpu());
    tokio::time::sleep(window).await;
    let idle = (cpu() - idle_cpu, idle_start.elapsed());

    let (start, cpu_start) = (Instant::now(), cpu());
    let report = layer.drain(window).await;
    let (took, used) = (start.elapsed(), cpu() - cpu_start);
    let closes = closes.lock().unwrap().clone();
    let mut tenths = [0usize; 10];
    let mut late = 0;
    for at in &closes {
        let after = at.duration_since(start);
        let tenth = (after.as_nanos() * 10 / window.as_nanos().max(1)) as usize;
        match tenths.get_mut(tenth) {
            Some(count) => *count += 1,
            None => late += 1,
        }
    }
    println!(
        "{n} connections, window {window:?}: resolved after {took:?}; CPU {used:?} ({:.1} µs a connection; idle over the same time: {:?} in {:?}); {report:?}",
        used.as_secs_f64() * 1e6 / n as f64,
        idle.0,
        idle.1,
    );
    println!(
        "closes the peers saw per tenth of the window: {tenths:?} (share {}), after it: {late}",
        n / 10
    );
}

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let window = Duration::from_millis(env_or("DRAIN_WINDOW_MS", 10_000));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n, window));
}
