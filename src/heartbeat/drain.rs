//! A connection's part in its layer's drain: its moment, the Close 1012 it owes then, and
//! the close timeout after it. Every step runs where the deadline is checked (`due_now`):
//! nothing of this is on the per-message path.

use std::sync::Arc;

use super::Conn;
use super::state::{DeadClose, Death, Flags, State};
use crate::drain::{DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON};
use crate::ending::Cause;
use crate::error::Dead;
use crate::message::WsMessage;
use crate::stamp::Stamp;
use crate::wake::Shared;

/// Where a connection is in its layer's drain. Kept in the rare box: only a drain makes it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(super) enum Drain {
    /// No drain, or not known to this connection yet.
    #[default]
    Off,
    /// Closes at its moment.
    Planned { at: Stamp },
    /// The Close 1012 is owed (it goes out with the next heartbeat frames) or went out, or
    /// the close began otherwise; given up at `by`.
    Closing { by: Stamp, owed: bool },
    /// Counted: the peer answered, or time ran out.
    Over,
}

impl Drain {
    /// When the connection must next look at its drain.
    pub(super) fn deadline(self) -> Option<Stamp> {
        match self {
            Drain::Planned { at } => Some(at),
            Drain::Closing { by, .. } => Some(by),
            Drain::Off | Drain::Over => None,
        }
    }
}

impl Conn {
    fn drain_state(&self) -> Drain {
        self.rare.as_ref().map_or(Drain::Off, |rare| rare.drain)
    }

    /// The first poll of a connection whose layer drains already: it closes at once.
    #[cold]
    pub(super) fn drain_at_once(&mut self, now: Stamp) {
        self.rare().drain = Drain::Planned { at: now };
    }

    /// At every check of the deadline: takes the moment if the layer began draining, and
    /// moves the close along once its time came. `true` if the deadline changed (the caller
    /// files it).
    #[cold]
    pub(super) fn step_drain(&mut self, shared: &Arc<Shared>, now: Stamp) -> bool {
        let Some(group) = shared.group() else {
            return false;
        };
        let before = self.drain_state();
        let mut drain = before;
        if drain == Drain::Off {
            let Some(plan) = group.plan() else {
                return false;
            };
            drain = Drain::Planned {
                at: group.moment(plan),
            };
            shared.note_planned();
        }
        if let Drain::Planned { at } = drain {
            if now >= at {
                drain = self.start_drain_close(now);
            }
        }
        if let Drain::Closing { by, .. } = drain {
            if now >= by {
                group.count_forced();
                tracing::info!(conn = %shared.id(), layer = shared.layer_name(), "websocket drained: no answer to the Close within the close timeout");
                shared.note_drained();
                shared.ended(Cause::Drained);
                self.give_up(now);
                drain = Drain::Over;
            }
        }
        self.rare().drain = drain;
        drain != before
    }

    /// The moment came: a live connection owes the Close 1012, sent with the heartbeat's
    /// frames (after the handler's reserved send, if any); one already closing (the handler
    /// or the peer began) just waits for the end. Either way the close timeout runs.
    fn start_drain_close(&mut self, now: Stamp) -> Drain {
        let by = now.add(self.rules.close_timeout());
        match &self.state {
            State::Running(_) if self.state.is_live() => {
                self.flags.set(Flags::ANSWER_OWED);
                Drain::Closing { by, owed: true }
            }
            State::Running(_) => Drain::Closing { by, owed: false },
            State::Dead(_) | State::Ended => Drain::Over,
        }
    }

    /// The peer did not answer the Close within the close timeout: the connection ends as
    /// after a death (the stream reports `Dead` once, the sink every time), with no Close of
    /// its own to send.
    fn give_up(&mut self, now: Stamp) {
        let Some(running) = self.state.running() else {
            return;
        };
        let silent_for = now.since(running.pacemaker.last_alive());
        let dead = Dead::new(running.pacemaker.missed(), silent_for);
        self.state = State::Dead(Box::new(Death {
            dead,
            reported: false,
            close: DeadClose::Done,
            close_by: now,
        }));
        self.flags.clear(Flags::PING_DUE);
        self.drop_owed();
    }

    /// The Close 1012, if owed and nothing else is (`take_owed` sends it last). Handing it
    /// over starts the close: no more pings.
    pub(super) fn take_drain_close<M: WsMessage>(&mut self) -> Option<M> {
        let rare = self.rare.as_mut()?;
        let Drain::Closing { by, owed: true } = rare.drain else {
            return None;
        };
        rare.drain = Drain::Closing { by, owed: false };
        self.flags.clear(Flags::PING_DUE);
        self.state.close();
        Some(M::close(DRAIN_CLOSE_CODE, DRAIN_CLOSE_REASON))
    }

    /// Whether the Close 1012 is owed (`take_owed` looks here once the rest is sent).
    pub(super) fn drain_close_owed(&self) -> bool {
        matches!(self.drain_state(), Drain::Closing { owed: true, .. })
    }

    /// The peer's Close arrived, or the stream ended: after the drain's Close, the drain
    /// counts a clean close. (Some libraries end the stream without handing over the
    /// answering Close: actix-ws once the server closed.)
    #[cold]
    #[inline(never)]
    pub(super) fn close_finished(&mut self, shared: &Shared) {
        match (self.drain_state(), shared.group()) {
            (Drain::Closing { owed: false, .. }, Some(group)) => {
                group.count_closed();
                shared.note_drained();
                self.rare().drain = Drain::Over;
            }
            // The peer closed before our Close went out: its end, not the drain's (it counts
            // as ended early), and no close timeout runs for a Close never sent.
            (Drain::Closing { owed: true, .. }, Some(_)) => self.rare().drain = Drain::Over,
            _ => {}
        }
    }

    /// The drain's deadline, if it has one before `deadline` (the tick's, or the close
    /// timeout's): what the ticker must wake the connection for.
    pub(super) fn drain_deadline(&self) -> Option<Stamp> {
        self.drain_state().deadline()
    }
}
