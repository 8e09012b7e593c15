//! `HeartbeatLayer::background()`: the connection is driven by a task of its own, so the
//! heartbeat keeps going while the handler is away (a slow database call between a request
//! and its answer). Paused clock, in-memory WebSockets; interval 1 s, max_missed 3, no jitter:
//! a silent peer is dead within 4 s. The handler is away for 12 s, three times that.
//!
//! Each "with" test has its "without" twin, which shows what the option is for: the same
//! handler, the default layer, and nothing of the heartbeat's happens while it is away.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use ws_heartbeat::background::{Background, BackgroundLayer};
use ws_heartbeat::{Heartbeat, HeartbeatLayer};

use support::*;

/// Three times the dead bound of `one_second()`.
const AWAY: Duration = ms(12_000);

/// What the peer saw while the handler was away: our pings, and the answers to its own pings
/// (one every 500 ms, payloads "p0", "p1", ...).
#[derive(Debug, Default)]
struct Seen {
    pings: usize,
    pongs: Vec<Vec<u8>>,
    data: Vec<String>,
}

/// The handler reads a request, is away for `AWAY`, answers, and reads on. The peer sends the
/// request at once, pings every 500 ms, and reads throughout (which answers our pings).
/// Returns what the peer saw up to the handler's answer, and when the answer came.
async fn busy_handler<W>(ws: W, peer: Ws) -> (Seen, Duration)
where
    W: futures_util::Stream<Item = Result<Message, WsError>>
        + futures_util::Sink<Message, Error = WsError>
        + Unpin
        + Send
        + 'static,
{
    let start = Instant::now();
    let mut ws = ws;
    let (mut tx, mut rx) = peer.split();
    tx.send(Message::text("request")).await.unwrap();
    let pinger = tokio::spawn(async move {
        for i in 0.. {
            sleep(ms(500)).await;
            if tx
                .send(Message::Ping(format!("p{i}").into_bytes().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let handler = tokio::spawn(async move {
        let request = ws.next().await.unwrap().unwrap();
        assert_eq!(request, Message::text("request"));
        // The database; the answer comes a quarter second after the 12th tick.
        sleep(AWAY + ms(250)).await;
        ws.send(Message::text("answer")).await.unwrap();
        // Reading on, as a handler loop does.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let mut seen = Seen::default();
    let answered_at = loop {
        match rx.next().await.unwrap().unwrap() {
            Message::Ping(_) => seen.pings += 1,
            Message::Pong(payload) => seen.pongs.push(payload.to_vec()),
            Message::Text(text) => {
                seen.data.push(text.to_string());
                break Instant::now();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    pinger.abort();
    handler.abort();
    (seen, answered_at - start)
}

#[tokio::test(start_paused = true)]
async fn with_background_pings_go_out_and_the_peers_pings_are_answered_while_the_handler_is_away() {
    // t=0 request read; ticks at 1 s .. 12 s send 12 pings; the peer's pings at 0.5 s .. 12 s
    // (24) are answered as they come; t=12.25 s the answer.
    let (ws, peer) = background_pair(one_second().background()).await;
    let (seen, answered_after) = busy_handler(ws, peer).await;
    assert_eq!(answered_after, AWAY + ms(250));
    assert_eq!(seen.data, ["answer"]);
    assert_eq!(seen.pings, 12, "{seen:?}");
    let expected: Vec<Vec<u8>> = (0..24).map(|i| format!("p{i}").into_bytes()).collect();
    assert_eq!(seen.pongs, expected);
}

#[tokio::test(start_paused = true)]
async fn without_background_the_heartbeat_stands_still_while_the_handler_is_away() {
    // The same handler on the default layer: nothing is sent while it is away, neither our
    // pings nor the answers to the peer's (a peer with a ping timeout would have closed).
    let (ws, peer) = pair(one_second()).await;
    let (seen, answered_after) = busy_handler(ws, peer).await;
    assert_eq!(answered_after, AWAY + ms(250));
    assert_eq!(seen.data, ["answer"]);
    assert_eq!(seen.pings, 0, "{seen:?}");
    assert!(seen.pongs.is_empty(), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn what_arrives_while_the_handler_is_away_waits_for_it_in_order() {
    // t=0 the handler reads "0"; the peer sends "1" .. "20" at once; t=12 s the handler comes
    // back (12.25 s, after 12 ticks) and reads them all, in order.
    let (mut ws, mut peer) = background_pair(one_second().background()).await;
    peer.send(Message::text("0")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("0"));
    for i in 1..=20 {
        peer.send(Message::text(i.to_string())).await.unwrap();
    }
    let peer = answer_until(peer, Instant::now() + ms(60_000));
    sleep(AWAY + ms(250)).await;
    for i in 1..=20 {
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(i.to_string())
        );
    }
    drop(ws);
    let (_, seen) = peer.await.unwrap();
    assert_eq!(pings(&seen), 12);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_stops_reading_and_the_silence_is_ours_not_the_peers() {
    // The peer sends 1 000 messages at once, far more than the queue holds, and answers our
    // pings all along. The handler does not read: for 40 s (ten dead bounds) it pushes an
    // update every second, which runs the heartbeat's ticks. The driver stopped reading when
    // the queue was full, so the pongs behind the unread messages stay unread: that silence
    // is ours, and no miss is counted (counted, the peer would be dead at t=4 s). Then the
    // handler reads all 1 000, in order.
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = Ws::from_raw_socket(a, Role::Server, None).await;
    let peer = Ws::from_raw_socket(b, Role::Client, None).await;
    let mut ws = one_second().background().wrap(server);
    let (mut tx, rx) = peer.split();
    for i in 0..1000 {
        tx.feed(Message::text(i.to_string())).await.unwrap();
    }
    tx.flush().await.unwrap();
    let reader = tokio::spawn(async move {
        // Reading answers our pings; counts the updates.
        rx.filter(|m| std::future::ready(matches!(m, Ok(Message::Text(_)))))
            .count()
            .await
    });
    let _keep = tx;
    let handle = ws.handle();
    for second in 0..40 {
        sleep(ms(1000)).await;
        ws.send(Message::text(format!("update {second}")))
            .await
            .unwrap();
    }
    assert_eq!(handle.stats().missed, 0);
    for i in 0..1000 {
        let msg = ws.next().await.unwrap();
        assert_eq!(msg.unwrap(), Message::text(i.to_string()), "message {i}");
    }
    drop(ws);
    assert_eq!(reader.await.unwrap(), 40);
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_found_dead_within_the_bound_while_the_handler_is_away() {
    // t=0 the handler reads "hello", then is away for 12 s; the peer falls silent at once. The
    // driver finds it dead by t=4 s and closes with 1011; the handler, back at 12 s, gets the
    // `Dead` error next, with the silence the heartbeat measured.
    let (mut ws, mut peer) = background_pair(one_second().background()).await;
    peer.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let handle = ws.handle();
    sleep(AWAY).await;
    let err = ws.next().await.unwrap().unwrap_err();
    let dead = ws_heartbeat::Dead::find(&err).expect("a Dead error");
    assert_eq!(dead.missed(), 3);
    assert!(
        dead.silent_for() >= ms(3000) && dead.silent_for() <= ms(4000),
        "{dead:?}"
    );
    assert_eq!(handle.stats().missed, 3);
    // The Close frame went out when the peer was found dead, not when the handler came back:
    // it is the first thing after our three pings in the peer's buffer.
    let mut after = Vec::new();
    while let Some(Ok(msg)) = peer.next().await {
        let close = msg.is_close();
        after.push(msg);
        if close {
            break;
        }
    }
    assert_eq!(pings(&after), 3);
    assert!(
        matches!(after.last(), Some(Message::Close(Some(frame))) if u16::from(frame.code) == 1011),
        "{after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_connection_stops_its_driver_and_closes_the_socket() {
    let (ws, mut peer) = background_pair(one_second().background()).await;
    let mut ws = ws;
    peer.send(Message::text("start")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("start"));
    drop(ws);
    // The driver owned the socket: with it gone, the peer's stream ends (no ping after it).
    let rest: Vec<_> = peer.collect().await;
    assert!(
        rest.iter().all(|m| m.is_err()) || rest.is_empty(),
        "{rest:?}"
    );
}

/// A handler written for the bare stream, generic over what it gets: it compiles unchanged
/// with the option on, since the item and error are the stream's own.
async fn echo<S, E>(mut ws: S)
where
    S: futures_util::Stream<Item = Result<Message, E>> + futures_util::Sink<Message> + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() && ws.send(msg).await.is_err() {
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_service_form_drives_each_connection_from_its_own_task() {
    // The service form with the option: the handler gets a `Background<Ws>` and is away for
    // 12 s before it starts reading; the peer, reading for 12.25 s, gets 12 pings.
    let layer = one_second().background();
    let mut service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|ws: Background<Ws>| async move {
                sleep(AWAY).await;
                echo(ws).await;
                Ok::<_, std::convert::Infallible>(())
            });
    let (server, client) = bare_pair().await;
    let call = service.ready().await.unwrap().call(server);
    let run = tokio::spawn(call);
    let peer = answer_until(client, Instant::now() + AWAY + ms(250));
    let (_, seen) = peer.await.unwrap();
    assert_eq!(pings(&seen), 12, "{seen:?}");
    run.abort();
}

#[test]
fn the_settings_read_back_and_each_mode_has_its_type() {
    let layer = one_second().background();
    assert_eq!(layer.settings().interval(), ms(1000));
    let _: fn(HeartbeatLayer, Ws) -> Heartbeat<Ws> = |layer, ws| layer.layer(ws);
    let _: fn(BackgroundLayer, Ws) -> Background<Ws> = |layer, ws| layer.wrap(ws);
    let _: fn(Heartbeat<Ws>) -> Background<Ws> = Background::new;
}

/// A server-side WebSocket in background mode and its bare peer (see `support::pair`).
async fn background_pair(layer: BackgroundLayer) -> (Background<Ws>, Ws) {
    let (server, client) = bare_pair().await;
    (layer.wrap(server), client)
}

/// Tasks alive on this runtime.
fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_reads_promptly_gets_no_driver_task_and_one_that_leaves_a_read_unpolled_does()
 {
    let (mut ws, peer) = background_pair(one_second().background()).await;
    ws.start();
    // The runtime's ticker runs from the first filing, at the start.
    let alone = tasks();
    // t=0: 100 requests, each sent when the answer to the one before came, by a peer of its
    // own (a client does not send its next request before it has the answer): the handler
    // waits in its read each time one comes, and reads the connection itself.
    let client = tokio::spawn(async move {
        let mut peer = peer;
        for i in 0..100 {
            peer.send(Message::text(i.to_string())).await.unwrap();
            let answer = peer.next().await.unwrap().unwrap();
            assert_eq!(answer, Message::text(i.to_string()));
        }
        peer
    });
    for _ in 0..100 {
        let msg = ws.next().await.unwrap().unwrap();
        ws.send(msg).await.unwrap();
    }
    let peer = client.await.unwrap();
    assert_eq!(tasks(), alone, "no driver");
    // t=0 .. 4.5 s: the handler waits in a read, which a timeout drops at 4.5 s; the ticks at
    // 1 .. 4 s send pings from the handler's own polls, which the peer answers.
    let handle = ws.handle();
    let peer = answer_until(peer, Instant::now() + ms(12_250));
    let read = tokio::time::timeout(ms(4_500), ws.next()).await;
    assert!(read.is_err(), "nothing to read: {read:?}");
    assert_eq!(handle.stats().pings_sent, 4);
    assert_eq!(tasks(), alone + 1, "the peer's task; still no driver");
    // 4.5 .. 12.25 s: the handler is away, its read left unpolled. The tick at 5 s wakes the
    // read nobody polls; the one at 6 s, a second wake-up the handler did not look at with a
    // tick due, spawns the driver, which runs the heartbeat from then on: the ticks 6 .. 12 s
    // each ping (the one due at 5 s went with the tick at 6 s), and the peer, answering,
    // stays alive.
    sleep(ms(5_500)).await;
    assert_eq!(tasks(), alone + 2, "the peer's task and the driver");
    sleep(ms(2_250)).await;
    let stats = handle.stats();
    assert_eq!((stats.pings_sent, stats.missed), (11, 0), "{stats:?}");
    // Dropped, the handler's side takes the connection and the driver with it.
    drop(ws);
    tokio::task::yield_now().await;
    let (_, seen) = peer.await.unwrap();
    assert_eq!(pings(&seen), 11);
    assert_eq!(tasks(), alone);
}

/// Over TCP on 127.0.0.1, two worker threads: the peer sends 20 000 numbered messages without
/// waiting, and echoes back; the handler reads them, away now and then (every 500th message
/// for 2 ms, every 7th it yields), so that its reads and the driver's interleave at every
/// point they can. Every message reaches the handler once and in order, and every echo the
/// peer; a lost wake-up would hang the run (bounded at 60 s).
#[test]
fn over_tcp_with_two_threads_the_handler_and_the_driver_interleave_without_loss_or_reorder() {
    const N: usize = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut ws = one_second().background().wrap(ws);
            for i in 0..N {
                let msg = ws.next().await.unwrap().unwrap();
                assert_eq!(msg, Message::text(i.to_string()), "message {i}");
                if i % 500 == 0 {
                    tokio::time::sleep(ms(2)).await;
                } else if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
                ws.send(msg).await.unwrap();
            }
            ws.close().await.unwrap();
        });
        let (peer, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap();
        let (mut tx, mut rx) = peer.split();
        let sender = tokio::spawn(async move {
            for i in 0..N {
                tx.feed(Message::text(i.to_string())).await.unwrap();
                if i % 64 == 0 {
                    tx.flush().await.unwrap();
                }
            }
            tx.flush().await.unwrap();
            tx
        });
        let echoes = async {
            for i in 0..N {
                let msg = rx.next().await.unwrap().unwrap();
                assert_eq!(msg, Message::text(i.to_string()), "echo {i}");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), echoes)
            .await
            .expect("every echo within 60 s");
        let _tx = sender.await.unwrap();
        server.await.unwrap();
    });
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_read_what_woke_it_and_went_away_is_covered_from_the_next_tick() {
    // t=0: the handler waits in its read (nothing there yet); t=1 s: the tick wakes it and it
    // pings from its own poll. t=1.5 s: the peer's request wakes it; it reads the request
    // itself and goes away for 5 s. What woke it took the router out of the heartbeat's hub,
    // and its read left nothing registered with the socket: only the hub's next tick can
    // reach the driver. The ticks at 2 .. 6 s each ping (the peer answers); none goes
    // unsent.
    let (ws, mut peer) = background_pair(one_second().background()).await;
    let handle = ws.handle();
    let handler = tokio::spawn(async move {
        let mut ws = ws;
        let request = ws.next().await.unwrap().unwrap();
        sleep(ms(5_000)).await;
        (ws, request)
    });
    sleep(ms(1_500)).await;
    assert_eq!(handle.stats().pings_sent, 1);
    peer.send(Message::text("request")).await.unwrap();
    let peer = answer_until(peer, Instant::now() + ms(4_750));
    sleep(ms(4_750)).await;
    let stats = handle.stats();
    assert_eq!((stats.pings_sent, stats.missed), (6, 0), "{stats:?}");
    let (_ws, request) = handler.await.unwrap();
    assert_eq!(request, Message::text("request"));
    let (_, seen) = peer.await.unwrap();
    assert_eq!(pings(&seen), 6);
}
