//! A [`Session`]'s room for its kept messages: taken from the registry's memory budget in
//! steps as they grow, given back as its client acknowledges them. Off the per-message
//! path: a send asks only when the ledger has no room, an acknowledgement gives back only
//! when a step is free.

use std::task::Context;

use futures_core::Stream;

use super::Session;
use crate::resume::budget::STEP;

/// What asking for room gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grown {
    /// Room for the next message.
    Yes,
    /// The buffer itself is full: only an acknowledgement makes room.
    BufferFull,
    /// The budget has none for this session now.
    Refused,
}

impl<S: Stream> Session<S> {
    /// Takes a step more of the budget for the kept messages. With `cx`, a refusal queues
    /// the session's waker to be woken when others give back.
    #[cold]
    #[inline(never)]
    pub(super) fn grow_room(&mut self, cx: Option<&mut Context<'_>>) -> Grown {
        let ledger = self.core.ledger();
        let (kept, buffer) = (ledger.kept_bytes(), ledger.buffer());
        if kept >= buffer {
            return Grown::BufferFull;
        }
        let room = buffer.min(kept + STEP);
        let budget = &self.registry.budget;
        let granted = match cx {
            Some(cx) => budget.grow_or_wait(&mut self.share, room, cx.waker()),
            None => budget.grow(&mut self.share, room),
        };
        self.core.ledger_mut().set_room(self.share.room());
        if granted { Grown::Yes } else { Grown::Refused }
    }

    /// After an acknowledgement: gives back what is more than a step beyond the kept
    /// messages (all of it when none is kept).
    #[inline]
    pub(super) fn give_back_room(&mut self) {
        let kept = self.core.ledger().kept_bytes();
        let room = self.share.room();
        if room > kept + STEP || (kept == 0 && room > 0) {
            self.give_back_surplus(kept);
        }
    }

    #[cold]
    #[inline(never)]
    fn give_back_surplus(&mut self, kept: usize) {
        let keep = if kept == 0 { 0 } else { kept + STEP };
        self.registry.budget.shrink(&mut self.share, keep);
        self.core.ledger_mut().set_room(self.share.room());
    }
}
