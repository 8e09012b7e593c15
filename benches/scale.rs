//! The cost of keeping many connections alive, in one process: N in-memory WebSocket pairs
//! (tokio-tungstenite on both ends over `tokio::io::duplex`), each server end read by a
//! handler task, each client end by a peer task that answers pings. Three server ends:
//!
//! - `bare`: no keepalive (the baseline);
//! - `heartbeat`: the same handler reading a `Heartbeat` of the stream;
//! - `select`: the usual hand-written keepalive, a `tokio::select!` over the stream and a
//!   `tokio::time::interval` in the handler task;
//! - `background`: the `heartbeat` handler with `HeartbeatLayer::background()`, each
//!   connection driven by a task of its own.
//!
//! Reported per connection: memory added over `bare` (bytes the allocator holds once every
//! connection is set up), and CPU time per heartbeat round (process CPU over a window of
//! rounds, minus `bare`'s over the same window, over N × rounds; it includes the peer's work
//! of answering). Then a hundredth of the peers freeze (`SCALE_FROZEN_ONE_IN`): the time from
//! the freeze to each `Dead`.
//!
//! `cargo bench --bench scale -- 10000 100000` (defaults to both). Interval 2 s, 3 missed;
//! `SCALE_INTERVAL_MS` sets another interval, `SCALE_KINDS=heartbeat,select` fewer kinds (a
//! million: `SCALE_INTERVAL_MS=10000 SCALE_FROZEN_ONE_IN=1000 SCALE_KINDS=heartbeat,select
//! cargo bench --bench scale -- 1000000`). For profiling: `SCALE_ONLY=heartbeat` (or `select`, `bare`) runs one kind alone, on one
//! thread unless `SCALE_WORKERS=n`; `SCALE_WORKERS` also sets the workers of the full run
//! (default 2); `SCALE_JITTER=0` turns the heartbeat's jitter off; `SCALE_RECORDER=prometheus`
//! records the crate's metrics (feature `metrics`) with a Prometheus recorder.
//! Connections arrive over one interval; memory is taken once every connection has sent its
//! first ping (the first write in each direction grows the stream's and the pipe's buffers,
//! about 128 B per connection, for any keepalive).

mod support;

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::{config, cpu};
use tokio::io::DuplexStream;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The heartbeat's (and the select! loop's) interval: `SCALE_INTERVAL_MS`, default 2 s.
fn interval() -> Duration {
    Duration::from_millis(env_or("SCALE_INTERVAL_MS", 2000))
}

/// One peer in this many freezes for the detection measurement: `SCALE_FROZEN_ONE_IN`,
/// default 100 (a thousandth at a million: 1000).
fn frozen_one_in() -> usize {
    env_or("SCALE_FROZEN_ONE_IN", 100) as usize
}

/// The keepalives compared with bare: `SCALE_KINDS=heartbeat,select`, default all three.
fn kinds() -> Vec<Kind> {
    let all = "heartbeat,select,background";
    let kinds = std::env::var("SCALE_KINDS").unwrap_or_else(|_| all.into());
    kinds
        .split(',')
        .map(|kind| match kind {
            "heartbeat" => Kind::Heartbeat,
            "select" => Kind::Select,
            "background" => Kind::Background,
            other => panic!("SCALE_KINDS: {other}? ({all})"),
        })
        .collect()
}

/// How long the detection measurement waits for the frozen peers, in intervals:
/// `SCALE_WAIT_INTERVALS`, default 12 (three times the bound).
fn wait_intervals() -> u32 {
    env_or("SCALE_WAIT_INTERVALS", 12) as u32
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect("a whole number"))
}
const ROUNDS: u32 = 5;
const ARRIVAL_BATCHES: usize = 1_000;

type Ws = WebSocketStream<DuplexStream>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bare,
    Heartbeat,
    Select,
    Background,
}

/// The size of each kind's handler future (what its task holds inline; tokio rounds every
/// task up to a multiple of 128 B on x86_64).
static FUTURE_SIZE: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn spawn_server<F>(kind: Kind, handler: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    FUTURE_SIZE[kind as usize].store(std::mem::size_of_val(&handler), Ordering::Relaxed);
    tokio::spawn(handler)
}

/// The heartbeat kinds' handler: reads until the stream ends, and reports a death with
/// its time. A plain function returning an `async move` block, not an `async fn`: an async
/// fn keeps its argument twice (once captured, once bound), which would add the stream's size
/// to every task.
#[allow(clippy::manual_async_fn)]
fn until_dead<W>(
    mut ws: W,
    id: usize,
    dead_tx: mpsc::UnboundedSender<(usize, Instant)>,
) -> impl Future<Output = ()>
where
    W: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    async move {
        while let Some(item) = ws.next().await {
            if let Err(err) = item {
                if Dead::find(&err).is_some() {
                    let _ = dead_tx.send((id, Instant::now()));
                }
                break;
            }
        }
    }
}

fn net_bytes(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
}

struct Run {
    memory: i64,
    cpu: Duration,
    /// From each frozen peer's freeze to its `Dead`, sorted.
    detection: Vec<Duration>,
    /// Peers that never froze but were declared dead.
    live_dead: usize,
}

async fn run(kind: Kind, n: usize) -> Run {
    let region = Region::new(GLOBAL);
    let (interval, one_in) = (interval(), frozen_one_in());
    // SCALE_JITTER=0: every first tick after exactly one interval, like the select loop's.
    let jitter = std::env::var("SCALE_JITTER").map_or(true, |v| v != "0");
    let layer = HeartbeatLayer::new()
        .interval(interval)
        .max_missed(3)
        .jitter(jitter);
    let freeze = Arc::new(Notify::new());
    let frozen_flag = Arc::new(AtomicBool::new(false));
    let (dead_tx, mut dead_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut tasks = Vec::with_capacity(2 * n);
    // Connections arrive over one interval, in 1 000 batches, as on a server that has been
    // up a while (all at once, the hand-written loop's ticks would coincide; real ones don't).
    let batch = n.div_ceil(ARRIVAL_BATCHES);
    let mut arrivals = tokio::time::interval(interval / ARRIVAL_BATCHES as u32);
    for id in 0..n {
        if id % batch == 0 {
            arrivals.tick().await;
        }
        let (a, b) = tokio::io::duplex(4096);
        let server: Ws = WebSocketStream::from_raw_socket(a, Role::Server, config()).await;
        let mut client: Ws = WebSocketStream::from_raw_socket(b, Role::Client, config()).await;
        tasks.push(match kind {
            Kind::Bare => {
                // Every kind's task captures the same (the stream and a sender) and moves
                // nothing into a second local (an async block keeps both slots), so the
                // difference in memory is the keepalive's alone.
                let (mut ws, dead_tx) = (server, dead_tx.clone());
                spawn_server(kind, async move {
                    while let Some(Ok(_)) = ws.next().await {}
                    drop(dead_tx);
                })
            }
            Kind::Heartbeat => {
                let ws = layer.layer(server);
                spawn_server(kind, until_dead(ws, id, dead_tx.clone()))
            }
            Kind::Background => {
                let ws = layer.clone().background().wrap(server);
                spawn_server(kind, until_dead(ws, id, dead_tx.clone()))
            }
            Kind::Select => {
                let (mut ws, dead_tx) = (server, dead_tx.clone());
                spawn_server(kind, async move {
                    let mut ping = tokio::time::interval(interval);
                    let mut last_seen = tokio::time::Instant::now();
                    loop {
                        tokio::select! {
                            msg = ws.next() => match msg {
                                Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
                                _ => break,
                            },
                            _ = ping.tick() => {
                                if last_seen.elapsed() > 3 * interval {
                                    let _ = dead_tx.send((id, Instant::now()));
                                    break;
                                }
                                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                })
            }
        });
        // The peer answers pings by reading; one in `one_in` freezes on request.
        let (freeze, frozen_flag) = (freeze.clone(), frozen_flag.clone());
        let may_freeze = id % one_in == 0;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = freeze.notified(), if may_freeze => {
                        std::future::pending::<()>().await;
                    }
                    msg = client.next() => if msg.is_none() { break },
                }
                if may_freeze && frozen_flag.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            }
        }));
    }
    // Measure once every connection has sent its first ping (a jittered first tick comes
    // within one interval) and so grown whatever buffers a ping grows.
    tokio::time::sleep(interval + Duration::from_millis(500)).await;
    let memory = net_bytes(&region);

    // For a profiler attached now (`perf record -p`): the steady state starts here.
    eprintln!("{kind:?}, {n} connections: measuring CPU over {ROUNDS} rounds");
    let cpu_before = cpu();
    tokio::time::sleep(interval * ROUNDS).await;
    let cpu = cpu() - cpu_before;

    // No peer has frozen yet: every death so far is of a live peer.
    let mut live_dead = std::iter::from_fn(|| dead_rx.try_recv().ok()).count();
    let mut detection = Vec::new();
    if kind != Kind::Bare && std::env::var_os("SCALE_ONLY").is_none() {
        frozen_flag.store(true, Ordering::Relaxed);
        freeze.notify_waiters();
        let frozen_at = Instant::now();
        let expected = n.div_ceil(one_in);
        // Three times the bound: under overload, late detections are part of the figure.
        let deadline = frozen_at + interval * wait_intervals();
        while detection.len() < expected && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline.into(), dead_rx.recv()).await {
                Ok(Some((id, at))) if id % one_in == 0 => detection.push(at - frozen_at),
                Ok(Some(_)) => live_dead += 1,
                _ => break,
            }
        }
        detection.sort();
    }
    // End every task before the next run measures anything.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    // A dropped heartbeat's filing with the runtime's timer holds its shared state (a weak
    // pointer) until the filing fires, within an interval: let that happen before the next
    // run measures, or its frees would count against that run.
    tokio::time::sleep(interval + Duration::from_secs(2)).await;
    Run {
        memory,
        cpu,
        detection,
        live_dead,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    // `SCALE_RECORDER=prometheus`: the crate's metrics go to a Prometheus recorder (the cost
    // of recording them); without it, to none.
    if std::env::var("SCALE_RECORDER").as_deref() == Ok("prometheus") {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        use ws_heartbeat::metrics as m;
        let full = |name: &str| Matcher::Full(name.to_owned());
        PrometheusBuilder::new()
            .set_buckets_for_metric(full(m::RTT), &m::RTT_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(full(m::TICK_LAG), &m::TICK_LAG_BUCKETS))
            .expect("buckets")
            .install_recorder()
            .expect("the only recorder");
        println!("metrics: recorded by a Prometheus recorder");
    }
    // `SCALE_ONLY=heartbeat` (or select, bare) runs one kind alone, for a profiler.
    if let Ok(only) = std::env::var("SCALE_ONLY") {
        let kind = match only.as_str() {
            "heartbeat" => Kind::Heartbeat,
            "select" => Kind::Select,
            "background" => Kind::Background,
            _ => Kind::Bare,
        };
        // On one thread, unless SCALE_WORKERS asks for a multi-thread runtime.
        let runtime = match std::env::var("SCALE_WORKERS") {
            Ok(workers) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.parse().unwrap())
                .enable_all()
                .build(),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .unwrap();
        let r = runtime.block_on(run(kind, sizes[0]));
        println!("{kind:?}: {} B, {:?} CPU", r.memory, r.cpu);
        return;
    }
    // SCALE_WORKERS=1: one worker instead of two (how the workers share the wake-ups).
    let workers = std::env::var("SCALE_WORKERS").map_or(2, |v| v.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "interval {:?}, {ROUNDS} rounds measured, 3 missed (dead within {:?}), one peer in {} frozen",
        interval(),
        interval() * 4,
        frozen_one_in()
    );
    println!(
        "Heartbeat<WebSocketStream<DuplexStream>>: {} B inline, the stream alone {} B; tokio's Sleep {} B",
        std::mem::size_of::<ws_heartbeat::Heartbeat<Ws>>(),
        std::mem::size_of::<Ws>(),
        std::mem::size_of::<tokio::time::Sleep>(),
    );
    for n in sizes {
        let bare = runtime.block_on(run(Kind::Bare, n));
        for kind in kinds() {
            let r = runtime.block_on(run(kind, n));
            let added = (r.memory - bare.memory) as f64 / n as f64;
            let cpu = r.cpu.saturating_sub(bare.cpu).as_secs_f64() / (n as f64 * f64::from(ROUNDS));
            println!(
                "N = {n:>6} {kind:<9?}: +{added:>6.0} B per connection, {:>6.2} µs CPU per round per connection \
                 (total {:?} vs bare {:?} over {ROUNDS} rounds)",
                cpu * 1e6,
                r.cpu,
                bare.cpu,
            );
            if kind != Kind::Bare {
                let d = &r.detection;
                let bound = interval() * 4;
                let late = |at: &Duration| at.as_secs_f64() / bound.as_secs_f64();
                let range = match (d.first(), d.last()) {
                    (Some(first), Some(last)) => format!(
                        "{first:.2?} .. {last:.2?} (median {:.2?}; latest {:.2}x the bound)",
                        d[d.len() / 2],
                        late(last)
                    ),
                    _ => "none".into(),
                };
                println!(
                    "N = {n:>6} {kind:<9?}: {} of {} frozen peers declared dead {range} after freezing; \
                     live peers declared dead: {}",
                    d.len(),
                    n.div_ceil(frozen_one_in()),
                    r.live_dead,
                );
            }
            if matches!(kind, Kind::Heartbeat | Kind::Background) {
                let lag = ws_heartbeat::tick_lag();
                println!(
                    "N = {n:>6} {kind:<9?}: ticks later than a quarter interval so far in this process: {} \
                     (the latest {:.2?} late; the worst tick {:.2?} late)",
                    lag.late_ticks, lag.latest, lag.worst
                );
            }
        }
        println!(
            "N = {n:>6} bare     : {} B per connection in all (both ends, tasks, buffers)",
            bare.memory / n as i64
        );
        let sizes: Vec<String> = std::iter::once(Kind::Bare)
            .chain(kinds())
            .map(|kind| {
                let size = FUTURE_SIZE[kind as usize].load(Ordering::Relaxed);
                format!("{kind:?} {size} B")
            })
            .collect();
        println!(
            "handler futures: {} (each task rounded up to 128 B)",
            sizes.join(", ")
        );
    }
}
