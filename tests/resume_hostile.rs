//! Hostile clients against the sessions' memory budget, over TCP on 127.0.0.1, real time:
//! 2 000 clients open sessions and then never read and never acknowledge, while each
//! session's handler sends 1 KiB every 10 ms. The budget (64 MiB here; 2 000 full buffers
//! would be 200 MiB) bounds what the sessions keep: the server's resident memory stays under
//! its size before the clients came, plus the budget, plus a stated overhead per
//! connection. The clients that came once the budget was full are refused with 1013. A
//! well-behaved client started in the middle is refused too while the budget is full, tries
//! again after its backoff, and once the heartbeat has found the hostile clients dead (they
//! never answer a ping: within 3 s) and their parked sessions have ended at the budget,
//! gets every message of its session exactly once and in order. No handler panics.
//! Bounded: each phase waits at most 30 s; the good client reads 300 messages.
//!
//! The hostile clients speak just enough WebSocket by hand (the upgrade, one masked `hello`
//! frame) and then hold their sockets without reading: they keep no memory of their own in
//! this process, whose resident memory is then the server's. Run in release by `.ci/run`
//! (figures in BENCHMARKS.md, "Sessions"), and in `cargo test`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::Reconnect;
use ws_heartbeat::reconnect::{Backoff, Event, Reason};
use ws_heartbeat::resume::{AcceptError, Resume, Session, Sessions};

use support::{memory_kib, ms};

/// The global allocator, counting the bytes allocated now and at most: the heap's share of
/// the resident figure.
struct Counting;

static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = HEAP_NOW.fetch_add(by, Ordering::Relaxed) + by;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on unchanged to the system allocator; counting touches only
// two atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            HEAP_NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HOSTILE: usize = 2_000;
const BUDGET: usize = 64 << 20;
/// What a client costs the server besides what its session keeps, at most: its socket's
/// WebSocket (a 4 KiB read buffer, the write buffer), heartbeat, session state and handler
/// task, and the allocator's own slack. Measured at 26 KiB in release (BENCHMARKS.md);
/// stated with room.
const PER_CONNECTION_KIB: u64 = 40;
const GOOD_MESSAGES: usize = 300;
/// The longest any phase may take.
const PHASE: Duration = Duration::from_secs(30);

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

#[test]
fn hostile_clients_hold_no_more_than_the_budget() {
    support::allow_open_files(2 * HOSTILE as u64 + 256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(hostile());
}

/// The handler: 1 KiB every 10 ms, numbered from 0, until the session fails.
async fn handler(mut session: Session<Ws>) {
    let mut every = tokio::time::interval(ms(10));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0u64.. {
        every.tick().await;
        if session
            .send(Message::text(format!("{i:>1024}")))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// What the server saw: sessions started, sockets refused with 1013, handlers that panicked.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    busy: AtomicUsize,
    panics: AtomicUsize,
}

async fn serve(listener: TcpListener, sessions: Sessions, counts: Arc<Counts>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (sessions, counts) = (sessions.clone(), counts.clone());
        tokio::spawn(async move {
            // tungstenite's read buffer is 128 KiB per connection by default: at thousands
            // of connections that, not the session, would be most of the memory.
            let config = WebSocketConfig::default().read_buffer_size(4096);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
                return;
            };
            match sessions.accept(ws).await {
                Ok(Some(session)) => {
                    counts.started.fetch_add(1, Ordering::SeqCst);
                    // A handler that panics is counted, not lost in its task.
                    if tokio::spawn(handler(session)).await.is_err() {
                        counts.panics.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Err(AcceptError::Busy) => {
                    counts.busy.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        });
    }
}

/// A client that opens a session and never reads again: the upgrade by hand, the response's
/// head read, one masked `hello` frame (mask key 0: the payload as is).
async fn hostile_client(addr: std::net::SocketAddr, n: usize) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let hello = format!(
        "\u{10}hello 1 new {n:032x} {:032x} {}",
        n as u128 * 7919 + 1,
        100 * 1024
    );
    let mut frame = vec![0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(hello.as_bytes());
    tcp.write_all(&frame).await.unwrap();
    tcp
}

/// Samples the budget's use and the resident memory every 50 ms until `stop`; returns the
/// largest of each (bytes, KiB).
fn sample(sessions: Sessions, stop: Arc<AtomicUsize>) -> tokio::task::JoinHandle<(usize, u64)> {
    tokio::spawn(async move {
        let (mut used, mut rss) = (0, 0);
        while stop.load(Ordering::SeqCst) == 0 {
            used = used.max(sessions.memory_used());
            rss = rss.max(memory_kib("VmRSS:"));
            tokio::time::sleep(ms(50)).await;
        }
        (used, rss)
    })
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PHASE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PHASE:?}");
        tokio::time::sleep(ms(20)).await;
    }
}

async fn hostile() {
    let before_kib = memory_kib("VmRSS:");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = HeartbeatLayer::new()
        .interval(Duration::from_secs(1))
        .max_missed(2);
    let sessions = layer.resume(Resume::new().memory(BUDGET));
    let counts = Arc::new(Counts::default());
    tokio::spawn(serve(listener, sessions.clone(), counts.clone()));
    let stop = Arc::new(AtomicUsize::new(0));
    let sampler = sample(sessions.clone(), stop.clone());

    // The hostile clients, 100 at a time.
    let started = Instant::now();
    let mut hostile = Vec::with_capacity(HOSTILE);
    for batch in 0..HOSTILE / 100 {
        let clients = (0..100).map(|i| tokio::spawn(hostile_client(addr, batch * 100 + i)));
        for client in clients {
            hostile.push(client.await.unwrap());
        }
    }
    let answered =
        || counts.started.load(Ordering::SeqCst) + counts.busy.load(Ordering::SeqCst) == HOSTILE;
    until("every hostile client answered", answered).await;
    let connected_in = started.elapsed();
    let (admitted, refused) = (
        counts.started.load(Ordering::SeqCst),
        counts.busy.load(Ordering::SeqCst),
    );

    // A well-behaved client in the middle: every message once, in order.
    let url = format!("ws://{addr}/");
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut good = Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(Duration::from_secs(1)))
    .backoff(Backoff::new().initial(ms(100)).max_delay(ms(500)))
    .resume(Resume::new())
    .on_event(move |event| seen.lock().unwrap().push(event.clone()))
    .build();
    let reading = Instant::now();
    for i in 0..GOOD_MESSAGES {
        let next = tokio::time::timeout(PHASE, good.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(text)))) => {
                assert_eq!(text.trim_start(), i.to_string(), "message {i}");
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    let read_in = reading.elapsed();
    good.close().await.unwrap();
    let busy_retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Reconnecting {
                    after: Reason::ServerClosed { code: 1013, .. },
                    ..
                }
            )
        })
        .count();

    stop.store(1, Ordering::SeqCst);
    let (peak_used, peak_rss_kib) = sampler.await.unwrap();
    let hwm_kib = memory_kib("VmHWM:");
    let bound_kib = before_kib + (BUDGET >> 10) as u64 + PER_CONNECTION_KIB * HOSTILE as u64;
    println!(
        "{HOSTILE} hostile clients in {connected_in:?}: {admitted} sessions, {refused} refused \
         with 1013; budget {BUDGET} bytes, peak use {peak_used}; resident before {before_kib} \
         KiB, peak {peak_rss_kib} KiB sampled, {hwm_kib} KiB high-water mark ({} KiB of it \
         heap at most): {} KiB per client besides the budget; the good client was refused \
         {busy_retries} times, then read {GOOD_MESSAGES} messages {read_in:?} after it started",
        HEAP_PEAK.load(Ordering::Relaxed) >> 10,
        (hwm_kib.saturating_sub(before_kib + (peak_used >> 10) as u64)) / HOSTILE as u64,
    );
    assert!(peak_used <= BUDGET, "{peak_used} of {BUDGET}");
    assert!(
        peak_used > BUDGET / 2,
        "the budget was never reached: {peak_used}"
    );
    assert!(
        refused > 0,
        "no client was refused: the budget was not what bound them"
    );
    assert!(
        hwm_kib <= bound_kib,
        "peak resident {hwm_kib} KiB, over {before_kib} + the budget + {PER_CONNECTION_KIB} KiB \
         × {HOSTILE} = {bound_kib} KiB"
    );
    assert_eq!(
        counts.panics.load(Ordering::SeqCst),
        0,
        "a handler panicked"
    );
    drop(hostile);
}
