//! Per-message instructions of `HeartbeatLayer::background()`: messages echoed over
//! `tokio::io::duplex` (tokio-tungstenite on both ends), the echoing end a `Heartbeat` whose
//! connection is driven by its own task, so that every message read crosses from the driver
//! to the handler through the queue. A bench of its own: as a fourth end of
//! `benches/overhead.rs` it changed the code generated for the other three.
//!
//! `BACKGROUND_ONLY=COUNT[:BYTES] valgrind --tool=callgrind target/release/deps/background-*`
//! (`benches/instructions.sh` runs it), or `cargo bench --bench background` for the time of
//! 10 000 round trips.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use ws_heartbeat::HeartbeatLayer;

fn main() {
    let spec = std::env::var("BACKGROUND_ONLY").unwrap_or_else(|_| "10000:20".into());
    let mut parts = spec.split(':');
    let n: u64 = parts.next().and_then(|n| n.parse().ok()).expect("a count");
    let size: usize = parts
        .next()
        .map_or(20, |s| s.parse().expect("a size in bytes"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let message = Message::binary(vec![7u8; size]);
    // The same 4 KiB read buffer as benches/overhead.rs (tungstenite zero-fills it per read).
    let config = Some(WebSocketConfig::default().read_buffer_size(4096));
    let took = rt.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, config).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, config).await;
        let mut echo = HeartbeatLayer::new()
            .jitter(false)
            .background()
            .wrap(server);
        let start = Instant::now();
        for _ in 0..n {
            client.send(message.clone()).await.unwrap();
            let msg = echo.next().await.unwrap().unwrap();
            echo.send(msg).await.unwrap();
            client.next().await.unwrap().unwrap();
        }
        start.elapsed()
    });
    if std::env::var_os("BACKGROUND_ONLY").is_none() {
        println!(
            "background: {n} round trips of {size} B in {took:?} ({:?} each)",
            took / n as u32
        );
    }
}
