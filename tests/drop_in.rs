//! The handler does not change: code written for a tokio-tungstenite stream takes a
//! `Heartbeat` of it, and a connection-handler service gets its streams wrapped through
//! `ServiceBuilder::layer`.

mod support;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tower::{Service, ServiceBuilder, ServiceExt};
use ws_heartbeat::{Dead, Heartbeat};

use support::*;

/// An echo handler as people write it, generic over the stream.
async fn echo<S>(mut ws: S) -> Result<usize, WsError>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let mut echoed = 0;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
            echoed += 1;
        }
    }
    Ok(echoed)
}

/// A handler that pushes a tick while echoing, with `tokio::select!` over `next()`.
async fn push_and_echo<S>(mut ws: S, pushes: usize) -> Result<(), WsError>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let mut timer = tokio::time::interval(ms(300));
    let mut pushed = 0;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(msg) => ws.send(msg?).await?,
                None => return Ok(()),
            },
            _ = timer.tick(), if pushed < pushes => {
                ws.send(Message::text(format!("push {pushed}"))).await?;
                pushed += 1;
            }
        }
    }
}

fn assert_drop_in<T: Send + Sync + Unpin + 'static>() {}

#[test]
fn heartbeat_is_send_sync_unpin_like_the_stream_it_wraps() {
    assert_drop_in::<Ws>();
    assert_drop_in::<Heartbeat<Ws>>();
}

/// Peer side of the echo tests: sends three texts, reads the echoes, closes.
async fn talk(mut peer: Ws) -> Vec<Message> {
    let mut seen = Vec::new();
    for i in 0..3 {
        peer.send(Message::text(format!("m{i}"))).await.unwrap();
        tokio::time::sleep(ms(1500)).await;
    }
    peer.close(None).await.unwrap();
    while let Some(Ok(msg)) = peer.next().await {
        seen.push(msg);
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn the_same_generic_handler_runs_on_the_bare_and_the_wrapped_stream() {
    let (ws, peer) = pair(one_second()).await;
    let bare = ws.into_inner();
    let (handled, seen) = tokio::join!(echo(bare), talk(peer));
    assert_eq!(handled.unwrap(), 3);
    assert_eq!(pings(&seen), 0);

    let (ws, peer) = pair(one_second()).await;
    let (handled, seen) = tokio::join!(echo(ws), talk(peer));
    assert_eq!(handled.unwrap(), 3);
    let texts: Vec<_> = seen.iter().filter(|m| m.is_text()).cloned().collect();
    assert_eq!(texts, ["m0", "m1", "m2"].map(Message::text));
    // 4.5 s of conversation: ticks at 1 .. 4 s.
    assert_eq!(pings(&seen), 4);
}

#[tokio::test(start_paused = true)]
async fn a_select_loop_handler_runs_unchanged_and_sees_the_death() {
    // The handler pushes 5 texts 300 ms apart and echoes; the peer never reads or answers.
    // Dead at 4 s: the select loop gets it from `next()` as an ordinary error.
    let start = Instant::now();
    let (ws, _peer) = pair(one_second()).await;
    let err = push_and_echo(ws, 5).await.unwrap_err();
    assert_eq!(Instant::now() - start, ms(4000));
    assert!(Dead::find(&err).is_some());
}

#[tokio::test(start_paused = true)]
async fn the_service_form_wraps_each_connection_the_handler_is_called_with() {
    let start = Instant::now();
    let mut handler = ServiceBuilder::new()
        .layer(one_second())
        .service_fn(|ws: Heartbeat<Ws>| async move { echo(ws).await });

    // A talking peer: echoed, and pinged on the layer's schedule.
    let (ws, peer) = pair(one_second()).await;
    let bare = ws.into_inner();
    let call = handler.ready().await.unwrap().call(bare);
    let (handled, seen) = tokio::join!(call, talk(peer));
    assert_eq!(handled.unwrap(), 3);
    assert_eq!(pings(&seen), 4);

    // A silent peer: the handler ends with Dead, 4 s after the connection was handed over.
    let (ws, _peer) = pair(one_second()).await;
    let handed_over = Instant::now();
    let err = handler.oneshot(ws.into_inner()).await.unwrap_err();
    assert!(Dead::find(&err).is_some());
    assert_eq!(Instant::now() - handed_over, ms(4000));
    assert!(handed_over > start);
}
