use std::future::poll_fn;
use std::task::Poll;

use super::*;

fn connection() -> Arc<Shared> {
    Arc::new(Shared::new(Duration::from_secs(1), None))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Resolves once the ticker marked `shared` due (it wakes the reader's waker).
async fn marked_due(shared: &Shared) {
    poll_fn(|cx| {
        shared.register_reader(cx.waker());
        if shared.due.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// `first` is marked due at exactly its moment (since `start`) while `second` is not
/// yet, then `second` at exactly its own.
async fn due_in_order(start: Stamp, first: (&Shared, Duration), second: (&Shared, Duration)) {
    marked_due(first.0).await;
    assert_eq!(Stamp::now().since(start), first.1);
    assert!(!second.0.due.is_set());
    marked_due(second.0).await;
    assert_eq!(Stamp::now().since(start), second.1);
}

fn tasks() -> usize {
    Handle::current().metrics().num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn due_at_the_deadline_rounded_up_to_the_millisecond() {
    // 0: a filed for 2 ms, b for 2.5 ms. 2 ms: a due, b not (never before its
    // deadline). 3 ms: b due.
    let ticker = Ticker::current();
    let start = ticker.origin;
    let (a, b) = (connection(), connection());
    ticker.file(start.add(ms(2)), false, &a);
    ticker.file(start.add(Duration::from_micros(2_500)), false, &b);
    due_in_order(start, (&a, ms(2)), (&b, ms(3))).await;
}

#[tokio::test(start_paused = true)]
async fn an_earlier_filing_wakes_the_sleeping_task() {
    // 0: a filed for 100 ms (the task sleeps until then), then b for 10 ms.
    // 10 ms: b due, a not. 100 ms: a due.
    let ticker = Ticker::current();
    let start = ticker.origin;
    let (a, b) = (connection(), connection());
    ticker.file(start.add(ms(100)), false, &a);
    tokio::task::yield_now().await;
    ticker.file(start.add(ms(10)), false, &b);
    due_in_order(start, (&b, ms(10)), (&a, ms(100))).await;
}

#[tokio::test(start_paused = true)]
async fn one_task_for_all_connections_ending_when_nothing_is_filed() {
    let ticker = Ticker::current();
    let start = ticker.origin;
    let conns: Vec<_> = (0..100).map(|_| connection()).collect();
    for (i, conn) in (0..).zip(&conns) {
        ticker.file(start.add(ms(1 + i % 7)), false, conn);
    }
    assert_eq!(tasks(), 1);
    for conn in &conns {
        marked_due(conn).await;
    }
    assert_eq!(Stamp::now().since(start), ms(7));
    // Nothing filed: the task lingers, then ends.
    tokio::time::sleep(LINGER - ms(1)).await;
    assert_eq!(tasks(), 1);
    tokio::time::sleep(ms(2)).await;
    assert_eq!(tasks(), 0);
    assert_eq!(ticker.lock().task_wakes_at, None);
    // The next filing starts a task again.
    let late = connection();
    ticker.file(Stamp::now().add(ms(5)), false, &late);
    assert_eq!(tasks(), 1);
    marked_due(&late).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_skipped_and_its_list_reused() {
    let ticker = Ticker::current();
    let start = ticker.origin;
    let gone = connection();
    ticker.file(start.add(ms(5)), false, &gone);
    drop(gone);
    let kept = connection();
    ticker.file(start.add(ms(5)), false, &kept);
    marked_due(&kept).await;
    let filed = ticker.lock();
    assert!(filed.due_at.is_empty());
    assert_eq!(filed.spare.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_late_alarm_does_not_keep_the_next_filing_from_starting_a_task() {
    // The alarm of a sleep whose task has ended (it fired on one worker while the task
    // lingered and stopped on another) runs only now, with no task.
    let ticker = Ticker::current();
    ArcWake::wake_by_ref(&ticker);
    assert_eq!(ticker.lock().task_wakes_at, None);
    let conn = connection();
    ticker.file(Stamp::now().add(ms(5)), false, &conn);
    assert_eq!(tasks(), 1);
    marked_due(&conn).await;
}

/// Marked due `n` times in a row, at these milliseconds since `start`, and not before.
async fn due_at(shared: &Shared, start: Stamp, at: &[u64]) {
    for &n in at {
        marked_due(shared).await;
        assert_eq!(Stamp::now().since(start), ms(n));
        shared.due.clear();
    }
}

#[tokio::test(start_paused = true)]
async fn a_ticks_filing_is_carried_on_by_the_interval_until_filed_elsewhere() {
    // Interval 1 s. A tick's filing at 5 ms fires there, then at 1 005 and 2 005 ms with
    // no filing in between. At 2 005 ms the connection files at 2 500 ms instead (a late
    // tick): the filing carried to 3 005 ms is no longer its own and wakes nothing.
    let ticker = Ticker::current();
    let start = ticker.origin;
    let conn = connection();
    ticker.file(start.add(ms(5)), true, &conn);
    due_at(&conn, start, &[5, 1005, 2005]).await;
    // Carried to 3 005 ms: the hub says so, once (the tick there need not file).
    assert!(conn.filed.take_carried());
    assert!(!conn.filed.take_carried());
    ticker.file(start.add(ms(2500)), true, &conn);
    due_at(&conn, start, &[2500]).await;
    tokio::time::sleep_until(ticker.instant(3100)).await;
    assert!(!conn.due.is_set());
    due_at(&conn, start, &[3500]).await;
    // The close timeout's filing fires once; the connection ends: its tick's filing fires
    // once more.
    ticker.file(start.add(ms(3600)), false, &conn);
    due_at(&conn, start, &[3600]).await;
    tokio::time::sleep(ms(2000)).await;
    assert!(!conn.due.is_set());
    ticker.file(start.add(ms(6000)), true, &conn);
    conn.filed.stop_carrying();
    due_at(&conn, start, &[6000]).await;
    tokio::time::sleep(ms(2000)).await;
    assert!(!conn.due.is_set());
    assert_eq!(ticker.filings(), 0);
    // Fired more than an interval late (the runtime was behind): marked due, not
    // carried; the late tick files its fresh schedule itself.
    ticker.file(Stamp::now().add(ms(5)), true, &conn);
    tokio::time::advance(ms(3000)).await;
    marked_due(&conn).await;
    assert_eq!(ticker.filings(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_first_tick_joins_a_moment_of_its_window_with_room() {
    // Moments filed: 5 ms (by a later tick of another connection) and, by first ticks,
    // whatever they join. Windows are (opened, opened + 99 ms].
    let ticker = Ticker::current();
    let at = |n| ticker.origin.add(ms(n));
    let kept: Vec<_> = (0..CROWD + 3).map(|_| connection()).collect();
    ticker.file(at(5), false, &kept[0]);
    // Drawn at 50 ms: nothing filed at or after it, 5 ms before it has room: 5 ms.
    assert_eq!(ticker.file_first((at(0), at(50), at(99)), &kept[1]), at(5));
    for conn in &kept[2..CROWD] {
        assert_eq!(ticker.file_first((at(0), at(70), at(99)), conn), at(5));
    }
    // 5 ms holds CROWD: the draw stands.
    assert_eq!(
        ticker.file_first((at(0), at(50), at(99)), &kept[CROWD]),
        at(50)
    );
    // The first moment with room at or after the draw: 50 ms, not 5 ms.
    assert_eq!(
        ticker.file_first((at(0), at(20), at(99)), &kept[CROWD + 1]),
        at(50)
    );
    // Opened at 50 ms: 50 ms is not strictly after, 5 ms is outside; a sub-millisecond
    // draw files at its millisecond, rounded up, and returns the draw itself.
    let drawn = at(60).add(Duration::from_micros(500));
    assert_eq!(
        ticker.file_first((at(50), drawn, at(149)), &kept[CROWD + 2]),
        drawn
    );
    let filed = ticker.lock();
    let sizes: Vec<(u64, usize)> = filed.due_at.iter().map(|(&k, l)| (k, l.len())).collect();
    assert_eq!(sizes, [(5, CROWD), (50, 2), (61, 1)]);
}

#[test]
fn one_ticker_per_runtime() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    };
    let (one, two) = (runtime(), runtime());
    let a = one.block_on(async { Ticker::current() });
    let b = one.block_on(async { Ticker::current() });
    let c = two.block_on(async { Ticker::current() });
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
    // The same through this thread's last ticker, the runtimes taking turns on it: each
    // filing gets its own runtime's.
    let current = || Ticker::with_current(Arc::clone);
    for _ in 0..2 {
        assert!(Arc::ptr_eq(&one.block_on(async { current() }), &a));
        assert!(Arc::ptr_eq(&one.block_on(async { current() }), &a));
        assert!(Arc::ptr_eq(&two.block_on(async { current() }), &c));
    }
}
