//! The overload made visible: `tick_lag()` and the rate-limited `tracing` warning. One test
//! alone in its binary, because both are process-wide.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures_util::{FutureExt, StreamExt};
use tokio::time::{Instant, sleep_until};

use support::*;

/// Where the test's subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The `late_ticks` field of each warning about late ticks.
    fn warnings(&self) -> Vec<u64> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|line| line.contains("ticks run late"))
            .map(|line| {
                let field = line.split("late_ticks=").nth(1).expect("late_ticks field");
                field.split_whitespace().next().unwrap().parse().unwrap()
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn late_ticks_are_counted_and_warned_about_at_most_once_every_ten_seconds() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    assert_eq!(ws_heartbeat::tick_lag(), Default::default());

    // A runtime that keeps up: the handler runs every 0.5 s for 5 s, its peer answers.
    // Ticks run on time (to the millisecond): nothing late, nothing said.
    let start = Instant::now();
    let (mut ws, mut peer) = pair(one_second()).await;
    tokio::spawn(async move { while let Some(Ok(_)) = peer.next().await {} });
    for run in 0..=10u32 {
        sleep_until(start + ms(500) * run).await;
        assert!(ws.next().now_or_never().is_none());
    }
    let lag = ws_heartbeat::tick_lag();
    assert_eq!((lag.late_ticks, lag.worst), (0, ms(0)));
    assert!(captured.warnings().is_empty());

    // Then it falls behind: the handler runs only every 2.5 s, from 7.5 s to 35 s (12 runs).
    // Each run's tick is 1.5 s late (a fresh schedule a full interval after each late tick;
    // the first, due at 6 s, runs at 7.5 s). Warnings at 7.5 s, then at the first late
    // tick at least 10 s later: 17.5 s and 27.5 s, each counting the late ticks since the
    // previous warning.
    for run in 3..=14u32 {
        sleep_until(start + ms(2500) * run).await;
        assert!(ws.next().now_or_never().is_none(), "run {run}");
    }
    let lag = ws_heartbeat::tick_lag();
    assert_eq!(lag.late_ticks, 12);
    assert_eq!((lag.latest, lag.worst), (ms(1500), ms(1500)));
    assert_eq!(captured.warnings(), vec![1, 4, 4]);
    assert_eq!(ws.handle().stats().missed, 0);

    // A shorter interval is not lateness. 35 s: the last tick; the next is due at 36 s.
    // 35.8 s: the interval becomes 0.5 s, which moves the next tick to 35.5 s, already past:
    // it runs at once, 0.3 s after its moved time, and is not counted as late. Then ticks at
    // 36, 36.5, 37 and 37.5 s, on time, the handler running every 0.1 s until 37.8 s.
    // Pings: 5 (up to 5 s) + 12 (the late ticks) + 5.
    sleep_until(start + ms(35_800)).await;
    ws.handle().set_interval(ms(500));
    for run in 0..=20u32 {
        sleep_until(start + ms(35_800) + ms(100) * run).await;
        assert!(ws.next().now_or_never().is_none(), "run {run}");
    }
    assert_eq!(ws.handle().stats().pings_sent, 5 + 12 + 5);
    assert_eq!(ws_heartbeat::tick_lag().late_ticks, 12);
}
