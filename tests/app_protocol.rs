//! Application heartbeats through the adapter: the peer's pings answered and hidden, our
//! pings in the same shape, their answers counted like pongs, lookalikes passed through.
//! Paused clock; interval 1 s, max_missed 3, no jitter.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::protocol::{BinaryCommand, Json, Text};

use support::*;

/// What the peer reads within `within`, and what the handler reads meanwhile.
async fn exchange(
    layer: ws_heartbeat::HeartbeatLayer,
    from_peer: Vec<Message>,
    within: std::time::Duration,
) -> (Vec<Message>, Vec<Message>) {
    let (mut ws, peer) = pair(layer).await;
    let (mut tx, mut rx) = peer.split();
    tokio::spawn(async move {
        for msg in from_peer {
            tx.send(msg).await.unwrap();
        }
        std::future::pending::<()>().await;
    });
    let peer_saw = tokio::spawn(async move {
        let mut seen = Vec::new();
        let _ = timeout(within, async {
            while let Some(Ok(msg)) = rx.next().await {
                seen.push(msg);
            }
        })
        .await;
        seen
    });
    let mut handler_saw = Vec::new();
    let _ = timeout(within, async {
        while let Some(Ok(msg)) = ws.next().await {
            handler_saw.push(msg);
        }
    })
    .await;
    (peer_saw.await.unwrap(), handler_saw)
}

#[tokio::test(start_paused = true)]
async fn json_pings_are_answered_with_their_fields_and_hidden_lookalikes_pass() {
    let from_peer = vec![
        Message::text(r#"{"type":"ping","id":1,"ts":1700000000}"#),
        Message::text(r#"{"type":"chat","text":"ping"}"#),
        Message::text(r#"{"type":"ping""#),
        Message::text(format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(10 << 20)
        )),
        Message::text(r#"{"type":"ping","id":2}"#),
    ];
    let (peer_saw, handler_saw) = exchange(
        one_second().protocol(Json::new()),
        from_peer.clone(),
        ms(500),
    )
    .await;
    // Both pings answered in order, nothing else sent within 500 ms (the first tick is at 1 s).
    assert_eq!(
        peer_saw,
        [
            Message::text(r#"{"type":"pong","id":1,"ts":1700000000}"#),
            Message::text(r#"{"type":"pong","id":2}"#),
        ]
    );
    // The lookalikes reach the handler unchanged, the pings do not.
    assert_eq!(handler_saw, from_peer[1..4]);
}

#[tokio::test(start_paused = true)]
async fn text_and_binary_pings_are_answered_and_hidden() {
    let (peer_saw, handler_saw) = exchange(
        one_second().protocol(Text::new()),
        vec![
            Message::text("ping"),
            Message::text("ping me"),
            Message::text("ping"),
        ],
        ms(500),
    )
    .await;
    assert_eq!(peer_saw, [Message::text("pong"), Message::text("pong")]);
    assert_eq!(handler_saw, [Message::text("ping me")]);

    let (peer_saw, handler_saw) = exchange(
        one_second().protocol(BinaryCommand::new()),
        vec![
            Message::binary(vec![0, 100, 0, 0, 0, 2, 7, 7]),
            Message::binary(vec![0, 100]),
            Message::binary(vec![0, 100, 0, 0, 0, 9, 7, 7]),
        ],
        ms(500),
    )
    .await;
    assert_eq!(peer_saw, [Message::binary(vec![0, 101, 0, 0, 0, 2, 7, 7])]);
    assert_eq!(
        handler_saw,
        [
            Message::binary(vec![0, 100]),
            Message::binary(vec![0, 100, 0, 0, 0, 9, 7, 7])
        ]
    );
}

/// A peer using the same protocol as the layer: it answers the adapter's pings after
/// `delay_ms` (or never, from `silent_from` on) and never reads anything else.
async fn app_peer(
    layer: ws_heartbeat::HeartbeatLayer,
    answer: impl Fn(&Message) -> Option<Message> + Send + 'static,
    delay_ms: u64,
    silent_from: Instant,
) -> (ws_heartbeat::Heartbeat<Ws>, tokio::task::JoinHandle<usize>) {
    let (ws, mut peer) = pair(layer).await;
    let peer = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(msg)) = peer.next().await {
            if Instant::now() >= silent_from {
                break;
            }
            if let Some(reply) = answer(&msg) {
                pings += 1;
                tokio::time::sleep(ms(delay_ms)).await;
                peer.send(reply).await.unwrap();
            }
        }
        std::future::pending::<()>().await;
        pings
    });
    (ws, peer)
}

#[tokio::test(start_paused = true)]
async fn json_pings_of_ours_carry_a_sequence_number_and_answers_give_rtt() {
    // The peer answers each ping 40 ms later, echoing its fields, until 3.5 s; then silent.
    // Pings at 1, 2, 3 s answered (RTT 40 ms). 4 s: alive, ping unanswered. 5, 6 s: missed 1,
    // 2. 7 s: missed 3: dead.
    let start = Instant::now();
    let json = Json::new();
    let answer = move |msg: &Message| {
        let text = msg.to_text().ok()?;
        match ws_heartbeat::protocol::HeartbeatProtocol::classify(
            &json,
            ws_heartbeat::protocol::AppFrame::Text(text),
        ) {
            ws_heartbeat::protocol::Verdict::Ping {
                answer: ws_heartbeat::protocol::AppMessage::Text(t),
            } => {
                assert!(text.starts_with(r#"{"type":"ping","seq":"#), "{text}");
                Some(Message::text(t))
            }
            _ => None,
        }
    };
    let (mut ws, _peer) = app_peer(
        one_second().protocol(Json::new()),
        answer,
        40,
        start + ms(3500),
    )
    .await;
    let handle = ws.handle();
    let (at, err, data) = read_until_end(&mut ws).await;
    assert_eq!(at - start, ms(7000));
    assert!(is_dead(&err.unwrap()));
    assert!(data.is_empty(), "answers reached the handler: {data:?}");
    let stats = handle.stats();
    assert_eq!(stats.pongs_received, 3);
    assert_eq!(stats.rtt_samples, 3);
    assert_eq!(handle.rtt(), Some(ms(40)));
}

#[tokio::test(start_paused = true)]
async fn text_answers_without_a_sequence_number_answer_the_latest_ping() {
    // "pong" 25 ms after each "ping", forever: never dead, one RTT sample per ping.
    let start = Instant::now();
    let answer = |msg: &Message| (msg.to_text().ok()? == "ping").then(|| Message::text("pong"));
    let (mut ws, _peer) = app_peer(
        one_second().protocol(Text::new()),
        answer,
        25,
        start + ms(60_000),
    )
    .await;
    let handle = ws.handle();
    let nothing = timeout(ms(10_500), ws.next()).await;
    assert!(nothing.is_err(), "{nothing:?}");
    assert_eq!(handle.stats().rtt_samples, 10);
    assert_eq!(handle.rtt(), Some(ms(25)));
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_pings_from_a_peer_that_does_not_read_queues_at_most_one_answer() {
    // 100 000 text pings from a peer that does not read, through 64 KiB pipes: the answers
    // fill the pipe back, then each new ping replaces the one unsent answer. The handler,
    // reading all along, sees none of it; its own message still gets through after them.
    let (ws, mut peer) = pair_with_capacity(one_second().protocol(Text::new()), 64 * 1024).await;
    let (mut tx, mut rx) = ws.split();
    let handler = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = rx.next().await {
            seen.push(msg);
        }
        seen
    });
    for _ in 0..100_000 {
        peer.feed(Message::text("ping")).await.unwrap();
    }
    peer.flush().await.unwrap();
    // The pipe back is full of answers: this send waits until the peer reads.
    let send = tokio::spawn(async move { tx.send(Message::text("after the flood")).await });
    // The peer reads now: pongs (far fewer than the pings), then the handler's message.
    let mut pongs = 0;
    loop {
        match peer.next().await.unwrap().unwrap() {
            Message::Text(t) if t == "pong" => pongs += 1,
            Message::Text(t) if t == "after the flood" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    send.await.unwrap().unwrap();
    assert!(pongs > 0 && pongs < 100_000, "{pongs} pongs");
    println!("100 000 pings from a peer that did not read: {pongs} answers sent");
    drop(peer);
    assert_eq!(handler.await.unwrap(), Vec::<Message>::new());
}
