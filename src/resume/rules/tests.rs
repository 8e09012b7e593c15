//! The session rules without a socket: messages in and out as values, the ledger's counts.

use std::sync::Arc;

use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

use super::*;
use crate::protocol::{App, Json};
use crate::resume::ledger::HEADER;

/// A session's rules with a 1 000-byte buffer on both sides, heartbeating with `protocol`.
fn core(protocol: Protocol) -> Core {
    Core::new(Ledger::new(1000, 1000), protocol)
}

/// Keeps `msg`, as a handler's send does.
fn keep(core: &mut Core, msg: &Message) -> Option<AppMessage> {
    core.keep(msg, msg.as_app().expect("a data message"))
}

fn json() -> Protocol {
    Protocol::App(Arc::new(App {
        protocol: Arc::new(Json::new()),
        follow: None,
    }))
}

fn text(t: &str) -> Message {
    Message::text(t)
}

fn close(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: "".into(),
    }))
}

#[test]
fn data_is_delivered_and_counted_and_escaped_data_unescaped() {
    let mut core = core(Protocol::Control);
    assert_eq!(core.sort(text("hello")), Sorted::Deliver(text("hello")));
    assert_eq!(
        core.sort(text("\u{10}\u{10}\u{10}ack 1")),
        Sorted::Deliver(text("\u{10}ack 1")),
        "an escaped message arrives as what was sent"
    );
    assert_eq!(
        core.ack(0).map(|m| format!("{m:?}")),
        None,
        "no tick, under a quarter buffer"
    );
    assert_eq!(
        core.ack(1),
        Some(AppMessage::Text("\u{10}ack 2".into())),
        "a tick: two received"
    );
    assert_eq!(core.ack(1), None, "the count did not move");
    assert_eq!(core.ack(2), None, "a tick, but nothing new");
}

#[test]
fn a_quarter_of_the_peers_buffer_is_acknowledged_at_once() {
    // The peer's buffer: 1 000 bytes; a quarter is 250, each message weighs its payload + 8.
    let mut core = core(Protocol::Control);
    let payload = "x".repeat(117); // 125 bytes each: the second reaches 250
    assert_eq!(core.sort(text(&payload)), Sorted::Deliver(text(&payload)));
    assert_eq!(core.ack(0), None);
    assert_eq!(core.sort(text(&payload)), Sorted::Deliver(text(&payload)));
    assert_eq!(core.ack(0), Some(AppMessage::Text("\u{10}ack 2".into())));
    assert_eq!(core.ack(0), None);
}

#[test]
fn sent_data_is_kept_and_lookalikes_escaped() {
    let mut core = core(json());
    assert_eq!(keep(&mut core, &Message::text("plain")), None);
    assert_eq!(
        keep(&mut core, &Message::text(r#"{"type":"ping"}"#)),
        Some(AppMessage::Text("\u{10}\u{10}{\"type\":\"ping\"}".into())),
        "looks like the protocol's ping"
    );
    assert_eq!(
        keep(&mut core, &Message::binary(vec![0x10, 1])),
        Some(AppMessage::Binary(vec![0x10, 0x10, 0x10, 1])),
        "starts with the session's byte"
    );
    assert_eq!(core.ledger().unconfirmed(), 3);
    // Under control frames the JSON ping is plain data.
    assert_eq!(
        keep(
            &mut self::core(Protocol::Control),
            &Message::text(r#"{"type":"ping"}"#)
        ),
        None
    );
}

#[test]
fn acknowledgements_free_room_and_bad_ones_are_violations() {
    let mut core = core(Protocol::Control);
    for i in 0..3 {
        keep(&mut core, &Message::text(i.to_string()));
    }
    assert_eq!(
        core.sort(text("\u{10}ack 2")),
        Sorted::Handled { room: true }
    );
    assert_eq!(core.ledger().unconfirmed(), 1);
    assert_eq!(
        core.sort(text("\u{10}ack 1")),
        Sorted::Violation("acknowledgement went backwards")
    );
    assert_eq!(
        core.sort(text("\u{10}ack 9")),
        Sorted::Violation("acknowledges more messages than were sent")
    );
    assert_eq!(
        core.sort(text("\u{10}gossip 1")),
        Sorted::Handled { room: false },
        "a later version's message is ignored"
    );
    assert_eq!(
        core.sort(text("\u{10}welcome 1")),
        Sorted::Violation("unexpected session message")
    );
    assert_eq!(
        core.sort(Message::binary(vec![0x10, 1])),
        Sorted::Violation("reserved binary frame")
    );
}

#[test]
fn every_close_ends_the_session_but_the_heartbeats_own() {
    let mut core = core(Protocol::Control);
    assert_eq!(
        core.sort(close(1011)),
        Sorted::Close {
            msg: close(1011),
            ends_session: false
        }
    );
    for code in [1000, 1001, 1008, 4001] {
        assert_eq!(
            core.sort(close(code)),
            Sorted::Close {
                msg: close(code),
                ends_session: true
            }
        );
    }
    assert_eq!(
        core.sort(Message::Close(None)),
        Sorted::Close {
            msg: Message::Close(None),
            ends_session: true
        }
    );
    assert!(close_ends_session(None) && !close_ends_session(Some(1011)));
    let ping = Message::Ping(vec![1].into());
    assert_eq!(core.sort(ping.clone()), Sorted::Deliver(ping));
}

#[test]
fn a_resume_replays_what_the_peer_did_not_get_in_wire_form() {
    let mut core = core(json());
    keep(&mut core, &Message::text("a"));
    keep(&mut core, &Message::text(r#"{"type":"pong"}"#));
    keep(&mut core, &Message::binary(vec![7]));
    assert_eq!(
        core.resume_from(1).unwrap(),
        [
            Kept::Copied(AppMessage::Text("\u{10}\u{10}{\"type\":\"pong\"}".into())),
            Kept::Copied(AppMessage::Binary(vec![7])),
        ]
    );
    assert_eq!(
        core.resume_from(4).unwrap_err(),
        Violation("acknowledges more messages than were sent")
    );
    assert_eq!(
        core.lost(Reason::WindowPassed),
        SessionLost {
            reason: Reason::WindowPassed,
            unconfirmed: 2
        }
    );
}

/// Sharing from 16 bytes: the large messages are kept by reference (the replay holds the
/// very bytes that were sent), the small one is copied, and a large one that must be
/// escaped goes again as an escaped copy. The kept bytes count them all alike.
#[test]
fn large_messages_are_kept_shared_and_replayed_in_order_with_the_copied() {
    let mut core = Core::new(Ledger::new(1000, 1000).share_from(16), json());
    let big = Message::binary(vec![7u8; 16]);
    let lookalike = Message::text(r#"{"type":"pong","x":"yyyy"}"#);
    let small = Message::text("small");
    let long = Message::text("a text of twenty-nine bytes..");
    for msg in [&big, &small, &lookalike, &long] {
        keep(&mut core, msg);
    }
    assert_eq!(core.ledger().kept_bytes(), 16 + 5 + 26 + 29 + 4 * HEADER);
    let replay = core.resume_from(0).unwrap();
    let Kept::Shared(SharedFrame::Binary(bytes)) = &replay[0] else {
        panic!("{replay:?}");
    };
    let Message::Binary(sent) = &big else {
        unreachable!()
    };
    assert_eq!(bytes.as_ptr(), sent.as_ptr(), "the same bytes, not a copy");
    assert_eq!(replay[1], Kept::Copied(AppMessage::Text("small".into())));
    assert_eq!(
        replay[2],
        Kept::Copied(AppMessage::Text(format!(
            "\u{10}\u{10}{}",
            lookalike.to_text().unwrap()
        )))
    );
    assert_eq!(
        replay[3].clone().into_message::<Message>(),
        long,
        "a shared text goes again as the same text"
    );
    // Acknowledged up to the lookalike: only the last stays, shared.
    core.resume_from(3).unwrap();
    assert_eq!(core.ledger().kept_bytes(), 29 + HEADER);
    assert_eq!(core.resume_from(3).unwrap().len(), 1);
    core.resume_from(4).unwrap();
    assert_eq!(core.ledger().kept_bytes(), 0);
}

#[test]
fn a_new_socket_counts_ticks_from_its_own_pings() {
    let mut core = core(Protocol::Control);
    core.sort(text("a"));
    core.on_socket(7);
    assert_eq!(core.ack(7), None, "no tick on the new socket yet");
    assert_eq!(core.ack(8), Some(AppMessage::Text("\u{10}ack 1".into())));
}

#[test]
fn a_read_ahead_holds_at_most_the_buffer_in_bytes() {
    let mut ahead = Ahead::default();
    assert!(ahead.has_room(100) && ahead.is_empty());
    ahead.push("a", 60);
    assert!(ahead.has_room(100));
    ahead.push("b", 60);
    assert!(!ahead.has_room(100), "120 bytes of 100");
    assert_eq!(ahead.pop(), Some("a"));
    assert!(ahead.has_room(100));
    assert_eq!(ahead.pop(), Some("b"));
    assert_eq!(ahead.pop(), None);
    assert_eq!(weight(&text("four")), 4);
    assert_eq!(weight(&Message::Ping(vec![1, 2].into())), 0);
}

mod properties {
    //! Arbitrary sequences of frames into either end's rules, against a model of PROTOCOL.md:
    //! no panic, the accounts never past what was sent, data delivered unescaped and in
    //! order, and a violation exactly where the model says (PROTOCOL.md, section 3).
    use proptest::prelude::*;

    use super::*;

    /// A frame a peer may send.
    #[derive(Clone, Debug)]
    enum Input {
        /// The side sends a data message of its own (so acks have something to cover).
        Send,
        /// An ack: within what was sent and not backwards (`Valid`, a point in that range), or
        /// going backwards, or beyond what was sent, or any number.
        Ack(Acked),
        Data(String),
        Escaped(String),
        Bytes(Vec<u8>),
        /// A session message of any words.
        Session(String),
        Reserved(Vec<u8>),
    }

    #[derive(Clone, Debug)]
    enum Acked {
        Valid(f64),
        Backwards,
        Beyond(u64),
        Any(u64),
    }

    fn input() -> impl Strategy<Value = Input> {
        let acked = prop_oneof![
            6 => (0.0..=1.0f64).prop_map(Acked::Valid),
            1 => Just(Acked::Backwards),
            1 => (1..4u64).prop_map(Acked::Beyond),
            1 => any::<u64>().prop_map(Acked::Any),
        ];
        prop_oneof![
            4 => Just(Input::Send),
            4 => acked.prop_map(Input::Ack),
            2 => "[a-z{}\":]{0,12}".prop_map(Input::Data),
            1 => any::<String>().prop_map(Input::Escaped),
            1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Input::Bytes),
            2 => prop_oneof![
                "(hello|welcome|ack|gossip)( [a-z0-9]{0,33}){0,6}",
                any::<String>(),
                "[a-z ]{250,300}",
            ]
            .prop_map(Input::Session),
            1 => prop::collection::vec(any::<u8>(), 0..4).prop_map(Input::Reserved),
        ]
    }

    /// What the model expects of one input: delivered data, or a violation.
    enum Expect {
        Deliver(Message),
        Quiet,
        Violation,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(2_000)))]

        #[test]
        fn either_end_follows_the_protocol_on_any_frames(inputs in prop::collection::vec(input(), 0..48)) {
            let mut core = core(Protocol::Control);
            let (mut sent, mut acked) = (0u64, 0u64);
            for input in inputs {
                let (frame, expect) = match input {
                    Input::Send => {
                        keep(&mut core, &Message::text("m"));
                        sent += 1;
                        continue;
                    }
                    Input::Ack(kind) => {
                        let n = match kind {
                            Acked::Valid(at) => acked + ((sent - acked) as f64 * at) as u64,
                            Acked::Backwards => acked.wrapping_sub(1),
                            Acked::Beyond(by) => sent + by,
                            Acked::Any(n) => n,
                        };
                        let ok = n <= sent && n >= acked;
                        if ok {
                            acked = n;
                        }
                        let frame = text(&format!("\u{10}ack {n}"));
                        (frame, if ok { Expect::Quiet } else { Expect::Violation })
                    }
                    Input::Data(data) => {
                        // Data that begins with DLE is not data on the wire: see `Escaped`.
                        let data = data.trim_start_matches('\u{10}').to_owned();
                        (text(&data), Expect::Deliver(text(&data)))
                    }
                    Input::Escaped(data) => {
                        (text(&format!("\u{10}\u{10}{data}")), Expect::Deliver(text(&data)))
                    }
                    Input::Bytes(bytes) => {
                        let frame = Message::binary(bytes.clone());
                        match bytes.first() {
                            Some(0x10) => (frame, Expect::Violation.or_escaped(&bytes)),
                            _ => (frame.clone(), Expect::Deliver(frame)),
                        }
                    }
                    Input::Session(words) => {
                        let frame = text(&format!("\u{10}{words}"));
                        (frame, expect_session(&words, sent, &mut acked))
                    }
                    Input::Reserved(bytes) => {
                        let mut frame = vec![0x10];
                        frame.extend(bytes.iter().skip_while(|&&b| b == 0x10));
                        (Message::binary(frame), Expect::Violation)
                    }
                };
                let sorted = core.sort(frame);
                match (expect, sorted) {
                    (Expect::Deliver(want), Sorted::Deliver(got)) => prop_assert_eq!(got, want),
                    (Expect::Quiet, Sorted::Handled { .. }) => {}
                    // A violation ends the session: nothing after it is read.
                    (Expect::Violation, Sorted::Violation(_)) => return Ok(()),
                    (_, sorted) => prop_assert!(false, "unexpected {sorted:?}"),
                }
                prop_assert_eq!(core.ledger().unconfirmed(), sent - acked);
            }
        }
    }

    impl Expect {
        /// Binary beginning 0x10 0x10 is escaped data; 0x10 then anything else is reserved.
        fn or_escaped(self, bytes: &[u8]) -> Expect {
            match bytes.get(1) {
                Some(0x10) => Expect::Deliver(Message::binary(bytes[2..].to_vec())),
                _ => self,
            }
        }
    }

    /// What a session message with these words is (PROTOCOL.md, section 3), to a side that
    /// sent `sent` and was acknowledged `acked`.
    fn expect_session(words: &str, sent: u64, acked: &mut u64) -> Expect {
        if let Some(rest) = words.strip_prefix('\u{10}') {
            // An escaped frame after all.
            return Expect::Deliver(text(rest));
        }
        if words.len() > 256 {
            return Expect::Violation;
        }
        let mut parts = words.split(' ');
        match parts.next().unwrap_or("") {
            "ack" => {
                let n = parts
                    .next()
                    .filter(|w| {
                        !w.is_empty() && w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|w| w.parse::<u64>().ok());
                match n {
                    Some(n) if n <= sent && n >= *acked => {
                        *acked = n;
                        Expect::Quiet
                    }
                    _ => Expect::Violation,
                }
            }
            "hello" | "welcome" => Expect::Violation,
            _ => Expect::Quiet,
        }
    }
}
