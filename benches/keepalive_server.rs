//! A WebSocket server over loopback TCP for `benches/python_keepalive.py`, which measures
//! it the way it measures Python `websockets`' server: the same Python clients, the server's
//! RSS with its keepalive on and off, and the CPU of both processes.
//!
//! `keepalive_server on|off`: prints the port, then serves every connection with a handler
//! that reads until the end; `on` wraps each in a `Heartbeat` (2 s, 3 missed, as the
//! Python server's `ping_interval` 2 s, `ping_timeout` 6 s). One thread, as asyncio's loop.
//! Built by `cargo bench --no-run`; the Python script finds it.

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

fn main() {
    let keepalive = match std::env::args().nth(1).as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => {
            eprintln!("usage: keepalive_server on|off (run by benches/python_keepalive.py)");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve(keepalive));
}

async fn serve(keepalive: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    let layer = HeartbeatLayer::new()
        .interval(std::time::Duration::from_secs(2))
        .max_missed(3);
    // A 4 KiB read buffer (as in benches/overhead.rs): tungstenite's default 128 KiB would be
    // zero-filled, and so resident, in every connection.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // Two tasks of their own kinds, so that each holds only what it needs (one future
        // with both branches would be as large as the larger).
        if keepalive {
            let layer = layer.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                {
                    let mut ws = layer.layer(ws);
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        } else {
            tokio::spawn(async move {
                if let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    }
}
