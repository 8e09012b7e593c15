//! JSON text heartbeats: `{"type":"ping"}` answered by `{"type":"pong"}`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{AppFrame, AppMessage, HeartbeatProtocol, MAX_HEARTBEAT_LEN, Verdict};

/// JSON heartbeats: a text message that is a JSON object whose `type` field is `"ping"` is a
/// ping, answered with the same object (every other field, such as an `id` or a `ts`, echoed
/// back in its place) with `type` set to `"pong"`. Our own pings are `{"type":"ping","seq":N}`; a pong that
/// echoes `seq` gives a round-trip sample.
///
/// A ping may ask us to heartbeat at another interval with a numeric `"interval"` field in
/// milliseconds, `{"type":"ping","seq":7,"interval":30000}`, on layers that opted in with
/// [`HeartbeatLayer::follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval).
/// Only a non-negative integer that fits a `u64` is a request (zero is none); a string, a
/// float, a negative number, or no field at all is none, and the ping is answered all the
/// same.
///
/// The field name and both values are configurable. Anything else (invalid JSON, an array,
/// trailing bytes, another value, a message over 1 KiB) is data. Every text message of at
/// most 1 KiB that starts with `{` is parsed, without allocating unless it has escapes.
///
/// ```
/// use ws_heartbeat::protocol::{AppFrame, AppMessage, HeartbeatProtocol, Json, Verdict};
///
/// let json = Json::new();
/// assert_eq!(
///     json.classify(AppFrame::Text(r#"{"type":"ping","id":7}"#)),
///     Verdict::Ping { answer: AppMessage::Text(r#"{"type":"pong","id":7}"#.into()) }
/// );
/// assert_eq!(json.classify(AppFrame::Text(r#"{"type":"chat"}"#)), Verdict::Data);
///
/// assert_eq!(
///     json.peer_interval(AppFrame::Text(r#"{"type":"ping","seq":7,"interval":30000}"#)),
///     Some(std::time::Duration::from_secs(30))
/// );
///
/// let custom = Json::with("op", "hb", "hb_ack");
/// assert!(matches!(custom.classify(AppFrame::Text(r#"{"op":"hb_ack"}"#)), Verdict::Pong { seq: None }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a protocol does nothing until it is handed to `HeartbeatLayer::protocol`"]
pub struct Json {
    field: String,
    ping: String,
    pong: String,
}

impl Json {
    /// `{"type":"ping"}` / `{"type":"pong"}`.
    pub fn new() -> Self {
        Self::with("type", "ping", "pong")
    }

    /// Heartbeats whose `field` holds `ping` or `pong`.
    pub fn with(
        field: impl Into<String>,
        ping: impl Into<String>,
        pong: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            ping: ping.into(),
            pong: pong.into(),
        }
    }

    /// What `text` is, if it is a JSON object (nothing after it) whose field holds one of
    /// our two strings; `None` for anything else, including invalid JSON.
    fn kind_of(&self, text: &str) -> Option<Kind> {
        let mut de = serde_json::Deserializer::from_str(text);
        let field = FieldOf {
            key: &self.field,
            pick: KindPick(self),
        };
        let kind = field.deserialize(&mut de).ok()?;
        de.end().ok()?;
        kind
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatProtocol for Json {
    fn ping(&self, seq: u64) -> AppMessage {
        let mut ping = Map::new();
        ping.insert(self.field.clone(), Value::String(self.ping.clone()));
        ping.insert("seq".into(), seq.into());
        AppMessage::Text(Value::Object(ping).to_string())
    }

    fn classify(&self, frame: AppFrame<'_>) -> Verdict {
        let AppFrame::Text(text) = frame else {
            return Verdict::Data;
        };
        if text.len() > MAX_HEARTBEAT_LEN
            || !text.trim_start_matches(JSON_WHITE_SPACE).starts_with('{')
        {
            return Verdict::Data;
        }
        match self.kind_of(text) {
            Some(Kind::Ping) => {
                // A real ping, so an allocation is fine: echo every field, flip the kind.
                let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(text) else {
                    return Verdict::Data;
                };
                answer.insert(self.field.clone(), Value::String(self.pong.clone()));
                Verdict::Ping {
                    answer: AppMessage::Text(Value::Object(answer).to_string()),
                }
            }
            Some(Kind::Pong) => {
                let seq = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(sequence_number));
                Verdict::Pong { seq }
            }
            None => Verdict::Data,
        }
    }

    /// PROTOCOL.md, section 1: text of at most 1024 bytes whose first character that is not
    /// JSON white space is `{` and that contains the ping value, the pong value or a backslash.
    /// A superset of what `classify` takes, and of what a browser's `JSON.parse` would (a
    /// value written with escapes, a field given twice): no parse per message.
    fn lookalike(&self, frame: AppFrame<'_>) -> bool {
        let AppFrame::Text(text) = frame else {
            return false;
        };
        text.len() <= MAX_HEARTBEAT_LEN
            && text.trim_start_matches(JSON_WHITE_SPACE).starts_with('{')
            && (text.contains(self.ping.as_str())
                || text.contains(self.pong.as_str())
                || text.contains('\\'))
    }

    fn peer_interval(&self, ping: AppFrame<'_>) -> Option<Duration> {
        let AppFrame::Text(text) = ping else {
            return None;
        };
        if text.len() > MAX_HEARTBEAT_LEN {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let field = FieldOf {
            key: INTERVAL,
            pick: U64Pick,
        };
        let millis = field.deserialize(&mut de).ok()?;
        de.end().ok()?;
        millis.filter(|&ms| ms > 0).map(Duration::from_millis)
    }
}

/// White space as JSON has it (RFC 8259): space, tab, line feed, carriage return. Not
/// Unicode's, nor a browser's `trimStart`, which would take a byte order mark or an em space.
const JSON_WHITE_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The sequence number a pong echoes: a JSON number whose value is an integer from 0 to
/// 2^53 − 1, however written (`5`, `5.0`, `5e0`), which is what a browser's `JSON.parse`
/// reads exactly (`Number.isSafeInteger`): both ends of a JSON heartbeat take the same pongs
/// for answers (tests/vectors).
fn sequence_number(value: &Value) -> Option<u64> {
    const EXACT: u64 = (1 << 53) - 1;
    let seq = match value.as_u64() {
        Some(seq) => seq,
        None => {
            let float = value.as_f64()?;
            if float.fract() != 0.0 || !(0.0..=EXACT as f64).contains(&float) {
                return None;
            }
            float as u64
        }
    };
    (seq <= EXACT).then_some(seq)
}

/// The name of the field in which a ping asks for an interval, in milliseconds.
const INTERVAL: &str = "interval";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ping,
    Pong,
}

/// What a visitor wants of one JSON value: a string, or an unsigned integer. Every other
/// value, and a string or number it does not want, is skipped as `None`.
trait Pick: Copy {
    type Out;
    fn str(self, _: &str) -> Option<Self::Out> {
        None
    }
    fn u64(self, _: u64) -> Option<Self::Out> {
        None
    }
}

/// Our ping or our pong string.
#[derive(Clone, Copy)]
struct KindPick<'j>(&'j Json);

impl Pick for KindPick<'_> {
    type Out = Kind;
    fn str(self, v: &str) -> Option<Kind> {
        if v == self.0.ping {
            Some(Kind::Ping)
        } else if v == self.0.pong {
            Some(Kind::Pong)
        } else {
            None
        }
    }
}

/// An integer that fits a `u64`, exactly when `Value::as_u64` would give one (serde_json
/// hands negative integers to `visit_i64`, and those too large for 64 bits to `visit_f64`).
#[derive(Clone, Copy)]
struct U64Pick;

impl Pick for U64Pick {
    type Out = u64;
    fn u64(self, v: u64) -> Option<u64> {
        Some(v)
    }
}

/// Deserializes a JSON object, looking only at the field `key` (the last one, like
/// `serde_json::Value`) and what `pick` wants of its value. Nothing is allocated unless the
/// text has escapes.
struct FieldOf<'k, P> {
    key: &'k str,
    pick: P,
}

impl<'de, P: Pick> DeserializeSeed<'de> for FieldOf<'_, P> {
    type Value = Option<P::Out>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, P: Pick> Visitor<'de> for FieldOf<'_, P> {
    type Value = Option<P::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_field) = map.next_key_seed(KeyIs(self.key))? {
            if is_field {
                found = map.next_value_seed(ValueOf(self.pick))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A map key: is it the field?
struct KeyIs<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The field's value, whatever it is: what the pick wants of it, or `None` (skipped).
struct ValueOf<P>(P);

impl<'de, P: Pick> DeserializeSeed<'de> for ValueOf<P> {
    type Value = Option<P::Out>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, P: Pick> Visitor<'de> for ValueOf<P> {
    type Value = Option<P::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.str(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.u64(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Verdict {
        Json::new().classify(AppFrame::Text(s))
    }

    #[test]
    fn pings_are_answered_with_every_other_field_echoed() {
        assert_eq!(
            text(r#" {"ts": 1.5, "type": "ping", "id": "a"} "#),
            Verdict::Ping {
                answer: AppMessage::Text(r#"{"ts":1.5,"type":"pong","id":"a"}"#.into())
            }
        );
    }

    #[test]
    fn pongs_give_the_echoed_sequence_number() {
        assert_eq!(
            text(r#"{"type":"pong","seq":42}"#),
            Verdict::Pong { seq: Some(42) }
        );
        assert_eq!(
            text(r#"{"type":"pong","seq":"x"}"#),
            Verdict::Pong { seq: None }
        );
        assert_eq!(text(r#"{"type":"pong"}"#), Verdict::Pong { seq: None });
    }

    #[test]
    fn our_ping_is_answered_by_our_own_classifier() {
        let json = Json::new();
        let AppMessage::Text(ping) = json.ping(9) else {
            panic!()
        };
        assert_eq!(ping, r#"{"type":"ping","seq":9}"#);
        let Verdict::Ping {
            answer: AppMessage::Text(pong),
        } = json.classify(AppFrame::Text(&ping))
        else {
            panic!()
        };
        assert_eq!(
            json.classify(AppFrame::Text(&pong)),
            Verdict::Pong { seq: Some(9) }
        );
    }

    #[test]
    fn lookalikes_are_data() {
        for s in [
            r#"{"type":"ping""#,
            r#"{"type":"ping"}x"#,
            r#"{"type":"pong"},"#,
            r#"[{"type":"ping"}]"#,
            r#"{"type":["ping"]}"#,
            r#"{"type":{"ping":1}}"#,
            r#"{"Type":"ping"}"#,
            r#"{"type":"ping2"}"#,
            r#""ping""#,
            "ping",
            "",
            "{",
        ] {
            assert_eq!(text(s), Verdict::Data, "{s}");
        }
        let long = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(10 * 1024 * 1024)
        );
        assert_eq!(text(&long), Verdict::Data);
        assert_eq!(
            Json::new().classify(AppFrame::Binary(br#"{"type":"ping"}"#)),
            Verdict::Data
        );
    }

    #[test]
    fn the_last_duplicate_field_wins_like_serde_json() {
        assert!(matches!(
            text(r#"{"type":"pong","type":"ping"}"#),
            Verdict::Ping { .. }
        ));
    }

    fn interval(s: &str) -> Option<Duration> {
        Json::new().peer_interval(AppFrame::Text(s))
    }

    #[test]
    fn a_ping_asks_for_an_interval_in_milliseconds() {
        let ping = r#"{"type":"ping","seq":7,"interval":30000}"#;
        assert_eq!(interval(ping), Some(Duration::from_secs(30)));
        // The request changes nothing in the answer: every field echoed, as without one.
        assert_eq!(
            text(ping),
            Verdict::Ping {
                answer: AppMessage::Text(r#"{"type":"pong","seq":7,"interval":30000}"#.into())
            }
        );
        assert_eq!(
            interval(r#" { "interval" : 1 , "type" : "ping" } "#),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            interval(r#"{"type":"ping","interval":18446744073709551615}"#),
            Some(Duration::from_millis(u64::MAX))
        );
        // The last duplicate wins, like serde_json's `Value`.
        assert_eq!(
            interval(r#"{"type":"ping","interval":"x","interval":250}"#),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            interval(r#"{"type":"ping","interval":250,"interval":"x"}"#),
            None
        );
        assert_eq!(
            interval(r#"{"type":"ping","interv\u0061l":250}"#),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn anything_but_a_positive_u64_interval_is_no_request() {
        for s in [
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","interval":0}"#,
            r#"{"type":"ping","interval":30000.0}"#,
            r#"{"type":"ping","interval":1.5}"#,
            r#"{"type":"ping","interval":3e4}"#,
            r#"{"type":"ping","interval":-30000}"#,
            r#"{"type":"ping","interval":"30000"}"#,
            r#"{"type":"ping","interval":18446744073709551616}"#,
            r#"{"type":"ping","interval":100000000000000000000000000000}"#,
            r#"{"type":"ping","interval":null}"#,
            r#"{"type":"ping","interval":true}"#,
            r#"{"type":"ping","interval":[30000]}"#,
            r#"{"type":"ping","interval":{"ms":30000}}"#,
            r#"{"type":"ping","Interval":30000}"#,
            r#"{"type":"ping","data":{"interval":30000}}"#,
            r#"{"type":"ping","interval":30000"#,
            r#"{"type":"ping","interval":30000}x"#,
            r#"[{"type":"ping","interval":30000}]"#,
            "30000",
            "",
        ] {
            assert_eq!(interval(s), None, "{s}");
        }
        let long = format!(
            r#"{{"type":"ping","interval":1000,"pad":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(interval(&long), None);
        assert_eq!(
            Json::new().peer_interval(AppFrame::Binary(br#"{"type":"ping","interval":1000}"#)),
            None
        );
    }

    #[test]
    fn escaped_strings_are_understood() {
        assert!(matches!(
            text(r#"{"typ\u0065":"p\u0069ng"}"#),
            Verdict::Ping { .. }
        ));
    }
}
