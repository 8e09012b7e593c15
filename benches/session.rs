//! Per-message instructions of a session (`HeartbeatLayer::resume`) against the plain
//! heartbeat, in one binary with one client loop: messages echoed over `tokio::io::duplex`
//! (tokio-tungstenite on both ends), the echoing end either a session from
//! `Sessions::accept` (every message numbered, kept until acknowledged, counted) or the
//! plain `Heartbeat` of the same layer. The client is the same code for both: it reads past
//! session messages and, for the session, acknowledges whenever a quarter of the server's
//! buffer has arrived, as PROTOCOL.md's rule says (for the plain heartbeat that branch is
//! never taken). A bench of its own, like `benches/background.rs`.
//!
//! `SESSION_ONLY=KIND:COUNT[:BYTES] valgrind --tool=callgrind target/release/deps/session-*`
//! with KIND `session` or `heartbeat` (`benches/instructions.sh` runs both), or
//! `cargo bench --bench session` for the time ratio, paired (`SESSION_PAIRED` rounds, 21 by
//! default).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::resume::Resume;

fn main() {
    match std::env::var("SESSION_ONLY") {
        Ok(spec) => {
            let mut parts = spec.split(':');
            let kind = parts.next().expect("a kind").to_owned();
            let n: u64 = parts.next().and_then(|n| n.parse().ok()).expect("a count");
            let size = parts
                .next()
                .map_or(20, |s| s.parse().expect("a size in bytes"));
            run(&kind, n, size);
        }
        Err(_) => {
            // Paired: each round times both ends back to back, in alternating order, and
            // takes the ratio within the round (the VM's speed drifts between rounds).
            let rounds: usize = std::env::var("SESSION_PAIRED")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(21);
            for size in [20, 16 * 1024] {
                // About 0.1 s per run: long enough that set-up and page faults do not count.
                let n = if size == 20 { 100_000 } else { 10_000 };
                let mut ratios: Vec<f64> = (0..rounds)
                    .map(|round| {
                        let (plain, session) = if round % 2 == 0 {
                            let p = run("heartbeat", n, size);
                            (p, run("session", n, size))
                        } else {
                            let s = run("session", n, size);
                            (run("heartbeat", n, size), s)
                        };
                        session.as_secs_f64() / plain.as_secs_f64()
                    })
                    .collect();
                ratios.sort_by(f64::total_cmp);
                let pct = |r: f64| (r - 1.0) * 100.0;
                println!(
                    "session against the plain heartbeat, {size} B, {rounds} rounds of {n}: \
                     min {:+.1}%, median {:+.1}%, max {:+.1}%",
                    pct(ratios[0]),
                    pct(ratios[rounds / 2]),
                    pct(ratios[rounds - 1])
                );
            }
        }
    }
}

fn run(kind: &str, n: u64, size: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let message = Message::binary(vec![7u8; size]);
    // The same 4 KiB read buffer as benches/overhead.rs (tungstenite zero-fills it per read).
    let config = Some(WebSocketConfig::default().read_buffer_size(4096));
    let buffer = Resume::new().buffer_len();
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, config).await;
        let mut client = WebSocketStream::from_raw_socket(b, Role::Client, config).await;
        let layer = HeartbeatLayer::new().jitter(false);
        if kind == "session" {
            let sessions = layer.resume(Resume::new());
            let hello = format!("\u{10}hello 1 new {:032x} {:032x} {buffer}", 1, 2);
            client.send(Message::text(hello)).await.unwrap();
            let session = sessions
                .accept(server)
                .await
                .unwrap()
                .expect("a new session");
            let welcome = client.next().await.unwrap().unwrap();
            assert!(welcome.to_text().unwrap().starts_with("\u{10}welcome 1 "));
            echo_rounds(session, &mut client, &message, n, buffer / 4).await
        } else {
            echo_rounds(layer.layer(server), &mut client, &message, n, usize::MAX).await
        }
    })
}

/// `n` round trips of `message`, echoed by `echo`; the client acknowledges every `ack_every`
/// bytes, as PROTOCOL.md's rule says.
async fn echo_rounds<W>(
    mut echo: W,
    client: &mut WebSocketStream<tokio::io::DuplexStream>,
    message: &Message,
    n: u64,
    ack_every: usize,
) -> Duration
where
    W: futures_util::Stream<Item = Result<Message, tungstenite::Error>>
        + futures_util::Sink<Message, Error = tungstenite::Error>
        + Unpin,
{
    let (mut received, mut unacked) = (0u64, 0usize);
    let start = Instant::now();
    for _ in 0..n {
        client.send(message.clone()).await.unwrap();
        let msg = echo.next().await.unwrap().unwrap();
        echo.send(msg).await.unwrap();
        // The session's own acknowledgements come between the echoes: read past them.
        let echoed = loop {
            let msg = client.next().await.unwrap().unwrap();
            if !matches!(&msg, Message::Text(t) if t.as_str().starts_with('\u{10}')) {
                break msg;
            }
        };
        received += 1;
        unacked += echoed.len() + 8;
        if unacked >= ack_every {
            let ack = format!("\u{10}ack {received}");
            client.send(Message::text(ack)).await.unwrap();
            unacked = 0;
        }
    }
    start.elapsed()
}
