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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Context;
use std::time::Duration;

use futures_util::future;
use futures_util::task::{ArcWake, AtomicWaker};
use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::filing::Fired;
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
        shared.filed.file(ms, periodic);
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

    /// Marks due, and wakes, every connection filed with any runtime's ticker for which
    /// `wanted` holds (a drain's: the members of its group that have not taken their moment).
    /// The connections are collected under each ticker's lock and woken outside it. A
    /// connection whose filing is being fired at that moment is missed here, and woken by
    /// the firing.
    pub(crate) fn wake_where(wanted: impl Fn(&Shared) -> bool) {
        let tickers: Vec<Arc<Ticker>> = TICKERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(_, ticker)| ticker.upgrade())
            .collect();
        for ticker in tickers {
            let found: Vec<Arc<Shared>> = ticker
                .lock()
                .due_at
                .values()
                .flatten()
                .filter_map(Weak::upgrade)
                .filter(|shared| wanted(shared))
                .collect();
            for shared in found {
                shared.mark_due();
            }
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
                let keep = match shared.filed.carry(at, now_ms, shared.interval()) {
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
mod tests;
