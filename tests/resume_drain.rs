//! Sessions across a drain (`HeartbeatLayer::drain`, PROTOCOL.md section 8), on tokio's
//! paused clock over in-memory pipes: server A drains while its session streams both ways
//! with a Rust client; the client finishes the session with A and goes on with a new session
//! on server B (as a load balancer would send it). Every message reaches exactly one handler
//! exactly once, in order each way; the client reports `NewSession`; A's report counts the
//! session as finished. Interval 1 s, no jitter.

mod support;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, protocol::Role};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Event, Reconnect};
use ws_heartbeat::resume::{Resume, Sessions};

use support::ms;
use support::relay::{Ctl, relay};

type Ws = WebSocketStream<DuplexStream>;

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new().interval(ms(1000)).jitter(false)
}

/// One server: its layer (to drain), its sessions, and what its handlers received and sent.
#[derive(Clone)]
struct Server {
    name: &'static str,
    layer: HeartbeatLayer,
    sessions: Sessions,
    /// Every client message its handlers received, in order.
    got: Arc<Mutex<Vec<String>>>,
    /// Every message its handlers' sends accepted, in order.
    sent: Arc<Mutex<Vec<String>>>,
    /// Handler calls.
    calls: Arc<Mutex<usize>>,
    /// The relays of its connections, newest last.
    links: Arc<Mutex<Vec<Arc<Ctl>>>>,
    /// How its handlers' reads ended: the error's text, or "end".
    ends: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn new(name: &'static str) -> Self {
        let layer = layer();
        Self {
            name,
            sessions: layer.clone().resume(Resume::new()),
            layer,
            got: Arc::default(),
            sent: Arc::default(),
            calls: Arc::default(),
            links: Arc::default(),
            ends: Arc::default(),
        }
    }

    fn latest(&self) -> Arc<Ctl> {
        self.links.lock().unwrap().last().expect("a link").clone()
    }

    /// A client socket to this server, whose side runs `accept` and, for a new session, a
    /// handler that records what it reads and sends `{name}:{i}` every 20 ms until its
    /// sends are refused or the session ends.
    async fn connect(&self) -> Ws {
        let (client, relay_a) = tokio::io::duplex(64 * 1024);
        let (relay_b, server) = tokio::io::duplex(64 * 1024);
        let ctl = Arc::new(Ctl::default());
        self.links.lock().unwrap().push(ctl.clone());
        tokio::spawn(relay(relay_a, relay_b, ctl));
        let this = self.clone();
        tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
            let Ok(Some(session)) = this.sessions.accept(ws).await else {
                return;
            };
            *this.calls.lock().unwrap() += 1;
            let (mut tx, mut rx) = session.split();
            let sent = this.sent.clone();
            let name = this.name;
            let writer = tokio::spawn(async move {
                for i in 1.. {
                    tokio::time::sleep(ms(20)).await;
                    let msg = format!("{name}:{i}");
                    if tx.send(Message::text(msg.clone())).await.is_err() {
                        return;
                    }
                    sent.lock().unwrap().push(msg);
                }
            });
            let end = loop {
                match rx.next().await {
                    Some(Ok(Message::Text(text))) => {
                        this.got.lock().unwrap().push(text.to_string())
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        let lost = ws_heartbeat::Dead::find(&err).and_then(|d| d.lost());
                        break format!("{:?}", lost.map(|l| l.reason()));
                    }
                    None => break "end".to_owned(),
                }
            };
            this.ends.lock().unwrap().push(end);
            writer.abort();
        });
        WebSocketStream::from_raw_socket(client, Role::Client, None).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_finishes_across_a_drain_and_goes_on_new_elsewhere_nothing_lost() {
    // 0 s: the client starts a session on A and sends c1, c2, ... every 10 ms (600 in all);
    // A's handler sends A:1, A:2, ... every 20 ms. 1 s: A drains over 2 s (its one session's
    // moment: 3 s); from then on the client's connections go to B. At the moment A tells
    // `finish`, the client answers, both acknowledge, A closes with 1012; the client starts a
    // new session on B with what it sent since, and B's handler streams B:1, B:2, ...
    let (a, b) = (Server::new("A"), Server::new("B"));
    let draining = Arc::new(AtomicBool::new(false));
    let (client, events) = client(&a, &b, &draining);
    let (sender, received) = traffic(client, 600, ms(8000));
    tokio::time::sleep(ms(1000)).await;
    draining.store(true, Ordering::SeqCst);
    let report = a.layer.drain(ms(2000)).await;
    let _tx = sender.await.unwrap();
    let got = received.await.unwrap();

    assert_eq!(report.sessions_finished, 1, "{report:?}");
    assert_eq!(report.forced + report.held, 0, "{report:?}");
    let events = events.lock().unwrap();
    let new_sessions = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::NewSession));
    assert_eq!(new_sessions.count(), 1, "{events:?}");
    let lost = events
        .iter()
        .any(|(_, e)| matches!(e, Event::SessionLost(_)));
    assert!(!lost, "{events:?}");
    assert_eq!((*a.calls.lock().unwrap(), *b.calls.lock().unwrap()), (1, 1));

    // Client to server: c1..c600 exactly once, in order: A's part, then B's.
    let to_a = a.got.lock().unwrap().clone();
    let to_b = b.got.lock().unwrap().clone();
    let all: Vec<String> = to_a.iter().chain(&to_b).cloned().collect();
    let expected: Vec<String> = (1..=600).map(|i| format!("c{i}")).collect();
    assert_eq!(all, expected, "A got {}, B got {}", to_a.len(), to_b.len());
    assert!(!to_a.is_empty() && !to_b.is_empty());

    // Server to client: everything A's sends accepted, once and in order, then B's stream.
    let from_a: Vec<String> = got
        .iter()
        .filter(|m| m.starts_with("A:"))
        .cloned()
        .collect();
    assert_eq!(from_a, *a.sent.lock().unwrap());
    let from_b: Vec<String> = got
        .iter()
        .filter(|m| m.starts_with("B:"))
        .cloned()
        .collect();
    let b_sent = b.sent.lock().unwrap().clone();
    assert!(b_sent.starts_with(&from_b) && !from_b.is_empty());
    let last_a = got.iter().rposition(|m| m.starts_with("A:")).unwrap();
    let first_b = got.iter().position(|m| m.starts_with("B:")).unwrap();
    assert!(last_a < first_b, "A's messages all came before B's");
    println!(
        "A: {} from the client, {} to it; B: {} from it, {} to it; {report:?}",
        to_a.len(),
        from_a.len(),
        to_b.len(),
        from_b.len()
    );
}

/// The client sends `c1`..`c{n}`, one every 10 ms (the sender gives its half back when
/// done), and reads texts for `reading`: what it read.
fn traffic(
    client: Reconnect<Ws>,
    n: usize,
    reading: Duration,
) -> (
    tokio::task::JoinHandle<impl Sized>,
    tokio::task::JoinHandle<Vec<String>>,
) {
    let (mut tx, mut rx) = client.split();
    let received = tokio::spawn(async move {
        let mut got = Vec::new();
        let until = Instant::now() + reading;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, rx.next()).await {
            if let Message::Text(text) = msg {
                got.push(text.to_string());
            }
        }
        got
    });
    let sender = tokio::spawn(async move {
        for i in 1..=n {
            tx.send(Message::text(format!("c{i}"))).await.unwrap();
            tokio::time::sleep(ms(10)).await;
        }
        tx
    });
    (sender, received)
}

/// A client's events, with when they came.
type Events = Arc<Mutex<Vec<(Duration, Event)>>>;

/// A client whose connections go to `a` until `to_b` is set, then to `b`; its events.
fn client(a: &Server, b: &Server, to_b: &Arc<AtomicBool>) -> (Reconnect<Ws>, Events) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (a, b, to_b, log) = (a.clone(), b.clone(), to_b.clone(), events.clone());
    let start = Instant::now();
    let client = Reconnect::builder(move || {
        let server = if to_b.load(Ordering::SeqCst) {
            b.clone()
        } else {
            a.clone()
        };
        async move { Ok::<_, io::Error>(server.connect().await) }
    })
    .heartbeat(layer())
    .backoff(Backoff::new().initial(ms(50)).max_delay(ms(500)))
    .resume(Resume::new())
    .on_event(move |e| log.lock().unwrap().push((start.elapsed(), e.clone())))
    .build();
    (client, events)
}

#[tokio::test(start_paused = true)]
async fn a_new_session_during_a_drain_is_refused_with_1012_and_started_elsewhere_at_once() {
    // A drains (no connections: at once, and the drain stays begun). 0 s: the client's
    // `hello new` reaches A, which closes with 1012; the client tries again within its first
    // backoff step (50 ms), now routed to B, and starts its session there.
    let (a, b) = (Server::new("A"), Server::new("B"));
    let report = a.layer.drain(ms(2000)).await;
    assert_eq!(report.held, 0);
    let to_b = Arc::new(AtomicBool::new(false));
    let (client, events) = client(&a, &b, &to_b);
    let (mut tx, _rx) = client.split();
    let routed = to_b.clone();
    let sending = tokio::spawn(async move {
        tx.send(Message::text("c1")).await.unwrap();
        tx.flush().await.unwrap();
        tx
    });
    // The first attempt's refusal: then route the next to B.
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|(_, e)| matches!(e, Event::Reconnecting { .. }))
    {
        tokio::task::yield_now().await;
    }
    routed.store(true, Ordering::SeqCst);
    let _tx = sending.await.unwrap();
    tokio::time::sleep(ms(100)).await;
    let events = events.lock().unwrap().clone();
    let (at, delay) = events
        .iter()
        .find_map(|(at, e)| match e {
            Event::Reconnecting {
                retry: 1,
                delay,
                after: ws_heartbeat::reconnect::Reason::ServerClosed { code: 1012, .. },
            } => Some((*at, *delay)),
            _ => None,
        })
        .expect("refused with 1012, then a retry");
    assert!(delay <= ms(50), "waited {delay:?}");
    assert_eq!(at, Duration::ZERO);
    assert_eq!((*a.calls.lock().unwrap(), *b.calls.lock().unwrap()), (0, 1));
    assert_eq!(*b.got.lock().unwrap(), ["c1"]);
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_socket_is_cut_after_the_finish_resumes_and_finishes() {
    // 0 s: a session on A, the client sending c1.. every 10 ms. 0.1 s: A drains over 0.9 s:
    // the moment is 1 s. 0.995 s: the client's link freezes, so the `finish` does not reach
    // it; 1.005 s: the link is cut. The client resumes on A (the drain lets a resume in):
    // welcome, replay, `finish` again; it answers, A closes with 1012, and the client goes
    // on with a new session on B.
    let (a, b) = (Server::new("A"), Server::new("B"));
    let to_b = Arc::new(AtomicBool::new(false));
    let (client, events) = client(&a, &b, &to_b);
    {
        let (to_b, events) = (to_b.clone(), events.clone());
        // Route to B only once the client has started its new session.
        tokio::spawn(async move {
            loop {
                if events
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(_, e)| matches!(e, Event::NewSession))
                {
                    return to_b.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(ms(1)).await;
            }
        });
    }
    let (sender, received) = traffic(client, 300, ms(4000));
    tokio::time::sleep(ms(100)).await;
    let drain = tokio::spawn(a.layer.drain(ms(900)));
    tokio::time::sleep(ms(895)).await;
    let link = a.latest();
    link.freeze();
    tokio::time::sleep(ms(10)).await;
    link.cut();
    let report = drain.await.unwrap();
    let _tx = sender.await.unwrap();
    let got = received.await.unwrap();
    assert_eq!(report.sessions_finished, 1, "{report:?}");
    let all: Vec<String> = a
        .got
        .lock()
        .unwrap()
        .iter()
        .chain(b.got.lock().unwrap().iter())
        .cloned()
        .collect();
    assert_eq!(all, (1..=300).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let from_a: Vec<String> = got
        .iter()
        .filter(|m| m.starts_with("A:"))
        .cloned()
        .collect();
    assert_eq!(from_a, *a.sent.lock().unwrap());
    assert!(
        a.links.lock().unwrap().len() >= 2,
        "the client resumed on A"
    );
    let events = events.lock().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|(_, e)| matches!(e, Event::NewSession))
            .count(),
        1
    );
    assert_eq!(*a.ends.lock().unwrap(), ["end"]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_answers_the_finish_loses_the_session_when_the_drain_runs_out() {
    // A client of version 1 without the finish (it ignores a session message it does not
    // know): a plain socket that says `hello new` and reads on. A drains over 1 s from 0 s
    // (close timeout 1 s): the handler's stream reports the session lost at 2 s, for
    // `Drained`.
    let a = Server::new("A");
    let mut ws = a.connect().await;
    let sid = "0123456789abcdef0123456789abcdef";
    ws.send(Message::text(format!(
        "\u{10}hello 1 new {sid} {sid} 100000"
    )))
    .await
    .unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().starts_with("\u{10}welcome 1 "));
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg {
                seen.push(text.to_string());
            }
        }
        seen
    });
    let report = a.layer.drain(ms(1000)).await;
    assert_eq!(report.sessions_finished, 0);
    let ends = a.ends.lock().unwrap().clone();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0], "Some(Drained)");
    assert_eq!(start.elapsed(), ms(2000));
    let seen = reader.await.unwrap();
    assert!(
        seen.iter().any(|m| m.starts_with("\u{10}finish ")),
        "{seen:?}"
    );
}
