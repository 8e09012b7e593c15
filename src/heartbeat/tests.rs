use std::cell::Cell;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tower_layer::Layer;
use tungstenite::{Message, protocol::Role};

use super::*;
use crate::HeartbeatLayer;

/// The adapter's own fields, inline beside the inner stream: the hub (8; the protocol is
/// in the hub's kit), the rare box (8), `State` (32), the rules and the flags (8).
/// (Besides: the `Arc` shared with handles and the ticker, and 8 bytes in the ticker's
/// list; see BENCHMARKS.md.)
#[test]
fn the_adapter_adds_at_most_56_bytes_inline() {
    type Ws = WebSocketStream<tokio::io::DuplexStream>;
    let added = std::mem::size_of::<Heartbeat<Ws>>() - std::mem::size_of::<Ws>();
    assert!(added <= 56, "{added}");
    type Tcp = WebSocketStream<tokio::net::TcpStream>;
    let added = std::mem::size_of::<Heartbeat<Tcp>>() - std::mem::size_of::<Tcp>();
    assert!(added <= 56, "{added}");
}

/// (clock reads, filings with the ticker) by the adapter on this thread so far.
fn probes() -> (u64, u64) {
    (
        probe::CLOCK_READS.with(Cell::get),
        probe::FILINGS.with(Cell::get),
    )
}

#[tokio::test(start_paused = true)]
async fn messages_read_no_clock_and_reset_no_timer_only_ticks_do() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let mut peer = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    let layer = HeartbeatLayer::new()
        .interval(Duration::from_secs(3600))
        .jitter(false);
    let mut ws = layer.layer(server);
    let mut echo = async |n: usize| {
        for i in 0..n {
            peer.send(Message::text(i.to_string())).await.unwrap();
            let msg = ws.next().await.unwrap().unwrap();
            ws.send(msg).await.unwrap();
            assert_eq!(
                peer.next().await.unwrap().unwrap(),
                Message::text(i.to_string())
            );
        }
    };
    // The first poll files the first deadline with the ticker (one filing per connection)
    // and looks at the clock once: a new connection starts due.
    echo(1).await;
    let armed = probes();
    assert_eq!(armed, (1, 1));

    echo(10_000).await;
    assert_eq!(
        probes(),
        armed,
        "10 000 echoed messages read the clock or filed a deadline"
    );

    // One tick: the clock is read once (the ping, handed over in the same poll, takes
    // the tick's time as its write time). Nothing is filed: the ticker carried the
    // filing on by the interval when it fired, and the tick was on time.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let waited = tokio::time::timeout(Duration::from_millis(1), ws.next()).await;
    assert!(waited.is_err(), "no message: {waited:?}");
    assert_eq!(ws.handle().stats().pings_sent, 1);
    assert_eq!(probes(), (armed.0 + 1, armed.1));

    // A tick more than an interval late starts a fresh schedule, which it files.
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    let waited = tokio::time::timeout(Duration::from_millis(1), ws.next()).await;
    assert!(waited.is_err(), "no message: {waited:?}");
    assert_eq!(ws.handle().stats().pings_sent, 2);
    assert_eq!(probes(), (armed.0 + 2, armed.1 + 1));
}

#[tokio::test(start_paused = true)]
async fn the_ticker_stops_carrying_a_connection_that_ended_or_went() {
    // Interval 1 s. Three connections filed: one runs, one's stream ends (the peer
    // closes) while the handler keeps it, one is dropped while a handle keeps its hub.
    // The last two's filings fire at most once more: 2.5 s later, only the running one's
    // is left, carried on.
    let ticker = crate::ticker::Ticker::current();
    let layer = HeartbeatLayer::new()
        .interval(Duration::from_secs(1))
        .jitter(false);
    let mut kept = Vec::new();
    let mut handles = Vec::new();
    for fate in ["runs", "ends", "goes"] {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut peer = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let mut ws = layer.layer(server);
        assert!(futures_util::poll!(ws.next()).is_pending());
        handles.push(ws.handle());
        match fate {
            "runs" => {
                tokio::spawn(async move { while peer.next().await.is_some() {} });
                tokio::spawn(async move { while ws.next().await.is_some() {} });
            }
            "ends" => {
                peer.close(None).await.unwrap();
                while ws.next().await.is_some() {}
                kept.push(ws);
            }
            _ => drop(ws),
        }
    }
    assert_eq!(ticker.filings(), 3);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ticker.filings(), 1);
    assert_eq!(handles[0].stats().pings_sent, 2);
}

#[cfg(feature = "json")]
#[tokio::test(start_paused = true)]
async fn a_peer_interval_files_a_deadline_only_when_it_changes_the_interval() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let mut peer = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    let layer = HeartbeatLayer::new()
        .interval(Duration::from_secs(3600))
        .jitter(false)
        .protocol(crate::protocol::Json::new())
        .follow_peer_interval(Duration::from_millis(1), Duration::from_secs(7200));
    let mut ws = layer.layer(server);
    let handle = ws.handle();
    // A ping (hidden from the handler), then a data message, read by the handler.
    let mut ping_then_data = async |ping: &str| {
        peer.send(Message::text(ping)).await.unwrap();
        peer.send(Message::text("data")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("data"));
    };
    ping_then_data(r#"{"type":"ping"}"#).await;
    let armed = probes();
    assert_eq!(
        armed,
        (1, 1),
        "the first poll's filing (and its look at the clock) only"
    );

    // The request moves the next tick: one filing, no clock read.
    ping_then_data(r#"{"type":"ping","interval":1800000}"#).await;
    assert_eq!(probes(), (armed.0, armed.1 + 1));
    assert_eq!(handle.interval(), Duration::from_secs(1800));

    // The same request again, no request, data that looks like one: nothing.
    ping_then_data(r#"{"type":"ping","interval":1800000}"#).await;
    ping_then_data(r#"{"type":"ping"}"#).await;
    let lookalike = Message::text(r#"{"type":"chat","interval":1}"#);
    peer.send(lookalike.clone()).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), lookalike);
    assert_eq!(probes(), (armed.0, armed.1 + 1));
    assert_eq!(handle.interval(), Duration::from_secs(1800));
}
