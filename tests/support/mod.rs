//! Shared by the integration tests: WebSocket pairs over in-memory pipes, and small helpers.
#![allow(dead_code, unreachable_pub)]

pub mod mock;
pub mod nginx;
pub mod peer_programs;
pub mod relay;
pub mod session_server;
pub mod throttle;
pub mod trials;

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, protocol::Role};
use tower::Layer;
use ws_heartbeat::{Dead, Heartbeat, HeartbeatLayer};

pub type Ws = WebSocketStream<DuplexStream>;

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A server-side WebSocket wrapped by `layer`, and the bare client-side peer, joined by an
/// in-memory pipe holding up to `capacity` bytes each way. Nothing is sent: "the handshake"
/// is the moment this returns.
pub async fn pair_with_capacity(layer: HeartbeatLayer, capacity: usize) -> (Heartbeat<Ws>, Ws) {
    let (a, b) = tokio::io::duplex(capacity);
    let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    (layer.layer(server), client)
}

/// Two bare WebSockets (server side, client side) joined by an in-memory pipe.
pub async fn bare_pair() -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    (server, client)
}

pub async fn pair(layer: HeartbeatLayer) -> (Heartbeat<Ws>, Ws) {
    pair_with_capacity(layer, 64 * 1024).await
}

/// The layer most timeline tests use: 1 s interval, 3 missed, no jitter, so ticks fall at
/// whole seconds after the handshake.
pub fn one_second() -> HeartbeatLayer {
    HeartbeatLayer::new()
        .interval(ms(1000))
        .max_missed(3)
        .jitter(false)
}

pub fn is_dead(err: &WsError) -> bool {
    Dead::find(err).is_some()
}

/// Reads `ws` until it yields an error or ends, and tells when and how.
pub async fn read_until_end(ws: &mut Heartbeat<Ws>) -> (Instant, Option<WsError>, Vec<Message>) {
    let mut data = Vec::new();
    while let Some(item) = ws.next().await {
        match item {
            Ok(msg) => data.push(msg),
            Err(err) => return (Instant::now(), Some(err), data),
        }
    }
    (Instant::now(), None, data)
}

/// A peer that reads (and so answers pings, through tungstenite) until `until`, then goes
/// silent: it stops reading and sending. Returns every message it read.
pub fn answer_until(mut peer: Ws, until: Instant) -> tokio::task::JoinHandle<(Ws, Vec<Message>)> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(until) => break,
                msg = peer.next() => match msg {
                    Some(Ok(msg)) => seen.push(msg),
                    _ => break,
                },
            }
        }
        (peer, seen)
    })
}

pub fn pings(messages: &[Message]) -> usize {
    messages.iter().filter(|m| m.is_ping()).count()
}

/// Raises this process's soft limit of open files to `needed`, within its hard limit.
pub fn allow_open_files(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which lives for the call.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0,
        "getrlimit"
    );
    if limit.rlim_cur >= needed as libc::rlim_t {
        return;
    }
    assert!(
        limit.rlim_max >= needed as libc::rlim_t,
        "the test needs {needed} open files, and the hard limit is {}: raise it (`ulimit -Hn \
         {needed}` as root, or `nofile` in /etc/security/limits.conf)",
        limit.rlim_max
    );
    limit.rlim_cur = needed as libc::rlim_t;
    // SAFETY: setrlimit reads only the struct it is given, which lives for the call.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) },
        0,
        "setrlimit"
    );
}

/// A memory figure of this process from /proc/self/status, in KiB: `"VmRSS:"` resident now,
/// `"VmHWM:"` the peak resident.
pub fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `PROPTEST_CASES` if set (CI's fuzz step raises it), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
