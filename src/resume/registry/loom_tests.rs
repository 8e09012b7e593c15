//! A session's mailbox, every interleaving: `accept` delivering a resumed socket (here a
//! number) while the session's two halves poll (a `split` handler: each half polls the
//! session under the split's lock, registering its waker first, as `Session` does), and while
//! the session ends.

use std::future::poll_fn;
use std::task::Poll;

use loom::sync::{Arc, Mutex};
use loom::thread;

use super::Handoff;
use crate::halves::Halves;

/// What the model's session knows: the sockets it adopted.
#[derive(Default)]
struct Owner {
    adopted: Vec<u32>,
}

/// One half's poll until the session is on a new socket: registers, then adopts a waiting
/// socket or sees that the other half did.
fn poll_until_adopted(owner: &Mutex<Owner>, handoff: &Handoff<u32>, halves: &Halves, reader: bool) {
    loom::future::block_on(poll_fn(|cx| {
        let mut owner = owner.lock().unwrap();
        let mine = if reader {
            &halves.reader
        } else {
            &halves.writer
        };
        mine.register(cx.waker());
        if !owner.adopted.is_empty() {
            return Poll::Ready(());
        }
        match handoff.take() {
            Some(socket) => {
                owner.adopted.push(socket);
                // The other half may wait on the old socket.
                halves.wake_both();
                Poll::Ready(())
            }
            None => Poll::Pending,
        }
    }));
}

#[test]
fn loom_a_delivered_socket_is_adopted_once_and_both_halves_wake() {
    loom::model(|| {
        let owner = Arc::new(Mutex::new(Owner::default()));
        let handoff = Arc::new(Handoff::default());
        let halves = Arc::new(Halves::default());
        let accept = {
            let (handoff, halves) = (handoff.clone(), halves.clone());
            thread::spawn(move || {
                handoff.deliver(7);
                halves.wake_both();
            })
        };
        let reader = {
            let (owner, handoff, halves) = (owner.clone(), handoff.clone(), halves.clone());
            thread::spawn(move || poll_until_adopted(&owner, &handoff, &halves, true))
        };
        // The writer half polls here; both halves must come back (loom reports a half left
        // waiting as a deadlock).
        poll_until_adopted(&owner, &handoff, &halves, false);
        reader.join().unwrap();
        accept.join().unwrap();
        assert_eq!(owner.lock().unwrap().adopted, [7], "adopted exactly once");
        assert!(handoff.take().is_none());
    });
}

#[test]
fn loom_a_resume_racing_the_end_is_answered_or_refused_never_lost() {
    loom::model(|| {
        // The registry's lock and whether it holds the session.
        let held = Arc::new(Mutex::new(true));
        let handoff = Arc::new(Handoff::default());
        // `accept` admits under the registry's lock, and delivers there.
        let accept = {
            let (held, handoff) = (held.clone(), handoff.clone());
            thread::spawn(move || {
                let held = held.lock().unwrap();
                if *held {
                    handoff.deliver(7);
                }
                *held
            })
        };
        // The session ends: out of the registry under its lock, then it answers what was
        // delivered before.
        *held.lock().unwrap() = false;
        let answered = handoff.take();
        let delivered = accept.join().unwrap();
        if delivered {
            assert_eq!(
                answered,
                Some(7),
                "delivered while held: answered by the end"
            );
        } else {
            assert_eq!(answered, None, "refused: the session was no longer held");
        }
    });
}
