//! The session protocol's frames (PROTOCOL.md, sections 1 and 3): what a received frame is,
//! the escape of data that could be mistaken for a session message or a heartbeat, and the
//! session messages themselves. No I/O.

use std::fmt::Write as _;

use super::token::{Secret, SessionId};
use crate::protocol::{AppFrame, AppMessage, Protocol};

/// The byte that starts every session message (U+0010, DLE, "data link escape").
pub(crate) const DLE: u8 = 0x10;

/// The protocol version this crate speaks.
pub(crate) const VERSION: u32 = 1;

/// The longest session message we read: a `hello` with two identifiers and a number is
/// about 100 bytes; anything much longer is not one of ours.
const MAX_SESSION_MESSAGE: usize = 256;

/// What a received text or binary frame is to a session.
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) enum Incoming<'a> {
    /// A data message, unchanged on the wire.
    Data,
    /// A data message sent escaped: the payload after the two DLE bytes.
    Escaped,
    /// A session message.
    Session(Message<'a>),
    /// A binary frame starting with one DLE: reserved, a protocol error.
    Reserved,
}

/// A session message (PROTOCOL.md, section 3).
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
// What the words say is read by the tests and shown by `Debug`.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Message<'a> {
    Hello(Hello),
    Welcome(Welcome),
    Ack(u64),
    /// `finish <received>`: an acknowledgement, and the sender's last word on this session:
    /// the server goes away (a drain), or the client answers that it sends no more data
    /// (PROTOCOL.md, section 8).
    Finish(u64),
    /// A message whose name this version does not know (a later version's): ignored.
    Unknown(&'a str),
    /// A known message with malformed words: why.
    Malformed(&'static str),
}

#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Hello {
    New {
        version: u32,
        sid: SessionId,
        secret: Secret,
        buffer: u64,
    },
    Resume {
        version: u32,
        sid: SessionId,
        token: Secret,
        received: u64,
    },
}

#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Welcome {
    pub(crate) version: u32,
    pub(crate) token: Secret,
    pub(crate) received: u64,
    pub(crate) buffer: u64,
    pub(crate) window_ms: u64,
}

/// Sorts a received frame. Runs on every data message: a data message that does not start
/// with DLE costs one comparison.
#[inline]
pub(crate) fn incoming(frame: AppFrame<'_>) -> Incoming<'_> {
    let (bytes, text) = match frame {
        AppFrame::Text(t) => (t.as_bytes(), Some(t)),
        AppFrame::Binary(b) => (b, None),
    };
    match bytes {
        [DLE, DLE, ..] => Incoming::Escaped,
        [DLE, ..] => match text {
            Some(text) => Incoming::Session(parse(&text[1..])),
            None => Incoming::Reserved,
        },
        _ => Incoming::Data,
    }
}

fn parse(body: &str) -> Message<'_> {
    if body.len() > MAX_SESSION_MESSAGE {
        return Message::Malformed("session message too long");
    }
    let mut words = body.split(' ');
    let name = words.next().unwrap_or("");
    let parsed = match name {
        "ack" => number(words.next()).map(Message::Ack),
        "finish" => number(words.next()).map(Message::Finish),
        "hello" => hello(&mut words).map(Message::Hello),
        "welcome" => welcome(&mut words).map(Message::Welcome),
        _ => return Message::Unknown(name),
    };
    parsed.unwrap_or(Message::Malformed("malformed session message"))
}

fn hello<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<Hello> {
    let version = version(words.next())?;
    match words.next()? {
        "new" => Some(Hello::New {
            version,
            sid: SessionId::parse(words.next()?)?,
            secret: Secret::parse(words.next()?)?,
            buffer: number(words.next())?,
        }),
        "resume" => Some(Hello::Resume {
            version,
            sid: SessionId::parse(words.next()?)?,
            token: Secret::parse(words.next()?)?,
            received: number(words.next())?,
        }),
        _ => None,
    }
}

fn welcome<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<Welcome> {
    Some(Welcome {
        version: version(words.next())?,
        token: Secret::parse(words.next()?)?,
        received: number(words.next())?,
        buffer: number(words.next())?,
        window_ms: number(words.next())?,
    })
}

fn version(word: Option<&str>) -> Option<u32> {
    u32::try_from(number(word)?).ok().filter(|v| *v >= 1)
}

/// A decimal `u64` of 1 to 20 digits, nothing else (no sign, no space).
fn number(word: Option<&str>) -> Option<u64> {
    let word = word?;
    if word.is_empty() || word.len() > 20 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// `hello 1 new <sid> <secret> <buffer>`.
#[cfg_attr(not(feature = "reconnect"), allow(dead_code))]
pub(crate) fn hello_new(sid: SessionId, secret: Secret, buffer: u64) -> String {
    format!("\u{10}hello {VERSION} new {sid} {secret} {buffer}")
}

/// `hello 1 resume <sid> <token> <received>`.
#[cfg_attr(not(feature = "reconnect"), allow(dead_code))]
pub(crate) fn hello_resume(sid: SessionId, token: Secret, received: u64) -> String {
    format!("\u{10}hello {VERSION} resume {sid} {token} {received}")
}

/// `welcome 1 <token> <received> <buffer> <window>`.
pub(crate) fn welcome_text(token: Secret, received: u64, buffer: u64, window_ms: u64) -> String {
    format!("\u{10}welcome {VERSION} {token} {received} {buffer} {window_ms}")
}

/// `ack <received>`, in a string of exactly its length: the one allocation of an
/// acknowledgement (a message type that takes the string, tungstenite's `Bytes`, need not
/// reallocate it).
pub(crate) fn ack_text(received: u64) -> String {
    let digits = received.checked_ilog10().map_or(1, |d| d as usize + 1);
    let mut text = String::with_capacity(5 + digits);
    let _ = write!(text, "\u{10}ack {received}");
    debug_assert_eq!(text.len(), text.capacity());
    text
}

/// `finish <received>` (PROTOCOL.md, section 8).
pub(crate) fn finish_text(received: u64) -> String {
    format!("\u{10}finish {received}")
}

/// Whether a data message must travel escaped: it starts with DLE, or the connection's
/// heartbeat could take it for one of its own frames (PROTOCOL.md, section 1).
#[inline]
pub(crate) fn needs_escape(frame: AppFrame<'_>, protocol: &Protocol) -> bool {
    let first = match frame {
        AppFrame::Text(t) => t.as_bytes().first(),
        AppFrame::Binary(b) => b.first(),
    };
    first == Some(&DLE)
        || match protocol {
            Protocol::Control => false,
            Protocol::App(app) => app.protocol.lookalike(frame),
        }
}

/// The escaped form of a data message: two DLE bytes, then the message.
pub(crate) fn escaped(frame: AppFrame<'_>) -> AppMessage {
    match frame {
        AppFrame::Text(t) => {
            let mut text = String::with_capacity(t.len() + 2);
            text.push_str("\u{10}\u{10}");
            text.push_str(t);
            AppMessage::Text(text)
        }
        AppFrame::Binary(b) => {
            let mut bytes = Vec::with_capacity(b.len() + 2);
            bytes.extend_from_slice(&[DLE, DLE]);
            bytes.extend_from_slice(b);
            AppMessage::Binary(bytes)
        }
    }
}

/// A received escaped frame without its two DLE bytes.
pub(crate) fn unescaped(frame: AppFrame<'_>) -> AppMessage {
    match frame {
        // Both DLE are one byte each: the cut is on a character boundary.
        AppFrame::Text(t) => AppMessage::Text(t.get(2..).unwrap_or("").to_owned()),
        AppFrame::Binary(b) => AppMessage::Binary(b.get(2..).unwrap_or(&[]).to_vec()),
    }
}

/// For the tests' `assert_eq!`: secrets compared as they must be, in constant time.
#[cfg(test)]
impl PartialEq for Hello {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Hello::New {
                    version: v1,
                    sid: s1,
                    secret: k1,
                    buffer: b1,
                },
                Hello::New {
                    version: v2,
                    sid: s2,
                    secret: k2,
                    buffer: b2,
                },
            ) => (v1, s1, b1) == (v2, s2, b2) && k1.same_as(k2),
            (
                Hello::Resume {
                    version: v1,
                    sid: s1,
                    token: t1,
                    received: r1,
                },
                Hello::Resume {
                    version: v2,
                    sid: s2,
                    token: t2,
                    received: r2,
                },
            ) => (v1, s1, r1) == (v2, s2, r2) && t1.same_as(t2),
            _ => false,
        }
    }
}

#[cfg(test)]
impl PartialEq for Welcome {
    fn eq(&self, other: &Self) -> bool {
        (self.version, self.received, self.buffer, self.window_ms)
            == (other.version, other.received, other.buffer, other.window_ms)
            && self.token.same_as(&other.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{App, BinaryCommand, HeartbeatProtocol, Json, Text, Verdict};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn shapes() -> Vec<Protocol> {
        let app = |p: Arc<dyn HeartbeatProtocol>| {
            Protocol::App(Arc::new(App {
                protocol: p,
                follow: None,
            }))
        };
        vec![
            Protocol::Control,
            app(Arc::new(Json::new())),
            app(Arc::new(Text::new())),
            app(Arc::new(BinaryCommand::new())),
        ]
    }

    /// What the receiving side ends up with for a data message `frame` sent under
    /// `protocol`: `None` if its heartbeat or its session layer would take the wire frame
    /// for their own.
    fn round_trip(frame: AppFrame<'_>, protocol: &Protocol) -> Option<AppMessage> {
        let wire = if needs_escape(frame, protocol) {
            escaped(frame)
        } else {
            match frame {
                AppFrame::Text(t) => AppMessage::Text(t.to_owned()),
                AppFrame::Binary(b) => AppMessage::Binary(b.to_vec()),
            }
        };
        let wire_frame = match &wire {
            AppMessage::Text(t) => AppFrame::Text(t),
            AppMessage::Binary(b) => AppFrame::Binary(b),
        };
        if let Protocol::App(app) = protocol {
            if app.protocol.classify(wire_frame) != Verdict::Data {
                return None;
            }
        }
        match incoming(wire_frame) {
            Incoming::Data => Some(wire.clone()),
            Incoming::Escaped => Some(unescaped(wire_frame)),
            Incoming::Session(_) | Incoming::Reserved => None,
        }
    }

    fn same(frame: AppFrame<'_>, msg: &AppMessage) -> bool {
        match (frame, msg) {
            (AppFrame::Text(a), AppMessage::Text(b)) => a == b,
            (AppFrame::Binary(a), AppMessage::Binary(b)) => a == &b[..],
            _ => false,
        }
    }

    /// Text near the session messages and the heartbeats: DLE, words of both, JSON.
    fn lookalike_text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "\u{10}",
            "\u{10}\u{10}",
            "hello",
            "welcome",
            "ack",
            " ",
            "1",
            "new",
            "resume",
            "{",
            "}",
            "\"type\"",
            ":",
            "\"ping\"",
            "\"pong\"",
            "ping",
            "pong",
            "\\",
            "\\u0070",
            ",",
            "\"seq\"",
            "7",
            "0123456789abcdef0123456789abcdef",
            " \t",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|p| p.concat())
    }

    fn lookalike_bytes() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop::sample::select(vec![
            vec![DLE],
            vec![DLE, DLE],
            vec![0, 100],
            vec![0, 101],
            vec![0, 0, 0, 8],
            vec![0, 0, 0, 0],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ]);
        prop::collection::vec(pieces, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(512)))]

        /// Every data message arrives as itself, under every heartbeat shape: never taken
        /// for a session message, nor for a heartbeat.
        #[test]
        fn any_text_arrives_unchanged(text in prop_oneof![any::<String>(), lookalike_text()]) {
            for protocol in shapes() {
                let got = round_trip(AppFrame::Text(&text), &protocol);
                prop_assert!(got.as_ref().is_some_and(|m| same(AppFrame::Text(&text), m)),
                    "{text:?} under {protocol:?} arrived as {got:?}");
            }
        }

        #[test]
        fn any_bytes_arrive_unchanged(bytes in prop_oneof![any::<Vec<u8>>(), lookalike_bytes()]) {
            for protocol in shapes() {
                let got = round_trip(AppFrame::Binary(&bytes), &protocol);
                prop_assert!(got.as_ref().is_some_and(|m| same(AppFrame::Binary(&bytes), m)),
                    "{bytes:?} under {protocol:?} arrived as {got:?}");
            }
        }

        /// Whatever text a peer sends as a session message, parsing never panics.
        #[test]
        fn parsing_never_panics(text in prop_oneof![any::<String>(), lookalike_text()]) {
            let framed = format!("\u{10}{text}");
            let _ = incoming(AppFrame::Text(&framed));
        }
    }

    #[test]
    fn session_messages_round_trip() {
        let (sid, secret) = (SessionId::random().unwrap(), Secret::random().unwrap());
        let text = hello_new(sid, secret, 1 << 20);
        assert_eq!(
            incoming(AppFrame::Text(&text)),
            Incoming::Session(Message::Hello(Hello::New {
                version: 1,
                sid,
                secret,
                buffer: 1 << 20
            }))
        );
        let text = hello_resume(sid, secret, u64::MAX);
        assert_eq!(
            incoming(AppFrame::Text(&text)),
            Incoming::Session(Message::Hello(Hello::Resume {
                version: 1,
                sid,
                token: secret,
                received: u64::MAX
            }))
        );
        let text = welcome_text(secret, 7, 4096, 30_000);
        assert_eq!(
            incoming(AppFrame::Text(&text)),
            Incoming::Session(Message::Welcome(Welcome {
                version: 1,
                token: secret,
                received: 7,
                buffer: 4096,
                window_ms: 30_000
            }))
        );
        for n in [0, 9, 10, 42, u64::MAX] {
            let text = ack_text(n);
            assert_eq!(text.len(), text.capacity(), "exactly its length");
            assert_eq!(
                incoming(AppFrame::Text(&text)),
                Incoming::Session(Message::Ack(n))
            );
        }
    }

    #[test]
    fn later_words_and_unknown_messages_are_tolerated_and_bad_ones_named() {
        assert_eq!(
            incoming(AppFrame::Text("\u{10}ack 5 and more")),
            Incoming::Session(Message::Ack(5))
        );
        assert_eq!(
            incoming(AppFrame::Text("\u{10}gossip 1 2")),
            Incoming::Session(Message::Unknown("gossip"))
        );
        for bad in [
            "\u{10}ack",
            "\u{10}ack -1",
            "\u{10}ack 18446744073709551616",
            "\u{10}ack  5",
            "\u{10}hello 0 new",
            "\u{10}hello 1 new 00 11 5",
            "\u{10}welcome 1",
        ] {
            assert!(
                matches!(
                    incoming(AppFrame::Text(bad)),
                    Incoming::Session(Message::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(incoming(AppFrame::Binary(&[DLE, 1])), Incoming::Reserved);
        assert_eq!(
            incoming(AppFrame::Binary(&[DLE, DLE, 1])),
            Incoming::Escaped
        );
        assert_eq!(incoming(AppFrame::Text("")), Incoming::Data);
    }
}
