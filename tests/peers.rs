//! Other people's peers: Python `websockets` and Node `ws`, as clients of our example server
//! and as servers for our client, with their own keepalive on and off. For each pairing: a
//! live connection is never declared dead over 20 intervals; the peer frozen with SIGSTOP
//! is declared dead within the bound; the peer resumed after that does not revive it.
//!
//! Heartbeat: interval 200 ms, 3 missed: dead after more than 600 ms and within 800 ms of
//! the peer's last frame. The peer's last frame comes at most one interval before the
//! SIGSTOP, and real processes on a loaded machine add scheduling delay, so from the SIGSTOP
//! the test accepts (400 ms, 800 ms + 300 ms].
//!
//! Needs the peers installed (`.ci/run` does it): a virtual environment with
//! `tests/peers/requirements.txt` at `target/peers-venv` (or `WS_HEARTBEAT_PYTHON`), and
//! `npm ci` in `tests/peers`. Without them the tests say so and pass, except under CI=true,
//! where they fail.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_server;

use support::ms;

const INTERVAL: Duration = ms(200);
const SLACK: Duration = ms(300);

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(INTERVAL).max_missed(3)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Python,
    Node,
}

/// The program and script that run a peer, if installed.
fn peer_command(kind: Kind, role: &str) -> Option<(PathBuf, PathBuf)> {
    let peers = root().join("tests/peers");
    let found = match kind {
        Kind::Python => {
            let python = std::env::var_os("WS_HEARTBEAT_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target/peers-venv/bin/python"));
            python
                .exists()
                .then(|| (python, peers.join(format!("py_{role}.py"))))
        }
        Kind::Node => peers.join("node_modules/ws").exists().then(|| {
            (
                PathBuf::from("node"),
                peers.join(format!("node_{role}.mjs")),
            )
        }),
    };
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{kind:?} peers are not installed (see .ci/run)"
        );
        eprintln!("skipped: {kind:?} peers are not installed (see .ci/run)");
    }
    found
}

struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn spawn(program: &Path, script: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("peer starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await;
        line.expect("the peer said something")
            .unwrap()
            .expect("a line")
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// Our hyper example server, the peer its client.
async fn peer_client_of_our_server(kind: Kind, keepalive: &str) {
    let Some((program, script)) = peer_command(kind, "client") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, mut ended) = mpsc::unbounded_channel();
    tokio::spawn(hyper_server::serve(listener, layer(), tx));
    let interval = match kind {
        Kind::Python => "0.2",
        Kind::Node => "200",
    };
    let mut peer = Peer::spawn(&program, &script, &[&url, keepalive, interval]);
    assert_eq!(peer.line().await, "connected");

    // Alive for 20 intervals, whichever side pings.
    let early = tokio::time::timeout(20 * INTERVAL, ended.recv()).await;
    assert!(
        early.is_err(),
        "{kind:?} ({keepalive}) ended early: {:?}",
        early.unwrap().map(|e| e.result)
    );

    peer.signal("-STOP");
    let stopped = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(5), ended.recv())
        .await
        .unwrap()
        .unwrap();
    let after = stopped.elapsed();
    let err = report.result.expect_err("dead, not closed");
    assert!(Dead::find(&err).is_some(), "{err}");
    assert!(
        after > ms(400) && after <= ms(800) + SLACK,
        "{kind:?} ({keepalive}): dead {after:?} after SIGSTOP"
    );

    // Resumed, the peer finds the connection gone; nothing revives it on our side.
    peer.signal("-CONT");
    let closed = peer.line().await;
    assert!(
        closed == "closed 1011" || closed == "closed 1006",
        "{kind:?}: {closed}"
    );
    assert!(
        tokio::time::timeout(ms(500), ended.recv()).await.is_err(),
        "no second report"
    );
    println!("{kind:?} client, keepalive {keepalive}: dead {after:?} after SIGSTOP; then {closed}");
}

/// The peer a server, our tokio-tungstenite client with a heartbeat.
async fn our_client_of_peer_server(kind: Kind, keepalive: &str) {
    let Some((program, script)) = peer_command(kind, "server") else {
        return;
    };
    let interval = match kind {
        Kind::Python => "0.2",
        Kind::Node => "200",
    };
    let mut peer = Peer::spawn(&program, &script, &[keepalive, interval]);
    let listening = peer.line().await;
    let port = listening.strip_prefix("listening ").expect("a port");
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut ws = layer().layer(ws);
    let handle = ws.handle();

    let early = tokio::time::timeout(20 * INTERVAL, ws.next()).await;
    assert!(
        early.is_err(),
        "{kind:?} ({keepalive}) ended early: {early:?}"
    );
    assert_eq!(handle.stats().missed, 0);

    peer.signal("-STOP");
    let stopped = Instant::now();
    let item = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    let after = stopped.elapsed();
    let err = item.unwrap().expect_err("dead");
    assert!(Dead::find(&err).is_some(), "{err}");
    assert!(
        after > ms(400) && after <= ms(800) + SLACK,
        "{kind:?} ({keepalive}): dead {after:?} after SIGSTOP"
    );

    peer.signal("-CONT");
    let resumed = tokio::time::timeout(ms(1000), ws.next()).await.unwrap();
    assert!(
        resumed.is_none(),
        "a resumed peer does not revive the connection: {resumed:?}"
    );
    println!("{kind:?} server, keepalive {keepalive}: dead {after:?} after SIGSTOP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_with_keepalive() {
    peer_client_of_our_server(Kind::Python, "on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_without_keepalive() {
    peer_client_of_our_server(Kind::Python, "off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_with_keepalive() {
    peer_client_of_our_server(Kind::Node, "on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_without_keepalive() {
    peer_client_of_our_server(Kind::Node, "off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_with_keepalive() {
    our_client_of_peer_server(Kind::Python, "on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_without_keepalive() {
    our_client_of_peer_server(Kind::Python, "off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_server_with_keepalive() {
    our_client_of_peer_server(Kind::Node, "on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_server_without_keepalive() {
    our_client_of_peer_server(Kind::Node, "off").await;
}
