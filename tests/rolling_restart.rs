//! A rolling restart, measured: three `session_server` processes (examples/session_server.rs)
//! behind Debian's nginx (`hash $arg_ws_session consistent;`), a thousand clients sending both
//! ways, and each server restarted in turn: SIGTERM (it drains over 5 s: plain connections
//! closed with 1012, sessions finished, each at its own moment; it accepts meanwhile), exit,
//! start again on its port.
//!
//! Clients: 600 Rust `Reconnect` clients with sessions, 200 Rust clients without, 200 Node
//! clients of the browser module with `resume` (tests/peers/node_session_clients.mjs), each
//! sending a numbered text every 200 ms (`KEY SEQ`). A client's routing key is its session's
//! id (the browser module's `routeParam`; a Rust client picks a new key when its session is
//! new, or refused by a draining server), a plain client's a new one at every connection.
//!
//! What must hold: every session message exactly once and in order (each server logs, per
//! session, the first and last number it got and how many: together, every client's numbers
//! 1..sent, each once, in one run per session; for a Rust client, 1..sent minus what it still
//! holds when it is closed at the end, see `check_runs`); no client sees an error; and while
//! a server drains, the new connections per second at the two others peak at no more than
//! twice the even rate (the connections that moved, over the window).
//!
//! Real time, about a minute. Needs `nginx` and Node with `ws` on `PATH` (`.ci/run`
//! installs both); without them the test is reported as ignored; under `CI=true` it fails.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Event, Reason, Reconnect};
use ws_heartbeat::resume::Resume;

use support::nginx::{Balance, Nginx};
use support::peer_programs::{node_with_ws, peers_dir};
use support::trials::{self, Flavor, Suite};
use support::{ms, session_server};

const SERVERS: usize = 3;
const NAMES: [&str; SERVERS] = ["a", "b", "c"];
const RUST_SESSIONS: usize = 600;
const RUST_PLAIN: usize = 200;
const NODE_SESSIONS: usize = 200;
const EVERY: Duration = ms(200);
const DRAIN: Duration = ms(5000);
const INTERVAL: Duration = ms(1000);
const WINDOW: Duration = ms(30_000);

fn main() {
    let needs = trials::program("nginx", "apt-get install nginx")
        .and_then(|nginx| node_with_ws().map(|node| (nginx, node)));
    let mut suite = Suite::new();
    suite.test(
        "a_rolling_restart_loses_nothing_and_spreads_the_reconnects",
        &needs,
        Flavor::MultiThread { workers: 2 },
        |(nginx, node)| a_rolling_restart_loses_nothing_and_spreads_the_reconnects(nginx, node),
    );
    suite.run()
}

/// What a server process said on stdout, line by line, with when: kept across its restarts.
type Said = Arc<Mutex<Vec<(Instant, String)>>>;

/// One `session_server` process and what it said on stdout, with when.
struct Server {
    child: Child,
    port: u16,
    said: Said,
}

impl Server {
    async fn start(bin: &Path, name: &str, port: u16, said: Said) -> Self {
        let millis = |d: Duration| d.as_millis().to_string();
        let args = [
            port.to_string(),
            name.to_owned(),
            millis(INTERVAL),
            millis(WINDOW),
            millis(DRAIN),
        ];
        let (child, port, mut out) = session_server::start(bin, &args, false).await;
        let log = said.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                log.lock().unwrap().push((Instant::now(), line));
            }
        });
        Self { child, port, said }
    }

    /// SIGTERM, and its exit (after its drain).
    async fn stop(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let status = timeout(DRAIN + Duration::from_secs(5), self.child.wait())
            .await
            .expect("the server exits after its drain")
            .unwrap();
        assert!(status.success(), "{status}");
    }

    /// Its WebSockets accepted (`accepted` lines) within `[from, to)`, by the second.
    fn accepted_per_second(&self, from: Instant, to: Instant) -> Vec<usize> {
        let seconds = (to - from).as_secs() as usize + 1;
        let mut counts = vec![0; seconds];
        for (at, line) in self.said.lock().unwrap().iter() {
            if line.starts_with("accepted /") && *at >= from && *at < to {
                counts[(*at - from).as_secs() as usize] += 1;
            }
        }
        counts
    }
}

/// `session KEY FROM TO COUNT` lines of every server, by key.
fn runs(said: &[(Instant, String)]) -> BTreeMap<String, Vec<[u64; 3]>> {
    let mut by_key: BTreeMap<String, Vec<[u64; 3]>> = BTreeMap::new();
    for (_, line) in said {
        let words: Vec<&str> = line.split(' ').collect();
        if let ["session", key, from, to, count] = words[..] {
            let n = |w: &str| w.parse::<u64>().unwrap();
            by_key
                .entry(key.to_owned())
                .or_default()
                .push([n(from), n(to), n(count)]);
        }
    }
    by_key
}

/// A Rust client: the last number handed to it, its errors, and with a session, its new
/// sessions and what it still held when closed.
struct RustClient {
    sent: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    news: Arc<AtomicU64>,
    /// `Event::Closed`'s `unsent`: the messages it took that the servers never acknowledged.
    unsent: Arc<Mutex<Option<usize>>>,
    /// The sending task, which closes the client when told.
    sender: JoinHandle<()>,
}

fn random_key() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

type Sender = futures_util::stream::SplitSink<Client, Message>;
type Receiver = futures_util::stream::SplitStream<Client>;
type Client = Reconnect<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Sends `KEY 1`, `KEY 2`, ... every `EVERY` until `stop`, noting the last number handed
/// to the client; when `close` turns true (a send still waiting or not), closes the client.
async fn send_numbered(
    mut tx: Sender,
    key: String,
    i: usize,
    stop: Arc<AtomicBool>,
    mut close: watch::Receiver<bool>,
    sent: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let numbered = async {
        tokio::time::sleep(EVERY * i as u32 / (RUST_SESSIONS + RUST_PLAIN) as u32).await;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            // Handed over: the split half holds it until the client takes it (at the
            // flush, or at the latest at the close), so it counts as sent from here,
            // whether its flush then returns or still waits at the close.
            let failed = |err| format!("{key} send: {err}");
            tx.feed(Message::text(format!("{key} {n}")))
                .await
                .map_err(failed)?;
            sent.store(n, Ordering::Relaxed);
            tx.flush().await.map_err(failed)?;
            tokio::time::sleep(EVERY).await;
        }
        Ok(())
    };
    let wait_close = async { close.wait_for(|close| *close).await.map(drop) };
    let sending = tokio::select! {
        sending = numbered => sending,
        _ = wait_close => Ok(()),
    };
    if let Err(err) = sending {
        errors.lock().unwrap().push(err);
        return;
    }
    let _ = close.wait_for(|close| *close).await;
    match timeout(Duration::from_secs(5), tx.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => errors.lock().unwrap().push(format!("{key} close: {err}")),
        Err(_) => errors
            .lock()
            .unwrap()
            .push(format!("{key}: close timed out")),
    }
}

/// Reads the echoes (`SERVER:KEY SEQ`); with a session, each server's come in order.
async fn read_echoes(
    mut rx: Receiver,
    key: String,
    session: bool,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(item) = rx.next().await {
        match item {
            Ok(Message::Text(text)) => {
                let (server, rest) = text.split_once(':').unwrap_or_default();
                let seq = rest
                    .rsplit(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let before = last.insert(server.to_owned(), seq).unwrap_or(0);
                if session && seq <= before {
                    errors
                        .lock()
                        .unwrap()
                        .push(format!("{key}: echo {seq} after {before}"));
                }
            }
            Ok(_) => {}
            Err(err) => {
                errors.lock().unwrap().push(format!("{key}: {err}"));
                return;
            }
        }
    }
}

fn rust_client(
    nginx: u16,
    i: usize,
    session: bool,
    stop: Arc<AtomicBool>,
    close: watch::Receiver<bool>,
) -> RustClient {
    let key = Arc::new(Mutex::new(random_key()));
    let sent: Arc<AtomicU64> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let news: Arc<AtomicU64> = Arc::default();
    let unsent: Arc<Mutex<Option<usize>>> = Arc::default();
    let path = if session { "ws" } else { "plain" };
    let connect_key = key.clone();
    let mut builder = Reconnect::builder(move || {
        let key = if session {
            connect_key.lock().unwrap().clone()
        } else {
            random_key()
        };
        let url = format!("ws://127.0.0.1:{nginx}/{path}?ws_session={key}");
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(INTERVAL))
    .backoff(Backoff::new().initial(ms(500)).max_delay(ms(5000)));
    if session {
        let (key, news, unsent) = (key.clone(), news.clone(), unsent.clone());
        builder = builder
            .resume(Resume::new().window(WINDOW))
            .on_event(move |e| {
                let renew = match e {
                    Event::Closed { unsent: n, .. } => {
                        *unsent.lock().unwrap() = Some(*n);
                        false
                    }
                    Event::NewSession => {
                        news.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Event::Reconnecting {
                        after: Reason::ServerClosed { code: 1012, .. },
                        ..
                    } => true,
                    _ => false,
                };
                if renew {
                    *key.lock().unwrap() = random_key();
                }
            });
    }
    let (tx, rx) = builder.build().split();
    let key = format!("{}{i}", if session { "rs" } else { "pl" });
    let sender = tokio::spawn(send_numbered(
        tx,
        key.clone(),
        i,
        stop,
        close,
        sent.clone(),
        errors.clone(),
    ));
    tokio::spawn(read_echoes(rx, key, session, errors.clone()));
    RustClient {
        sent,
        errors,
        news,
        unsent,
        sender,
    }
}

/// Each server in turn: drained (SIGTERM), stopped, started again on its port; then 3 s
/// of traffic. For each: its name, the peak of new connections per second at the others
/// during its drain, the even rate, and the counts by the second.
async fn restart_in_turn(
    bin: &Path,
    servers: &mut [Server],
    said: &[Said],
) -> Vec<(&'static str, usize, f64, Vec<usize>)> {
    let mut peaks = Vec::new();
    for k in 0..SERVERS {
        let began = Instant::now();
        servers[k].stop().await;
        let port = servers[k].port;
        servers[k] = Server::start(bin, NAMES[k], port, said[k].clone()).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let others: Vec<Vec<usize>> = (0..SERVERS)
            .filter(|&j| j != k)
            .map(|j| servers[j].accepted_per_second(began, began + DRAIN))
            .collect();
        let per_second: Vec<usize> = (0..others[0].len())
            .map(|s| others.iter().map(|o| o[s]).sum())
            .collect();
        let moved: usize = per_second.iter().sum();
        let even = moved as f64 / DRAIN.as_secs_f64();
        let peak = *per_second.iter().max().unwrap();
        println!(
            "server {}: {moved} connections moved to the others over the drain, per second {per_second:?} (even {even:.0})",
            NAMES[k]
        );
        peaks.push((NAMES[k], peak, even, per_second));
    }
    peaks
}

/// Every client's numbers 1..sent, but the last `held`, reached the servers once, in order:
/// its sessions' runs (`session KEY FROM TO COUNT` lines of every server) end to end, for
/// each `(KEY, sent, held)`. Returns the sessions.
fn check_runs(said: &[Said], sent: &[(String, u64, u64)]) -> usize {
    let all: Vec<(Instant, String)> = said
        .iter()
        .flat_map(|s| s.lock().unwrap().clone())
        .collect();
    let by_key = runs(&all);
    let mut sessions = 0;
    for (key, sent, held) in sent {
        let mut runs = by_key.get(key).cloned().unwrap_or_default();
        runs.sort();
        sessions += runs.len();
        let mut next = 1;
        for [from, to, count] in &runs {
            assert_eq!(
                *from,
                next,
                "{key}: a run from {from} after {}: {runs:?}",
                next - 1
            );
            assert_eq!(*count, to - from + 1, "{key}: {runs:?}");
            next = to + 1;
        }
        assert_eq!(
            next - 1,
            sent.checked_sub(*held).expect("holds no more than it took"),
            "{key}: sent {sent}, {held} of them held by the client at its close, the servers got {runs:?}"
        );
    }
    sessions
}

async fn a_rolling_restart_loses_nothing_and_spreads_the_reconnects(nginx: PathBuf, node: PathBuf) {
    support::allow_open_files(16_384);
    let bin = trials::example("session_server");
    let said: Vec<Said> = (0..SERVERS).map(|_| Arc::default()).collect();
    let mut servers = Vec::new();
    for k in 0..SERVERS {
        servers.push(Server::start(&bin, NAMES[k], 0, said[k].clone()).await);
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let proxy = Nginx::start_balanced(
        &nginx,
        &ports,
        Balance::ConsistentHash("$arg_ws_session"),
        Duration::from_secs(60),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let (close, closing) = watch::channel(false);
    let mut rust = Vec::new();
    for i in 0..RUST_SESSIONS + RUST_PLAIN {
        let (stop, closing) = (stop.clone(), closing.clone());
        rust.push(rust_client(proxy.port, i, i < RUST_SESSIONS, stop, closing));
    }
    let mut node = Command::new(node)
        .arg(peers_dir().join("node_session_clients.mjs"))
        .args([
            &format!("ws://127.0.0.1:{}/ws", proxy.port),
            &NODE_SESSIONS.to_string(),
            &EVERY.as_millis().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut node_in: ChildStdin = node.stdin.take().unwrap();
    let mut node_out = BufReader::new(node.stdout.take().unwrap()).lines();
    assert_eq!(
        node_out.next_line().await.unwrap().as_deref(),
        Some("started")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let peaks = restart_in_turn(&bin, &mut servers, &said).await;

    // Stop sending; let the last messages be acknowledged; then drain every server, which
    // logs the sessions it still holds as they finish.
    stop.store(true, Ordering::Relaxed);
    node_in.write_all(b"stop\n").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    node_in.write_all(b"report\n").await.unwrap();
    let report = timeout(Duration::from_secs(10), node_out.next_line())
        .await
        .expect("node reports")
        .unwrap()
        .expect("a line");
    let node_report: Vec<serde_json::Value> = serde_json::from_str(&report).unwrap();
    let mut stopping = Vec::new();
    for server in &mut servers {
        stopping.push(server.stop());
    }
    futures_util::future::join_all(stopping).await;
    // Every server is gone: close the Rust clients, and hear what each still holds.
    close.send_replace(true);
    for client in &mut rust {
        timeout(Duration::from_secs(10), &mut client.sender)
            .await
            .expect("the client closes")
            .unwrap();
    }
    drop(proxy);
    drop(node);

    // No client saw an error.
    for (i, client) in rust.iter().enumerate() {
        let errors = client.errors.lock().unwrap();
        assert!(errors.is_empty(), "rust client {i}: {errors:?}");
    }
    for (i, client) in node_report.iter().enumerate() {
        assert_eq!(client["lost"], 0, "node client {i}: {client}");
        assert_eq!(client["closed"], false, "node client {i}: {client}");
        assert_eq!(client["disorder"], 0, "node client {i}: {client}");
    }
    // Every session message once, in order: per client, its sessions' runs end to end.
    //
    // A Rust client's numbers are those it took (`send_numbered`), and what the crate
    // promises for them is this: each is acknowledged by a server that got it once, in
    // order, or reported when the client closes (`Event::Closed`'s `unsent`: taken, never
    // acknowledged). What a client takes while its session finishes in a drain is kept for
    // the next session (PROTOCOL.md, section 8), and its `send` returns at once, connected
    // to no server: it goes out after that session's `welcome`. When none came before the end (every new session
    // refused by a draining server, or no server to reach), the last numbers are still in
    // the client, not at any server. Closed once every server has exited, a client holds
    // nothing that reached one (each session was finished, with all it sent acknowledged,
    // or it was lost, which is an error), so the servers must have exactly 1..sent - held.
    let mut sent: Vec<(String, u64, u64)> = (0..RUST_SESSIONS)
        .map(|i| {
            let unsent = rust[i].unsent.lock().unwrap().expect("closed");
            (
                format!("rs{i}"),
                rust[i].sent.load(Ordering::Relaxed),
                unsent as u64,
            )
        })
        .collect();
    let held: u64 = sent.iter().map(|(_, _, held)| held).sum();
    sent.extend(
        (node_report.iter().enumerate())
            .map(|(i, c)| (format!("nd{i}"), c["sent"].as_u64().unwrap(), 0)),
    );
    let sessions = check_runs(&said, &sent);
    let news: u64 = rust.iter().map(|c| c.news.load(Ordering::Relaxed)).sum();
    println!(
        "{} session clients, {sessions} sessions, {news} new sessions after a finish, {held} messages held at the close (Rust)",
        sent.len()
    );
    // The reconnects spread over each drain.
    for (name, peak, even, per_second) in &peaks {
        assert!(
            *peak as f64 <= 2.0 * even,
            "server {name}'s drain: {per_second:?} per second at the others, even {even:.0}"
        );
    }
}
