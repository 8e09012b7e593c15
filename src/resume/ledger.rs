//! One side's accounts of a session (PROTOCOL.md, section 2): the data messages it sent
//! and keeps until the peer acknowledges them, how many it has received, and when to
//! acknowledge. Shared by the server's `Session` and the reconnecting client. No I/O.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::message::WsMessage;
use crate::protocol::{AppFrame, AppMessage, SharedFrame};

/// Bytes of bookkeeping per kept message: its length and kind.
pub(crate) const HEADER: usize = 8;

/// A header's flags, below its end: a binary message; a message kept shared.
const BINARY: u64 = 1;
const SHARED: u64 = 1 << 1;
const FLAGS: u32 = 2;

/// The accounts.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Data messages sent in the session so far: the last one is number `sent`.
    sent: u64,
    /// The peer's received count as last heard: kept are numbers `acked + 1 ..= sent`.
    acked: u64,
    /// The kept messages' payloads, one after the other from `start` (what is before it
    /// was acknowledged, and goes when it is more than half), and their headers in a ring
    /// of their own: no allocation per message once they have grown, one copy per message.
    /// A message weighs its payload plus its 8-byte header. Large messages whose type
    /// allows it are not copied here but kept shared, in `shared`.
    kept: Vec<u8>,
    start: usize,
    /// Where `kept[0]` is in the session's stream of payload bytes.
    base: u64,
    /// Per kept message: where its payload ends in that stream, `<< FLAGS | SHARED |
    /// BINARY` (a shared one ends where the one before it did). (Ends, not lengths: an
    /// acknowledgement of many messages then costs one look, not a sum.)
    headers: VecDeque<u64>,
    /// The payloads kept shared, oldest first, each with its message's number.
    shared: VecDeque<(u64, Bytes)>,
    /// Their bytes.
    shared_bytes: usize,
    /// Payloads of at least this many bytes are kept shared where the message type holds
    /// them so (`Resume::share_from`).
    share_from: usize,
    /// Our bound on the kept bytes (`kept`, `headers` and `shared`).
    buffer: usize,
    /// Where sends wait: the buffer, or less while a server's session has no more of the
    /// memory budget ([`set_room`](Self::set_room)).
    room: usize,
    /// Data messages received (delivered or read ahead for the application).
    received: u64,
    /// The received count we last told the peer.
    told: u64,
    /// Payload bytes received since we last told the peer.
    unacked_bytes: usize,
    /// A quarter of the peer's buffer: acknowledge at once when `unacked_bytes` reach it.
    ack_every: usize,
}

/// A kept message, to send again after a resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Its payload was copied into the ledger: this is a copy of that.
    Copied(AppMessage),
    /// Its payload was kept shared.
    Shared(SharedFrame),
}

impl Kept {
    /// The message of the application's type.
    pub(crate) fn into_message<M: WsMessage>(self) -> M {
        match self {
            Kept::Copied(msg) => M::from_app(msg),
            Kept::Shared(frame) => M::from_shared(frame),
        }
    }
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
            kept: Vec::new(),
            start: 0,
            base: 0,
            headers: VecDeque::new(),
            shared: VecDeque::new(),
            shared_bytes: 0,
            share_from: usize::MAX,
            buffer,
            room: buffer,
            received: 0,
            told: 0,
            unacked_bytes: 0,
            ack_every: 0,
        };
        ledger.set_peer_buffer(peer_buffer);
        ledger
    }

    /// The accounts of a session with these settings (`Resume`'s buffer and its
    /// `share_from`).
    pub(crate) fn of(resume: &super::Resume, peer_buffer: u64) -> Self {
        Self::new(resume.buffer_len(), peer_buffer).share_from(resume.share_threshold())
    }

    /// Payloads of at least `bytes` are kept shared where the message type allows it
    /// (without this: every payload is copied).
    pub(crate) fn share_from(mut self, bytes: usize) -> Self {
        self.share_from = bytes;
        self
    }

    pub(crate) fn set_peer_buffer(&mut self, peer_buffer: u64) {
        self.ack_every = usize::try_from(peer_buffer / 4)
            .unwrap_or(usize::MAX)
            .max(1);
    }

    /// Whether a message may be sent now: the kept bytes are under the room (the buffer,
    /// or the session's grant of the budget). (A message may then take the kept bytes past
    /// it by its own size: a `Sink` learns the size only in `start_send`.)
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.kept_bytes() < self.room
    }

    /// Sends wait once the kept bytes reach `room` (at most the buffer).
    pub(crate) fn set_room(&mut self, room: usize) {
        self.room = room.min(self.buffer);
    }

    /// Bytes allocated for the kept messages' payloads.
    pub(crate) fn storage(&self) -> usize {
        self.kept.capacity()
    }

    /// Bytes kept: payloads (copied or shared) and headers.
    #[inline]
    pub(crate) fn kept_bytes(&self) -> usize {
        self.kept.len() - self.start + HEADER * self.headers.len() + self.shared_bytes
    }

    /// Numbers and keeps a data message being sent, `frame` of `msg`: shared if it is large
    /// and its type holds it so, else copied.
    #[inline]
    pub(crate) fn keep<M: WsMessage>(&mut self, msg: &M, frame: AppFrame<'_>) {
        if payload_len(frame) >= self.share_from {
            if let Some(shared) = msg.shared() {
                return self.keep_shared(shared);
            }
        }
        self.keep_copy(frame);
    }

    /// Numbers and keeps a data message, copying its payload.
    #[inline]
    fn keep_copy(&mut self, frame: AppFrame<'_>) {
        let (bytes, binary) = match frame {
            AppFrame::Text(t) => (t.as_bytes(), 0),
            AppFrame::Binary(b) => (b, BINARY),
        };
        if self.kept.capacity() - self.kept.len() < bytes.len() {
            self.make_room_for(bytes.len());
        }
        self.kept.extend_from_slice(bytes);
        let end = self.base + self.kept.len() as u64;
        self.headers.push_back((end << FLAGS) | binary);
        self.sent += 1;
    }

    /// Numbers and keeps a data message by a reference to its payload.
    #[inline(never)]
    fn keep_shared(&mut self, frame: SharedFrame) {
        let (bytes, binary) = match frame {
            SharedFrame::Text(bytes) => (bytes, 0),
            SharedFrame::Binary(bytes) => (bytes, BINARY),
        };
        self.sent += 1;
        self.shared_bytes += bytes.len();
        self.shared.push_back((self.sent, bytes));
        let end = self.base + self.kept.len() as u64;
        self.headers.push_back((end << FLAGS) | SHARED | binary);
    }

    /// The peer says it has received `count` of our messages: drop those.
    pub(crate) fn acknowledged(&mut self, count: u64) -> Result<(), Violation> {
        if count > self.sent {
            return Err(Violation("acknowledges more messages than were sent"));
        }
        if count < self.acked {
            return Err(Violation("acknowledgement went backwards"));
        }
        let dropped = (count - self.acked) as usize;
        if dropped > 0 {
            self.start = ((self.headers[dropped - 1] >> FLAGS) - self.base) as usize;
            self.headers.drain(..dropped);
            while self.shared.front().is_some_and(|(n, _)| *n <= count) {
                if let Some((_, bytes)) = self.shared.pop_front() {
                    self.shared_bytes -= bytes.len();
                }
            }
        }
        // Moving the rest down costs at most what was appended since the last move.
        if self.start * 2 > self.kept.len() {
            self.compact();
        }
        self.acked = count;
        Ok(())
    }

    /// Every kept message, oldest first, to be sent again after a resume (which first
    /// calls [`acknowledged`](Self::acknowledged) with the peer's count).
    pub(crate) fn replay(&self) -> Vec<Kept> {
        let mut messages = Vec::with_capacity(self.headers.len());
        let mut shared = self.shared.iter();
        let mut at = self.start;
        for header in &self.headers {
            let binary = header & BINARY != 0;
            if header & SHARED != 0 {
                // One entry per shared header, in the same order.
                let Some((_, bytes)) = shared.next() else {
                    break;
                };
                let bytes = bytes.clone();
                messages.push(Kept::Shared(if binary {
                    SharedFrame::Binary(bytes)
                } else {
                    SharedFrame::Text(bytes)
                }));
                continue;
            }
            let end = ((header >> FLAGS) - self.base) as usize;
            let bytes = self.kept[at..end].to_vec();
            messages.push(Kept::Copied(if binary {
                AppMessage::Binary(bytes)
            } else {
                // Kept from a `&str`: always UTF-8.
                AppMessage::Text(
                    String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                )
            }));
            at = end;
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

    /// Grows the storage for a message of `len` bytes: doubling, as a `Vec` does, but never
    /// past the room plus this message, so that the storage is what a server's memory budget
    /// counts (the room), not up to twice that.
    #[cold]
    #[inline(never)]
    fn make_room_for(&mut self, len: usize) {
        let used = self.kept.len();
        let ceiling = self.start + self.room + len;
        let capacity = (2 * self.kept.capacity()).min(ceiling).max(used + len);
        self.kept.reserve_exact(capacity - used);
    }

    /// Drops the acknowledged bytes in front.
    fn compact(&mut self) {
        self.kept.drain(..self.start);
        self.base += self.start as u64;
        self.start = 0;
    }

    /// Gives back the room bursts grew beyond what is kept now.
    pub(crate) fn shrink(&mut self) {
        self.compact();
        self.kept.shrink_to_fit();
        self.headers.shrink_to_fit();
        self.shared.shrink_to_fit();
    }

    /// Data messages sent in the session so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages sent and not yet acknowledged.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.sent - self.acked
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

    fn text(m: &Kept) -> &str {
        match m {
            Kept::Copied(AppMessage::Text(t)) => t,
            other => panic!("not a copied text: {other:?}"),
        }
    }

    #[test]
    fn keeps_until_acknowledged_and_replays_the_rest_in_order() {
        let mut ledger = Ledger::new(1 << 20, 1 << 20);
        for i in 0..5 {
            ledger.keep_copy(AppFrame::Text(&format!("m{i}")));
        }
        ledger.keep_copy(AppFrame::Binary(&[1, 2, 3]));
        assert_eq!(ledger.unconfirmed(), 6);
        assert_eq!(ledger.kept_bytes(), 5 * (HEADER + 2) + HEADER + 3);
        ledger.acknowledged(2).unwrap();
        let replay = ledger.replay();
        assert_eq!(replay.len(), 4);
        assert_eq!(
            replay[..3].iter().map(text).collect::<Vec<_>>(),
            ["m2", "m3", "m4"]
        );
        assert_eq!(replay[3], Kept::Copied(AppMessage::Binary(vec![1, 2, 3])));
        ledger.acknowledged(6).unwrap();
        assert_eq!((ledger.unconfirmed(), ledger.kept_bytes()), (0, 0));
        assert!(ledger.replay().is_empty());
    }

    /// The acknowledged front goes once it is more than half the storage: what is kept
    /// after that still replays exactly.
    #[test]
    fn replays_exactly_across_compactions() {
        // Every third message kept shared: the two kinds interleave in the replay.
        let mut ledger = Ledger::new(1 << 20, 1 << 20);
        let mut next = 0;
        let mut acked = 0;
        let message = |i: usize| format!("m{i}-{}", "x".repeat(i % 13));
        for round in 0..50u64 {
            for _ in 0..(round % 7 + 1) {
                if next % 3 == 0 {
                    ledger.keep_shared(SharedFrame::Text(Bytes::from(message(next))));
                } else {
                    ledger.keep_copy(AppFrame::Text(&message(next)));
                }
                next += 1;
            }
            acked = (acked + round % 5).min(next as u64);
            ledger.acknowledged(acked).unwrap();
            let want: Vec<String> = (acked as usize..next).map(message).collect();
            let got: Vec<String> = ledger
                .replay()
                .into_iter()
                .map(|kept| match kept {
                    Kept::Copied(AppMessage::Text(t)) => t,
                    Kept::Shared(SharedFrame::Text(b)) => String::from_utf8(b.to_vec()).unwrap(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, want);
            let payload: usize = want.iter().map(String::len).sum();
            assert_eq!(ledger.kept_bytes(), payload + HEADER * want.len());
        }
    }

    #[test]
    fn acknowledgements_beyond_or_behind_are_violations() {
        let mut ledger = Ledger::new(100, 100);
        ledger.keep_copy(AppFrame::Text("a"));
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
        ledger.keep_copy(AppFrame::Text("0123456789"));
        assert!(ledger.has_room(), "18 of 30");
        ledger.keep_copy(AppFrame::Text("0123456789"));
        assert!(
            !ledger.has_room(),
            "36 of 30: the second went past the bound"
        );
        ledger.acknowledged(1).unwrap();
        assert!(ledger.has_room());
    }

    /// What is allocated for the kept messages stays within the room plus one message (a
    /// `Vec` doubling would allocate up to twice what the budget counts), and `shrink` gives
    /// back the rest.
    #[test]
    fn storage_stays_within_the_room_plus_one_message() {
        let mut ledger = Ledger::new(100 * 1024, 1 << 20);
        let message = "x".repeat(1000);
        for room in [8192, 16384, 40000] {
            ledger.set_room(room);
            while ledger.has_room() {
                ledger.keep_copy(AppFrame::Text(&message));
                assert!(ledger.storage() <= room + 1000, "{}", ledger.storage());
            }
        }
        assert_eq!(
            ledger.kept.len(),
            40 * 1000,
            "40 messages: 40 × 1 008 bytes reach 40 000"
        );
        ledger.acknowledged(30).unwrap();
        ledger.shrink();
        assert_eq!(ledger.storage(), 10 * 1000);
        assert_eq!(ledger.replay().len(), 10);
        ledger.acknowledged(40).unwrap();
        ledger.shrink();
        assert_eq!(ledger.storage(), 0);
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
