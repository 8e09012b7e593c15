//! Per-message instructions of a session (`HeartbeatLayer::resume`): messages echoed over
//! `tokio::io::duplex` (tokio-tungstenite on both ends), the echoing end a session from
//! `Sessions::accept`, so that every message is numbered, kept until acknowledged and
//! counted. The other end speaks the session protocol by hand (PROTOCOL.md): its `hello`,
//! then data, and an `ack` whenever a quarter of the server's buffer has arrived, as the
//! protocol's rule says. A bench of its own, like `benches/background.rs`: compare with the
//! `heartbeat` end of `benches/overhead.rs` (`benches/instructions.sh` prints both).
//!
//! `SESSION_ONLY=COUNT[:BYTES] valgrind --tool=callgrind target/release/deps/session-*`
//! (`benches/instructions.sh` runs it), or `cargo bench --bench session` for the time of
//! 10 000 round trips.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::resume::{Resume, Sessions};

fn main() {
    let spec = std::env::var("SESSION_ONLY").unwrap_or_else(|_| "10000:20".into());
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
    let buffer = Resume::new().buffer_len();
    let took = rt.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, config).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, config).await;
        let sessions = Sessions::new(HeartbeatLayer::new().jitter(false).resume(Resume::new()));
        let hello = format!("\u{10}hello 1 new {:032x} {:032x} {buffer}", 1, 2);
        client.send(Message::text(hello)).await.unwrap();
        let mut echo = sessions
            .accept(server)
            .await
            .unwrap()
            .expect("a new session");
        let welcome = client.next().await.unwrap().unwrap();
        assert!(welcome.to_text().unwrap().starts_with("\u{10}welcome 1 "));
        let (mut received, mut unacked) = (0u64, 0usize);
        let start = Instant::now();
        for _ in 0..n {
            client.send(message.clone()).await.unwrap();
            let msg = echo.next().await.unwrap().unwrap();
            echo.send(msg).await.unwrap();
            let echoed = client.next().await.unwrap().unwrap();
            received += 1;
            unacked += echoed.len();
            if unacked >= buffer / 4 {
                let ack = format!("\u{10}ack {received}");
                client.send(Message::text(ack)).await.unwrap();
                unacked = 0;
            }
        }
        start.elapsed()
    });
    if std::env::var_os("SESSION_ONLY").is_none() {
        println!(
            "session: {n} round trips of {size} B in {took:?} ({:?} each)",
            took / n as u32
        );
    }
}
