//! The demo: an axum server whose page heartbeats the way a careful browser client should,
//! while the server heartbeats the page through `HeartbeatLayer`.
//!
//! ```text
//! cargo run --example demo                                  # http://127.0.0.1:3000
//! cargo run --example demo -- 0.0.0.0:8080 --interval-ms 1000 --max-missed 3
//! ```
//!
//! The page (`examples/demo/index.html`, `app.js`, `style.css`) talks through the crate's
//! browser module, `HeartbeatSocket`, served at `/ws-heartbeat.js` by
//! `ws_heartbeat::browser::script`: it pings, answers the server's pings, finds a silent
//! server dead, reconnects with exponential backoff and full jitter, and stays closed after a
//! log-out or a kick. Its buttons freeze it (the server declares it dead within
//! `interval × (max_missed + 1)`), kill its connection from the server side (it reconnects),
//! kick it (it does not), log it out, and slow its heartbeat down as a phone app in the
//! background would (the server follows the interval its pings carry). Open the page with
//! `?heartbeat=text`, `binary` or `control` for the other shapes; with `control` the server
//! uses WebSocket Ping frames, which the browser answers by itself.
//!
//! `GET /stats` returns the server's counters as JSON (the browser tests read it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};
use ws_heartbeat::{Dead, HeartbeatHandle, HeartbeatLayer, protocol};

/// Close code the page takes as "kicked: do not reconnect".
const KICKED: u16 = 4000;

struct App {
    /// Heartbeat settings of control-frame connections; the other shapes add a protocol.
    control: HeartbeatLayer,
    json: HeartbeatLayer,
    text: HeartbeatLayer,
    binary: HeartbeatLayer,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, HeartbeatHandle>>,
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    /// Pings and pongs of connections that have ended.
    pings: AtomicU64,
    pongs: AtomicU64,
    rtt_samples: AtomicU64,
    deaths: AtomicU64,
    kills: AtomicU64,
    kicks: AtomicU64,
    /// How long the last dead peer had been silent, in ms.
    last_silent_ms: AtomicU64,
}

impl App {
    fn stats(&self) -> serde_json::Value {
        let live = self.live.lock().unwrap();
        let t = &self.totals;
        let (mut pings, mut pongs, mut rtt_samples) = (
            t.pings.load(Relaxed),
            t.pongs.load(Relaxed),
            t.rtt_samples.load(Relaxed),
        );
        for handle in live.values() {
            let s = handle.stats();
            pings += s.pings_sent;
            pongs += s.pongs_received;
            rtt_samples += s.rtt_samples;
        }
        json!({
            "type": "stats",
            "connected": live.len(),
            "connections": self.totals.connections.load(Relaxed),
            "pings": pings,
            "pongs": pongs,
            "rtt_samples": rtt_samples,
            "deaths": self.totals.deaths.load(Relaxed),
            "kills": self.totals.kills.load(Relaxed),
            "kicks": self.totals.kicks.load(Relaxed),
            "last_silent_ms": self.totals.last_silent_ms.load(Relaxed),
            "intervals_ms": live.values().map(|h| h.interval().as_millis() as u64).collect::<Vec<_>>(),
            "interval_ms": self.json.settings().interval().as_millis() as u64,
            "max_missed": self.json.settings().max_missed(),
        })
    }
}

#[derive(Deserialize)]
struct WsParams {
    heartbeat: Option<String>,
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(params): Query<WsParams>,
    State(app): State<Arc<App>>,
) -> Response {
    let layer = match params.heartbeat.as_deref() {
        Some("control") => app.control.clone(),
        Some("text") => app.text.clone(),
        Some("binary") => app.binary.clone(),
        _ => app.json.clone(),
    };
    ws.heartbeat(layer)
        .on_upgrade(move |socket| session(socket, app))
}

/// One page's connection: echo, push the counters every second, obey kill and kick.
async fn session(mut socket: WebSocket, app: Arc<App>) {
    let id = app.next_id.fetch_add(1, Relaxed);
    let handle = socket.handle();
    app.totals.connections.fetch_add(1, Relaxed);
    app.live.lock().unwrap().insert(id, handle.clone());
    let started = Instant::now();
    let mut push = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => match command(&text).as_deref() {
                    Some("kill") => {
                        app.totals.kills.fetch_add(1, Relaxed);
                        break "killed (dropped without a Close frame)";
                    }
                    Some("kick") => {
                        app.totals.kicks.fetch_add(1, Relaxed);
                        let kick = CloseFrame { code: KICKED, reason: "kicked".into() };
                        let _ = socket.send(Message::Close(Some(kick))).await;
                        // Let the page's Close reply arrive, briefly.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while socket.recv().await.is_some() {}
                        })
                        .await;
                        break "kicked";
                    }
                    _ => {
                        if socket.send(Message::Text(text)).await.is_err() {
                            break "send failed";
                        }
                    }
                },
                Some(Ok(Message::Binary(bytes))) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break "send failed";
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    if let Some(dead) = Dead::find(&err) {
                        app.totals.deaths.fetch_add(1, Relaxed);
                        app.totals.last_silent_ms.store(dead.silent_for().as_millis() as u64, Relaxed);
                        break "dead";
                    }
                    break "failed";
                }
                None => break "closed",
            },
            _ = push.tick() => {
                let mut stats = app.stats();
                stats["rtt_ms"] = json!(handle.rtt().map(|rtt| rtt.as_secs_f64() * 1000.0));
                if socket.send(Message::Text(stats.to_string().into())).await.is_err() {
                    break "send failed";
                }
            }
        }
    };
    app.live.lock().unwrap().remove(&id);
    let s = handle.stats();
    app.totals.pings.fetch_add(s.pings_sent, Relaxed);
    app.totals.pongs.fetch_add(s.pongs_received, Relaxed);
    app.totals.rtt_samples.fetch_add(s.rtt_samples, Relaxed);
    println!(
        "connection {id}: {outcome} after {:?} ({s:?})",
        started.elapsed()
    );
}

/// The `type` of a JSON command from the page, if it is one.
fn command(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(value.get("type")?.as_str()?.to_owned())
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:3000", String::as_str)
        .parse()
        .expect("an address such as 127.0.0.1:3000");
    let interval = Duration::from_millis(arg(&args, "--interval-ms").unwrap_or(2000));
    let max_missed = arg(&args, "--max-missed").map_or(3, |n| n as u32);
    // Pages may ask for their own interval (a phone app in the background), within limits.
    let control = HeartbeatLayer::new()
        .interval(interval)
        .max_missed(max_missed)
        .follow_peer_interval(Duration::from_millis(100), Duration::from_secs(600));
    let app = Arc::new(App {
        json: control.clone().protocol(protocol::Json::new()),
        text: control.clone().protocol(protocol::Text::new()),
        binary: control.clone().protocol(protocol::BinaryCommand::new()),
        control,
        next_id: AtomicU64::new(0),
        live: Mutex::new(HashMap::new()),
        totals: Totals::default(),
    });
    let router = Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", include_str!("index.html")) }),
        )
        .route(
            "/app.js",
            get(|| async { file("text/javascript", include_str!("app.js")) }),
        )
        .route("/ws-heartbeat.js", get(ws_heartbeat::browser::script))
        .route(
            "/style.css",
            get(|| async { file("text/css", include_str!("style.css")) }),
        )
        .route(
            "/stats",
            get(|State(app): State<Arc<App>>| async move { Json(app.stats()) }),
        )
        .route("/ws", get(upgrade))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "demo on http://{} (server heartbeat: every {interval:?}, dead after {max_missed} missed)",
        listener.local_addr()?
    );
    axum::serve(listener, router).await
}
