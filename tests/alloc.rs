//! The adapter allocates nothing per message, nor per heartbeat, once a connection runs:
//! measured with a counting global allocator over a message type that itself allocates
//! nothing (the mock of `support::mock`).
//!
//! The allocator counts per thread (a `const`-initialized thread-local `Cell`, which needs
//! neither an allocation nor a destructor), and the test reads the count of its own thread
//! only. Everything measured runs on that thread: the test drives the connection by hand on
//! a current-thread runtime (the heartbeat's timer task, spawned on that runtime, runs on it
//! too). So what other threads of the process do (the test harness's main thread, another
//! test) cannot move the figures.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::task::noop_waker;
use futures_util::{Sink, Stream};
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

use support::mock::{Frame, MockWs};
use support::ms;

/// The system allocator, counting the allocations (and reallocations) of each thread.
struct PerThread;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: nothing to count once the thread's locals are gone (at its very end).
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// The allocations made on the current thread so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is passed on unchanged to the system allocator; counting touches only
// a `Cell` of the calling thread, which does not allocate.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: PerThread = PerThread;

/// Echoes `n` peer messages through `ws` (read one, send it back), advancing the clock by
/// `step_ms` before each so that ticks (pings and their pongs) happen in between.
async fn echo<S>(ws: &mut S, n: u32, step_ms: u64)
where
    S: Stream<Item = Result<Frame, std::io::Error>>
        + Sink<Frame, Error = std::io::Error>
        + Unpin
        + PeerSide,
{
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for i in 0..n {
        tokio::time::advance(ms(step_ms)).await;
        ws.peer().push_inbound(Frame::Data(i));
        let got = loop {
            match Pin::new(&mut *ws).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => break frame,
                other => assert!(other.is_pending(), "{other:?}"),
            }
        };
        assert_eq!(got, Frame::Data(i));
        assert!(Pin::new(&mut *ws).poll_ready(&mut cx).is_ready());
        Pin::new(&mut *ws).start_send(got).unwrap();
        assert!(Pin::new(&mut *ws).poll_flush(&mut cx).is_ready());
        ws.peer().sent.clear();
    }
}

trait PeerSide {
    fn peer(&mut self) -> &mut MockWs;
}
impl PeerSide for MockWs {
    fn peer(&mut self) -> &mut MockWs {
        self
    }
}
impl PeerSide for ws_heartbeat::Heartbeat<MockWs> {
    fn peer(&mut self) -> &mut MockWs {
        self.get_mut()
    }
}

#[test]
fn no_allocation_per_message_or_per_heartbeat_in_steady_state() {
    // The counter counts: one allocation on this thread is one more.
    let start = allocations();
    drop(std::hint::black_box(Box::new(7_u64)));
    assert_eq!(allocations() - start, 1, "the counting allocator counts");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        // The control: the mock alone (measured before any timer exists on the runtime).
        let mut bare = MockWs::with_capacity(64);
        echo(&mut bare, 100, 7).await;
        let start = allocations();
        echo(&mut bare, 10_000, 7).await;
        let bare_allocs = allocations() - start;

        let mut mock = MockWs::with_capacity(64);
        mock.answer_pings = true;
        // A tick every 100 ms, a message every 7 ms: a ping and its pong every ~14 messages.
        let mut hb = HeartbeatLayer::new()
            .interval(ms(100))
            .jitter(false)
            .layer(mock);
        let handle = hb.handle();
        // Warm up: the first poll arms the timer (one allocation per connection).
        echo(&mut hb, 100, 7).await;

        let before = handle.stats();
        let start = allocations();
        echo(&mut hb, 10_000, 7).await;
        let hb_allocs = allocations() - start;
        let after = handle.stats();

        let pings = after.pings_sent - before.pings_sent;
        assert_eq!(pings, 700, "10 000 messages x 7 ms = 70 s = 700 ticks");
        assert_eq!(after.rtt_samples - before.rtt_samples, pings);
        assert_eq!(bare_allocs, 0, "the mock itself allocates");
        assert_eq!(
            hb_allocs, 0,
            "Heartbeat allocated {hb_allocs} times for 10 000 messages and {pings} heartbeats"
        );
    });
}

#[test]
fn answering_the_peers_pings_allocates_once_per_connection_not_per_ping() {
    // A library that leaves answering to the application (the mock's `UnansweredPing`, as
    // actix-ws): the pong waits in a box allocated at the first ping and kept.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut hb = HeartbeatLayer::new()
            .interval(ms(3_600_000))
            .jitter(false)
            .layer(MockWs::with_capacity(64));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut ping_then_data = |hb: &mut ws_heartbeat::Heartbeat<MockWs>, i: u32| {
            hb.get_mut().push_inbound(Frame::UnansweredPing(i));
            hb.get_mut().push_inbound(Frame::Data(i));
            match Pin::new(&mut *hb).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => assert_eq!(frame, Frame::Data(i)),
                other => panic!("{other:?}"),
            }
            assert_eq!(hb.get_ref().sent, [Frame::PeerPong(i)]);
            hb.get_mut().sent.clear();
        };
        // Warm up: the timer armed, the rare box and the pong's box allocated.
        ping_then_data(&mut hb, 0);
        let start = allocations();
        for i in 1..=1000 {
            ping_then_data(&mut hb, i);
        }
        let allocs = allocations() - start;
        assert_eq!(allocs, 0, "{allocs} allocations for 1 000 pings answered");
    });
}

/// The mock behind a lock, so that the test can feed it while a session owns it.
struct Shared(std::sync::Arc<std::sync::Mutex<MockWs>>);

impl Stream for Shared {
    type Item = Result<Frame, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_next(cx)
    }
}

impl Sink<Frame> for Shared {
    type Error = std::io::Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_ready(cx)
    }
    fn start_send(self: Pin<&mut Self>, item: Frame) -> Result<(), Self::Error> {
        Pin::new(&mut *self.0.lock().unwrap()).start_send(item)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_close(cx)
    }
}

/// A session allocates nothing per message beyond its buffer's own storage: numbering,
/// keeping, counting and the peer's acknowledgements take none once the storage has grown.
/// What it does allocate is one string per acknowledgement it sends (one per tick in which
/// data arrived: its acknowledgements ride the pings), counted exactly.
#[test]
fn a_session_allocates_nothing_per_message_once_its_buffer_has_grown() {
    use ws_heartbeat::resume::Resume;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let socket = std::sync::Arc::new(std::sync::Mutex::new(MockWs::with_capacity(64)));
        socket.lock().unwrap().answer_pings = true;
        // The peer's buffer is huge: this side acknowledges at its ticks only.
        let hello = format!("\u{10}hello 1 new {:032x} {:032x} {}", 1, 2, 1u64 << 40);
        socket
            .lock()
            .unwrap()
            .push_inbound(Frame::Text(Box::leak(hello.into_boxed_str())));
        let sessions = HeartbeatLayer::new()
            .interval(ms(100))
            .jitter(false)
            .resume(Resume::new());
        let mut session = sessions
            .accept(Shared(socket.clone()))
            .await
            .unwrap()
            .expect("a new session");
        // The peer acknowledges every 50 messages; its acknowledgements are made up front.
        let acks: Vec<&'static str> = (0..=20_000u64)
            .map(|n| &*Box::leak(format!("\u{10}ack {n}").into_boxed_str()))
            .collect();
        // One round: the peer sends message i (and every 50th time its acknowledgement),
        // the session delivers it, the handler echoes it. Returns the frames the session
        // wrote that are not echoes (its acknowledgements and pings).
        let mut round = |session: &mut ws_heartbeat::resume::Session<Shared>, i: u32| -> usize {
            // Never starting with 0x10: that would be a session frame (PROTOCOL.md).
            let payload = Frame::Payload((u64::from(i) << 8 | 0xAA).to_le_bytes());
            {
                let mut peer = socket.lock().unwrap();
                if i % 50 == 0 {
                    peer.push_inbound(Frame::Text(acks[i as usize]));
                }
                peer.push_inbound(payload);
            }
            let got = loop {
                match Pin::new(&mut *session).poll_next(&mut cx) {
                    Poll::Ready(Some(Ok(frame))) => break frame,
                    other => assert!(other.is_pending(), "{other:?}"),
                }
            };
            assert_eq!(got, payload);
            assert!(Pin::new(&mut *session).poll_ready(&mut cx).is_ready());
            Pin::new(&mut *session).start_send(got).unwrap();
            assert!(Pin::new(&mut *session).poll_flush(&mut cx).is_ready());
            let mut peer = socket.lock().unwrap();
            let acks = peer
                .sent
                .iter()
                .filter(|f| matches!(f, Frame::Text(t) if t.starts_with("\u{10}ack")))
                .count();
            peer.sent.clear();
            acks
        };
        // Warm up: the timer armed, the ledger's storage grown to what 50 messages need.
        for i in 0..1000 {
            tokio::time::advance(ms(7)).await;
            round(&mut session, i);
        }
        let start = allocations();
        let mut acks_sent = 0;
        for i in 1000..11_000 {
            tokio::time::advance(ms(7)).await;
            acks_sent += round(&mut session, i);
        }
        let allocs = allocations() - start;
        // 10 000 messages x 7 ms = 70 s: a tick every 100 ms, each with data since the last.
        assert_eq!(acks_sent, 700);
        assert_eq!(
            allocs, acks_sent as u64,
            "{allocs} allocations for 10 000 messages and {acks_sent} acknowledgements"
        );
    });
}
