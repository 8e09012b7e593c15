//! The heartbeat's own memory per connection, measured from outside: a counting allocator
//! over 10 000 connections, each polled once (so its deadline is filed with the runtime's
//! shared timer), against the same 10 000 streams unwrapped, each polled once too. It counts the fields beside the
//! stream (the `Vec` holds them inline), the state shared with handles, and the timer's
//! lists. Alone in its binary: the allocator counts every thread.

mod support;

use std::alloc::System;

use futures_util::{FutureExt, StreamExt};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::Layer;
use ws_heartbeat::{Heartbeat, HeartbeatLayer};

use support::Ws;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const N: usize = 10_000;

/// What the heartbeat may hold per connection: 56 inline, 96 in the shared hub, 8 to 11 in
/// the timer's lists (BENCHMARKS.md, "Memory per connection"). The hub's 96 include the
/// `metrics` feature's 8 (the first poll's time), which tests always have: the crate's
/// dev-dependency on itself turns it on.
const BOUND: i64 = 56 + 96 + 11;

fn held(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
}

/// Small read buffers: the default 128 KiB would make 2.6 GB of 10 000 pairs.
fn config() -> Option<WebSocketConfig> {
    Some(WebSocketConfig::default().read_buffer_size(256))
}

/// `N` server ends (their client ends kept too, so both runs hold the same).
async fn pairs() -> (Vec<Ws>, Vec<Ws>) {
    let (mut servers, mut clients) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for _ in 0..N {
        let (a, b) = tokio::io::duplex(4096);
        servers.push(WebSocketStream::from_raw_socket(a, Role::Server, config()).await);
        clients.push(WebSocketStream::from_raw_socket(b, Role::Client, config()).await);
    }
    (servers, clients)
}

#[test]
fn the_heartbeat_holds_at_most_163_bytes_per_connection() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // Warm up what is made once per process: the random state, tungstenite's statics. In a
    // runtime of its own: its ticker keeps the warm-up's filings until they fire (within an
    // interval), and measured connections filed beside them would join or avoid their
    // moments as timing has it (178 B once in a debug build under CI, 152 B otherwise).
    let layer = HeartbeatLayer::new();
    runtime().block_on(async {
        let (servers, clients) = pairs().await;
        let mut warm: Vec<Heartbeat<Ws>> = servers.into_iter().map(|ws| layer.layer(ws)).collect();
        for ws in &mut warm {
            assert!(ws.next().now_or_never().is_none());
        }
        drop((warm, clients));
    });
    // Measured on a fresh runtime, whose ticker (and its task) one connection makes first.
    runtime().block_on(measure(layer));
}

async fn measure(layer: HeartbeatLayer) {
    let (a, b) = tokio::io::duplex(4096);
    let mut first = layer.layer(WebSocketStream::from_raw_socket(a, Role::Server, config()).await);
    assert!(first.next().now_or_never().is_none());
    drop((first, b));

    // Each stream polled once, as each heartbeat polls its own below.
    let region = Region::new(GLOBAL);
    let (mut servers, clients) = pairs().await;
    for ws in &mut servers {
        assert!(ws.next().now_or_never().is_none());
    }
    let bare_bytes = held(&region);
    drop((servers, clients));

    let region = Region::new(GLOBAL);
    let (servers, clients) = pairs().await;
    let mut wrapped: Vec<Heartbeat<Ws>> = Vec::with_capacity(N);
    wrapped.extend(servers.into_iter().map(|ws| layer.layer(ws)));
    for ws in &mut wrapped {
        assert!(ws.next().now_or_never().is_none());
    }
    // The `Vec` of unwrapped servers went with `into_iter`: the `Vec` of heartbeats holds
    // them instead, each with the adapter's fields beside it.
    let wrapped_bytes = held(&region);
    let per_connection = (wrapped_bytes - bare_bytes) / N as i64;
    eprintln!(
        "the heartbeat's own memory: {per_connection} B per connection \
         ({} B inline beside the stream)",
        std::mem::size_of::<Heartbeat<Ws>>() - std::mem::size_of::<Ws>()
    );
    assert!(per_connection <= BOUND, "{per_connection} B per connection");
    drop((wrapped, clients));
}
