//! `Heartbeat<S>` asks of `S` only to be a WebSocket `Stream + Sink`: a stream that is not
//! `Send` (polled on a `LocalSet`) and a `&mut` borrowed one are heartbeated (pinged, their
//! pings answered, found dead within the bounds), and the borrowed one is usable bare
//! afterwards; and the service form asks nothing of the handler but to take
//! `Heartbeat<W>`: not `Clone`, its response neither `Default` nor `Send`.
//!
//! Paused clock, in-memory WebSockets; `one_second()`: ticks at whole seconds after the
//! wrap, a peer silent since `t0` dead strictly after `t0 + 3 s`, by `t0 + 4 s`.

mod support;

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{Duration, Instant, sleep};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use ws_heartbeat::{Dead, Heartbeat};

use support::*;

/// A WebSocket that is not `Send`: it holds an `Rc`, as a stream built on a `LocalSet`'s
/// `!Send` state would.
struct Local {
    ws: Ws,
    _here: Rc<()>,
}

impl Stream for Local {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ws.poll_next_unpin(cx)
    }
}

impl Sink<Message> for Local {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.ws.start_send_unpin(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.poll_close_unpin(cx)
    }
}

/// The peer of these tests: sends a ping of its own at once, then reads (which answers our
/// pings, through tungstenite) until `until`, then goes silent. Returns what it read.
fn pinging_peer(mut peer: Ws, until: Instant) -> tokio::task::JoinHandle<(Ws, Vec<Message>)> {
    tokio::spawn(async move {
        peer.send(Message::Ping(b"p".to_vec().into()))
            .await
            .unwrap();
        answer_until(peer, until).await.unwrap()
    })
}

/// Reads until the stream yields an error or ends: the error, and when.
async fn until_end<S>(ws: &mut S) -> (Option<WsError>, Instant)
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(item) = ws.next().await {
        if let Err(err) = item {
            return (Some(err), Instant::now());
        }
    }
    (None, Instant::now())
}

/// The timeline: wrapped at 0; our pings at 1 and 2 s answered (the peer reads until
/// 2.5 s), those at 3, 4 and 5 s not; the peer's last frame (the pong to the 2 s ping) came
/// at 2 s, so the tick at 3 s still finds it alive and those at 4, 5, 6 s count three
/// misses: dead at 6 s, strictly after 2 + 3 s, by 2 + 4 s. The peer's own ping was
/// answered once.
fn assert_timeline(err: Option<WsError>, dead_after: Duration, seen: &[Message]) {
    let err = err.expect("an error");
    let dead = Dead::find(&err).expect("Dead");
    assert_eq!(dead.missed(), 3);
    assert_eq!(dead_after, ms(6000));
    assert_eq!(
        pings(seen),
        2,
        "the peer read the pings at 1 and 2 s: {seen:?}"
    );
    let pongs: Vec<_> = seen.iter().filter(|m| m.is_pong()).collect();
    assert_eq!(pongs, [&Message::Pong(b"p".to_vec().into())]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_is_not_send_is_heartbeated_on_a_local_set() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (server, peer) = bare_pair().await;
            let start = Instant::now();
            let mut ws = one_second().layer(Local {
                ws: server,
                _here: Rc::new(()),
            });
            let handle = ws.handle();
            let seen = pinging_peer(peer, start + ms(2500));
            // On the local set: a `Heartbeat<Local>` is not `Send`, so only `spawn_local`.
            let handler = tokio::task::spawn_local(async move { until_end(&mut ws).await });
            let (err, at) = handler.await.unwrap();
            assert_timeline(err, at - start, &seen.await.unwrap().1);
            let stats = handle.stats();
            assert_eq!((stats.pings_sent, stats.pongs_received), (5, 2));
            assert_eq!(stats.rtt_samples, 2);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_borrowed_stream_is_heartbeated_then_used_bare_then_found_dead() {
    let (mut server, peer) = bare_pair().await;
    let start = Instant::now();
    let mut peer = {
        // Phase one, heartbeated through `&mut`: 2.5 s of conversation, our pings at 1 and
        // 2 s answered, the peer's ping answered.
        let mut ws: Heartbeat<&mut Ws> = one_second().layer(&mut server);
        let handle = ws.handle();
        let peer = pinging_peer(peer, start + ms(2500));
        let read = tokio::time::timeout(ms(2500), ws.next()).await;
        assert!(read.is_err(), "nothing for the handler: {read:?}");
        let stats = handle.stats();
        assert_eq!((stats.pings_sent, stats.pongs_received), (2, 2));
        let (peer, seen) = peer.await.unwrap();
        assert_eq!(pings(&seen), 2);
        assert!(seen.contains(&Message::Pong(b"p".to_vec().into())));
        // The heartbeat ends here; the stream it borrowed is the handler's again.
        let _: &mut Ws = ws.into_inner();
        peer
    };
    // Bare: what the peer sends arrives as it is, what we send reaches it.
    peer.send(Message::text("bare")).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), Message::text("bare"));
    server.send(Message::text("back")).await.unwrap();
    assert_eq!(peer.next().await.unwrap().unwrap(), Message::text("back"));

    // Phase two, heartbeated again: the peer stays silent. Wrapped at `again`, which counts
    // as life: dead at `again + 4 s`, after three unanswered pings.
    let again = Instant::now();
    let mut ws = one_second().layer(&mut server);
    let (err, at) = until_end(&mut ws).await;
    assert!(Dead::find(&err.expect("an error")).is_some());
    assert_eq!(at - again, ms(4000));
    assert!(again - start >= ms(2500));
}

/// A connection handler that is not `Clone`, whose response is neither `Default` nor
/// `Send` (an `Rc`), as a handler holding per-server state by value may be.
struct Counting {
    calls: usize,
}

impl Service<Heartbeat<Ws>> for Counting {
    type Response = Rc<(usize, Duration)>;
    type Error = WsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, WsError>>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut ws: Heartbeat<Ws>) -> Self::Future {
        self.calls += 1;
        Box::pin(async move {
            let mut echoed = 0;
            while let Some(msg) = ws.next().await {
                let msg = msg?;
                if msg.is_text() {
                    ws.send(msg).await?;
                    echoed += 1;
                }
            }
            Ok(Rc::new((echoed, ws.handle().interval())))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_service_form_takes_a_handler_that_is_not_clone_with_a_response_not_default() {
    let mut service = ServiceBuilder::new()
        .layer(one_second())
        .service(Counting { calls: 0 });
    let (server, mut peer) = bare_pair().await;
    let talk = async move {
        let mut seen = Vec::new();
        for i in 0..3 {
            peer.send(Message::text(format!("m{i}"))).await.unwrap();
            sleep(ms(1500)).await;
        }
        peer.close(None).await.unwrap();
        while let Some(Ok(msg)) = peer.next().await {
            seen.push(msg);
        }
        seen
    };
    let call = service.ready().await.unwrap().call(server);
    let (response, seen) = tokio::join!(call, talk);
    // Echoed by the handler, heartbeated by the layer: 4.5 s, pings at 1 .. 4 s.
    assert_eq!(*response.unwrap(), (3, ms(1000)));
    assert_eq!(pings(&seen), 4);
    assert_eq!(service.get_ref().calls, 1);
}
