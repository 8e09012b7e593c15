//! The `Sink` and `Stream` contracts hold whatever the interleaving of the handler's reads
//! and sends, the peer's data and heartbeat frames, stalls of either direction, and ticks:
//! every `start_send` of the adapter (ping or data) follows a `Ready` of the inner
//! `poll_ready`; the handler's `start_send` after its `Ready` succeeds; data arrives in
//! order, once, in both directions; heartbeat frames never reach the handler; the pings of a
//! library that leaves answering to the application get one pong each, in order.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::task::noop_waker;
use futures_util::{Sink, Stream};
use proptest::prelude::*;
use tower::Layer;
use ws_heartbeat::{Dead, Heartbeat, HeartbeatLayer};

use support::mock::{Frame, MockWs};
use support::{cases, ms};

#[derive(Clone, Debug)]
enum Op {
    PeerData,
    PeerPing,
    /// A ping the library does not answer (`WsMessage::answer_ping`): the adapter must.
    UnansweredPing,
    PeerPong([u8; 8]),
    Read,
    Send,
    /// `poll_ready`, then (holding the reservation) time passes and the reader polls, then
    /// `start_send`.
    ReadyAdvanceReadSend(u16),
    Flush,
    Advance(u16),
    SinkStall(u8),
    ReadStall(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::PeerData),
        1 => Just(Op::PeerPing),
        1 => Just(Op::UnansweredPing),
        1 => any::<[u8; 8]>().prop_map(Op::PeerPong),
        4 => Just(Op::Read),
        4 => Just(Op::Send),
        1 => (0u16..300).prop_map(Op::ReadyAdvanceReadSend),
        2 => Just(Op::Flush),
        3 => (0u16..250).prop_map(Op::Advance),
        1 => (0u8..4).prop_map(Op::SinkStall),
        1 => (0u8..4).prop_map(Op::ReadStall),
    ]
}

struct Run {
    hb: Heartbeat<MockWs>,
    peer_data: u32,
    unanswered_pings: u32,
    received: Vec<u32>,
    sent: u32,
    dead_reported: bool,
    ended: bool,
}

impl Run {
    fn is_dead(err: &std::io::Error) -> bool {
        Dead::find(err).is_some()
    }

    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool, TestCaseError> {
        match Pin::new(&mut self.hb).poll_next(cx) {
            Poll::Ready(Some(Ok(Frame::Data(n)))) => {
                prop_assert!(!self.dead_reported, "data after the Dead error");
                prop_assert_eq!(n as usize, self.received.len(), "data out of order");
                self.received.push(n);
                Ok(true)
            }
            Poll::Ready(Some(Ok(other))) => Err(TestCaseError::fail(format!(
                "{other:?} reached the handler"
            ))),
            Poll::Ready(Some(Err(err))) => {
                prop_assert!(Self::is_dead(&err) && !self.dead_reported, "{err}");
                self.dead_reported = true;
                Ok(false)
            }
            Poll::Ready(None) => {
                prop_assert!(self.dead_reported, "ended without a reason");
                self.ended = true;
                Ok(false)
            }
            Poll::Pending => Ok(false),
        }
    }

    fn start_send(&mut self) -> Result<(), TestCaseError> {
        let result = Pin::new(&mut self.hb).start_send(Frame::Data(self.sent));
        prop_assert!(result.is_ok(), "start_send after Ready failed: {result:?}");
        self.sent += 1;
        Ok(())
    }

    fn ready(&mut self, cx: &mut Context<'_>) -> Result<bool, TestCaseError> {
        match Pin::new(&mut self.hb).poll_ready(cx) {
            Poll::Ready(Ok(())) => Ok(true),
            Poll::Ready(Err(err)) => {
                prop_assert!(Self::is_dead(&err), "{err}");
                Ok(false)
            }
            Poll::Pending => Ok(false),
        }
    }
}

async fn run(layer: HeartbeatLayer, answer_pings: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut mock = MockWs::with_capacity(1024);
    mock.answer_pings = answer_pings;
    let mut r = Run {
        hb: layer.layer(mock),
        peer_data: 0,
        unanswered_pings: 0,
        received: Vec::new(),
        sent: 0,
        dead_reported: false,
        ended: false,
    };
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for op in ops {
        match op {
            Op::PeerData => {
                let n = r.peer_data;
                r.hb.get_mut().push_inbound(Frame::Data(n));
                r.peer_data += 1;
            }
            Op::PeerPing => r.hb.get_mut().push_inbound(Frame::PeerPing(7)),
            Op::UnansweredPing => {
                let n = r.unanswered_pings;
                r.hb.get_mut().push_inbound(Frame::UnansweredPing(n));
                r.unanswered_pings += 1;
            }
            Op::PeerPong(payload) => r.hb.get_mut().push_inbound(Frame::Pong(payload)),
            Op::Read => {
                r.read(&mut cx)?;
            }
            Op::Send => {
                if r.ready(&mut cx)? {
                    r.start_send()?;
                }
            }
            Op::ReadyAdvanceReadSend(t) => {
                if r.ready(&mut cx)? {
                    tokio::time::advance(ms(t.into())).await;
                    r.read(&mut cx)?;
                    r.start_send()?;
                }
            }
            Op::Flush => {
                let _ = Pin::new(&mut r.hb).poll_flush(&mut cx);
            }
            Op::Advance(t) => tokio::time::advance(ms(t.into())).await,
            Op::SinkStall(n) => r.hb.get_mut().sink_stalls.extend((0..n).map(|_| true)),
            Op::ReadStall(n) => r.hb.get_mut().read_stalls.extend((0..n).map(|_| true)),
        }
        prop_assert_eq!(r.hb.get_ref().violations, 0, "a start_send without a Ready");
    }
    // Drain: no more stalls, read everything that is there.
    r.hb.get_mut().sink_stalls.clear();
    r.hb.get_mut().read_stalls.clear();
    while !r.ended && r.read(&mut cx)? {}
    if !r.dead_reported {
        prop_assert_eq!(r.received.len(), r.peer_data as usize, "peer data lost");
    }
    let _ = Pin::new(&mut r.hb).poll_flush(&mut cx);
    let written: Vec<u32> =
        r.hb.get_ref()
            .sent
            .iter()
            .filter_map(|f| match f {
                Frame::Data(n) => Some(*n),
                _ => None,
            })
            .collect();
    prop_assert_eq!(
        written,
        (0..r.sent).collect::<Vec<_>>(),
        "handler data lost, doubled or reordered"
    );
    // Our pongs: one per ping, in order; every ping read got its own unless the peer died
    // (a death drops an unsent pong).
    let pongs: Vec<u32> =
        r.hb.get_ref()
            .sent
            .iter()
            .filter_map(|f| match f {
                Frame::PeerPong(n) => Some(*n),
                _ => None,
            })
            .collect();
    if r.dead_reported {
        prop_assert!(pongs.windows(2).all(|w| w[0] < w[1]), "pongs: {:?}", pongs);
        prop_assert!(pongs.iter().all(|&n| n < r.unanswered_pings));
    } else {
        prop_assert_eq!(pongs, (0..r.unanswered_pings).collect::<Vec<_>>());
    }
    prop_assert_eq!(r.hb.get_ref().violations, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1_000)))]

    #[test]
    fn data_survives_any_interleaving_with_heartbeat_traffic(
        ops in prop::collection::vec(op(), 1..200),
        answer_pings in any::<bool>(),
        jitter in any::<bool>(),
        idle_only in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let layer = HeartbeatLayer::new()
            .interval(ms(100))
            .max_missed(3)
            .jitter(jitter)
            .idle_only(idle_only);
        rt.block_on(run(layer, answer_pings, ops))?;
    }
}
