//! Silent network failure: the server (examples/hyper_server) runs in a network namespace
//! the test creates, joined to the test by a veth pair; iptables DROP rules in the namespace
//! make packets vanish without a trace, in both directions or one. Heartbeat: 200 ms, 3
//! missed. Each end that stops hearing the other declares it dead within the bound; the
//! reconnecting client comes back once the path is restored. Real time.
//!
//! The last frame before the rule went in came at most one interval earlier, and real time
//! adds scheduling delay: from the rule, a death is expected in (400 ms, 800 ms + 300 ms].
//!
//! Needs root, `ip` and `iptables` (`.ci/run` installs iptables). Without root the test says
//! so and passes.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tower::Layer;
use ws_heartbeat::reconnect::{Backoff, Event, Reason, Reconnect};
use ws_heartbeat::{Dead, HeartbeatLayer};

use support::ms;

const INTERVAL: Duration = ms(200);
const EARLIEST: Duration = ms(400);
const LATEST: Duration = ms(1100);

fn run(args: &[&str]) {
    let status = std::process::Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect(args[0]);
    assert!(status.success(), "{args:?}");
}

/// A namespace with one end of a veth pair; the other end stays with the test. Removed
/// (both ends with it) when dropped.
struct Namespace {
    name: String,
    host: String,
    guest: String,
}

impl Namespace {
    fn create() -> Option<Self> {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if !is_root {
            eprintln!("skipped: network namespaces need root");
            return None;
        }
        let id = std::process::id() % 200 + 20;
        let ns = Namespace {
            name: format!("wsh{}", std::process::id()),
            host: format!("10.213.{id}.1"),
            guest: format!("10.213.{id}.2"),
        };
        let (h, g) = (
            format!("wshh{}", std::process::id() % 100_000),
            format!("wshg{}", std::process::id() % 100_000),
        );
        run(&["ip", "netns", "add", &ns.name]);
        run(&["ip", "link", "add", &h, "type", "veth", "peer", "name", &g]);
        run(&["ip", "link", "set", &g, "netns", &ns.name]);
        run(&["ip", "addr", "add", &format!("{}/24", ns.host), "dev", &h]);
        run(&["ip", "link", "set", &h, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{}/24", ns.guest), "dev", &g]);
        ns.exec(&["ip", "link", "set", &g, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }

    /// Drops, silently, what the host sends (`to_server`) and what the server sends back.
    fn drop_packets(&self, to_server: bool, to_client: bool) {
        if to_server {
            self.exec(&["iptables", "-A", "INPUT", "-s", &self.host, "-j", "DROP"]);
        }
        if to_client {
            self.exec(&["iptables", "-A", "OUTPUT", "-d", &self.host, "-j", "DROP"]);
        }
    }

    fn restore(&self) {
        self.exec(&["iptables", "-F"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// examples/hyper_server inside the namespace; its log lines arrive, timestamped as they
/// are printed, through `lines`.
struct Server {
    _child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    url: String,
}

impl Server {
    async fn start(ns: &Namespace) -> Self {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "--example", "hyper_server"])
            .status()
            .unwrap();
        assert!(status.success());
        let bin = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/debug/examples/hyper_server"
        );
        let addr = format!("{}:9000", ns.guest);
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                bin,
                &addr,
                "--no-demo",
                "--interval-ms",
                "200",
            ])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out: Lines<BufReader<ChildStdout>> =
            BufReader::new(child.stdout.take().unwrap()).lines();
        let first = out.next_line().await.unwrap().unwrap();
        assert!(first.starts_with("listening on"), "{first}");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send((Instant::now(), line));
            }
        });
        Self {
            _child: child,
            lines,
            url: format!("ws://{addr}"),
        }
    }

    /// The server's next log line containing `what`, and when it was printed.
    async fn wait_for(&mut self, what: &str, within: Duration) -> (Instant, String) {
        tokio::time::timeout(within, async {
            loop {
                let (at, line) = self.lines.recv().await.expect("the server ended");
                if line.contains(what) {
                    return (at, line);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no \"{what}\" from the server"))
    }
}

fn assert_in_window(what: &str, after: Duration) {
    assert!(
        after > EARLIEST && after <= LATEST,
        "{what}: {after:?} after the rule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silently_dropped_packets_are_found_dead_on_both_ends_and_the_client_comes_back() {
    let Some(ns) = Namespace::create() else {
        return;
    };
    let mut server = Server::start(&ns).await;
    let layer = HeartbeatLayer::new().interval(INTERVAL).max_missed(3);

    // A plain client, and a reconnecting one.
    let (ws, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    let mut plain = layer.layer(ws);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let url = server.url.clone();
    let mut client = Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(layer.clone())
    .backoff(Backoff::new().initial(ms(100)).max_delay(ms(400)))
    .connect_timeout(ms(500))
    .on_event(move |e| {
        let _ = events_tx.send((Instant::now(), e.clone()));
    })
    .build();
    let reconnecting = tokio::spawn(async move { while client.next().await.is_some() {} });
    assert!(matches!(
        events.recv().await.unwrap().1,
        Event::Connecting { .. }
    ));
    assert!(matches!(
        events.recv().await.unwrap().1,
        Event::Connected { .. }
    ));
    assert!(
        tokio::time::timeout(ms(1000), plain.next()).await.is_err(),
        "alive before the rule"
    );

    // Both directions dropped: every end is dead within the bound.
    ns.drop_packets(true, true);
    let rule = Instant::now();
    let err = tokio::time::timeout(ms(3000), plain.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(Dead::find(&err).is_some());
    assert_in_window("plain client", rule.elapsed());
    let (at, event) = events.recv().await.unwrap();
    assert!(
        matches!(
            event,
            Event::Disconnected {
                reason: Reason::Dead(_),
                ..
            }
        ),
        "{event:?}"
    );
    assert_in_window("reconnecting client", at - rule);
    for n in 0..2 {
        let (at, line) = server.wait_for("client dead", ms(3000)).await;
        assert_in_window(&format!("server, connection {n}"), at - rule);
        println!(
            "both directions dropped, {:?} after the rule: {line}",
            at - rule
        );
    }

    // Path back: the reconnecting client connects again.
    ns.restore();
    let restored = Instant::now();
    loop {
        let (at, event) = tokio::time::timeout(ms(5000), events.recv())
            .await
            .expect("reconnected")
            .unwrap();
        if let Event::Connected { retry } = event {
            println!(
                "reconnected {:?} after the path came back (retry {retry})",
                at - restored
            );
            break;
        }
    }

    // One direction dropped (the server's packets to the client): the client stops hearing
    // and declares the server dead in the bound; its Close gets through, so the server ends
    // the connection too.
    ns.drop_packets(false, true);
    let rule = Instant::now();
    loop {
        let (at, event) = tokio::time::timeout(ms(3000), events.recv())
            .await
            .expect("an event")
            .unwrap();
        if let Event::Disconnected { reason, .. } = event {
            assert!(matches!(reason, Reason::Dead(_)), "{reason:?}");
            assert_in_window("client, one direction", at - rule);
            break;
        }
    }
    ns.restore();
    reconnecting.abort();
}
