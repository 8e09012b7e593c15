//! One side's accounts of a session (PROTOCOL.md, section 2): the data messages it sent
//! and keeps until the peer acknowledges them, how many it has received, and when to
//! acknowledge. Shared by the server's `Session` and the reconnecting client. No I/O.

use std::collections::VecDeque;

use crate::protocol::{AppFrame, AppMessage};

/// Bytes of bookkeeping per kept message: its length and kind, stored in front of it.
pub(crate) const HEADER: usize = 8;

/// The accounts.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Data messages sent in the session so far: the last one is number `sent`.
    sent: u64,
    /// The peer's received count as last heard: kept are numbers `acked + 1 ..= sent`.
    acked: u64,
    /// The kept messages, each as an 8-byte little-endian header (`len << 1 | binary`) and
    /// its payload, in one ring of bytes: no allocation per message once it has grown.
    kept: VecDeque<u8>,
    /// Our bound on `kept`, in bytes.
    buffer: usize,
    /// Data messages received (delivered or read ahead for the application).
    received: u64,
    /// The received count we last told the peer.
    told: u64,
    /// Payload bytes received since we last told the peer.
    unacked_bytes: usize,
    /// A quarter of the peer's buffer: acknowledge at once when `unacked_bytes` reach it.
    ack_every: usize,
}

/// The peer broke the rules of section 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Violation(pub(crate) &'static str);

impl Ledger {
    /// A new session's accounts: our buffer, and the peer's (0 until known: acknowledge
    /// every message until the handshake says).
    pub(crate) fn new(buffer: usize, peer_buffer: u64) -> Self {
        let mut ledger = Self {
            sent: 0,
            acked: 0,
            kept: VecDeque::new(),
            buffer,
            received: 0,
            told: 0,
            unacked_bytes: 0,
            ack_every: 0,
        };
        ledger.set_peer_buffer(peer_buffer);
        ledger
    }

    pub(crate) fn set_peer_buffer(&mut self, peer_buffer: u64) {
        self.ack_every = usize::try_from(peer_buffer / 4)
            .unwrap_or(usize::MAX)
            .max(1);
    }

    /// Whether a message may be sent now: the kept bytes are under the buffer. (A message
    /// may then take the kept bytes past it by its own size: a `Sink` learns the size only
    /// in `start_send`.)
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.kept.len() < self.buffer
    }

    /// Numbers and keeps a data message being sent.
    #[inline]
    pub(crate) fn keep(&mut self, frame: AppFrame<'_>) {
        let (bytes, binary) = match frame {
            AppFrame::Text(t) => (t.as_bytes(), 0),
            AppFrame::Binary(b) => (b, 1),
        };
        let header = ((bytes.len() as u64) << 1) | binary;
        self.kept.extend(&header.to_le_bytes());
        self.kept.extend(bytes);
        self.sent += 1;
    }

    /// The peer says it has received `count` of our messages: drop those.
    pub(crate) fn acknowledged(&mut self, count: u64) -> Result<(), Violation> {
        if count > self.sent {
            return Err(Violation("acknowledges more messages than were sent"));
        }
        if count < self.acked {
            return Err(Violation("acknowledgement went backwards"));
        }
        for _ in self.acked..count {
            let len = self.front_len();
            self.kept.drain(..HEADER + len);
        }
        self.acked = count;
        Ok(())
    }

    fn front_len(&self) -> usize {
        let mut header = [0; HEADER];
        for (slot, byte) in header.iter_mut().zip(self.kept.iter()) {
            *slot = *byte;
        }
        (u64::from_le_bytes(header) >> 1) as usize
    }

    /// Every kept message, oldest first, to be sent again after a resume (which first
    /// calls [`acknowledged`](Self::acknowledged) with the peer's count).
    pub(crate) fn replay(&self) -> Vec<AppMessage> {
        let mut messages = Vec::with_capacity((self.sent - self.acked) as usize);
        let mut at = 0;
        while at < self.kept.len() {
            let mut header = [0; HEADER];
            for (slot, byte) in header.iter_mut().zip(self.kept.range(at..at + HEADER)) {
                *slot = *byte;
            }
            let header = u64::from_le_bytes(header);
            let len = (header >> 1) as usize;
            let bytes: Vec<u8> = self
                .kept
                .range(at + HEADER..at + HEADER + len)
                .copied()
                .collect();
            messages.push(if header & 1 == 1 {
                AppMessage::Binary(bytes)
            } else {
                // Kept from a `&str`: always UTF-8.
                AppMessage::Text(
                    String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                )
            });
            at += HEADER + len;
        }
        messages
    }

    /// A data message of `len` payload bytes arrived. `true`: acknowledge at once (a
    /// quarter of the peer's buffer arrived since the last acknowledgement, each message
    /// weighed as the peer's buffer weighs it: its payload plus 8 bytes).
    #[inline]
    pub(crate) fn received(&mut self, len: usize) -> bool {
        self.received += 1;
        self.unacked_bytes += len + HEADER;
        self.unacked_bytes >= self.ack_every
    }

    /// The count to acknowledge, if it moved since we last told the peer; from now on the
    /// peer counts as told.
    pub(crate) fn ack(&mut self) -> Option<u64> {
        (self.received > self.told).then(|| {
            self.told = self.received;
            self.unacked_bytes = 0;
            self.received
        })
    }

    /// A `welcome` or `hello` tells the peer our count: it counts as an acknowledgement.
    pub(crate) fn told_in_handshake(&mut self) -> u64 {
        self.told = self.received;
        self.unacked_bytes = 0;
        self.received
    }

    /// Gives back the room bursts grew beyond what is kept now.
    pub(crate) fn shrink(&mut self) {
        self.kept.shrink_to_fit();
    }

    /// Messages sent and not yet acknowledged.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.sent - self.acked
    }

    /// Bytes kept, headers included.
    #[cfg(test)]
    fn kept_bytes(&self) -> usize {
        self.kept.len()
    }

    pub(crate) fn buffer(&self) -> usize {
        self.buffer
    }
}

/// The payload size of a data message, for the acknowledgement rule.
#[inline]
pub(crate) fn payload_len(frame: AppFrame<'_>) -> usize {
    match frame {
        AppFrame::Text(t) => t.len(),
        AppFrame::Binary(b) => b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &AppMessage) -> &str {
        match m {
            AppMessage::Text(t) => t,
            AppMessage::Binary(_) => panic!("binary"),
        }
    }

    #[test]
    fn keeps_until_acknowledged_and_replays_the_rest_in_order() {
        let mut ledger = Ledger::new(1 << 20, 1 << 20);
        for i in 0..5 {
            ledger.keep(AppFrame::Text(&format!("m{i}")));
        }
        ledger.keep(AppFrame::Binary(&[1, 2, 3]));
        assert_eq!(ledger.unconfirmed(), 6);
        assert_eq!(ledger.kept_bytes(), 5 * (HEADER + 2) + HEADER + 3);
        ledger.acknowledged(2).unwrap();
        let replay = ledger.replay();
        assert_eq!(replay.len(), 4);
        assert_eq!(
            replay[..3].iter().map(text).collect::<Vec<_>>(),
            ["m2", "m3", "m4"]
        );
        assert_eq!(replay[3], AppMessage::Binary(vec![1, 2, 3]));
        ledger.acknowledged(6).unwrap();
        assert_eq!((ledger.unconfirmed(), ledger.kept_bytes()), (0, 0));
        assert!(ledger.replay().is_empty());
    }

    #[test]
    fn acknowledgements_beyond_or_behind_are_violations() {
        let mut ledger = Ledger::new(100, 100);
        ledger.keep(AppFrame::Text("a"));
        assert!(ledger.acknowledged(2).is_err());
        ledger.acknowledged(1).unwrap();
        assert!(ledger.acknowledged(0).is_err());
        assert!(ledger.acknowledged(1).is_ok(), "a repeated count is fine");
    }

    #[test]
    fn room_is_counted_in_kept_bytes() {
        // Buffer 30 bytes: a 10-byte message weighs 18.
        let mut ledger = Ledger::new(30, 100);
        assert!(ledger.has_room());
        ledger.keep(AppFrame::Text("0123456789"));
        assert!(ledger.has_room(), "18 of 30");
        ledger.keep(AppFrame::Text("0123456789"));
        assert!(
            !ledger.has_room(),
            "36 of 30: the second went past the bound"
        );
        ledger.acknowledged(1).unwrap();
        assert!(ledger.has_room());
    }

    /// PROTOCOL.md, section 2: at once after a quarter of the peer's buffer, and an
    /// acknowledgement resets the count.
    #[test]
    fn acknowledges_every_quarter_of_the_peers_buffer() {
        let mut ledger = Ledger::new(100, 400);
        assert_eq!(ledger.ack(), None, "nothing arrived");
        assert!(!ledger.received(60), "68 of 100");
        assert!(
            ledger.received(24),
            "100 bytes (60 + 8 + 24 + 8): a quarter of 400"
        );
        assert_eq!(ledger.ack(), Some(2));
        assert_eq!(ledger.ack(), None);
        assert!(!ledger.received(91));
        assert_eq!(ledger.told_in_handshake(), 3);
        assert!(!ledger.received(91), "the handshake reset the count");
        assert_eq!(ledger.ack(), Some(4));
        // Empty messages weigh 8 each in the sender's buffer, and here too.
        for _ in 0..12 {
            assert!(!ledger.received(0));
        }
        assert!(ledger.received(0), "13 empty messages: 104 bytes");
    }
}
