//! The reconnecting client on tokio's paused clock, against an in-memory server that can
//! refuse, accept, freeze, kick and restart. Each test states its timeline.

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{
    Backoff, Error, Event, Overflow, Reason, Reconnect, ReconnectBuilder,
};

use support::{Ws, ms};

/// An in-memory server: `connect` succeeds while it is up, handing the server side of each
/// new connection to the test.
#[derive(Clone)]
struct Server {
    inner: Arc<Mutex<ServerState>>,
}

struct ServerState {
    up: bool,
    attempts: Vec<Instant>,
    accepted: mpsc::UnboundedSender<Ws>,
}

impl Server {
    fn new(up: bool) -> (Self, mpsc::UnboundedReceiver<Ws>) {
        let (accepted, rx) = mpsc::unbounded_channel();
        let state = ServerState {
            up,
            attempts: Vec::new(),
            accepted,
        };
        (
            Self {
                inner: Arc::new(Mutex::new(state)),
            },
            rx,
        )
    }

    fn set_up(&self, up: bool) {
        self.inner.lock().unwrap().up = up;
    }

    fn attempts(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().attempts.clone()
    }

    async fn connect(self) -> io::Result<Ws> {
        let up = {
            let mut state = self.inner.lock().unwrap();
            state.attempts.push(Instant::now());
            state.up
        };
        if !up {
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        }
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let _ = self.inner.lock().unwrap().accepted.send(server);
        Ok(WebSocketStream::from_raw_socket(b, Role::Client, None).await)
    }
}

/// Events, as the client reported them.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(Duration, Event)>>>);

impl Events {
    fn all(&self) -> Vec<(Duration, Event)> {
        self.0.lock().unwrap().clone()
    }

    /// One short name per event, to compare orders.
    fn names(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|(_, e)| match e {
                Event::Connecting { retry } => format!("connecting {retry}"),
                Event::Connected { retry } => format!("connected {retry}"),
                Event::Disconnected {
                    reason,
                    unconfirmed,
                } => {
                    format!("disconnected ({}) {unconfirmed}", reason_name(reason))
                }
                Event::Reconnecting { retry, .. } => format!("reconnecting {retry}"),
                Event::GaveUp { retries, .. } => format!("gave up {retries}"),
                Event::Closed { by_server, unsent } => format!("closed {by_server:?} {unsent}"),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

fn reason_name(reason: &Reason) -> &'static str {
    match reason {
        Reason::Dead(_) => "dead",
        Reason::ConnectFailed(_) => "refused",
        Reason::ConnectTimedOut(_) => "timeout",
        Reason::OnConnectFailed(_) => "hook",
        Reason::ServerClosed { .. } => "closed",
        Reason::Ended => "ended",
        Reason::Failed(_) => "failed",
        _ => "other",
    }
}

fn client(server: &Server, events: &Events) -> ReconnectBuilder<Ws> {
    let server = server.clone();
    let events = events.clone();
    let start = Instant::now();
    Reconnect::builder(move || server.clone().connect())
        .heartbeat(
            HeartbeatLayer::new()
                .interval(ms(1000))
                .max_missed(3)
                .jitter(false),
        )
        .backoff(Backoff::new().initial(ms(100)).max_delay(ms(1000)))
        .stable_after(ms(5000))
        .on_event(move |e| {
            events
                .0
                .lock()
                .unwrap()
                .push((Instant::now() - start, e.clone()))
        })
}

/// Reads the client in the background, returning what it read when it ends.
fn read_all(mut client: Reconnect<Ws>) -> tokio::task::JoinHandle<Vec<Result<Message, Error>>> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = client.next().await {
            got.push(item);
        }
        got
    })
}

#[tokio::test(start_paused = true)]
async fn delays_stay_within_their_jitter_bounds_and_the_client_gives_up_after_max_retries() {
    // The server refuses everything. 0 ms: attempt (retry 0) refused. Then retry n waits a
    // drawn delay within [0, min(1 000, 100 x 2^(n-1))] ms: 100, 200, 400, 800, 1 000, 1 000.
    // After retry 6 fails: gave up.
    let (server, _accepted) = Server::new(false);
    let events = Events::default();
    let client = client(&server, &events)
        .backoff(
            Backoff::new()
                .initial(ms(100))
                .max_delay(ms(1000))
                .max_retries(Some(6)),
        )
        .build();
    let got = read_all(client).await.unwrap();
    assert!(
        matches!(
            &got[..],
            [Err(Error::GaveUp {
                retries: 6,
                last: Reason::ConnectFailed(_)
            })]
        ),
        "{got:?}"
    );

    let attempts = server.attempts();
    assert_eq!(attempts.len(), 7);
    let ceilings = [100, 200, 400, 800, 1000, 1000].map(ms);
    let delays: Vec<Duration> = events
        .all()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Reconnecting { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 6);
    for (n, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // The paused clock fires the backoff timer on the next whole millisecond.
        assert!(
            gap >= delays[n] && gap <= delays[n] + ms(1),
            "retry {}: {gap:?} vs {:?}",
            n + 1,
            delays[n]
        );
        assert!(
            delays[n] <= ceilings[n],
            "retry {}: {:?} over {:?}",
            n + 1,
            delays[n],
            ceilings[n]
        );
    }
    let mut expected = vec!["connecting 0".to_string()];
    for n in 1..=6 {
        expected.push(format!("reconnecting {n}"));
        expected.push(format!("connecting {n}"));
    }
    expected.push("gave up 6".into());
    assert_eq!(events.names(), expected);
}

#[tokio::test(start_paused = true)]
async fn the_retry_count_starts_again_only_after_the_stability_window() {
    // Stability window 5 s. The server drops each connection: the first two after 2 s
    // (unstable: retries 1, 2), the third after 6 s (stable: the next retry is 1 again).
    let (server, mut accepted) = Server::new(true);
    let events = Events::default();
    let reader = read_all(client(&server, &events).build());
    for lifetime in [2000, 2000, 6000] {
        let mut conn = accepted.recv().await.unwrap();
        // Answer pings meanwhile, so only the drop ends the connection.
        let _ = timeout(ms(lifetime), async { while conn.next().await.is_some() {} }).await;
        drop(conn);
    }
    let _next = accepted.recv().await.unwrap();
    let retries: Vec<u32> = events
        .all()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Reconnecting { retry, .. } => Some(retry),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [1, 2, 1]);
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn buffered_messages_go_out_in_order_after_the_on_connect_hook() {
    // The server is down until 1 s. Meanwhile the application queues three messages. At the
    // connection the hook sends "auth" first; then "a", "b", "c" in order.
    let (server, mut accepted) = Server::new(false);
    let events = Events::default();
    let mut client = client(&server, &events)
        .on_connect(|mut ws| async move {
            ws.send(Message::text("auth")).await?;
            Ok::<_, tokio_tungstenite::tungstenite::Error>(ws)
        })
        .build();
    for text in ["a", "b", "c"] {
        client.feed(Message::text(text)).await.unwrap();
    }
    assert_eq!(client.queued(), 3);
    let up = server.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ms(1000)).await;
        up.set_up(true);
    });
    let reader = read_all(client);
    let mut conn = accepted.recv().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(conn.next().await.unwrap().unwrap());
    }
    assert_eq!(got, ["auth", "a", "b", "c"].map(Message::text));
    let names = events.names();
    let connected = names
        .iter()
        .position(|n| n.starts_with("connected"))
        .unwrap();
    assert!(
        names[..connected]
            .iter()
            .all(|n| n.starts_with("connecting") || n.starts_with("reconnecting"))
    );
    assert!(connected >= 3, "{names:?}");
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_waits_or_fails_as_configured_and_takes_nothing_it_refuses() {
    let (server, _accepted) = Server::new(false);
    // Wait: the third message waits (here: 10 s) for room.
    let mut waiting = client(&server, &Events::default())
        .buffer(2, Overflow::Wait)
        .build();
    waiting.feed(Message::text("1")).await.unwrap();
    waiting.feed(Message::text("2")).await.unwrap();
    assert!(
        timeout(ms(10_000), waiting.feed(Message::text("3")))
            .await
            .is_err()
    );
    assert_eq!(waiting.queued(), 2);
    // Fail: the third is refused at once, not taken; the client goes on.
    let mut failing = client(&server, &Events::default())
        .buffer(2, Overflow::Fail)
        .build();
    failing.feed(Message::text("1")).await.unwrap();
    failing.feed(Message::text("2")).await.unwrap();
    assert!(matches!(
        failing.feed(Message::text("3")).await,
        Err(Error::BufferFull)
    ));
    assert_eq!(failing.queued(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_kick_ends_the_client_with_no_further_attempt() {
    // 500 ms: the server closes with 4000 "kicked". The client ends with Rejected; in the
    // next 60 s it makes no attempt.
    let (server, mut accepted) = Server::new(true);
    let events = Events::default();
    let mut client = client(&server, &events).build();
    client.feed(Message::text("never sent")).await.unwrap();
    let reader = read_all(client);
    let mut conn = accepted.recv().await.unwrap();
    assert_eq!(
        conn.next().await.unwrap().unwrap(),
        Message::text("never sent")
    );
    tokio::time::sleep(ms(500)).await;
    let kick = CloseFrame {
        code: 4000.into(),
        reason: "kicked".into(),
    };
    conn.send(Message::Close(Some(kick))).await.unwrap();
    while conn.next().await.is_some() {}
    drop(conn); // as a server does once the closing handshake is over
    let got = reader.await.unwrap();
    assert!(
        matches!(&got[..], [Err(Error::Rejected { code: 4000, reason })] if reason == "kicked"),
        "{got:?}"
    );
    tokio::time::sleep(ms(60_000)).await;
    assert_eq!(server.attempts().len(), 1);
    assert_eq!(
        events.names(),
        [
            "connecting 0",
            "connected 0",
            "disconnected (closed) 0",
            "closed Some((4000, \"kicked\")) 0"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_client_with_no_further_attempt_and_reports_what_was_unsent() {
    // The server is down: the client backs off with two messages buffered. close() ends it
    // at once; in the next 60 s no attempt is made.
    let (server, _accepted) = Server::new(false);
    let events = Events::default();
    let mut client = client(&server, &events).build();
    client.feed(Message::text("x")).await.unwrap();
    client.feed(Message::text("y")).await.unwrap();
    let _ = timeout(ms(50), client.next()).await;
    let attempts = server.attempts().len();
    client.close().await.unwrap();
    assert!(client.next().await.is_none());
    assert!(matches!(
        client.send(Message::text("z")).await,
        Err(Error::Closed)
    ));
    tokio::time::sleep(ms(60_000)).await;
    assert_eq!(server.attempts().len(), attempts);
    assert_eq!(events.names().last().unwrap(), "closed None 2");
}

#[tokio::test(start_paused = true)]
async fn a_frozen_server_is_found_dead_by_the_heartbeat_and_left() {
    // The server accepts, then never reads or answers. The application sends three messages
    // at once; the server never confirms them. Heartbeat: 1 s, 3 missed: dead at 4 s, the
    // three reported as unconfirmed, then a reconnection within 100 ms.
    let (server, mut accepted) = Server::new(true);
    let events = Events::default();
    let mut client = client(&server, &events).build();
    for text in ["1", "2", "3"] {
        client.feed(Message::text(text)).await.unwrap();
    }
    let reader = read_all(client);
    let _frozen = accepted.recv().await.unwrap();
    let _second = accepted.recv().await.unwrap();
    let attempts = server.attempts();
    let gap = attempts[1] - attempts[0];
    assert!(gap >= ms(4000) && gap <= ms(4101), "{gap:?}");
    assert!(
        events
            .names()
            .contains(&"disconnected (dead) 3".to_string()),
        "{:?}",
        events.names()
    );
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn a_thousand_clients_spread_their_reconnections_over_the_backoff_window() {
    // 1 000 clients connected to one server, which restarts at 1 s: every connection drops,
    // and the server refuses for 10 ms. Each client's first retry waits a random delay in
    // [0, 1 000 ms] (initial backoff 1 s): they arrive spread over that second.
    let (server, mut accepted) = Server::new(true);
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let c = client(&server, &Events::default())
            .backoff(Backoff::new().initial(ms(1000)).max_delay(ms(8000)))
            .build();
        clients.push(read_all(c));
    }
    let mut conns = Vec::new();
    for _ in 0..1000 {
        conns.push(accepted.recv().await.unwrap());
    }
    tokio::time::sleep(ms(1000)).await;
    let restart = Instant::now();
    server.set_up(false);
    drop(conns);
    tokio::time::sleep(ms(10)).await;
    server.set_up(true);
    let (mut back, mut conns) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        conns.push(accepted.recv().await.unwrap());
        back.push(Instant::now() - restart);
    }
    // Histogram of reconnections over the window, in tenths.
    let mut buckets = [0usize; 10];
    for t in &back {
        let tenth = (t.as_millis() as usize / 100).min(9);
        buckets[tenth] += 1;
    }
    let (first, last) = (back.iter().min().unwrap(), back.iter().max().unwrap());
    println!(
        "1 000 reconnections after a restart: first {first:?}, last {last:?}, per 100 ms: {buckets:?}"
    );
    assert!(*last <= ms(1000) + ms(8000), "{last:?}");
    // Uniform over the first second: 100 per tenth expected; no tenth over 150.
    assert!(buckets.iter().all(|&n| n <= 150), "{buckets:?}");
    assert!(
        back.iter().filter(|t| **t <= ms(1001)).count() >= 950,
        "most come back in the first window"
    );
    for c in clients {
        c.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_is_a_failed_attempt_after_the_connect_timeout() {
    // The connect function never finishes. Timeout 2 s: at 2 s the attempt fails and the
    // next one waits its backoff; with max_retries 1 the client gives up at the second
    // timeout, 2 s after that attempt started.
    let events = Events::default();
    let log = events.clone();
    let start = Instant::now();
    let client: Reconnect<Ws> = Reconnect::builder(std::future::pending::<io::Result<Ws>>)
        .connect_timeout(ms(2000))
        .backoff(Backoff::new().initial(ms(100)).max_retries(Some(1)))
        .on_event(move |e| {
            log.0
                .lock()
                .unwrap()
                .push((Instant::now() - start, e.clone()))
        })
        .build();
    let got = read_all(client).await.unwrap();
    assert!(
        matches!(&got[..], [Err(Error::GaveUp { retries: 1, last: Reason::ConnectTimedOut(t) })] if *t == ms(2000)),
        "{got:?}"
    );
    let all = events.all();
    let Some((
        at,
        Event::Reconnecting {
            delay,
            after: Reason::ConnectTimedOut(_),
            ..
        },
    )) = all.get(1)
    else {
        panic!("{all:?}");
    };
    assert_eq!(*at, ms(2000));
    let (gave_up_at, _) = all.last().unwrap();
    assert!(
        *gave_up_at >= ms(4000) + *delay && *gave_up_at <= ms(4001) + *delay,
        "{gave_up_at:?}"
    );
}

/// Connects, lets the server close with `code`, and tells whether the client reconnected.
async fn reconnects_after_close(
    code: u16,
    builder: impl FnOnce(ReconnectBuilder<Ws>) -> ReconnectBuilder<Ws>,
) -> bool {
    let (server, mut accepted) = Server::new(true);
    let reader = read_all(builder(client(&server, &Events::default())).build());
    let mut conn = accepted.recv().await.unwrap();
    let frame = CloseFrame {
        code: code.into(),
        reason: "bye".into(),
    };
    conn.send(Message::Close(Some(frame))).await.unwrap();
    while conn.next().await.is_some() {}
    drop(conn);
    let again = timeout(ms(5000), accepted.recv()).await.is_ok();
    reader.abort();
    again
}

#[tokio::test(start_paused = true)]
async fn which_server_closes_are_final_is_configurable() {
    // Default: 1000, 1008 and 4000-4999 end the client; 1001 (going away) and 1012
    // (restart) reconnect.
    for (code, reconnects) in [
        (1000, false),
        (1008, false),
        (4000, false),
        (4999, false),
        (1001, true),
        (1012, true),
        (3000, true),
    ] {
        assert_eq!(
            reconnects_after_close(code, |b| b).await,
            reconnects,
            "close {code}"
        );
    }
    // Custom: only 4001 is final, so a normal closure reconnects too.
    let only_4001 = |b: ReconnectBuilder<Ws>| b.final_close(|code, _| code == 4001);
    assert!(reconnects_after_close(1000, only_4001).await);
    assert!(!reconnects_after_close(4001, only_4001).await);
}

/// The retries the client reported, in order, after the server closed each of its first
/// `closes.len()` connections at once with these codes (each connection lives 10 ms: never
/// stable).
async fn retries_after_closes(closes: &[u16]) -> Vec<(u32, Duration)> {
    let (server, mut accepted) = Server::new(true);
    let events = Events::default();
    let reader = read_all(client(&server, &events).build());
    for &code in closes {
        let mut conn = accepted.recv().await.unwrap();
        tokio::time::sleep(ms(10)).await;
        let frame = CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        conn.send(Message::Close(Some(frame))).await.unwrap();
        while conn.next().await.is_some() {}
    }
    let _next = accepted.recv().await.unwrap();
    reader.abort();
    events
        .all()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Reconnecting { retry, delay, .. } => Some((retry, delay)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_draining_server_is_come_back_to_within_the_initial_delay_and_1013_backs_off() {
    // Backoff 100 ms initial. Connections that live 10 ms (unstable): closed with 3000 the
    // retry count grows (1, 2, 3); with 1012 or 1001 it starts again at 1, the delay within
    // [0, 100 ms]; with 1013 it grows on as after a failed attempt, whatever came before.
    let got = retries_after_closes(&[3000, 3000, 1012, 3000, 1001, 1013, 1013]).await;
    let retries: Vec<u32> = got.iter().map(|&(retry, _)| retry).collect();
    assert_eq!(retries, [1, 2, 1, 2, 1, 2, 3]);
    for (retry, delay) in got {
        let ceiling = ms(100) * 2u32.pow(retry - 1);
        assert!(delay <= ceiling, "retry {retry} waited {delay:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_clients_told_1012_come_back_spread_over_the_initial_delay() {
    // 1 000 clients on one server, each closed with 1012 at 0 s after a long stable life or
    // after failures alike: their next attempts all fall within [0, 100 ms], none at 0 s
    // exactly, and no tenth of that span holds more than twice its share (100).
    let (server, mut accepted) = Server::new(true);
    let mut readers = Vec::new();
    for _ in 0..1000 {
        readers.push(read_all(client(&server, &Events::default()).build()));
    }
    let mut conns = Vec::new();
    for _ in 0..1000 {
        conns.push(accepted.recv().await.unwrap());
    }
    let start = Instant::now();
    for conn in &mut conns {
        let frame = CloseFrame {
            code: 1012u16.into(),
            reason: "server restart".into(),
        };
        conn.send(Message::Close(Some(frame))).await.unwrap();
    }
    // The close handshake done, the server drops each connection (a client waits for that).
    for mut conn in conns {
        while conn.next().await.is_some() {}
    }
    for _ in 0..1000 {
        accepted.recv().await.unwrap();
    }
    let mut tenths = [0usize; 10];
    // The second attempt of each client (their new connections are left unanswered: later
    // ones find them dead, 4 s on).
    for at in server.attempts().into_iter().skip(1000).take(1000) {
        let after = at - start;
        assert!(after > Duration::ZERO && after <= ms(100), "{after:?}");
        tenths[((after.as_micros() - 1) / 10_000) as usize] += 1;
    }
    assert!(tenths.iter().all(|&n| n <= 200), "{tenths:?}");
    for reader in readers {
        reader.abort();
    }
}
