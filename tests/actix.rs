//! actix-web 4 with actix-ws 0.4, on a real server on 127.0.0.1: the handler of actix-ws's
//! own documentation (its `handle` function's example), with `ws_heartbeat::actix::handle`
//! in place of `actix_ws::handle` and nothing else changed. The conformance suite
//! (`tests/conformance.rs`) holds actix to every other behaviour.

#[path = "conformance/peer.rs"]
#[allow(dead_code)]
mod peer;

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpServer, Responder, web};
use actix_ws::Message;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message as Client};
use ws_heartbeat::HeartbeatLayer;

use peer::{CLOSE, PING, RawPeer};

// actix-ws's documented handler, verbatim but for the `handle` it calls.
async fn ws(req: HttpRequest, body: web::Payload) -> actix_web::Result<impl Responder> {
    let (response, mut session, mut msg_stream) = ws_heartbeat::actix::handle(&req, body)?;

    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = msg_stream.recv().await {
            match msg {
                Message::Ping(bytes) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }

                Message::Text(msg) => println!("Got text: {msg}"),
                _ => break,
            }
        }

        let _ = session.close(None).await;
    });

    Ok(response)
}

const INTERVAL: Duration = Duration::from_millis(100);

/// An actix server of that handler on its own system and thread, its settings in the app
/// data; its `ws://` URL.
fn serve(layer: HeartbeatLayer) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let layer = web::Data::new(layer);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(layer.clone())
                    .route("/", web::get().to(ws))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await
        })
    });
    format!("ws://{}/", rx.recv().unwrap())
}

/// A handler with its own settings (`handle_with`) and actix-ws's frame limit set through
/// our stream (`max_frame_size`): it echoes texts and closes with 1009 on an oversized frame.
async fn small_frames(req: HttpRequest, body: web::Payload) -> actix_web::Result<impl Responder> {
    let layer = HeartbeatLayer::new().interval(INTERVAL);
    let (response, mut session, msg_stream) = ws_heartbeat::actix::handle_with(&layer, &req, body)?;
    let mut msg_stream = msg_stream.max_frame_size(16);
    actix_web::rt::spawn(async move {
        while let Some(msg) = msg_stream.recv().await {
            match msg {
                Ok(Message::Text(text)) => {
                    let _ = session.text(text).await;
                }
                Ok(_) => {}
                Err(err) => {
                    let reason = actix_ws::CloseReason {
                        code: actix_ws::CloseCode::Size,
                        description: Some(err.to_string()),
                    };
                    let _ = session.close(Some(reason)).await;
                    return;
                }
            }
        }
    });
    Ok(response)
}

#[tokio::test]
async fn handle_with_takes_its_settings_and_max_frame_size_reaches_actix_ws() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            // No app data: without `handle_with`'s layer, the defaults (10 s) would send no
            // ping within this test.
            let server = HttpServer::new(|| App::new().route("/", web::get().to(small_frames)))
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await
        })
    });
    let mut client = peer::connect(&format!("ws://{}/", rx.recv().unwrap())).await;
    client.send(Client::text("short")).await.unwrap();
    let (mut echoed, mut pings) = (false, 0);
    // Three intervals: the echo, and the pings of the layer `handle_with` was given.
    let until = tokio::time::Instant::now() + 3 * INTERVAL;
    while let Ok(msg) = tokio::time::timeout_at(until, client.next()).await {
        match msg.expect("open").unwrap() {
            Client::Text(text) if text.as_str() == "short" => echoed = true,
            Client::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(echoed);
    assert!((2..=3).contains(&pings), "{pings} pings in 3 intervals");
    // Over the 16-byte limit: actix-ws's own error, through our stream.
    client.send(Client::text("x".repeat(100))).await.unwrap();
    let close = loop {
        match client.next().await.expect("a Close").unwrap() {
            Client::Close(frame) => break frame.expect("a code"),
            Client::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
}

#[tokio::test]
async fn the_documented_handler_is_pinged_and_its_clients_pings_are_answered_once() {
    let url = serve(HeartbeatLayer::new().interval(INTERVAL));
    let mut client = peer::connect(&url).await;
    // Ten intervals: a text and a ping of ours each, reading all the while (which answers
    // the server's pings).
    let (mut pongs, mut server_pings) = (BTreeMap::<Vec<u8>, u32>::new(), 0);
    for i in 0..10u8 {
        client
            .send(Client::text(format!("hello {i}")))
            .await
            .unwrap();
        client.send(Client::Ping(vec![i].into())).await.unwrap();
        let until = tokio::time::Instant::now() + INTERVAL;
        while let Ok(msg) = tokio::time::timeout_at(until, client.next()).await {
            match msg.expect("open").unwrap() {
                Client::Ping(_) => server_pings += 1,
                Client::Pong(payload) => *pongs.entry(payload.to_vec()).or_default() += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Each ping answered once: by the heartbeat, and not again by the handler's `Ping` arm,
    // which never sees a ping.
    let expected: BTreeMap<Vec<u8>, u32> = (0..10u8).map(|i| (vec![i], 1)).collect();
    assert_eq!(pongs, expected);
    // Ten intervals, the first tick jittered: 9 to 11 pings.
    assert!((9..=11).contains(&server_pings), "{server_pings}");
    // Anything but a text ends the handler's loop, and it closes the session: the heartbeat
    // hid the pongs, which would have ended it at once.
    client.send(Client::binary(vec![1])).await.unwrap();
    let close = loop {
        match client.next().await.expect("a Close").unwrap() {
            Client::Close(frame) => break frame,
            Client::Ping(_) | Client::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close, None);
    match client.next().await {
        None | Some(Err(tungstenite::Error::ConnectionClosed)) => {}
        other => panic!("not closed: {other:?}"),
    }
}

#[tokio::test]
async fn the_documented_handler_finds_a_silent_client_dead_within_the_bound() {
    // Interval 100 ms, 3 missed: dead in (300 ms, 400 ms] of the handshake, plus 100 ms of
    // real-time scheduling slack on the upper bound.
    let url = serve(HeartbeatLayer::new().interval(INTERVAL).max_missed(3));
    let mut silent = RawPeer::connect(&url).await;
    let frames = silent.frames_until_close(Duration::from_secs(3)).await;
    let (close, pings) = frames.split_last().unwrap();
    assert_eq!(pings.len(), 3, "{frames:?}");
    assert!(pings.iter().all(|f| f.opcode == PING), "{frames:?}");
    let mut expected = 1011u16.to_be_bytes().to_vec();
    expected.extend(b"keepalive timeout");
    assert_eq!((close.opcode, &close.payload), (CLOSE, &expected));
    let (after_open, after_handshake) = (close.at - silent.opened, close.at - silent.connected);
    assert!(after_open > Duration::from_millis(300), "{after_open:?}");
    assert!(
        after_handshake <= Duration::from_millis(500),
        "{after_handshake:?}"
    );
}
