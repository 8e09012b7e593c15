//! [`Filing`]: a connection's filing with its runtime's ticker, as the connection's hub
//! records it: the one word through which the connection (filing, stopping the carry,
//! taking a carried tick) and the ticker (firing, carrying a tick on by an interval) agree
//! on which filing is the connection's own. ARCHITECTURE.md, "Ticks and the schedule".

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::Duration;

use crate::sync::AtomicU32;

/// A tick's filing (cleared when the connection ends: [`Filing::stop_carrying`]).
const PERIODIC: u32 = 1;
/// The ticker carried the filing on by an interval: the connection's next tick is filed
/// ([`Filing::take_carried`]).
const CARRIED: u32 = 1 << 1;
/// Set in every filing's code: the connection filed at least once.
const FILED: u32 = 1 << 31;
/// The bits of the millisecond.
const MOMENT: u32 = !(FILED | CARRIED | PERIODIC);

/// The code of the connection's latest filing: `FILED`, its millisecond (modulo 2^29, 6
/// days: a connection's filings fire within two, so equal milliseconds are the same filing),
/// `PERIODIC` if it is a tick's, which the ticker carries on by an interval when it fires,
/// and `CARRIED` once it did. Zero: never filed.
#[derive(Debug, Default)]
pub(crate) struct Filing(AtomicU32);

/// What firing a filing made of it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The connection filed again since: its filing is another one, which will wake it.
    Stale,
    /// The close timeout's, or a tick's the connection moved meanwhile: woken, not carried.
    Once,
    /// A tick's: woken, and filed again an interval later, at this millisecond.
    Carried(u64),
}

fn code(ms: u64, periodic: bool) -> u32 {
    FILED | ((ms as u32) << 2 & MOMENT) | if periodic { PERIODIC } else { 0 }
}

impl Filing {
    /// The ticker files the connection at `ms` (under its lock): a tick's filing if
    /// `periodic`, else the close timeout's.
    ///
    /// A swap, not a store: the word changes only by read-modify-writes, each ordered with
    /// the ticker's `carry` (a filing is rare: once per connection, per late tick, per
    /// interval change). loom, which checks this protocol, lets a plain store fall between
    /// the read and the write of a concurrent compare-exchange (tokio-rs/loom#254).
    pub(crate) fn file(&self, ms: u64, periodic: bool) {
        self.0.swap(code(ms, periodic), Relaxed);
    }

    /// The connection's filing at `ms` fires, at `now_ms`; `interval` is the connection's.
    /// A tick's is carried on: filed again at `ms` plus the interval, where the connection's
    /// next tick falls when this one runs on time. The connection then need not file at its
    /// tick, which on a busy server saves every tick a turn at the ticker's lock, shared by
    /// all workers. If the tick runs late (the schedule restarts) or its interval changed,
    /// the connection files where its deadline is, and this carried filing, no longer its
    /// own, is dropped without a wake when it fires (`Stale`).
    ///
    /// The interval is rounded up to the millisecond: the carried filing is never earlier
    /// than the next tick, so it never wakes the connection for nothing. A filing fired more
    /// than an interval late (the runtime is behind) is not carried: the tick will restart
    /// the schedule, and the carried filing would already be due, to be carried again at
    /// once.
    pub(crate) fn carry(&self, ms: u64, now_ms: u64, interval: Duration) -> Fired {
        let code_now = self.0.load(Acquire);
        if code_now & MOMENT != code(ms, false) & MOMENT {
            return Fired::Stale;
        }
        if code_now & PERIODIC == 0 {
            return Fired::Once;
        }
        let step = u64::try_from((interval + Duration::from_nanos(999_999)).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let next = ms.saturating_add(step);
        if next <= now_ms {
            return Fired::Once;
        }
        match self
            .0
            .compare_exchange(code_now, code(next, true) | CARRIED, AcqRel, Acquire)
        {
            Ok(_) => Fired::Carried(next),
            // The connection filed meanwhile: its new filing stands.
            Err(_) => Fired::Once,
        }
    }

    /// The connection ended: its tick's filing is not carried on any more (it fires once
    /// more, then is gone).
    pub(crate) fn stop_carrying(&self) {
        self.0.fetch_and(!PERIODIC, Relaxed);
    }

    /// Whether the connection ever filed with the ticker.
    pub(crate) fn ever_filed(&self) -> bool {
        self.0.load(Relaxed) != 0
    }

    /// At a tick: whether the ticker carried the tick's filing on by an interval since the
    /// last call (then the next tick, if on schedule, is filed already).
    pub(crate) fn take_carried(&self) -> bool {
        self.0.load(Relaxed) & CARRIED != 0 && self.0.fetch_and(!CARRIED, Relaxed) & CARRIED != 0
    }
}

#[cfg(all(test, ws_heartbeat_loom))]
mod loom_tests;

#[cfg(all(test, not(ws_heartbeat_loom)))]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_ticks_filing_is_carried_by_its_interval_once_per_firing() {
        let filing = Filing::default();
        assert!(!filing.ever_filed());
        filing.file(1000, true);
        assert!(filing.ever_filed() && !filing.take_carried());
        assert_eq!(filing.carry(1000, 1000, SECOND), Fired::Carried(2000));
        assert!(filing.take_carried());
        assert!(!filing.take_carried(), "taken once");
        // The carried filing is the connection's own: it fires and is carried again.
        assert_eq!(filing.carry(2000, 2001, SECOND), Fired::Carried(3000));
        // A sub-millisecond interval is rounded up, never down to nothing.
        assert_eq!(
            filing.carry(3000, 3000, Duration::from_micros(1500)),
            Fired::Carried(3002)
        );
    }

    #[test]
    fn a_stale_filing_wakes_nothing_and_a_close_timeout_fires_once() {
        let filing = Filing::default();
        filing.file(1000, true);
        // The connection filed elsewhere since (its deadline moved).
        filing.file(1500, true);
        assert_eq!(filing.carry(1000, 1000, SECOND), Fired::Stale);
        filing.file(1700, false);
        assert_eq!(filing.carry(1700, 1700, SECOND), Fired::Once);
    }

    #[test]
    fn no_carry_when_ended_or_fired_an_interval_late() {
        let filing = Filing::default();
        filing.file(1000, true);
        filing.stop_carrying();
        assert_eq!(filing.carry(1000, 1000, SECOND), Fired::Once);
        filing.file(1000, true);
        assert_eq!(
            filing.carry(1000, 2000, SECOND),
            Fired::Once,
            "the next is due"
        );
        assert!(!filing.take_carried());
    }
}
