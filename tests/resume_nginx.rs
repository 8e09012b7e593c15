//! Sessions behind a load balancer (PROTOCOL.md, section 7): two `session_server` processes
//! (examples/session_server.rs, named `a` and `b`) behind Debian's nginx, started by the test
//! on 127.0.0.1, and between each Rust client and nginx a relay the test cuts.
//!
//! - With `hash $arg_ws_session consistent;` and a random key of each client's in its URL
//!   (`/ws?ws_session=KEY`), every resume reaches the process that holds the session: four
//!   clients, each cut six times mid-stream, get every echo exactly once, in order, all from
//!   one server; each server's handler ran once per client it holds and no resume was
//!   refused.
//! - With nginx's default round robin instead, consecutive connections alternate between
//!   the two: the first resume lands on the server that does not hold the session, which
//!   closes with 4410, and the client ends with `Error::SessionLost`. The routing is what
//!   makes sessions work behind a balancer.
//!
//! Heartbeat 500 ms on both ends, window 10 s. Real time. Needs `nginx` on `PATH`, as
//! `tests/proxy.rs`; without it the tests are reported as ignored, with that reason; under
//! `CI=true` they fail instead. A `harness = false` test (see `support::trials`). The servers
//! are the example's executable as cargo builds and reports it (`support::trials::example`).

mod support;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Error as ClientError, Event, Reconnect};
use ws_heartbeat::resume::{Reason, Resume};

use support::nginx::{Balance, Nginx};
use support::relay::{Ctl, relay};
use support::trials::{self, Flavor, Suite};
use support::{ms, session_server};

const RUNTIME: Flavor = Flavor::MultiThread { workers: 2 };
/// Both ends' heartbeat, and the servers' window.
const INTERVAL: Duration = ms(500);
const WINDOW: Duration = ms(10_000);
/// Clients of the hashed test: with two servers, all four on one server has odds 1 in 8.
const CLIENTS: usize = 4;
/// Cuts per client, each while messages flow both ways.
const CUTS: usize = 6;
/// Echoes a connection carries before it is cut.
const PER_CONNECTION: usize = 25;
/// Messages each client sends after its last cut.
const TAIL: usize = 50;
/// The bound on what a client sends.
const MAX_SENT: usize = 5_000;

type Client = Reconnect<WebSocketStream<MaybeTlsStream<TcpStream>>>;

fn main() {
    let nginx = trials::program("nginx", "apt-get install nginx");
    let mut suite = Suite::new();
    suite.test(
        "with_the_key_hashed_every_resume_reaches_the_server_that_holds_the_session",
        &nginx,
        RUNTIME,
        with_the_key_hashed_every_resume_reaches_the_server_that_holds_the_session,
    );
    suite.test(
        "with_round_robin_a_resume_lands_on_the_other_server_and_the_session_is_lost",
        &nginx,
        RUNTIME,
        with_round_robin_a_resume_lands_on_the_other_server_and_the_session_is_lost,
    );
    suite.run()
}

/// One `session_server` process, killed when dropped.
struct Server {
    _child: Child,
    name: &'static str,
    port: u16,
    /// Its stderr so far (refusals, lost sessions), line by line.
    said: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(bin: &Path, name: &'static str) -> Self {
        let millis = |d: Duration| d.as_millis().to_string();
        let args = [
            "0".to_owned(),
            name.to_owned(),
            millis(INTERVAL),
            millis(WINDOW),
        ];
        let (mut child, port, _out) = session_server::start(bin, &args, true).await;
        let said = Arc::new(Mutex::new(Vec::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = said.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                eprintln!("  server {line}");
                log.lock().unwrap().push(line);
            }
        });
        Self {
            _child: child,
            name,
            port,
            said,
        }
    }

    /// `(handler calls, sessions)`, asked on `/stats` directly, not through nginx.
    async fn stats(&self) -> (usize, usize) {
        let url = format!("ws://127.0.0.1:{}/stats", self.port);
        let ask = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            ws.send(Message::text("stats")).await.unwrap();
            let answer = loop {
                match ws.next().await.expect("an answer").unwrap() {
                    Message::Text(text) => break text.to_string(),
                    _ => continue,
                }
            };
            let _ = ws.close(None).await;
            answer
        };
        let answer = timeout(Duration::from_secs(5), ask)
            .await
            .expect("stats within 5 s");
        let mut words = answer.split(' ');
        assert_eq!(words.next(), Some(self.name), "{answer}");
        let mut number = |key: &str| -> usize {
            let word = words.next().unwrap_or_default();
            let value = word.strip_prefix(key).and_then(|w| w.strip_prefix('='));
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{answer}"))
        };
        (number("calls"), number("sessions"))
    }

    /// Lines of its stderr that contain `what`.
    fn said(&self, what: &str) -> Vec<String> {
        let said = self.said.lock().unwrap();
        said.iter().filter(|l| l.contains(what)).cloned().collect()
    }
}

/// A relay on 127.0.0.1 in front of nginx: each connection accepted is a link of its own
/// (`support::relay`), which the test can cut.
struct Relay {
    port: u16,
    links: Arc<Mutex<Vec<Arc<Ctl>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<Mutex<Vec<Arc<Ctl>>>> = Arc::default();
        let all = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue; // the client sees its connection end
                };
                let ctl = Arc::new(Ctl::default());
                all.lock().unwrap().push(ctl.clone());
                tokio::spawn(relay(client, upstream, ctl));
            }
        });
        Self {
            port,
            links,
            accept,
        }
    }

    fn links(&self) -> usize {
        self.links.lock().unwrap().len()
    }

    fn latest(&self) -> Arc<Ctl> {
        self.links.lock().unwrap().last().expect("a link").clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().iter() {
            link.cut();
        }
    }
}

/// 32 random hex digits: a client's routing key.
fn random_key() -> String {
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// A resuming client that dials the relay with its key in the URL; its events go to
/// `events`.
fn client(relay: u16, key: &str, events: Arc<Mutex<Vec<Event>>>) -> Client {
    let url = format!("ws://127.0.0.1:{relay}/ws?ws_session={key}");
    Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(INTERVAL))
    .backoff(Backoff::new().initial(ms(20)).max_delay(ms(200)))
    .connect_timeout(ms(3000))
    .resume(Resume::new())
    .on_event(move |event| events.lock().unwrap().push(event.clone()))
    .build()
}

/// What one client of the hashed test saw.
struct Talk {
    client: Client,
    /// Its relay, which lives as long as the client's connection must.
    _relay: Relay,
    sent: usize,
    echoes: Vec<String>,
    links: usize,
    events: Vec<Event>,
}

/// A client sends `tag-0`, `tag-1`, … every 2 ms and reads the echoes, while its link is cut
/// `CUTS` times, each time after the connection carried `PER_CONNECTION` echoes; then it
/// sends `TAIL` more and reads every echo. Bounded: each step within 20 s.
async fn talk(nginx: u16, tag: String) -> Talk {
    let relay = Relay::start(nginx).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let (mut tx, mut rx) = client(relay.port, &random_key(), events.clone()).split();
    let echoed = Arc::new(AtomicUsize::new(0));
    let cutting = Arc::new(AtomicBool::new(true));
    let sent_total = Arc::new(AtomicUsize::new(usize::MAX));
    let step = Duration::from_secs(20);

    let sender = {
        let (cutting, sent_total, tag) = (cutting.clone(), sent_total.clone(), tag.clone());
        async move {
            let mut after_cuts = 0;
            for i in 0..MAX_SENT {
                timeout(step, tx.send(Message::text(format!("{tag}-{i}"))))
                    .await
                    .unwrap_or_else(|_| panic!("{tag}: send {i} within {step:?}"))
                    .unwrap_or_else(|err| panic!("{tag}: send {i}: {err}"));
                if !cutting.load(Ordering::SeqCst) {
                    after_cuts += 1;
                    if after_cuts == TAIL {
                        sent_total.store(i + 1, Ordering::SeqCst);
                        return tx;
                    }
                }
                tokio::time::sleep(ms(2)).await;
            }
            panic!("{tag}: {MAX_SENT} messages sent and the cuts not done");
        }
    };
    let cutter = {
        let (echoed, cutting, tag) = (echoed.clone(), cutting.clone(), tag.clone());
        let relay = &relay;
        async move {
            for cut in 0..CUTS {
                // A connection since the last cut (the one just cut, at first the first),
                // which then carries PER_CONNECTION echoes: data in flight both ways.
                let deadline = Instant::now() + step;
                while relay.links() <= cut || relay.latest().cut.load(Ordering::SeqCst) {
                    assert!(
                        Instant::now() < deadline,
                        "{tag}: no connection {}",
                        cut + 1
                    );
                    tokio::time::sleep(ms(5)).await;
                }
                let from = echoed.load(Ordering::SeqCst);
                while echoed.load(Ordering::SeqCst) < from + PER_CONNECTION {
                    assert!(
                        Instant::now() < deadline,
                        "{tag}: no echoes on connection {}",
                        cut + 1
                    );
                    tokio::time::sleep(ms(2)).await;
                }
                relay.latest().cut();
            }
            cutting.store(false, Ordering::SeqCst);
        }
    };
    let reader = {
        let (echoed, sent_total, tag) = (echoed.clone(), sent_total.clone(), tag.clone());
        async move {
            let mut echoes = Vec::new();
            let mut last = Instant::now();
            while echoes.len() < sent_total.load(Ordering::SeqCst) {
                match timeout(ms(100), rx.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        echoes.push(text.to_string());
                        echoed.fetch_add(1, Ordering::SeqCst);
                        last = Instant::now();
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(other) => panic!(
                        "{tag}: the client ended after {} echoes: {other:?}",
                        echoes.len()
                    ),
                    Err(_) => assert!(
                        last.elapsed() < step,
                        "{tag}: no echo for {step:?} after {}",
                        echoes.len()
                    ),
                }
            }
            (rx, echoes)
        }
    };
    let (tx, (), (rx, echoes)) = tokio::join!(sender, cutter, reader);
    let links = relay.links();
    let events = events.lock().unwrap().clone();
    Talk {
        client: tx.reunite(rx).expect("the halves of one client"),
        _relay: relay,
        sent: sent_total.load(Ordering::SeqCst),
        echoes,
        links,
        events,
    }
}

async fn with_the_key_hashed_every_resume_reaches_the_server_that_holds_the_session(
    nginx: PathBuf,
) {
    let bin = trials::example("session_server");
    let servers = [
        Server::start(&bin, "a").await,
        Server::start(&bin, "b").await,
    ];
    let proxy = Nginx::start_balanced(
        &nginx,
        &[servers[0].port, servers[1].port],
        Balance::ConsistentHash("$arg_ws_session"),
        Duration::from_secs(30),
    )
    .await;
    let started = Instant::now();
    let talks =
        futures_util::future::join_all((0..CLIENTS).map(|c| talk(proxy.port, format!("c{c}"))))
            .await;
    let took = started.elapsed();

    let mut held = [0, 0];
    for (c, talk) in talks.iter().enumerate() {
        // Every echo exactly once, in order, all from the server that holds the session.
        let name = talk.echoes[0].split(':').next().unwrap().to_owned();
        let server = servers
            .iter()
            .position(|s| s.name == name)
            .expect("a server's name");
        held[server] += 1;
        let want: Vec<String> = (0..talk.sent).map(|i| format!("{name}:c{c}-{i}")).collect();
        assert_eq!(talk.echoes.len(), want.len(), "c{c}");
        if let Some(i) = (0..want.len()).find(|&i| talk.echoes[i] != want[i]) {
            panic!("c{c}: echo {i} is {:?}, not {:?}", talk.echoes[i], want[i]);
        }
        // Each cut: one reconnection, which resumed.
        let connected = talk
            .events
            .iter()
            .filter(|e| matches!(e, Event::Connected { .. }))
            .count();
        let lost = talk
            .events
            .iter()
            .filter(|e| matches!(e, Event::SessionLost(_)))
            .count();
        // What the server had not acknowledged at the cuts: sent again after the resumes.
        let unacknowledged: u64 = talk
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Disconnected { unconfirmed, .. } => Some(*unconfirmed),
                _ => None,
            })
            .sum();
        println!(
            "c{c}: {} messages echoed once, in order, by {name}; {} connections, {connected} \
             connected, {CUTS} cuts with {unacknowledged} messages unacknowledged",
            talk.sent, talk.links
        );
        assert_eq!(lost, 0, "c{c}");
        assert!(unacknowledged > 0, "c{c}: the cuts fell mid-stream");
        assert!(talk.links > CUTS, "c{c}: {} links", talk.links);
        assert_eq!(
            connected, talk.links,
            "c{c}: every connection resumed the session"
        );
    }
    println!(
        "{CLIENTS} clients in {took:?}: a holds {}, b holds {}",
        held[0], held[1]
    );

    // The handler ran once per session, on the server that holds it, and never elsewhere;
    // no resume was refused (a 4410 would say "session lost").
    for (server, held) in servers.iter().zip(held) {
        assert_eq!(
            server.stats().await,
            (held, held),
            "{}: (calls, sessions)",
            server.name
        );
        assert!(
            server.said("refused").is_empty(),
            "{}: {:?}",
            server.name,
            server.said("")
        );
    }

    // A clean close ends each session on its server.
    for talk in talks {
        let mut client = talk.client;
        timeout(Duration::from_secs(5), async {
            client.close().await.unwrap();
            while let Some(item) = client.next().await {
                item.unwrap();
            }
        })
        .await
        .expect("the clients close within 5 s");
    }
    for (server, held) in servers.iter().zip(held) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.stats().await != (held, 0) {
            assert!(
                Instant::now() < deadline,
                "{}: sessions left: {:?}",
                server.name,
                server.stats().await
            );
            tokio::time::sleep(ms(20)).await;
        }
    }
}

async fn with_round_robin_a_resume_lands_on_the_other_server_and_the_session_is_lost(
    nginx: PathBuf,
) {
    let bin = trials::example("session_server");
    let servers = [
        Server::start(&bin, "a").await,
        Server::start(&bin, "b").await,
    ];
    let proxy = Nginx::start_balanced(
        &nginx,
        &[servers[0].port, servers[1].port],
        Balance::RoundRobin,
        Duration::from_secs(30),
    )
    .await;
    let relay = Relay::start(proxy.port).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut client = client(relay.port, &random_key(), events.clone());
    let bound = Duration::from_secs(10);

    client.send(Message::text("r-0")).await.unwrap();
    let echo = match timeout(bound, client.next()).await.expect("an echo") {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("{other:?}"),
    };
    let (name, _) = echo.split_once(':').expect("name:message");
    assert_eq!(echo, format!("{name}:r-0"));
    let holder = servers.iter().position(|s| s.name == name).unwrap();
    let (holder, other) = (&servers[holder], &servers[1 - holder]);
    assert_eq!(
        (holder.stats().await, other.stats().await),
        ((1, 1), (0, 0))
    );

    // The next connection goes to the other server, which does not hold the session.
    relay.latest().cut();
    let end = match timeout(bound, client.next())
        .await
        .expect("the client ends")
    {
        Some(Err(err)) => err,
        other => panic!("not an error: {other:?}"),
    };
    let ClientError::SessionLost(lost) = end else {
        panic!("not a lost session: {end:?}")
    };
    assert_eq!(lost.reason(), Reason::Refused);
    assert!(
        timeout(bound, client.next()).await.unwrap().is_none(),
        "the client has ended"
    );
    println!(
        "round robin: the session began on {}, its resume went to {}: {lost}",
        holder.name, other.name
    );

    // The resume reached the other server, which refused it with 4410 and started nothing;
    // the holder still keeps the session, parked for its window.
    let deadline = Instant::now() + Duration::from_secs(5);
    while other.said("4410").is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} refused nothing: {:?}",
            other.name,
            other.said("")
        );
        tokio::time::sleep(ms(20)).await;
    }
    assert!(holder.said("4410").is_empty(), "{:?}", holder.said(""));
    assert_eq!(
        (holder.stats().await, other.stats().await),
        ((1, 1), (0, 0))
    );
    assert_eq!(relay.links(), 2, "one resume, then no more attempts");
    let events = events.lock().unwrap();
    let connected = events
        .iter()
        .filter(|e| matches!(e, Event::Connected { .. }))
        .count();
    assert_eq!(connected, 1, "{events:?}");
    assert!(
        matches!(events.last(), Some(Event::SessionLost(_))),
        "{events:?}"
    );
}
