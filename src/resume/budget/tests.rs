use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

use super::*;

const PER: usize = Resume::PER_SESSION;

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

fn woken(count: &Count) -> usize {
    count.0.load(Ordering::Relaxed)
}

#[test]
fn a_grant_leaves_at_least_as_much_free_as_the_session_then_holds() {
    assert_eq!(may_grant(100, 0, 0, 50), Some(50), "50 held, 50 free");
    assert_eq!(may_grant(100, 0, 0, 51), None, "51 held, 49 free");
    assert_eq!(may_grant(100, 40, 10, 25), Some(65), "35 held, 35 free");
    assert_eq!(may_grant(100, 40, 10, 26), None, "36 held, 34 free");
    assert_eq!(may_grant(100, 90, 0, 11), None, "past the limit");
    assert_eq!(
        may_grant(usize::MAX, usize::MAX - 1, 0, 2),
        None,
        "no overflow"
    );
}

/// With `n` sessions growing step by step, each stops at about `limit / (n + 1)`, the
/// budget is never passed, and a newcomer still finds room for itself and a step.
#[test]
fn growing_sessions_share_the_budget_and_leave_room_for_one_more() {
    let limit = 1 << 20;
    for n in [1usize, 2, 7, 40] {
        let budget = Budget::new(limit);
        let mut shares: Vec<Share> = (0..n).map(|_| budget.admit().expect("room")).collect();
        // Round after round, each takes one more step while it may.
        loop {
            let mut grew = false;
            for share in &mut shares {
                let room = share.room() + STEP;
                grew |= budget.grow(share, room);
            }
            if !grew {
                break;
            }
        }
        let used = budget.used();
        assert!(used <= limit, "{n} sessions: {used} of {limit}");
        let free = limit - used;
        for share in &shares {
            assert!(
                share.holding() <= free,
                "{n} sessions: holds {} of {free} free",
                share.holding()
            );
            // Each stopped within one step of its fair part.
            assert!(
                share.holding() + STEP > limit / (n + 1) - STEP,
                "{n}: {}",
                share.holding()
            );
        }
        assert!(budget.admit().is_some(), "{n} sessions: a newcomer fits");
    }
}

#[test]
fn a_newcomer_is_refused_when_it_and_one_step_would_not_fit() {
    // Room for 3 sessions and a step each: after the third, free is 2 × (PER + STEP) - 3 PER.
    let limit = 2 * (PER + STEP) + 2 * PER;
    let budget = Budget::new(limit);
    let mut a = budget.admit().expect("first");
    let _b = budget.admit().expect("second");
    let _c = budget.admit().expect("third");
    assert!(
        budget.admit().is_none(),
        "{} of {limit} used",
        budget.used()
    );
    budget.release(&mut a);
    assert_eq!(budget.used(), 2 * PER);
    assert!(budget.admit().is_some(), "room again after a session went");
}

#[test]
fn releases_give_back_exactly_what_was_granted() {
    let budget = Budget::new(1 << 20);
    let mut share = budget.admit().unwrap();
    assert!(budget.grow(&mut share, 3 * STEP));
    assert_eq!(budget.used(), PER + 3 * STEP);
    assert!(
        budget.grow(&mut share, 2 * STEP),
        "a smaller room is had already"
    );
    assert_eq!(budget.used(), PER + 3 * STEP);
    budget.shrink(&mut share, STEP);
    assert_eq!((budget.used(), share.room()), (PER + STEP, STEP));
    budget.release(&mut share);
    assert_eq!(budget.used(), 0);
    budget.release(&mut share);
    assert_eq!(budget.used(), 0, "a second release gives nothing back");
}

/// Grows `share` step by step while the budget grants it; returns its room.
fn grow_all(budget: &Budget, share: &mut Share) -> usize {
    while budget.grow(share, share.room() + STEP) {}
    share.room()
}

/// The budget full, two sessions wait for one more step each; a release wakes the one that
/// holds less first, and the other only once a step fits it too.
#[test]
fn a_release_wakes_the_smallest_holder_that_fits() {
    let budget = Budget::new(40 * STEP);
    let (mut hog, mut big, mut small) = (
        budget.admit().unwrap(),
        budget.admit().unwrap(),
        budget.admit().unwrap(),
    );
    // Each in turn takes what the rule lets it: about half of what is free.
    assert_eq!(grow_all(&budget, &mut hog), 19 * STEP);
    assert_eq!(grow_all(&budget, &mut big), 10 * STEP);
    assert_eq!(grow_all(&budget, &mut small), 5 * STEP);
    let (big_count, big_waker) = counter();
    let (small_count, small_waker) = counter();
    assert!(!budget.grow_or_wait(&mut big, 11 * STEP, &big_waker));
    assert!(!budget.grow_or_wait(&mut small, 6 * STEP, &small_waker));
    assert_eq!((woken(&big_count), woken(&small_count)), (0, 0));
    // The hog gives back 2 steps: 7.6 free, a step fits `small` (5.1 held) but not `big`
    // (10.1).
    budget.shrink(&mut hog, 17 * STEP);
    assert_eq!((woken(&big_count), woken(&small_count)), (0, 1));
    // It goes: now `big` too.
    budget.release(&mut hog);
    assert_eq!((woken(&big_count), woken(&small_count)), (1, 1));
    assert!(budget.grow(&mut big, 11 * STEP));
    assert!(budget.grow(&mut small, 6 * STEP));
    assert!(!budget.any_waiting.load(Ordering::SeqCst));
}

#[test]
fn a_session_that_goes_leaves_the_waiting() {
    let budget = Budget::new(4 * (PER + STEP));
    let mut a = budget.admit().unwrap();
    let mut b = budget.admit().unwrap();
    assert!(budget.grow(&mut a, STEP));
    let (count, waker) = counter();
    assert!(!budget.grow_or_wait(&mut b, 2 * STEP, &waker));
    // Waiting again replaces its place; leaving removes it.
    assert!(!budget.grow_or_wait(&mut b, 2 * STEP, &waker));
    assert_eq!(lock(&budget.waiting).by_holding.len(), 1);
    budget.release(&mut b);
    assert!(lock(&budget.waiting).by_holding.is_empty());
    budget.release(&mut a);
    assert_eq!((budget.used(), woken(&count)), (0, 0));
}
