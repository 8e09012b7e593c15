//! `HeartbeatLayer::drain`: every connection of a layer closed with 1012 at its own moment
//! of the window, latecomers at once, a silent peer given up after the close timeout, the
//! report. Paused clock, in-memory pipes; interval 10 s (longer than the windows, so the
//! drain's own wake-ups are what closes), no jitter. The last test runs on 127.0.0.1.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower::Layer;
use ws_heartbeat::{DrainReport, HeartbeatLayer};

use support::*;

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(ms(10_000)).jitter(false)
}

/// What a peer saw of the drain: when the Close came, its code and reason.
type Seen = (Duration, Option<(u16, String)>);

/// A peer that reads (answering pings and the Close, through tungstenite) until the end, and
/// tells when the Close came, measured from `start`.
fn peer_reads(mut peer: Ws, start: Instant) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = (Duration::MAX, None);
        while let Some(Ok(msg)) = peer.next().await {
            if let Message::Close(frame) = msg {
                let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                seen = (start.elapsed(), frame);
            }
        }
        seen
    })
}

/// A handler that reads until the end and drops the connection: returns when, from
/// `start`, and whether the end was an error.
fn handler_reads(
    mut ws: ws_heartbeat::Heartbeat<Ws>,
    start: Instant,
) -> tokio::task::JoinHandle<(Duration, bool)> {
    tokio::spawn(async move {
        let (at, err, _) = read_until_end(&mut ws).await;
        (at - start, err.is_some())
    })
}

/// A pair whose server side has been polled once (a send: it joins its layer's group at its
/// first poll, so that it takes a moment of the window rather than closing at once).
async fn joined_pair(layer: &HeartbeatLayer) -> (ws_heartbeat::Heartbeat<Ws>, Ws) {
    let (mut ws, peer) = pair(layer.clone()).await;
    ws.send(Message::text("ready")).await.unwrap();
    (ws, peer)
}

/// closed, forced, ended early, held.
fn counts(report: DrainReport) -> [usize; 4] {
    [
        report.closed,
        report.forced,
        report.ended_early,
        report.held,
    ]
}

fn restart() -> Option<(u16, String)> {
    Some((u16::from(CloseCode::Restart), "server restart".to_owned()))
}

#[tokio::test(start_paused = true)]
async fn a_hundred_connections_close_one_every_hundredth_of_the_window() {
    // 0 s: 100 connections, polled once each; the drain begins over 10 s. Each takes the
    // next step when woken: closes at 0.1 s, 0.2 s, ... 10 s, ten in each tenth; each peer
    // answers at once, so the drain resolves at 10 s with 100 clean closes.
    let layer = layer();
    let start = Instant::now();
    let mut peers = Vec::new();
    let mut handlers = Vec::new();
    for _ in 0..100 {
        let (ws, peer) = joined_pair(&layer).await;
        handlers.push(handler_reads(ws, start));
        peers.push(peer_reads(peer, start));
    }
    tokio::task::yield_now().await;
    let report = layer.drain(ms(10_000)).await;
    assert_eq!(start.elapsed(), ms(10_000));
    assert_eq!(counts(report), [100, 0, 0, 0]);
    let mut closes = Vec::new();
    for peer in peers {
        let (at, frame) = peer.await.unwrap();
        assert_eq!(frame, restart());
        closes.push(at);
    }
    closes.sort();
    let expected: Vec<Duration> = (1..=100).map(|k| ms(100 * k)).collect();
    assert_eq!(closes, expected);
    for handler in handlers {
        // The handler saw the end (after the peer's Close), not an error.
        assert!(!handler.await.unwrap().1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_polled_first_during_the_drain_closes_at_once() {
    // 0 s: one connection, drained over 4 s (its moment: 4 s). 1 s: a second connection
    // is made and polled: Close 1012 at 1 s, answered at once.
    let layer = layer();
    let start = Instant::now();
    let (ws, peer) = pair(layer.clone()).await;
    let first = (handler_reads(ws, start), peer_reads(peer, start));
    tokio::task::yield_now().await;
    let drain = tokio::spawn(layer.drain(ms(4000)));
    tokio::time::sleep(ms(1000)).await;
    let (late, late_peer) = pair(layer.clone()).await;
    let late = (handler_reads(late, start), peer_reads(late_peer, start));
    assert_eq!(late.1.await.unwrap(), (ms(1000), restart()));
    assert_eq!(late.0.await.unwrap(), (ms(1000), false));
    assert_eq!(first.1.await.unwrap(), (ms(4000), restart()));
    let report = drain.await.unwrap();
    assert_eq!(start.elapsed(), ms(4000));
    assert_eq!(report.closed, 2);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_the_close_is_given_up_after_the_close_timeout() {
    // 0 s: the drain begins over 2 s; the peer never reads. 2 s: Close 1012 written into the
    // pipe. 3 s (close timeout 1 s): the handler's read reports Dead, then the end; the drain
    // resolves as the handler drops the connection.
    let layer = layer();
    let start = Instant::now();
    let (ws, _peer) = pair(layer.clone()).await;
    let handler = handler_reads(ws, start);
    tokio::task::yield_now().await;
    let report = layer.drain(ms(2000)).await;
    assert_eq!(handler.await.unwrap(), (ms(3000), true));
    assert_eq!(start.elapsed(), ms(3000));
    assert_eq!(counts(report), [0, 1, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn the_drain_ends_at_its_bound_with_connections_still_held() {
    // A handler that read once and then holds its connection without polling it: the drain
    // wakes it in vain, and resolves at window 2 s + close timeout 1 s + 1 s = 4 s, with the
    // connection counted as held. A second drain, called at 1 s with another window, joins
    // the first: same end, same report.
    let layer = layer();
    let start = Instant::now();
    let (mut ws, mut peer) = pair(layer.clone()).await;
    peer.send(Message::text("hello")).await.unwrap();
    assert!(ws.next().await.is_some());
    let first = tokio::spawn(layer.drain(ms(2000)));
    tokio::time::sleep(ms(1000)).await;
    let second = layer.drain(ms(60_000)).await;
    assert_eq!(start.elapsed(), ms(4000));
    assert_eq!(counts(first.await.unwrap()), [0, 0, 0, 1]);
    assert_eq!(counts(second), [0, 0, 0, 1]);
    drop(ws);
}

#[tokio::test(start_paused = true)]
async fn a_zero_window_closes_everything_at_once() {
    // Three connections, a zero window: all close at 0 s, answered at once; the drain
    // resolves at 0 s.
    let layer = layer();
    let start = Instant::now();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (ws, peer) = joined_pair(&layer).await;
        handler_reads(ws, start);
        peers.push(peer_reads(peer, start));
    }
    let report = layer.drain(Duration::ZERO).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    for peer in peers {
        assert_eq!(peer.await.unwrap(), (Duration::ZERO, restart()));
    }
    assert_eq!(counts(report), [3, 0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_ends_before_its_moment_is_counted_as_ended_early() {
    // Two connections drained over 2 s (moments 1 s and 2 s). 0.5 s: one peer closes; its
    // handler sees the Close and the end, and drops it. The other closes at its moment; the
    // drain resolves then, at 1 s or 2 s.
    let layer = layer();
    let start = Instant::now();
    let (ws, peer) = joined_pair(&layer).await;
    handler_reads(ws, start);
    let stays = peer_reads(peer, start);
    let (ws, mut quitter) = joined_pair(&layer).await;
    let quitter_handler = handler_reads(ws, start);
    let drain = tokio::spawn(layer.drain(ms(2000)));
    tokio::time::sleep(ms(500)).await;
    quitter.close(None).await.unwrap();
    while quitter.next().await.is_some() {}
    assert_eq!(quitter_handler.await.unwrap(), (ms(500), false));
    let report = drain.await.unwrap();
    let (at, frame) = stays.await.unwrap();
    assert_eq!(frame, restart());
    assert!(at == ms(1000) || at == ms(2000), "closed at {at:?}");
    assert_eq!(start.elapsed(), at);
    assert_eq!(counts(report), [1, 0, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn after_the_drains_close_a_send_fails_as_after_a_close() {
    // A split handler: a reader task, and a writer that sent "before" at 0 s. At its moment
    // (1 s) the heartbeat, polled by the reader, sends the Close; the peer answers, the
    // reader sees the Close and the end, and the writer's next send fails. The peer got
    // "before", then the Close.
    let layer = layer();
    let start = Instant::now();
    let (ws, peer) = joined_pair(&layer).await;
    let peer = tokio::spawn(async move {
        let mut peer = peer;
        let mut got = Vec::new();
        while let Some(Ok(msg)) = peer.next().await {
            got.push(msg);
        }
        got
    });
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text("before")).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Some(Ok(msg)) = rx.next().await {
            last = Some(msg);
        }
        (start.elapsed(), last.is_some_and(|m| m.is_close()))
    });
    let drain = tokio::spawn(layer.drain(ms(1000)));
    assert_eq!(reader.await.unwrap(), (ms(1000), true));
    assert!(tx.send(Message::text("after")).await.is_err());
    // The drain waits for the connection to be dropped: the writer holds half of it.
    drop(tx);
    let report = drain.await.unwrap();
    let got = peer.await.unwrap();
    assert_eq!(got[..2], [Message::text("ready"), Message::text("before")]);
    assert!(matches!(&got[2], Message::Close(Some(f)) if f.code == CloseCode::Restart));
    assert_eq!(got.len(), 3);
    assert_eq!(counts(report), [1, 0, 0, 0]);
    assert_eq!(start.elapsed(), ms(1000));
}

#[tokio::test(start_paused = true)]
async fn background_connections_are_drained_by_their_layer() {
    // The same layer in background mode: the driver, not the handler, sends the Close.
    let layer = layer();
    let start = Instant::now();
    let background = layer.clone().background();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio_tungstenite::WebSocketStream::from_raw_socket(
        a,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await;
    let client = tokio_tungstenite::WebSocketStream::from_raw_socket(
        b,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let mut ws = background.wrap(server);
    let peer = peer_reads(client, start);
    let handler = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    tokio::task::yield_now().await;
    let report = layer.drain(ms(500)).await;
    assert_eq!(peer.await.unwrap(), (ms(500), restart()));
    handler.await.unwrap();
    assert_eq!(report.closed, 1);
    assert_eq!(start.elapsed(), ms(500));
}

#[tokio::test]
async fn over_tcp_a_client_gets_1012_and_the_server_the_end() {
    // 127.0.0.1, real clock: a tokio-tungstenite client of a server whose layer drains over
    // 200 ms sees the Close 1012 between 0 and 200 ms (plus scheduling), answers it, and the
    // drain reports one clean close.
    let layer = layer();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_layer = layer.clone();
    let (polled, was_polled) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut ws = server_layer.layer(ws);
        assert!(ws.next().await.is_some());
        polled.send(()).unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    client.send(Message::text("hi")).await.unwrap();
    // The server's connection joined its layer at its first poll.
    was_polled.await.unwrap();
    let began = std::time::Instant::now();
    let drain = tokio::spawn(layer.drain(ms(200)));
    let mut close = None;
    while let Some(Ok(msg)) = client.next().await {
        if let Message::Close(frame) = msg {
            close = frame.map(|f| f.code);
        }
    }
    assert_eq!(close, Some(CloseCode::Restart));
    assert!(began.elapsed() < Duration::from_secs(2));
    let report = tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.closed, 1);
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_before_the_drains_close_goes_out_ended_early() {
    // 0 s: the drain begins over 500 ms (the moment: 500 ms). 400 ms: the peer closes. The
    // handler has reserved the sink (a send under way), so at its moment the heartbeat's Close
    // must wait; the handler then reads the peer's Close and polls again at 2.1 s, past the
    // close timeout's end (1.5 s): the peer's close ended it, not the drain's (never sent), so
    // it is not given up as a forced close: it ended early.
    let layer = layer();
    let start = Instant::now();
    let (mut ws, mut peer) = joined_pair(&layer).await;
    let drain = tokio::spawn(layer.drain(ms(500)));
    tokio::time::sleep(ms(400)).await;
    peer.close(None).await.unwrap();
    let peer = tokio::spawn(async move { while peer.next().await.is_some() {} });
    tokio::time::sleep(ms(200)).await;
    std::future::poll_fn(|cx| futures_util::SinkExt::poll_ready_unpin(&mut ws, cx))
        .await
        .unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    assert!(msg.is_close(), "{msg:?}");
    tokio::time::sleep(ms(1500)).await;
    assert!(ws.next().await.is_none());
    drop(ws);
    peer.await.unwrap();
    let report = drain.await.unwrap();
    assert_eq!(counts(report), [0, 0, 1, 0]);
    assert_eq!(start.elapsed(), ms(2100));
}
