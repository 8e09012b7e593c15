//! A runtime that falls behind: the handler's task gets to run only now and then, so every
//! tick runs late. The rule (ARCHITECTURE.md, "Ticks and the schedule", Late ticks; the crate docs, Overload): a late
//! tick reads what arrived before it judges, counts at most one miss, and the lateness
//! moves detection by no more than `(max_missed + 1) × (interval + lateness)`.
//!
//! The stalled runtime is the test itself: it holds the server's end and polls it once at
//! each moment it "gets to run", on tokio's paused clock; the ticker and the peer run freely
//! in between. Interval 1 s, no jitter: the first tick is due at 1 s.

mod support;

use futures_util::{FutureExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use ws_heartbeat::{Dead, Heartbeat};

use support::*;

/// The handler's task runs once at `at`: what its read returned, if it returned.
async fn run_at(ws: &mut Heartbeat<Ws>, at: Instant) -> Option<Option<Result<Message, WsError>>> {
    sleep_until(at).await;
    ws.next().now_or_never()
}

/// A peer that reads, and so answers every ping at once (tungstenite sends the pong).
fn answering(mut peer: Ws) {
    tokio::spawn(async move { while let Some(Ok(_)) = peer.next().await {} });
}

#[tokio::test(start_paused = true)]
async fn an_answering_peer_survives_a_runtime_that_runs_every_two_and_a_half_intervals() {
    // One miss is death here, so a single answer judged before it was read would kill.
    // The handler runs at 0 s and then only every 2.5 s; the peer answers at once.
    // 2.5 s: the tick due at 1 s runs 1.5 s late: alive (the handshake), ping 1, the next
    //        tick a full interval later: 3.5 s (after a stall longer than an interval).
    //        The peer answers ping 1 at once, but the handler is not running.
    // 5 s:   the tick of 3.5 s, 1.5 s late, reads pong 1 first: alive, ping 2, next 6 s.
    // ... and so on every 2.5 s: 20 runs, 20 pings, 19 answers read, no miss.
    let start = Instant::now();
    let (mut ws, peer) = pair(one_second().max_missed(1)).await;
    answering(peer);
    let handle = ws.handle();
    assert!(run_at(&mut ws, start).await.is_none());
    for run in 1..=20u32 {
        let got = run_at(&mut ws, start + ms(2500) * run).await;
        assert!(got.is_none(), "run {run}: {got:?}");
        let stats = handle.stats();
        assert_eq!(stats.missed, 0, "run {run}");
        assert_eq!(stats.pings_sent, u64::from(run));
        assert_eq!(stats.pongs_received, u64::from(run - 1));
    }
}

/// Runs the handler every `every` from the start until it reports its peer dead; returns
/// when that was and the death.
async fn run_every_until_dead(
    ws: &mut Heartbeat<Ws>,
    every: std::time::Duration,
) -> (Instant, Dead) {
    let start = Instant::now();
    for run in 0..100u32 {
        if let Some(item) = run_at(ws, start + every * run).await {
            let err = item.expect("an item").expect_err("no data");
            return (Instant::now(), *Dead::find(&err).expect("Dead"));
        }
    }
    panic!("not dead after 100 runs");
}

#[tokio::test(start_paused = true)]
async fn a_frozen_peer_is_found_late_by_the_runtime_s_lateness_and_no_more() {
    // The peer never reads (frozen since the handshake). Bound on time: 4 s. The handler
    // runs every 2.5 s, so every tick runs 1.5 s late:
    // 2.5 s: tick of 1 s: alive (the handshake), ping 1; next 3.5 s (a full interval).
    // 5 s: tick of 3.5 s: missed 1; next 6 s.  7.5 s: missed 2; next 8.5 s.
    // 10 s: missed 3: dead. (max_missed + 1) × (interval + lateness) = 4 × 2.5 s = 10 s.
    let start = Instant::now();
    let (mut ws, _frozen) = pair(one_second()).await;
    let (at, dead) = run_every_until_dead(&mut ws, ms(2500)).await;
    assert_eq!(at - start, ms(10_000));
    assert_eq!((dead.missed(), dead.silent_for()), (3, ms(7500)));
}

#[tokio::test(start_paused = true)]
async fn a_frozen_peer_is_found_one_lateness_late_while_ticks_are_less_than_an_interval_late() {
    // The handler runs every 1.5 s; lateness alternates 0.5 s and 1 s:
    // 1.5 s: tick of 1 s (0.5 s late): alive, ping 1; the schedule keeps its grid: 2 s.
    // 3 s: tick of 2 s, a full interval late: missed 1; a fresh schedule: 4 s.
    // 4.5 s: tick of 4 s: missed 2; next 5 s.  6 s: tick of 5 s: missed 3: dead.
    // Within 4 × (1 s + 1 s) = 8 s; 2 s after the bound of 4 s.
    let start = Instant::now();
    let (mut ws, _frozen) = pair(one_second()).await;
    let (at, dead) = run_every_until_dead(&mut ws, ms(1500)).await;
    assert_eq!(at - start, ms(6000));
    assert_eq!((dead.missed(), dead.silent_for()), (3, ms(4500)));
}

#[tokio::test(start_paused = true)]
async fn a_frozen_peer_is_found_exactly_on_time_by_a_runtime_that_keeps_up() {
    // The same handler run every 0.5 s: every tick on time, dead at 4 s exactly.
    let start = Instant::now();
    let (mut ws, _frozen) = pair(one_second()).await;
    let (at, dead) = run_every_until_dead(&mut ws, ms(500)).await;
    assert_eq!(at - start, ms(4000));
    assert_eq!((dead.missed(), dead.silent_for()), (3, ms(3000)));
}

#[tokio::test(start_paused = true)]
async fn a_send_only_handler_reads_before_its_late_tick_judges() {
    // The writing side runs the tick of a handler that never reads: it reads the pong
    // first, as the reader would. One miss is death; the handler flushes every 2.5 s.
    // 2.5 s: tick of 1 s: alive, ping 1. 5 s: the tick of 3.5 s reads pong 1: alive.
    use futures_util::SinkExt;
    let start = Instant::now();
    let (mut ws, peer) = pair(one_second().max_missed(1)).await;
    answering(peer);
    let handle = ws.handle();
    for run in 0..=20u32 {
        sleep_until(start + ms(2500) * run).await;
        let flushed = ws.flush().now_or_never();
        assert!(matches!(flushed, Some(Ok(()))), "run {run}: {flushed:?}");
        assert_eq!(handle.stats().missed, 0, "run {run}");
        assert_eq!(
            handle.stats().pongs_received,
            u64::from(run.saturating_sub(1))
        );
    }
}
