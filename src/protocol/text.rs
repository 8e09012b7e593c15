//! Plain text heartbeats: `ping` answered by `pong`.

use super::{AppFrame, AppMessage, HeartbeatProtocol, Verdict};

/// Plain text heartbeats: a text message that is exactly `ping` is a ping, answered with
/// `pong`; exactly `pong` is an answer. Both strings are configurable. A text that merely
/// starts with `ping` is data. The messages carry no sequence number, so a pong answers the
/// latest of our pings. Nor can they ask for an interval
/// ([`HeartbeatLayer::follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval)
/// has no effect): use [`Json`](super::Json) or [`BinaryCommand`](super::BinaryCommand) for
/// that.
///
/// ```
/// use ws_heartbeat::protocol::{AppFrame, AppMessage, HeartbeatProtocol, Text, Verdict};
///
/// let text = Text::new();
/// assert_eq!(
///     text.classify(AppFrame::Text("ping")),
///     Verdict::Ping { answer: AppMessage::Text("pong".into()) }
/// );
/// assert_eq!(text.classify(AppFrame::Text("ping me")), Verdict::Data);
/// assert_eq!(Text::with("hb", "hb-ack").classify(AppFrame::Text("hb-ack")), Verdict::Pong { seq: None });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a protocol does nothing until it is handed to `HeartbeatLayer::protocol`"]
pub struct Text {
    ping: String,
    pong: String,
}

impl Text {
    /// `ping` / `pong`.
    pub fn new() -> Self {
        Self::with("ping", "pong")
    }

    /// Heartbeats that are exactly `ping` or `pong`.
    ///
    /// # Panics
    /// If the two strings are equal: a pong would be answered as a ping.
    #[track_caller]
    pub fn with(ping: impl Into<String>, pong: impl Into<String>) -> Self {
        let (ping, pong) = (ping.into(), pong.into());
        assert_ne!(ping, pong, "ping and pong must differ");
        Self { ping, pong }
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatProtocol for Text {
    fn ping(&self, _seq: u64) -> AppMessage {
        AppMessage::Text(self.ping.clone())
    }

    fn classify(&self, frame: AppFrame<'_>) -> Verdict {
        match frame {
            AppFrame::Text(text) if text == self.ping => Verdict::Ping {
                answer: AppMessage::Text(self.pong.clone()),
            },
            AppFrame::Text(text) if text == self.pong => Verdict::Pong { seq: None },
            _ => Verdict::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_strings_are_heartbeats() {
        let t = Text::new();
        assert_eq!(t.ping(3), AppMessage::Text("ping".into()));
        assert_eq!(
            t.classify(AppFrame::Text("pong")),
            Verdict::Pong { seq: None }
        );
        for data in ["pin", "ping ", " ping", "PING", "pingpong", ""] {
            assert_eq!(t.classify(AppFrame::Text(data)), Verdict::Data, "{data:?}");
        }
        assert_eq!(t.classify(AppFrame::Binary(b"ping")), Verdict::Data);
    }

    #[test]
    fn a_text_ping_asks_for_no_interval() {
        assert_eq!(Text::new().peer_interval(AppFrame::Text("ping")), None);
    }

    #[test]
    #[should_panic(expected = "must differ")]
    fn equal_strings_are_rejected() {
        let _ = Text::with("hb", "hb");
    }
}
