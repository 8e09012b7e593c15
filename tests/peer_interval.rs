//! The interval a peer's application pings ask for (`HeartbeatLayer::follow_peer_interval`,
//! `HeartbeatLayer::follow_peer_interval`): followed within the layer's bounds, ignored
//! without the opt-in. Paused clock, no jitter: ticks fall at whole multiples of the
//! interval after the handshake until a request moves them; each test states its timeline.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::protocol::{BinaryCommand, Json};
use ws_heartbeat::{Dead, HeartbeatLayer};

use support::*;

/// Interval 300 ms, max_missed 3, no jitter, JSON heartbeats.
fn json_300ms() -> HeartbeatLayer {
    HeartbeatLayer::new()
        .interval(ms(300))
        .max_missed(3)
        .jitter(false)
        .protocol(Json::new())
}

fn json_ping(seq: u64, interval_ms: u64) -> Message {
    Message::text(format!(
        r#"{{"type":"ping","seq":{seq},"interval":{interval_ms}}}"#
    ))
}

/// A binary command ping: command 100, the payload's length, then `seq` and `tail`.
fn binary_ping(seq: u64, tail: &[u8]) -> Message {
    let payload = [&seq.to_be_bytes()[..], tail].concat();
    let mut frame = vec![0, 100];
    frame.extend((payload.len() as u32).to_be_bytes());
    frame.extend(payload);
    Message::binary(frame)
}

/// Runs the handler side of `ws` in a task, sends `pings` from the peer at their times (ms
/// since the start), and returns when the peer read each of the adapter's first `n` pings
/// (ms since the start), and the interval the handle reports then.
async fn ping_times(
    layer: HeartbeatLayer,
    pings: Vec<(u64, Message)>,
    n: usize,
) -> (Vec<u128>, Duration) {
    let start = Instant::now();
    let (mut ws, peer) = pair(layer).await;
    let handle = ws.handle();
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    let (mut tx, mut rx) = peer.split();
    tokio::spawn(async move {
        for (at, ping) in pings {
            tokio::time::sleep_until(start + ms(at)).await;
            tx.send(ping).await.unwrap();
        }
        std::future::pending::<()>().await;
    });
    let mut times = Vec::new();
    while times.len() < n {
        let is_ours = match rx.next().await.unwrap().unwrap() {
            Message::Text(t) => t.starts_with(r#"{"type":"ping""#),
            Message::Binary(b) => b.starts_with(&[0, 100]),
            _ => false,
        };
        if is_ours {
            times.push((Instant::now() - start).as_millis());
        }
    }
    (times, handle.interval())
}

#[tokio::test(start_paused = true)]
async fn a_page_asking_for_one_second_is_found_dead_by_the_new_bound_not_the_old_one() {
    // Layer: 300 ms, max_missed 3, follow within [100 ms, 2 s]; old bound (0.9 s, 1.2 s].
    // 0.1 s: the page pings, asking for 1 s: the next tick moves from 0.3 s to the previous
    //   tick (the handshake, 0 s) plus 1 s.
    // 1.5 s: it pings again (same request): its last frame. Then silent, never reading.
    // 1 s, 2 s: alive (heard), pings. 3, 4 s: missed 1, 2. 5 s: missed 3: dead.
    // New bound (1.5 s + 3 s, 1.5 s + 4 s] = (4.5 s, 5.5 s]: 5 s. Not dead at 1.5 + 1.2 s.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(json_300ms().follow_peer_interval(ms(100), ms(2000))).await;
    let handle = ws.handle();
    let last = start + ms(1500);
    let pinger = tokio::spawn(async move {
        tokio::time::sleep_until(start + ms(100)).await;
        peer.send(json_ping(1, 1000)).await.unwrap();
        tokio::time::sleep_until(last).await;
        peer.send(json_ping(2, 1000)).await.unwrap();
        peer
    });

    let (at, err, data) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(5000));
    assert!(at - last > ms(1200), "dead at the old bound");
    assert!(
        at - last > ms(3000) && at - last <= ms(4000),
        "{:?}",
        at - last
    );
    assert!(data.is_empty(), "pings reached the handler: {data:?}");
    let dead = Dead::find(&err.unwrap()).copied().expect("Dead");
    assert_eq!(dead.missed(), 3);
    assert_eq!(dead.silent_for(), ms(3000), "since the tick of 2 s");
    assert_eq!(handle.interval(), ms(1000));
    assert_eq!(handle.stats().pings_sent, 4);

    // Both pings were answered as always (between our pings), the request echoed with the
    // other fields.
    let mut peer = pinger.await.unwrap();
    let pongs: Vec<Message> = (&mut peer)
        .map(Result::unwrap)
        .filter(|m| std::future::ready(m.to_text().is_ok_and(|t| t.contains("pong"))))
        .take(2)
        .collect()
        .await;
    assert_eq!(
        pongs,
        [
            Message::text(r#"{"type":"pong","seq":1,"interval":1000}"#),
            Message::text(r#"{"type":"pong","seq":2,"interval":1000}"#),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_page_asking_for_a_shorter_interval_is_found_dead_sooner() {
    // Layer: 2 s, max_missed 3, follow within [100 ms, 10 s]; old bound (6 s, 8 s].
    // 0.1 s: the page pings asking for 500 ms, its last frame: next tick 0 s + 0.5 s.
    // 0.5 s: alive, ping. 1, 1.5 s: missed 1, 2. 2 s: missed 3: dead.
    // New bound (0.1 s + 1.5 s, 0.1 s + 2 s] = (1.6 s, 2.1 s]: 2 s.
    let start = Instant::now();
    let layer = HeartbeatLayer::new()
        .interval(ms(2000))
        .jitter(false)
        .protocol(Json::new())
        .follow_peer_interval(ms(100), ms(10_000));
    let (mut ws, mut peer) = pair(layer).await;
    tokio::spawn(async move {
        tokio::time::sleep(ms(100)).await;
        peer.send(json_ping(1, 500)).await.unwrap();
        std::future::pending::<()>().await;
    });
    let (at, err, _) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(2000));
    assert!(is_dead(&err.unwrap()));
    assert_eq!(ws.handle().interval(), ms(500));
}

#[tokio::test(start_paused = true)]
async fn a_request_is_clamped_into_the_bounds() {
    // Follow within [100 ms, 2 s]. A ping at 50 ms asks for 10 s: 2 s, ticks at 0 s + 2 s,
    // 4 s. Another asks for 10 ms: 100 ms, ticks at 0.1 s, 0.2 s, 0.3 s.
    let follow = || json_300ms().follow_peer_interval(ms(100), ms(2000));
    assert_eq!(
        ping_times(follow(), vec![(50, json_ping(1, 10_000))], 2).await,
        (vec![2000, 4000], ms(2000))
    );
    assert_eq!(
        ping_times(follow(), vec![(50, json_ping(1, 10))], 3).await,
        (vec![100, 200, 300], ms(100))
    );
    // The largest request JSON can carry: the maximum.
    assert_eq!(
        ping_times(follow(), vec![(50, json_ping(1, u64::MAX))], 1).await,
        (vec![2000], ms(2000))
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_opt_in_the_request_is_ignored() {
    // A ping at 50 ms asks for 1 s: the ticks stay at 0.3 s, 0.6 s, 0.9 s.
    assert_eq!(
        ping_times(json_300ms(), vec![(50, json_ping(1, 1000))], 3).await,
        (vec![300, 600, 900], ms(300))
    );
    // With control frames the opt-in has no effect: the JSON is data, Ping frames go out
    // at 0.3 s, 0.6 s, 0.9 s.
    let start = Instant::now();
    let control = HeartbeatLayer::new()
        .interval(ms(300))
        .jitter(false)
        .follow_peer_interval(ms(100), ms(2000));
    let (mut ws, mut peer) = pair(control).await;
    let handle = ws.handle();
    peer.send(json_ping(1, 1000)).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(first, json_ping(1, 1000));
    tokio::spawn(async move { while ws.next().await.is_some() {} });
    let mut times = Vec::new();
    while times.len() < 3 {
        if let Message::Ping(_) = peer.next().await.unwrap().unwrap() {
            times.push((Instant::now() - start).as_millis());
        }
    }
    assert_eq!(times, [300, 600, 900]);
    assert_eq!(handle.interval(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn a_binary_ping_asks_with_a_twelve_byte_payload() {
    // BinaryCommand, 300 ms, follow within [100 ms, 2 s].
    // 50 ms: a ping with a 16-byte payload: no request. Tick at 0.3 s.
    // 350 ms: a ping with seq and 1 000 ms: next tick 0.3 s + 1 s = 1.3 s, then 2.3 s.
    let binary = || {
        HeartbeatLayer::new()
            .interval(ms(300))
            .jitter(false)
            .protocol(BinaryCommand::new())
            .follow_peer_interval(ms(100), ms(2000))
    };
    // 1 000 ms where the interval would be, but 4 bytes more: no request.
    let sixteen = binary_ping(1, &[0, 0, 0x03, 0xe8, 0, 0, 0, 0]);
    let asking = binary_ping(2, &1000u32.to_be_bytes());
    assert_eq!(
        ping_times(binary(), vec![(50, sixteen), (350, asking)], 3).await,
        (vec![300, 1300, 2300], ms(1000))
    );
    // Our own 8-byte ping shape carries no request.
    assert_eq!(
        ping_times(binary(), vec![(50, binary_ping(1, &[]))], 2).await,
        (vec![300, 600], ms(300))
    );
}
