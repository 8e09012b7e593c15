//! One timer per runtime, shared by every heartbeat on it.
//!
//! A tokio `Sleep` costs 112 bytes, as much as the rest of a connection's heartbeat state.
//! Yet ticks fall on few distinct moments (first ticks on a grid of 128 per interval, see
//! `random`, then every interval), so connections share timers instead: each connection
//! files itself under the millisecond at which it is next due, and one task per runtime
//! sleeps until the earliest filed millisecond, marks every connection filed there as due
//! and wakes it. A connection costs the ticker 8 bytes (a weak pointer) while it waits.
//!
//! The task runs only while some connection is filed: it ends when the last filing has
//! fired, and the next filing starts it again. A filing is never taken back: a connection
//! that moves its deadline files again, and the old filing, when it fires, only makes the
//! connection look at the clock and find that nothing is due (`Heartbeat` checks).

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::future;
use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::handle::Shared;

/// Emptied lists kept for reuse, at most: enough for every distinct moment of a busy server
/// (128 per interval in use), so that filing allocates nothing in steady state.
const SPARE_LISTS: usize = 1024;

/// How long the task waits for a filing once nothing is filed, before it ends. Longer than
/// the moment between firing a connection and its filing again, so that a lone connection
/// does not start a task per tick.
const LINGER: Duration = Duration::from_secs(1);

/// `task_wakes_at` of a task that runs with nothing filed.
const IDLE: u64 = u64::MAX;

/// The tickers of the runtimes that have heartbeats, by runtime.
static TICKERS: Mutex<Vec<(Id, Weak<Ticker>)>> = Mutex::new(Vec::new());

pub(crate) struct Ticker {
    /// Millisecond 0 of the filings.
    origin: Instant,
    filed: Mutex<Filed>,
    /// Tells the sleeping task that a connection filed itself before the moment it sleeps
    /// until.
    earlier: Notify,
}

#[derive(Default)]
struct Filed {
    /// Connections by the millisecond, counted from `origin`, at which they are due.
    due_at: BTreeMap<u64, Vec<Weak<Shared>>>,
    spare: Vec<Vec<Weak<Shared>>>,
    /// The millisecond the task sleeps until (`IDLE` while nothing is filed); `None` while
    /// no task runs.
    task_wakes_at: Option<u64>,
}

impl Ticker {
    /// The ticker of the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::time::sleep`.
    pub(crate) fn current() -> Arc<Ticker> {
        let runtime = Handle::try_current()
            .expect("a heartbeat must be polled inside a tokio runtime (it needs its timer)")
            .id();
        let mut tickers = TICKERS.lock().unwrap_or_else(PoisonError::into_inner);
        tickers.retain(|(_, ticker)| ticker.strong_count() > 0);
        let found = tickers
            .iter()
            .find(|(id, _)| *id == runtime)
            .and_then(|(_, ticker)| ticker.upgrade());
        found.unwrap_or_else(|| {
            let ticker = Arc::new(Ticker {
                origin: Instant::now(),
                filed: Mutex::default(),
                earlier: Notify::new(),
            });
            tickers.push((runtime, Arc::downgrade(&ticker)));
            ticker
        })
    }

    /// Marks `shared` due (and wakes its connection) once `deadline` has passed.
    pub(crate) fn file(self: &Arc<Self>, deadline: Instant, shared: &Arc<Shared>) {
        // Rounded up, so that a connection is never due before its deadline.
        let since = deadline.saturating_duration_since(self.origin);
        let ms = millis(since + Duration::from_nanos(999_999));
        let mut filed = self.lock();
        let Filed {
            due_at,
            spare,
            task_wakes_at,
        } = &mut *filed;
        due_at
            .entry(ms)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(Arc::downgrade(shared));
        match *task_wakes_at {
            None => {
                *task_wakes_at = Some(ms);
                drop(filed);
                tokio::spawn(run(Arc::clone(self)));
            }
            Some(wakes_at) if ms < wakes_at => {
                *task_wakes_at = Some(ms);
                drop(filed);
                self.earlier.notify_one();
            }
            Some(_) => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, Filed> {
        // Nothing panics while the lock is held; should it, the filings are still sound.
        self.filed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks due every connection filed at or before `now`. Returns the millisecond to sleep
    /// until next, or `None` if nothing is filed any more.
    fn fire(&self, now: Instant, woken: &mut Vec<Arc<Shared>>) -> Option<u64> {
        let now_ms = millis(now.saturating_duration_since(self.origin));
        let mut filed = self.lock();
        while let Some(entry) = filed.due_at.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            let mut list = entry.remove();
            woken.extend(list.drain(..).filter_map(|shared| shared.upgrade()));
            if filed.spare.len() < SPARE_LISTS {
                filed.spare.push(list);
            }
        }
        let next = filed.due_at.first_key_value().map(|(&ms, _)| ms);
        filed.task_wakes_at = Some(next.unwrap_or(IDLE));
        drop(filed);
        // Wake outside the lock: a woken connection may run at once and file again.
        for shared in woken.drain(..) {
            shared.mark_due();
        }
        next
    }

    /// Ends the task if nothing was filed while it lingered.
    fn stop_if_idle(&self) -> bool {
        let mut filed = self.lock();
        let idle = filed.due_at.is_empty();
        if idle {
            filed.task_wakes_at = None;
        }
        idle
    }

    fn instant(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The ticker's task: sleeps until the earliest filing and fires what is due; ends once
/// nothing was filed for `LINGER`.
async fn run(ticker: Arc<Ticker>) {
    // Dropped with its runtime in the middle of a sleep: let the next filing start a task.
    let mut on_drop = Restart(Some(&ticker));
    let mut woken = Vec::new();
    let mut wakes_at = ticker.lock().task_wakes_at.filter(|&ms| ms != IDLE);
    loop {
        let earlier = pin!(ticker.earlier.notified());
        match wakes_at {
            Some(ms) => {
                let sleep = pin!(tokio::time::sleep_until(ticker.instant(ms)));
                future::select(sleep, earlier).await;
            }
            None => {
                if tokio::time::timeout(LINGER, earlier).await.is_err() && ticker.stop_if_idle() {
                    break;
                }
            }
        }
        wakes_at = ticker.fire(Instant::now(), &mut woken);
    }
    on_drop.0 = None;
}

struct Restart<'a>(Option<&'a Ticker>);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if let Some(ticker) = self.0 {
            ticker.lock().task_wakes_at = None;
        }
    }
}

/// Whether a connection's filing has fired since it last looked.
#[derive(Debug, Default)]
pub(crate) struct DueFlag(AtomicBool);

impl DueFlag {
    pub(crate) fn set(&self) {
        self.0.store(true, Relaxed);
    }

    /// One relaxed load: cheap enough for every message.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, Relaxed);
    }
}
