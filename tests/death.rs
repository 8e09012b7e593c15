//! How a death is reported and how the connection is left: at once, on whichever side the
//! handler is using, with a bounded Close. Paused clock; interval 1 s, max_missed 3, no
//! jitter: a peer silent since the handshake is dead at exactly 4 s.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::Dead;

use support::*;

/// Sends 1 KiB texts until the sink reports an error; returns when, and how many went.
async fn send_until_error(
    ws: &mut (impl SinkExt<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin),
) -> (Instant, tokio_tungstenite::tungstenite::Error, usize) {
    let mut sent = 0;
    loop {
        if let Err(err) = ws.send(Message::text("x".repeat(1024))).await {
            return (Instant::now(), err, sent);
        }
        sent += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn peer_that_stops_reading_is_dead_in_bound_though_no_ping_fits() {
    // 0 s: the peer stops reading; the pipe holds 4 KiB. The handler fills it at once and
    // waits for room. 1 s: alive (the handshake); the ping cannot reach the peer. 2, 3 s:
    // missed 1, 2. 4 s: missed 3: dead, reported by the waiting send.
    let start = Instant::now();
    let (mut ws, _peer) = pair_with_capacity(one_second(), 4096).await;
    let (at, err, sent) = send_until_error(&mut ws).await;
    assert_eq!(at - start, ms(4000));
    assert_eq!(Dead::find(&err).map(|d| d.missed()), Some(3));
    assert!(sent >= 3, "the pipe took {sent} messages");
    // The pings of 1, 2 and 3 s were handed to tungstenite, whose write buffer the full pipe
    // never drains: they count as sent, and as unanswered.
    assert_eq!(ws.handle().stats().pings_sent, 3);
    // The sink keeps reporting it; the stream reports it once, then ends.
    assert!(is_dead(&ws.send(Message::text("more")).await.unwrap_err()));
    assert!(is_dead(&ws.next().await.unwrap().unwrap_err()));
    assert!(ws.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn close_to_a_dead_peer_that_does_not_read_gives_up_after_the_close_timeout() {
    // Dead at 4 s as above, with the pipe full. The Close 1011 cannot be written; close()
    // returns at 4 s + close timeout (1 s default) = 5 s, and reports success (best effort).
    let start = Instant::now();
    let (mut ws, _peer) = pair_with_capacity(one_second(), 4096).await;
    let (at, _, _) = send_until_error(&mut ws).await;
    assert_eq!(at - start, ms(4000));
    ws.close().await.expect("close after death is best effort");
    assert_eq!(Instant::now() - start, ms(5000));

    // A shorter close timeout is honoured.
    let start = Instant::now();
    let layer = one_second().close_timeout(ms(250));
    let (mut ws, _peer) = pair_with_capacity(layer, 4096).await;
    send_until_error(&mut ws).await;
    ws.close().await.unwrap();
    assert_eq!(Instant::now() - start, ms(4250));
}

#[tokio::test(start_paused = true)]
async fn split_reader_and_writer_both_learn_of_the_death_at_once() {
    // The handler splits the stream: the reader waits for data, the writer is parked on a
    // full pipe. At 4 s both get the Dead error, whichever noticed it first.
    let start = Instant::now();
    let (ws, _peer) = pair_with_capacity(one_second(), 4096).await;
    let (mut tx, mut rx) = ws.split();
    let writer = tokio::spawn(async move { send_until_error(&mut tx).await });
    let reader = tokio::spawn(async move {
        let item = rx.next().await;
        (Instant::now(), item)
    });
    // (Bounded on the virtual clock: a lost wake-up fails the test instead of hanging it.)
    let (w_at, w_err, _) = timeout(ms(10_000), writer)
        .await
        .expect("writer woken")
        .unwrap();
    let (r_at, r_item) = timeout(ms(10_000), reader)
        .await
        .expect("reader woken")
        .unwrap();
    assert_eq!(w_at - start, ms(4000));
    assert_eq!(r_at - start, ms(4000));
    assert!(is_dead(&w_err));
    assert!(is_dead(&r_item.unwrap().unwrap_err()));
}

#[tokio::test(start_paused = true)]
async fn split_writer_learns_of_a_death_found_by_the_reader() {
    // The writer idles on an empty sink between sends every 700 ms; the reader finds the
    // death at 4 s. The writer's next send (4.2 s) fails with Dead.
    let start = Instant::now();
    let (ws, _peer) = pair(one_second()).await;
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let item = rx.next().await;
        (Instant::now(), item)
    });
    let mut sent = 0;
    let err = loop {
        tokio::time::sleep(ms(700)).await;
        match tx.send(Message::text("x")).await {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(sent, 5);
    assert_eq!(Instant::now() - start, ms(4200));
    assert!(is_dead(&err));
    let (r_at, r_item) = reader.await.unwrap();
    assert_eq!(r_at - start, ms(4000));
    assert!(is_dead(&r_item.unwrap().unwrap_err()));
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_completes_our_close_is_still_found_dead() {
    // 0.5 s: the handler starts a close; the peer never reads, so never answers it. Ticks go
    // on without pings: 1 s alive (handshake), 2-3 s missed 1-2, 4 s dead: the reader gets
    // the error instead of waiting forever for the peer's Close.
    let start = Instant::now();
    let (mut ws, _peer) = pair(one_second()).await;
    tokio::time::sleep(ms(500)).await;
    ws.send(Message::Close(None)).await.unwrap();
    let (at, err, _) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(4000));
    assert!(is_dead(&err.unwrap()));
    assert_eq!(ws.handle().stats().pings_sent, 0);
}

#[tokio::test(start_paused = true)]
async fn a_clean_close_by_the_peer_ends_the_stream_and_the_heartbeat() {
    let (mut ws, mut peer) = pair(one_second()).await;
    let handle = ws.handle();
    tokio::spawn(async move {
        tokio::time::sleep(ms(1500)).await;
        peer.close(None).await.unwrap();
        while peer.next().await.is_some() {}
    });
    let (at, err, data) = read_until_end(&mut ws).await;
    assert!(err.is_none());
    assert_eq!(data.len(), 1);
    assert!(data[0].is_close());
    assert!(at.elapsed() == ms(0));
    // No tick runs after the end.
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(handle.stats().pings_sent, 1);
}
