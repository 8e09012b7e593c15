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
