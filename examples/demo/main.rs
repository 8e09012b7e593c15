//! The demo: an axum server whose page heartbeats the way a careful browser client should,
//! while the server heartbeats the page through `HeartbeatLayer`.
//!
//! ```text
//! cargo run --example demo                                  # http://127.0.0.1:3000
//! cargo run --example demo -- 0.0.0.0:8080 --interval-ms 1000 --max-missed 3
//! ```
//!
//! The page (`examples/demo/index.html`, `app.js`, `style.css`) talks through the crate's
//! browser module, `HeartbeatSocket`, served at `/ws-heartbeat.js` by
//! `ws_heartbeat::browser::script`: it pings, answers the server's pings, finds a silent
//! server dead, reconnects with exponential backoff and full jitter, and stays closed after a
//! log-out or a kick. Its buttons freeze it (the server declares it dead within
//! `interval × (max_missed + 1)`), kill its connection from the server side (it reconnects),
//! kick it (it does not), log it out, and slow its heartbeat down as a phone app in the
//! background would (the server follows the interval its pings carry). Open the page with
//! `?heartbeat=text`, `binary` or `control` for the other shapes; with `control` the server
//! uses WebSocket Ping frames, which the browser answers by itself.
//!
//! `GET /stats` returns the server's counters as JSON (the browser tests read it). `GET
//! /metrics` is the crate's metrics (`ws_heartbeat::metrics`) in Prometheus text form; the
//! page's server panel and its RTT histogram are drawn from them.
//!
//! Restart it without dropping the pages: start a second demo on the same address (the
//! listener is shared, `SO_REUSEPORT`), then Ctrl-C (or SIGTERM) the first. It drains over
//! `--drain-ms` (5 s by default): each page gets a Close 1012 at its own moment, logs it,
//! and reconnects within its first backoff step, to the second process (`restart.rs`). With
//! `?resume=1` the page's session finishes on the first process and goes on as a new
//! session on the second (the log says so); each session's end line gives the runs of the
//! page's numbered messages its handler got.
//!
//! Sessions: `/session` is the same WebSocket with `HeartbeatLayer::resume` (window
//! `--window-ms`, 30 s by default; buffer `--session-buffer` bytes, 1 MiB), which the page uses when opened with `?resume=1`. Its
//! handler runs once per session, however many sockets carry it: it sends
//! `{"type":"session","id":N}` first, echoes text and binary, and on
//! `{"type":"stream","count":N,"size":B}` (optionally `"every_ms":E`) sends N numbered items
//! `{"type":"item","seq":i,"pad":"…"}` of B bytes while it goes on reading and echoing. It
//! counts what it receives and sends, and checks that the page's numbered messages
//! (`{"type":"msg","seq":i}`, from 1) arrive once and in order: `/stats` shows them under
//! `sessions`. `GET /cut` drops the TCP connections of the live session sockets without a Close
//! frame, mid-stream (`cut.rs`); the page resumes its session on a new one.

mod cut;
mod restart;

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Interval, MissedTickBehavior};
use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};
use ws_heartbeat::resume::{Resume, SessionLost, Sessions};
use ws_heartbeat::{Dead, HeartbeatHandle, HeartbeatLayer, protocol};

use cut::{Conn, CuttableListener, Cuttables};

/// Close code the page takes as "kicked: do not reconnect".
const KICKED: u16 = 4000;

struct App {
    /// Heartbeat settings of control-frame connections; the other shapes add a protocol.
    control: HeartbeatLayer,
    json: HeartbeatLayer,
    text: HeartbeatLayer,
    binary: HeartbeatLayer,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, HeartbeatHandle>>,
    totals: Totals,
    /// The layers of `/session`: the four above, each with `resume`. Each keeps its own
    /// sessions (clones of a layer share them).
    resumed: [(&'static str, Sessions); 4],
    sessions: SessionBook,
    cuttables: Arc<Cuttables>,
}

/// The sessions' counters, for `/stats`.
#[derive(Default)]
struct SessionBook {
    /// Handler calls: one per session.
    calls: AtomicU64,
    /// Handlers running now.
    running: AtomicU64,
    /// `/cut` requests, and the connections they cut.
    cut_requests: AtomicU64,
    cut_connections: AtomicU64,
    /// The latest sessions, newest last.
    latest: Mutex<VecDeque<Arc<SessionCount>>>,
}

/// How many sessions `/stats` lists.
const LISTED_SESSIONS: usize = 32;

/// One session's counters.
struct SessionCount {
    id: u64,
    heartbeat: &'static str,
    /// Data messages the handler received (commands, numbered messages and the rest).
    received: AtomicU64,
    /// Data messages the handler sent (the greeting, items and echoes).
    sent: AtomicU64,
    /// Items it has streamed.
    items: AtomicU64,
    numbered: Mutex<Numbered>,
    /// How the handler ended, once it has.
    ended: Mutex<Option<String>>,
}

/// The page's numbered messages as they arrived: the sequence as runs of consecutive
/// numbers (`[[1, 2000]]` when all came once and in order), and the anomalies.
#[derive(Default)]
struct Numbered {
    count: u64,
    runs: Vec<[u64; 2]>,
    /// A number that had arrived already.
    duplicates: u64,
    /// A number other than the next one (a gap, or one that came late).
    out_of_order: u64,
}

impl Numbered {
    /// Runs beyond this are not recorded (the counts go on).
    const MAX_RUNS: usize = 1000;

    fn record(&mut self, seq: u64) {
        self.count += 1;
        let seen = self
            .runs
            .iter()
            .any(|[from, to]| (*from..=*to).contains(&seq));
        let next = self.runs.last().map_or(1, |[_, to]| to + 1);
        if seen {
            self.duplicates += 1;
        } else if seq != next {
            self.out_of_order += 1;
        }
        if let Some(run) = self.runs.last_mut().filter(|run| seq == run[1] + 1) {
            run[1] = seq;
        } else if self.runs.len() < Self::MAX_RUNS {
            self.runs.push([seq, seq]);
        }
    }
}

impl SessionCount {
    fn stats(&self) -> serde_json::Value {
        let numbered = self.numbered.lock().unwrap();
        json!({
            "id": self.id,
            "heartbeat": self.heartbeat,
            "received": self.received.load(Relaxed),
            "sent": self.sent.load(Relaxed),
            "items": self.items.load(Relaxed),
            "numbered": numbered.count,
            "seq_runs": numbered.runs,
            "duplicates": numbered.duplicates,
            "out_of_order": numbered.out_of_order,
            "ended": *self.ended.lock().unwrap(),
        })
    }
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    /// Pings and pongs of connections that have ended.
    pings: AtomicU64,
    pongs: AtomicU64,
    rtt_samples: AtomicU64,
    deaths: AtomicU64,
    kills: AtomicU64,
    kicks: AtomicU64,
    /// How long the last dead peer had been silent, in ms.
    last_silent_ms: AtomicU64,
}

impl App {
    fn stats(&self) -> serde_json::Value {
        let live = self.live.lock().unwrap();
        let t = &self.totals;
        let (mut pings, mut pongs, mut rtt_samples) = (
            t.pings.load(Relaxed),
            t.pongs.load(Relaxed),
            t.rtt_samples.load(Relaxed),
        );
        for handle in live.values() {
            let s = handle.stats();
            pings += s.pings_sent;
            pongs += s.pongs_received;
            rtt_samples += s.rtt_samples;
        }
        json!({
            "type": "stats",
            "connected": live.len(),
            "connections": self.totals.connections.load(Relaxed),
            "pings": pings,
            "pongs": pongs,
            "rtt_samples": rtt_samples,
            "deaths": self.totals.deaths.load(Relaxed),
            "kills": self.totals.kills.load(Relaxed),
            "kicks": self.totals.kicks.load(Relaxed),
            "last_silent_ms": self.totals.last_silent_ms.load(Relaxed),
            "intervals_ms": live.values().map(|h| h.interval().as_millis() as u64).collect::<Vec<_>>(),
            "interval_ms": self.json.settings().interval().as_millis() as u64,
            "max_missed": self.json.settings().max_missed(),
            "sessions": self.session_stats(),
        })
    }

    fn session_stats(&self) -> serde_json::Value {
        let b = &self.sessions;
        let latest = b.latest.lock().unwrap();
        let (mut held, mut parked) = (0, 0);
        for (_, sessions) in &self.resumed {
            held += sessions.len();
            parked += sessions.parked();
        }
        let sum = |f: fn(&SessionCount) -> u64| latest.iter().map(|c| f(c)).sum::<u64>();
        json!({
            "calls": b.calls.load(Relaxed),
            "running": b.running.load(Relaxed),
            "live": held - parked,
            "parked": parked,
            "received": sum(|c| c.received.load(Relaxed)),
            "sent": sum(|c| c.sent.load(Relaxed)),
            "duplicates": sum(|c| c.numbered.lock().unwrap().duplicates),
            "out_of_order": sum(|c| c.numbered.lock().unwrap().out_of_order),
            "cuts": b.cut_requests.load(Relaxed),
            "cut_connections": b.cut_connections.load(Relaxed),
            "window_ms": self.resumed[0].1.resume().window_len().as_millis() as u64,
            "list": latest.iter().map(|c| c.stats()).collect::<Vec<_>>(),
        })
    }
}

#[derive(Deserialize)]
struct WsParams {
    heartbeat: Option<String>,
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(params): Query<WsParams>,
    State(app): State<Arc<App>>,
) -> Response {
    let layer = match params.heartbeat.as_deref() {
        Some("control") => app.control.clone(),
        Some("text") => app.text.clone(),
        Some("binary") => app.binary.clone(),
        _ => app.json.clone(),
    };
    ws.heartbeat(layer)
        .on_upgrade(move |socket| session(socket, app))
}

/// One page's connection: echo, push the counters every second, obey kill and kick.
async fn session(mut socket: WebSocket, app: Arc<App>) {
    let id = app.next_id.fetch_add(1, Relaxed);
    let handle = socket.handle();
    app.totals.connections.fetch_add(1, Relaxed);
    app.live.lock().unwrap().insert(id, handle.clone());
    let started = Instant::now();
    let mut push = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => match command(&text).as_deref() {
                    Some("kill") => {
                        app.totals.kills.fetch_add(1, Relaxed);
                        break "killed (dropped without a Close frame)";
                    }
                    Some("kick") => {
                        app.totals.kicks.fetch_add(1, Relaxed);
                        let kick = CloseFrame { code: KICKED, reason: "kicked".into() };
                        let _ = socket.send(Message::Close(Some(kick))).await;
                        // Let the page's Close reply arrive, briefly.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while socket.recv().await.is_some() {}
                        })
                        .await;
                        break "kicked";
                    }
                    _ => {
                        if socket.send(Message::Text(text)).await.is_err() {
                            break "send failed";
                        }
                    }
                },
                Some(Ok(Message::Binary(bytes))) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break "send failed";
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    if let Some(dead) = Dead::find(&err) {
                        app.totals.deaths.fetch_add(1, Relaxed);
                        app.totals.last_silent_ms.store(dead.silent_for().as_millis() as u64, Relaxed);
                        break "dead";
                    }
                    break "failed";
                }
                None => break "closed",
            },
            _ = push.tick() => {
                let mut stats = app.stats();
                stats["rtt_ms"] = json!(handle.rtt().map(|rtt| rtt.as_secs_f64() * 1000.0));
                if socket.send(Message::Text(stats.to_string().into())).await.is_err() {
                    break "send failed";
                }
            }
        }
    };
    app.live.lock().unwrap().remove(&id);
    let s = handle.stats();
    app.totals.pings.fetch_add(s.pings_sent, Relaxed);
    app.totals.pongs.fetch_add(s.pongs_received, Relaxed);
    app.totals.rtt_samples.fetch_add(s.rtt_samples, Relaxed);
    println!(
        "connection {id}: {outcome} after {:?} ({s:?})",
        started.elapsed()
    );
}

async fn session_upgrade(
    ws: WebSocketUpgrade,
    Query(params): Query<WsParams>,
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
) -> Response {
    let wanted = params.heartbeat.as_deref().unwrap_or("json");
    let (heartbeat, sessions) = app
        .resumed
        .iter()
        .find(|(name, _)| *name == wanted)
        .unwrap_or(&app.resumed[1])
        .clone();
    // A session socket: `/cut` may drop its connection.
    conn.mark();
    ws.heartbeat(sessions)
        .on_upgrade(move |socket| stream_session(socket, app, heartbeat))
}

/// The largest item a stream command may ask for.
const MAX_ITEM_BYTES: usize = 1 << 20;

/// Echoes queued, at most: beyond it the handler stops reading until they are sent.
const MAX_QUEUED: usize = 256;

/// Items being streamed: numbers `next..=last`, each `size` bytes, one per tick if paced.
struct Streaming {
    next: u64,
    last: u64,
    size: usize,
    pace: Option<Interval>,
}

impl Streaming {
    /// The next item, if one is due.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Option<Message> {
        if self.next > self.last {
            return None;
        }
        if let Some(pace) = &mut self.pace {
            pace.poll_tick(cx).is_ready().then_some(())?;
        }
        let seq = self.next;
        self.next += 1;
        let bare = format!(r#"{{"type":"item","seq":{seq},"pad":""}}"#);
        let pad = "x".repeat(self.size.saturating_sub(bare.len()));
        Some(Message::Text(
            format!(r#"{{"type":"item","seq":{seq},"pad":"{pad}"}}"#).into(),
        ))
    }
}

/// What one turn of the session's loop did.
enum Turn {
    /// A message (or the end, or an error) came.
    Received(Option<Result<Message, axum::Error>>),
    /// Something was sent.
    Sent,
    /// The socket failed to take a message.
    Failed(axum::Error),
}

/// Sends what is queued and due while the socket takes it, and reads: both in every turn,
/// so that a long stream neither stops the echoes nor waits for them.
fn poll_turn<S>(
    socket: &mut S,
    cx: &mut Context<'_>,
    queue: &mut VecDeque<Message>,
    streaming: &mut Option<Streaming>,
    unflushed: &mut bool,
    count: &SessionCount,
) -> Poll<Turn>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let mut sent = false;
    if queue.is_empty() {
        if let Some(s) = streaming {
            match s.poll_item(cx) {
                Some(item) => {
                    count.items.fetch_add(1, Relaxed);
                    queue.push_back(item);
                }
                None if s.next > s.last => *streaming = None,
                None => {}
            }
        }
    }
    // One message a turn: the reads below are not starved by a long stream.
    if !queue.is_empty() {
        match socket.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {
                let msg = queue.pop_front().expect("not empty");
                if let Err(err) = socket.start_send_unpin(msg) {
                    return Poll::Ready(Turn::Failed(err));
                }
                count.sent.fetch_add(1, Relaxed);
                *unflushed = true;
                sent = true;
            }
            Poll::Ready(Err(err)) => return Poll::Ready(Turn::Failed(err)),
            Poll::Pending => {}
        }
    }
    if *unflushed {
        match socket.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(err)) => return Poll::Ready(Turn::Failed(err)),
            Poll::Pending => {}
        }
    }
    if queue.len() < MAX_QUEUED {
        if let Poll::Ready(msg) = socket.poll_next_unpin(cx) {
            return Poll::Ready(Turn::Received(msg));
        }
    }
    if sent {
        Poll::Ready(Turn::Sent)
    } else {
        Poll::Pending
    }
}

/// A stream command from the page: `{"type":"stream","count":N,"size":B,"every_ms":E}`.
#[derive(Deserialize)]
struct StreamCommand {
    count: u64,
    #[serde(default)]
    size: usize,
    #[serde(default)]
    every_ms: u64,
}

/// A numbered message from the page: `{"type":"msg","seq":i}`.
#[derive(Deserialize)]
struct NumberedMessage {
    seq: u64,
}

/// One session, however many sockets carry it: the handler is called once for it.
async fn stream_session(mut socket: WebSocket, app: Arc<App>, heartbeat: &'static str) {
    let id = app.next_id.fetch_add(1, Relaxed);
    let count = Arc::new(SessionCount {
        id,
        heartbeat,
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        items: AtomicU64::new(0),
        numbered: Mutex::new(Numbered::default()),
        ended: Mutex::new(None),
    });
    let book = &app.sessions;
    book.calls.fetch_add(1, Relaxed);
    book.running.fetch_add(1, Relaxed);
    {
        let mut latest = book.latest.lock().unwrap();
        if latest.len() == LISTED_SESSIONS {
            latest.pop_front();
        }
        latest.push_back(count.clone());
    }
    let started = Instant::now();
    let greeting = json!({ "type": "session", "id": id }).to_string();
    let mut queue = VecDeque::from([Message::Text(greeting.into())]);
    let mut streaming: Option<Streaming> = None;
    let mut next_item = 1;
    let mut unflushed = false;
    let outcome = loop {
        let turn = poll_fn(|cx| {
            poll_turn(
                &mut socket,
                cx,
                &mut queue,
                &mut streaming,
                &mut unflushed,
                &count,
            )
        })
        .await;
        let msg = match turn {
            Turn::Sent => continue,
            Turn::Failed(err) => break ended(&err, "send failed"),
            Turn::Received(None) => break "closed".to_owned(),
            Turn::Received(Some(Err(err))) => break ended(&err, "failed"),
            Turn::Received(Some(Ok(msg))) => msg,
        };
        match msg {
            Message::Text(text) => {
                count.received.fetch_add(1, Relaxed);
                match command(&text).as_deref() {
                    Some("stream") => {
                        let Ok(cmd) = serde_json::from_str::<StreamCommand>(&text) else {
                            continue;
                        };
                        let pace = (cmd.every_ms > 0).then(|| {
                            let mut pace =
                                tokio::time::interval(Duration::from_millis(cmd.every_ms));
                            pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
                            pace
                        });
                        // Numbers go on from the items streamed before.
                        let first = streaming.as_ref().map_or(next_item, |s| s.next);
                        next_item = first.saturating_add(cmd.count);
                        streaming = Some(Streaming {
                            next: first,
                            last: next_item - 1,
                            size: cmd.size.min(MAX_ITEM_BYTES),
                            pace,
                        });
                    }
                    Some("msg") => {
                        if let Ok(numbered) = serde_json::from_str::<NumberedMessage>(&text) {
                            count.numbered.lock().unwrap().record(numbered.seq);
                        }
                        queue.push_back(Message::Text(text));
                    }
                    _ => queue.push_back(Message::Text(text)),
                }
            }
            Message::Binary(bytes) => {
                count.received.fetch_add(1, Relaxed);
                queue.push_back(Message::Binary(bytes));
            }
            // The page's Close: the session ends once the stream does.
            _ => {}
        }
    };
    book.running.fetch_sub(1, Relaxed);
    println!(
        "session {id}: {outcome} after {:?} (received {}, sent {}); numbered runs {}",
        started.elapsed(),
        count.received.load(Relaxed),
        count.sent.load(Relaxed),
        json!(count.numbered.lock().unwrap().runs),
    );
    *count.ended.lock().unwrap() = Some(outcome);
}

/// How a session's handler ended on an error.
fn ended(err: &axum::Error, what: &str) -> String {
    match SessionLost::find(err) {
        Some(lost) => lost.to_string(),
        None => format!("{what}: {err}"),
    }
}

/// `GET /cut`: drops the live session sockets' connections, without a Close frame.
async fn cut(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let cut = app.cuttables.cut_marked();
    app.sessions.cut_requests.fetch_add(1, Relaxed);
    app.sessions.cut_connections.fetch_add(cut as u64, Relaxed);
    println!("cut {cut} session connections");
    Json(json!({ "cut": cut }))
}

/// The `type` of a JSON command from the page, if it is one.
fn command(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(value.get("type")?.as_str()?.to_owned())
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The Prometheus recorder of the crate's metrics (`ws_heartbeat::metrics`), with the
/// buckets it suggests; `GET /metrics` renders it.
fn install_metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    use ws_heartbeat::metrics as m;
    let buckets = [
        (m::RTT, &m::RTT_BUCKETS[..]),
        (m::TICK_LAG, &m::TICK_LAG_BUCKETS[..]),
        (m::CONNECTION_DURATION, &m::DURATION_BUCKETS[..]),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("buckets");
    }
    builder.install_recorder().expect("the only recorder")
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Before any layer's first connection: a layer registers its metrics with the recorder
    // installed then.
    let metrics = install_metrics();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:3000", String::as_str)
        .parse()
        .expect("an address such as 127.0.0.1:3000");
    let interval = Duration::from_millis(arg(&args, "--interval-ms").unwrap_or(2000));
    let max_missed = arg(&args, "--max-missed").map_or(3, |n| n as u32);
    let window = Duration::from_millis(arg(&args, "--window-ms").unwrap_or(30_000));
    let drain_window = Duration::from_millis(arg(&args, "--drain-ms").unwrap_or(5000));
    // Pages may ask for their own interval (a phone app in the background), within limits.
    let control = HeartbeatLayer::new()
        .name("demo")
        .interval(interval)
        .max_missed(max_missed)
        .follow_peer_interval(Duration::from_millis(100), Duration::from_secs(600));
    let json = control.clone().protocol(protocol::Json::new());
    let text = control.clone().protocol(protocol::Text::new());
    let binary = control.clone().protocol(protocol::BinaryCommand::new());
    let mut resume = Resume::new().window(window);
    if let Some(bytes) = arg(&args, "--session-buffer") {
        resume = resume.buffer(bytes as usize);
    }
    // Every route's layer is made from `control`: draining it drains them all.
    let keepalive = control.clone();
    let cuttables = Arc::new(Cuttables::default());
    let app = Arc::new(App {
        resumed: [
            ("control", control.clone().resume(resume)),
            ("json", json.clone().resume(resume)),
            ("text", text.clone().resume(resume)),
            ("binary", binary.clone().resume(resume)),
        ],
        json,
        text,
        binary,
        control,
        next_id: AtomicU64::new(0),
        live: Mutex::new(HashMap::new()),
        totals: Totals::default(),
        sessions: SessionBook::default(),
        cuttables: cuttables.clone(),
    });
    let router = Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", include_str!("index.html")) }),
        )
        .route(
            "/app.js",
            get(|| async { file("text/javascript", include_str!("app.js")) }),
        )
        .route("/ws-heartbeat.js", get(ws_heartbeat::browser::script))
        .route(
            "/style.css",
            get(|| async { file("text/css", include_str!("style.css")) }),
        )
        .route(
            "/stats",
            get(|State(app): State<Arc<App>>| async move { Json(app.stats()) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    metrics.render(),
                )
            }),
        )
        .route("/ws", get(upgrade))
        .route("/session", get(session_upgrade))
        .route("/cut", get(cut))
        .with_state(app);
    let listener = restart::bind_shared(addr)?;
    println!(
        "demo on http://{} (server heartbeat: every {interval:?}, dead after {max_missed} missed; session window {window:?})",
        listener.local_addr()?
    );
    let listener = CuttableListener::new(listener, cuttables);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Conn>(),
    )
    .with_graceful_shutdown(restart::drained(keepalive, drain_window))
    .await
}
