//! A server whose sessions resume across reconnects (`ws_heartbeat::resume`): its handler
//! echoes each text with the server's name in front (`a:hello`), and never notices a client
//! that lost its connection and came back within the window. A WebSocket on `/stats` is not
//! a session: it answers the text `stats` with the server's name, how many times the handler
//! was called and how many sessions it holds (`a calls=1 sessions=1`).
//!
//! ```text
//! cargo run --example session_server -- [PORT [NAME [INTERVAL_MS [WINDOW_MS]]]]
//! cargo run --example session_server -- 3000 a 10000 30000      # the defaults
//! ```
//!
//! Port 0 takes a free port; the server prints `listening <port>` once it accepts. Two of
//! them behind nginx hashing on the client's key: `tests/resume_nginx.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::resume::{Resume, Session, SessionLost, Sessions};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .map_or(3000, |p| p.parse().expect("PORT: a number"));
    let name: Arc<str> = args.next().unwrap_or_else(|| "a".into()).into();
    let mut millis = |default| {
        Duration::from_millis(
            args.next()
                .map_or(default, |n| n.parse().expect("a number of milliseconds")),
        )
    };
    let (interval, window) = (millis(10_000), millis(30_000));

    let sessions = HeartbeatLayer::new()
        .interval(interval)
        .resume(Resume::new().window(window));
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    loop {
        let (tcp, _) = listener.accept().await?;
        let (sessions, calls, name) = (sessions.clone(), calls.clone(), name.clone());
        tokio::spawn(async move {
            let mut path = String::new();
            #[allow(clippy::result_large_err)] // tungstenite's type for a refusal
            let on_request = |req: &Request, res: Response| {
                path = req.uri().path().to_owned();
                Ok(res)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, on_request).await else {
                return;
            };
            if path == "/stats" {
                return stats(ws, &name, &calls, &sessions).await;
            }
            match sessions.accept(ws).await {
                // A new session: the handler runs once for its whole life.
                Ok(Some(session)) => {
                    calls.fetch_add(1, Ordering::Relaxed);
                    echo(session, &name).await;
                }
                Ok(None) => {} // a resume: the socket went to its session's handler
                Err(err) => eprintln!("{name}: {err}"), // closed with its code (4410, ...)
            }
        });
    }
}

/// The handler of one session.
async fn echo(mut ws: Session<WebSocketStream<TcpStream>>, name: &str) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                if ws
                    .send(Message::text(format!("{name}:{text}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(err) => match SessionLost::find(&err) {
                Some(lost) => return eprintln!("{name}: {lost}"), // not back within the window
                None => return eprintln!("{name}: {err}"),
            },
        }
    }
}

/// `/stats`: a plain WebSocket, not a session.
async fn stats(
    mut ws: WebSocketStream<TcpStream>,
    name: &str,
    calls: &AtomicUsize,
    sessions: &Sessions,
) {
    while let Some(Ok(msg)) = ws.next().await {
        if msg.to_text().is_ok_and(|t| t == "stats") {
            let calls = calls.load(Ordering::Relaxed);
            let answer = format!("{name} calls={calls} sessions={}", sessions.len());
            if ws.send(Message::text(answer)).await.is_err() {
                return;
            }
        }
    }
}
