//! Other people's peers: Python `websockets` and Node `ws`, as clients of our example server
//! and as servers for our client, with their own keepalive on and off. For each pairing: a
//! live connection is never declared dead over 20 intervals; the peer frozen with SIGSTOP
//! is declared dead within the bound; the peer resumed after that does not revive it. And
//! Python's reconnect loop against a draining server: told 1012, connected again at once.
//!
//! Heartbeat: interval 200 ms, 3 missed: dead after more than 600 ms and within 800 ms of
//! the peer's last frame. The peer's last frame comes at most one interval before the
//! SIGSTOP, and real processes on a loaded machine add scheduling delay, so from the SIGSTOP
//! the test accepts (400 ms, 800 ms + 300 ms].
//!
//! Needs the peers installed (`.ci/run` does it), each found the way the OS finds programs:
//! - Python: `WS_HEARTBEAT_PYTHON` if set, else `python3` on `PATH`, which must be able to
//!   import `websockets` (the asyncio client and server): `python3 -m venv VENV &&
//!   VENV/bin/pip install -r tests/peers/requirements.txt`, then set
//!   `WS_HEARTBEAT_PYTHON=VENV/bin/python`;
//! - Node: `node` on `PATH`, which must be able to import `ws` from `tests/peers`:
//!   `(cd tests/peers && npm ci)`.
//!
//! A test whose peer is missing is reported as ignored, with what to install; under
//! `CI=true` it fails instead. A `harness = false` test (see `support::trials`).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_server;

use support::ms;
use support::peer_programs::{self, Peer, peers_dir};
use support::trials::{Flavor, Requirement, Suite};

const INTERVAL: Duration = ms(200);
const SLACK: Duration = ms(300);

/// As `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
const RUNTIME: Flavor = Flavor::MultiThread { workers: 2 };

fn main() {
    let python = python();
    let node = node();
    let mut suite = Suite::new();
    for role in ["client", "server"] {
        for (peer, kind) in [(&python, "python"), (&node, "node")] {
            for keepalive in ["on", "off"] {
                let with = if keepalive == "on" { "with" } else { "without" };
                let name = format!("{kind}_{role}_{with}_keepalive");
                if role == "client" {
                    suite.test(&name, peer, RUNTIME, move |peer| {
                        peer_client_of_our_server(peer, keepalive)
                    });
                } else {
                    suite.test(&name, peer, RUNTIME, move |peer| {
                        our_client_of_peer_server(peer, keepalive)
                    });
                }
            }
        }
    }
    suite.test(
        "python_client_reconnects_after_a_drain",
        &python,
        RUNTIME,
        python_reconnects_after_a_drain,
    );
    suite.run()
}

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(INTERVAL).max_missed(3)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Python,
    Node,
}

/// An installed peer: the interpreter that runs its scripts.
#[derive(Clone, Debug)]
struct PeerProgram {
    kind: Kind,
    program: PathBuf,
}

impl PeerProgram {
    /// The script of `role` ("client" or "server").
    fn script(&self, role: &str) -> PathBuf {
        match self.kind {
            Kind::Python => peers_dir().join(format!("py_{role}.py")),
            Kind::Node => peers_dir().join(format!("node_{role}.mjs")),
        }
    }

    /// The keepalive interval argument of the peer scripts: seconds or milliseconds.
    fn interval(&self) -> &'static str {
        match self.kind {
            Kind::Python => "0.2",
            Kind::Node => "200",
        }
    }
}

/// Python with `websockets` (see `support::peer_programs`).
fn python() -> Requirement<PeerProgram> {
    peer_programs::python_with_websockets().map(|program| PeerProgram {
        kind: Kind::Python,
        program,
    })
}

/// Node with `ws` installed in tests/peers.
fn node() -> Requirement<PeerProgram> {
    peer_programs::node_with_ws().map(|program| PeerProgram {
        kind: Kind::Node,
        program,
    })
}

/// Our hyper example server, the peer its client.
async fn peer_client_of_our_server(peer: PeerProgram, keepalive: &str) {
    let kind = peer.kind;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, mut ended) = mpsc::unbounded_channel();
    tokio::spawn(hyper_server::serve(listener, layer(), tx));
    let mut peer = Peer::spawn(
        &peer.program,
        &peer.script("client"),
        &[&url, keepalive, peer.interval()],
    );
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

/// Python's reconnect loop (`async for ws in connect(url)`) against a draining server: the
/// server's layer drains over 300 ms while the server goes on accepting with a fresh layer
/// (as the next process, or the next server behind a load balancer, would); the client is
/// told 1012 at its moment and is connected again, to the fresh layer, right after.
async fn python_reconnects_after_a_drain(peer: PeerProgram) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (old, new) = (layer(), layer());
    let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (accepted, mut served_by) = mpsc::unbounded_channel::<&'static str>();
    let server = {
        let (old, new, restarted) = (old.clone(), new.clone(), restarted.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let fresh = restarted.load(std::sync::atomic::Ordering::SeqCst);
                let (layer, name) = if fresh { (&new, "new") } else { (&old, "old") };
                let (layer, accepted) = (layer.clone(), accepted.clone());
                tokio::spawn(async move {
                    let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    let mut ws = layer.layer(ws);
                    let _ = accepted.send(name);
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        })
    };
    let mut peer = Peer::spawn(&peer.program, &peer.script("reconnecting_client"), &[&url]);
    assert_eq!(peer.line().await, "connected");
    assert_eq!(served_by.recv().await, Some("old"));
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    let began = Instant::now();
    let report = old.drain(ms(300)).await;
    assert_eq!(
        [report.closed, report.forced, report.held],
        [1, 0, 0],
        "{report:?}"
    );
    assert_eq!(peer.line().await, "closed 1012");
    assert_eq!(peer.line().await, "connected");
    assert_eq!(served_by.recv().await, Some("new"));
    let back = began.elapsed();
    assert!(
        back >= ms(300) && back < ms(300) + SLACK,
        "connected again {back:?} after the drain began"
    );
    println!("python: closed 1012 and connected again {back:?} after the drain began");
    server.abort();
}

/// The peer a server, our tokio-tungstenite client with a heartbeat.
async fn our_client_of_peer_server(peer: PeerProgram, keepalive: &str) {
    let kind = peer.kind;
    let mut peer = Peer::spawn(
        &peer.program,
        &peer.script("server"),
        &[keepalive, peer.interval()],
    );
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
