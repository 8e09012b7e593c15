//! The Rust client's replay after a resume, over real TCP on 127.0.0.1 (issue 26, item 3).
//!
//! 1. Paced by its socket: a backlog of 1 000 messages of 1 KiB waits while the session is
//!    down; the next connection carries 8 KiB per 10 ms (tests/support/throttle.rs). At every
//!    look, the messages the client has handed to the connection are at most what the
//!    transport took, plus tungstenite's write buffer and one message: the rest waits in the
//!    client's own buffer (`Reconnect::queued`), as the browser module's wait in its outbox.
//!    The sink's backpressure does it: tokio-tungstenite's `poll_ready` is pending until its
//!    write buffer is written out, and the client hands a message over only when it is ready.
//! 2. Progress through cuts: 10 000 messages, echoed by the server, with 64 KiB session
//!    buffers on both sides, sent as fast as the session lets the client, through a relay
//!    (tests/support/relay.rs) that passes everything, then through one that cuts every
//!    connection it carries every 200 ms. Three rounds; the median rate with cuts must be at
//!    least half the median without, and each run delivers every message once and in order
//!    both ways. The messages are 32 760 bytes, the largest size two of which fit the buffer
//!    (each weighs its payload plus 8), so that a run spans several cuts: 10 000 messages of
//!    8 KiB were through in 0.3 s here, before the second cut.
//!
//! The two tests take turns (`ALONE`): each measures time.
//! `cargo test --test replay_paced -- --nocapture` prints the rates.

mod support;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Reconnect};
use ws_heartbeat::resume::{Resume, Session, Sessions};

use support::ms;
use support::relay::{Ctl, relay};
use support::throttle::Throttle;

type ServerWs = WebSocketStream<TcpStream>;

/// Held by each test for its whole run: they measure time, so they do not share the CPU.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A message numbered `i` (its first 8 bytes), `len` bytes long.
fn numbered(i: u64, len: usize) -> Message {
    let mut bytes = vec![b'.'; len];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    Message::binary(bytes)
}

fn number_of(msg: &Message) -> u64 {
    u64::from_be_bytes(msg.clone().into_data()[..8].try_into().unwrap())
}

/// Numbers 0, 1, 2, ... once each and in order: the count, or where it broke.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    count: u64,
    errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, n: u64) {
        if n != self.count && self.errors.len() < 20 {
            self.errors.push(format!("{n} after {}", self.count));
        }
        self.count += 1;
    }
}

/// The server: every accepted socket goes to `sessions.accept`; a new session's handler
/// records what it gets and, with `echo`, sends it back.
async fn serve(listener: TcpListener, sessions: Sessions, echo: bool, got: Arc<Mutex<Tally>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // Acknowledgements are small frames: with Nagle, one written while the client has
        // nothing to send waits for its delayed ACK.
        let _ = tcp.set_nodelay(true);
        let (sessions, got) = (sessions.clone(), got.clone());
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return; // cut in the HTTP upgrade
            };
            if let Ok(Some(session)) = sessions.accept(ws).await {
                handler(session, echo, got).await;
            }
        });
    }
}

async fn handler(mut session: Session<ServerWs>, echo: bool, got: Arc<Mutex<Tally>>) {
    while let Some(Ok(msg)) = session.next().await {
        if !msg.is_binary() {
            continue;
        }
        got.lock().unwrap().record(number_of(&msg));
        if echo && session.send(msg).await.is_err() {
            return;
        }
    }
}

/// A server on 127.0.0.1 with sessions of `buffer` bytes: its address and what it got.
async fn server(
    layer: HeartbeatLayer,
    buffer: usize,
    echo: bool,
) -> (SocketAddr, Arc<Mutex<Tally>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Tally::default()));
    let sessions = layer.resume(Resume::new().buffer(buffer));
    tokio::spawn(serve(listener, sessions, echo, got.clone()));
    (addr, got)
}

/// A relay on 127.0.0.1 to `server`: every connection's controls, in the order accepted.
async fn relay_to(server: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<Arc<Ctl>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let links = Arc::new(Mutex::new(Vec::new()));
    let all = links.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let ctl = Arc::new(Ctl::default());
            all.lock().unwrap().push(ctl.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(server).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                relay(client, server, ctl).await;
            });
        }
    });
    (addr, links)
}

/// A transport that counts the bytes it took from the WebSocket above it.
struct Counted<T> {
    inner: T,
    written: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        self.written.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type SlowWs = WebSocketStream<Counted<Throttle<TcpStream>>>;

/// Messages in the backlog of the first test, and their size.
const BACKLOG: u64 = 1_000;
const BACKLOG_BYTES: usize = 1024;
/// What the client's frame of such a message takes on the wire: a 2-byte header, a 2-byte
/// length, a 4-byte mask.
const FRAME_BYTES: u64 = BACKLOG_BYTES as u64 + 8;
/// The slow link: this many bytes every 10 ms each way (819 200 B/s).
const LINK_CHUNK: usize = 8 * 1024;
const LINK_PERIOD: Duration = ms(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_goes_no_faster_than_the_socket_drains() {
    let _alone = ALONE.lock().await;
    // The heartbeat ticks every 10 s: no ping among the measured frames.
    let layer = HeartbeatLayer::new().interval(Duration::from_secs(10));
    // Buffers of 4 MiB: the session's room never holds the client back, only its socket does.
    let (server_addr, got) = server(layer.clone(), 4 << 20, false).await;
    let (relay_addr, links) = relay_to(server_addr).await;

    let written = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Notify::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let connect = {
        let (written, gate, attempts) = (written.clone(), gate.clone(), attempts.clone());
        move || {
            let (written, gate) = (written.clone(), gate.clone());
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt > 0 {
                    gate.notified().await; // held until the backlog is in
                }
                let tcp = TcpStream::connect(relay_addr).await?;
                tcp.set_nodelay(true)?;
                let link = Counted {
                    inner: Throttle::new(tcp, LINK_CHUNK, LINK_PERIOD),
                    written: if attempt > 0 {
                        written
                    } else {
                        Arc::new(AtomicU64::new(0))
                    },
                };
                client_async(format!("ws://{relay_addr}/"), link)
                    .await
                    .map(|(ws, _)| ws)
            }
        }
    };
    let mut client: Reconnect<SlowWs> = Reconnect::builder(connect)
        .heartbeat(layer)
        .backoff(Backoff::new().initial(ms(5)).max_delay(ms(5)))
        .resume(Resume::new().buffer(4 << 20))
        .on_event(move |event| {
            let _ = events_tx.send(format!("{event:?}"));
        })
        .build();

    // Up once, then cut: the session is parked on both sides.
    let up = async {
        loop {
            tokio::select! {
                _ = client.next() => {}
                Some(event) = events.recv() => if event.starts_with("Connected") { break },
            }
        }
    };
    timeout(Duration::from_secs(10), up)
        .await
        .expect("the first connection is up");
    links.lock().unwrap()[0].cut();
    let down = async {
        loop {
            tokio::select! {
                _ = client.next() => {}
                Some(event) = events.recv() => if event.starts_with("Disconnected") { break },
            }
        }
    };
    timeout(Duration::from_secs(10), down)
        .await
        .expect("the client saw the cut");

    // The backlog: kept by the session and queued while the next attempt waits at the gate.
    for i in 0..BACKLOG {
        timeout(ms(1000), client.feed(numbered(i, BACKLOG_BYTES)))
            .await
            .expect("room in the session")
            .unwrap();
    }
    assert_eq!(client.queued() as u64, BACKLOG);
    gate.notify_one();

    // The session resumes over the slow link; every 5 ms, a look at what the client handed
    // over against what the link took.
    let write_buffer = WebSocketConfig::default().write_buffer_size as u64;
    let started = Instant::now();
    let mut looks = 0;
    let mut most_waiting = 0;
    let mut welcomed = false;
    while got.lock().unwrap().count < BACKLOG {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the backlog did not arrive within 20 s: the server got {:?}, {} queued",
            got.lock().unwrap(),
            client.queued()
        );
        let _ = timeout(ms(5), client.next()).await;
        while let Ok(event) = events.try_recv() {
            welcomed |= event.starts_with("Connected");
        }
        if !welcomed {
            continue;
        }
        let handed = BACKLOG - client.queued() as u64;
        let took = written.load(Ordering::SeqCst);
        looks += 1;
        most_waiting = most_waiting.max(client.queued());
        // The frames handed over sit in the transport (taken) or in tungstenite's write
        // buffer, which it fills up to its size plus the frame that passes it; the session's
        // hello and the HTTP upgrade, taken too, only lower the left side's share.
        assert!(
            handed * FRAME_BYTES <= took + write_buffer + FRAME_BYTES,
            "{handed} messages handed over, {took} bytes taken by the link (write buffer {write_buffer})"
        );
    }
    let took = started.elapsed();
    println!(
        "replay of {BACKLOG} x {BACKLOG_BYTES} B over 8 KiB per 10 ms: {:.2} s, {looks} looks, up to {most_waiting} waiting in the client's buffer",
        took.as_secs_f64()
    );
    // Not a vacuous pass: most of the backlog waited in the client while the link drained.
    assert!(most_waiting as u64 > BACKLOG / 2, "{most_waiting}");
    assert_eq!(
        *got.lock().unwrap(),
        Tally {
            count: BACKLOG,
            errors: vec![]
        }
    );
}

/// Messages a run sends, their size, the buffers, the cuts.
const MESSAGES: u64 = 10_000;
const MESSAGE_BYTES: usize = 32_760;
const BUFFER: usize = 64 * 1024;
const CUT_EVERY: Duration = ms(200);
const ROUNDS: usize = 3;
const MIN_CUTS: usize = 3;
const MIN_RATIO: f64 = 0.5;
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// What a run saw.
struct Run {
    took: Duration,
    cuts: usize,
    connections: usize,
    server: Tally,
    client: Tally,
}

impl Run {
    fn rate(&self) -> f64 {
        MESSAGES as f64 / self.took.as_secs_f64()
    }
}

/// One run: a server, a relay (cutting every `cut_every`, or not), a client that sends
/// `MESSAGES` as fast as its session lets it and reads the echoes.
async fn run(cut_every: Option<Duration>) -> Run {
    let layer = HeartbeatLayer::new().interval(ms(300));
    let (server_addr, server_got) = server(layer.clone(), BUFFER, true).await;
    let (relay_addr, links) = relay_to(server_addr).await;
    let (done_tx, done) = watch::channel(false);
    let cuts = Arc::new(AtomicUsize::new(0));
    if let Some(every) = cut_every {
        let (links, cuts, mut done) = (links.clone(), cuts.clone(), done.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = done.wait_for(|done| *done) => return,
                }
                let mut any = false;
                for ctl in links.lock().unwrap().iter() {
                    if !ctl.cut.load(Ordering::SeqCst) {
                        ctl.cut();
                        any = true;
                    }
                }
                if any {
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let url = format!("ws://{relay_addr}/");
    let client: Reconnect<WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>> =
        Reconnect::builder(move || {
            let url = url.clone();
            async move {
                tokio_tungstenite::connect_async_with_config(url, None, true)
                    .await
                    .map(|(ws, _)| ws)
            }
        })
        .heartbeat(layer)
        // As in tests/resume_chaos.rs (and the browser module's test): the time a cut costs
        // is then mostly the new connection and the replay.
        .backoff(Backoff::new().initial(ms(5)).max_delay(ms(50)))
        .resume(Resume::new().buffer(BUFFER))
        .build();
    let (mut sink, mut stream) = client.split();
    let client_got = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..MESSAGES {
            sink.send(numbered(i, MESSAGE_BYTES)).await.unwrap();
        }
        sink // kept: dropping a half does not end the client, but keep it alive anyway
    });
    let reader = {
        let client_got = client_got.clone();
        let mut done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    next = stream.next() => match next {
                        Some(Ok(msg)) if msg.is_binary() => {
                            let mut tally = client_got.lock().unwrap();
                            tally.record(number_of(&msg));
                            if tally.count == MESSAGES {
                                return Some(Instant::now());
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(err)) => panic!("the client failed: {err}"),
                        None => return None,
                    },
                    _ = done.wait_for(|done| *done) => return None,
                }
            }
        })
    };
    let last = timeout(RUN_DEADLINE, reader)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "not done within {RUN_DEADLINE:?}: the server got {:?}, the client {:?}",
                server_got.lock().unwrap(),
                client_got.lock().unwrap()
            )
        })
        .unwrap()
        .expect("every echo");
    done_tx.send_replace(true);
    writer.abort();
    let connections = links.lock().unwrap().len();
    let server = server_got.lock().unwrap().clone();
    let client = client_got.lock().unwrap().clone();
    Run {
        took: last - start,
        cuts: cuts.load(Ordering::SeqCst),
        connections,
        server,
        client,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[(xs.len() - 1) / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_with_a_cut_every_200_ms_is_at_least_half_the_uncut_rate() {
    let _alone = ALONE.lock().await;
    let (mut uncut, mut cut) = (Vec::new(), Vec::new());
    let want = Tally {
        count: MESSAGES,
        errors: vec![],
    };
    for round in 1..=ROUNDS {
        for cut_every in [None, Some(CUT_EVERY)] {
            let r = run(cut_every).await;
            let name = if cut_every.is_some() { "cut" } else { "uncut" };
            println!(
                "round {round}, {name}: {MESSAGES} messages of {MESSAGE_BYTES} B in {} ms, {:.0} messages/s; {} cuts, {} connections",
                r.took.as_millis(),
                r.rate(),
                r.cuts,
                r.connections
            );
            assert_eq!(r.server, want, "round {round}, {name}: the server's");
            assert_eq!(r.client, want, "round {round}, {name}: the echoes");
            if cut_every.is_some() {
                assert!(
                    r.cuts >= MIN_CUTS,
                    "round {round}: only {} cuts: too short a run to say anything",
                    r.cuts
                );
                cut.push(r.rate());
            } else {
                assert_eq!((r.cuts, r.connections), (0, 1));
                uncut.push(r.rate());
            }
        }
    }
    let (uncut, cut) = (median(uncut), median(cut));
    let ratio = cut / uncut;
    println!(
        "medians: uncut {uncut:.0} messages/s, cut every {CUT_EVERY:?} {cut:.0} messages/s: {:.0}% of the uncut rate",
        ratio * 100.0
    );
    assert!(
        ratio >= MIN_RATIO,
        "with cuts {cut:.0} messages/s, uncut {uncut:.0}: {ratio:.2}"
    );
}
