//! [`Budget`]: the memory all sessions of one [`Sessions`](super::Sessions) may keep
//! ([`Resume::memory`](super::Resume::memory)), shared out in grants, and the sessions
//! waiting for a grant, smallest holder first.
//!
//! One rule decides every grant: after it, the session may hold no more than what stays
//! free. So no session holds more than half the budget, the sessions that hold the most
//! are the first to wait as the budget fills (with `n` of them growing, each stops at
//! `limit / (n + 1)`), and what stays free is always at least the largest share: room for
//! a newcomer. A session whose kept messages reach its room asks for room up to [`STEP`]
//! bytes beyond them, and gives back what its acknowledgements freed, so the per-message
//! path never touches the shared count.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::task::Waker;

use super::Resume;
use crate::sync::{AtomicBool, AtomicUsize, Mutex, lock};

/// How far beyond its kept messages a session takes room: one shared-count update per
/// 8 KiB of messages sent, one per acknowledgement that frees more than that.
pub(crate) const STEP: usize = 8 * 1024;

/// The budget of one registry.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    /// Bytes granted: [`Resume::PER_SESSION`] per session held, plus each one's room for
    /// kept messages.
    used: AtomicUsize,
    /// Whether `waiting` may hold a waker: a release looks here before it takes the lock.
    any_waiting: AtomicBool,
    waiting: Mutex<Waiting>,
}

/// The sessions waiting for room, by what they hold (then by when they came).
#[derive(Debug, Default)]
struct Waiting {
    by_holding: BTreeMap<(usize, u64), Waker>,
    next: u64,
}

/// One session's part of the budget. Given back with [`Budget::release`] when the session
/// goes.
#[derive(Debug)]
pub(crate) struct Share {
    /// Room granted for kept messages (besides `PER_SESSION`).
    room: usize,
    /// Its place among the waiting, if it waits.
    place: Option<(usize, u64)>,
    /// Whether `PER_SESSION` is still counted (false once released).
    held: bool,
}

impl Share {
    /// Room granted for kept messages.
    #[inline]
    pub(crate) fn room(&self) -> usize {
        self.room
    }

    /// What the session holds of the budget.
    fn holding(&self) -> usize {
        self.room + Resume::PER_SESSION * usize::from(self.held)
    }
}

/// Whether a session holding `holding` may take `want` more, `used` of `limit` being
/// granted: after it, it holds no more than what stays free.
fn may_grant(limit: usize, used: usize, holding: usize, want: usize) -> Option<usize> {
    let after = used.checked_add(want).filter(|&after| after <= limit)?;
    (holding.saturating_add(want) <= limit - after).then_some(after)
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            any_waiting: AtomicBool::new(false),
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Bytes granted now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A new session's share, if the budget has room for it and one step of messages
    /// after it; `None`: refuse the session (1013, try again later).
    pub(crate) fn admit(&self) -> Option<Share> {
        let need = Resume::PER_SESSION;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                may_grant(self.limit, used, 0, need + STEP).map(|_| used + need)
            })
            .ok()?;
        Some(Share {
            room: 0,
            place: None,
            held: true,
        })
    }

    /// Grows `share`'s room to `room`: `true` if granted.
    pub(crate) fn grow(&self, share: &mut Share, room: usize) -> bool {
        let want = room.saturating_sub(share.room);
        if want == 0 {
            return true;
        }
        let holding = share.holding();
        // A read-modify-write even when refused (it writes the count back): a release's
        // update of `used` is then ordered before or after it, never beside it, which
        // `grow_or_wait` counts on.
        let mut granted = false;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = may_grant(self.limit, used, holding, want);
                granted = after.is_some();
                Some(after.unwrap_or(used))
            });
        if granted {
            share.room += want;
            self.leave(share);
        }
        granted
    }

    /// Grows `share`'s room to `room`, or, if the budget has none, queues `waker` to be woken
    /// when a release may leave enough (smallest holders first). `true` if granted.
    pub(crate) fn grow_or_wait(&self, share: &mut Share, room: usize, waker: &Waker) -> bool {
        if self.grow(share, room) {
            return true;
        }
        {
            let mut waiting = lock(&self.waiting);
            if let Some(place) = share.place.take() {
                waiting.by_holding.remove(&place);
            }
            let place = (share.holding(), waiting.next);
            waiting.next += 1;
            waiting.by_holding.insert(place, waker.clone());
            share.place = Some(place);
            self.any_waiting.store(true, Ordering::Release);
        }
        // Queued before this second look, a read-modify-write of `used` like every release:
        // a release ordered before it left its bytes for this look; one ordered after it
        // reads what this look wrote, so it sees `any_waiting` and wakes us.
        self.grow(share, room)
    }

    /// Gives back `share`'s room down to `room` (what its kept messages need now).
    pub(crate) fn shrink(&self, share: &mut Share, room: usize) {
        if room < share.room {
            let freed = share.room - room;
            share.room = room;
            self.give_back(freed);
        }
    }

    /// The session goes: all of its share comes back.
    pub(crate) fn release(&self, share: &mut Share) {
        self.leave(share);
        let freed = share.holding();
        share.room = 0;
        share.held = false;
        self.give_back(freed);
    }

    /// Takes `share` out of the waiting, if it is there.
    fn leave(&self, share: &mut Share) {
        if let Some(place) = share.place.take() {
            lock(&self.waiting).by_holding.remove(&place);
        }
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if self.any_waiting.load(Ordering::Acquire) {
            self.wake_fitting();
        }
    }

    /// Wakes the waiting sessions a step would now fit, smallest holder first, counting a
    /// step for each one woken.
    #[cold]
    fn wake_fitting(&self) {
        let mut waiting = lock(&self.waiting);
        let mut used = self.used.load(Ordering::Acquire);
        while let Some(entry) = waiting.by_holding.first_entry() {
            let (holding, _) = *entry.key();
            let Some(after) = may_grant(self.limit, used, holding, STEP) else {
                break;
            };
            used = after;
            entry.remove().wake();
        }
        self.any_waiting
            .store(!waiting.by_holding.is_empty(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, ws_heartbeat_loom))]
mod loom_tests;
