//! An echo server on hyper 1 and hyper-tungstenite, with keepalive added in front of an
//! unchanged handler by `ServiceBuilder::new().layer(HeartbeatLayer::new()..)`. Deaths and
//! round-trip times are logged through `tracing`.
//!
//! ```text
//! cargo run --example hyper_server                  # 127.0.0.1:3000, with two demo clients
//! cargo run --example hyper_server -- 0.0.0.0:9000 --no-demo --interval-ms 500 --max-missed 3
//! ```
//!
//! The demo clients show both outcomes within seconds: one answers (its RTT samples are
//! logged), one freezes after the handshake (the server declares it dead 6 to 8 s later:
//! interval 2 s, 3 missed pings). Connect your own with `cargo run --example client`.
//!
//! On Ctrl-C the server drains (`--drain-ms`, default 5 000): every WebSocket is closed with
//! 1012 at its own moment of the window while the server still accepts (a latecomer gets its
//! 1012 at once), then the HTTP connections finish through hyper-util's `GracefulShutdown`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_tungstenite::HyperWebsocketStream;
use hyper_tungstenite::tungstenite::{Error as WsError, Message};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};
use tracing::Instrument;
use ws_heartbeat::{Dead, DrainReport, Heartbeat, HeartbeatLayer, Stats};

/// The handler, exactly as it would be without keepalive: echo text and binary messages.
pub async fn echo<S>(mut ws: S) -> Result<(), WsError>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// How one WebSocket connection ended.
#[derive(Debug)]
pub struct Ended {
    pub peer: SocketAddr,
    /// From the handshake to the end.
    pub lasted: Duration,
    pub result: Result<(), WsError>,
    pub stats: Stats,
    pub rtt: Option<Duration>,
}

/// Serves HTTP on `listener`; WebSocket upgrades go to [`echo`] behind `keepalive`. Each
/// connection's end is reported on `ended`.
pub async fn serve(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let never = std::future::pending();
    serve_until(listener, keepalive, ended, never, Duration::ZERO).await;
}

/// [`serve`] until `shutdown` resolves, then drain: the WebSockets are closed with 1012
/// over `window` while the accept loop goes on (hyper's graceful shutdown knows nothing of
/// upgraded connections: the heartbeat's layer does); once they are gone, stop accepting
/// and let the HTTP connections finish. Returns the drain's report.
pub async fn serve_until(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
    shutdown: impl Future<Output = ()>,
    window: Duration,
) -> DrainReport {
    let graceful = GracefulShutdown::new();
    // The shutdown path: one line more than without keepalive, the drain.
    let drained = async {
        shutdown.await;
        keepalive.drain(window).await
    };
    let mut drained = pin!(drained);
    let report = loop {
        let (tcp, peer) = tokio::select! {
            report = &mut drained => break report,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    continue;
                }
            },
        };
        let (keepalive, ended) = (keepalive.clone(), ended.clone());
        let http = service_fn(move |req| upgrade(req, peer, keepalive.clone(), ended.clone()));
        let conn = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(tcp), http)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, %err, "http connection ended");
            }
        });
    };
    tracing::info!(?report, "websockets drained");
    graceful.shutdown().await;
    report
}

async fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
) -> Result<Response<Full<Bytes>>, WsError> {
    if !hyper_tungstenite::is_upgrade_request(&req) {
        return Ok(Response::new(Full::from(
            "ws-heartbeat example: connect with a WebSocket\n",
        )));
    }
    let (response, websocket) = hyper_tungstenite::upgrade(&mut req, None)?;
    tokio::spawn(async move {
        let ws = match websocket.await {
            Ok(ws) => ws,
            Err(err) => return tracing::warn!(%peer, %err, "upgrade failed"),
        };
        tracing::info!(%peer, "websocket connected");
        // Keepalive goes in front of the handler; the handler itself is unchanged.
        let handler = ServiceBuilder::new().layer(keepalive).service_fn(
            move |ws: Heartbeat<HyperWebsocketStream>| {
                let handle = ws.handle();
                let connected = Instant::now();
                let ended = ended.clone();
                async move {
                    let result = echo(ws).await;
                    let (lasted, stats, rtt) = (connected.elapsed(), handle.stats(), handle.rtt());
                    let _ = ended.send(Ended {
                        peer,
                        lasted,
                        result,
                        stats,
                        rtt,
                    });
                    Ok::<_, WsError>(())
                }
            },
        );
        // The heartbeat's own events (RTT samples, deaths) carry the span's peer address.
        let span = tracing::info_span!("ws", %peer);
        let _ = handler.oneshot(ws).instrument(span).await;
    });
    Ok(response)
}

fn log(ended: &Ended) {
    let Ended {
        peer,
        lasted,
        result,
        stats,
        rtt,
    } = ended;
    match result {
        Ok(()) => tracing::info!(%peer, ?lasted, ?rtt, ?stats, "websocket closed"),
        Err(err) => match Dead::find(err) {
            Some(dead) => tracing::warn!(
                %peer,
                missed = dead.missed(),
                silent_for = ?dead.silent_for(),
                ?lasted,
                "client dead: no answer to its last pings"
            ),
            None => tracing::warn!(%peer, %err, "websocket failed"),
        },
    }
}

/// Two clients of the server's own, to watch both outcomes.
async fn demo_clients(url: String) {
    // One that answers: tokio-tungstenite answers pings while it reads.
    let healthy = url.clone();
    tokio::spawn(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(healthy.as_str()).await?;
        ws.send(Message::text("hello from the healthy demo client"))
            .await?;
        while ws.next().await.transpose()?.is_some() {}
        Ok::<_, WsError>(())
    });
    // One that freezes after the handshake: never reads, so never answers a ping.
    let (frozen, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(connected) => connected,
        Err(err) => return tracing::warn!(%err, "demo client failed to connect"),
    };
    tracing::info!("demo: one client answers pings, one is frozen and will be declared dead");
    std::future::pending::<()>().await;
    drop(frozen);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ws_heartbeat=debug".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:3000", String::as_str);
    let number = |name: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1)?.parse().ok()
    };
    let interval = Duration::from_millis(number("--interval-ms").unwrap_or(2000));
    let max_missed = number("--max-missed").map_or(3, |n| n as u32);
    let keepalive = HeartbeatLayer::new()
        .interval(interval)
        .max_missed(max_missed);

    let listener = TcpListener::bind(addr).await?;
    let url = format!("ws://{}", listener.local_addr()?);
    println!(
        "listening on {url} (keepalive: ping every {interval:?}, dead after {max_missed} missed)"
    );
    let window = Duration::from_millis(number("--drain-ms").unwrap_or(5000));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctrl_c = async move {
        let _ = tokio::signal::ctrl_c().await;
        println!("draining over {window:?}");
    };
    let server = tokio::spawn(serve_until(listener, keepalive, tx, ctrl_c, window));
    if !args.iter().any(|a| a == "--no-demo") {
        tokio::spawn(demo_clients(url));
    }
    tokio::spawn(async move {
        while let Some(ended) = rx.recv().await {
            log(&ended);
        }
    });
    let report = server.await?;
    println!("stopped: {report:?}");
    Ok(())
}
