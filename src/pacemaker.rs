//! The liveness state machine, without I/O, timers or clock reads: the caller tells it what
//! arrived and when a tick happened (with the time), and it answers with what to do.
//!
//! The rules (the crate docs, "Semantics"): at each tick, a peer heard since the previous tick is
//! alive (`missed = 0`, and the pings sent so far are forgiven); otherwise, if a ping is
//! outstanding, `missed += 1`, and at `max_missed` the peer is dead. Then a ping is sent,
//! unless `idle_only` is set and the peer already proved alive in that interval.

use std::time::{Duration, Instant};

use crate::config::Rules;
use crate::error::Dead;
use crate::stamp::Stamp;

/// What the caller must do after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Send a ping carrying this sequence number. It counts as sent from now on, even if the
    /// sink cannot take it.
    Ping(u64),
    /// Nothing to send (`idle_only`, and the peer proved alive in the interval).
    Skip,
    /// The peer is dead.
    Dead(Dead),
}

/// What a received pong turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pong {
    /// It answers the latest ping that reached the sink: a round-trip sample.
    Rtt(Duration),
    /// It answers an outstanding ping, but not one with a known send time.
    Answer,
    /// Unsolicited, replayed or foreign: inbound traffic, nothing more.
    Unmatched,
}

#[derive(Debug)]
pub(crate) struct Pacemaker {
    /// `HEARD`, `ANSWERED`, `PROGRESSED`, `PINGED`: one byte, a connection's size is counted.
    flags: u8,
    /// A Close frame went out or came in: pings can no longer be written, and the ones a
    /// tick asks for count as unanswered. A real `bool`: its spare values are where `State`
    /// keeps its tag.
    closing: bool,
    /// Ticks in a row without life while a ping was outstanding. At most `max_missed`, which
    /// `config::checked_max_missed` keeps within `u16`.
    missed: u16,
    /// Pings `next_seq - unanswered..next_seq` may still be answered (a pong matches one of
    /// them). Saturates: past `u32::MAX` outstanding pings, the oldest stop matching.
    unanswered: u32,
    /// Sequence number of the next ping. 32 bits, wrapping: unpredictable enough that a
    /// peer cannot answer a ping it never saw, and exact in a JavaScript number.
    next_seq: u32,
    /// When the latest ping (`next_seq - 1`) was handed to the sink, in microseconds after
    /// `last_alive` (`UNWRITTEN` if not yet, or not within 71 minutes of it): only it gives
    /// an RTT sample. (4 bytes where a stamp takes 8: a connection's size is counted.)
    written: u32,
    /// The tick at which the peer was last found alive (initially: the handshake).
    last_alive: Stamp,
}

/// `written` of a ping not handed to the sink, or written too long after `last_alive`.
const UNWRITTEN: u32 = u32::MAX;

/// Any frame arrived since the last tick.
const HEARD: u8 = 1;
/// A pong answering one of our pings arrived since the last tick.
const ANSWERED: u8 = 1 << 1;
/// Bytes moved on the transport since the last tick (a slow peer mid-message).
const PROGRESSED: u8 = 1 << 2;
/// A ping went out since the peer was last found alive at a tick: a silent tick counts as
/// missed only then.
const PINGED: u8 = 1 << 3;

impl Pacemaker {
    /// A pacemaker for a connection whose handshake completed at `now`. The handshake counts
    /// as the first sign of life. `first_seq` should be unpredictable, so that pongs forged
    /// or replayed by a peer do not match.
    pub(crate) fn new(first_seq: u32, now: Instant) -> Self {
        Self {
            flags: HEARD | ANSWERED,
            closing: false,
            missed: 0,
            unanswered: 0,
            next_seq: first_seq,
            written: UNWRITTEN,
            last_alive: Stamp::new(now),
        }
    }

    /// Some frame (data, ping, close) arrived. No clock: this runs for every message.
    #[inline]
    pub(crate) fn on_inbound(&mut self) {
        self.flags |= HEARD;
    }

    /// A pong control frame arrived at `now`, carrying `payload` (ours are 8-byte sequence
    /// numbers; anything else is unmatched).
    pub(crate) fn on_pong(&mut self, payload: &[u8], now: Instant) -> Pong {
        match <[u8; 8]>::try_from(payload) {
            Ok(bytes) => self.on_answer(u64::from_be_bytes(bytes), now),
            Err(_) => {
                self.flags |= HEARD;
                Pong::Unmatched
            }
        }
    }

    /// An application-level pong arrived at `now`, echoing `seq` if the protocol carries one.
    /// Without one it answers the latest ping, if one is outstanding.
    pub(crate) fn on_app_pong(&mut self, seq: Option<u64>, now: Instant) -> Pong {
        match seq {
            Some(seq) => self.on_answer(seq, now),
            None if self.awaiting_pong() => self.on_answer(self.latest_seq(), now),
            None => {
                self.flags |= HEARD;
                Pong::Unmatched
            }
        }
    }

    fn on_answer(&mut self, seq: u64, now: Instant) -> Pong {
        self.flags |= HEARD;
        // Ours are 32-bit: anything wider is foreign.
        let Ok(seq) = u32::try_from(seq) else {
            return Pong::Unmatched;
        };
        // Pings sent after `seq`: it is outstanding if fewer than `unanswered` were. (A
        // future or foreign `seq` wraps to a count far beyond.)
        let after = self.next_seq.wrapping_sub(seq).wrapping_sub(1);
        if after >= self.unanswered {
            return Pong::Unmatched;
        }
        // The pings up to `seq` are answered with it; those after it still may be.
        self.unanswered = after;
        self.flags |= ANSWERED;
        if after == 0 && self.written != UNWRITTEN {
            let written_at = self
                .last_alive
                .add(Duration::from_micros(u64::from(self.written)));
            self.written = UNWRITTEN;
            Pong::Rtt(Stamp::new(now).since(written_at))
        } else {
            Pong::Answer
        }
    }

    /// Bytes moved on the transport (see [`crate::Progress`]): the peer is alive, even if no
    /// frame has completed, in either liveness mode (a pong can be stuck behind a huge
    /// message).
    pub(crate) fn on_progress(&mut self) {
        self.flags |= PROGRESSED;
    }

    /// The ping `seq` was handed to the sink at `now`.
    pub(crate) fn on_ping_written(&mut self, seq: u64, now: Instant) {
        if seq == self.latest_seq() {
            // Truncated to the microsecond: the sample errs long, by less than one.
            let after = Stamp::new(now).since(self.last_alive).as_micros();
            self.written = u32::try_from(after)
                .ok()
                .filter(|&us| us != UNWRITTEN)
                .unwrap_or(UNWRITTEN);
        }
    }

    /// The sequence number of the latest ping.
    pub(crate) fn latest_seq(&self) -> u64 {
        u64::from(self.next_seq.wrapping_sub(1))
    }

    /// A tick happened at `now`. The settings are the caller's, kept once per connection.
    pub(crate) fn on_tick(&mut self, rules: &Rules, now: Instant) -> Tick {
        let alive = self.alive(rules);
        if alive {
            self.missed = 0;
            self.flags &= !PINGED;
            self.last_alive = Stamp::new(now);
            // `written` counts from `last_alive`, which moved: an answer to the ping out
            // (if this tick sends none, with `idle_only`) gives no sample.
            self.written = UNWRITTEN;
        } else if self.flags & PINGED != 0 {
            // No overflow: the peer is dead at `max_missed`, which fits in `u16`.
            self.missed += 1;
            if u32::from(self.missed) >= rules.max_missed() {
                return Tick::Dead(Dead::new(
                    self.missed(),
                    Stamp::new(now).since(self.last_alive),
                ));
            }
        }
        // The signs of life are the interval's; `PINGED` lasts until the peer is alive.
        self.flags &= PINGED;
        // "Busy" is what proves life: with `any_inbound_is_alive` off, data alone must not
        // save pings, or a peer that talks but never answers could never be found dead.
        if rules.idle_only() && alive {
            return Tick::Skip;
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.unanswered = self.unanswered.saturating_add(1);
        self.flags |= PINGED;
        self.written = UNWRITTEN;
        Tick::Ping(u64::from(seq))
    }

    /// The peer showed life since the last tick.
    fn alive(&self, rules: &Rules) -> bool {
        let life = PROGRESSED
            | if rules.any_inbound_is_alive() {
                HEARD
            } else {
                ANSWERED
            };
        self.flags & life != 0
    }

    /// A tick now would count a miss: no life since the last tick, and a ping went out
    /// since the peer was last found alive.
    pub(crate) fn would_miss(&self, rules: &Rules) -> bool {
        !self.alive(rules) && self.flags & PINGED != 0
    }

    /// A ping is out that no pong has answered yet.
    #[inline]
    pub(crate) fn awaiting_pong(&self) -> bool {
        self.unanswered != 0
    }

    /// The connection started closing: see `closing`.
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// When the peer was last found alive: the handshake, until a tick finds it alive.
    pub(crate) fn last_alive(&self) -> Stamp {
        self.last_alive
    }

    /// Silent ticks in a row so far.
    pub(crate) fn missed(&self) -> u32 {
        u32::from(self.missed)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
