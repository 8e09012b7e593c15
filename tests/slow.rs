//! Alive but slow is not dead: with the transport's progress tracked, a peer in the middle of
//! a 64 MiB message that crawls for three times the dead bound is not declared dead, nor one
//! slowly reading a 64 MiB message of ours; a peer that stops mid-message is. Paused clock;
//! interval 1 s, 3 missed, no jitter: dead bound 4 s. The slow link moves 64 KiB per 12 ms:
//! 64 MiB take 12.3 s.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::Layer;
use ws_heartbeat::{Dead, Heartbeat, Progress, Tracked};

use support::throttle::Throttle;
use support::{ms, one_second};

const BIG: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

fn config() -> Option<WebSocketConfig> {
    // A 64 MiB message in one 64 MiB frame: above tungstenite's default limits.
    Some(
        WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None),
    )
}

/// Our end, progress tracked or not, and the peer's end behind a slow link.
async fn slow_pair(
    track: bool,
) -> (
    Heartbeat<WebSocketStream<Tracked<DuplexStream>>>,
    WebSocketStream<Throttle<DuplexStream>>,
) {
    let (ours, theirs) = tokio::io::duplex(256 << 10);
    let (ours, progress) = Progress::track(ours);
    let ours = WebSocketStream::from_raw_socket(ours, Role::Server, config()).await;
    let theirs = Throttle::new(theirs, CHUNK, ms(12));
    let theirs = WebSocketStream::from_raw_socket(theirs, Role::Client, config()).await;
    let ours = one_second().layer(ours);
    (
        if track {
            ours.with_progress(progress)
        } else {
            ours
        },
        theirs,
    )
}

fn big() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(start_paused = true)]
async fn a_peer_slowly_sending_a_huge_message_is_alive() {
    // 0 s: the peer starts sending 64 MiB; the last byte arrives after 12.3 s, three times the
    // 4 s bound, and no frame completes before. It is not declared dead; the message arrives
    // whole.
    let start = Instant::now();
    let (mut ws, mut peer) = slow_pair(true).await;
    let sender = tokio::spawn(async move {
        peer.send(Message::binary(big())).await.unwrap();
        peer
    });
    let got = ws.next().await.unwrap().expect("alive");
    let took = Instant::now() - start;
    assert!(took >= ms(12_000), "{took:?}");
    assert_eq!(got.into_data(), big());
    assert_eq!(ws.handle().stats().missed, 0);
    drop(sender);
}

#[tokio::test(start_paused = true)]
async fn without_progress_tracking_the_same_peer_would_be_declared_dead() {
    // The same transfer, progress not tracked: no frame for 4 s means dead, at exactly 4 s.
    let start = Instant::now();
    let (mut ws, mut peer) = slow_pair(false).await;
    let _sender = tokio::spawn(async move { peer.send(Message::binary(big())).await });
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(Dead::find(&err).is_some());
    assert_eq!(Instant::now() - start, ms(4000));
}

#[tokio::test(start_paused = true)]
async fn a_peer_slowly_reading_a_huge_message_of_ours_is_alive() {
    // We send 64 MiB; the peer reads at the slow link's pace, 12.3 s in all. Our pings wait
    // behind the message, but the link keeps draining: alive, and the send completes.
    let start = Instant::now();
    let (mut ws, mut peer) = slow_pair(true).await;
    let reader = tokio::spawn(async move {
        let msg = peer.next().await.unwrap().unwrap();
        // Keep reading so that our pings are answered afterwards.
        tokio::spawn(async move { while peer.next().await.is_some() {} });
        msg.into_data().len()
    });
    ws.send(Message::binary(big()))
        .await
        .expect("alive while the peer reads");
    assert!(Instant::now() - start >= ms(12_000));
    assert_eq!(reader.await.unwrap(), BIG);
    assert_eq!(ws.handle().stats().missed, 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_in_the_middle_of_a_message_is_dead_within_the_bound() {
    // The peer sends 8 MiB of the 64 MiB, then freezes: its last byte arrives at 1.524 s.
    // Ticks: 2 s alive (bytes moved), 3, 4, 5 s missed 1, 2, 3: dead at 5 s, inside
    // (1.524 + 3, 1.524 + 4] s.
    let start = Instant::now();
    let (mut ws, mut peer) = slow_pair(true).await;
    peer.get_mut().stop_writing_after = Some(8 << 20);
    let _sender = tokio::spawn(async move { peer.send(Message::binary(big())).await });
    let err = ws.next().await.unwrap().unwrap_err();
    let dead_at = Instant::now() - start;
    assert!(Dead::find(&err).is_some());
    // The last byte: 128 chunks of 64 KiB, 12 ms apart, the first at 0.
    let last_byte = ms(127 * 12);
    assert!(
        dead_at > last_byte + ms(3000) && dead_at <= last_byte + ms(4000),
        "dead at {dead_at:?}"
    );
    assert_eq!(dead_at, ms(5000));
}
