//! A handler that is away between a request and its answer (a slow database call) for three
//! times its peer's dead bound, against peers with deadlines of their own. With
//! `HeartbeatLayer::background()` the connection survives and the answer arrives; with
//! the default, it does not, which is what the option is for:
//!
//! - Python `websockets` with `ping_interval=0.2, ping_timeout=0.4`: its pings go unanswered
//!   while nothing reads, and it closes the connection;
//! - the browser module (`js/ws-heartbeat.js` in Node with `ws`), JSON heartbeat every 200 ms,
//!   2 missed: the server answers its pings only while something reads;
//! - nginx with `proxy_read_timeout 1s`: nothing comes from the server while the handler is
//!   away, and nginx cuts the connection.
//!
//! Our heartbeat: 200 ms, 3 missed. The handler is away 1.8 s (3 × the peers' 0.6 s). Real
//! time on 127.0.0.1. Needs the peers (`.ci/run` installs them; see `tests/peers.rs`) and
//! nginx (`tests/proxy.rs`); without them the tests are ignored, and under `CI=true` they
//! fail. A `harness = false` test (see `support::trials`).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tower::Layer;
use ws_heartbeat::{HeartbeatLayer, protocol};

use support::ms;
use support::nginx::Nginx;
use support::peer_programs::{self, Peer, peers_dir};
use support::trials::{self, Flavor, Suite};

/// How long the handler is away: three times the peers' dead bound (0.6 s).
const AWAY: Duration = ms(1800);

const RUNTIME: Flavor = Flavor::MultiThread { workers: 2 };

fn main() {
    let python = peer_programs::python_with_websockets();
    let node = peer_programs::node_with_ws();
    let nginx = trials::program("nginx", "apt-get install nginx");
    let mut suite = Suite::new();
    for background in [true, false] {
        let with = if background { "with" } else { "without" };
        suite.test(
            &format!("python_websockets_client_of_a_busy_handler_{with}_background"),
            &python,
            RUNTIME,
            move |python| python_client(python, background),
        );
        suite.test(
            &format!("browser_module_client_of_a_busy_handler_{with}_background"),
            &node,
            RUNTIME,
            move |node| browser_module_client(node, background),
        );
        suite.test(
            &format!("nginx_in_front_of_a_busy_handler_{with}_background"),
            &nginx,
            RUNTIME,
            move |nginx| behind_nginx(nginx, background),
        );
    }
    suite.run()
}

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(ms(200)).max_missed(3)
}

/// A server on a free port whose handler (in background mode or not) reads a request, is
/// away for `AWAY`, answers "answer", and reads on. Returns the port.
async fn busy_server(layer: HeartbeatLayer, background: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let layer = layer.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                if background {
                    busy_handler(layer.background().wrap(ws)).await;
                } else {
                    busy_handler(layer.layer(ws)).await;
                }
            });
        }
    });
    port
}

async fn busy_handler<W, E>(mut ws: W)
where
    W: futures_util::Stream<Item = Result<Message, E>> + futures_util::Sink<Message> + Unpin,
{
    // The request (anything else the peer sends first is data too).
    let Some(Ok(_)) = ws.next().await else { return };
    tokio::time::sleep(AWAY).await; // the database
    if ws.send(Message::text("answer")).await.is_err() {
        return;
    }
    while let Some(Ok(_)) = ws.next().await {}
}

/// The peer's one line: what came first, and when (seconds after its request).
fn outcome(line: &str) -> (String, Option<Duration>) {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or_default().to_string();
    let at = words
        .last()
        .and_then(|w| w.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    (first, at)
}

/// With the option the answer arrives after the handler's wait; without it, the peer gave up
/// first, within its own bound plus slack (well before the answer would have come).
fn check(peer: &str, line: &str, background: bool) {
    println!("{peer}, background {background}: {line}");
    let (what, at) = outcome(line);
    if background {
        assert_eq!(what, "answer", "{line}");
        let at = at.unwrap();
        assert!(at >= AWAY && at <= AWAY + ms(500), "{line}");
    } else {
        assert_ne!(what, "answer", "{line}");
        assert_ne!(what, "timeout", "{line}");
        assert!(at.unwrap() < AWAY, "{line}");
    }
}

async fn python_client(python: PathBuf, background: bool) {
    let port = busy_server(layer(), background).await;
    let url = format!("ws://127.0.0.1:{port}");
    let mut peer = Peer::spawn(&python, &peers_dir().join("py_busy_client.py"), &[&url]);
    check("python websockets", &peer.line().await, background);
}

async fn browser_module_client(node: PathBuf, background: bool) {
    let port = busy_server(layer().protocol(protocol::Json::new()), background).await;
    let url = format!("ws://127.0.0.1:{port}");
    let mut peer = Peer::spawn(&node, &peers_dir().join("node_busy_client.mjs"), &[&url]);
    check("browser module", &peer.line().await, background);
}

async fn behind_nginx(nginx: PathBuf, background: bool) {
    // nginx cuts a connection on which nothing moved for 1 s; the handler is away for 1.8 s.
    let proxy = Nginx::start(&nginx, busy_server(layer(), background).await, ms(1000)).await;
    let url = format!("ws://127.0.0.1:{}", proxy.port);
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let start = tokio::time::Instant::now();
    client.send(Message::text("request")).await.unwrap();
    // The client reads (and so answers our pings, which cross nginx) until the answer or the
    // end of the connection.
    let line = loop {
        match tokio::time::timeout(ms(6000), client.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                break format!("answer {text} {:.3}", start.elapsed().as_secs_f64());
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => break format!("closed - {:.3}", start.elapsed().as_secs_f64()),
            Err(_) => break "timeout".to_string(),
        }
    };
    check("behind nginx", &line, background);
}
