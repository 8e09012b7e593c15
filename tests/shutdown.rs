//! The shutdown recipes of the README, run for real over 127.0.0.1: axum, hyper with
//! hyper-util's `GracefulShutdown`, actix-web with `ServerHandle::stop`, and a plain
//! tokio-tungstenite accept loop. Each example serves until told to stop, then drains over
//! 600 ms: three clients connected before get their Close 1012 at 200, 400 and 600 ms (at
//! those moments or after, within scheduling), a client that connects during the drain gets
//! its 1012 at once, the server stops after the last, and its report counts four clean
//! closes.

#[path = "../examples/actix_server.rs"]
#[allow(dead_code)]
mod actix_server;
#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_server;
#[path = "../examples/shutdown_axum.rs"]
#[allow(dead_code)]
mod shutdown_axum;
#[path = "../examples/shutdown_tungstenite.rs"]
#[allow(dead_code)]
mod shutdown_tungstenite;
mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::{DrainReport, HeartbeatLayer};

use support::ms;

const WINDOW: Duration = ms(600);
/// Real sockets and threads: how late a moment may be seen, at most.
const SLACK: Duration = ms(500);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, sends "hi" and reads the echo: the server's side has been polled, so it joined
/// its layer's group and takes a moment of the drain.
async fn echoed(url: &str) -> Client {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    ws
}

/// Reads until the end: the Close code the server sent, and when it came.
async fn close_of(mut ws: Client) -> (Option<u16>, Instant) {
    let mut code = None;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(frame) = msg {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    let at = Instant::now();
    while ws.next().await.is_some() {}
    (code, at)
}

/// The drain of a server at `url`, stopped through `stop`, whose report arrives on `report`.
async fn drains_with_1012(
    url: &str,
    stop: oneshot::Sender<()>,
    report: impl std::future::Future<Output = DrainReport>,
) {
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::spawn(close_of(echoed(url).await)));
    }
    let began = Instant::now();
    stop.send(()).unwrap();
    let first = clients.remove(0).await.unwrap();
    assert_eq!(first.0, Some(1012));
    // During the drain: a newcomer gets its 1012 at once, before the next moment.
    let (late, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let late = close_of(late).await;
    assert_eq!(late.0, Some(1012));
    let mut closes = vec![first.1];
    for client in clients {
        let (code, at) = client.await.unwrap();
        assert_eq!(code, Some(1012));
        closes.push(at);
    }
    closes.sort();
    for (k, at) in closes.iter().enumerate() {
        let moment = WINDOW * (k as u32 + 1) / 3;
        let after = *at - began;
        assert!(
            after >= moment && after < moment + SLACK,
            "close {k} at {after:?}"
        );
    }
    assert!(late.1 < closes[2], "the newcomer waited for a moment");
    let report = report.await;
    assert_eq!(
        [report.closed, report.forced, report.held],
        [4, 0, 0],
        "{report:?}"
    );
    let stopped = began.elapsed();
    assert!(stopped >= WINDOW && stopped < WINDOW + SLACK, "{stopped:?}");
}

fn signal() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}

#[tokio::test]
async fn axum_drains_inside_its_graceful_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (stop, stopped) = signal();
    let server = tokio::spawn(shutdown_axum::serve_until(
        listener,
        HeartbeatLayer::new(),
        stopped,
        WINDOW,
    ));
    drains_with_1012(&url, stop, async { server.await.unwrap().unwrap() }).await;
}

#[tokio::test]
async fn hyper_drains_then_shuts_its_http_connections_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (stop, stopped) = signal();
    let (ended, _ended) = mpsc::unbounded_channel();
    let server = tokio::spawn(hyper_server::serve_until(
        listener,
        HeartbeatLayer::new(),
        ended,
        stopped,
        WINDOW,
    ));
    drains_with_1012(&url, stop, async { server.await.unwrap() }).await;
}

#[tokio::test]
async fn actix_drains_then_stops_its_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let (report, reported) = oneshot::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (ended, _ended) = mpsc::unbounded_channel();
            let stopped = async move {
                let _ = stopped.await;
            };
            let drained =
                actix_server::serve_until(listener, HeartbeatLayer::new(), ended, stopped, WINDOW)
                    .await
                    .unwrap();
            let _ = report.send(drained);
        })
    });
    drains_with_1012(&url, stop, async { reported.await.unwrap() }).await;
}

#[tokio::test]
async fn a_tokio_tungstenite_accept_loop_drains_then_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (stop, stopped) = signal();
    let server = tokio::spawn(shutdown_tungstenite::serve_until(
        listener,
        HeartbeatLayer::new(),
        stopped,
        WINDOW,
    ));
    drains_with_1012(&url, stop, async { server.await.unwrap() }).await;
}
