//! Bad input, on both ends of a session: arbitrary sequences of frames fed to a server's
//! session by a hand-driven client, and to the Rust client's session by a hand-driven server
//! (session frames with any numbers, acknowledgements beyond what was sent or going
//! backwards, a `hello` after the `welcome`, data before the `hello` or the `welcome`,
//! malformed and unknown session messages, reserved binary frames), against a model of
//! PROTOCOL.md: the documented close code for the first violation (1002; 1008 or 4400 for
//! a first frame that is not a `hello`), every data message before it delivered once and
//! in order, nothing after it, no panic, and nothing left held once the session is over.
//! `src/resume/rules/tests.rs` checks the rules alone on the same kinds of frames; this runs
//! them through the sockets, the handshake and both ends' state machines, on tokio's paused
//! clock. 64 cases each (`PROPTEST_CASES` raises it; `.ci/run`'s fuzz step runs 20 000).

mod support;

use std::io;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Error as ClientError, Reconnect};
use ws_heartbeat::resume::{AcceptError, Reason, Resume, SessionLost};

use support::{Ws, cases, ms};

const DLE: char = '\u{10}';

/// A frame one side sends. Acknowledgement numbers are drawn against what the other side
/// sent: `Within` picks a valid count, `Beyond` and `Backwards` an invalid one, `Any` any.
#[derive(Clone, Debug)]
enum Frame {
    Hello,
    Welcome(u64),
    Data(String),
    Escaped(String),
    Binary(Vec<u8>),
    Reserved(u8),
    Ack(Count),
    /// `finish`: to a client, the server's (an acknowledgement too, PROTOCOL.md section 8);
    /// to a server that never asked, a violation.
    Finish(Count),
    Unknown,
    Malformed,
    TooLong,
}

#[derive(Clone, Copy, Debug)]
enum Count {
    Within(u64),
    Beyond(u64),
    Backwards(u64),
    Any(u64),
}

impl Count {
    /// The number, given what was sent and acknowledged so far.
    fn resolve(self, sent: u64, acked: u64) -> u64 {
        match self {
            Count::Within(k) => acked + k % (sent - acked + 1),
            Count::Beyond(d) => sent.saturating_add(1 + d % 1000),
            Count::Backwards(d) => acked.saturating_sub(1 + d % acked.max(1)),
            Count::Any(n) => n,
        }
    }
}

fn count() -> impl Strategy<Value = Count> {
    prop_oneof![
        3 => any::<u64>().prop_map(Count::Within),
        1 => any::<u64>().prop_map(Count::Beyond),
        1 => any::<u64>().prop_map(Count::Backwards),
        1 => any::<u64>().prop_map(Count::Any),
    ]
}

/// Text that does not start with 0x10 (that would make it a session frame or an escape).
fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 {}\"]{0,40}"
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => Just(Frame::Hello),
        1 => prop_oneof![0..5u64, Just(u64::MAX)].prop_map(Frame::Welcome),
        6 => text().prop_map(Frame::Data),
        2 => text().prop_map(Frame::Escaped),
        2 => prop::collection::vec(0x11..=0xffu8, 0..20).prop_map(Frame::Binary),
        1 => (0..=0xffu8).prop_filter("not the escape", |b| *b != 0x10).prop_map(Frame::Reserved),
        4 => count().prop_map(Frame::Ack),
        1 => count().prop_map(Frame::Finish),
        1 => Just(Frame::Unknown),
        1 => Just(Frame::Malformed),
        1 => Just(Frame::TooLong),
    ]
}

/// A client's `hello new`.
fn hello() -> String {
    format!("{DLE}hello 1 new {:032x} {:032x} 102400", 7, 8)
}

/// The token in a `welcome` (any 32 hex digits: the client only keeps it).
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

impl Frame {
    /// The frame on the wire, with an acknowledgement's number resolved.
    fn wire(&self, hello: &str, ack: u64) -> Message {
        match self {
            Frame::Hello => Message::text(hello),
            Frame::Welcome(received) => {
                Message::text(format!("{DLE}welcome 1 {TOKEN} {received} 102400 30000"))
            }
            Frame::Data(text) => Message::text(text.as_str()),
            Frame::Escaped(text) => Message::text(format!("{DLE}{DLE}{text}")),
            Frame::Binary(bytes) => Message::binary(bytes.clone()),
            Frame::Reserved(byte) => Message::binary(vec![0x10, *byte, 1, 2]),
            Frame::Ack(_) => Message::text(format!("{DLE}ack {ack}")),
            Frame::Finish(_) => Message::text(format!("{DLE}finish {ack}")),
            Frame::Unknown => Message::text(format!("{DLE}resend 1 2 3")),
            Frame::Malformed => Message::text(format!("{DLE}ack twelve")),
            Frame::TooLong => Message::text(format!("{DLE}ack 0 {}", "x".repeat(300))),
        }
    }

    /// The data message it delivers, as the application sees it, if it is data.
    fn data(&self) -> Option<Message> {
        match self {
            Frame::Data(text) | Frame::Escaped(text) => Some(Message::text(text.as_str())),
            Frame::Binary(bytes) => Some(Message::binary(bytes.clone())),
            _ => None,
        }
    }
}

/// What the model says a script does to the side that receives it, once it is welcomed (or
/// has welcomed): the data it delivers, and whether a violation ends it.
struct Expected {
    delivered: Vec<Message>,
    violation: bool,
}

/// One frame after the handshake, under PROTOCOL.md, sections 3 and 8: `Some(data)`
/// delivered, `Ok(None)` taken or ignored, `Err` a violation. `sent`/`acked`: the receiver's
/// own messages and the peer's last count of them; `to_client`: a `finish` is the server's
/// (to a server that never asked for one it is a violation).
fn after_handshake(
    frame: &Frame,
    ack: u64,
    sent: u64,
    acked: &mut u64,
    to_client: bool,
) -> Result<Option<Message>, ()> {
    match frame {
        Frame::Data(_) | Frame::Escaped(_) | Frame::Binary(_) => Ok(frame.data()),
        Frame::Ack(_) if *acked <= ack && ack <= sent => {
            *acked = ack;
            Ok(None)
        }
        Frame::Finish(_) if to_client && *acked <= ack && ack <= sent => {
            *acked = ack;
            Ok(None)
        }
        Frame::Unknown => Ok(None),
        _ => Err(()),
    }
}

// --- the server's session, fed by a client by hand -------------------------------------

/// How the server's side ended.
#[derive(Debug, Default)]
struct ServerSide {
    refused: Option<Option<u16>>,
    delivered: Vec<Message>,
    lost: Option<Reason>,
    most_held: usize,
}

/// Expected of a script sent to a server: a refusal's close code (`None`: the client's own
/// Close came first, and the socket ended), or the model's run.
fn server_model(script: &[Frame]) -> (Result<Expected, Option<u16>>, Vec<u64>) {
    let mut acks = Vec::new();
    let Some((first, rest)) = script.split_first() else {
        return (Err(None), acks);
    };
    acks.push(0);
    match first {
        Frame::Hello => {}
        Frame::Malformed | Frame::TooLong => return (Err(Some(4400)), acks),
        _ => return (Err(Some(1008)), acks),
    }
    let (mut delivered, mut acked) = (Vec::new(), 0);
    for frame in rest {
        // The handler echoes every data message before it reads the next frame: what the
        // server has sent is what it has delivered.
        let sent = delivered.len() as u64;
        let ack = match frame {
            Frame::Ack(count) | Frame::Finish(count) => count.resolve(sent, acked),
            _ => 0,
        };
        acks.push(ack);
        match after_handshake(frame, ack, sent, &mut acked, false) {
            Ok(Some(data)) => delivered.push(data),
            Ok(None) => {}
            Err(()) => {
                return (
                    Ok(Expected {
                        delivered,
                        violation: true,
                    }),
                    acks,
                );
            }
        }
    }
    let expected = Expected {
        delivered,
        violation: false,
    };
    (Ok(expected), acks)
}

async fn server_case(script: Vec<Frame>) -> Result<(), TestCaseError> {
    let sessions = HeartbeatLayer::new()
        .interval(ms(1000))
        .max_missed(3)
        .jitter(false)
        .resume(Resume::new());
    let (server, mut client) = support::bare_pair().await;
    let side = Arc::new(Mutex::new(ServerSide::default()));
    let (accepting, record) = (sessions.clone(), side.clone());
    let handler = tokio::spawn(async move {
        let mut session = match accepting.accept(server).await {
            Ok(Some(session)) => session,
            Ok(None) => unreachable!("nothing to resume"),
            Err(err) => {
                record.lock().unwrap().refused = Some(err.close_code());
                return;
            }
        };
        while let Some(item) = session.next().await {
            match item {
                Ok(msg) if msg.is_text() || msg.is_binary() => {
                    record.lock().unwrap().delivered.push(msg.clone());
                    let _ = session.send(msg).await;
                    let held = accepting.memory_used();
                    let mut record = record.lock().unwrap();
                    record.most_held = record.most_held.max(held);
                }
                Ok(_) => {}
                Err(err) => {
                    record.lock().unwrap().lost = SessionLost::find(&err).map(|l| l.reason());
                }
            }
        }
    });

    let (expected, acks) = server_model(&script);
    let hello = hello();
    for (frame, ack) in script.iter().zip(acks.iter().chain(std::iter::repeat(&0))) {
        let _ = client.feed(frame.wire(&hello, *ack)).await;
    }
    let _ = client
        .send(Message::Close(Some(CloseFrame {
            code: 1000.into(),
            reason: "".into(),
        })))
        .await;
    // What the server sent back: echoes (unescaped), and how it closed.
    let (mut echoes, mut close) = (Vec::new(), None);
    while let Ok(Some(Ok(msg))) = timeout(ms(10_000), client.next()).await {
        match msg {
            Message::Close(frame) => close = Some(frame.map(|f| u16::from(f.code))),
            Message::Text(t) if t.as_str().starts_with("\u{10}\u{10}") => {
                echoes.push(Message::text(&t.as_str()[2..]));
            }
            Message::Text(t) if t.as_str().starts_with(DLE) => {}
            Message::Binary(b) if b.first() == Some(&0x10) => {
                echoes.push(Message::binary(b.slice(2..)))
            }
            Message::Text(_) | Message::Binary(_) => echoes.push(msg),
            _ => {}
        }
    }
    prop_assert!(
        timeout(ms(10_000), handler)
            .await
            .is_ok_and(|joined| joined.is_ok()),
        "the handler panicked or hung"
    );
    let side = side.lock().unwrap();
    match expected {
        Err(code) => {
            prop_assert_eq!(side.refused, Some(code));
            // Without a code of its own, the server echoes the client's Close.
            prop_assert_eq!(close, Some(Some(code.unwrap_or(1000))));
        }
        Ok(expected) => {
            prop_assert_eq!(side.refused, None);
            prop_assert_eq!(&side.delivered, &expected.delivered);
            prop_assert_eq!(&echoes, &expected.delivered);
            if expected.violation {
                prop_assert_eq!(close, Some(Some(1002)));
                prop_assert!(
                    matches!(side.lost, Some(Reason::Violation(_))),
                    "{:?}",
                    side.lost
                );
            } else {
                prop_assert_eq!(close, Some(Some(1000)));
                prop_assert_eq!(side.lost, None);
            }
            // Held: its own 1 KiB, and room for the echoes (each weighs its payload and 8)
            // plus 8 KiB.
            let echoed: usize = expected.delivered.iter().map(|m| m.len() + 8).sum();
            prop_assert!(
                side.most_held <= Resume::PER_SESSION + echoed + 8192,
                "{}",
                side.most_held
            );
        }
    }
    prop_assert_eq!((sessions.len(), sessions.memory_used()), (0, 0));
    Ok(())
}

// --- the Rust client's session, fed by a server by hand ---------------------------------

/// The client's application sends this many messages first: its count is then 3.
const CLIENT_SENDS: u64 = 3;

/// Expected of a script a server sends a client (after reading its `hello`): the data the
/// application gets, and whether the client ends on a violation; with the acknowledgement
/// numbers resolved.
fn client_model(script: &[Frame]) -> (Expected, Vec<u64>) {
    let (mut delivered, mut acks, mut acked) = (Vec::new(), Vec::new(), 0);
    let mut welcomed = false;
    for frame in script {
        let ack = match frame {
            Frame::Ack(count) | Frame::Finish(count) => count.resolve(CLIENT_SENDS, acked),
            _ => 0,
        };
        acks.push(ack);
        let outcome = match (welcomed, frame) {
            (false, Frame::Welcome(received)) if *received <= CLIENT_SENDS => {
                welcomed = true;
                acked = *received;
                Ok(None)
            }
            (false, Frame::Unknown) => Ok(None),
            (false, _) => Err(()),
            (true, frame) => after_handshake(frame, ack, CLIENT_SENDS, &mut acked, true),
        };
        match outcome {
            Ok(Some(data)) => delivered.push(data),
            Ok(None) => {}
            Err(()) => {
                let expected = Expected {
                    delivered,
                    violation: true,
                };
                return (expected, acks);
            }
        }
    }
    let expected = Expected {
        delivered,
        violation: false,
    };
    (expected, acks)
}

async fn client_case(script: Vec<Frame>) -> Result<(), TestCaseError> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let socket = Arc::new(Mutex::new(Some(b)));
    let mut client = Reconnect::builder(move || {
        let socket = socket.lock().unwrap().take();
        async move {
            let socket = socket.ok_or_else(|| io::Error::other("one connection only"))?;
            Ok::<_, io::Error>(WebSocketStream::from_raw_socket(socket, Role::Client, None).await)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(ms(1000)).jitter(false))
    .resume(Resume::new())
    .build();
    for i in 0..CLIENT_SENDS {
        client.feed(Message::text(format!("c{i}"))).await.unwrap();
    }
    let (expected, acks) = client_model(&script);
    let mut server: Ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let fake = tokio::spawn(async move {
        let first = server.next().await;
        assert!(
            matches!(&first, Some(Ok(Message::Text(t))) if t.as_str().starts_with("\u{10}hello 1 new ")),
            "{first:?}"
        );
        for (frame, ack) in script.iter().zip(acks) {
            let _ = server.feed(frame.wire(&hello(), ack)).await;
        }
        let _ = server
            .send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            })))
            .await;
        // How the client closed.
        let mut close = None;
        while let Ok(Some(Ok(msg))) = timeout(ms(10_000), server.next()).await {
            if let Message::Close(frame) = msg {
                close = Some(frame.map(|f| u16::from(f.code)));
            }
        }
        close
    });
    let (mut got, mut ended) = (Vec::new(), None);
    while let Ok(Some(item)) = timeout(ms(10_000), client.next()).await {
        match item {
            Ok(msg) => got.push(msg),
            Err(err) => ended = Some(err),
        }
    }
    let close = timeout(ms(20_000), fake).await;
    prop_assert!(
        matches!(close, Ok(Ok(_))),
        "the fake server hung or panicked"
    );
    let close = close.unwrap().unwrap();
    prop_assert_eq!(&got, &expected.delivered);
    if expected.violation {
        prop_assert!(
            matches!(&ended, Some(ClientError::SessionLost(lost)) if matches!(lost.reason(), Reason::Violation(_))),
            "{:?}",
            ended
        );
        prop_assert_eq!(close, Some(Some(1002)));
    } else {
        prop_assert!(
            matches!(&ended, Some(ClientError::Rejected { code: 1000, .. })),
            "{:?}",
            ended
        );
    }
    Ok(())
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// Mostly a `hello` first, so that most scripts reach the session.
    #[test]
    fn a_servers_session_answers_any_frames_as_the_protocol_says(
        hello_first in prop::bool::weighted(0.85),
        rest in prop::collection::vec(frame(), 0..24),
    ) {
        let mut script = rest;
        if hello_first {
            script.insert(0, Frame::Hello);
        }
        paused().block_on(server_case(script))?;
    }

    /// Mostly a valid `welcome` first, so that most scripts reach the session.
    #[test]
    fn the_clients_session_answers_any_frames_as_the_protocol_says(
        welcome_first in prop::bool::weighted(0.85),
        received in 0..=CLIENT_SENDS,
        rest in prop::collection::vec(frame(), 0..24),
    ) {
        let mut script = rest;
        if welcome_first {
            script.insert(0, Frame::Welcome(received));
        }
        paused().block_on(client_case(script))?;
    }
}

#[test]
fn kinds_of_refusal_are_named() {
    // The codes the model expects are the ones `AcceptError` documents.
    assert_eq!(
        AcceptError::<io::Error>::NotASession.close_code(),
        Some(1008)
    );
    assert_eq!(
        AcceptError::<io::Error>::BadHandshake.close_code(),
        Some(4400)
    );
    let _ = Bytes::new();
}
