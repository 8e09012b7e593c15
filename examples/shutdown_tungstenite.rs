//! A plain tokio-tungstenite accept loop with keepalive that shuts down without dropping its
//! WebSockets: on Ctrl-C every connection is closed with 1012 (service restart) at its own
//! moment of the drain window, while the loop still accepts (a latecomer gets its 1012 at
//! once); once they are all gone, the loop ends.
//!
//! ```text
//! cargo run --example shutdown_tungstenite -- 127.0.0.1:3000 --drain-ms 5000
//! ```

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tower::Layer;
use ws_heartbeat::{DrainReport, HeartbeatLayer};

/// Echoes on every WebSocket accepted on `listener` until `shutdown` resolves, then drains
/// them over `window`, accepting meanwhile. Returns the drain's report.
pub async fn serve_until(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    shutdown: impl Future<Output = ()>,
    window: Duration,
) -> DrainReport {
    // The accept loop runs until the drain is over: the drain is the loop's end condition.
    let mut drained = pin!(async {
        shutdown.await;
        keepalive.drain(window).await
    });
    loop {
        let tcp = tokio::select! {
            report = &mut drained => return report,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let keepalive = keepalive.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let mut ws = keepalive.layer(ws);
            // The handler knows nothing of the drain: its stream ends after the Close 1012.
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
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
        "echo on ws://{} (Ctrl-C drains over {window:?})",
        listener.local_addr()?
    );
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = serve_until(listener, HeartbeatLayer::new(), ctrl_c, window).await;
    println!("stopped: {report:?}");
    Ok(())
}
