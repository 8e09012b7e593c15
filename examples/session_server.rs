//! A server whose sessions resume across reconnects (`ws_heartbeat::resume`): its handler
//! echoes each text with the server's name in front (`a:hello`), and never notices a client
//! that lost its connection and came back within the window. A WebSocket on `/stats` is not
//! a session: it answers the text `stats` with the server's name, how many times the handler
//! was called and how many sessions it holds (`a calls=1 sessions=1`). On `/plain` a plain
//! heartbeated echo, without a session.
//!
//! ```text
//! cargo run --example session_server -- [PORT [NAME [INTERVAL_MS [WINDOW_MS [DRAIN_MS]]]]]
//! cargo run --example session_server -- 3000 a 10000 30000 5000   # the defaults
//! ```
//!
//! Port 0 takes a free port; the server prints `listening <port>` once it accepts. Two of
//! them behind nginx hashing on the client's key: `tests/resume_nginx.rs`; three restarted
//! in turn: `tests/rolling_restart.rs`.
//!
//! SIGTERM (or Ctrl-C) drains it over `DRAIN_MS` (`HeartbeatLayer::drain`: plain
//! connections closed with 1012, sessions finished, each at its own moment; it accepts
//! meanwhile), then it exits. On stdout, besides `listening`: `accepted /PATH` for each
//! WebSocket, and for each session whose client numbers its texts `KEY SEQ`, at its end,
//! `session KEY FROM TO COUNT` (the numbers it got, which `COUNT = TO - FROM + 1` shows were
//! consecutive), then `drained {report}` before it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tower::Layer;
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
    let (interval, window, drain) = (millis(10_000), millis(30_000), millis(5_000));

    let layer = HeartbeatLayer::new().interval(interval);
    let sessions = layer.clone().resume(Resume::new().window(window));
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    say(format_args!("listening {}", listener.local_addr()?.port()));
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    let drained = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        layer.drain(drain).await
    };
    tokio::pin!(drained);
    loop {
        let tcp = tokio::select! {
            report = &mut drained => {
                say(format_args!("drained {report:?}"));
                return Ok(());
            }
            accepted = listener.accept() => accepted?.0,
        };
        let (layer, sessions) = (layer.clone(), sessions.clone());
        let (calls, name) = (calls.clone(), name.clone());
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
            say(format_args!("accepted {path}"));
            match path.as_str() {
                "/stats" => return stats(ws, &name, &calls, &sessions).await,
                "/plain" => return plain(layer.layer(ws), &name).await,
                _ => {}
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

/// A line on stdout; a reader that went away is not an error (the tests read only what they
/// need).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The numbers a session's client sent as `KEY SEQ`: the first and last, and how many.
#[derive(Default)]
struct Numbered {
    key: Option<String>,
    from: u64,
    to: u64,
    count: u64,
}

impl Numbered {
    fn note(&mut self, text: &str) {
        let Some((key, seq)) = text.split_once(' ') else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return;
        };
        if self.key.is_none() {
            self.key = Some(key.to_owned());
            self.from = seq;
        }
        self.to = seq;
        self.count += 1;
    }
}

/// The handler of one session.
async fn echo(mut ws: Session<WebSocketStream<TcpStream>>, name: &str) {
    let mut numbered = Numbered::default();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                numbered.note(&text);
                // Refused once a drain's finish began (the client sends no more): read on to
                // the end.
                let _ = ws.send(Message::text(format!("{name}:{text}"))).await;
            }
            Ok(_) => {}
            Err(err) => match SessionLost::find(&err) {
                Some(lost) => {
                    eprintln!("{name}: {lost}"); // not back within the window
                    break;
                }
                None => {
                    eprintln!("{name}: {err}");
                    break;
                }
            },
        }
    }
    if let Some(key) = numbered.key {
        let Numbered {
            from, to, count, ..
        } = numbered;
        say(format_args!("session {key} {from} {to} {count}"));
    }
}

/// `/plain`: a heartbeated echo without a session.
async fn plain(mut ws: ws_heartbeat::Heartbeat<WebSocketStream<TcpStream>>, name: &str) {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg {
            if ws
                .send(Message::text(format!("{name}:{text}")))
                .await
                .is_err()
            {
                return;
            }
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
