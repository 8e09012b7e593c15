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

    /// After an acknowledgement: gives back the room more than a step beyond both the kept
    /// messages and their storage. (The storage itself goes back at the next tick: freeing it
    /// here, to grow it again with the next message, would allocate on every acknowledgement.)
    #[inline]
    pub(super) fn give_back_room(&mut self) {
        let ledger = self.core.ledger();
        let floor = (ledger.kept_bytes() + STEP).max(ledger.storage());
        if self.share.room() > floor + STEP {
            self.shrink_room(floor);
        }
    }

    /// At a tick of the heartbeat. A session that sent nothing since the last tick gives back
    /// its storage beyond what is kept, and its room beyond a step past that (all of it when
    /// nothing is kept: an idle session holds only its `PER_SESSION`). A busy one keeps the
    /// storage it uses (freeing it at every tick would allocate again at every tick), unless a
    /// burst left it more than twice what it keeps.
    #[cold]
    #[inline(never)]
    pub(super) fn trim_room(&mut self) {
        let ledger = self.core.ledger();
        let (sent, kept, storage) = (ledger.sent(), ledger.kept_bytes(), ledger.storage());
        let idle = sent == self.sent_at_tick;
        self.sent_at_tick = sent;
        if idle || storage > 2 * (kept + STEP) {
            self.core.ledger_mut().shrink();
        }
        let floor = if idle && kept == 0 {
            0
        } else {
            (kept + STEP).max(self.core.ledger().storage())
        };
        if self.share.room() > floor {
            self.shrink_room(floor);
        }
    }

    #[cold]
    #[inline(never)]
    fn shrink_room(&mut self, room: usize) {
        self.registry.budget.shrink(&mut self.share, room);
        self.core.ledger_mut().set_room(self.share.room());
    }
}
