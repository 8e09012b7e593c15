//! A [`Session`] in a drain of its layer ([`HeartbeatLayer::drain`](crate::HeartbeatLayer::drain)):
//! at its moment it tells the client `finish`, the client answers `finish` and sends no more
//! data, each side acknowledges all it received, and the server closes with 1012 once its
//! own messages are acknowledged: the client goes on with a new session elsewhere, nothing
//! lost (PROTOCOL.md, section 8). Checked at every poll of the full paths, which a drain
//! moves every poll to (`is_plain`).

use std::pin::Pin;
use std::task::Context;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::{Instant, Sleep};

use super::{Out, Phase, Session};
use crate::drain::Plan;
use crate::error::Dead;
use crate::message::WsMessage;
use crate::protocol::AppMessage;
use crate::resume::rules::Finishing;
use crate::resume::{Reason, wire};

/// The Close of a finished session: 1012 (service restart), the client goes on elsewhere.
pub(super) const FINISHED_CLOSE: u16 = 1012;

/// Where a session is in its finish; boxed in the session (only a drain makes one).
pub(super) struct Finish {
    /// Fires at the moment while `Planned`, then at `by`.
    timer: Pin<Box<Sleep>>,
    /// The end of the drain's window and close timeout: the session must be done by then.
    by: Instant,
    step: Step,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Waiting for its moment.
    Planned,
    /// `finish` sent (or owed to the next socket, while parked).
    Told,
    /// The client answered: no more data comes; our sends are refused, and once all we sent
    /// is acknowledged the session closes.
    ClientDone,
    /// Closed with 1012, or nothing to finish (the session was closing already).
    Over,
}

impl<S, M, E> Session<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    /// Moves the finish along: takes the moment when the drain begins, tells the client at
    /// it, closes once both sides are done, ends the session when time runs out.
    #[cold]
    #[inline(never)]
    pub(super) fn step_finish(&mut self, cx: &mut Context<'_>) {
        if self.finish.is_none() {
            let Some(plan) = self.group.plan().copied() else {
                return;
            };
            self.plan_finish(&plan);
        }
        let Some(finish) = self.finish.as_mut() else {
            return;
        };
        let fired = finish.step != Step::Over && finish.timer.as_mut().poll(cx).is_ready();
        match (finish.step, fired) {
            (Step::Planned, true) => {
                let by = finish.by;
                finish.timer.as_mut().reset(by);
                finish.step = Step::Told;
                if let Phase::Live = self.phase {
                    self.tell_finish();
                }
                // Parked: the next socket hears it after its welcome (`adopt_waiting`).
                // Poll the timer again, so that it wakes us at `by`.
                self.step_finish(cx);
            }
            (Step::Told | Step::ClientDone, true) => self.lose(Reason::Drained),
            (Step::ClientDone, false) => self.close_if_finished(),
            _ => {}
        }
    }

    /// The drain began: the session takes its moment of the window (a closing or ended one
    /// has nothing to finish).
    fn plan_finish(&mut self, plan: &Plan) {
        if let Some(ws) = &self.ws {
            ws.shared().note_planned();
        }
        let close_timeout = self.registry.layer.settings().close_timeout();
        let by = Instant::from_std(plan.start.add(plan.window + close_timeout).instant());
        let (at, step) = match self.phase {
            Phase::Live | Phase::Parked { .. } => {
                let at = self.group.moment(plan);
                (Instant::from_std(at.instant()), Step::Planned)
            }
            Phase::Closing { .. } | Phase::Ended { .. } => (by, Step::Over),
        };
        self.finish = Some(Box::new(Finish {
            timer: Box::pin(tokio::time::sleep_until(at)),
            by,
            step,
        }));
    }

    /// `finish <received>` to the client: it acknowledges what we have, and asks for its
    /// last word.
    pub(super) fn tell_finish(&mut self) {
        let received = self.core.ledger_mut().told_in_handshake();
        self.out
            .push_back(Out::App(AppMessage::Text(wire::finish_text(received))));
    }

    /// Whether a socket that resumes the session must hear `finish` after its welcome.
    pub(super) fn finish_told(&self) -> bool {
        self.finish
            .as_ref()
            .is_some_and(|f| matches!(f.step, Step::Told | Step::ClientDone))
    }

    /// The client's `finish`: it sends no more data. Our final acknowledgement goes out, our
    /// sends are refused from now on. Out of turn (we never asked) it breaks the protocol.
    pub(super) fn client_finished(&mut self) {
        let Some(finish) = self.finish.as_mut().filter(|f| f.step != Step::Planned) else {
            return self.violated("a finish the server did not ask for");
        };
        if finish.step == Step::Told {
            finish.step = Step::ClientDone;
            self.core.set_finishing(Finishing::NoMoreData);
        }
        if let Some(count) = self.core.ledger_mut().ack() {
            self.out
                .push_back(Out::App(AppMessage::Text(wire::ack_text(count))));
        }
        self.mailbox.halves.writer.wake();
        self.close_if_finished();
    }

    /// Whether the handler's sends are refused: the client has finished.
    pub(super) fn refuses_sends(&self) -> bool {
        self.finish
            .as_ref()
            .is_some_and(|f| matches!(f.step, Step::ClientDone | Step::Over))
            && !matches!(self.phase, Phase::Parked { .. })
    }

    /// Both sides done (the client's `finish` came, all we sent is acknowledged): the
    /// session closes with 1012 and counts as finished.
    fn close_if_finished(&mut self) {
        let Some(finish) = self.finish.as_mut() else {
            return;
        };
        if finish.step != Step::ClientDone
            || self.core.ledger().unconfirmed() > 0
            || !matches!(self.phase, Phase::Live)
        {
            return;
        }
        finish.step = Step::Over;
        if let Some(ws) = &self.ws {
            ws.shared().note_drained();
        }
        self.out.push_back(Out::Close(FINISHED_CLOSE));
        self.closing(Some(FINISHED_CLOSE));
        self.group.count_session_finished();
        self.mailbox.halves.wake_both();
    }
}
