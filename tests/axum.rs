//! axum 0.8 with a real server on 127.0.0.1: a handler written for axum's `WebSocket` gets
//! keepalive by changing its `use` line, nothing else.

mod support;

use std::time::{Duration, Instant};

use axum::extract::ws::Message as AxumMessage;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};
use ws_heartbeat::protocol::Json;
use ws_heartbeat::{HeartbeatLayer, Stats};

use support::ms;

/// The handler of axum's documentation, untouched.
async fn handle_socket(mut socket: WebSocket) {
    while let Some(msg) = socket.recv().await {
        let msg = if let Ok(msg) = msg {
            msg
        } else {
            // client disconnected
            return;
        };
        if socket.send(msg).await.is_err() {
            // client disconnected
            return;
        }
    }
}

/// A server whose route reports, per connection, how long it lasted and the heartbeat's
/// counters.
async fn serve(keepalive: HeartbeatLayer) -> (String, mpsc::UnboundedReceiver<(Duration, Stats)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let route = move |ws: WebSocketUpgrade| {
        let tx = tx.clone();
        async move {
            ws.on_upgrade(move |socket| async move {
                let (started, handle) = (Instant::now(), socket.handle());
                handle_socket(socket).await;
                let _ = tx.send((started.elapsed(), handle.stats()));
            })
        }
    };
    let app = Router::new()
        .route("/ws", get(route))
        .layer(Extension(keepalive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test]
async fn the_untouched_axum_handler_echoes_and_its_client_is_pinged() {
    let (url, mut ended) = serve(HeartbeatLayer::new().interval(ms(200))).await;
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut pings, mut echoes) = (0, 0);
    client.send(Message::text("hello")).await.unwrap();
    let deadline = Instant::now() + ms(1000);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), client.next()).await {
        match msg {
            Message::Ping(_) => pings += 1,
            Message::Text(t) if t == "hello" => echoes += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoes, 1);
    // 1 s of 200 ms ticks, the first jittered: 4 or 5 pings.
    assert!((4..=5).contains(&pings), "{pings} pings");
    client.close(None).await.unwrap();
    let (_, stats) = ended.recv().await.unwrap();
    assert_eq!(stats.missed, 0);
}

#[tokio::test]
async fn a_frozen_client_is_dead_within_the_bound_and_told_why() {
    // Interval 200 ms, 3 missed: dead after more than 600 ms and within 800 ms (+100 ms of
    // real-time scheduling slack) of the handshake.
    let (url, mut ended) = serve(HeartbeatLayer::new().interval(ms(200))).await;
    let (mut frozen, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (lasted, stats) = ended.recv().await.unwrap();
    assert!(
        lasted > ms(600) && lasted <= ms(900),
        "dead after {lasted:?}"
    );
    assert_eq!(stats.missed, 3);
    // Thawed, the client finds the three pings and the Close frame in its socket. (Read raw:
    // answering the pings now would write to a closed socket, and the reset that comes back
    // would discard what is still unread.)
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(frozen.get_mut(), &mut raw)
        .await
        .unwrap();
    let frames = server_frames(&raw);
    assert_eq!(
        frames.iter().filter(|(op, _)| *op == 0x9).count(),
        3,
        "{frames:?} {stats:?}"
    );
    let mut close = 1011u16.to_be_bytes().to_vec();
    close.extend(b"keepalive timeout");
    assert_eq!(frames.last(), Some(&(0x8, close)));
}

/// Splits what a server sent (short, unmasked frames) into (opcode, payload).
fn server_frames(mut raw: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let [head, len, rest @ ..] = raw {
        let len = usize::from(len & 0x7f);
        assert!(
            len < 126 && rest.len() >= len,
            "not a short server frame: {raw:?}"
        );
        frames.push((head & 0x0f, rest[..len].to_vec()));
        raw = &rest[len..];
    }
    frames
}

#[tokio::test]
async fn json_heartbeats_are_answered_and_never_reach_the_handler() {
    let (url, _ended) = serve(
        HeartbeatLayer::new()
            .interval(ms(200))
            .protocol(Json::new()),
    )
    .await;
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    client
        .send(Message::text(r#"{"type":"ping","id":5}"#))
        .await
        .unwrap();
    client
        .send(Message::text(r#"{"type":"chat"}"#))
        .await
        .unwrap();
    let (mut pong, mut chat, mut server_pings) = (None, None, 0);
    let deadline = Instant::now() + ms(700);
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout_at(deadline.into(), client.next()).await
    {
        match text.as_str() {
            r#"{"type":"pong","id":5}"# => pong = Some(()),
            r#"{"type":"chat"}"# => chat = Some(()),
            t if t.starts_with(r#"{"type":"ping","seq":"#) => {
                server_pings += 1;
                // Answer the server the way the demo page does.
                let answer = t.replacen(r#""ping""#, r#""pong""#, 1);
                client.send(Message::text(answer)).await.unwrap();
            }
            other => panic!("the handler echoed heartbeat traffic: {other}"),
        }
    }
    assert!(pong.is_some() && chat.is_some());
    assert!(
        (3..=4).contains(&server_pings),
        "{server_pings} pings in 700 ms"
    );
}

#[test]
fn axum_messages_go_through_the_same_trait() {
    use ws_heartbeat::{MessageKind, WsMessage};
    assert_eq!(AxumMessage::Text("x".into()).kind(), MessageKind::Data);
}

/// Background mode through the axum drop-in: the driver starts before the handler runs, so
/// a handler that is away before its first read (authenticating, say, for 1 s: five
/// intervals) still has its client pinged; and `protocol()` still reports the subprotocol,
/// which the drop-in kept when the socket moved to its driver.
#[tokio::test]
async fn in_background_mode_the_drop_in_pings_before_the_first_read_and_keeps_the_subprotocol() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let route = move |ws: WebSocketUpgrade| {
        let tx = tx.clone();
        async move {
            ws.map(|ws| ws.protocols(["chat"]))
                .on_upgrade(move |socket| async move {
                    tokio::time::sleep(ms(1000)).await; // away before the first read
                    let _ = tx.send(socket.protocol().cloned());
                    handle_socket(socket).await;
                })
        }
    };
    let keepalive = HeartbeatLayer::new().interval(ms(200)).background();
    let app = Router::new()
        .route("/ws", get(route))
        .layer(Extension(keepalive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "chat".parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut pings = 0;
    let deadline = Instant::now() + ms(900);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), client.next()).await {
        match msg {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // 0.9 s of 200 ms ticks, the first jittered, all before the handler's first read: 4 or 5
    // (the default layer sends none until the handler polls).
    assert!((4..=5).contains(&pings), "{pings} pings");
    let protocol = seen.recv().await.unwrap();
    assert_eq!(protocol.as_ref().map(|p| p.to_str().unwrap()), Some("chat"));
}
