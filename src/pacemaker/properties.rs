//! The timing bounds of the crate docs ("Semantics", Bounds), checked over random peers: ticks every `I` from a
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
