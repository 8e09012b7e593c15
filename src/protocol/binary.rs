//! Binary command heartbeats: a 2-byte command, a 4-byte length, a payload.

use std::time::Duration;

use super::{AppFrame, AppMessage, HeartbeatProtocol, MAX_HEARTBEAT_LEN, Verdict};

/// Binary command frames: a big-endian 2-byte command, a big-endian 4-byte payload length,
/// then the payload. Command 100 is a ping, 101 a pong (both configurable). A ping is answered
/// with a pong carrying the same payload; our own pings carry the 8-byte sequence number.
///
/// A ping whose payload is exactly 12 bytes, an 8-byte sequence number then a big-endian
/// 4-byte interval in milliseconds, asks us to heartbeat at that interval, on layers that
/// opted in with
/// [`HeartbeatLayer::follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval)
/// (zero: no request). A payload of any other length carries no interval. The answer echoes
/// all 12 bytes, as it echoes any payload.
///
/// A frame shorter than 6 bytes, whose declared length disagrees with the real one, with
/// another command, or with a payload over 1 KiB, is data.
///
/// ```
/// use ws_heartbeat::protocol::{AppFrame, AppMessage, BinaryCommand, HeartbeatProtocol, Verdict};
///
/// let cmd = BinaryCommand::new();
/// let ping = [0, 100, 0, 0, 0, 2, 0xab, 0xcd];
/// assert_eq!(
///     cmd.classify(AppFrame::Binary(&ping)),
///     Verdict::Ping { answer: AppMessage::Binary(vec![0, 101, 0, 0, 0, 2, 0xab, 0xcd]) }
/// );
/// // Sequence number 7, interval 30 000 ms.
/// let slower = [0, 100, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0x75, 0x30];
/// assert_eq!(cmd.peer_interval(AppFrame::Binary(&slower)), Some(std::time::Duration::from_secs(30)));
/// // A declared length of 3 with 2 bytes behind it: data.
/// assert_eq!(cmd.classify(AppFrame::Binary(&[0, 100, 0, 0, 0, 3, 1, 2])), Verdict::Data);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a protocol does nothing until it is handed to `HeartbeatLayer::protocol`"]
pub struct BinaryCommand {
    ping: u16,
    pong: u16,
}

const HEADER: usize = 6;
/// A ping payload that carries an interval: the sequence number, then the interval.
const WITH_INTERVAL: usize = 8 + 4;

impl BinaryCommand {
    /// Commands 100 (ping) and 101 (pong).
    pub const fn new() -> Self {
        Self::with(100, 101)
    }

    /// Other command numbers.
    ///
    /// # Panics
    /// If the two commands are equal.
    #[track_caller]
    pub const fn with(ping: u16, pong: u16) -> Self {
        assert!(ping != pong, "ping and pong commands must differ");
        Self { ping, pong }
    }

    fn frame(command: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend_from_slice(&command.to_be_bytes());
        // The payload is at most MAX_HEARTBEAT_LEN (ours: 8) bytes, so it fits in a u32.
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }
}

impl Default for BinaryCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatProtocol for BinaryCommand {
    fn ping(&self, seq: u64) -> AppMessage {
        AppMessage::Binary(Self::frame(self.ping, &seq.to_be_bytes()))
    }

    fn classify(&self, frame: AppFrame<'_>) -> Verdict {
        let AppFrame::Binary(bytes) = frame else {
            return Verdict::Data;
        };
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER>() else {
            return Verdict::Data;
        };
        let command = u16::from_be_bytes([header[0], header[1]]);
        let declared = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if payload.len() > MAX_HEARTBEAT_LEN || usize::try_from(declared) != Ok(payload.len()) {
            return Verdict::Data;
        }
        if command == self.ping {
            Verdict::Ping {
                answer: AppMessage::Binary(Self::frame(self.pong, payload)),
            }
        } else if command == self.pong {
            // The sequence number of an echoed ping: 8 bytes, or 8 then an interval (a
            // browser's ping, `peer_interval`).
            let seq = match payload.len() {
                8 | WITH_INTERVAL => payload
                    .first_chunk::<8>()
                    .map(|seq| u64::from_be_bytes(*seq)),
                _ => None,
            };
            Verdict::Pong { seq }
        } else {
            Verdict::Data
        }
    }

    fn peer_interval(&self, ping: AppFrame<'_>) -> Option<Duration> {
        let AppFrame::Binary(bytes) = ping else {
            return None;
        };
        let (header, payload) = bytes.split_first_chunk::<HEADER>()?;
        let payload: &[u8; WITH_INTERVAL] = payload.try_into().ok()?;
        let command = u16::from_be_bytes([header[0], header[1]]);
        let declared = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if command != self.ping || usize::try_from(declared) != Ok(WITH_INTERVAL) {
            return None;
        }
        let millis = u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
        (millis > 0).then(|| Duration::from_millis(millis.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_ping_round_trips_through_a_peer_using_the_same_protocol() {
        let cmd = BinaryCommand::new();
        let AppMessage::Binary(ping) = cmd.ping(0x0102) else {
            panic!()
        };
        assert_eq!(ping, [0, 100, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        let Verdict::Ping {
            answer: AppMessage::Binary(pong),
        } = cmd.classify(AppFrame::Binary(&ping))
        else {
            panic!()
        };
        assert_eq!(
            cmd.classify(AppFrame::Binary(&pong)),
            Verdict::Pong { seq: Some(0x0102) }
        );
    }

    #[test]
    fn malformed_frames_are_data() {
        let cmd = BinaryCommand::new();
        for bytes in [
            &[][..],
            &[0],
            &[0, 100],
            &[0, 100, 0, 0, 0],
            &[0, 100, 0, 0, 0, 1],
            &[0, 100, 0, 0, 0, 0, 9],
            &[0, 100, 255, 255, 255, 255, 1],
            &[0, 102, 0, 0, 0, 0],
        ] {
            assert_eq!(
                cmd.classify(AppFrame::Binary(bytes)),
                Verdict::Data,
                "{bytes:?}"
            );
        }
        let big = BinaryCommand::frame(100, &[0; MAX_HEARTBEAT_LEN + 1]);
        assert_eq!(cmd.classify(AppFrame::Binary(&big)), Verdict::Data);
        assert_eq!(cmd.classify(AppFrame::Text("\0d\0\0\0\0")), Verdict::Data);
    }

    /// A ping with payload `payload`.
    fn ping(payload: &[u8]) -> Vec<u8> {
        BinaryCommand::frame(100, payload)
    }

    fn interval(frame: &[u8]) -> Option<Duration> {
        BinaryCommand::new().peer_interval(AppFrame::Binary(frame))
    }

    #[test]
    fn a_twelve_byte_ping_payload_asks_for_an_interval() {
        let mut payload = 7u64.to_be_bytes().to_vec();
        payload.extend(30_000u32.to_be_bytes());
        let frame = ping(&payload);
        assert_eq!(interval(&frame), Some(Duration::from_secs(30)));
        // Answered as any ping: the whole payload echoed.
        assert_eq!(
            BinaryCommand::new().classify(AppFrame::Binary(&frame)),
            Verdict::Ping {
                answer: AppMessage::Binary(BinaryCommand::frame(101, &payload))
            }
        );
        payload[8..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            interval(&ping(&payload)),
            Some(Duration::from_millis(u32::MAX.into()))
        );
        assert_eq!(
            BinaryCommand::with(7, 8)
                .peer_interval(AppFrame::Binary(&BinaryCommand::frame(7, &payload))),
            Some(Duration::from_millis(u32::MAX.into()))
        );
    }

    #[test]
    fn other_payloads_carry_no_interval() {
        let twelve = [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0x75, 0x30];
        assert_eq!(interval(&ping(&twelve[..8])), None, "our own 8-byte pings");
        assert_eq!(interval(&ping(&twelve[..11])), None);
        assert_eq!(interval(&ping(&[twelve.as_slice(), &[0]].concat())), None);
        assert_eq!(interval(&ping(&[0; 12])), None, "zero is no request");
        assert_eq!(interval(&ping(&[])), None);
        // A wrong declared length, another command, a truncated frame, a text: none.
        let mut lying = ping(&twelve);
        lying[5] = 13;
        assert_eq!(interval(&lying), None);
        assert_eq!(interval(&BinaryCommand::frame(101, &twelve)), None);
        assert_eq!(interval(&ping(&twelve)[..17]), None);
        assert_eq!(interval(&[0, 100, 0, 0]), None);
        assert_eq!(interval(&[]), None);
        assert_eq!(
            BinaryCommand::new().peer_interval(AppFrame::Text("\0d\0\0\0\x0c")),
            None
        );
    }

    #[test]
    fn an_empty_ping_is_a_ping_and_a_short_pong_has_no_sequence_number() {
        let cmd = BinaryCommand::new();
        assert!(matches!(
            cmd.classify(AppFrame::Binary(&[0, 100, 0, 0, 0, 0])),
            Verdict::Ping { .. }
        ));
        assert_eq!(
            cmd.classify(AppFrame::Binary(&[0, 101, 0, 0, 0, 1, 7])),
            Verdict::Pong { seq: None }
        );
    }
}
