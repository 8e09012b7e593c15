//! [`Halves`]: the two wakers of what a handler or a client may poll from two tasks.

use std::sync::Arc;

use futures_util::task::ArcWake;

use crate::sync::AtomicWaker;

/// The wakers of something a handler or a client may poll from two tasks (after a
/// `split`): a session (`resume::Session`) and a reconnecting client (`Reconnect`). Each
/// half registers its own at every poll; both poll what lies beneath them (sockets, timers,
/// connect attempts) with a waker that wakes both (`Halves` itself, or the session's
/// mailbox): what one half does there (reading on the writer's behalf, flushing for it,
/// adopting a new socket) replaces the other's waker or concerns it.
#[derive(Debug, Default)]
pub(crate) struct Halves {
    pub(crate) reader: AtomicWaker,
    pub(crate) writer: AtomicWaker,
}

impl Halves {
    pub(crate) fn wake_both(&self) {
        self.reader.wake();
        self.writer.wake();
    }
}

impl ArcWake for Halves {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.wake_both();
    }
}
