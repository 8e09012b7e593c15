//! The memory budget, every interleaving: a session that finds no room and queues itself
//! while another gives back is never left asleep with room free; two sessions racing for
//! the last room get it once.

use std::future::poll_fn;
use std::task::Poll;

use loom::sync::Arc;
use loom::thread;

use super::{Budget, STEP};
use crate::resume::Resume;

const PER: usize = Resume::PER_SESSION;

/// `b` wants two steps while `a` holds one: refused until `a` goes. Whichever order the
/// release and `b`'s queueing and second look take, `b` gets its room (`block_on` fails
/// the model if it waits with nobody left to wake it).
#[test]
fn loom_a_release_never_misses_a_session_that_queues() {
    loom::model(|| {
        let budget = Arc::new(Budget::new(4 * (PER + STEP)));
        let mut a = budget.admit().unwrap();
        let mut b = budget.admit().unwrap();
        assert!(budget.grow(&mut a, STEP));
        assert!(!budget.grow(&mut b, 2 * STEP), "no room for b yet");
        let releaser = {
            let budget = budget.clone();
            thread::spawn(move || budget.release(&mut a))
        };
        loom::future::block_on(poll_fn(|cx| {
            if budget.grow_or_wait(&mut b, 2 * STEP, cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        releaser.join().unwrap();
        assert_eq!(budget.used(), PER + 2 * STEP);
        budget.release(&mut b);
        assert_eq!(budget.used(), 0);
    });
}

/// Room for one more step only: of two sessions asking at once, exactly one gets it.
#[test]
fn loom_the_last_room_is_granted_once() {
    loom::model(|| {
        let budget = Arc::new(Budget::new(3 * PER + 3 * STEP - 1));
        let shares = [budget.admit().unwrap(), budget.admit().unwrap()];
        let asks: Vec<_> = shares
            .into_iter()
            .map(|mut share| {
                let budget = budget.clone();
                thread::spawn(move || (budget.grow(&mut share, STEP), share))
            })
            .collect();
        let results: Vec<_> = asks.into_iter().map(|t| t.join().unwrap()).collect();
        let granted = results.iter().filter(|(granted, _)| *granted).count();
        assert_eq!(granted, 1);
        assert_eq!(budget.used(), 2 * PER + STEP);
    });
}
