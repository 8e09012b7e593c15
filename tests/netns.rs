//! Silent network failure: the server (examples/hyper_server) runs in a network namespace
//! the test creates, joined to the test by a veth pair; iptables DROP rules in the namespace
//! make packets vanish without a trace, in both directions or one. Heartbeat: 200 ms, 3
//! missed. Each end that stops hearing the other declares it dead within the bound; the
//! reconnecting client comes back once the path is restored. Real time.
//!
//! The last frame before the rule went in came at most one interval earlier, and real time
//! adds scheduling delay: from the rule, a death is expected in (400 ms, 800 ms + 300 ms].
//!
//! Needs root, and `ip` and `iptables` on `PATH` with `iptables -L` working (the kernel's
//! netfilter reachable): `apt-get install iptables iproute2`, run as root (`.ci/run` does
//! both). Without them the test is reported as ignored, with that reason; under `CI=true`
//! it fails instead. A `harness = false` test (see `support::trials`). The server is the
//! example's executable as cargo builds and reports it (`support::trials::example`), so
//! `CARGO_TARGET_DIR` is respected.

mod support;

use std::path::PathBuf;
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
use support::trials::{self, Flavor, Requirement, Suite};

fn main() {
    let tools = tools();
    let mut suite = Suite::new();
    suite.test(
        "silently_dropped_packets_are_found_dead_on_both_ends_and_the_client_comes_back",
        &tools,
        // As `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
        Flavor::MultiThread { workers: 2 },
        silently_dropped_packets_are_found_dead_on_both_ends_and_the_client_comes_back,
    );
    suite.run()
}

const INTERVAL: Duration = ms(200);
const EARLIEST: Duration = ms(400);
const LATEST: Duration = ms(1100);

/// `ip` and `iptables`, usable: found on `PATH`, run as root, and `iptables -L` works.
#[derive(Clone, Debug)]
struct Tools {
    ip: PathBuf,
    iptables: PathBuf,
}

fn tools() -> Requirement<Tools> {
    let needs = |why: &str| {
        format!("needs root and iptables: apt-get install iptables iproute2, run as root ({why})")
    };
    if !trials::is_root() {
        return Err(needs("not root here"));
    }
    let ip = trials::on_path("ip").ok_or_else(|| needs("no ip on PATH"))?;
    let iptables = trials::on_path("iptables").ok_or_else(|| needs("no iptables on PATH"))?;
    trials::check_output(&iptables, &["-w", "-n", "-L"], std::path::Path::new("/"))
        .map_err(|why| needs(&format!("iptables -L fails: {why}")))?;
    Ok(Tools { ip, iptables })
}

fn run(program: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(status.success(), "{} {args:?}", program.display());
}

/// A namespace with one end of a veth pair; the other end stays with the test. Removed
/// (both ends with it) when dropped.
struct Namespace {
    tools: Tools,
    name: String,
    host: String,
    guest: String,
}

impl Namespace {
    fn create(tools: Tools) -> Self {
        let id = std::process::id() % 200 + 20;
        let ns = Namespace {
            tools,
            name: format!("wsh{}", std::process::id()),
            host: format!("10.213.{id}.1"),
            guest: format!("10.213.{id}.2"),
        };
        let (h, g) = (
            format!("wshh{}", std::process::id() % 100_000),
            format!("wshg{}", std::process::id() % 100_000),
        );
        let ip = &ns.tools.ip;
        run(ip, &["netns", "add", &ns.name]);
        run(ip, &["link", "add", &h, "type", "veth", "peer", "name", &g]);
        run(ip, &["link", "set", &g, "netns", &ns.name]);
        run(ip, &["addr", "add", &format!("{}/24", ns.host), "dev", &h]);
        run(ip, &["link", "set", &h, "up"]);
        ns.ip(&["addr", "add", &format!("{}/24", ns.guest), "dev", &g]);
        ns.ip(&["link", "set", &g, "up"]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip args...` inside the namespace.
    fn ip(&self, args: &[&str]) {
        self.exec(&self.tools.ip, args);
    }

    /// `iptables args...` inside the namespace.
    fn iptables(&self, args: &[&str]) {
        self.exec(&self.tools.iptables, args);
    }

    fn exec(&self, program: &std::path::Path, args: &[&str]) {
        let program = program.to_str().expect("a UTF-8 path");
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run(&self.tools.ip, &full);
    }

    /// Drops, silently, what the host sends (`to_server`) and what the server sends back.
    fn drop_packets(&self, to_server: bool, to_client: bool) {
        if to_server {
            self.iptables(&["-w", "-A", "INPUT", "-s", &self.host, "-j", "DROP"]);
        }
        if to_client {
            self.iptables(&["-w", "-A", "OUTPUT", "-d", &self.host, "-j", "DROP"]);
        }
    }

    fn restore(&self) {
        self.iptables(&["-w", "-F"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.tools.ip)
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
        let bin = trials::example("hyper_server");
        let addr = format!("{}:9000", ns.guest);
        let mut child = Command::new(&ns.tools.ip)
            .args([
                "netns",
                "exec",
                &ns.name,
                bin.to_str().expect("a UTF-8 path"),
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

async fn silently_dropped_packets_are_found_dead_on_both_ends_and_the_client_comes_back(
    tools: Tools,
) {
    let ns = Namespace::create(tools);
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
