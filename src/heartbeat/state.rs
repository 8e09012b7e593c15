//! Where a connection is in its life ([`State`], with named transitions), and what the
//! heartbeat owes it between two polls ([`Flags`]).

use std::time::Duration;

use crate::error::Dead;
use crate::pacemaker::Pacemaker;
use crate::stamp::Stamp;

/// The life of a connection. Every change happens in one of the named transitions below,
/// and the data of each state lives in it.
///
/// ```text
///   Running(Live) ──close()──▶ Running(Closing)
///        │                          │
///        └────────die()──▶ Dead ◀───┘        Running ──end()──▶ Ended
/// ```
pub(super) enum State {
    /// The heartbeat runs: ticks count, pings go out while live.
    Running(Running),
    /// The peer was found dead. The stream reports it once; the sink every time.
    Dead(Box<Death>),
    /// The inner stream ended: the heartbeat has stopped.
    Ended,
}

/// The data of a running heartbeat.
pub(super) struct Running {
    /// The timing rules: what the peer said since the last tick, the pings out, the misses,
    /// and the phase (it keeps that in a spare byte: a connection's size is counted).
    pub(super) pacemaker: Pacemaker,
    /// When the latest tick was due (before the first, one interval before the first). The
    /// next is due one interval later: the interval in force is the hub's, so a new one moves
    /// the next tick without a word here.
    pub(super) last_tick: Stamp,
}

impl Running {
    /// When the next tick is due.
    #[inline]
    pub(super) fn next_tick(&self, interval: Duration) -> Stamp {
        self.last_tick.add(interval)
    }
}

impl Running {
    pub(super) fn phase(&self) -> Phase {
        if self.pacemaker.is_closing() {
            Phase::Closing
        } else {
            Phase::Live
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Pings go out on schedule.
    Live,
    /// A Close frame went out or came in: ticks go on, but pings cannot be written any more,
    /// so they count as unanswered, and a peer that never completes the close is still found
    /// dead.
    Closing,
}

/// How a dead peer was found, and what is left to do about it. Boxed: a connection carries
/// one pointer for it, and only after a death.
pub(super) struct Death {
    pub(super) dead: Dead,
    /// The stream returned the error.
    pub(super) reported: bool,
    pub(super) close: DeadClose,
    /// The end of the close timeout: the Close frame is given up then.
    pub(super) close_by: Stamp,
}

/// The best-effort Close frame to a dead peer, bounded by the close timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DeadClose {
    Unsent,
    Sent,
    Done,
}

impl State {
    /// A running heartbeat, live, whose first tick is due at `first_tick` (`interval`
    /// after a tick that never was).
    pub(super) fn start(pacemaker: Pacemaker, first_tick: Stamp, interval: Duration) -> Self {
        State::Running(Running {
            pacemaker,
            last_tick: first_tick.sub(interval),
        })
    }

    /// The heartbeat runs (live or closing): ticks count.
    #[inline(always)]
    pub(super) fn runs(&self) -> bool {
        matches!(self, State::Running(_))
    }

    #[inline(always)]
    pub(super) fn running(&mut self) -> Option<&mut Running> {
        match self {
            State::Running(running) => Some(running),
            _ => None,
        }
    }

    /// Running and not closing: heartbeat frames can be written.
    #[inline]
    pub(super) fn is_live(&self) -> bool {
        matches!(self, State::Running(running) if !running.pacemaker.is_closing())
    }

    /// The details of the death, once the peer is dead.
    pub(super) fn death(&mut self) -> Option<&mut Death> {
        match self {
            State::Dead(death) => Some(death),
            _ => None,
        }
    }

    /// The moment the ticker should wake the connection: the next tick while running (at
    /// `interval`, the hub's), the end of the close timeout once dead.
    pub(super) fn deadline(&self, interval: Duration) -> Option<Stamp> {
        match self {
            State::Running(running) => Some(running.next_tick(interval)),
            State::Dead(death) => Some(death.close_by),
            State::Ended => None,
        }
    }

    /// A Close frame went out or came in.
    #[inline]
    pub(super) fn close(&mut self) {
        if let Some(running) = self.running() {
            running.pacemaker.close();
        }
    }

    /// The peer missed too many ticks; the Close frame to it may take until `close_by`.
    pub(super) fn die(&mut self, dead: Dead, close_by: Stamp) {
        *self = State::Dead(Box::new(Death {
            dead,
            reported: false,
            close: DeadClose::Unsent,
            close_by,
        }));
    }

    /// The inner stream ended.
    pub(super) fn end(&mut self) {
        *self = State::Ended;
    }

    /// The death, the first time the stream is asked after it; `None` after that.
    pub(super) fn report_death(&mut self) -> Option<Dead> {
        let death = self.death()?;
        (!death.reported).then(|| {
            death.reported = true;
            death.dead
        })
    }

    /// Ticks in a row the peer missed so far.
    pub(super) fn missed(&self) -> u32 {
        match self {
            State::Running(running) => running.pacemaker.missed(),
            State::Dead(death) => death.dead.missed(),
            State::Ended => 0,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            State::Running(running) => match running.phase() {
                Phase::Live => "live",
                Phase::Closing => "closing",
            },
            State::Dead(_) => "dead",
            State::Ended => "ended",
        }
    }
}

/// What the heartbeat owes the connection between two polls, and who holds the sink and the
/// pongs. One byte, so that a per-message path tests everything it cares about at once.
#[derive(Clone, Copy)]
pub(super) struct Flags(u8);

impl Flags {
    /// The latest ping is due but not yet handed to the sink (the sink was full or reserved).
    /// A newer tick replaces it.
    pub(super) const PING_DUE: u8 = 1;
    /// A heartbeat frame was handed to the sink but not flushed yet.
    pub(super) const UNFLUSHED: u8 = 1 << 1;
    /// The peer pinged: the WebSocket library queued a pong that may not be flushed yet.
    /// Nothing more is read until it is (see `inbound`).
    pub(super) const PONG_OWED: u8 = 1 << 2;
    /// The handler got `Ready` from `poll_ready` and owns the next `start_send`.
    pub(super) const RESERVED: u8 = 1 << 3;
    /// `poll_next` has not run since the last ping went out (nor ever, at first). While the
    /// ping waits for its answer, the writing side reads the pong itself (a send-only
    /// handler; see `inbound`).
    pub(super) const UNREAD: u8 = 1 << 4;
    /// The rare box holds an answer to the peer's application ping, not yet sent.
    pub(super) const ANSWER_OWED: u8 = 1 << 5;
    /// The rare box holds a message read ahead for the reader.
    pub(super) const KEPT: u8 = 1 << 6;
    /// An interval change moved the deadline (`Conn::move_interval`), maybe into the past:
    /// the tick it brings is not late by the runtime's fault, and its lateness is not counted
    /// (`lag`).
    pub(super) const MOVED: u8 = 1 << 7;

    /// A new connection's: nothing owed, nothing read. (Nothing filed either: a new
    /// connection's hub starts due, so that its first poll takes the full path and files.)
    pub(super) const fn new() -> Self {
        Flags(Self::UNREAD)
    }

    /// Whether any of `bits` is set.
    #[inline(always)]
    pub(super) fn any(self, bits: u8) -> bool {
        self.0 & bits != 0
    }

    #[inline(always)]
    pub(super) fn set(&mut self, bits: u8) {
        self.0 |= bits;
    }

    #[inline(always)]
    pub(super) fn clear(&mut self, bits: u8) {
        self.0 &= !bits;
    }

    /// Sets `bits` if `on`, without a branch.
    #[inline(always)]
    pub(super) fn set_if(&mut self, bits: u8, on: bool) {
        self.0 |= bits & 0u8.wrapping_sub(u8::from(on));
    }

    /// Clears `bits` if `on`, without a branch.
    #[inline(always)]
    pub(super) fn clear_if(&mut self, bits: u8, on: bool) {
        self.0 &= !(bits & 0u8.wrapping_sub(u8::from(on)));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn running() -> State {
        let now = Instant::now();
        State::start(Pacemaker::new(7, now), Stamp::new(now), SECOND)
    }

    #[test]
    fn a_connection_starts_live_and_closes_once() {
        let mut state = running();
        assert_eq!(state.name(), "live");
        assert!(state.runs() && state.is_live());
        state.close();
        assert_eq!(state.name(), "closing");
        assert!(state.runs() && !state.is_live());
        state.close();
        assert_eq!(state.name(), "closing");
    }

    #[test]
    fn the_next_tick_is_one_interval_in_force_after_the_last() {
        // Started with its first tick at `t` under one second: the tick that never was is at
        // `t - 1 s`, so a new interval moves the first tick with it.
        let t = Stamp::new(Instant::now());
        let state = State::start(Pacemaker::new(7, t.instant()), t, SECOND);
        assert_eq!(state.deadline(SECOND), Some(t));
        assert_eq!(state.deadline(3 * SECOND), Some(t.add(2 * SECOND)));
        assert_eq!(state.deadline(SECOND / 2), Some(t.sub(SECOND / 2)));
    }

    #[test]
    fn death_carries_its_details_and_is_reported_once() {
        let mut state = running();
        let close_by = Stamp::new(Instant::now()).add(Duration::from_secs(1));
        state.die(Dead::new(3, Duration::from_secs(4)), close_by);
        assert_eq!(state.name(), "dead");
        assert!(!state.runs());
        assert_eq!(state.deadline(SECOND), Some(close_by));
        assert_eq!(state.missed(), 3);
        // Closing a dead connection changes nothing.
        state.close();
        assert_eq!(state.name(), "dead");
        let dead = state.report_death().unwrap();
        assert_eq!(
            (dead.missed(), dead.silent_for()),
            (3, Duration::from_secs(4))
        );
        assert!(state.report_death().is_none());
    }

    #[test]
    fn an_ended_connection_has_no_deadline() {
        let mut state = running();
        state.end();
        assert_eq!(state.name(), "ended");
        assert_eq!(state.deadline(SECOND), None);
        assert!(state.report_death().is_none());
    }

    #[test]
    fn a_state_is_a_running_heartbeat_with_its_tag_in_a_spare_value() {
        // The pacemaker (24 bytes) and the last tick: no room taken by the tag.
        assert_eq!(std::mem::size_of::<State>(), 32);
    }

    #[test]
    fn flags_start_unread_and_change_only_the_bits_named() {
        let mut flags = Flags::new();
        assert!(flags.any(Flags::UNREAD));
        assert!(!flags.any(Flags::PING_DUE | Flags::UNFLUSHED | Flags::PONG_OWED | Flags::MOVED));
        flags.set(Flags::PING_DUE | Flags::KEPT | Flags::MOVED);
        flags.clear(Flags::MOVED);
        assert!(flags.any(Flags::PING_DUE) && flags.any(Flags::KEPT));
        assert!(!flags.any(Flags::MOVED));
        flags.set_if(Flags::RESERVED, false);
        assert!(!flags.any(Flags::RESERVED));
        flags.set_if(Flags::RESERVED, true);
        assert!(flags.any(Flags::RESERVED));
        flags.clear_if(Flags::RESERVED, false);
        assert!(flags.any(Flags::RESERVED));
        flags.clear_if(Flags::RESERVED, true);
        assert!(!flags.any(Flags::RESERVED) && flags.any(Flags::UNREAD | Flags::PING_DUE));
    }
}
