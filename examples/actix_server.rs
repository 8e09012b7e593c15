//! An echo server on actix-web 4 and actix-ws 0.4, with keepalive: the handler is written
//! the way actix-ws's own examples are, with `ws_heartbeat::actix::handle` in place of
//! `actix_ws::handle`, and the settings in the app data. Deaths are printed.
//!
//! ```text
//! cargo run --example actix_server                  # ws://127.0.0.1:3000/ws
//! cargo run --example actix_server -- 127.0.0.1:9000 --interval-ms 500 --max-missed 3
//! cargo run --example client -- ws://127.0.0.1:3000/ws --seconds 10
//! ```
//!
//! On Ctrl-C the server drains (`--drain-ms`, default 5 000): every WebSocket is closed with
//! 1012 at its own moment of the window while the server still accepts (a latecomer gets its
//! 1012 at once), then `ServerHandle::stop(true)`. actix-web's own signal handling is off:
//! it would stop accepting at once and force-close the WebSockets after `shutdown_timeout`.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{Message, ProtocolError, Session};
use tokio::sync::mpsc;
use ws_heartbeat::actix::MessageStream;
use ws_heartbeat::{Dead, DrainReport, HeartbeatLayer, Stats};

/// How one WebSocket connection ended.
#[derive(Debug)]
pub struct Ended {
    /// From the handshake to the end.
    pub lasted: Duration,
    pub result: Result<(), ProtocolError>,
    pub stats: Stats,
    pub rtt: Option<Duration>,
}

/// The handler: echo text and binary messages, answer a Close. It never sees a ping or a
/// pong; a dead client ends the stream with an error carrying `Dead`.
async fn echo(session: &mut Session, stream: &mut MessageStream) -> Result<(), ProtocolError> {
    while let Some(msg) = stream.recv().await {
        let sent = match msg? {
            Message::Text(text) => session.text(text).await,
            Message::Binary(bytes) => session.binary(bytes).await,
            Message::Close(reason) => {
                let _ = session.clone().close(reason).await;
                return Ok(());
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            // The session is closed: the connection is going away.
            return Ok(());
        }
    }
    Ok(())
}

async fn ws(
    req: HttpRequest,
    body: web::Payload,
    ended: web::Data<mpsc::UnboundedSender<Ended>>,
) -> actix_web::Result<HttpResponse> {
    // The one changed line: `actix_ws::handle` would give the same three, without keepalive.
    let (response, mut session, mut stream) = ws_heartbeat::actix::handle(&req, body)?;
    let (handle, connected) = (stream.handle(), Instant::now());
    actix_web::rt::spawn(async move {
        let result = echo(&mut session, &mut stream).await;
        if let Some(dead) = result.as_ref().err().and_then(|err| Dead::find(err)) {
            eprintln!("client gone: {dead}");
        }
        let _ = session.close(None).await;
        let _ = ended.send(Ended {
            lasted: connected.elapsed(),
            result,
            stats: handle.stats(),
            rtt: handle.rtt(),
        });
    });
    Ok(response)
}

/// Serves `/ws` on `listener` with `keepalive`'s settings, reporting each connection's end
/// on `ended`. Runs on the current actix system.
pub async fn serve(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
) -> std::io::Result<()> {
    let never = std::future::pending();
    serve_until(listener, keepalive, ended, never, Duration::ZERO)
        .await
        .map(drop)
}

/// [`serve`] until `shutdown` resolves, then drain the WebSockets over `window` (still
/// accepting), then stop the server. Returns the drain's report.
pub async fn serve_until(
    listener: TcpListener,
    keepalive: HeartbeatLayer,
    ended: mpsc::UnboundedSender<Ended>,
    shutdown: impl Future<Output = ()> + 'static,
    window: Duration,
) -> std::io::Result<DrainReport> {
    let layer = keepalive.clone();
    let keepalive = web::Data::new(keepalive);
    let ended = web::Data::new(ended);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(keepalive.clone())
            .app_data(ended.clone())
            .route("/ws", web::get().to(ws))
    })
    .workers(1)
    .disable_signals()
    // Longer than the drain: by the stop, no WebSocket is left to force-close.
    .shutdown_timeout(window.as_secs() + 5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let stop = actix_web::rt::spawn(async move {
        shutdown.await;
        let report = layer.drain(window).await;
        handle.stop(true).await;
        report
    });
    server.await?;
    Ok(stop.await.unwrap_or_default())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:3000", String::as_str);
    let number = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let keepalive = HeartbeatLayer::new()
        .interval(Duration::from_millis(number("--interval-ms", 2000)))
        .max_missed(number("--max-missed", 3) as u32);
    let listener = TcpListener::bind(addr)?;
    println!("actix echo server on ws://{}/ws", listener.local_addr()?);
    let (ended, mut report) = mpsc::unbounded_channel::<Ended>();
    actix_web::rt::spawn(async move {
        while let Some(ended) = report.recv().await {
            println!(
                "connection ended after {:?}: {:?}",
                ended.lasted, ended.stats
            );
        }
    });
    let window = Duration::from_millis(number("--drain-ms", 5000));
    let ctrl_c = async {
        let _ = actix_web::rt::signal::ctrl_c().await;
    };
    let report = serve_until(listener, keepalive, ended, ctrl_c, window).await?;
    println!("stopped: {report:?}");
    Ok(())
}
