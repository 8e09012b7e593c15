//! The reconnecting client against a real server on 127.0.0.1 that is stopped and
//! restarted, kicks, or is left by `close()`. Real time.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Error, Event, Reconnect};

use support::ms;

/// What the server saw: (connection number, text).
type Seen = mpsc::UnboundedReceiver<(usize, String)>;

/// An echo server on `addr`. A text "kick" is answered with Close 4000. Dropping the
/// returned set stops it: listener and connections.
async fn server(addr: SocketAddr, seen: mpsc::UnboundedSender<(usize, String)>) -> JoinSet<()> {
    let listener = TcpListener::bind(addr).await.unwrap();
    let mut tasks = JoinSet::new();
    let conns = Arc::new(Mutex::new(JoinSet::new()));
    let held = conns.clone();
    tasks.spawn(async move {
        let _held = held; // the connections die with the accept loop
        let mut n = 0;
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            n += 1;
            let seen = seen.clone();
            conns.lock().unwrap().spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let _ = seen.send((n, text.to_string()));
                    if text == "kick" {
                        let kick = CloseFrame {
                            code: 4000.into(),
                            reason: "kicked".into(),
                        };
                        let _ = ws.close(Some(kick)).await;
                    } else if ws.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    tasks
}

fn client(
    addr: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
) -> Reconnect<impl ws_heartbeat::reconnect::Connection<Message = Message>> {
    let url = format!("ws://{addr}");
    Reconnect::builder(move || {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(ms(200)))
    .backoff(Backoff::new().initial(ms(100)).max_delay(ms(400)))
    .on_connect(|mut ws| async move {
        ws.send(Message::text("hello")).await?;
        Ok::<_, tokio_tungstenite::tungstenite::Error>(ws)
    })
    .on_event(move |e| {
        let _ = events.send(e.clone());
    })
    .build()
}

async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn next_seen(seen: &mut Seen) -> (usize, String) {
    tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("the server saw it")
        .unwrap()
}

/// The events a finished client emitted, after a second in which a wrong attempt would show.
async fn events_after_a_second(events: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    tokio::time::sleep(ms(1000)).await;
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

fn connecting_count(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Connecting { .. }))
        .count()
}

async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<Event>,
    what: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let mut passed = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("event")
            .unwrap();
        let done = what(&e);
        passed.push(e);
        if done {
            return passed;
        }
    }
}

#[tokio::test]
async fn the_client_comes_back_after_a_restart_runs_its_hook_and_delivers_the_buffer_in_order() {
    let addr = free_addr().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let running = server(addr, seen_tx.clone()).await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (mut tx, mut rx) = client(addr, events_tx).split();
    let (echo_tx, mut echoes) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(Message::Text(t))) = rx.next().await {
            let _ = echo_tx.send(t.to_string());
        }
    });

    tx.send(Message::text("m1")).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, (1, "hello".into()));
    assert_eq!(next_seen(&mut seen).await, (1, "m1".into()));

    // Stop the server; the client notices, then queues m2 and m3 while it is away.
    drop(running);
    let mut order = wait_for(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let sender = tokio::spawn(async move {
        for text in ["m2", "m3"] {
            tx.feed(Message::text(text)).await.unwrap();
        }
        // Returns once both went out on a new connection.
        tx.flush().await.unwrap();
        tx
    });
    tokio::time::sleep(ms(500)).await;
    let _running = server(addr, seen_tx).await;
    order.extend(wait_for(&mut events, |e| matches!(e, Event::Connected { .. })).await);

    assert_eq!(next_seen(&mut seen).await, (1, "hello".into()));
    assert_eq!(next_seen(&mut seen).await, (1, "m2".into()));
    assert_eq!(next_seen(&mut seen).await, (1, "m3".into()));

    // Documented order: connected, disconnected, then reconnecting/connecting pairs (failed
    // attempts against the stopped server) and finally connected.
    let names: Vec<&str> = order
        .iter()
        .map(|e| match e {
            Event::Connecting { .. } => "connecting",
            Event::Connected { .. } => "connected",
            Event::Disconnected { .. } => "disconnected",
            Event::Reconnecting { .. } => "reconnecting",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names[..3],
        ["connecting", "connected", "disconnected"],
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"connected"));
    assert!(
        names[3..names.len() - 1]
            .chunks(2)
            .all(|pair| pair == ["reconnecting", "connecting"]),
        "{names:?}"
    );
    println!(
        "{} failed attempts while the server was stopped",
        (names.len() - 5) / 2
    );

    // Every message came back, the hook's greetings included, in order.
    let mut got = Vec::new();
    while got.len() < 5 {
        let echo = tokio::time::timeout(Duration::from_secs(5), echoes.recv())
            .await
            .expect("echo");
        got.push(echo.unwrap());
    }
    assert_eq!(got, ["hello", "m1", "hello", "m2", "m3"]);
    let mut tx = sender.await.unwrap();
    tx.close().await.unwrap();
    reader.await.unwrap();
}

#[tokio::test]
async fn a_kick_ends_the_client_and_no_attempt_follows() {
    let addr = free_addr().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let _running = server(addr, seen_tx).await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut client = client(addr, events_tx);
    client.send(Message::text("kick")).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = client.next().await {
        items.push(item);
    }
    // The server echoes the hook's "hello", then kicks.
    assert!(
        matches!(&items[..], [Ok(hello), Err(Error::Rejected { code: 4000, .. })] if *hello == Message::text("hello")),
        "{items:?}"
    );
    let events = events_after_a_second(&mut events).await;
    assert_eq!(connecting_count(&events), 1, "{events:?}");
    assert!(matches!(
        events.last(),
        Some(Event::Closed {
            by_server: Some((4000, _)),
            ..
        })
    ));
    assert_eq!(next_seen(&mut seen).await, (1, "hello".into()));
    assert_eq!(next_seen(&mut seen).await, (1, "kick".into()));
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn close_ends_the_client_and_no_attempt_follows() {
    let addr = free_addr().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let _running = server(addr, seen_tx).await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut client = client(addr, events_tx);
    client.send(Message::text("bye")).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, (1, "hello".into()));
    client.close().await.unwrap();
    // What still arrives comes out (the echo of "bye"), then the end.
    let rest: Vec<Message> = (&mut client).map(|item| item.unwrap()).collect().await;
    assert!(
        rest.iter()
            .all(|m| *m == Message::text("hello") || *m == Message::text("bye")),
        "{rest:?}"
    );
    let events = events_after_a_second(&mut events).await;
    assert_eq!(connecting_count(&events), 1, "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(Event::Closed {
                by_server: None,
                unsent: 0
            })
        ),
        "{events:?}"
    );
}
