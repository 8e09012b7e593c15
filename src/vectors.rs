//! The wire vectors (`tests/vectors/wire.json`, written by `tests/vectors/make.py`), checked
//! against the Rust side: the heartbeat shapes' classifiers, the session's escapes, and what a
//! received session frame is. `js/test/vectors.test.mjs` checks the same file against the
//! browser module, so that a case added once holds on both sides.

use std::sync::Arc;

use serde_json::Value;
use tungstenite::Message;

use crate::protocol::{
    AppFrame, AppMessage, BinaryCommand, HeartbeatProtocol, Json, Text, Verdict,
};

const VECTORS: &str = include_str!("../tests/vectors/wire.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("tests/vectors/wire.json is JSON")
}

/// A case's frame: `{"text": ...}` or `{"hex": ...}`.
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

impl Frame {
    fn of(value: &Value) -> Self {
        if let Some(text) = value.get("text") {
            return Frame::Text(text.as_str().expect("text").to_owned());
        }
        let hex = value["hex"].as_str().expect("text or hex");
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        Frame::Binary(bytes)
    }

    fn app(&self) -> AppFrame<'_> {
        match self {
            Frame::Text(text) => AppFrame::Text(text),
            Frame::Binary(bytes) => AppFrame::Binary(bytes),
        }
    }

    fn message(&self) -> Message {
        match self {
            Frame::Text(text) => Message::text(text.as_str()),
            Frame::Binary(bytes) => Message::binary(bytes.clone()),
        }
    }

    /// Whether `msg` is this frame.
    fn is(&self, msg: &AppMessage) -> bool {
        match (self, msg) {
            (Frame::Text(a), AppMessage::Text(b)) => a == b,
            (Frame::Binary(a), AppMessage::Binary(b)) => a == b,
            _ => false,
        }
    }
}

fn shape(name: &str) -> Option<Arc<dyn HeartbeatProtocol>> {
    match name {
        "json" => Some(Arc::new(Json::new())),
        "text" => Some(Arc::new(Text::new())),
        "binary" => Some(Arc::new(BinaryCommand::new())),
        _ => None,
    }
}

/// Where a case is, for the failure message.
fn at(family: &str, i: usize, case: &Value) -> String {
    format!("{family} case {i} ({}): {case}", case["note"])
}

#[test]
fn heartbeat_frames_are_what_the_vectors_say() {
    let vectors = vectors();
    let cases = vectors["heartbeat"].as_array().expect("heartbeat cases");
    for (i, case) in cases.iter().enumerate() {
        let here = at("heartbeat", i, case);
        let protocol = shape(case["shape"].as_str().expect("shape")).expect("a shape");
        let frame = Frame::of(&case["frame"]);
        let verdict = protocol.classify(frame.app());
        match (case["is"].as_str().expect("is"), verdict) {
            ("ping", Verdict::Ping { answer }) => {
                let expected = &case["answer"];
                match expected.get("json") {
                    Some(value) => {
                        let AppMessage::Text(text) = answer else {
                            panic!("{here}: a binary answer")
                        };
                        let got: Value = serde_json::from_str(&text).expect("the answer is JSON");
                        assert_eq!(&got, value, "{here}");
                    }
                    None => assert!(Frame::of(expected).is(&answer), "{here}: {answer:?}"),
                }
            }
            ("pong", Verdict::Pong { seq }) => {
                assert_eq!(seq, case["seq"].as_u64(), "{here}");
            }
            ("data", Verdict::Data) => {}
            (is, verdict) => panic!("{here}: expected {is}, got {verdict:?}"),
        }
    }
}

#[cfg(feature = "resume")]
mod session {
    use super::*;
    use crate::protocol::{App, Protocol};
    use crate::resume::wire;
    use crate::resume::{Core, Ledger, Sorted};

    fn protocol(name: &str) -> Protocol {
        match shape(name) {
            Some(protocol) => Protocol::App(Arc::new(App {
                protocol,
                follow: None,
            })),
            None => Protocol::Control,
        }
    }

    #[test]
    fn data_goes_on_the_wire_as_the_vectors_say() {
        let vectors = vectors();
        let cases = vectors["escape"].as_array().expect("escape cases");
        for (i, case) in cases.iter().enumerate() {
            let here = at("escape", i, case);
            let protocol = protocol(case["shape"].as_str().expect("shape"));
            let data = Frame::of(&case["data"]);
            let wire_form = match wire::needs_escape(data.app(), &protocol) {
                true => wire::escaped(data.app()),
                false => match &data {
                    Frame::Text(text) => AppMessage::Text(text.clone()),
                    Frame::Binary(bytes) => AppMessage::Binary(bytes.clone()),
                },
            };
            assert!(
                Frame::of(&case["wire"]).is(&wire_form),
                "{here}: {wire_form:?}"
            );
        }
    }

    #[test]
    fn session_frames_are_what_the_vectors_say() {
        let vectors = vectors();
        let cases = vectors["session"].as_array().expect("session cases");
        for (i, case) in cases.iter().enumerate() {
            let here = at("session", i, case);
            // Either end sorts with the same rules (`Core`): the server's session and the
            // client's. Welcomed, having sent 10 messages, none acknowledged.
            let mut core = Core::new(Ledger::new(1 << 20, 1 << 20), Protocol::Control);
            for n in 0..10 {
                let msg = Message::text(n.to_string());
                core.keep(&msg, AppFrame::Text(&n.to_string()));
            }
            let frame = Frame::of(&case["frame"]);
            match (case["is"].as_str().expect("is"), core.sort(frame.message())) {
                ("data", Sorted::Deliver(msg)) => {
                    let expected = Frame::of(&case["data"]);
                    let got = match msg {
                        Message::Text(text) => AppMessage::Text(text.to_string()),
                        Message::Binary(bytes) => AppMessage::Binary(bytes.to_vec()),
                        other => panic!("{here}: {other:?}"),
                    };
                    assert!(expected.is(&got), "{here}: {got:?}");
                }
                ("ack", Sorted::Handled { room: true }) => {
                    let count = case["count"].as_u64().expect("count");
                    assert_eq!(core.ledger().unconfirmed(), 10 - count, "{here}");
                }
                ("ignored", Sorted::Handled { room: false }) => {}
                ("finish", Sorted::Finish) => {
                    let count = case["count"].as_u64().expect("count");
                    assert_eq!(core.ledger().unconfirmed(), 10 - count, "{here}");
                }
                ("violation", Sorted::Violation(_)) => {}
                (is, sorted) => panic!("{here}: expected {is}, got {sorted:?}"),
            }
        }
    }
}
