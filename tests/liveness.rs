//! When a peer is alive and when it is dead: the timing rules of the crate docs
//! ("Semantics") and ARCHITECTURE.md ("Ticks and the schedule") on tokio's paused clock,
//! over in-memory WebSockets (tokio-tungstenite on both ends). Ticks fall at whole seconds
//! after the handshake (interval 1 s, max_missed 3, no jitter) unless a test says
//! otherwise; each test states its timeline.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

use support::*;

#[tokio::test(start_paused = true)]
async fn peer_silent_since_the_handshake_dies_after_exactly_three_missed_pings() {
    // 0 s: handshake, then the peer never reads or sends again.
    // 1 s: alive (the handshake), ping 1. 2 s, 3 s: missed 1, 2; pings 2, 3.
    // 4 s: missed 3: dead. Bound (0 s + 3 s, 0 s + 4 s]: exactly 4 s.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;

    let (at, err, data) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(4000));
    assert!(data.is_empty());
    let err = err.expect("an error, not a clean end");
    let dead = Dead::find(&err).expect("the error is Dead");
    assert_eq!(dead.missed(), 3);
    assert_eq!(dead.silent_for(), ms(3000));
    // One error, then the end.
    assert!(ws.next().await.is_none());
    assert_eq!(ws.handle().stats().pings_sent, 3);

    // What the peer finds when it reads again: the three pings, then Close 1011.
    let got: Vec<Message> = (&mut peer).take(4).map(Result::unwrap).collect().await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(pings(&got), 3);
    let Message::Close(Some(frame)) = &got[3] else {
        panic!("expected a Close frame, got {:?}", got[3]);
    };
    assert_eq!(frame.code, CloseCode::Error);
    assert_eq!(frame.reason.as_str(), "keepalive timeout");
}

#[tokio::test(start_paused = true)]
async fn peer_that_stops_mid_interval_dies_inside_the_bound() {
    // 0-2.6 s: the peer reads (answering pings 1 s and 2 s at once) and sends "last" at
    // 2.5 s: its last frame. 2.6 s: it goes silent.
    // 3 s: alive (heard since 2 s), ping. 4, 5 s: missed 1, 2. 6 s: missed 3: dead.
    // Bound (2.5 s + 3 s, 2.5 s + 4 s] = (5.5 s, 6.5 s]: 6 s.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;
    let talker = tokio::spawn(async move {
        tokio::time::sleep(ms(2500)).await;
        peer.send(Message::text("last")).await.unwrap();
        let reader = answer_until(peer, start + ms(2600));
        reader.await.unwrap()
    });

    let (at, err, data) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(6000));
    assert!(is_dead(&err.unwrap()));
    assert_eq!(data, vec![Message::text("last")]);
    let (_, seen) = talker.await.unwrap();
    assert_eq!(
        pings(&seen),
        2,
        "pings of 1 s and 2 s read before going silent"
    );
}

#[tokio::test(start_paused = true)]
async fn peer_that_answers_is_never_dead() {
    // The peer reads for 100.5 s: 100 ticks, 100 pings, each answered at once.
    let start = Instant::now();
    let (mut ws, peer) = pair(one_second()).await;
    let peer = answer_until(peer, start + ms(200_000));

    let nothing = timeout(ms(100_500), ws.next()).await;
    assert!(nothing.is_err(), "no message, no error: {nothing:?}");
    let stats = ws.handle().stats();
    assert_eq!(stats.pings_sent, 100);
    assert_eq!(stats.pongs_received, 100);
    assert_eq!(stats.rtt_samples, 100);
    assert_eq!(stats.missed, 0);
    peer.abort();
}

/// The peer never reads (so never answers a ping) but sends a text every 500 ms for 20 s.
async fn talking_peer_that_never_answers(layer: HeartbeatLayer) -> (Instant, Option<Dead>, usize) {
    let (mut ws, mut peer) = pair(layer).await;
    tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(ms(500)).await;
            peer.send(Message::text("hi")).await.unwrap();
        }
        std::future::pending::<()>().await;
    });
    let read = timeout(ms(20_200), read_until_end(&mut ws)).await;
    match read {
        Ok((at, err, data)) => (
            at,
            err.as_ref().and_then(|e| Dead::find(e).copied()),
            data.len(),
        ),
        Err(_) => (Instant::now(), None, usize::MAX),
    }
}

#[tokio::test(start_paused = true)]
async fn by_default_any_inbound_frame_keeps_the_peer_alive() {
    // Texts at 0.5 s, 1 s, ... 20 s: every interval hears the peer. At 20.2 s: still alive.
    let (at, dead, _) = talking_peer_that_never_answers(one_second()).await;
    assert_eq!(dead, None, "at {at:?}");
}

#[tokio::test(start_paused = true)]
async fn without_any_inbound_is_alive_only_answers_count() {
    // Texts every 500 ms, no pong ever. 1 s: alive (the handshake), ping 1. 2, 3 s: missed
    // 1, 2. 4 s: missed 3: dead, after the texts of 0.5 s .. 4 s reached the handler.
    let start = Instant::now();
    let (at, dead, texts) =
        talking_peer_that_never_answers(one_second().any_inbound_is_alive(false)).await;
    assert_eq!(at - start, ms(4000));
    assert_eq!(dead.map(|d| d.missed()), Some(3));
    // Texts of 0.5 .. 3.5 s; the one of 4 s comes after the tick of 4 s.
    assert_eq!(texts, 7);
}

#[tokio::test(start_paused = true)]
async fn unsolicited_pongs_are_inbound_traffic_but_never_an_answer_or_an_error() {
    // The peer never reads; it sends a pong with a foreign payload every 500 ms.
    async fn run(layer: HeartbeatLayer) -> (Option<Instant>, ws_heartbeat::Stats) {
        let (mut ws, mut peer) = pair(layer).await;
        tokio::spawn(async move {
            for i in 0u64..40 {
                tokio::time::sleep(ms(500)).await;
                let payload = if i % 2 == 0 {
                    i.to_be_bytes().to_vec()
                } else {
                    vec![0xab; 3]
                };
                peer.send(Message::Pong(payload.into())).await.unwrap();
            }
            std::future::pending::<()>().await;
        });
        let outcome = timeout(ms(20_200), read_until_end(&mut ws)).await;
        let died = outcome.ok().map(|(at, err, data)| {
            assert!(data.is_empty(), "pongs reached the handler: {data:?}");
            assert!(is_dead(&err.unwrap()));
            at
        });
        (died, ws.handle().stats())
    }
    let start = Instant::now();
    // Default: each pong is inbound traffic, so the peer stays alive; none matched a ping.
    let (died, stats) = run(one_second()).await;
    assert_eq!(died, None);
    assert_eq!(stats.pongs_received, 40);
    assert_eq!(stats.rtt_samples, 0);
    assert_eq!(stats.missed, 0);
    // Only answers count: no pong answers, so 1 s alive, 2-3 s missed 1-2, 4 s dead.
    let start2 = Instant::now();
    let (died, stats) = run(one_second().any_inbound_is_alive(false)).await;
    assert_eq!(died.map(|at| at - start2), Some(ms(4000)));
    assert_eq!(stats.rtt_samples, 0);
    assert!(start2 > start);
}

/// A peer that reads everything and sends a text every 250 ms for 10.1 s: how many pings
/// it receives.
async fn pings_seen_by_a_busy_peer(layer: HeartbeatLayer) -> usize {
    let start = Instant::now();
    let (mut ws, peer) = pair(layer).await;
    let (mut tx, mut rx) = peer.split();
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(msg)) = rx.next().await {
            pings += usize::from(msg.is_ping());
        }
        pings
    });
    tokio::spawn(async move {
        while Instant::now() < start + ms(10_000) {
            tokio::time::sleep(ms(250)).await;
            tx.send(Message::text("busy")).await.unwrap();
        }
        tokio::time::sleep(ms(100)).await;
        tx.close().await.unwrap();
    });
    while let Some(Ok(_)) = ws.next().await {}
    // The client waits for the server to close the connection before its stream ends.
    drop(ws);
    reader.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_tick_pings_by_default_even_when_busy() {
    // Ticks at 1 .. 10 s: ten pings although a text arrives every 250 ms.
    assert_eq!(pings_seen_by_a_busy_peer(one_second()).await, 10);
}

#[tokio::test(start_paused = true)]
async fn idle_only_skips_the_ping_while_the_peer_is_busy() {
    assert_eq!(
        pings_seen_by_a_busy_peer(one_second().idle_only(true)).await,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn idle_only_detects_a_silent_peer_one_interval_later() {
    // 1 s: alive (the handshake), busy: no ping. 2 s: ping 1. 3, 4 s: missed 1, 2.
    // 5 s: missed 3: dead. One interval after the 4 s of the default.
    let start = Instant::now();
    let (mut ws, _peer) = pair(one_second().idle_only(true)).await;
    let (at, err, _) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(5000));
    assert!(is_dead(&err.unwrap()));
    assert_eq!(one_second().idle_only(true).detection_bound(), ms(5000));
}

#[tokio::test(start_paused = true)]
async fn first_tick_is_jittered_within_one_interval_then_ticks_every_interval() {
    // 1 280 connections opened together on one thread, interval 1 s, jitter on: each peer
    // records when its first three pings arrive.
    const GROUP: usize = 64;
    let start = Instant::now();
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let mut peers = Vec::new();
    for _ in 0..20 * GROUP {
        let (a, b) = tokio::io::duplex(4096);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, Some(config)).await;
        let mut peer = WebSocketStream::from_raw_socket(b, Role::Client, Some(config)).await;
        let mut ws = HeartbeatLayer::new().interval(ms(1000)).layer(server);
        tokio::spawn(async move { while ws.next().await.is_some() {} });
        peers.push(tokio::spawn(async move {
            let mut at = Vec::new();
            while at.len() < 3 {
                if let Some(Ok(Message::Ping(_))) = peer.next().await {
                    at.push(Instant::now() - start);
                }
            }
            at
        }));
    }
    let mut firsts = Vec::new();
    for peer in peers {
        let at = peer.await.unwrap();
        assert!(
            at[0] > ms(0) && at[0] <= ms(1000),
            "first tick at {:?}",
            at[0]
        );
        assert_eq!(at[1] - at[0], ms(1000));
        assert_eq!(at[2] - at[1], ms(1000));
        firsts.push(at[0]);
    }
    // A moment costs the runtime a wake-up whether it wakes one connection or a thousand:
    // a first tick joins a moment of its first interval where others are filed already,
    // until that moment holds 1 024. So the 1 280 make two moments, 1 024 and 256: the first
    // group's draw, then the 17th group's. (One moment of 1 280 if the 17th group drew the
    // first's moment anyway, 1 in 142: a draw keeps its moment when none has room.)
    let mut sizes = std::collections::BTreeMap::<std::time::Duration, usize>::new();
    for first in &firsts {
        *sizes.entry(*first).or_default() += 1;
    }
    let mut sizes: Vec<usize> = sizes.into_values().collect();
    sizes.sort_unstable();
    assert!(sizes == [256, 1024] || sizes == [1280], "{sizes:?}");
}

/// When the peer reads each of the first `n` pings, in ms since the start.
async fn ping_times(peer: &mut Ws, start: Instant, n: usize) -> Vec<u128> {
    let mut at = Vec::new();
    while at.len() < n {
        if let Some(Ok(Message::Ping(_))) = peer.next().await {
            at.push((Instant::now() - start).as_millis());
        }
    }
    at
}

#[tokio::test(start_paused = true)]
async fn a_shorter_interval_set_through_the_handle_applies_at_once() {
    // Ticks at 1 s and 2 s. At 2.5 s the interval becomes 250 ms: the next tick was due one
    // new interval after the 2 s tick (2.25 s), which has passed, so it comes at once
    // (2.5 s), then every 250 ms.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;
    let handle = ws.handle();
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    tokio::spawn(async move {
        tokio::time::sleep(ms(2500)).await;
        handle.set_interval(ms(250));
        assert_eq!(handle.interval(), ms(250));
    });
    assert_eq!(
        ping_times(&mut peer, start, 6).await,
        [1000, 2000, 2500, 2750, 3000, 3250]
    );
}

#[tokio::test(start_paused = true)]
async fn a_longer_interval_set_through_the_handle_moves_the_next_tick_and_the_bound() {
    // Ticks at 1 s and 2 s; at 2.5 s the interval becomes 4 s: next ticks at 6 s and 10 s.
    // The peer stops reading after the ping of 6 s (and so never answers it): missed at
    // 10 s and 14 s, dead at 18 s, three new intervals after the 6 s tick.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;
    let handle = ws.handle();
    let reader = tokio::spawn(async move { read_until_end(&mut ws).await });
    tokio::spawn(async move {
        tokio::time::sleep(ms(2500)).await;
        handle.set_interval(ms(4000));
    });
    assert_eq!(ping_times(&mut peer, start, 3).await, [1000, 2000, 6000]);
    let (at, err, _) = reader.await.unwrap();
    assert_eq!(at - start, ms(18_000));
    assert!(is_dead(&err.unwrap()));
}
