//! The liveness state machine, without I/O, timers or clock reads: the caller tells it what
//! arrived and when a tick happened (with the time), and it answers with what to do.
//!
//! The rules (ARCHITECTURE.md, "Liveness: life, misses, death"): at each tick, a peer heard since the previous tick is
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
mod tests {
    use super::*;

    fn config(max_missed: u32) -> Rules {
        Rules::default().with_max_missed(max_missed)
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn ping(tick: Tick) -> u64 {
        match tick {
            Tick::Ping(seq) => seq,
            other => panic!("expected a ping, got {other:?}"),
        }
    }

    #[test]
    fn silent_peer_dies_after_exactly_max_missed_pings() {
        // 0 s: handshake. 10 s: alive (the handshake), ping 1. 20, 30 s: missed 1, 2; pings
        // 2, 3. 40 s: missed 3: dead, silent for 30 s counted from the tick at 10 s that
        // last found it alive.
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(100, t0);
        assert_eq!(pm.on_tick(&cfg, at(t0, 10)), Tick::Ping(100));
        assert_eq!(pm.on_tick(&cfg, at(t0, 20)), Tick::Ping(101));
        assert_eq!(pm.missed(), 1);
        assert_eq!(pm.on_tick(&cfg, at(t0, 30)), Tick::Ping(102));
        assert_eq!(pm.missed(), 2);
        assert_eq!(
            pm.on_tick(&cfg, at(t0, 40)),
            Tick::Dead(Dead::new(3, Duration::from_secs(30)))
        );
    }

    #[test]
    fn answered_pings_keep_the_peer_alive_forever() {
        let t0 = Instant::now();
        let cfg = config(1);
        let mut pm = Pacemaker::new(7, t0);
        for k in 1..=1000 {
            let seq = ping(pm.on_tick(&cfg, at(t0, 10 * k)));
            pm.on_ping_written(seq, at(t0, 10 * k));
            let rtt = pm.on_pong(
                &seq.to_be_bytes(),
                at(t0, 10 * k) + Duration::from_millis(3),
            );
            assert_eq!(rtt, Pong::Rtt(Duration::from_millis(3)));
        }
    }

    #[test]
    fn any_inbound_resets_the_count_by_default() {
        // 10 s: ping 1. 20 s: missed 1, ping 2. 25 s: data. 30 s: alive, missed 0.
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(0, t0);
        ping(pm.on_tick(&cfg, at(t0, 10)));
        ping(pm.on_tick(&cfg, at(t0, 20)));
        assert_eq!(pm.missed(), 1);
        pm.on_inbound();
        ping(pm.on_tick(&cfg, at(t0, 30)));
        assert_eq!(pm.missed(), 0);
    }

    #[test]
    fn without_any_inbound_only_an_answer_counts() {
        let t0 = Instant::now();
        let cfg = config(2).with_any_inbound_is_alive(false);
        let mut pm = Pacemaker::new(0, t0);
        let first = ping(pm.on_tick(&cfg, at(t0, 10)));
        pm.on_inbound();
        assert_eq!(pm.on_pong(b"not ours", at(t0, 11)), Pong::Unmatched);
        ping(pm.on_tick(&cfg, at(t0, 20)));
        assert_eq!(pm.missed(), 1);
        // An answer to the older, still outstanding ping counts.
        assert_eq!(pm.on_pong(&first.to_be_bytes(), at(t0, 21)), Pong::Answer);
        ping(pm.on_tick(&cfg, at(t0, 30)));
        assert_eq!(pm.missed(), 0);
        pm.on_inbound();
        ping(pm.on_tick(&cfg, at(t0, 40)));
        assert!(matches!(pm.on_tick(&cfg, at(t0, 50)), Tick::Dead(d) if d.missed() == 2));
    }

    #[test]
    fn unmatched_and_replayed_pongs_give_no_sample() {
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(u32::MAX, t0);
        let seq = ping(pm.on_tick(&cfg, at(t0, 10)));
        assert_eq!(seq, u64::from(u32::MAX));
        pm.on_ping_written(seq, at(t0, 10));
        assert_eq!(pm.on_pong(&[], at(t0, 11)), Pong::Unmatched);
        assert_eq!(pm.on_pong(&[0; 9], at(t0, 11)), Pong::Unmatched);
        assert_eq!(pm.on_pong(&0u64.to_be_bytes(), at(t0, 11)), Pong::Unmatched);
        // Ours are 32-bit: the same low bits with high ones set are foreign.
        assert_eq!(
            pm.on_pong(&(seq | 1 << 32).to_be_bytes(), at(t0, 11)),
            Pong::Unmatched
        );
        assert!(pm.awaiting_pong());
        assert_eq!(
            pm.on_pong(&seq.to_be_bytes(), at(t0, 12)),
            Pong::Rtt(Duration::from_secs(2))
        );
        assert!(!pm.awaiting_pong());
        // The same payload again is a replay.
        assert_eq!(pm.on_pong(&seq.to_be_bytes(), at(t0, 13)), Pong::Unmatched);
        // Sequence numbers wrap.
        assert_eq!(ping(pm.on_tick(&cfg, at(t0, 20))), 0);
    }

    #[test]
    fn ping_the_sink_could_not_take_counts_as_unanswered() {
        // The adapter never calls on_ping_written: the pings still count.
        let t0 = Instant::now();
        let cfg = config(2);
        let mut pm = Pacemaker::new(0, t0);
        ping(pm.on_tick(&cfg, at(t0, 10)));
        ping(pm.on_tick(&cfg, at(t0, 20)));
        assert!(matches!(pm.on_tick(&cfg, at(t0, 30)), Tick::Dead(_)));
    }

    #[test]
    fn idle_only_skips_busy_ticks_and_detects_one_interval_later() {
        // 0 s handshake (busy). 10 s: skip. 20 s: ping. 30, 40 s: missed 1, 2. 50 s: dead.
        let t0 = Instant::now();
        let cfg = config(3).with_idle_only(true);
        let mut pm = Pacemaker::new(0, t0);
        assert_eq!(pm.on_tick(&cfg, at(t0, 10)), Tick::Skip);
        ping(pm.on_tick(&cfg, at(t0, 20)));
        ping(pm.on_tick(&cfg, at(t0, 30)));
        ping(pm.on_tick(&cfg, at(t0, 40)));
        assert!(matches!(pm.on_tick(&cfg, at(t0, 50)), Tick::Dead(_)));
    }

    #[test]
    fn idle_only_forgives_pings_sent_before_the_peer_was_heard() {
        // 10 s: skip (handshake). 20 s: ping A. 25 s: data (A unanswered). 30 s: alive, skip.
        // 40 s: A is forgiven, nothing outstanding: no miss; ping B.
        let t0 = Instant::now();
        let cfg = config(1).with_idle_only(true);
        let mut pm = Pacemaker::new(0, t0);
        assert_eq!(pm.on_tick(&cfg, at(t0, 10)), Tick::Skip);
        ping(pm.on_tick(&cfg, at(t0, 20)));
        pm.on_inbound();
        assert_eq!(pm.on_tick(&cfg, at(t0, 30)), Tick::Skip);
        ping(pm.on_tick(&cfg, at(t0, 40)));
        assert_eq!(pm.missed(), 0);
        assert!(matches!(pm.on_tick(&cfg, at(t0, 50)), Tick::Dead(_)));
    }

    #[test]
    fn an_unnumbered_app_pong_answers_the_latest_ping_if_one_is_outstanding() {
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(0, t0);
        assert_eq!(pm.on_app_pong(None, at(t0, 1)), Pong::Unmatched);
        let a = ping(pm.on_tick(&cfg, at(t0, 10)));
        pm.on_ping_written(a, at(t0, 10));
        let b = ping(pm.on_tick(&cfg, at(t0, 20)));
        pm.on_ping_written(b, at(t0, 20));
        assert_eq!(
            pm.on_app_pong(None, at(t0, 21)),
            Pong::Rtt(Duration::from_secs(1))
        );
        assert!(!pm.awaiting_pong());
        assert_eq!(pm.on_app_pong(None, at(t0, 22)), Pong::Unmatched);
        assert_eq!(pm.on_app_pong(Some(a), at(t0, 22)), Pong::Unmatched);
    }

    #[test]
    fn transport_progress_is_life_in_either_mode() {
        // Only answers count, none come (a huge message holds them back), but bytes move
        // every interval: never dead. Then they stop: dead two ticks later.
        let t0 = Instant::now();
        let cfg = config(2).with_any_inbound_is_alive(false);
        let mut pm = Pacemaker::new(0, t0);
        for k in 1..=10 {
            pm.on_progress();
            ping(pm.on_tick(&cfg, at(t0, 10 * k)));
            assert_eq!(pm.missed(), 0);
        }
        ping(pm.on_tick(&cfg, at(t0, 110)));
        assert!(matches!(pm.on_tick(&cfg, at(t0, 120)), Tick::Dead(_)));
    }

    #[test]
    fn past_u32_max_outstanding_pings_the_oldest_stop_matching() {
        // A peer that talks but never answers: pings pile up, forgiven but still answerable.
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(0, t0);
        ping(pm.on_tick(&cfg, at(t0, 10)));
        // As if u32::MAX pings were out (0 s to 10 s: far too many ticks to run): every
        // sequence number but the next one, oldest first.
        let next = 1u32 << 31;
        pm.next_seq = next;
        pm.unanswered = u32::MAX;
        let oldest = u64::from(next.wrapping_add(1));
        pm.on_inbound();
        let newest = ping(pm.on_tick(&cfg, at(t0, 20)));
        assert_eq!(newest, u64::from(next));
        assert_eq!(pm.unanswered, u32::MAX);
        // The window moved by one: the oldest ping no longer matches, the next oldest does.
        assert_eq!(
            pm.on_pong(&oldest.to_be_bytes(), at(t0, 21)),
            Pong::Unmatched
        );
        assert_eq!(
            pm.on_pong(&(oldest + 1).to_be_bytes(), at(t0, 21)),
            Pong::Answer
        );
        assert_eq!(pm.unanswered, u32::MAX - 1);
        assert_eq!(
            pm.on_pong(&(oldest + 1).to_be_bytes(), at(t0, 21)),
            Pong::Unmatched
        );
        assert_eq!(pm.on_pong(&newest.to_be_bytes(), at(t0, 22)), Pong::Answer);
        assert!(!pm.awaiting_pong());
        assert_eq!(
            pm.on_pong(&(newest + 1).to_be_bytes(), at(t0, 22)),
            Pong::Unmatched
        );
    }

    #[test]
    fn a_pacemaker_takes_24_bytes() {
        // Every connection holds one (with `State`'s tag in `closing`: see its test).
        assert_eq!(std::mem::size_of::<Pacemaker>(), 24);
    }

    #[test]
    fn a_sample_needs_a_ping_written_within_71_minutes_of_the_last_life() {
        // The write time is kept as microseconds after `last_alive`, in 32 bits.
        let t0 = Instant::now();
        let cfg = config(3);
        let mut pm = Pacemaker::new(0, t0);
        // 1 h: alive (the handshake); ping written 4 294.967 s later, at the last
        // microsecond that fits: a sample, exact.
        let hour = Duration::from_secs(3600);
        let a = ping(pm.on_tick(&cfg, t0 + hour));
        let last = Duration::from_micros(u64::from(u32::MAX - 1));
        pm.on_ping_written(a, t0 + hour + last);
        assert_eq!(
            pm.on_pong(
                &a.to_be_bytes(),
                t0 + hour + last + Duration::from_millis(5)
            ),
            Pong::Rtt(Duration::from_millis(5))
        );
        // 3 h: alive; a ping written one microsecond later than that: an answer, no sample.
        let b = ping(pm.on_tick(&cfg, t0 + 3 * hour));
        pm.on_ping_written(b, t0 + 3 * hour + last + Duration::from_micros(1));
        assert_eq!(pm.on_pong(&b.to_be_bytes(), t0 + 5 * hour), Pong::Answer);
    }

    #[test]
    fn with_idle_only_a_pong_after_a_skipped_tick_gives_no_sample() {
        // 10 s: skip (the handshake). 20 s: ping A, written. 25 s: data. 30 s: alive, skip:
        // `last_alive` moves, and the write time with it. 31 s: A's answer: an answer, no
        // sample. As without `idle_only`, where the tick at 30 s would send a new ping.
        let t0 = Instant::now();
        let cfg = config(3).with_idle_only(true);
        let mut pm = Pacemaker::new(0, t0);
        assert_eq!(pm.on_tick(&cfg, at(t0, 10)), Tick::Skip);
        let a = ping(pm.on_tick(&cfg, at(t0, 20)));
        pm.on_ping_written(a, at(t0, 20));
        pm.on_inbound();
        assert_eq!(pm.on_tick(&cfg, at(t0, 30)), Tick::Skip);
        assert_eq!(pm.on_pong(&a.to_be_bytes(), at(t0, 31)), Pong::Answer);
    }

    #[test]
    fn rtt_sample_needs_the_latest_written_ping() {
        let t0 = Instant::now();
        let cfg = config(5);
        let mut pm = Pacemaker::new(0, t0);
        let a = ping(pm.on_tick(&cfg, at(t0, 10)));
        pm.on_ping_written(a, at(t0, 10));
        let b = ping(pm.on_tick(&cfg, at(t0, 20)));
        pm.on_ping_written(b, at(t0, 20));
        // The answer to `a` arrives late: an answer, but its send time was overwritten.
        assert_eq!(pm.on_pong(&a.to_be_bytes(), at(t0, 21)), Pong::Answer);
        assert_eq!(
            pm.on_pong(&b.to_be_bytes(), at(t0, 22)),
            Pong::Rtt(Duration::from_secs(2))
        );
    }
}

#[cfg(test)]
mod properties {
    //! The timing bounds of ARCHITECTURE.md ("Bounds"), checked over random peers: ticks every `I` from a
    //! jittered start, a peer that is heard at random times until it goes silent.
    use super::*;
    use proptest::prelude::*;

    const I: u64 = 1_000; // interval, in ms

    #[derive(Debug, Clone)]
    struct Scenario {
        max_missed: u32,
        any_inbound_is_alive: bool,
        idle_only: bool,
        first_tick: u64,
        /// Delays of the peer's answers to each ping, in ms (`None`: no answer).
        answers: Vec<Option<u64>>,
        /// Times at which the peer sends data, in ms.
        data: Vec<u64>,
        /// The peer sends nothing after this time.
        silent_from: u64,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            1u32..6,
            any::<bool>(),
            any::<bool>(),
            1..=I,
            prop::collection::vec(prop::option::weighted(0.8, 0..2 * I), 0..40),
            prop::collection::vec(0..40 * I, 0..40),
            0..40 * I,
        )
            .prop_map(
                |(
                    max_missed,
                    any_inbound_is_alive,
                    idle_only,
                    first_tick,
                    answers,
                    data,
                    silent_from,
                )| {
                    Scenario {
                        max_missed,
                        any_inbound_is_alive,
                        idle_only,
                        first_tick,
                        answers,
                        data,
                        silent_from,
                    }
                },
            )
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
    enum Event {
        // At equal times a tick comes first: the adapter polls its timer before the stream.
        Tick,
        Data,
        Pong(u64),
    }

    /// Runs the scenario; returns the time of death (ms), the time of the last frame that
    /// counts as life, and how many pings went unanswered in a row before death.
    fn run(s: &Scenario) -> (Option<u64>, u64, u32) {
        let t0 = Instant::now();
        let ms = |t: u64| t0 + Duration::from_millis(t);
        let config = Rules::default()
            .with_max_missed(s.max_missed)
            .with_any_inbound_is_alive(s.any_inbound_is_alive)
            .with_idle_only(s.idle_only);
        let mut pm = Pacemaker::new(0, t0);
        let mut queue: Vec<(u64, Event)> = s
            .data
            .iter()
            .filter(|&&t| t < s.silent_from)
            .map(|&t| (t, Event::Data))
            .collect();
        let mut last_life = 0; // the handshake
        let mut pings = 0usize;
        let mut unanswered_in_a_row = 0;
        let mut next_tick = s.first_tick;
        loop {
            queue.sort();
            let tick_first = queue.first().is_none_or(|&(t, _)| next_tick <= t);
            let (now, event) = if tick_first {
                (next_tick, Event::Tick)
            } else {
                queue.remove(0)
            };
            match event {
                Event::Tick => {
                    next_tick += I;
                    match pm.on_tick(&config, ms(now)) {
                        Tick::Dead(dead) => {
                            assert_eq!(dead.missed(), s.max_missed);
                            return (Some(now), last_life, unanswered_in_a_row);
                        }
                        Tick::Skip => {}
                        Tick::Ping(seq) => {
                            pm.on_ping_written(seq, ms(now));
                            let answer = s.answers.get(pings).copied().flatten();
                            pings += 1;
                            match answer.map(|d| now + d) {
                                Some(t) if t < s.silent_from => queue.push((t, Event::Pong(seq))),
                                _ => {}
                            }
                            unanswered_in_a_row += 1;
                        }
                    }
                    if now > 200 * I {
                        return (None, last_life, unanswered_in_a_row);
                    }
                }
                Event::Data => {
                    pm.on_inbound();
                    if s.any_inbound_is_alive {
                        last_life = now;
                        unanswered_in_a_row = 0;
                    }
                }
                Event::Pong(seq) => {
                    let answered = pm.on_pong(&seq.to_be_bytes(), ms(now)) != Pong::Unmatched;
                    if s.any_inbound_is_alive || answered {
                        last_life = now;
                        unanswered_in_a_row = 0;
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(2_000)))]

        #[test]
        fn a_peer_that_answers_in_time_is_never_dead(
            mut s in scenario(),
            delays in prop::collection::vec(0..I, 300),
        ) {
            s.silent_from = u64::MAX;
            s.answers = delays.into_iter().map(Some).collect();
            let (death, _, _) = run(&s);
            prop_assert_eq!(death, None);
        }

        #[test]
        fn death_lands_inside_the_documented_bounds(s in scenario()) {
            let (death, last_life, unanswered) = run(&s);
            let death = death.expect("a peer silent for 160 intervals must be dead");
            // With idle_only, both bounds move one interval later.
            let m = u64::from(s.max_missed) + u64::from(s.idle_only);
            let lower = last_life + I * m;
            let upper = last_life + I * (m + 1);
            prop_assert!(death > lower, "dead at {death} ms, not after {lower} ms");
            prop_assert!(death <= upper, "dead at {death} ms, after {upper} ms");
            // Exactly max_missed pings went out after the last sign of life, unanswered.
            prop_assert_eq!(unanswered, s.max_missed);
        }
    }
}
