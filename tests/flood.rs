//! Hostile input, one flood per test binary (peak RSS is process-wide): a million pings as
//! fast as the peer can send them. Memory stays bounded, the connection healthy. Real time,
//! in-memory pipes.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::HeartbeatLayer;

use support::pair_with_capacity;

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_pings_from_a_peer_that_does_not_read_meet_backpressure_not_memory() {
    // The peer floods a million pings and reads nothing. tungstenite queues a pong per ping
    // in a write buffer without bound; the adapter reads the next ping only once the last
    // pong is flushed, so the flood stalls when the pipe back is full. After a second (less
    // than the dead bound of 3 to 4 s: a peer that reads nothing for longer is dead, like
    // any peer that stops reading) the peer starts reading: the flood completes, every ping
    // is answered, the handler gets the text sent after the flood.
    const PINGS: usize = 1_000_000;
    let layer = HeartbeatLayer::new().interval(Duration::from_secs(1));
    let (ws, peer) = pair_with_capacity(layer, 64 << 10).await;
    let handle = ws.handle();
    let (mut tx, mut rx) = peer.split();
    let before = peak_rss_kib();

    let flood = tokio::spawn(async move {
        let started = Instant::now();
        for i in 0..PINGS {
            tx.feed(Message::Ping(vec![(i % 256) as u8; 16].into()))
                .await
                .unwrap();
        }
        tx.send(Message::text("after the flood")).await.unwrap();
        (tx, started.elapsed())
    });
    let handler = tokio::spawn(async move {
        let mut ws = ws;
        let msg = ws.next().await.unwrap().expect("healthy");
        (ws, msg)
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!flood.is_finished(), "the flood met backpressure");
    let stalled_rss = peak_rss_kib();

    let reader = tokio::spawn(async move {
        let mut pongs = 0u64;
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Pong(_) => pongs += 1,
                Message::Text(t) if t == "echo" => break,
                _ => {}
            }
        }
        pongs
    });
    let (_tx, flood_took) = flood.await.unwrap();
    let (mut ws, msg) = handler.await.unwrap();
    assert_eq!(
        msg,
        Message::text("after the flood"),
        "the pings never reached the handler"
    );
    ws.send(Message::text("echo")).await.unwrap();
    let pongs = reader.await.unwrap();
    let after = peak_rss_kib();

    println!(
        "{PINGS} pings of 16 B in {flood_took:?}, stalled for 1 s while the peer did not read: \
         {pongs} pongs; peak RSS {before} KiB, {stalled_rss} KiB stalled, {after} KiB after; \
         heartbeat {:?}",
        handle.stats()
    );
    assert_eq!(pongs, PINGS as u64, "each ping answered once");
    // A pong per ping kept in memory would be 18 MB: the growth stays far below.
    assert!(
        after - before < 8 << 10,
        "peak RSS grew by {} KiB",
        after - before
    );
    assert_eq!(handle.stats().missed, 0);
}
