//! One timer per runtime, shared by every heartbeat on it.
//!
//! A tokio `Sleep` per connection would nearly double the adapter's own fields.
//! Yet ticks fall on few distinct moments (first ticks on a grid of 128 per interval, see
//! `random`, then every interval), so connections share timers instead: each connection
//! files itself under the millisecond at which it is next due, and one task per runtime
//! sleeps until the earliest filed millisecond; when the runtime's timer reaches it, every
//! connection filed there is marked due and woken, from inside the timer (the alarm below).
//! A connection costs the ticker 8 bytes (a weak pointer) while it waits.
//!
//! The task runs only while some connection is filed: it ends when the last filing has
//! fired, and the next filing starts it again. A filing is never taken back: a connection
//! that moves its deadline files again, and the old filing, no longer the one its hub
//! names, is dropped when it fires. A tick's filing, when it fires, is carried on by the
//! interval (`carry`), so that a tick on time files nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Context;
use std::time::Duration;

use futures_util::future;
use futures_util::task::{ArcWake, AtomicWaker};
use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::stamp::Stamp;
use crate::wake::Shared;

/// Emptied lists kept for reuse, at most: enough for every distinct moment of a busy server
/// (128 per interval in use), so that filing allocates nothing in steady state.
const SPARE_LISTS: usize = 1024;

/// How long the task waits for a filing once nothing is filed, before it ends. Longer than
/// the moment between firing a connection and its filing again, so that a lone connection
/// does not start a task per tick.
const LINGER: Duration = Duration::from_secs(1);

/// The most connections a new connection's first tick joins at a moment already filed
/// (`Ticker::file_first`): a moment's wake-up then runs a burst of about a millisecond or two.
const CROWD: usize = 1024;

/// `task_wakes_at` of a task that runs with nothing filed.
const IDLE: u64 = u64::MAX;

/// The tickers of the runtimes that have heartbeats, by runtime.
static TICKERS: Mutex<Vec<(Id, Weak<Ticker>)>> = Mutex::new(Vec::new());

thread_local! {
    /// The ticker this thread looked up last, with its runtime: a filing takes it from here
    /// when its runtime is the same, without `TICKERS`' lock, which every worker shares.
    /// (A connection keeps no pointer to its ticker: 8 bytes per connection.)
    static LAST: RefCell<Option<(Id, Arc<Ticker>)>> = const { RefCell::new(None) };
}

pub(crate) struct Ticker {
    /// Millisecond 0 of the filings.
    origin: Stamp,
    filed: Mutex<Filed>,
    /// Tells the sleeping task that a connection filed itself before the moment it sleeps
    /// until.
    earlier: Notify,
    /// The task, woken by the alarm (see `ArcWake for Ticker`) to sleep until the next
    /// filing.
    task: AtomicWaker,
}

#[derive(Default)]
struct Filed {
    /// Connections by the millisecond, counted from `origin`, at which they are due.
    due_at: BTreeMap<u64, Vec<Weak<Shared>>>,
    spare: Vec<Vec<Weak<Shared>>>,
    /// The lists being fired, by their millisecond, and the carried filings that did not
    /// go where the rest of their list went: kept for the next firing's reuse.
    fired: Vec<(u64, Vec<Weak<Shared>>)>,
    odd: Vec<(u64, Weak<Shared>)>,
    /// The millisecond the task sleeps until (`IDLE` while nothing is filed); `None` while
    /// no task runs.
    task_wakes_at: Option<u64>,
}

impl Ticker {
    /// `f` with the ticker of the current runtime: the one this thread used last if its
    /// runtime is the same (one look at the runtime's id), else from the table.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::time::sleep`.
    pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<Ticker>) -> R) -> R {
        let runtime = runtime_id();
        let mut f = Some(f);
        let ran = LAST.try_with(|last| {
            let mut last = last.borrow_mut();
            let ticker = match &*last {
                Some((id, ticker)) if *id == runtime => ticker,
                _ => &last.insert((runtime, Self::of(runtime))).1,
            };
            f.take().map(|f| f(ticker))
        });
        match (ran, f) {
            (Ok(Some(out)), _) => out,
            // The thread is exiting (its locals are gone), so `f` did not run: the table's.
            (_, f) => f.expect("`f` runs once")(&Self::of(runtime)),
        }
    }

    /// The ticker of the current runtime, from the table.
    #[cfg(test)]
    pub(crate) fn current() -> Arc<Ticker> {
        Self::of(runtime_id())
    }

    fn of(runtime: Id) -> Arc<Ticker> {
        let mut tickers = TICKERS.lock().unwrap_or_else(PoisonError::into_inner);
        // A runtime id is reused once its runtime is gone; a ticker kept alive by a connection
        // of that old runtime may count from an origin this runtime's clock has not reached
        // (a paused clock advanced far), and must not be shared: forget it here.
        let now = Stamp::now();
        tickers.retain(|(id, ticker)| {
            ticker
                .upgrade()
                .is_some_and(|ticker| *id != runtime || ticker.origin <= now)
        });
        let found = tickers
            .iter()
            .find(|(id, _)| *id == runtime)
            .and_then(|(_, ticker)| ticker.upgrade());
        found.unwrap_or_else(|| {
            let ticker = Arc::new(Ticker {
                origin: now,
                filed: Mutex::default(),
                earlier: Notify::new(),
                task: AtomicWaker::new(),
            });
            tickers.push((runtime, Arc::downgrade(&ticker)));
            ticker
        })
    }

    /// Marks `shared` due (and wakes its connection) once `deadline` has passed; a tick's
    /// filing (`periodic`) is then carried on by the interval (see `carry`).
    pub(crate) fn file(self: &Arc<Self>, deadline: Stamp, periodic: bool, shared: &Arc<Shared>) {
        let ms = self.ms_after(deadline);
        let filed = self.lock();
        self.file_at(filed, ms, periodic, shared);
    }

    /// A new connection's first tick, drawn at `drawn` among the moments of its first
    /// interval `(opened, latest]`: filed instead at a moment of that window where others
    /// are filed already, if one holds fewer than `CROWD` filings (the first at or after
    /// `drawn`, else the last before it). Returns the deadline filed.
    ///
    /// Each moment the timer fires costs the runtime a wake-up of its workers whatever
    /// the number of connections it wakes, so few connections should not spread over all
    /// the grid's moments. Many do: once every moment of the window holds `CROWD`, a first
    /// tick keeps its draw, so a moment's burst stays about `CROWD` connections.
    pub(crate) fn file_first(
        self: &Arc<Self>,
        (opened, drawn, latest): (Stamp, Stamp, Stamp),
        shared: &Arc<Shared>,
    ) -> Stamp {
        // Whole milliseconds strictly after `opened`, and not after `latest`.
        let first = self.ms_after(opened.add(Duration::from_nanos(1)));
        let last = millis(latest.since(self.origin));
        let ms = self.ms_after(drawn);
        let filed = self.lock();
        let has_room = |(&at, list): (&u64, &Vec<Weak<Shared>>)| (list.len() < CROWD).then_some(at);
        let joined = if first <= ms && ms <= last {
            (filed.due_at.range(ms..=last).find_map(has_room))
                .or_else(|| filed.due_at.range(first..ms).rev().find_map(has_room))
        } else {
            None
        };
        let Some(joined) = joined else {
            self.file_at(filed, ms, true, shared);
            return drawn;
        };
        self.file_at(filed, joined, true, shared);
        self.origin.add(Duration::from_millis(joined))
    }

    /// The millisecond, counted from the origin, at which `deadline` has passed: rounded up,
    /// so that a connection is never due before its deadline.
    fn ms_after(&self, deadline: Stamp) -> u64 {
        millis(deadline.since(self.origin) + Duration::from_nanos(999_999))
    }

    /// Under the lock: the filing becomes the connection's one (older ones are stale) and
    /// goes in its millisecond's list.
    fn file_at(
        self: &Arc<Self>,
        mut filed: MutexGuard<'_, Filed>,
        ms: u64,
        periodic: bool,
        shared: &Arc<Shared>,
    ) {
        shared.filed.store(code(ms, periodic), Relaxed);
        let Filed { due_at, spare, .. } = &mut *filed;
        due_at
            .entry(ms)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(Arc::downgrade(shared));
        self.start_or_notify(filed, ms);
    }

    /// After filing at `ms`: start the task if none runs, or tell it to wake earlier.
    fn start_or_notify(self: &Arc<Self>, mut filed: MutexGuard<'_, Filed>, ms: u64) {
        match filed.task_wakes_at {
            None => {
                filed.task_wakes_at = Some(ms);
                drop(filed);
                tokio::spawn(run(Arc::clone(self)));
            }
            Some(wakes_at) if ms < wakes_at => {
                filed.task_wakes_at = Some(ms);
                drop(filed);
                self.earlier.notify_one();
            }
            Some(_) => {}
        }
    }

    /// Filings waiting to fire (stale ones included).
    #[cfg(test)]
    pub(crate) fn filings(&self) -> usize {
        self.lock().due_at.values().map(Vec::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Filed> {
        // Nothing panics while the lock is held; should it, the filings are still sound.
        self.filed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks due, and wakes, every connection filed at or before `now`, and carries their
    /// ticks' filings on by an interval (`carry`). Returns the millisecond to sleep until
    /// next, or `None` if nothing is filed any more. The task notes that millisecond as the
    /// one it sleeps until (`Firing::Task`); the alarm must not: it may run late, after the
    /// task ended, and would make the next filing believe a task is running.
    fn fire(self: &Arc<Self>, now: Stamp, by: Firing) -> Option<u64> {
        let now_ms = millis(now.since(self.origin));
        let mut filed = self.lock();
        let mut fired = std::mem::take(&mut filed.fired);
        let mut odd = std::mem::take(&mut filed.odd);
        while let Some(entry) = filed.due_at.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            fired.push(entry.remove_entry());
        }
        drop(filed);
        // Outside the lock: a woken connection may run at once and file again. Each list
        // keeps the filings carried to where its first carried one goes (a list's
        // connections mostly share an interval); the others go to `odd`.
        for (ms, list) in &mut fired {
            let at = *ms;
            let mut to = None;
            list.retain(|weak| {
                let Some(shared) = weak.upgrade() else {
                    return false;
                };
                let keep = match carry(&shared, at, now_ms) {
                    Fired::Stale => return false,
                    Fired::Once => false,
                    Fired::Carried(next) if *to.get_or_insert(next) == next => true,
                    Fired::Carried(next) => {
                        odd.push((next, weak.clone()));
                        false
                    }
                };
                shared.mark_due();
                keep
            });
            *ms = to.unwrap_or(at);
        }
        let mut filed = self.lock();
        let Filed {
            due_at,
            spare,
            task_wakes_at,
            ..
        } = &mut *filed;
        let mut earliest = None::<u64>;
        for (ms, mut list) in fired.drain(..) {
            if !list.is_empty() {
                earliest = Some(earliest.map_or(ms, |e| e.min(ms)));
                match due_at.entry(ms) {
                    Entry::Vacant(vacant) => {
                        vacant.insert(list);
                        continue;
                    }
                    Entry::Occupied(mut occupied) => occupied.get_mut().append(&mut list),
                }
            }
            if spare.len() < SPARE_LISTS {
                spare.push(list);
            }
        }
        for (ms, weak) in odd.drain(..) {
            earliest = Some(earliest.map_or(ms, |e| e.min(ms)));
            due_at
                .entry(ms)
                .or_insert_with(|| spare.pop().unwrap_or_default())
                .push(weak);
        }
        let next = due_at.first_key_value().map(|(&ms, _)| ms);
        if by == Firing::Task {
            *task_wakes_at = Some(next.unwrap_or(IDLE));
        }
        (filed.fired, filed.odd) = (fired, odd);
        // The alarm, with no task running (it ended, or was dropped with its runtime): the
        // carried filings need one.
        if let (None, Some(earliest)) = (filed.task_wakes_at, earliest) {
            self.start_or_notify(filed, earliest);
        }
        next
    }

    /// Ends the task if nothing was filed while it lingered. An idle ticker gives back the
    /// lists it kept for reuse: their capacity is that of the busiest moments it had.
    fn stop_if_idle(&self) -> bool {
        let mut filed = self.lock();
        let idle = filed.due_at.is_empty();
        if idle {
            filed.task_wakes_at = None;
            let kept = (
                std::mem::take(&mut filed.spare),
                std::mem::take(&mut filed.fired),
                std::mem::take(&mut filed.odd),
            );
            drop(filed);
            drop(kept);
        }
        idle
    }

    fn instant(&self, ms: u64) -> Instant {
        Instant::from_std(self.origin.add(Duration::from_millis(ms)).instant())
    }
}

fn runtime_id() -> Id {
    Handle::try_current()
        .expect("a heartbeat must be polled inside a tokio runtime (it needs its timer)")
        .id()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A filing as its connection's hub records it (`Shared::filed`): `FILED`, its millisecond
/// (modulo 2^29, 6 days: a connection's filings fire within two, so equal milliseconds are
/// the same filing), `PERIODIC` if it is a tick's, which the ticker carries on by an interval
/// when it fires, and `CARRIED` once it did. Zero: never filed.
fn code(ms: u64, periodic: bool) -> u32 {
    FILED | ((ms as u32) << 2 & MOMENT) | if periodic { PERIODIC } else { 0 }
}

/// A tick's filing (cleared when the connection ends: `Shared::stop_carrying`).
pub(crate) const PERIODIC: u32 = 1;
/// The ticker carried the filing on by an interval: the connection's next tick is filed
/// (`Shared::take_carried`).
pub(crate) const CARRIED: u32 = 1 << 1;
/// The bits of the millisecond.
const MOMENT: u32 = !(FILED | CARRIED | PERIODIC);
/// Set in every filing's code: the connection filed at least once.
const FILED: u32 = 1 << 31;

/// What firing a filing made of it.
enum Fired {
    /// The connection filed again since: its filing is another one, which will wake it.
    Stale,
    /// The close timeout's, or a tick's the connection moved meanwhile: woken, not carried.
    Once,
    /// A tick's: woken, and filed again an interval later, at this millisecond.
    Carried(u64),
}

/// A connection's filing at `ms` fires. A tick's is carried on: filed again at `ms` plus the
/// interval, where the connection's next tick falls when this one runs on time. The
/// connection then need not file at its tick, which on a busy server saves every tick a
/// turn at the ticker's lock, shared by all workers. If the tick runs late (the schedule
/// restarts) or its interval changed, the connection files where its deadline is, and this
/// carried filing, no longer its own, is dropped without a wake when it fires (`Stale`).
///
/// The interval is rounded up to the millisecond: the carried filing is never earlier than
/// the next tick, so it never wakes the connection for nothing. A filing fired more than an
/// interval late (`now_ms`: the runtime is behind) is not carried: the tick will restart the
/// schedule, and the carried filing would already be due, to be carried again at once.
fn carry(shared: &Shared, ms: u64, now_ms: u64) -> Fired {
    let code_now = shared.filed.load(Acquire);
    if code_now & MOMENT != code(ms, false) & MOMENT {
        return Fired::Stale;
    }
    if code_now & PERIODIC == 0 {
        return Fired::Once;
    }
    let interval = shared.interval();
    let next = ms + millis(interval + Duration::from_nanos(999_999)).max(1);
    if next <= now_ms {
        return Fired::Once;
    }
    match shared
        .filed
        .compare_exchange(code_now, code(next, true) | CARRIED, AcqRel, Acquire)
    {
        Ok(_) => Fired::Carried(next),
        // The connection filed meanwhile: its new filing stands.
        Err(_) => Fired::Once,
    }
}

/// The ticker's task: sleeps until the earliest filing and fires what is due; ends once
/// nothing was filed for `LINGER`.
async fn run(ticker: Arc<Ticker>) {
    // Dropped with its runtime in the middle of a sleep: let the next filing start a task.
    let mut on_drop = Restart(Some(&ticker));
    let alarm = futures_util::task::waker(Arc::clone(&ticker));
    let mut wakes_at = ticker.lock().task_wakes_at.filter(|&ms| ms != IDLE);
    loop {
        let earlier = pin!(ticker.earlier.notified());
        match wakes_at {
            Some(ms) => {
                let mut sleep = pin!(tokio::time::sleep_until(ticker.instant(ms)));
                let alarm = poll_fn(|cx| {
                    ticker.task.register(cx.waker());
                    sleep.as_mut().poll(&mut Context::from_waker(&alarm))
                });
                future::select(pin!(alarm), earlier).await;
            }
            None => {
                if tokio::time::timeout(LINGER, earlier).await.is_err() && ticker.stop_if_idle() {
                    break;
                }
            }
        }
        // Usually the alarm fired already, and this finds nothing due.
        wakes_at = ticker.fire(Stamp::now(), Firing::Task);
    }
    on_drop.0 = None;
}

/// Who fires: the task, or the alarm from inside the runtime's timer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Firing {
    Task,
    Alarm,
}

/// The alarm: the task's sleep wakes this instead of the task, so that the connections are
/// woken from inside the runtime's timer, as a `tokio::time::Sleep` of their own would be.
/// The difference is the runtime's: a wake-up from a task tells an idle worker at once, one
/// from the timer tells it once for the whole batch (ARCHITECTURE.md, "The shared timer";
/// counts in BENCHMARKS.md, "Measurements behind design choices").
impl ArcWake for Ticker {
    fn wake_by_ref(ticker: &Arc<Self>) {
        ticker.fire(Stamp::now(), Firing::Alarm);
        ticker.task.wake();
    }
}

struct Restart<'a>(Option<&'a Ticker>);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if let Some(ticker) = self.0 {
            ticker.lock().task_wakes_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use super::*;

    fn connection() -> Arc<Shared> {
        Arc::new(Shared::new(Duration::from_secs(1)))
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
        assert!(conn.take_carried());
        assert!(!conn.take_carried());
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
        conn.stop_carrying();
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
}
