//! End to end over 127.0.0.1 with tokio-tungstenite on both sides, in real time. Interval
//! 200 ms, max_missed 3, jitter on: a peer silent since the handshake must be declared dead
//! after more than 600 ms and within 800 ms. Real clocks add scheduling delay on top of the
//! upper bound: `SLACK` (100 ms) is allowed for it; the lower bound is exact.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

use support::ms;

const SLACK: Duration = ms(100);

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(ms(200)).max_missed(3)
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    (listener, url)
}

async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = listener.accept().await.unwrap();
    tokio_tungstenite::accept_async(tcp).await.unwrap()
}

async fn connect(url: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

fn assert_within_bound(silent_for: Duration) {
    assert!(silent_for > ms(600), "dead after only {silent_for:?}");
    assert!(
        silent_for <= ms(800) + SLACK,
        "dead only after {silent_for:?}"
    );
}

#[tokio::test]
async fn server_finds_a_client_that_stops_reading_after_the_handshake_dead() {
    let (listener, url) = listener().await;
    let client = tokio::spawn(async move {
        let ws = connect(&url).await;
        // Frozen: holds the connection open, never reads, never answers.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let ws = accept(&listener).await;
    let handshake = Instant::now();
    let mut ws = layer().layer(ws);
    let err = ws.next().await.unwrap().unwrap_err();
    let silent_for = handshake.elapsed();
    assert_eq!(Dead::find(&err).map(Dead::missed), Some(3));
    assert_within_bound(silent_for);
    assert!(ws.next().await.is_none());
    client.abort();
}

#[tokio::test]
async fn client_finds_a_server_that_stops_reading_after_the_handshake_dead() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let ws = accept(&listener).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let ws = connect(&url).await;
    let handshake = Instant::now();
    let mut ws = layer().layer(ws);
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(Dead::find(&err).is_some());
    assert_within_bound(handshake.elapsed());
    server.abort();
}

#[tokio::test]
async fn a_client_that_answers_stays_alive_and_gives_rtt_samples() {
    // 3 s of a live echo conversation: 15 intervals, never dead.
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = layer().layer(accept(&listener).await);
        let handle = ws.handle();
        while let Some(msg) = ws.next().await {
            let msg = msg.expect("never dead");
            if msg.is_text() {
                ws.send(msg).await.unwrap();
            }
        }
        handle.stats()
    });
    let mut ws = connect(&url).await;
    let started = Instant::now();
    let mut echoed = 0;
    while started.elapsed() < Duration::from_secs(3) {
        ws.send(Message::text("hello")).await.unwrap();
        // Reading also answers the server's pings.
        loop {
            match tokio::time::timeout(ms(100), ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => echoed += 1,
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("connection lost: {other:?}"),
                Err(_) => break,
            }
        }
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let stats = server.await.unwrap();
    // One text per round of at least 100 ms: 10 or more in 3 s.
    assert!(echoed >= 10, "only {echoed} echoes");
    // Ticks every 200 ms for 3 s: 14 or 15 pings (the first is jittered), each answered.
    assert!((14..=16).contains(&stats.pings_sent), "{stats:?}");
    assert!(stats.rtt_samples + 1 >= stats.pings_sent, "{stats:?}");
    assert_eq!(stats.missed, 0);
}

#[tokio::test]
async fn a_client_that_freezes_mid_conversation_is_dead_within_the_bound_of_its_last_frame() {
    let (listener, url) = listener().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let client = tokio::spawn(async move {
        let mut ws = connect(&url).await;
        // Talk and answer for 1 s, then freeze.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            ws.send(Message::text("x")).await.unwrap();
            let _ = tokio::time::timeout(ms(50), ws.next()).await;
        }
        tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let mut ws = layer().layer(accept(&listener).await);
    let mut last_frame = Instant::now();
    let err = loop {
        match ws.next().await.unwrap() {
            Ok(_) => last_frame = Instant::now(),
            Err(err) => break err,
        }
    };
    let dead_at = Instant::now();
    rx.await.unwrap();
    assert!(Dead::find(&err).is_some());
    // The client's true last frame is its last text or a pong it sent while reading for at
    // most 50 ms after it: dead more than 600 ms after the text, and within 800 ms (plus
    // slack) of the text plus those 50 ms.
    let silent_for = dead_at - last_frame;
    assert!(
        silent_for > ms(600),
        "dead {silent_for:?} after the last text"
    );
    assert!(
        silent_for <= ms(850) + SLACK,
        "dead {silent_for:?} after the last text"
    );
    client.abort();
}
