//! The state that most connections never need, in one box allocated on first use.

use std::any::Any;

use crate::progress::Progress;
use crate::protocol::AppMessage;

/// One pointer in each connection instead of these fields, allocated the first time one of
/// them is needed (an application ping to answer, a message read ahead, progress tracking)
/// and kept. Whether a slot is full is also in the connection's `Flags` (`ANSWER_OWED`,
/// `KEPT`), so that the per-message paths need not look in here.
#[derive(Default)]
pub(super) struct Rare {
    /// The answer to the peer's latest application ping, not yet handed to the sink. One
    /// slot: a newer ping replaces an unsent answer, so a flood of pings queues nothing.
    pub(super) pending_answer: Option<AppMessage>,
    /// Byte-level progress of the transport, if it is tracked.
    pub(super) progress: Option<Progress>,
    pub(super) read_ahead: ReadAhead,
}

/// One item read ahead by the writing side, waiting for the reader. Type-erased because
/// `Heartbeat<S>` is also the tower `Service` wrapper, where `S` has no item type.
#[derive(Default)]
pub(super) struct ReadAhead(Option<Box<dyn Any + Send + Sync>>);

impl ReadAhead {
    pub(super) fn put<T: Send + Sync + 'static>(&mut self, item: T) {
        self.0 = Some(Box::new(item));
    }

    #[inline]
    pub(super) fn take<T: 'static>(&mut self) -> Option<T> {
        // Only one type is ever put, so the downcast cannot fail.
        self.0
            .take()
            .and_then(|item| item.downcast().ok())
            .map(|item| *item)
    }
}
