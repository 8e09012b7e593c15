//! The state that most connections never need, in one box allocated on first use.

use std::any::Any;

use super::drain::Drain;
use crate::progress::Progress;
use crate::protocol::AppMessage;

/// One pointer in each connection instead of these fields, allocated the first time one of
/// them is needed (an application ping to answer, a control ping to answer for a library
/// that does not, a message read ahead, progress tracking) and kept. Whether a slot is full
/// is also in the connection's `Flags` (`ANSWER_OWED`, `KEPT`), so that the per-message paths
/// need not look in here.
#[derive(Default)]
pub(super) struct Rare {
    /// The answer to the peer's latest application ping, not yet handed to the sink. One
    /// slot: a newer ping replaces an unsent answer, so a flood of pings queues nothing.
    pub(super) pending_answer: Option<AppMessage>,
    /// The pong to the peer's latest control ping, for a WebSocket library that leaves
    /// answering pings to the application (`WsMessage::answer_ping`).
    pub(super) pong: OwedPong,
    /// Byte-level progress of the transport, if it is tracked.
    pub(super) progress: Option<Progress>,
    pub(super) read_ahead: ReadAhead,
    /// Where the connection is in its layer's drain.
    pub(super) drain: Drain,
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

/// The pong owed to the peer's control ping, not yet handed to the sink. Type-erased like
/// [`ReadAhead`] (the message type is not a parameter of the connection); the box holds an
/// `Option<M>` and is kept once allocated, so answering pings allocates once per connection,
/// not once per ping. One slot: the pong-flush rule reads no further frame while it is full.
#[derive(Default)]
pub(super) struct OwedPong {
    slot: Option<Box<dyn Any + Send + Sync>>,
    owed: bool,
}

impl OwedPong {
    pub(super) fn put<M: Send + Sync + 'static>(&mut self, pong: M) {
        match self
            .slot
            .as_mut()
            .and_then(|slot| slot.downcast_mut::<Option<M>>())
        {
            Some(slot) => *slot = Some(pong),
            None => self.slot = Some(Box::new(Some(pong))),
        }
        self.owed = true;
    }

    pub(super) fn take<M: 'static>(&mut self) -> Option<M> {
        if !self.owed {
            return None;
        }
        self.owed = false;
        // Only one type is ever put, so the downcast cannot fail.
        self.slot.as_mut()?.downcast_mut::<Option<M>>()?.take()
    }

    pub(super) fn is_owed(&self) -> bool {
        self.owed
    }

    /// Drops the owed pong, whatever its type (the box knows how to drop what it holds).
    pub(super) fn discard(&mut self) {
        if self.owed {
            self.owed = false;
            self.slot = None;
        }
    }
}
