//! An in-memory WebSocket stand-in that checks the `Sink` contract, for tests that need to
//! control readiness exactly or count allocations (it allocates nothing per message).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::{Sink, Stream};
use ws_heartbeat::protocol::{AppFrame, AppMessage};
use ws_heartbeat::{MessageKind, WsMessage};

/// A message of the mock: data numbered by its sender, and control frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Data(u32),
    /// A ping from the adapter.
    Ping([u8; 8]),
    /// A ping from the peer.
    PeerPing(u32),
    Pong([u8; 8]),
    Close(u16),
    /// A ping from the peer that the library leaves to the application to answer (as
    /// actix-ws does): the adapter answers it with `PeerPong` of the same number.
    UnansweredPing(u32),
    /// The adapter's answer to an `UnansweredPing`.
    PeerPong(u32),
    /// Data with bytes an application heartbeat or a session can see (`as_app`).
    Payload([u8; 8]),
    /// Text a session can see: its handshake and acknowledgements (leaked: the mock never
    /// allocates per message, and tests make these before they count).
    Text(&'static str),
}

impl WsMessage for Frame {
    fn ping(payload: [u8; 8]) -> Self {
        Frame::Ping(payload)
    }
    fn close(code: u16, _reason: &'static str) -> Self {
        Frame::Close(code)
    }
    fn from_app(msg: AppMessage) -> Self {
        match msg {
            AppMessage::Text(text) => Frame::Text(Box::leak(text.into_boxed_str())),
            AppMessage::Binary(bytes) => {
                Frame::Payload(bytes.try_into().expect("the mock's payloads are 8 bytes"))
            }
        }
    }
    fn as_app(&self) -> Option<AppFrame<'_>> {
        match self {
            Frame::Payload(bytes) => Some(AppFrame::Binary(bytes)),
            Frame::Text(text) => Some(AppFrame::Text(text)),
            _ => None,
        }
    }
    fn kind(&self) -> MessageKind<'_> {
        match self {
            Frame::Data(_) | Frame::Payload(_) | Frame::Text(_) => MessageKind::Data,
            Frame::Ping(_) | Frame::PeerPing(_) | Frame::UnansweredPing(_) => MessageKind::Ping,
            Frame::Pong(payload) => MessageKind::Pong(payload),
            Frame::PeerPong(_) => MessageKind::Pong(&[]),
            Frame::Close(code) => MessageKind::Close(Some((*code, ""))),
        }
    }
    fn answer_ping(&self) -> Option<Self> {
        match self {
            Frame::UnansweredPing(n) => Some(Frame::PeerPong(*n)),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct MockWs {
    /// What the peer sent, not read yet.
    pub inbound: VecDeque<Frame>,
    /// What was written to the sink, in order.
    pub sent: Vec<Frame>,
    /// Upcoming `poll_ready`/`poll_flush` calls that return `Pending` (front first).
    pub sink_stalls: VecDeque<bool>,
    /// Upcoming `poll_next` calls that return `Pending` although data is there.
    pub read_stalls: VecDeque<bool>,
    /// `start_send` calls not preceded by a `Ready` from `poll_ready`.
    pub violations: usize,
    /// The peer answers each ping written to the sink by queueing its pong.
    pub answer_pings: bool,
    ready_granted: bool,
    reader: Option<Waker>,
}

impl MockWs {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            inbound: VecDeque::with_capacity(n),
            sent: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    pub fn push_inbound(&mut self, frame: Frame) {
        self.inbound.push_back(frame);
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn stalled(queue: &mut VecDeque<bool>, cx: &mut Context<'_>) -> bool {
        let stalled = queue.pop_front().unwrap_or(false);
        if stalled {
            cx.waker().wake_by_ref();
        }
        stalled
    }
}

impl Stream for MockWs {
    type Item = Result<Frame, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if Self::stalled(&mut this.read_stalls, cx) {
            return Poll::Pending;
        }
        match this.inbound.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => {
                if !this
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    this.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Sink<Frame> for MockWs {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if Self::stalled(&mut self.sink_stalls, cx) {
            return Poll::Pending;
        }
        self.ready_granted = true;
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Frame) -> io::Result<()> {
        let this = &mut *self;
        if !std::mem::replace(&mut this.ready_granted, false) {
            this.violations += 1;
        }
        this.sent.push(frame);
        if let (true, Frame::Ping(payload)) = (this.answer_pings, frame) {
            this.push_inbound(Frame::Pong(payload));
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if Self::stalled(&mut self.sink_stalls, cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
