//! The metrics (feature `metrics`, `ws_heartbeat::metrics`) move exactly as the scenario
//! says, read back from `metrics-util`'s debugging recorder installed on the test's thread;
//! paused clock, in-memory pipes, interval 1 s, 3 missed, no jitter. (Tests build with the
//! feature on: `Cargo.toml`'s dev-dependency on the crate itself.)

mod support;

use futures_util::{SinkExt, StreamExt};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::metrics as names;

use support::*;

/// What the recorder has seen so far. A debugging recorder's snapshot takes what it
/// reports (counters and gauges start again from 0, histograms lose their samples), so the
/// looks are added up: counters and gauges summed, samples appended.
type Snapshot = Vec<(metrics_util::CompositeKey, DebugValue)>;

#[derive(Default)]
struct Seen(Snapshot);

impl Seen {
    fn look(&mut self, snapshotter: &Snapshotter) -> &Snapshot {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            match self.0.iter_mut().find(|(k, _)| *k == key) {
                None => self.0.push((key, value)),
                Some((_, seen)) => match (seen, value) {
                    (DebugValue::Counter(a), DebugValue::Counter(b)) => *a += b,
                    (DebugValue::Gauge(a), DebugValue::Gauge(b)) => {
                        *a = (a.into_inner() + b.into_inner()).into();
                    }
                    (DebugValue::Histogram(a), DebugValue::Histogram(b)) => a.extend(b),
                    (seen, value) => panic!("{seen:?} then {value:?}"),
                },
            }
        }
        &self.0
    }
}

/// The value of `name` with exactly these labels (the `layer` label included), if recorded.
fn value<'s>(s: &'s Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<&'s DebugValue> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    s.iter()
        .find(|(key, _)| {
            let key = key.key();
            let mut got: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            got.sort();
            key.name() == name && got == want
        })
        .map(|(_, value)| value)
}

fn counter(s: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(s, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

fn gauge(s: &Snapshot, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, name, labels) {
        Some(DebugValue::Gauge(g)) => g.into_inner(),
        None => 0.0,
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram(s: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match value(s, name, labels) {
        Some(DebugValue::Histogram(samples)) => samples.iter().map(|v| v.into_inner()).collect(),
        None => Vec::new(),
        other => panic!("{name}: {other:?}"),
    }
}

/// A recorder on this thread, for the test's life.
fn new_recorder() -> (DebuggingRecorder, Snapshotter) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    (recorder, snapshotter)
}

const CHAT: [(&str, &str); 1] = [("layer", "chat")];

fn by_cause(cause: &str) -> [(&'static str, String); 2] {
    [("layer", "chat".to_owned()), ("cause", cause.to_owned())]
}

/// Each cause once: the counter of that cause is 1, every other 0, one duration sample of
/// that cause, and the gauge back to 0.
fn assert_ended(s: &Snapshot, cause: &str, lasted: f64) {
    for other in ["peer_close", "local_close", "dead", "drained", "error"] {
        let labels = by_cause(other);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let expected = u64::from(other == cause);
        assert_eq!(
            counter(s, names::CLOSED_TOTAL, &labels),
            expected,
            "{other}"
        );
        let durations = histogram(s, names::CONNECTION_DURATION, &labels);
        if other == cause {
            assert_eq!(durations, [lasted], "{other}");
        } else {
            assert!(durations.is_empty(), "{other}: {durations:?}");
        }
    }
    assert_eq!(counter(s, names::CONNECTIONS_TOTAL, &CHAT), 1);
    assert_eq!(gauge(s, names::CONNECTIONS, &CHAT), 0.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peers_close_is_a_peer_close_and_the_gauge_goes_back() {
    // 0 s: open (first poll). 2.5 s: the peer closes; the handler reads to the end.
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, mut peer) = pair(one_second().name("chat")).await;
    let handler = tokio::spawn(async move {
        let ended = read_until_end(&mut ws).await;
        drop(ws);
        ended
    });
    tokio::task::yield_now().await;
    let s = seen.look(&rec);
    assert_eq!(gauge(s, names::CONNECTIONS, &CHAT), 1.0);
    let answering = tokio::spawn(async move {
        let until = Instant::now() + ms(2500);
        while tokio::time::timeout_at(until, peer.next()).await.is_ok() {}
        peer.close(None).await.unwrap();
        while peer.next().await.is_some() {}
    });
    handler.await.unwrap();
    answering.await.unwrap();
    let s = seen.look(&rec);
    assert_ended(s, "peer_close", 2.5);
    // Ticks at 1 and 2 s: two pings, two round trips (the peer answers at once); both ticks
    // on time, so no lag recorded.
    assert_eq!(counter(s, names::PINGS_SENT_TOTAL, &CHAT), 2);
    assert_eq!(histogram(s, names::RTT, &CHAT), [0.0, 0.0]);
    assert!(histogram(s, names::TICK_LAG, &CHAT).is_empty());
    assert_eq!(counter(s, names::DEATHS_TOTAL, &CHAT), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_handlers_close_is_a_local_close() {
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, peer) = pair(one_second().name("chat")).await;
    ws.send(Message::text("first poll")).await.unwrap();
    let answering = answer_until(peer, Instant::now() + ms(60_000));
    tokio::time::sleep(ms(1500)).await;
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    let s = seen.look(&rec);
    assert_ended(s, "local_close", 1.5);
    answering.abort();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_silent_peer_is_a_death() {
    // Silent from 0 s: dead at 4 s (3 missed); the handler's read reports it, then it drops.
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, _peer) = pair(one_second().name("chat")).await;
    let (at, err, _) = read_until_end(&mut ws).await;
    assert!(err.is_some_and(|e| is_dead(&e)));
    assert_eq!(at.elapsed(), ms(0));
    drop(ws);
    let s = seen.look(&rec);
    assert_eq!(counter(s, names::DEATHS_TOTAL, &CHAT), 1);
    assert_ended(s, "dead", 4.0);
    assert_eq!(counter(s, names::PINGS_SENT_TOTAL, &CHAT), 3);
    assert!(histogram(s, names::RTT, &CHAT).is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_drained_connection_is_drained() {
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let layer = one_second().name("chat");
    let (mut ws, peer) = pair(layer.clone()).await;
    ws.send(Message::text("first poll")).await.unwrap();
    let answering = answer_until(peer, Instant::now() + ms(60_000));
    let handler = tokio::spawn(async move {
        read_until_end(&mut ws).await;
    });
    let report = layer.drain(ms(500)).await;
    handler.await.unwrap();
    assert_eq!(report.closed, 1);
    let s = seen.look(&rec);
    assert_ended(s, "drained", 0.5);
    answering.abort();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_socket_gone_without_a_close_is_an_error_and_a_drop_while_open_a_local_close() {
    // The peer's end of the pipe dropped at 1.2 s: the stream fails: `error`.
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, peer) = pair(one_second().name("chat")).await;
    let answering = answer_until(peer, Instant::now() + ms(1200));
    let handler = tokio::spawn(async move {
        read_until_end(&mut ws).await;
    });
    let (peer, _) = answering.await.unwrap();
    drop(peer);
    handler.await.unwrap();
    let s = seen.look(&rec);
    assert_ended(s, "error", 1.2);

    // Another layer: a connection dropped by its handler while open is a `local_close`, and
    // leaves the gauge where it was before it opened.
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, _peer) = pair(one_second().name("chat")).await;
    ws.send(Message::text("first poll")).await.unwrap();
    tokio::time::sleep(ms(300)).await;
    drop(ws);
    let s = seen.look(&rec);
    assert_ended(s, "local_close", 0.3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn layers_are_told_apart_by_their_name_and_default_to_default() {
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut a, _pa) = pair(one_second()).await;
    let (mut b, _pb) = pair(one_second().name("chat")).await;
    a.send(Message::text("x")).await.unwrap();
    b.send(Message::text("x")).await.unwrap();
    let s = seen.look(&rec);
    assert_eq!(gauge(s, names::CONNECTIONS, &[("layer", "default")]), 1.0);
    assert_eq!(gauge(s, names::CONNECTIONS, &CHAT), 1.0);
    drop((a, b));
    let s = seen.look(&rec);
    assert_eq!(gauge(s, names::CONNECTIONS, &[("layer", "default")]), 0.0);
    assert_eq!(gauge(s, names::CONNECTIONS, &CHAT), 0.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn sessions_are_counted_live_and_parked_resumes_and_losses_and_the_clients_reconnects() {
    // A Rust client with a session, through a relay, to a server layer named "chat" (its
    // heartbeat "client"). 0 s: the session starts (live 1). 0.5 s: the link is cut: the
    // server parks the session (live 0, parked 1); the client reconnects (one reconnect) and
    // resumes (one resume; live 1, parked 0). 1 s: the client closes: the session ends (live
    // 0). Then a session whose client never comes back: lost when its window (2 s) passes.
    use std::sync::{Arc, Mutex};
    use support::relay::{Ctl, relay};
    use ws_heartbeat::reconnect::{Backoff, Reconnect};
    use ws_heartbeat::resume::Resume;

    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let sessions = one_second()
        .name("chat")
        .resume(Resume::new().window(ms(2000)));
    let links: Arc<Mutex<Vec<Arc<Ctl>>>> = Arc::default();
    let connect = {
        let (sessions, links) = (sessions.clone(), links.clone());
        move || {
            let (sessions, links) = (sessions.clone(), links.clone());
            async move {
                let (client, relay_a) = tokio::io::duplex(64 * 1024);
                let (relay_b, server) = tokio::io::duplex(64 * 1024);
                let ctl = Arc::new(Ctl::default());
                links.lock().unwrap().push(ctl.clone());
                tokio::spawn(relay(relay_a, relay_b, ctl));
                tokio::spawn(async move {
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        server,
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    if let Ok(Some(mut session)) = sessions.accept(ws).await {
                        while let Some(Ok(_)) = session.next().await {}
                    }
                });
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    client,
                    tokio_tungstenite::tungstenite::protocol::Role::Client,
                    None,
                )
                .await;
                Ok::<_, std::io::Error>(ws)
            }
        }
    };
    let mut client = Reconnect::builder(connect.clone())
        .heartbeat(one_second().name("client"))
        .backoff(Backoff::new().initial(ms(50)))
        .resume(Resume::new())
        .build();
    client.send(Message::text("hello")).await.unwrap();
    tokio::time::sleep(ms(500)).await;
    let s = seen.look(&rec);
    let state = |state: &'static str| [("layer", "chat"), ("state", state)];
    assert_eq!(gauge(s, names::SESSIONS, &state("live")), 1.0);
    links.lock().unwrap()[0].cut();
    let reading = tokio::spawn(async move {
        let _ = tokio::time::timeout(ms(500), client.next()).await;
        client
    });
    let mut client = reading.await.unwrap();
    let s = seen.look(&rec);
    assert_eq!(counter(s, names::SESSION_RESUMES_TOTAL, &CHAT), 1);
    assert_eq!(gauge(s, names::SESSIONS, &state("live")), 1.0);
    assert_eq!(gauge(s, names::SESSIONS, &state("parked")), 0.0);
    assert_eq!(
        counter(s, names::RECONNECTS_TOTAL, &[("layer", "client")]),
        1
    );
    client.close().await.unwrap();
    while client.next().await.is_some() {}
    tokio::time::sleep(ms(100)).await;
    let s = seen.look(&rec);
    assert_eq!(gauge(s, names::SESSIONS, &state("live")), 0.0);

    // A client that never comes back: parked, then lost when the window passes.
    let mut gone = Reconnect::builder(connect)
        .heartbeat(one_second().name("client"))
        .resume(Resume::new())
        .backoff(Backoff::new().initial(ms(50)).max_retries(Some(0)))
        .build();
    gone.send(Message::text("hello")).await.unwrap();
    tokio::time::sleep(ms(100)).await;
    drop(gone);
    tokio::time::sleep(ms(100)).await;
    let s = seen.look(&rec);
    assert_eq!(gauge(s, names::SESSIONS, &state("parked")), 1.0);
    tokio::time::sleep(ms(2100)).await;
    let s = seen.look(&rec);
    let lost = [("layer", "chat"), ("reason", "window_passed")];
    assert_eq!(counter(s, names::SESSIONS_LOST_TOTAL, &lost), 1);
    assert_eq!(gauge(s, names::SESSIONS, &state("parked")), 0.0);
    assert_eq!(gauge(s, names::SESSIONS, &state("live")), 0.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_tick_that_runs_late_is_recorded_with_its_lateness() {
    // First poll at 0 s; the handler is away until 1.3 s: the tick due at 1 s runs then,
    // 0.3 s late. The tick at 2 s runs on time: not recorded.
    let (recorder, rec) = new_recorder();
    let mut seen = Seen::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut ws, peer) = pair(one_second().name("chat")).await;
    ws.send(Message::text("first poll")).await.unwrap();
    let answering = answer_until(peer, Instant::now() + ms(60_000));
    tokio::time::sleep(ms(1300)).await;
    let reading = tokio::spawn(async move {
        let _ = tokio::time::timeout(ms(1000), ws.next()).await;
        ws
    });
    let _ws = reading.await.unwrap();
    let s = seen.look(&rec);
    assert_eq!(histogram(s, names::TICK_LAG, &CHAT), [0.3]);
    answering.abort();
}
