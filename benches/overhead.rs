//! Per-message cost of the heartbeat: messages echoed over `tokio::io::duplex` (groups
//! `echo_*`) and over loopback TCP (`tcp_echo_*`) with tokio-tungstenite on both ends, the
//! echoing end being
//! - `bare`: the stream as it is;
//! - `heartbeat`: the stream in `Heartbeat` (defaults: 10 s interval, 3 missed);
//! - `select_loop`: the hand-written keepalive people write today, a `tokio::select!` over
//!   the stream and a `tokio::time::interval`, noting the time of every message.
//!
//! Each iteration is one round trip of one message (the client sends it, the echoing end
//! reads and returns it, the client reads the echo), so every message crosses the echoing
//! end's read and write paths once. The figure
//! is the ratio to `bare` in the same run (BENCHMARKS.md).
//!
//! `cargo bench --bench overhead`
//!
//! On a machine whose speed drifts (a VM), criterion's one-after-the-other runs move the
//! ratio by several percent. `OVERHEAD_PAIRED=101 cargo bench --bench overhead` measures it
//! paired instead: 101 rounds, each timing a batch of round trips through each end back to
//! back (in a rotating order), and reports the per-round ratios to `bare`: min, median, max.
//! Each round has ends of its own, made in a rotating order and kept: where the buffers fall
//! on the heap favours one end or another by about a point at 16 KiB, and no end should keep
//! one placement's favour.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::Layer;
use ws_heartbeat::{Heartbeat, HeartbeatLayer};

/// The transports the ends talk over: an in-memory pipe, or loopback TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Transport for T {}

// Boxing the larger variant would add an indirection to just one of the compared ends.
#[allow(clippy::large_enum_variant)]
/// The echoing end. Client and echoing end run in the same task, one step at a time, so
/// the figure is the code path itself, not the scheduler's choices between two tasks.
enum Echo<T> {
    Bare(WebSocketStream<T>),
    Heartbeat(Heartbeat<WebSocketStream<T>>),
    /// The usual hand-written keepalive: ping every 10 s, give up after 30 s of silence,
    /// note the time of every message.
    SelectLoop {
        ws: WebSocketStream<T>,
        ping: tokio::time::Interval,
        last_seen: tokio::time::Instant,
    },
}

impl<T: Transport> Echo<T> {
    fn name(&self) -> &'static str {
        match self {
            Echo::Bare(_) => "bare",
            Echo::Heartbeat(_) => "heartbeat",
            Echo::SelectLoop { .. } => "select_loop",
        }
    }

    /// Reads one message and echoes it.
    async fn step(&mut self) {
        match self {
            Echo::Bare(ws) => {
                let msg = ws.next().await.unwrap().unwrap();
                ws.send(msg).await.unwrap();
            }
            Echo::Heartbeat(ws) => {
                let msg = ws.next().await.unwrap().unwrap();
                ws.send(msg).await.unwrap();
            }
            Echo::SelectLoop {
                ws,
                ping,
                last_seen,
            } => loop {
                tokio::select! {
                    msg = ws.next() => {
                        let msg = msg.unwrap().unwrap();
                        *last_seen = tokio::time::Instant::now();
                        if msg.is_text() || msg.is_binary() {
                            ws.send(msg).await.unwrap();
                            return;
                        }
                    }
                    _ = ping.tick() => {
                        assert!(last_seen.elapsed() < Duration::from_secs(30), "dead");
                        ws.send(Message::Ping(Vec::new().into())).await.unwrap();
                    }
                }
            },
        }
    }
}

/// tungstenite zero-fills its whole read buffer before every read (tungstenite-rs#547).
/// With the default 128 KiB buffer that memset is 96% of the instructions of a 20 B round
/// trip, and its size depends on where the buffer happens to stand, which drowns the cost
/// under test in noise. Every end here uses the same 4 KiB read buffer.
fn config() -> Option<WebSocketConfig> {
    Some(WebSocketConfig::default().read_buffer_size(4096))
}

/// Two connected ends of an in-memory pipe.
async fn duplex() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(1 << 20)
}

/// Two connected ends of a loopback TCP connection.
async fn tcp() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (server, client)
}

/// A client and the echoing end of each kind (bare, heartbeat, select_loop), joined by
/// `connect`. They are made starting with kind `first`, which decides where each end's
/// buffers fall on the heap.
fn pairs<T: Transport, F: Future<Output = (T, T)>>(
    rt: &Runtime,
    connect: fn() -> F,
    first: usize,
) -> Vec<(WebSocketStream<T>, Echo<T>)> {
    rt.block_on(async {
        let mut pairs = Vec::new();
        for kind in (0..3).map(|k| (k + first) % 3) {
            let (a, b) = connect().await;
            let server = WebSocketStream::from_raw_socket(a, Role::Server, config()).await;
            let client = WebSocketStream::from_raw_socket(b, Role::Client, config()).await;
            let echo = match kind {
                0 => Echo::Bare(server),
                1 => Echo::Heartbeat(HeartbeatLayer::new().jitter(false).layer(server)),
                _ => Echo::SelectLoop {
                    ws: server,
                    // First tick after one period, like the heartbeat's: no ping during a
                    // run, so every end's tungstenite buffers see the same bytes.
                    ping: tokio::time::interval_at(
                        tokio::time::Instant::now() + Duration::from_secs(10),
                        Duration::from_secs(10),
                    ),
                    last_seen: tokio::time::Instant::now(),
                },
            };
            pairs.push((kind, (client, echo)));
        }
        pairs.sort_by_key(|&(kind, _)| kind);
        pairs.into_iter().map(|(_, pair)| pair).collect()
    })
}

fn round_trips<T: Transport, F: Future<Output = (T, T)>>(
    c: &mut Criterion,
    name: &str,
    message: Message,
    connect: fn() -> F,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for (mut client, mut echo) in pairs(&rt, connect, 0).into_iter().rev() {
        group.bench_function(echo.name(), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        client.send(message.clone()).await.unwrap();
                        echo.step().await;
                        client.next().await.unwrap().unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn overhead(c: &mut Criterion) {
    let small = Message::text("01234567890123456789");
    let large = Message::binary(vec![7u8; 16 * 1024]);
    round_trips(c, "echo_20B", small.clone(), duplex);
    round_trips(c, "echo_16KiB", large.clone(), duplex);
    round_trips(c, "tcp_echo_20B", small, tcp);
    round_trips(c, "tcp_echo_16KiB", large, tcp);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = overhead
}

/// Runs `n` round trips of a message of `bytes` (default 20) through one kind of echoing end
/// and nothing else, for an instruction count that does not depend on the machine's load:
/// `OVERHEAD_ONLY=heartbeat:10000:20 valgrind --tool=callgrind target/release/deps/overhead-*`.
fn only(spec: &str) {
    let mut parts = spec.split(':');
    let (name, n, size) = (parts.next(), parts.next(), parts.next());
    let name = name.expect("OVERHEAD_ONLY=kind:count[:bytes]");
    let n: u64 = n.and_then(|n| n.parse().ok()).expect("a count");
    let size: usize = size.map_or(20, |s| s.parse().expect("a size in bytes"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut client, mut echo) = pairs(&rt, duplex, 0)
        .into_iter()
        .find(|(_, echo)| echo.name() == name)
        .expect("bare, heartbeat or select_loop");
    let message = Message::binary(vec![7u8; size]);
    rt.block_on(async {
        for _ in 0..n {
            client.send(message.clone()).await.unwrap();
            echo.step().await;
            client.next().await.unwrap().unwrap();
        }
    });
}

/// Time ratios to `bare` measured in pairs: see the module docs.
fn paired(rounds: usize) {
    let small = Message::text("01234567890123456789");
    let large = Message::binary(vec![7u8; 16 * 1024]);
    paired_group("echo_20B", &small, duplex, rounds, 10_000);
    paired_group("echo_16KiB", &large, duplex, rounds, 1_000);
    paired_group("tcp_echo_20B", &small, tcp, rounds, 500);
    paired_group("tcp_echo_16KiB", &large, tcp, rounds, 400);
}

fn paired_group<T: Transport, F: Future<Output = (T, T)>>(
    name: &str,
    message: &Message,
    connect: fn() -> F,
    rounds: usize,
    batch: u32,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Where an end's buffers fall moves a 16 KiB round trip by about a point (one `memmove`
    // is three quarters of it), and whichever end a fixed placement favours, it favours in
    // every round. So every round makes its ends anew, starting with another kind each time,
    // and keeps the old ones: each round's ends fall somewhere else.
    let mut sets: Vec<_> = (0..rounds)
        .map(|round| pairs(&rt, connect, round % 3))
        .collect();
    let time_batch = |end: &mut (WebSocketStream<T>, Echo<T>), batch: u32| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..batch {
                end.0.send(message.clone()).await.unwrap();
                end.1.step().await;
                end.0.next().await.unwrap().unwrap();
            }
            start.elapsed()
        })
    };
    let mut ratios = [Vec::new(), Vec::new()];
    // Each round: bare, heartbeat, select_loop, in the order `pairs` returns them.
    for (round, ends) in sets.iter_mut().enumerate() {
        for end in ends.iter_mut() {
            time_batch(end, 100); // warm-up: the buffers grow to their size
        }
        let mut took = [Duration::ZERO; 3];
        for k in 0..3 {
            let i = (k + round) % 3;
            took[i] = time_batch(&mut ends[i], batch);
        }
        for (ratio, end) in ratios.iter_mut().zip(1..) {
            ratio.push(took[end].as_secs_f64() / took[0].as_secs_f64());
        }
    }
    for (ratio, kind) in ratios.iter_mut().zip(["heartbeat", "select_loop"]) {
        ratio.sort_by(f64::total_cmp);
        let pct = |r: f64| (r - 1.0) * 100.0;
        println!(
            "{name:<15} {kind:<12} vs bare: min {:+.1}%  median {:+.1}%  max {:+.1}%  ({rounds} rounds of {batch})",
            pct(ratio[0]),
            pct(ratio[rounds / 2]),
            pct(ratio[rounds - 1]),
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var("OVERHEAD_ONLY") {
        return only(&spec);
    }
    if let Ok(rounds) = std::env::var("OVERHEAD_PAIRED") {
        return paired(rounds.parse().expect("OVERHEAD_PAIRED=rounds"));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
