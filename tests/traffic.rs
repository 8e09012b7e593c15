//! What crosses the adapter: pongs hidden, the peer's pings answered exactly once, RTT
//! samples, counters, and a handler that only sends. Paused clock, in-memory WebSockets;
//! interval 1 s, max_missed 3, no jitter unless stated.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

use support::*;

/// The peer sends five pings (payloads "p0" .. "p4") 300 ms apart, reading all the while.
/// Returns the messages the handler saw and the pongs the peer got for its own pings.
async fn peer_pings(layer: ws_heartbeat::HeartbeatLayer) -> (Vec<Message>, Vec<Vec<u8>>) {
    let (mut ws, peer) = pair(layer).await;
    let (mut tx, mut rx) = peer.split();
    tokio::spawn(async move {
        for i in 0..5 {
            tokio::time::sleep(ms(300)).await;
            tx.send(Message::Ping(format!("p{i}").into_bytes().into()))
                .await
                .unwrap();
        }
        std::future::pending::<()>().await;
    });
    let pongs = tokio::spawn(async move {
        let mut pongs = Vec::new();
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Pong(payload) = msg {
                if payload.starts_with(b"p") {
                    pongs.push(payload.to_vec());
                }
            }
        }
        pongs
    });
    // The handler only reads, for 3 s.
    let mut seen = Vec::new();
    let _ = timeout(ms(3000), async {
        while let Some(Ok(msg)) = ws.next().await {
            seen.push(msg);
        }
    })
    .await;
    drop(ws);
    (seen, pongs.await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn peer_pings_are_hidden_and_answered_exactly_once() {
    let (seen, pongs) = peer_pings(one_second()).await;
    assert!(seen.is_empty(), "the handler saw {seen:?}");
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("p{i}").into_bytes()).collect();
    assert_eq!(pongs, expected);
}

#[tokio::test(start_paused = true)]
async fn forwarded_peer_pings_reach_the_handler_and_are_still_answered_once() {
    let (seen, pongs) = peer_pings(one_second().forward_pings(true)).await;
    let payloads: Vec<Vec<u8>> = seen
        .iter()
        .map(|m| match m {
            Message::Ping(p) => p.to_vec(),
            other => panic!("only pings reach the handler, got {other:?}"),
        })
        .collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("p{i}").into_bytes()).collect();
    assert_eq!(payloads, expected);
    assert_eq!(pongs, expected);
}

#[tokio::test(start_paused = true)]
async fn each_matched_pong_gives_an_rtt_sample() {
    // The peer reads each ping as it arrives, waits 25 ms, then flushes the queued pong.
    // 1 s: ping 1, pong at 1.025 s: RTT 25 ms. Then the wait grows by 10 ms per ping.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;
    let handle = ws.handle();
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    assert_eq!(handle.rtt(), None);
    for k in 0..5u64 {
        let msg = peer.next().await.unwrap().unwrap();
        assert!(msg.is_ping(), "{msg:?}");
        assert_eq!(Instant::now() - start, ms(1000 * (k + 1)));
        tokio::time::sleep(ms(25 + 10 * k)).await;
        peer.flush().await.unwrap();
        // Let the handler read the pong.
        tokio::time::sleep(ms(1)).await;
        assert_eq!(handle.rtt(), Some(ms(25 + 10 * k)));
        assert_eq!(handle.stats().rtt_samples, k + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn send_only_handler_reads_the_pongs_itself() {
    // The handler never reads; it sends a text every 100 ms for 20.5 s. The peer reads and
    // answers. Ticks 1 .. 20 s: 20 pings, 20 pongs read by the writing side, no death.
    let start = Instant::now();
    let (mut ws, peer) = pair(one_second()).await;
    let peer = answer_until(peer, start + ms(60_000));
    for _ in 0..205 {
        tokio::time::sleep(ms(100)).await;
        ws.send(Message::text("tick")).await.expect("never dead");
    }
    let stats = ws.handle().stats();
    assert_eq!(stats.pings_sent, 20);
    assert_eq!(stats.pongs_received, 20);
    // Each pong is read at the first send after it arrived, 100 ms after the ping at most.
    assert_eq!(stats.rtt_samples, 20);
    assert!(ws.handle().rtt().unwrap() <= ms(100));
    drop(ws);
    let (_, seen) = peer.await.unwrap();
    assert_eq!(seen.iter().filter(|m| m.is_text()).count(), 205);
}

#[tokio::test(start_paused = true)]
async fn send_only_handler_keeps_a_data_message_for_a_later_read() {
    // The peer answers pings and sends one text at 1.5 s. The handler only sends until
    // 5.05 s, then reads: it gets the text, in order, and the peer was never found dead even
    // though the text sat unread in the adapter for over three intervals.
    let start = Instant::now();
    let (mut ws, peer) = pair(one_second()).await;
    let (mut tx, rx) = peer.split();
    let rx = tokio::spawn(async move {
        let mut rx = rx;
        let mut pings = 0;
        while let Some(Ok(m)) = rx.next().await {
            pings += usize::from(m.is_ping());
        }
        pings
    });
    tokio::spawn(async move {
        tokio::time::sleep(ms(1500)).await;
        tx.send(Message::text("hello")).await.unwrap();
        tokio::time::sleep(ms(60_000)).await;
        drop(tx);
    });
    for _ in 0..101 {
        tokio::time::sleep(ms(50)).await;
        ws.send(Message::text("out")).await.expect("alive");
    }
    assert_eq!(Instant::now() - start, ms(5050));
    let got = timeout(ms(1), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::text("hello"));
    drop(ws);
    assert_eq!(rx.await.unwrap(), 5);
}
