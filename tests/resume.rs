//! Sessions (`ws_heartbeat::resume`) on tokio's paused clock, over in-memory pipes through a
//! relay the tests cut and freeze: exactly once in order both ways, the window, the buffer,
//! the ends of a session, tokens, takeover, refusals. PROTOCOL.md is the wire these tests
//! hold the two halves to; `tests/resume_chaos.rs` does the same over TCP with random cuts.

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, protocol::Role};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Error as ClientError, Event, Reconnect};
use ws_heartbeat::resume::{AcceptError, Reason, Resume, Session, SessionLost, Sessions};

use support::ms;
use support::relay::{Ctl, relay};

type Ws = WebSocketStream<DuplexStream>;

/// How the server's handler ended: `None` while it runs.
type Ended = Arc<Mutex<Option<String>>>;

/// The network of a test: every connection goes through a relay the test controls, to a
/// server that gives every socket to `sessions.accept` and runs `echo` for new sessions.
#[derive(Clone)]
struct Net {
    sessions: Sessions,
    links: Arc<Mutex<Vec<Arc<Ctl>>>>,
    /// Handler calls.
    calls: Arc<AtomicUsize>,
    /// What the handler received, in order.
    got: Arc<Mutex<Vec<String>>>,
    ended: Ended,
    /// The close code of each refused socket.
    refused: Arc<Mutex<Vec<Option<u16>>>>,
    /// Whether the handler reads (a test holds it still to fill the client's buffer).
    reading: Arc<tokio::sync::Semaphore>,
    /// `Some(n)`: the handler is `split`, its writing half in a task of its own sending
    /// `s0..s{n-1}`, its reading half recording (`split_handler`); `None`: `echo`.
    split: Option<usize>,
}

impl Net {
    fn new(sessions: Sessions) -> Self {
        Self {
            sessions,
            links: Arc::default(),
            calls: Arc::default(),
            got: Arc::default(),
            ended: Arc::default(),
            refused: Arc::default(),
            reading: Arc::new(tokio::sync::Semaphore::new(1 << 20)),
            split: None,
        }
    }

    /// A server whose handler is split in two tasks, its writer sending `sends` messages.
    fn split(sessions: Sessions, sends: usize) -> Self {
        Self {
            split: Some(sends),
            ..Self::new(sessions)
        }
    }

    /// A client socket through a new relayed link.
    async fn connect(&self) -> Ws {
        let (client, relay_a) = tokio::io::duplex(64 * 1024);
        let (relay_b, server) = tokio::io::duplex(64 * 1024);
        let ctl = Arc::new(Ctl::default());
        self.links.lock().unwrap().push(ctl.clone());
        tokio::spawn(relay(relay_a, relay_b, ctl));
        let net = self.clone();
        tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
            match net.sessions.accept(ws).await {
                Ok(Some(session)) => {
                    net.calls.fetch_add(1, Ordering::SeqCst);
                    let end = match net.split {
                        Some(sends) => split_handler(session, &net, sends).await,
                        None => echo(session, &net).await,
                    };
                    *net.ended.lock().unwrap() = Some(end);
                }
                Ok(None) => {}
                Err(err) => net.refused.lock().unwrap().push(err.close_code()),
            }
        });
        WebSocketStream::from_raw_socket(client, Role::Client, None).await
    }

    fn latest(&self) -> Arc<Ctl> {
        self.links.lock().unwrap().last().expect("a link").clone()
    }

    fn client(&self, resume: Resume) -> Reconnect<Ws> {
        let net = self.clone();
        Reconnect::builder(move || {
            let net = net.clone();
            async move { Ok::<_, io::Error>(net.connect().await) }
        })
        .heartbeat(layer())
        .backoff(Backoff::new().initial(ms(10)).max_delay(ms(100)))
        .resume(resume)
        .build()
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

/// The handler: records every text and answers it with `s:` in front; a text `kick`
/// closes with 4001. Returns how the session ended.
async fn echo(mut ws: Session<Ws>, net: &Net) -> String {
    loop {
        let permit = net.reading.acquire().await.expect("open");
        let next = ws.next().await;
        drop(permit);
        match next {
            Some(Ok(Message::Text(text))) if text.as_str() == "kick" => {
                let close =
                    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: 4001.into(),
                        reason: "kicked".into(),
                    }));
                let _ = ws.send(close).await;
            }
            Some(Ok(Message::Text(text))) => {
                net.got.lock().unwrap().push(text.to_string());
                if ws.send(Message::text(format!("s:{text}"))).await.is_err() {
                    return "send failed".into();
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                net.got.lock().unwrap().push(format!("bin:{bytes:?}"));
                if ws.send(Message::Binary(bytes)).await.is_err() {
                    return "send failed".into();
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return format!("close {:?}", frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                return match SessionLost::find(&err) {
                    Some(lost) => format!("lost {:?} {}", lost.reason(), lost.unconfirmed()),
                    None => format!("error {err}"),
                };
            }
            None => return "end".into(),
        }
    }
}

/// A handler in two tasks (`split`): the writing half sends `s0..s{sends-1}` and ends, the
/// reading half records every text. Returns how the reading half ended.
async fn split_handler(ws: Session<Ws>, net: &Net, sends: usize) -> String {
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        for i in 0..sends {
            if sink.send(Message::text(format!("s{i}"))).await.is_err() {
                return;
            }
        }
    });
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => net.got.lock().unwrap().push(text.to_string()),
            Some(Ok(Message::Close(frame))) => {
                return format!("close {:?}", frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return format!("error {err}"),
            None => return "end".into(),
        }
    }
}

/// Both sides' heartbeat: 1 s, 2 missed, no jitter: a frozen link is found dead 2 to 3 s
/// after its last frame.
fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new()
        .interval(ms(1000))
        .max_missed(2)
        .jitter(false)
}

fn server(resume: Resume) -> Net {
    Net::new(layer().resume(resume))
}

async fn read_n(client: &mut Reconnect<Ws>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match client.next().await {
            Some(Ok(Message::Text(t))) => got.push(t.to_string()),
            Some(Ok(Message::Binary(b))) => got.push(format!("bin:{b:?}")),
            Some(Ok(_)) => {}
            other => panic!("the client ended after {} of {n}: {other:?}", got.len()),
        }
    }
    got
}

fn texts(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}c{i}")).collect()
}

/// The headline on the paused clock: 200 messages each way, the link cut after every 20
/// sends; each side gets every message once, in order, and the handler is called once.
#[tokio::test(start_paused = true)]
async fn every_message_arrives_once_in_order_both_ways_across_cuts() {
    let net = server(Resume::new());
    let mut client = net.client(Resume::new());
    for i in 0..200 {
        client.send(Message::text(format!("c{i}"))).await.unwrap();
        if i % 20 == 19 {
            net.latest().cut();
            tokio::time::sleep(ms(1)).await; // the relay drops both ends
        }
    }
    let echoes = timeout(Duration::from_secs(60), read_n(&mut client, 200))
        .await
        .expect("every echo within 60 s");
    assert_eq!(echoes, texts("s:", 0..200));
    assert_eq!(net.got(), texts("", 0..200));
    assert_eq!(net.calls.load(Ordering::SeqCst), 1);
    assert_eq!(net.links.lock().unwrap().len(), 11, "ten cuts, ten resumes");
}

/// Large messages, which both ends keep by reference (`Resume::share_from`, 16 KiB by
/// default) rather than copied, go again after cuts exactly as the small ones, copied: 40
/// messages each way, three in four of 20 000 bytes, text and binary, in batches of 5: the
/// link is cut after each batch's sends, then the client reads the batch's echoes (the
/// server's binary echoes are the very bytes tungstenite read). Batches, because a client
/// that sent everything before reading would fill both buffers and wait forever, as any two
/// ends with bounded buffers that do not read would.
#[tokio::test(start_paused = true)]
async fn large_messages_kept_by_reference_arrive_once_in_order_across_cuts() {
    let net = server(Resume::new());
    let mut client = net.client(Resume::new());
    let size = |i: usize| if i % 4 < 3 { 20_000 } else { 10 };
    let sent = |i: usize| -> Message {
        if i % 2 == 0 {
            Message::text(format!("c{i}:{}", "x".repeat(size(i))))
        } else {
            Message::binary(vec![i as u8; size(i)])
        }
    };
    for batch in 0..8 {
        let batch = batch * 5..batch * 5 + 5;
        for i in batch.clone() {
            client.send(sent(i)).await.unwrap();
        }
        net.latest().cut();
        for i in batch {
            let echo = timeout(Duration::from_secs(60), client.next())
                .await
                .expect("every echo within 60 s");
            let want = match sent(i) {
                Message::Text(text) => Message::text(format!("s:{text}")),
                binary => binary,
            };
            match echo {
                Some(Ok(got)) => {
                    assert!(
                        got == want,
                        "echo {i}: {} bytes, not {}",
                        got.len(),
                        want.len()
                    );
                }
                other => panic!("echo {i}: {other:?}"),
            }
        }
    }
    assert_eq!(net.got().len(), 40);
    assert_eq!(
        net.links.lock().unwrap().len(),
        9,
        "eight cuts, eight resumes"
    );
}

/// A frozen link: the heartbeat finds it dead within its bound and the session resumes on
/// a new socket with nothing lost.
///
/// Timeline (the client's heartbeat, 1 s × 2): 0 s: the link freezes after "c0" was
/// answered; last frame from the server at about 0 s; the client is dead strictly after
/// 2 s, by 3 s; then a new socket resumes within the 100 ms backoff ceiling.
#[tokio::test(start_paused = true)]
async fn a_frozen_link_is_found_dead_and_the_session_resumes() {
    let net = server(Resume::new());
    let mut client = net.client(Resume::new());
    client.send(Message::text("c0")).await.unwrap();
    assert_eq!(read_n(&mut client, 1).await, ["s:c0"]);
    let frozen_at = Instant::now();
    net.latest().freeze();
    client.send(Message::text("c1")).await.unwrap(); // into the frozen link
    assert_eq!(read_n(&mut client, 1).await, ["s:c1"]);
    let took = frozen_at.elapsed();
    assert!(
        took > ms(2000) && took <= ms(3000 + 100),
        "resumed after {took:?}"
    );
    assert_eq!(net.got(), ["c0", "c1"]);
    assert_eq!(net.links.lock().unwrap().len(), 2);
    assert_eq!(net.calls.load(Ordering::SeqCst), 1);
}

/// The window passes on both sides: the server ends the handler's stream with a
/// `SessionLost` (window passed) and the client, whose reconnects are refused or fail,
/// ends with `Error::SessionLost`.
///
/// Timeline: 0 s: the link is cut and every later connect freezes at once; the server
/// parks the session at about 0 s and ends it at 5 s (window 5 s); the client's window
/// (5 s too) passes; it ends by then.
#[tokio::test(start_paused = true)]
async fn the_window_passes_on_both_sides() {
    let window = Resume::new().window(ms(5000));
    let net = server(window);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let net2 = net.clone();
    let mut client = Reconnect::builder(move || {
        let net = net2.clone();
        async move {
            let ws = net.connect().await;
            // From the second connection on, the network is gone.
            if net.links.lock().unwrap().len() > 1 {
                net.latest().freeze();
            }
            Ok::<_, io::Error>(ws)
        }
    })
    .heartbeat(layer())
    .connect_timeout(ms(500))
    .backoff(Backoff::new().initial(ms(10)).max_delay(ms(100)))
    .resume(window)
    .on_event(move |e| seen.lock().unwrap().push(format!("{e:?}")))
    .build();
    client.send(Message::text("c0")).await.unwrap();
    assert_eq!(read_n(&mut client, 1).await, ["s:c0"]);
    client.send(Message::text("c1")).await.unwrap();
    net.latest().cut(); // c1's echo may or may not have been acknowledged: count below
    let cut_at = Instant::now();
    let end = timeout(Duration::from_secs(30), async {
        loop {
            match client.next().await {
                Some(Ok(_)) => {}
                Some(Err(err)) => return err,
                None => panic!("ended without an error"),
            }
        }
    })
    .await
    .expect("the client ends");
    let ClientError::SessionLost(lost) = end else {
        panic!("not a lost session: {end:?}")
    };
    assert_eq!(lost.reason(), Reason::WindowPassed);
    // It gives up at the first attempt that ends after its window (5 s from the cut): an
    // attempt in flight may still find the session, which the server keeps 5 s from when
    // it noticed the cut. Attempts take at most the 500 ms connect timeout.
    let gave_up = cut_at.elapsed();
    assert!(
        gave_up > ms(5000) && gave_up <= ms(5500),
        "gave up after {gave_up:?}"
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("SessionLost"))
    );

    tokio::time::sleep(ms(10)).await;
    let ended = net
        .ended
        .lock()
        .unwrap()
        .clone()
        .expect("the handler ended");
    assert!(ended.starts_with("lost WindowPassed"), "{ended}");
    assert!(net.sessions.is_empty() && net.sessions.parked() == 0);
}

/// Backpressure: with a 100-byte buffer, sends wait once the unacknowledged messages reach
/// it, and an acknowledgement frees them. 10-byte messages weigh 18: after six (108 bytes)
/// the seventh waits. The server (buffer 100 too, so acknowledging every 25 bytes) reads
/// three (30 bytes) and acknowledges: room again.
#[tokio::test(start_paused = true)]
async fn a_full_buffer_waits_and_an_acknowledgement_frees_it() {
    let net = server(Resume::new());
    let stopped = net.reading.acquire_many(1 << 20).await.unwrap();
    let mut client = net.client(Resume::new().buffer(100));
    for i in 0..6 {
        client
            .send(Message::text(format!("message{i:02}")))
            .await
            .unwrap();
    }
    let seventh = timeout(ms(10_000), client.send(Message::text("message06"))).await;
    assert!(
        seventh.is_err(),
        "the seventh send waits while the handler does not read"
    );
    drop(stopped);
    // The handler reads: every 25 bytes an acknowledgement, so the send completes.
    timeout(ms(100), client.send(Message::text("message06")))
        .await
        .expect("room after the acknowledgement")
        .unwrap();
    let echoes = read_n(&mut client, 7).await;
    assert_eq!(echoes.len(), 7);
    assert_eq!(net.got().len(), 7);
}

/// A clean close from the client ends the session: the handler reads the Close and its
/// stream ends; the session is forgotten.
#[tokio::test(start_paused = true)]
async fn a_clean_close_ends_the_session() {
    let net = server(Resume::new());
    let mut client = net.client(Resume::new());
    client.send(Message::text("c0")).await.unwrap();
    assert_eq!(read_n(&mut client, 1).await, ["s:c0"]);
    assert_eq!(net.sessions.len(), 1);
    client.close().await.unwrap();
    while let Some(item) = client.next().await {
        item.unwrap();
    }
    tokio::time::sleep(ms(10)).await;
    assert_eq!(net.ended.lock().unwrap().as_deref(), Some("close None"));
    assert!(net.sessions.is_empty());
    assert_eq!(net.links.lock().unwrap().len(), 1, "no reconnection");
}

/// A kick (the handler closes with 4001) ends the session: the client ends with
/// `Rejected`, no reconnection.
#[tokio::test(start_paused = true)]
async fn a_kick_ends_the_session() {
    let net = server(Resume::new());
    let mut client = net.client(Resume::new());
    client.send(Message::text("kick")).await.unwrap();
    let end = loop {
        match client.next().await {
            Some(Ok(_)) => {}
            Some(Err(err)) => break err,
            None => panic!("no error"),
        }
    };
    assert!(
        matches!(end, ClientError::Rejected { code: 4001, .. }),
        "{end:?}"
    );
    tokio::time::sleep(ms(10)).await;
    assert!(net.sessions.is_empty());
    assert_eq!(net.links.lock().unwrap().len(), 1);
}

/// A plain client (no session) against a resuming server: refused with 1008, which the
/// reconnecting client takes as final.
#[tokio::test(start_paused = true)]
async fn a_plain_client_is_refused_with_1008() {
    let net = server(Resume::new());
    let net2 = net.clone();
    let mut client = Reconnect::builder(move || {
        let net = net2.clone();
        async move { Ok::<_, io::Error>(net.connect().await) }
    })
    .heartbeat(layer())
    .build();
    client.send(Message::text("hello")).await.unwrap();
    let end = client.next().await.expect("an error").unwrap_err();
    assert!(
        matches!(end, ClientError::Rejected { code: 1008, ref reason } if reason == "session handshake required"),
        "{end:?}"
    );
    assert_eq!(*net.refused.lock().unwrap(), [Some(1008)]);
    assert_eq!(net.calls.load(Ordering::SeqCst), 0);
}

// --- the wire, by hand -------------------------------------------------------------------

const SID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "fedcba9876543210fedcba9876543210";

/// Sends `text` and returns the server's answer: the text of its first data message, or
/// `close <code>`.
async fn say<S>(ws: &mut S, text: &str) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    answer(ws).await
}

async fn answer<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    // Bounded: a test waiting for an answer that never comes fails instead of hanging.
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Close(frame))) => {
                    return format!("close {}", frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return "end".into(),
            }
        }
    };
    timeout(Duration::from_secs(600), next)
        .await
        .unwrap_or_else(|_| "no answer within 600 s".into())
}

/// `welcome 1 <token> <received> <buffer> <window>` → its words.
fn welcome(text: &str) -> Vec<String> {
    let body = text
        .strip_prefix('\u{10}')
        .unwrap_or_else(|| panic!("not a session message: {text:?}"));
    let words: Vec<String> = body.split(' ').map(str::to_owned).collect();
    assert_eq!(
        (words[0].as_str(), words[1].as_str()),
        ("welcome", "1"),
        "{text:?}"
    );
    assert_eq!(words[2].len(), 32);
    words
}

/// Tokens rotate at every resume; a stale token and a forged one are refused with 4410;
/// a repeated `hello new` with the session's secret is a resume from 0, not a second
/// session.
#[tokio::test(start_paused = true)]
async fn tokens_rotate_and_stale_or_forged_ones_are_refused() {
    let net = server(Resume::new());
    let mut ws = net.connect().await;
    let first = welcome(&say(&mut ws, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    let buffer = Resume::new().buffer_len().to_string();
    assert_eq!(&first[3..], ["0", &buffer, "30000"]);
    assert_eq!(say(&mut ws, "c0").await, "s:c0");
    net.latest().cut();

    // The welcome was lost, say: the same start again, with the birth secret.
    let mut ws = net.connect().await;
    let again = welcome(&say(&mut ws, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    assert_ne!(again[2], first[2], "a new token");
    assert_eq!(again[3], "1", "the server has received c0");
    assert_eq!(
        answer(&mut ws).await,
        "s:c0",
        "replayed: the client said it had received 0"
    );
    net.latest().cut();

    // Resume with the newest token: a new one again.
    let mut ws = net.connect().await;
    let third = welcome(
        &say(
            &mut ws,
            &format!("\u{10}hello 1 resume {SID} {} 1", again[2]),
        )
        .await,
    );
    assert_ne!(third[2], again[2]);
    net.latest().cut();

    // The first token and the birth secret are stale now; a forged one never was.
    for stale in [
        first[2].clone(),
        SECRET.to_owned(),
        "00000000000000000000000000000000".into(),
    ] {
        let mut ws = net.connect().await;
        assert_eq!(
            say(&mut ws, &format!("\u{10}hello 1 resume {SID} {stale} 1")).await,
            "close 4410"
        );
    }
    let mut ws = net.connect().await;
    assert_eq!(
        say(
            &mut ws,
            &format!("\u{10}hello 1 new {SID} {} 10", "1".repeat(32))
        )
        .await,
        "close 4409"
    );
    // An unknown session.
    let mut ws = net.connect().await;
    assert_eq!(
        say(
            &mut ws,
            &format!("\u{10}hello 1 resume {} {} 0", "2".repeat(32), third[2])
        )
        .await,
        "close 4410"
    );
    // A malformed hello.
    let mut ws = net.connect().await;
    assert_eq!(say(&mut ws, "\u{10}hello 1 resume xyz").await, "close 4400");
    assert_eq!(net.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(ms(10)).await;
    assert_eq!(
        *net.refused.lock().unwrap(),
        [
            Some(4410),
            Some(4410),
            Some(4410),
            Some(4409),
            Some(4410),
            Some(4400)
        ]
    );
}

/// A second socket resuming while the first is still up takes over: the first is dropped,
/// the second gets the welcome and what the first had not had acknowledged.
#[tokio::test(start_paused = true)]
async fn a_second_socket_takes_over() {
    let net = server(Resume::new());
    let mut old = net.connect().await;
    let w = welcome(&say(&mut old, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    assert_eq!(say(&mut old, "c0").await, "s:c0");

    let mut new = net.connect().await;
    let w2 = welcome(&say(&mut new, &format!("\u{10}hello 1 resume {SID} {} 0", w[2])).await);
    assert_eq!(w2[3], "1");
    assert_eq!(answer(&mut new).await, "s:c0", "replayed on the new socket");
    assert_eq!(say(&mut new, "c1").await, "s:c1");
    assert_eq!(answer(&mut old).await, "end", "the old socket was dropped");
    assert_eq!(net.got(), ["c0", "c1"]);
}

/// A `hello` that reaches the server after a later one with the same token (an attempt the
/// client gave up on) takes over, and the token the later `welcome` gave the client stays
/// valid: the client's next resume is welcomed, not refused.
#[tokio::test(start_paused = true)]
async fn a_late_hello_with_the_same_token_does_not_lose_the_session() {
    let net = server(Resume::new());
    let mut first = net.connect().await;
    let t1 = welcome(
        &say(
            &mut first,
            &format!("\u{10}hello 1 new {SID} {SECRET} 1000"),
        )
        .await,
    )[2]
    .clone();
    assert_eq!(say(&mut first, "c0").await, "s:c0");
    net.latest().cut();

    let mut later = net.connect().await;
    let t2 =
        welcome(&say(&mut later, &format!("\u{10}hello 1 resume {SID} {t1} 1")).await)[2].clone();
    // The older attempt's hello arrives now: it takes over.
    let mut late = net.connect().await;
    welcome(&say(&mut late, &format!("\u{10}hello 1 resume {SID} {t1} 1")).await);
    assert_eq!(answer(&mut later).await, "end", "taken over");
    drop(late);
    // The client holds t2, from the later welcome.
    let mut next = net.connect().await;
    let w = welcome(&say(&mut next, &format!("\u{10}hello 1 resume {SID} {t2} 1")).await);
    assert_eq!(w[3], "1");
    assert_eq!(say(&mut next, "c1").await, "s:c1");
    assert_eq!(net.got(), ["c0", "c1"]);
    assert!(net.refused.lock().unwrap().is_empty());
}

/// A Close ends the session even when the client never got it: a resume that comes while the
/// session is closing (its old socket frozen, not yet found dead) is not welcomed back into a
/// session its handler has closed, nor refused as lost (4410): it gets what it missed, then
/// the Close. (Before issue 23 it got 4410.)
#[tokio::test(start_paused = true)]
async fn a_resume_does_not_undo_a_close() {
    let net = server(Resume::new());
    let mut old = net.connect().await;
    let w = welcome(&say(&mut old, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    assert_eq!(say(&mut old, "c0").await, "s:c0");
    // The link freezes right behind the kick (a masked 4-byte text: 10 bytes), so the
    // handler's Close 4001 never reaches the client.
    let link = net.latest();
    let passed = link.passed.load(Ordering::SeqCst);
    link.freeze_after.store(passed + 10, Ordering::SeqCst);
    old.send(Message::text("kick")).await.unwrap();
    tokio::time::sleep(ms(100)).await;
    assert!(link.frozen.load(Ordering::SeqCst), "frozen behind the kick");
    assert_eq!(net.sessions.len(), 1, "a closing session is still held");

    // The client resumes (it had received nothing of ours since `s:c0`, so it says 0): it
    // gets its welcome, `s:c0` again, then the Close 4001 it missed, which ends the session.
    let mut new = net.connect().await;
    let hello = format!("\u{10}hello 1 resume {SID} {} 0", w[2]);
    let again = welcome(&say(&mut new, &hello).await);
    assert_eq!(again[3], "2", "the server had received c0 and the kick");
    assert_eq!(answer(&mut new).await, "s:c0", "replayed");
    assert_eq!(
        answer(&mut new).await,
        "close 4001",
        "the kick, not a refusal"
    );
    // The client completes the closing handshake (its library answers the Close as it reads
    // on), and the session ends.
    let rest = timeout(ms(100), async { while new.next().await.is_some() {} }).await;
    assert!(rest.is_ok(), "the server ends the connection");
    tokio::time::sleep(ms(10)).await;
    assert_eq!(net.got(), ["c0"]);
    assert_eq!(net.calls.load(Ordering::SeqCst), 1);
    assert!(net.sessions.is_empty(), "ended with the closing handshake");
}

/// A resume that claims more of the server's messages than it sent is not adopted, and the
/// parked session is still counted once: the count of parked sessions, which bounds them all,
/// neither drops while it waits nor wraps around when its window passes.
#[tokio::test(start_paused = true)]
async fn a_resume_claiming_too_much_leaves_the_parked_count_right() {
    let net = server(Resume::new().window(ms(5000)));
    let mut old = net.connect().await;
    let w = welcome(&say(&mut old, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    assert_eq!(say(&mut old, "c0").await, "s:c0");
    net.latest().cut();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(net.sessions.parked(), 1);

    let mut new = net.connect().await;
    let hello = format!("\u{10}hello 1 resume {SID} {} 99", w[2]);
    assert_eq!(
        say(&mut new, &hello).await,
        "end",
        "it claims 99 of 1: dropped"
    );
    assert_eq!(net.sessions.parked(), 1, "still parked, counted once");
    tokio::time::sleep(ms(6000)).await;
    let ended = net.ended.lock().unwrap().clone();
    assert!(
        ended
            .as_deref()
            .is_some_and(|e| e.starts_with("lost WindowPassed")),
        "{ended:?}"
    );
    assert_eq!(net.sessions.parked(), 0);
    assert!(net.sessions.is_empty());
}

/// A handshake that never comes: 1008 after the handshake timeout.
#[tokio::test(start_paused = true)]
async fn a_silent_socket_is_refused_after_the_handshake_timeout() {
    let net = server(Resume::new().handshake_timeout(ms(2000)));
    let mut ws = net.connect().await;
    let start = Instant::now();
    assert_eq!(answer(&mut ws).await, "close 1008");
    assert_eq!(start.elapsed(), ms(2000));
}

/// Data that looks like a session message or a heartbeat arrives as itself, both ways.
#[tokio::test(start_paused = true)]
async fn lookalikes_arrive_unchanged() {
    let net = Net::new(
        layer()
            .protocol(ws_heartbeat::protocol::Json::new())
            .resume(Resume::new()),
    );
    let mut client = Reconnect::builder({
        let net = net.clone();
        move || {
            let net = net.clone();
            async move { Ok::<_, io::Error>(net.connect().await) }
        }
    })
    .heartbeat(layer().protocol(ws_heartbeat::protocol::Json::new()))
    .resume(Resume::new())
    .build();
    let tricky = [
        "\u{10}ack 5",
        "\u{10}\u{10}x",
        "\u{10}",
        r#"{"type":"ping","seq":1}"#,
        r#"{"type":"pong"}"#,
        "plain",
    ];
    for t in tricky {
        client.send(Message::text(t)).await.unwrap();
    }
    client
        .send(Message::binary(vec![0x10, 1, 2]))
        .await
        .unwrap();
    let got = read_n(&mut client, 7).await;
    let mut want: Vec<String> = tricky.iter().map(|t| format!("s:{t}")).collect();
    want.push("bin:b\"\\x10\\x01\\x02\"".into());
    assert_eq!(got, want);
    let mut sent: Vec<String> = tricky.iter().map(|t| t.to_string()).collect();
    sent.push("bin:b\"\\x10\\x01\\x02\"".into());
    assert_eq!(net.got(), sent);
}

/// At most `max_parked` sessions wait: beyond, a session whose socket goes down ends at
/// once.
#[tokio::test(start_paused = true)]
async fn beyond_max_parked_a_session_ends_at_once() {
    let net = server(Resume::new().max_parked(1));
    let mut a = net.connect().await;
    welcome(&say(&mut a, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    let link_a = net.latest();
    let mut b = net.connect().await;
    welcome(
        &say(
            &mut b,
            &format!("\u{10}hello 1 new {} {SECRET} 1000", "3".repeat(32)),
        )
        .await,
    );
    let link_b = net.latest();
    link_a.cut();
    tokio::time::sleep(ms(10)).await;
    assert_eq!(net.sessions.parked(), 1);
    link_b.cut();
    tokio::time::sleep(ms(10)).await;
    assert_eq!(net.sessions.parked(), 1);
    assert_eq!(net.sessions.len(), 1, "the second ended");
    assert_eq!(
        net.ended.lock().unwrap().as_deref(),
        Some("lost TooManyParked 0")
    );
}

/// Waits up to `within` for the handler to have received `want`.
async fn handler_gets(net: &Net, want: &[&str], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    while net.got() != want && Instant::now() < deadline {
        tokio::time::sleep(ms(10)).await;
    }
    net.got()
}

/// A split handler whose writer waits for an acknowledgement reads on its reader's behalf:
/// what it reads must wake the reader. (The writer used to poll the socket with its own
/// waker, which took the reader's place there, and keep the message for a reader that
/// nobody woke.)
///
/// Timeline: the client, by hand, never acknowledges; the handler's writer fills the
/// 100-byte buffer with ten 2-byte messages (10 bytes each, with the 8 of bookkeeping) at
/// once and waits; at 100 ms the client sends "c0", which the handler reads within
/// milliseconds (1 s allowed).
#[tokio::test(start_paused = true)]
async fn a_split_handlers_writer_reading_ahead_wakes_its_reader() {
    let net = Net::split(layer().resume(Resume::new().buffer(100)), 20);
    let mut ws = net.connect().await;
    welcome(&say(&mut ws, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    for i in 0..10 {
        assert_eq!(answer(&mut ws).await, format!("s{i}"));
    }
    tokio::time::sleep(ms(100)).await;
    ws.send(Message::text("c0")).await.unwrap();
    assert_eq!(handler_gets(&net, &["c0"], ms(1000)).await, ["c0"]);
}

/// A split handler's writer that resumes the session (it adopts the new socket) must wake
/// the reader, whose waker was with the old socket. (Only the last half to wait used to be
/// woken, and only for the mailbox.)
///
/// Timeline: the writer fills the buffer and waits; the link is cut; the writer finds the
/// socket gone and parks the session; the client resumes having received all ten, so the
/// writer has room, sends its last five and ends; then the client sends "c0", which only
/// the reader can read.
#[tokio::test(start_paused = true)]
async fn a_resume_adopted_by_a_split_handlers_writer_wakes_its_reader() {
    let net = Net::split(layer().resume(Resume::new().buffer(100)), 15);
    let mut ws = net.connect().await;
    let w = welcome(&say(&mut ws, &format!("\u{10}hello 1 new {SID} {SECRET} 1000")).await);
    for i in 0..10 {
        assert_eq!(answer(&mut ws).await, format!("s{i}"));
    }
    tokio::time::sleep(ms(100)).await;
    net.latest().cut();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(net.sessions.parked(), 1);

    let mut ws = net.connect().await;
    welcome(&say(&mut ws, &format!("\u{10}hello 1 resume {SID} {} 10", w[2])).await);
    for i in 10..15 {
        assert_eq!(answer(&mut ws).await, format!("s{i}"));
    }
    tokio::time::sleep(ms(100)).await;
    ws.send(Message::text("c0")).await.unwrap();
    assert_eq!(handler_gets(&net, &["c0"], ms(1000)).await, ["c0"]);
}

/// A client whose connections go to `server`, by hand (no `Sessions`), split in two tasks:
/// the writer sends `c0..c{sends-1}`, padded with `x` to `size` bytes, then ends; the reader records
/// every text into the returned list.
fn split_client(
    resume: Resume,
    sends: usize,
    size: usize,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<Ws>,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let (server_tx, server_rx) = tokio::sync::mpsc::unbounded_channel();
    let client = Reconnect::builder(move || {
        let server_tx = server_tx.clone();
        async move {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let server = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
            let _ = server_tx.send(server);
            Ok::<_, io::Error>(WebSocketStream::from_raw_socket(a, Role::Client, None).await)
        }
    })
    .heartbeat(layer())
    .resume(resume)
    .build();
    let (mut sink, mut stream) = client.split();
    let writer = tokio::spawn(async move {
        for i in 0..sends {
            let mut text = format!("c{i}");
            while text.len() < size {
                text.push('x');
            }
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(text) = msg {
                seen.lock().unwrap().push(text.to_string());
            }
        }
    });
    (server_rx, got, writer)
}

/// The server's side of the handshake, by hand: the client's `hello new`, then a `welcome`
/// announcing `buffer`.
async fn welcome_by_hand(server: &mut Ws, buffer: usize) {
    let hello = answer(server).await;
    assert!(hello.starts_with("\u{10}hello 1 new "), "{hello:?}");
    let token = "4".repeat(32);
    server
        .send(Message::text(format!(
            "\u{10}welcome 1 {token} 0 {buffer} 30000"
        )))
        .await
        .unwrap();
}

/// A split client whose writer waits for an acknowledgement reads on its reader's behalf:
/// what it reads must wake the reader. (The writer used to read with its own waker, which
/// took the reader's place in the connection, and keep the message for a reader that
/// nobody woke.)
///
/// Timeline: the server, by hand, acknowledges only what it says here. The client's writer
/// fills its 100-byte buffer with ten 2-byte messages (10 bytes each, with the 8 of
/// bookkeeping) and waits. The server sends "s0", which the reader reads, then "ack 1":
/// the reader reads it and wakes the writer, which sends "c10" and, the buffer full again,
/// reads on with its own waker. At 100 ms the server sends "s1", which the client's reader
/// gets within milliseconds (1 s allowed).
#[tokio::test(start_paused = true)]
async fn a_split_clients_writer_reading_ahead_wakes_its_reader() {
    let (mut servers, got, _writer) = split_client(Resume::new().buffer(100), 20, 2);
    let mut server = servers.recv().await.unwrap();
    welcome_by_hand(&mut server, 1000).await;
    for i in 0..10 {
        assert_eq!(answer(&mut server).await, format!("c{i}"));
    }
    let got_within = |n: usize| {
        let got = got.clone();
        async move {
            let deadline = Instant::now() + ms(1000);
            while got.lock().unwrap().len() < n && Instant::now() < deadline {
                tokio::time::sleep(ms(10)).await;
            }
            got.lock().unwrap().clone()
        }
    };
    server.send(Message::text("s0")).await.unwrap();
    assert_eq!(got_within(1).await, ["s0"]);
    server.send(Message::text("\u{10}ack 1")).await.unwrap();
    assert_eq!(answer(&mut server).await, "c10");
    tokio::time::sleep(ms(100)).await;
    server.send(Message::text("s1")).await.unwrap();
    assert_eq!(got_within(2).await, ["s0", "s1"]);
}

/// A split client's reader that hands the writer's messages to the connection must wake
/// the writer when they are flushed. (The reader used to poll the connection's sink with
/// its own waker, which took the writer's place there: the writer's `send` then waited
/// until the next reconnect.)
///
/// Timeline: the server, by hand, reads nothing until 100 ms, so the 64 KiB pipe fills
/// with the writer's 16 KiB messages; then it reads all forty; the writer's last `send`
/// completes within milliseconds of the last read (1 s allowed).
#[tokio::test(start_paused = true)]
async fn a_split_clients_reader_flushing_for_the_writer_wakes_it() {
    // A buffer for all forty: the server here never acknowledges.
    let (mut servers, _got, writer) = split_client(Resume::new().buffer(1 << 20), 40, 16 * 1024);
    let mut server = servers.recv().await.unwrap();
    welcome_by_hand(&mut server, 1 << 20).await;
    tokio::time::sleep(ms(100)).await;
    for i in 0..40 {
        let text = timeout(ms(1000), answer(&mut server))
            .await
            .unwrap_or_else(|_| panic!("c{i} within 1 s"));
        assert!(text.starts_with(&format!("c{i}x")), "{i}");
    }
    timeout(ms(1000), writer)
        .await
        .expect("the writer's sends complete")
        .unwrap();
}

#[test]
fn accept_errors_name_their_close_codes() {
    let e: AcceptError<io::Error> = AcceptError::SessionLost;
    assert_eq!(e.close_code(), Some(4410));
    assert_eq!(
        e.to_string(),
        "session handshake refused: session lost (closed with 4410)"
    );
    let _ = Event::SessionLost;
}

// --- the service form and the axum drop-in ------------------------------------------------

/// The service form: the handler is called once per session, with the session; a call
/// whose socket resumes the session, or is refused, completes at once with `Ok(())`.
#[tokio::test(start_paused = true)]
async fn the_service_form_calls_the_handler_once_per_session() {
    use tower::{ServiceBuilder, ServiceExt};
    type WsError = tokio_tungstenite::tungstenite::Error;

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let service = ServiceBuilder::new()
        .layer(layer().resume(Resume::new()))
        .service_fn(move |mut ws: Session<Ws>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                while let Some(Ok(Message::Text(t))) = ws.next().await {
                    ws.send(Message::text(format!("s:{t}"))).await?;
                }
                Ok::<_, WsError>(())
            }
        });
    let (server, mut first) = support::bare_pair().await;
    let call = tokio::spawn(service.clone().oneshot(server));
    let w = welcome(
        &say(
            &mut first,
            &format!("\u{10}hello 1 new {SID} {SECRET} 1000"),
        )
        .await,
    );
    assert_eq!(say(&mut first, "c0").await, "s:c0");

    let (server, mut second) = support::bare_pair().await;
    let resumed = tokio::spawn(service.clone().oneshot(server));
    welcome(
        &say(
            &mut second,
            &format!("\u{10}hello 1 resume {SID} {} 1", w[2]),
        )
        .await,
    );
    resumed
        .await
        .unwrap()
        .expect("the resuming call completes with Ok(())");
    assert_eq!(
        say(&mut second, "c1").await,
        "s:c1",
        "the first call's handler answers"
    );

    let (server, mut plain) = support::bare_pair().await;
    let refused = tokio::spawn(service.clone().oneshot(server));
    assert_eq!(say(&mut plain, "hi").await, "close 1008");
    refused
        .await
        .unwrap()
        .expect("a refused call completes with Ok(())");

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!call.is_finished(), "the session's handler still runs");
}

/// The axum drop-in with `resume` in the layer: the callback runs once per session, over
/// real sockets on 127.0.0.1.
#[tokio::test]
async fn the_axum_drop_in_runs_the_callback_once_per_session() {
    use axum::{Extension, Router, routing::get};
    use ws_heartbeat::axum::{WebSocket, WebSocketUpgrade};

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade| {
                let counted = counted.clone();
                async move {
                    ws.map(|ws| ws.protocols(["chat"])).on_upgrade(
                        move |mut socket: WebSocket| async move {
                            counted.fetch_add(1, Ordering::SeqCst);
                            // The handler's `protocol()` works as on axum's own socket.
                            let chat = socket
                                .protocol()
                                .map(|p| p.to_str().unwrap_or("").to_owned());
                            assert_eq!(chat.as_deref(), Some("chat"));
                            while let Some(Ok(axum::extract::ws::Message::Text(t))) =
                                socket.recv().await
                            {
                                let answer = format!("s:{}", t.as_str());
                                if socket
                                    .send(axum::extract::ws::Message::Text(answer.into()))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        },
                    )
                }
            }),
        )
        .layer(Extension(layer().resume(Resume::new())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "chat".parse().unwrap());
    let (mut first, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let w = welcome(
        &say(
            &mut first,
            &format!("\u{10}hello 1 new {SID} {SECRET} 1000"),
        )
        .await,
    );
    assert_eq!(say(&mut first, "c0").await, "s:c0");
    drop(first); // the socket goes down without a Close: the session parks
    let (mut second, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let w2 = welcome(
        &say(
            &mut second,
            &format!("\u{10}hello 1 resume {SID} {} 1", w[2]),
        )
        .await,
    );
    assert_eq!(w2[3], "1");
    assert_eq!(say(&mut second, "c1").await, "s:c1");
    let (mut plain, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(say(&mut plain, "hi").await, "close 1008");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A session's `handle()` shows its socket's heartbeat (pings, round trips), not one that
/// nobody runs.
///
/// Timeline (1 s interval, no jitter): 0 s: the session starts; pings at 1, 2 and 3 s,
/// answered by the client's library.
#[tokio::test(start_paused = true)]
async fn a_sessions_handle_shows_its_sockets_heartbeat() {
    let sessions = layer().resume(Resume::new());
    let (server, mut client) = support::bare_pair().await;
    let client_task = tokio::spawn(async move {
        let w = say(
            &mut client,
            &format!("\u{10}hello 1 new {SID} {SECRET} 1000"),
        )
        .await;
        welcome(&w);
        // Reading answers the server's pings.
        answer(&mut client).await
    });
    let mut session = sessions
        .accept(server)
        .await
        .unwrap()
        .expect("a new session");
    let handle = session.handle();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = session.next().await {} });
    tokio::time::sleep(ms(3500)).await;
    let stats = handle.stats();
    assert_eq!(stats.pings_sent, 3);
    assert_eq!(stats.pongs_received, 3);
    reader.abort();
    client_task.abort();
}

/// The acknowledgement rule (PROTOCOL.md, section 2) keeps a steady sender from ever
/// waiting on a healthy peer: acknowledgements come at once after every quarter of the
/// sender's buffer, not only at the heartbeat's ticks.
///
/// Timeline: a 1 000-byte buffer; 50-byte messages (58 with their header), one per ms,
/// for 1 s, while the server reads and echoes them. The server acknowledges every 250
/// bytes (5 messages), at once: no send takes any time (the clock is paused and the link
/// in memory), and the 1 000 sends take exactly 1 000 ms. With the ticks alone (1 s) the
/// buffer would fill after 18 messages and each send after it would wait for a tick.
#[tokio::test(start_paused = true)]
async fn a_steady_sender_never_waits_on_a_healthy_peer() {
    let net = server(Resume::new());
    let client = net.client(Resume::new().buffer(1000));
    let (mut writer, mut reader) = client.split();
    let echoes = tokio::spawn(async move { read_n_split(&mut reader, 1000).await });
    let start = Instant::now();
    let mut waited = Duration::ZERO;
    for i in 0..1000 {
        let before = Instant::now();
        writer
            .send(Message::text(format!("{i:050}")))
            .await
            .unwrap();
        waited += before.elapsed();
        tokio::time::sleep(ms(1)).await;
    }
    assert_eq!(
        waited,
        Duration::ZERO,
        "the sender waited {waited:?} in all"
    );
    assert_eq!(start.elapsed(), ms(1000));
    let echoes = timeout(Duration::from_secs(10), echoes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoes.len(), 1000);
    assert_eq!(net.got().len(), 1000);
}

async fn read_n_split(
    reader: &mut futures_util::stream::SplitStream<Reconnect<Ws>>,
    n: usize,
) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match reader.next().await {
            Some(Ok(Message::Text(t))) => got.push(t.to_string()),
            Some(Ok(_)) => {}
            other => panic!("the client ended after {} of {n}: {other:?}", got.len()),
        }
    }
    got
}

/// A session is a `FusedStream` that knows when it has ended: once the handler has read
/// its end, `is_terminated` says so (a `select!` loop stops polling it).
///
/// Timeline: 0 s: the session starts; the client closes at once; the handler reads the
/// Close, then the end.
#[tokio::test(start_paused = true)]
async fn an_ended_session_is_terminated() {
    use futures_util::stream::FusedStream;
    let sessions = layer().resume(Resume::new());
    let (server, mut client) = support::bare_pair().await;
    let client_task = tokio::spawn(async move {
        welcome(
            &say(
                &mut client,
                &format!("\u{10}hello 1 new {SID} {SECRET} 1000"),
            )
            .await,
        );
        client.close(None).await.unwrap();
        while client.next().await.is_some() {}
    });
    let mut session = sessions.accept(server).await.unwrap().expect("new");
    assert!(!session.is_terminated());
    assert!(matches!(session.next().await, Some(Ok(Message::Close(_)))));
    assert!(!session.is_terminated(), "the end is still to be read");
    assert!(session.next().await.is_none());
    assert!(session.is_terminated());
    client_task.await.unwrap();
}

/// A session's `handle()` follows it from socket to socket: after a resume it shows the new
/// socket's heartbeat, and an interval set through it holds on the sockets that follow.
///
/// Timeline (1 s interval, no jitter): 0 s: the session starts on socket one, whose pings at
/// 1 and 2 s are answered; 2.5 s: socket one drops, socket two resumes at once and is
/// adopted (its pings at 3.5, 4.5, 5.5 s); 6 s: the handle sets 500 ms; 6.5 s: socket two
/// drops, socket three resumes; from then on it pings every 500 ms.
#[tokio::test(start_paused = true)]
async fn a_sessions_handle_follows_its_resumes() {
    let sessions = layer().resume(Resume::new());
    let start = Instant::now();
    // A client socket that says `hello`, then reads (answering pings) until `until`; returns
    // the token of its welcome.
    let socket = |hello: String, until: Instant| {
        let sessions = sessions.clone();
        async move {
            let (server, mut client) = support::bare_pair().await;
            let task = tokio::spawn(async move {
                let token = welcome(&say(&mut client, &hello).await)[2].clone();
                let _ = timeout(until - Instant::now(), answer(&mut client)).await;
                token
            });
            (sessions.accept(server).await.unwrap(), task)
        }
    };
    let hello = format!("\u{10}hello 1 new {SID} {SECRET} 1000");
    let (session, first) = socket(hello, start + ms(2500)).await;
    let mut session = session.expect("a new session");
    let handle = session.handle();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = session.next().await {} });
    let token = first.await.unwrap(); // socket one dropped at 2.5 s
    assert_eq!(handle.stats().pings_sent, 2);

    let hello = format!("\u{10}hello 1 resume {SID} {token} 0");
    let (resumed, second) = socket(hello, start + ms(6500)).await;
    assert!(resumed.is_none(), "handed to the session");
    tokio::time::sleep_until(start + ms(6000)).await;
    let stats = handle.stats();
    assert_eq!(
        (stats.pings_sent, stats.pongs_received),
        (3, 3),
        "socket two's"
    );
    handle.set_interval(ms(500));
    let token = second.await.unwrap();

    let hello = format!("\u{10}hello 1 resume {SID} {token} 0");
    let (resumed, third) = socket(hello, start + ms(60_000)).await;
    assert!(resumed.is_none());
    tokio::time::sleep_until(start + ms(8600)).await;
    assert_eq!(handle.interval(), ms(500));
    assert_eq!(handle.stats().pings_sent, 4, "socket three's, every 500 ms");
    reader.abort();
    third.abort();
}
