//! The headline test of sessions (`ws_heartbeat::resume`), in real time over real TCP on
//! 127.0.0.1: a Rust client (`Reconnect` with `resume`) and a Rust server (`Sessions`)
//! exchange 10 000 messages each way through a relay (tests/support/relay.rs) that stops
//! every connection it carries: it cuts it after a random number of bytes (in the HTTP
//! upgrade, in the session handshake, mid-frame) or, one time in eight, freezes it (nothing
//! passes, both ends stay open: the heartbeat must find it dead). Each side must get every
//! message of the other exactly once and in order, the server's handler must be called
//! once, and the session must never be lost.
//!
//! Both halves of each side run in tasks of their own (the handler's session and the
//! client are `split`), so a wake-up that goes to the wrong half shows as a hang.
//!
//! It prints one summary line per heartbeat shape (`-- --nocapture`): the run time, the
//! connections, and the time each stop cost, from the stop (the relay records it) to the
//! completed session handshake on a later connection (the client's `Event::Connected`,
//! which follows the server's `welcome`); min, median and max, for cuts and for freezes.
//! `RESUME_CHAOS_VERBOSE=1` adds a progress line a second and the client's events.
//!
//! The cut points come from a seeded generator, printed: `RESUME_CHAOS_SEED=<n>` replays a
//! run's sequence of cuts and freezes (the timing, and so where a cut falls in the stream,
//! still varies from run to run).

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::protocol::Json;
use ws_heartbeat::reconnect::{Backoff, Event, Reconnect};
use ws_heartbeat::resume::{Resume, Session, SessionLost, Sessions};

use support::ms;
use support::relay::{Ctl, Stop, relay};

/// Data messages each side sends.
const MESSAGES: usize = 10_000;
/// Stops (cuts and freezes) a run must have gone through.
const MIN_STOPS: usize = 50;
/// The relay stops each connection after 1 to this many bytes, both directions together:
/// about 20 KB per connection on average (some 1 % of them in the HTTP upgrade), against
/// 1.3 MB of messages each way (see `message`), so a run goes through about 180
/// connections.
const MAX_BYTES: u64 = 40_000;
/// One connection in this many is frozen instead of cut.
const FREEZE_ONE_IN: u64 = 8;
/// The whole run, client and server and relay. A run takes 10 to 20 s on a 2-core machine
/// in a debug build.
const DEADLINE: Duration = Duration::from_secs(120);
const DEFAULT_SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// The heartbeat's shape, on both sides.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Ping and Pong control frames (the default).
    Control,
    /// JSON application heartbeats: data frames, among which lookalikes must travel
    /// escaped.
    Json,
}

/// Both sides' heartbeat: 100 ms, 2 missed: a frozen link is found dead 200 to 300 ms
/// after its last frame.
fn layer(shape: Shape) -> HeartbeatLayer {
    let layer = HeartbeatLayer::new().interval(ms(100)).max_missed(2);
    match shape {
        Shape::Control => layer,
        Shape::Json => layer.protocol(Json::new()),
    }
}

/// Both sides' sessions: the defaults but for a 64 KiB buffer. With the default 1 MiB, each
/// side's writer, far ahead of what the relay lets through, would send up to 1 MiB again
/// after every resume, of which at most 40 KB pass: in a debug build, most of a run's time.
/// The smaller buffer also has the writers wait for acknowledgements all along.
fn resume() -> Resume {
    Resume::new().buffer(64 * 1024)
}

/// The `i`-th data message of `side` (`'c'` the client, `'s'` the server): text and
/// binary, mostly up to a hundred bytes, every 50th of 2 to 6 KiB (a cut often falls
/// inside one), and in every hundred eight that begin with the byte 0x10 or look like a
/// session message or a JSON heartbeat. Every one carries its side and number.
fn message(side: char, i: usize) -> Message {
    let tag = format!("{side}{i}");
    let pad = |n: usize| -> String {
        (0..n)
            .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
            .collect()
    };
    match i % 100 {
        13 => Message::text(format!("\u{10}{tag}")),
        29 => Message::text(format!("\u{10}\u{10}{tag}")),
        37 => Message::text(format!("\u{10}ack {i} {tag}")),
        41 => Message::binary([&[0x10][..], tag.as_bytes()].concat()),
        43 => Message::binary([&[0x10, 0x10][..], tag.as_bytes()].concat()),
        53 => Message::text(format!(r#"{{"type":"ping","seq":{i},"tag":"{tag}"}}"#)),
        67 => Message::text(format!(r#"  {{"type":"pong","tag":"{tag}"}}"#)),
        79 => Message::text(format!(r#"{{"tag":"{tag}","note":"a \\ backslash"}}"#)),
        _ if i % 100 == 0 || i % 100 == 50 => {
            let big = 2048 + (i * 131) % 4096;
            if i % 100 == 0 {
                Message::text(format!("{tag} {}", pad(big)))
            } else {
                Message::binary(format!("{tag} {}", pad(big)).into_bytes())
            }
        }
        _ if i % 7 == 3 => Message::binary(format!("{tag} {}", pad((i * 17) % 50)).into_bytes()),
        _ => Message::text(format!("{tag} {}", pad((i * 31) % 100))),
    }
}

fn messages(side: char) -> Vec<Message> {
    (0..MESSAGES).map(|i| message(side, i)).collect()
}

/// A small xorshift64* generator: the relay's choices, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` for a test (`n` is tiny against 2^64).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type ServerWs = WebSocketStream<TcpStream>;
type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a run saw, shared by the server, the relay, the client and the test.
#[derive(Default)]
struct Log {
    /// Every relayed connection, in the order accepted: its controls, and the stop the
    /// relay drew for it with its byte count.
    links: Mutex<Vec<(Arc<Ctl>, Stop, u64)>>,
    /// When each of the client's connections was up (its `Event::Connected`), and which
    /// link it was (the relay's latest: the client has one connection at a time).
    connected: Mutex<Vec<(Instant, usize)>>,
    /// The client's events other than connecting and connected, for the report.
    events: Mutex<Vec<String>>,
    handler_calls: AtomicUsize,
    /// Sockets the server refused with a close code (none should be).
    refused: Mutex<Vec<String>>,
    /// The data messages each side received, in order.
    server_got: Mutex<Vec<Message>>,
    client_got: Mutex<Vec<Message>>,
    /// How each half ended, when it did: `done` once told to stop.
    ends: Mutex<Vec<String>>,
}

impl Log {
    fn end(&self, who: &str, how: String) {
        self.ends.lock().unwrap().push(format!("{who}: {how}"));
    }

    /// Whether a half ended before the run was over (an error, the stream's end).
    fn ended_early(&self) -> bool {
        self.ends
            .lock()
            .unwrap()
            .iter()
            .any(|e| !e.ends_with("done") && !e.ends_with("sent all"))
    }
}

fn describe(err: &WsError) -> String {
    match SessionLost::find(err) {
        Some(lost) => format!("SESSION LOST: {lost}"),
        None => format!("error: {err}"),
    }
}

/// The server: every accepted socket goes to `sessions.accept`; a new session goes to the
/// handler.
async fn serve(
    listener: TcpListener,
    sessions: Sessions,
    log: Arc<Log>,
    done: watch::Receiver<bool>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (sessions, log, done) = (sessions.clone(), log.clone(), done.clone());
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return; // cut in the HTTP upgrade
            };
            match sessions.accept(ws).await {
                Ok(Some(session)) => {
                    log.handler_calls.fetch_add(1, Ordering::SeqCst);
                    handler(session, log, done).await;
                }
                Ok(None) => {} // resumed: the handler carries on
                Err(err) => {
                    if err.close_code().is_some() {
                        log.refused.lock().unwrap().push(err.to_string());
                    }
                }
            }
        });
    }
}

/// The handler: its writing half, in a task of its own, sends `s0..s9999`; its reading
/// half records everything until the run is over.
async fn handler(session: Session<ServerWs>, log: Arc<Log>, mut done: watch::Receiver<bool>) {
    let (mut sink, mut stream) = session.split();
    let writer_log = log.clone();
    tokio::spawn(async move {
        for i in 0..MESSAGES {
            if let Err(err) = sink.send(message('s', i)).await {
                return writer_log.end("server writer", format!("send s{i}: {}", describe(&err)));
            }
        }
        writer_log.end("server writer", "sent all".into());
    });
    let how = loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(msg)) if msg.is_text() || msg.is_binary() => log.server_got.lock().unwrap().push(msg),
                Some(Ok(Message::Close(frame))) => break format!("close {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(err)) => break describe(&err),
                None => break "the stream ended".into(),
            },
            _ = done.wait_for(|done| *done) => break "done".into(),
        }
    };
    log.end("server reader", how);
}

/// The relay: each connection to `listener` goes on to `server`, stopped after a number of
/// bytes drawn from `rng`.
async fn relay_all(listener: TcpListener, server: SocketAddr, mut rng: Rng, log: Arc<Log>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let stop = if rng.below(FREEZE_ONE_IN) == 0 {
            Stop::Freeze
        } else {
            Stop::Cut
        };
        let after = 1 + rng.below(MAX_BYTES);
        let ctl = Arc::new(Ctl::default());
        match stop {
            Stop::Cut => ctl.cut_after.store(after, Ordering::SeqCst),
            Stop::Freeze => ctl.freeze_after.store(after, Ordering::SeqCst),
        }
        log.links.lock().unwrap().push((ctl.clone(), stop, after));
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(server).await else {
                return;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            relay(client, server, ctl).await;
        });
    }
}

/// The client through the relay at `addr`: its writing half sends `c0..c9999` in a task
/// of its own, its reading half records everything until the run is over.
fn client(shape: Shape, addr: SocketAddr, log: Arc<Log>, mut done: watch::Receiver<bool>) {
    let url = format!("ws://{addr}/");
    let events = log.clone();
    let client: Reconnect<ClientWs> = Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(layer(shape))
    .backoff(Backoff::new().initial(ms(5)).max_delay(ms(50)))
    // A freeze in the HTTP upgrade, where no heartbeat runs yet, costs this much.
    .connect_timeout(ms(1000))
    .resume(resume())
    .on_event(move |event| match event {
        Event::Connected { .. } => {
            let link = events.links.lock().unwrap().len() - 1;
            events
                .connected
                .lock()
                .unwrap()
                .push((Instant::now(), link));
        }
        Event::Connecting { .. } | Event::Reconnecting { .. } => {}
        other => events.events.lock().unwrap().push(format!("{other:?}")),
    })
    .build();
    let (mut sink, mut stream) = client.split();
    let writer_log = log.clone();
    tokio::spawn(async move {
        for i in 0..MESSAGES {
            if let Err(err) = sink.send(message('c', i)).await {
                return writer_log.end("client writer", format!("send c{i}: {err:?}"));
            }
        }
        writer_log.end("client writer", "sent all".into());
        // The client keeps running in the reader's polls; the writing half may go.
    });
    tokio::spawn(async move {
        let how = loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(msg)) if msg.is_text() || msg.is_binary() => log.client_got.lock().unwrap().push(msg),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => break format!("{err:?}"),
                    None => break "the stream ended".into(),
                },
                _ = done.wait_for(|done| *done) => break "done".into(),
            }
        };
        log.end("client reader", how);
    });
}

/// `got` against `want`: equal, or where and how they part.
fn check_sequence(what: &str, got: &[Message], want: &[Message]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let short = |m: &Message| {
        let s = format!("{m:?}");
        s.chars().take(60).collect::<String>()
    };
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    Err(format!(
        "{what}: got {} messages, want {}; they part at #{at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        got.get(at).map(short),
        want.get(at).map(short)
    ))
}

/// Milliseconds of a sorted list: min / median / max.
fn spread(sorted: &[Duration]) -> String {
    match sorted {
        [] => "none".into(),
        _ => format!(
            "min {:.0} / median {:.0} / max {:.0} ms",
            sorted[0].as_secs_f64() * 1e3,
            sorted[sorted.len() / 2].as_secs_f64() * 1e3,
            sorted[sorted.len() - 1].as_secs_f64() * 1e3
        ),
    }
}

async fn run(shape: Shape) {
    let seed = std::env::var("RESUME_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!(
        "resume_chaos {shape:?}: seed {seed} (RESUME_CHAOS_SEED={seed} replays its cuts and freezes)"
    );
    let start = Instant::now();
    let log = Arc::new(Log::default());
    let (done_tx, done) = watch::channel(false);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let sessions = layer(shape).resume(resume());
    let server = tokio::spawn(serve(listener, sessions.clone(), log.clone(), done.clone()));

    let relay_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay_listener.local_addr().unwrap();
    let relays = tokio::spawn(relay_all(
        relay_listener,
        server_addr,
        Rng(seed | 1),
        log.clone(),
    ));

    client(shape, relay_addr, log.clone(), done.clone());

    let counts = || {
        (
            log.client_got.lock().unwrap().len(),
            log.server_got.lock().unwrap().len(),
        )
    };
    let verbose = std::env::var_os("RESUME_CHAOS_VERBOSE").is_some();
    let finished = timeout(DEADLINE, async {
        let mut last_print = Instant::now();
        loop {
            tokio::time::sleep(ms(20)).await;
            let (client_got, server_got) = counts();
            if verbose && last_print.elapsed() >= ms(1000) {
                last_print = Instant::now();
                eprintln!(
                    "  {:.1?}: client got {client_got}, server got {server_got}, {} connections, handler calls {}",
                    start.elapsed(),
                    log.links.lock().unwrap().len(),
                    log.handler_calls.load(Ordering::SeqCst)
                );
            }
            if (client_got >= MESSAGES && server_got >= MESSAGES) || log.ended_early() {
                return;
            }
        }
    })
    .await;
    let took = start.elapsed();
    // Everything that arrives from here on is past the run (and would be a duplicate).
    tokio::time::sleep(ms(200)).await;
    done_tx.send_replace(true);
    tokio::time::sleep(ms(50)).await;

    let (client_got, server_got) = counts();
    let links = log.links.lock().unwrap().clone();
    let ends = log.ends.lock().unwrap().clone();
    let events = log.events.lock().unwrap().clone();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "after {took:.1?}: client got {client_got}, server got {server_got}, {} connections, handler calls {}, ends {ends:?}, {} sessions held",
        links.len(),
        log.handler_calls.load(Ordering::SeqCst),
        sessions.len()
    );
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for event in &events {
        let key: String = event.chars().take_while(|c| c.is_alphanumeric()).collect();
        let reason = event
            .split("reason: ")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(|c| c.is_alphanumeric())
                    .collect::<String>()
            })
            .unwrap_or_default();
        *tally.entry(format!("{key} {reason}")).or_default() += 1;
    }
    let _ = writeln!(report, "client events: {tally:?}");
    if let Some(lost) = events.iter().find(|e| e.starts_with("SessionLost")) {
        let _ = writeln!(report, "first SessionLost: {lost}");
    }
    let _ = writeln!(report, "refused: {:?}", log.refused.lock().unwrap());
    if verbose {
        eprint!("{report}");
    }

    // The time each stop cost: from the stop to the welcome on a later connection.
    let connected = log.connected.lock().unwrap().clone();
    let (mut cuts, mut freezes) = (Vec::new(), Vec::new());
    let (mut left_before, mut pending, mut unstopped, mut passed) = (0, 0, 0, 0);
    for (k, (ctl, _, _)) in links.iter().enumerate() {
        passed += ctl.passed.load(Ordering::SeqCst);
        let Some(&(at, kind)) = ctl.stopped.get() else {
            // Ended by a peer before its stop (the last one was still up at the end).
            if k + 1 < links.len() {
                unstopped += 1;
            }
            continue;
        };
        match connected.iter().find(|&&(_, link)| link > k) {
            // The client had already gone on to a later connection.
            Some(&(up, _)) if up <= at => left_before += 1,
            Some(&(up, _)) => match kind {
                Stop::Cut => cuts.push(up - at),
                Stop::Freeze => freezes.push(up - at),
            },
            None => pending += 1,
        }
    }
    cuts.sort();
    freezes.sort();
    let stops = cuts.len() + freezes.len();
    eprintln!(
        "resume_chaos {shape:?}: seed {seed}, {MESSAGES} messages each way in {:.1} s over {} connections \
         ({:.1} MB relayed); {} cuts, time lost {}; {} freezes, time lost {}; \
         {left_before} stops after the client had left, {pending} after the last welcome, \
         {unstopped} connections ended before their stop",
        took.as_secs_f64(),
        links.len(),
        passed as f64 / 1e6,
        cuts.len(),
        spread(&cuts),
        freezes.len(),
        spread(&freezes),
    );
    assert!(
        finished.is_ok(),
        "the run did not finish within {DEADLINE:?}\n{report}"
    );
    assert!(
        !log.ended_early(),
        "a half ended before the run was over\n{report}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("SessionLost")),
        "the client lost its session\n{report}"
    );
    assert_eq!(
        log.handler_calls.load(Ordering::SeqCst),
        1,
        "handler calls\n{report}"
    );
    assert!(log.refused.lock().unwrap().is_empty(), "refusals\n{report}");
    check_sequence("server", &log.server_got.lock().unwrap(), &messages('c')).unwrap();
    check_sequence("client", &log.client_got.lock().unwrap(), &messages('s')).unwrap();
    assert!(
        stops >= MIN_STOPS,
        "only {stops} cuts and freezes (at least {MIN_STOPS})\n{report}"
    );
    server.abort();
    relays.abort();
}

/// The heartbeat in Ping and Pong control frames (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_control_frames() {
    run(Shape::Control).await;
}

/// The heartbeat in JSON data frames: lookalikes of it travel escaped, and the heartbeat's
/// own frames share the stream with the session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_json_heartbeats() {
    run(Shape::Json).await;
}
