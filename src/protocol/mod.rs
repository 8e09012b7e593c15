//! What a heartbeat looks like on the wire.
//!
//! By default the heartbeat uses the WebSocket protocol's own control frames: a Ping with an
//! 8-byte sequence number, answered by the peer's WebSocket library with a Pong. Browsers
//! answer those pings but cannot send any, so a page that wants to know whether its server
//! is there sends ordinary messages instead. [`HeartbeatLayer::protocol`] switches a layer to
//! such an application heartbeat: the adapter then answers the peer's application pings
//! itself (through the same sink, with no handler involvement), hides them and their
//! answers from the handler, and sends its own pings in the same shape, counting the peer's
//! answers exactly like pongs.
//!
//! Built in: [`Json`] (`{"type":"ping"}` / `{"type":"pong"}`), [`Text`] (`ping` / `pong`) and
//! [`BinaryCommand`] (a 2-byte command, a 4-byte length, a payload). Any other shape plugs in
//! by implementing [`HeartbeatProtocol`].
//!
//! A message that only looks like a heartbeat (truncated, too long, malformed) is ordinary
//! data: it reaches the handler unchanged and is never answered.
//!
//! A peer's ping can also ask for another heartbeat interval, which a layer that opted in
//! with [`HeartbeatLayer::follow_peer_interval`] follows within its bounds
//! ([`HeartbeatProtocol::peer_interval`]):
//!
//! | protocol | the ping asks with | example |
//! |---|---|---|
//! | [`Json`] | a field `"interval"` in milliseconds, an integer that fits a `u64` (anything else: no request) | `{"type":"ping","seq":7,"interval":30000}` |
//! | [`BinaryCommand`] | a payload of exactly 12 bytes: the 8-byte big-endian sequence number, then a big-endian `u32` in milliseconds | command 100, length 12, `seq`, `0x00007530` |
//! | [`Text`] | cannot ask | |
//!
//! Zero is no request. The answer echoes the request like any other field or payload.
//!
//! [`HeartbeatLayer::protocol`]: crate::HeartbeatLayer::protocol
//! [`HeartbeatLayer::follow_peer_interval`]: crate::HeartbeatLayer::follow_peer_interval

mod binary;
#[cfg(feature = "json")]
mod json;
mod text;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Follow;

pub use binary::BinaryCommand;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use json::Json;
pub use text::Text;

/// An outgoing text or binary message built by a protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A received text or binary message, as a protocol sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppFrame<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// A text or binary message's payload as reference-counted bytes
/// ([`WsMessage::shared`](crate::WsMessage::shared)): how a session keeps a large message
/// without copying it ([`Resume::share_from`](crate::resume::Resume::share_from)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedFrame {
    /// A text message's payload: UTF-8, taken from a text message.
    Text(bytes::Bytes),
    /// A binary message's payload.
    Binary(bytes::Bytes),
}

impl SharedFrame {
    /// The payload.
    pub fn bytes(&self) -> &bytes::Bytes {
        match self {
            SharedFrame::Text(bytes) | SharedFrame::Binary(bytes) => bytes,
        }
    }

    /// A copy, as an [`AppMessage`]. A text payload that is not UTF-8 (which only a
    /// [`WsMessage`](crate::WsMessage) implementation that broke its contract can give) has
    /// its invalid sequences replaced, as [`String::from_utf8_lossy`] does.
    pub fn to_app(&self) -> AppMessage {
        match self {
            SharedFrame::Text(bytes) => {
                AppMessage::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            SharedFrame::Binary(bytes) => AppMessage::Binary(bytes.to_vec()),
        }
    }
}

/// What a received message is to an application heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not heartbeat traffic: it goes to the handler untouched.
    Data,
    /// The peer's ping: the adapter sends `answer` and hides the ping.
    Ping {
        /// The pong to send back.
        answer: AppMessage,
    },
    /// An answer to one of our pings, with the sequence number it echoes if it has one
    /// (without one it answers the latest ping).
    Pong {
        /// The echoed sequence number of our ping.
        seq: Option<u64>,
    },
}

/// An application-level heartbeat: how to build our ping, and how to recognise the peer's
/// pings and pongs among ordinary messages.
///
/// `classify` runs on every text and binary message the peer sends, so it should reject
/// ordinary data cheaply (a length check, a prefix) before any parsing. It must never
/// panic, whatever the bytes, and should treat anything that is not exactly a heartbeat as
/// [`Verdict::Data`].
///
/// ```
/// use ws_heartbeat::protocol::{AppFrame, AppMessage, HeartbeatProtocol, Verdict};
///
/// /// `?` asks, `!` answers; the sequence number follows in decimal.
/// #[derive(Debug)]
/// struct Marks;
///
/// impl HeartbeatProtocol for Marks {
///     fn ping(&self, seq: u64) -> AppMessage {
///         AppMessage::Text(format!("?{seq}"))
///     }
///     fn classify(&self, frame: AppFrame<'_>) -> Verdict {
///         match frame {
///             AppFrame::Text(t) if t.len() <= 21 && t.starts_with('?') => Verdict::Ping {
///                 answer: AppMessage::Text(format!("!{}", &t[1..])),
///             },
///             AppFrame::Text(t) if t.len() <= 21 && t.starts_with('!') => {
///                 Verdict::Pong { seq: t[1..].parse().ok() }
///             }
///             _ => Verdict::Data,
///         }
///     }
/// }
///
/// assert_eq!(Marks.classify(AppFrame::Text("!7")), Verdict::Pong { seq: Some(7) });
/// let layer = ws_heartbeat::HeartbeatLayer::new().protocol(Marks);
/// ```
pub trait HeartbeatProtocol: fmt::Debug + Send + Sync + 'static {
    /// Our ping, carrying `seq` if the protocol can (the answer should echo it).
    fn ping(&self, seq: u64) -> AppMessage;
    /// What a received text or binary message is.
    fn classify(&self, frame: AppFrame<'_>) -> Verdict;

    /// The heartbeat interval the peer asks for in its ping `ping`: a browser page that
    /// slows its own heartbeat (in the background, say) asks the server to follow, so that
    /// the server neither finds it dead at the old bound nor waits longer than the new one.
    ///
    /// Called only for a message `classify` judged a ping, and only on connections whose
    /// layer opted in with
    /// [`HeartbeatLayer::follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval),
    /// which clamps the request into its bounds. `None` (the default) or zero: no request,
    /// the interval stays as it is. Like `classify`, it must never panic, whatever the
    /// bytes.
    ///
    /// [`Json`] reads the ping's `"interval"` field (milliseconds), [`BinaryCommand`] a
    /// 4-byte interval after the 8-byte sequence number; [`Text`] cannot carry one.
    fn peer_interval(&self, ping: AppFrame<'_>) -> Option<Duration> {
        let _ = ping;
        None
    }

    /// Whether a data message could be taken for one of this protocol's pings or pongs by
    /// a peer heartbeating in the same shape. A session ([`crate::resume`]) escapes such a
    /// message on the wire, so that every data message reaches the other side's
    /// application exactly once (PROTOCOL.md, section 1).
    ///
    /// Called for every data message a session sends, so it should be cheap. It may say
    /// `true` for more than the peer would take (the escape costs two bytes), never less.
    /// The default asks [`classify`](Self::classify); [`Json`] answers with a cheaper test
    /// that also covers the JSON a browser's parser reads differently (escaped characters,
    /// repeated fields).
    fn lookalike(&self, frame: AppFrame<'_>) -> bool {
        self.classify(frame) != Verdict::Data
    }
}

/// The protocol a connection heartbeats with.
#[derive(Clone, Debug, Default)]
pub(crate) enum Protocol {
    /// WebSocket Ping and Pong control frames.
    #[default]
    Control,
    /// Text or binary messages. (The `App` between makes the pointer thin: 8 bytes per
    /// connection instead of 16, for one more indirection per application message.)
    App(Arc<App>),
}

/// An application protocol as a layer hands it to its connections, with what only such
/// connections need.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) protocol: Arc<dyn HeartbeatProtocol>,
    /// Follow the interval the peer's pings ask for, within these bounds; `None`: ignore it.
    pub(crate) follow: Option<Follow>,
}

/// Heartbeat messages longer than this are data: answering them would let a peer make us
/// echo large messages, and parsing them costs time on every such message.
pub(crate) const MAX_HEARTBEAT_LEN: usize = 1024;

#[cfg(test)]
mod properties {
    //! Every classifier, fed arbitrary text and bytes: no panic, and nothing is answered as a
    //! ping or counted as a pong unless it is exactly one.
    use super::*;
    use proptest::prelude::*;

    /// Which built-in protocol a classifier is, for the grammars below.
    #[derive(Clone, Copy)]
    enum Kind {
        #[cfg(feature = "json")]
        Json,
        Text,
        Binary,
    }

    fn protocols() -> Vec<(Kind, Arc<dyn HeartbeatProtocol>)> {
        vec![
            #[cfg(feature = "json")]
            (Kind::Json, Arc::new(Json::new())),
            (Kind::Text, Arc::new(Text::new())),
            (Kind::Binary, Arc::new(BinaryCommand::new())),
        ]
    }

    /// The exact grammar of each built-in protocol's heartbeats, written independently of the
    /// classifiers: `Some(true)` for a ping, `Some(false)` for a pong.
    fn is_heartbeat(protocol: Kind, frame: AppFrame<'_>) -> Option<bool> {
        match (protocol, frame) {
            #[cfg(feature = "json")]
            (Kind::Json, AppFrame::Text(t)) if t.len() <= MAX_HEARTBEAT_LEN => {
                let value: serde_json::Value = serde_json::from_str(t).ok()?;
                match value.as_object()?.get("type")?.as_str()? {
                    "ping" => Some(true),
                    "pong" => Some(false),
                    _ => None,
                }
            }
            (Kind::Text, AppFrame::Text("ping")) => Some(true),
            (Kind::Text, AppFrame::Text("pong")) => Some(false),
            (Kind::Binary, AppFrame::Binary(b))
                if b.len() >= 6 && b.len() <= 6 + MAX_HEARTBEAT_LEN =>
            {
                let len = u32::from_be_bytes([b[2], b[3], b[4], b[5]]) as usize;
                match (u16::from_be_bytes([b[0], b[1]]), len == b.len() - 6) {
                    (100, true) => Some(true),
                    (101, true) => Some(false),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The interval a built-in protocol's ping asks for, written independently of
    /// `peer_interval`: Json's `"interval"` as `serde_json::Value::as_u64` reads it, the last
    /// 4 of a binary ping's 12 payload bytes; zero is none.
    fn requested_interval(protocol: Kind, frame: AppFrame<'_>) -> Option<Duration> {
        let millis = match (protocol, frame) {
            #[cfg(feature = "json")]
            (Kind::Json, AppFrame::Text(t)) => serde_json::from_str::<serde_json::Value>(t)
                .ok()?
                .get("interval")?
                .as_u64()?,
            (Kind::Binary, AppFrame::Binary(b)) if b.len() == 6 + 12 => {
                u64::from(u32::from_be_bytes([b[14], b[15], b[16], b[17]]))
            }
            _ => return None,
        };
        (millis > 0).then(|| Duration::from_millis(millis))
    }

    fn check(frame: AppFrame<'_>) -> Result<(), TestCaseError> {
        for (i, protocol) in protocols() {
            let verdict = protocol.classify(frame);
            if matches!(verdict, Verdict::Ping { .. }) {
                let (expected, got) = (requested_interval(i, frame), protocol.peer_interval(frame));
                if expected != got {
                    return Err(TestCaseError::fail(format!(
                        "{protocol:?} on {frame:?}: expected interval {expected:?}, got {got:?}"
                    )));
                }
            } else {
                // Never asked for by the adapter; it must not panic all the same.
                let _ = protocol.peer_interval(frame);
            }
            match (is_heartbeat(i, frame), &verdict) {
                (Some(true), Verdict::Ping { .. }) => {}
                (Some(false), Verdict::Pong { .. }) => {}
                (None, Verdict::Data) => {}
                (expected, got) => {
                    return Err(TestCaseError::fail(format!(
                        "{protocol:?} on {frame:?}: expected {expected:?}, got {got:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn near_heartbeats() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("ping".to_string()),
            Just("pong".to_string()),
            Just("ping ".to_string()),
            Just("pingpong".to_string()),
            Just(r#"{"type":"ping"}"#.to_string()),
            Just(r#"{"type":"ping","id":7,"ts":1.5}"#.to_string()),
            Just(r#"{"type":"ping","seq":7,"interval":30000}"#.to_string()),
            Just(r#"{"type":"ping","interval":-1,"interval":1.0}"#.to_string()),
            Just(r#"{"type":"pong","seq":3}"#.to_string()),
            Just(r#"{"type":"ping""#.to_string()),
            Just(r#"{"type":["ping"]}"#.to_string()),
            Just(r#"[{"type":"ping"}]"#.to_string()),
            Just(r#"{"kind":"ping"}"#.to_string()),
            Just(r#"{"type":"ping"} trailing"#.to_string()),
            Just(r#"{"type":"pong"}}"#.to_string()),
            Just(format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(5_000)))]

        #[test]
        fn arbitrary_text_is_classified_exactly(text in any::<String>()) {
            check(AppFrame::Text(&text))?;
        }

        #[test]
        fn json_like_text_is_classified_exactly(
            text in r#"\{ ?("(type|id|seq|interval)" ?: ?("(ping|pong)"|-?[0-9]{1,21}(\.[0-9])?|null|\[\]) ?,? ?){0,3}\}?"#
        ) {
            check(AppFrame::Text(&text))?;
        }

        #[test]
        fn near_heartbeats_mutated_are_classified_exactly(
            base in near_heartbeats(),
            cut in any::<prop::sample::Index>(),
        ) {
            check(AppFrame::Text(&base))?;
            let end = base.char_indices().map(|(i, _)| i).nth(cut.index(base.chars().count().max(1))).unwrap_or(base.len());
            check(AppFrame::Text(&base[..end]))?;
        }

        #[test]
        fn arbitrary_bytes_are_classified_exactly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            check(AppFrame::Binary(&bytes))?;
        }

        #[test]
        fn binary_pings_with_an_interval_are_classified_exactly(
            cmd in prop_oneof![Just(100u16), any::<u16>()],
            declared in prop_oneof![Just(12u32), 8u32..16],
            payload in prop::collection::vec(any::<u8>(), 8..16),
        ) {
            let mut bytes = cmd.to_be_bytes().to_vec();
            bytes.extend(declared.to_be_bytes());
            bytes.extend(&payload);
            check(AppFrame::Binary(&bytes))?;
        }

        #[test]
        fn binary_commands_with_any_declared_length_are_classified_exactly(
            cmd in prop_oneof![Just(100u16), Just(101u16), any::<u16>()],
            declared in prop_oneof![0u32..16, any::<u32>()],
            payload in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut bytes = cmd.to_be_bytes().to_vec();
            bytes.extend(declared.to_be_bytes());
            bytes.extend(&payload);
            check(AppFrame::Binary(&bytes))?;
            check(AppFrame::Binary(&bytes[..bytes.len().min(5)]))?;
        }
    }
}
