//! The examples, run for real over 127.0.0.1: the hyper server with keepalive in front of
//! its unchanged handler, the client, the actix-web server, and tokio-websockets on both
//! ends.

#[path = "../examples/actix_server.rs"]
#[allow(dead_code)]
mod actix_server;
#[path = "../examples/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_server;
#[path = "../examples/reconnecting_client.rs"]
#[allow(dead_code)]
mod reconnecting_client;
mod support;
#[path = "../examples/tokio_websockets.rs"]
#[allow(dead_code)]
mod tokio_websockets_example;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_heartbeat::{Dead, HeartbeatLayer};

use support::ms;

async fn start(
    keepalive: HeartbeatLayer,
) -> (String, mpsc::UnboundedReceiver<hyper_server::Ended>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(hyper_server::serve(listener, keepalive, tx));
    (url, rx)
}

#[tokio::test]
async fn client_and_hyper_server_talk_with_heartbeats_on_both_ends() {
    // Both ends ping every 300 ms; the client talks for 3 s.
    let keepalive = HeartbeatLayer::new().interval(ms(300));
    let (url, mut ended) = start(keepalive.clone()).await;
    let client = client::run(&url, keepalive, Some(3)).await.unwrap();
    let server = ended.recv().await.unwrap();
    server.result.unwrap();
    for stats in [client, server.stats] {
        // 3 s of 300 ms ticks, the first jittered: 9 to 11 pings, each answered.
        assert!((9..=11).contains(&stats.pings_sent), "{stats:?}");
        assert!(stats.rtt_samples + 1 >= stats.pings_sent, "{stats:?}");
    }
    assert!(server.rtt.unwrap() < ms(100));
}

#[tokio::test]
async fn hyper_server_declares_a_frozen_client_dead_within_the_bound() {
    let keepalive = HeartbeatLayer::new().interval(ms(200)).max_missed(3);
    let (url, mut ended) = start(keepalive).await;
    let (frozen, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let report = ended.recv().await.unwrap();
    let dead = Dead::find(report.result.as_ref().unwrap_err())
        .copied()
        .unwrap();
    assert_eq!(dead.missed(), 3);
    // The client's last frame is the handshake: dead more than 600 ms after it and within
    // 800 ms, plus 100 ms for real-time scheduling.
    assert!(report.lasted > ms(600), "dead after {:?}", report.lasted);
    assert!(report.lasted <= ms(900), "dead after {:?}", report.lasted);
    assert_eq!(report.stats.pings_sent, 3);
    drop(frozen);
}

#[tokio::test]
async fn the_reconnecting_client_example_talks_to_the_hyper_server() {
    // Three seconds of one message a second, against the server of the other example: the
    // hook's greeting and three messages echoed, then a clean close.
    let (url, mut ended) = start(HeartbeatLayer::new().interval(ms(300))).await;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = events.clone();
    let echoes = reconnecting_client::run(&url, Some(3), move |e| {
        log.lock().unwrap().push(format!("{e:?}"))
    })
    .await
    .unwrap();
    assert_eq!(echoes, 4);
    let events = events.lock().unwrap().clone();
    assert!(
        events[0].starts_with("Connecting") && events[1].starts_with("Connected"),
        "{events:?}"
    );
    assert!(events.last().unwrap().starts_with("Closed"), "{events:?}");
    assert!(ended.recv().await.unwrap().result.is_ok());
}

/// The actix example server on its own actix system and thread; its `/ws` URL.
fn start_actix(
    keepalive: HeartbeatLayer,
) -> (String, mpsc::UnboundedReceiver<actix_server::Ended>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(actix_server::serve(listener, keepalive, tx))
    });
    (url, rx)
}

#[tokio::test]
async fn the_client_example_and_the_actix_server_talk_with_heartbeats_on_both_ends() {
    // Both ends ping every 300 ms; the (tokio-tungstenite) client talks for 3 s.
    let keepalive = HeartbeatLayer::new().interval(ms(300));
    let (url, mut ended) = start_actix(keepalive.clone());
    let client = client::run(&url, keepalive, Some(3)).await.unwrap();
    let server = ended.recv().await.unwrap();
    server.result.unwrap();
    for stats in [client, server.stats] {
        // 3 s of 300 ms ticks, the first jittered: 9 to 11 pings, each answered.
        assert!((9..=11).contains(&stats.pings_sent), "{stats:?}");
        assert!(stats.rtt_samples + 1 >= stats.pings_sent, "{stats:?}");
    }
    assert!(server.rtt.unwrap() < ms(100));
}

#[tokio::test]
async fn the_actix_server_declares_a_frozen_client_dead_within_the_bound() {
    let keepalive = HeartbeatLayer::new().interval(ms(200)).max_missed(3);
    let (url, mut ended) = start_actix(keepalive);
    let (frozen, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let report = ended.recv().await.unwrap();
    let dead = Dead::find(report.result.as_ref().unwrap_err())
        .copied()
        .unwrap();
    assert_eq!(dead.missed(), 3);
    // Dead more than 600 ms after the handshake and within 800 ms, plus 100 ms for
    // real-time scheduling.
    assert!(report.lasted > ms(600), "dead after {:?}", report.lasted);
    assert!(report.lasted <= ms(900), "dead after {:?}", report.lasted);
    assert_eq!(report.stats.pings_sent, 3);
    drop(frozen);
}

async fn start_tokio_websockets(
    keepalive: HeartbeatLayer,
) -> (
    String,
    mpsc::UnboundedReceiver<tokio_websockets_example::Ended>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(tokio_websockets_example::serve(listener, keepalive, tx));
    (url, rx)
}

#[tokio::test]
async fn the_tokio_websockets_client_and_server_talk_with_heartbeats_on_both_ends() {
    let keepalive = HeartbeatLayer::new().interval(ms(300));
    let (url, mut ended) = start_tokio_websockets(keepalive.clone()).await;
    let client = tokio_websockets_example::client(&url, keepalive, 3)
        .await
        .unwrap();
    let server = ended.recv().await.unwrap();
    server.result.unwrap();
    for stats in [client, server.stats] {
        // 3 s of 300 ms ticks, the first jittered: 9 to 11 pings, each answered.
        assert!((9..=11).contains(&stats.pings_sent), "{stats:?}");
        assert!(stats.rtt_samples + 1 >= stats.pings_sent, "{stats:?}");
        assert_eq!(stats.missed, 0, "{stats:?}");
    }
}

#[tokio::test]
async fn the_tokio_websockets_server_declares_a_frozen_client_dead_within_the_bound() {
    let keepalive = HeartbeatLayer::new().interval(ms(200)).max_missed(3);
    let (url, mut ended) = start_tokio_websockets(keepalive).await;
    let (frozen, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let report = ended.recv().await.unwrap();
    let err = report.result.as_ref().unwrap_err();
    assert_eq!(Dead::find(err).map(Dead::missed), Some(3));
    // Dead more than 600 ms after the handshake and within 800 ms, plus 100 ms for
    // real-time scheduling.
    assert!(report.lasted > ms(600), "dead after {:?}", report.lasted);
    assert!(report.lasted <= ms(900), "dead after {:?}", report.lasted);
    assert_eq!(report.stats.pings_sent, 3);
    drop(frozen);
}
