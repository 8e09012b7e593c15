//! Soak: 2 000 WebSocket connections on 127.0.0.1 for 30 s, heartbeat 500 ms with 3 missed
//! (dead within 2 s of a peer's last frame). A random tenth of the clients freeze at random
//! times: each is declared dead within the bound, no live client ever is, and once every
//! connection has ended no task is left and memory is back near where it started. Real time,
//! bounded: 30 s of traffic, everything else waits at most 10 s.
//!
//! A frozen client's last frame came at most one interval before it froze, and 2 000
//! connections on two cores add scheduling delay: from the freeze, a death is expected in
//! (1 000 ms, 2 000 ms + 500 ms].
//!
//! The memory figure is the whole process's (a counting global allocator): the code under
//! test runs on the runtime's worker and blocking threads, so a per-thread count would miss
//! it. Nothing else can move it: this binary has this one test, and the only other thread,
//! the test harness's, waits for it (its "running for over 60 seconds" note allocates a few
//! bytes, against a bound of 1 MiB). The figure is the net bytes still allocated, so what
//! any thread allocates and frees in between does not count.
//!
//! Both ends of the 2 000 connections live in this process: 4 000 sockets. A normal user's
//! soft limit of open files is often 1 024, so the test raises its own soft limit (as
//! `ulimit -n` would) up to the hard limit; if the hard limit is too low it fails and says
//! so.

mod support;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tower::Layer;
use ws_heartbeat::{Dead, HeartbeatLayer};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::ms;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CLIENTS: usize = 2_000;
const SOAK: Duration = Duration::from_secs(30);
const INTERVAL: Duration = ms(500);

/// How each connection ended on the server: dead (when) or closed.
type Outcomes = Arc<Mutex<HashMap<usize, Result<(), Instant>>>>;

/// Tasks alive on the current runtime.
fn runtime_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[test]
fn two_thousand_connections_with_a_frozen_tenth() {
    // Two sockets per connection, and a margin for the runtime, the listener and stdio.
    support::allow_open_files(2 * CLIENTS as u64 + 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Warm the runtime's own structures up, then measure the soak alone.
    runtime.block_on(async { tokio::time::sleep(ms(10)).await });
    let region = Region::new(GLOBAL);
    runtime.block_on(soak(runtime.handle().clone()));
    // A server task records its outcome just before it ends: give the last ones a moment
    // (bounded) to be released.
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while runtime_tasks() > 0 && Instant::now() < deadline {
            tokio::time::sleep(ms(10)).await;
        }
    });
    let alive = runtime.metrics().num_alive_tasks();
    let change = region.change();
    let net = change.bytes_allocated as i64 - change.bytes_deallocated as i64;
    println!(
        "after every connection ended: {alive} tasks alive; {} allocations, {} MiB allocated in all, \
         {net} bytes still allocated",
        change.allocations,
        change.bytes_allocated >> 20
    );
    assert_eq!(alive, 0, "a task outlived its connection");
    // A leak of even 512 bytes per connection would leave 1 MiB.
    assert!(
        net < 1 << 20,
        "{net} bytes still allocated after all connections ended"
    );
}

async fn soak(runtime: tokio::runtime::Handle) {
    let rss_before = support::memory_kib("VmRSS:");
    let tasks_before = runtime.metrics().num_alive_tasks();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let outcomes: Outcomes = Arc::default();
    let layer = HeartbeatLayer::new().interval(INTERVAL).max_missed(3);

    // The server: each connection says which client it is, then is echoed.
    let recorded = outcomes.clone();
    let server = tokio::spawn(async move {
        for _ in 0..CLIENTS {
            let (tcp, _) = listener.accept().await.unwrap();
            let (layer, recorded) = (layer.clone(), recorded.clone());
            tokio::spawn(async move {
                let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut ws = layer.layer(ws);
                let Some(Ok(Message::Text(id))) = ws.next().await else {
                    panic!("no id")
                };
                let id: usize = id.parse().unwrap();
                let outcome = loop {
                    match ws.next().await {
                        Some(Ok(msg)) if msg.is_text() => {
                            if ws.send(msg).await.is_err() {
                                break Ok(());
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(err)) if Dead::find(&err).is_some() => break Err(Instant::now()),
                        Some(Err(_)) | None => break Ok(()),
                    }
                };
                recorded.lock().unwrap().insert(id, outcome);
            });
        }
    });

    // The clients: a tenth freeze at a random moment of the soak; the rest talk and answer
    // until the end, then close.
    let random = RandomState::new();
    let started = Instant::now();
    let mut frozen_at = HashMap::new();
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let freeze = (random.hash_one(id) % 10 == 0).then(|| {
            let after = ms(1000 + random.hash_one((id, "when")) % (SOAK.as_millis() as u64 - 5000));
            started + after
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap();
        ws.send(Message::text(id.to_string())).await.unwrap();
        let frozen = Arc::new(Mutex::new(None));
        if freeze.is_some() {
            frozen_at.insert(id, frozen.clone());
        }
        clients.push(tokio::spawn(async move {
            let end = started + SOAK;
            let stop = freeze.unwrap_or(end);
            let mut every = tokio::time::interval(ms(1000 + (id as u64 % 1000)));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(stop.into()) => break,
                    _ = every.tick() => {
                        if ws.send(Message::text("x")).await.is_err() {
                            panic!("client {id}: send failed");
                        }
                    }
                    msg = ws.next() => match msg {
                        Some(Ok(_)) => {}
                        other => panic!("client {id}: connection lost: {other:?}"),
                    },
                }
            }
            if freeze.is_some() {
                // Frozen: hold the connection, read nothing, answer nothing, until the soak
                // is over.
                *frozen.lock().unwrap() = Some(Instant::now());
                tokio::time::sleep_until(end.into()).await;
                drop(ws);
            } else {
                ws.close(None).await.unwrap();
                while ws.next().await.is_some() {}
            }
        }));
    }
    println!("{CLIENTS} connections open after {:?}", started.elapsed());
    for client in clients {
        tokio::time::timeout(SOAK + Duration::from_secs(10), client)
            .await
            .expect("bounded")
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("bounded")
        .unwrap();
    // Every server task records its outcome as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while outcomes.lock().unwrap().len() < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "{} connections never ended",
            CLIENTS - outcomes.lock().unwrap().len()
        );
        tokio::time::sleep(ms(50)).await;
    }

    let outcomes = outcomes.lock().unwrap();
    let mut detection = Vec::new();
    for (id, outcome) in outcomes.iter() {
        match (frozen_at.get(id), outcome) {
            (Some(frozen), Err(dead_at)) => {
                let frozen = frozen.lock().unwrap().expect("it froze");
                let after = *dead_at - frozen;
                assert!(
                    after > ms(1000) && after <= ms(2500),
                    "client {id}: dead {after:?} after freezing"
                );
                detection.push(after);
            }
            (Some(_), Ok(())) => panic!("frozen client {id} was never declared dead"),
            (None, Err(_)) => panic!("live client {id} was declared dead"),
            (None, Ok(())) => {}
        }
    }
    detection.sort();
    let rss_after = support::memory_kib("VmRSS:");
    println!(
        "{} frozen clients, each dead {:?} to {:?} (median {:?}) after freezing; {} live clients, \
         none dead; RSS {rss_before} KiB before, {rss_after} KiB after; tasks before {tasks_before}",
        detection.len(),
        detection.first().unwrap(),
        detection.last().unwrap(),
        detection[detection.len() / 2],
        CLIENTS - detection.len(),
    );
    assert!(
        detection.len() >= CLIENTS / 20,
        "too few frozen clients: {}",
        detection.len()
    );
}
