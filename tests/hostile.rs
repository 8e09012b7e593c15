//! Hostile pongs: a flood of unsolicited pongs with random payloads and replays of our old
//! ping payloads, mixed with honest answers, neither corrupts the RTT figures nor the
//! liveness count. Paused clock; interval 1 s, 3 missed, no jitter.

mod support;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use support::*;

#[tokio::test(start_paused = true)]
async fn forged_and_replayed_pongs_give_no_sample_and_no_life() {
    // The peer answers each ping honestly 25 ms later (tungstenite's own pong, flushed by
    // its next read), and 30 ms after each ping sends 2 000 more pongs: random 8-byte
    // payloads, other lengths, and replays of every ping payload it has seen. Over 20 s:
    // exactly 20 samples, each exactly 25 ms, and never a miss.
    let (mut ws, peer) = pair(one_second()).await;
    let handle = ws.handle();
    let (mut tx, mut rx) = peer.split();
    let (ping_tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Ping(payload) = msg {
                let _ = ping_tx.send(payload);
                tokio::time::sleep(ms(25)).await;
            }
        }
    });
    tokio::spawn(async move {
        let random = RandomState::new();
        let mut seen = Vec::new();
        let mut n = 0u64;
        while let Some(payload) = pings.recv().await {
            tokio::time::sleep(ms(30)).await;
            seen.push(payload);
            for i in 0..2000u64 {
                n += 1;
                let forged = match i % 3 {
                    0 => random.hash_one(n).to_be_bytes().to_vec(),
                    1 => vec![0xff; (n % 20) as usize],
                    _ => seen[(n as usize) % seen.len()].to_vec(),
                };
                tx.feed(Message::Pong(forged.into())).await.unwrap();
            }
            tx.flush().await.unwrap();
        }
    });
    let nothing = timeout(ms(20_500), ws.next()).await;
    assert!(nothing.is_err(), "no message, no error: {nothing:?}");
    let stats = handle.stats();
    assert_eq!(stats.pings_sent, 20);
    assert_eq!(stats.rtt_samples, 20);
    assert_eq!(stats.pongs_received, 20 * 2001);
    assert_eq!(handle.rtt(), Some(ms(25)));
    assert_eq!(stats.missed, 0);
}

#[tokio::test(start_paused = true)]
async fn forged_pongs_do_not_keep_a_dead_peer_alive_when_only_answers_count() {
    // With any_inbound_is_alive(false), a peer that only replays old payloads and sends
    // random ones (never answering the current ping) is dead at 4 s like a silent one.
    let start = tokio::time::Instant::now();
    let (mut ws, mut peer) = pair(one_second().any_inbound_is_alive(false)).await;
    tokio::spawn(async move {
        let random = RandomState::new();
        for n in 0u64.. {
            tokio::time::sleep(ms(10)).await;
            let payload = random.hash_one(n).to_be_bytes().to_vec();
            if peer.send(Message::Pong(payload.into())).await.is_err() {
                break;
            }
        }
    });
    let (at, err, _) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(4000));
    assert!(is_dead(&err.unwrap()));
    assert_eq!(ws.handle().stats().rtt_samples, 0);
}
