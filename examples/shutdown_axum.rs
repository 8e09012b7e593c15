//! An axum echo server with keepalive (the `ws_heartbeat::axum` drop-in) that shuts down
//! without dropping its WebSockets.
//!
//! axum's graceful shutdown does not know upgraded connections: once its signal resolves it
//! stops accepting and waits only for the HTTP connections, which end at the upgrade. So the
//! drain goes *inside* the signal: on Ctrl-C the layer closes every WebSocket with 1012 at
//! its own moment of the window while axum still accepts (a latecomer gets its 1012 at
//! once), and only then does axum stop. (The other order, the drain after `serve` returns,
//! would drain with the listener closed: nothing could reach this server during the window.)
//!
//! ```text
//! cargo run --example shutdown_axum -- 127.0.0.1:3000 --drain-ms 5000
//! ```

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::Message;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};
use ws_heartbeat::{DrainReport, HeartbeatLayer};

async fn echo(mut ws: WebSocket) {
    while let Some(Ok(msg)) = ws.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// Serves `/ws` on `listener` until `shutdown` resolves, then drains the WebSockets over
/// `window` and stops. Returns the drain's report.
pub async fn serve_until(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    shutdown: impl Future<Output = ()> + Send + 'static,
    window: Duration,
) -> std::io::Result<DrainReport> {
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async { ws.on_upgrade(echo) }),
        )
        .layer(axum::Extension(keepalive.clone()));
    let (report, reported) = oneshot::channel();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = report.send(keepalive.drain(window).await);
        })
        .await?;
    Ok(reported.await.unwrap_or_default())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:3000", String::as_str);
    let window = args
        .iter()
        .position(|a| a == "--drain-ms")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis);
    let listener = TcpListener::bind(addr).await?;
    println!(
        "echo on ws://{}/ws (Ctrl-C drains over {window:?})",
        listener.local_addr()?
    );
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = serve_until(listener, HeartbeatLayer::new(), ctrl_c, window).await?;
    println!("stopped: {report:?}");
    Ok(())
}
