//! For a WebSocket library that leaves answering pings to the application (actix-ws; here
//! the mock's `UnansweredPing`, answered through `WsMessage::answer_ping`): the adapter sends
//! each ping's pong itself, exactly once, before it reads the next frame; a flood meets the
//! sink's backpressure; a pong waiting behind the handler's reservation is handed over by
//! the writer, which wakes the reader; after a Close, an unsent pong is dropped. Polled by
//! hand on a paused clock; interval 1 h, so no tick interferes.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::noop_waker;
use futures_util::{Sink, Stream};
use tower::Layer;
use ws_heartbeat::{Heartbeat, HeartbeatLayer};

use support::mock::{Frame, MockWs};
use support::ms;

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(ms(3_600_000)).jitter(false)
}

fn wrapped(layer: HeartbeatLayer) -> Heartbeat<MockWs> {
    layer.layer(MockWs::with_capacity(2048))
}

fn poll_next(hb: &mut Heartbeat<MockWs>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
    Pin::new(hb)
        .poll_next(cx)
        .map(|item| item.map(|r| r.expect("no error")))
}

/// What the adapter wrote that is not data.
fn pongs(hb: &Heartbeat<MockWs>) -> Vec<Frame> {
    hb.get_ref()
        .sent
        .iter()
        .copied()
        .filter(|f| matches!(f, Frame::PeerPong(_)))
        .collect()
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn each_ping_gets_one_pong_before_the_next_frame_is_read() {
    let mut hb = wrapped(layer());
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for frame in [
        Frame::UnansweredPing(1),
        Frame::Data(1),
        Frame::UnansweredPing(2),
        Frame::UnansweredPing(3),
        Frame::Data(2),
    ] {
        hb.get_mut().push_inbound(frame);
    }
    // Each read returns the next data message; the pongs of the pings before it have gone
    // out, those after it not yet (nothing after it was read).
    assert_eq!(
        poll_next(&mut hb, &mut cx),
        Poll::Ready(Some(Frame::Data(1)))
    );
    assert_eq!(pongs(&hb), [Frame::PeerPong(1)]);
    assert_eq!(hb.get_ref().inbound.len(), 3);
    assert_eq!(
        poll_next(&mut hb, &mut cx),
        Poll::Ready(Some(Frame::Data(2)))
    );
    assert_eq!(pongs(&hb), [1, 2, 3].map(Frame::PeerPong));
    assert!(poll_next(&mut hb, &mut cx).is_pending());
    assert_eq!(pongs(&hb), [1, 2, 3].map(Frame::PeerPong), "once each");
    assert_eq!(hb.get_ref().violations, 0);
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_meets_the_sinks_backpressure_not_a_queue() {
    let mut hb = wrapped(layer());
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for n in 0..1000 {
        hb.get_mut().push_inbound(Frame::UnansweredPing(n));
    }
    // The peer does not read: the sink is never ready. The adapter takes one ping, owes its
    // pong, and reads nothing more however often it is polled.
    hb.get_mut().sink_stalls.extend([true; 10_000]);
    for _ in 0..100 {
        assert!(poll_next(&mut hb, &mut cx).is_pending());
    }
    assert_eq!(hb.get_ref().inbound.len(), 999);
    assert_eq!(pongs(&hb), []);
    // The peer reads again: every ping gets its pong, in order.
    hb.get_mut().sink_stalls.clear();
    while poll_next(&mut hb, &mut cx).is_ready() {}
    // Yielding after 64 hidden frames (fairness), the loop above stops at each such
    // `Pending`: poll until everything is read.
    while !hb.get_ref().inbound.is_empty() {
        assert!(poll_next(&mut hb, &mut cx).is_pending());
    }
    let expected: Vec<Frame> = (0..1000).map(Frame::PeerPong).collect();
    assert_eq!(pongs(&hb), expected);
    assert_eq!(hb.get_ref().violations, 0);
}

#[tokio::test(start_paused = true)]
async fn a_pong_behind_the_handlers_reservation_goes_out_after_it_and_wakes_the_reader() {
    let mut hb = wrapped(layer());
    let noop = noop_waker();
    let mut writer = Context::from_waker(&noop);
    let counter = Arc::new(CountingWaker::default());
    let reader_waker = Waker::from(counter.clone());
    let mut reader = Context::from_waker(&reader_waker);
    // The handler holds the sink's readiness for its next send.
    assert!(matches!(
        Pin::new(&mut hb).poll_ready(&mut writer),
        Poll::Ready(Ok(()))
    ));
    hb.get_mut().push_inbound(Frame::UnansweredPing(1));
    hb.get_mut().push_inbound(Frame::Data(1));
    // The reader takes the ping, cannot send its pong into the reserved sink, and waits.
    assert!(poll_next(&mut hb, &mut reader).is_pending());
    assert_eq!(hb.get_ref().inbound.len(), 1);
    let wakes = counter.0.load(Ordering::SeqCst);
    // The handler's send, then its flush, which hands the pong over and wakes the reader.
    Pin::new(&mut hb).start_send(Frame::Data(100)).unwrap();
    assert!(Pin::new(&mut hb).poll_flush(&mut writer).is_ready());
    assert_eq!(
        hb.get_ref().sent,
        [Frame::Data(100), Frame::PeerPong(1)],
        "the handler's frame first, then the pong"
    );
    assert!(
        counter.0.load(Ordering::SeqCst) > wakes,
        "the reader was not woken"
    );
    assert_eq!(
        poll_next(&mut hb, &mut reader),
        Poll::Ready(Some(Frame::Data(1)))
    );
    assert_eq!(hb.get_ref().violations, 0);
}

#[tokio::test(start_paused = true)]
async fn after_a_close_an_unsent_pong_is_dropped_and_reading_goes_on() {
    let mut hb = wrapped(layer());
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    // The handler starts the closing handshake: no frame of ours goes out after its Close.
    assert!(Pin::new(&mut hb).poll_ready(&mut cx).is_ready());
    Pin::new(&mut hb).start_send(Frame::Close(1000)).unwrap();
    hb.get_mut().push_inbound(Frame::UnansweredPing(1));
    hb.get_mut().push_inbound(Frame::Data(1));
    assert_eq!(
        poll_next(&mut hb, &mut cx),
        Poll::Ready(Some(Frame::Data(1)))
    );
    assert_eq!(hb.get_ref().sent, [Frame::Close(1000)]);
}

#[tokio::test(start_paused = true)]
async fn forwarded_pings_reach_the_handler_and_are_still_answered_once() {
    let mut hb = wrapped(layer().forward_pings(true));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    hb.get_mut().push_inbound(Frame::UnansweredPing(1));
    hb.get_mut().push_inbound(Frame::Data(1));
    assert_eq!(
        poll_next(&mut hb, &mut cx),
        Poll::Ready(Some(Frame::UnansweredPing(1)))
    );
    assert_eq!(
        poll_next(&mut hb, &mut cx),
        Poll::Ready(Some(Frame::Data(1)))
    );
    assert_eq!(pongs(&hb), [Frame::PeerPong(1)]);
}
