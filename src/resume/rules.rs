//! The rules a session follows on either end, with no I/O (PROTOCOL.md, sections 2, 3 and
//! 6): what a received message is (data, escaped data, an acknowledgement, a violation),
//! what a sent one becomes on the wire, when to acknowledge, what goes again after a resume,
//! when a Close ends the session, how a read-ahead is bounded, and what a lost session
//! reports. The server's [`Session`](super::Session) and the reconnecting client's session
//! both keep one [`Core`] and add only their transport.

use std::collections::VecDeque;

use super::ledger::{Kept, Ledger, Violation, payload_len};
use super::wire::{self, Incoming, Message};
use crate::error::{Reason, SessionLost};
use crate::message::{MessageKind, WsMessage};
use crate::protocol::{AppFrame, AppMessage, Protocol, SharedFrame};

/// The Close code and reason of a side that found the peer breaking the session protocol
/// (RFC 6455: 1002, a protocol error).
pub(crate) const VIOLATION_CLOSE: (u16, &str) = (1002, "session protocol error");

/// The Close code of the heartbeat's own "keepalive timeout": a side that sends it found
/// the socket dead, not the session over.
const HEARTBEAT_CLOSE: u16 = 1011;

/// Whether a Close frame with `code` ends the session: every Close does but the
/// heartbeat's own (1011), which only ends the socket (PROTOCOL.md, section 6).
pub(crate) fn close_ends_session(code: Option<u16>) -> bool {
    code != Some(HEARTBEAT_CLOSE)
}

/// What a received message was.
#[derive(Debug, PartialEq)]
pub(crate) enum Sorted<M> {
    /// For the application: data (unescaped), or a frame the session does not number (a
    /// ping, a pong, another library's raw frame).
    Deliver(M),
    /// A Close frame; `ends_session`: whether it ends the session, or only the socket (the
    /// peer's heartbeat found it dead, [`close_ends_session`]).
    Close { msg: M, ends_session: bool },
    /// The session's own: read on. `room`: an acknowledgement freed room to send.
    Handled { room: bool },
    /// The peer's `finish` (PROTOCOL.md, section 8): an acknowledgement, and its last word
    /// on this session.
    Finish,
    /// The peer broke the protocol: close with [`VIOLATION_CLOSE`], the session is lost.
    Violation(&'static str),
}

/// One side's session rules around its [`Ledger`].
#[derive(Debug)]
pub(crate) struct Core {
    ledger: Ledger,
    protocol: Protocol,
    /// The socket's pings when we last looked: a new ping is a tick, at which an
    /// acknowledgement rides along.
    pings_seen: u64,
    /// A received message took the unacknowledged bytes to a quarter of the peer's buffer:
    /// acknowledge at once.
    ack_due: bool,
    /// Where this side is in the finish of a drain (PROTOCOL.md, section 8).
    finish: Finishing,
}

/// What the finish of a drain changes in the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finishing {
    /// No finish under way.
    No,
    /// A client that answered the server's `finish`: it acknowledges every data message at
    /// once, so that the server may close as soon as all it sent is acknowledged.
    AckEach,
    /// A server whose client answered: data after the client's `finish` breaks the protocol.
    NoMoreData,
}

impl Core {
    /// A session's rules with `ledger` (our buffer, the peer's), heartbeating with
    /// `protocol` (whose lookalikes data must be escaped from).
    pub(crate) fn new(ledger: Ledger, protocol: Protocol) -> Self {
        Self {
            ledger,
            protocol,
            pings_seen: 0,
            ack_due: false,
            finish: Finishing::No,
        }
    }

    /// The finish of a drain moved on (see [`Finishing`]).
    pub(crate) fn set_finishing(&mut self, finish: Finishing) {
        self.finish = finish;
    }

    /// The accounts.
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The accounts, to change them.
    pub(crate) fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Sorts a message read from the socket. Text and binary messages are numbered when they
    /// are data; session messages are taken here.
    #[inline(always)]
    pub(crate) fn sort<M: WsMessage>(&mut self, msg: M) -> Sorted<M> {
        // Text and binary first (`as_app` is `Some` for those only): the common case asks
        // one question.
        let Some(frame) = msg.as_app() else {
            return match msg.kind() {
                MessageKind::Close(frame) => {
                    let ends_session = close_ends_session(frame.map(|(code, _)| code));
                    Sorted::Close { msg, ends_session }
                }
                MessageKind::Data | MessageKind::Ping | MessageKind::Pong(_) => {
                    Sorted::Deliver(msg)
                }
            };
        };
        match wire::incoming(frame) {
            Incoming::Data | Incoming::Escaped if self.finish == Finishing::NoMoreData => {
                Sorted::Violation("data after the client's finish")
            }
            Incoming::Data => {
                self.received(payload_len(frame));
                Sorted::Deliver(msg)
            }
            Incoming::Escaped => {
                self.received(payload_len(frame) - 2);
                Sorted::Deliver(M::from_app(wire::unescaped(frame)))
            }
            Incoming::Session(Message::Ack(count)) => match self.ledger.acknowledged(count) {
                Ok(()) => Sorted::Handled { room: true },
                Err(Violation(what)) => Sorted::Violation(what),
            },
            Incoming::Session(Message::Finish(count)) => match self.ledger.acknowledged(count) {
                Ok(()) => Sorted::Finish,
                Err(Violation(what)) => Sorted::Violation(what),
            },
            // A message of a later version of the protocol: ignored (PROTOCOL.md, section 3).
            Incoming::Session(Message::Unknown(_)) => Sorted::Handled { room: false },
            Incoming::Session(_) => Sorted::Violation("unexpected session message"),
            Incoming::Reserved => Sorted::Violation("reserved binary frame"),
        }
    }

    #[inline(always)]
    fn received(&mut self, len: usize) {
        if self.ledger.received(len) || self.finish == Finishing::AckEach {
            self.ack_due = true;
        }
    }

    /// A data message the application sends (`msg`, whose text or bytes are `frame`):
    /// numbered and kept (see [`Ledger::keep`]). Returns its escaped form when it must be
    /// escaped on the wire (it starts with 0x10 or looks like a heartbeat, PROTOCOL.md,
    /// section 3); else it goes unchanged.
    #[inline(always)]
    pub(crate) fn keep<M: WsMessage>(
        &mut self,
        msg: &M,
        frame: AppFrame<'_>,
    ) -> Option<AppMessage> {
        self.ledger.keep(msg, frame);
        wire::needs_escape(frame, &self.protocol).then(|| wire::escaped(frame))
    }

    /// The acknowledgement to send now, if one is due: a quarter of the peer's buffer was
    /// received since the last, or the socket's heartbeat ticked (its ping count is not
    /// `pings` any more) and something arrived since the last (PROTOCOL.md, section 2).
    #[cfg(any(feature = "reconnect", test))]
    #[inline]
    pub(crate) fn ack(&mut self, pings: u64) -> Option<AppMessage> {
        self.ack_or_tick(pings).and_then(|(ack, _)| ack)
    }

    /// [`ack`](Self::ack), and whether the heartbeat ticked: `None` (one comparison) when
    /// neither an acknowledgement is due nor a tick came.
    #[inline]
    pub(crate) fn ack_or_tick(&mut self, pings: u64) -> Option<(Option<AppMessage>, bool)> {
        let ticked = pings != self.pings_seen;
        if !(ticked || self.ack_due) {
            return None;
        }
        self.pings_seen = pings;
        self.ack_due = false;
        let ack = self
            .ledger
            .ack()
            .map(|count| AppMessage::Text(wire::ack_text(count)));
        Some((ack, ticked))
    }

    /// A new socket whose heartbeat has sent `pings` pings: ticks count from there.
    pub(crate) fn on_socket(&mut self, pings: u64) {
        self.pings_seen = pings;
    }

    /// The peer, in its handshake, says it has received `count` of our messages: what it
    /// has not goes again, oldest first, in wire form.
    pub(crate) fn resume_from(&mut self, count: u64) -> Result<Vec<Kept>, Violation> {
        self.ledger.acknowledged(count)?;
        let replay = self.ledger.replay();
        Ok(replay
            .into_iter()
            .map(|kept| self.wire_form(kept))
            .collect())
    }

    /// A kept message as it goes on the wire: escaped (a copy) if it must be.
    fn wire_form(&self, kept: Kept) -> Kept {
        let text;
        let frame = match &kept {
            Kept::Copied(AppMessage::Text(text)) => AppFrame::Text(text),
            Kept::Copied(AppMessage::Binary(bytes)) => AppFrame::Binary(bytes),
            Kept::Shared(SharedFrame::Text(bytes)) => {
                // Taken from a text message: valid, and borrowed as it is.
                text = String::from_utf8_lossy(bytes);
                AppFrame::Text(&text)
            }
            Kept::Shared(SharedFrame::Binary(bytes)) => AppFrame::Binary(bytes),
        };
        if wire::needs_escape(frame, &self.protocol) {
            Kept::Copied(wire::escaped(frame))
        } else {
            kept
        }
    }

    /// The session can no longer resume, for `reason`: with how many of our messages the
    /// peer never acknowledged.
    pub(crate) fn lost(&self, reason: Reason) -> SessionLost {
        SessionLost {
            reason,
            unconfirmed: self.ledger.unconfirmed(),
        }
    }
}

/// Data read while the writer waits for an acknowledgement, for the application's next
/// reads. One rule on both ends: it holds at most the side's own buffer in payload bytes
/// (the writer stops reading ahead there, and so the peer's sends wait for our reader).
#[derive(Debug)]
pub(crate) struct Ahead<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Ahead<T> {
    /// Whether the writer may read one more message ahead, with `buffer` bytes allowed.
    pub(crate) fn has_room(&self, buffer: usize) -> bool {
        self.bytes < buffer
    }

    /// An item read ahead, weighing `bytes`.
    pub(crate) fn push(&mut self, item: T, bytes: usize) {
        self.bytes += bytes;
        self.items.push_back((item, bytes));
    }

    /// The oldest item.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let (item, bytes) = self.items.pop_front()?;
        self.bytes -= bytes;
        Some(item)
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How much a message weighs in a read-ahead: its payload.
pub(crate) fn weight<M: WsMessage>(msg: &M) -> usize {
    msg.as_app().map_or(0, payload_len)
}

#[cfg(test)]
mod tests;
