//! The sessions' memory budget (`Resume::memory`) on tokio's paused clock, over in-memory
//! pipes: a session whose client never acknowledges waits at its share while one whose
//! client does goes on; a parked session that would pass the budget ends; a new session
//! beyond it is refused with 1013, and the Rust client comes back after its backoff.
//! `tests/resume_hostile.rs` holds the same over TCP with 2 000 clients.
//!
//! The figures: a session whose kept messages reach its room asks for room up to 8 KiB
//! beyond them, granted only if the session then holds no more than what stays free; each
//! session counts 1 KiB (`Resume::PER_SESSION`) besides its room; a 1 KiB message weighs
//! 1 032 bytes.

mod support;

use std::io;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, protocol::Role};
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Event, Reason as Why, Reconnect};
use ws_heartbeat::resume::{AcceptError, Reason, Resume, Session, SessionLost, Sessions};

use support::{Ws, ms};

const KIB: usize = 1024;
const PER: usize = Resume::PER_SESSION;
const STEP: usize = 8 * KIB;

fn sessions(memory: usize) -> Sessions {
    HeartbeatLayer::new()
        .interval(ms(1000))
        .max_missed(2)
        .jitter(false)
        .resume(Resume::new().memory(memory))
}

/// What a server's handler did: messages sent, and how it ended (`None` while it runs).
#[derive(Default)]
struct Handler {
    sent: usize,
    ended: Option<String>,
}

/// Accepts `server` and, for a new session, sends 1 KiB messages numbered from 0 until the
/// session fails; refusals go to `refused`.
fn serve(
    sessions: &Sessions,
    server: Ws,
    refused: Option<mpsc::UnboundedSender<Option<u16>>>,
) -> Arc<Mutex<Handler>> {
    let handler = Arc::new(Mutex::new(Handler::default()));
    let (sessions, record) = (sessions.clone(), handler.clone());
    tokio::spawn(async move {
        match sessions.accept(server).await {
            Ok(Some(session)) => {
                let ended = flood(session, &record).await;
                record.lock().unwrap().ended = Some(ended);
            }
            Ok(None) => {}
            Err(err) => {
                if let Some(refused) = refused {
                    let _ = refused.send(err.close_code());
                }
            }
        }
    });
    handler
}

async fn flood(mut session: Session<Ws>, record: &Mutex<Handler>) -> String {
    for i in 0.. {
        let text = format!("{i:>1024}");
        if let Err(err) = session.send(Message::text(text)).await {
            return match SessionLost::find(&err) {
                Some(lost) => format!("lost {:?} {}", lost.reason(), lost.unconfirmed()),
                None => format!("error {err}"),
            };
        }
        record.lock().unwrap().sent += 1;
    }
    unreachable!()
}

async fn pair() -> (Ws, Ws) {
    support::bare_pair().await
}

/// A hand-written client: `hello new` with a fresh id, then the welcome.
async fn hello(client: &mut Ws, n: u8) {
    let (sid, secret) = (format!("{n:032x}"), format!("{:032x}", u128::from(n) << 64));
    let hello = format!("\u{10}hello 1 new {sid} {secret} {}", 100 * KIB);
    client.send(Message::text(hello)).await.unwrap();
    let welcome = next_text(client).await;
    assert!(welcome.starts_with("\u{10}welcome 1 "), "{welcome:?}");
}

async fn next_text(client: &mut Ws) -> String {
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

/// Reads forever and never acknowledges (tungstenite answers the pings).
fn never_acknowledge(mut client: Ws) {
    tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
}

/// Budget 64 KiB. Timeline: t=0 a hog's session starts; its client reads and never
/// acknowledges. Its room grows from 0 to 8 192, then at 8 messages (8 256 bytes kept) to
/// 16 448, at 16 (16 512) to 24 704; at 24 (24 768) it would grow to 32 960, holding
/// 33 984 with 31 552 left free: refused. Its handler has sent 24 messages and waits. t=1 s a second session starts, whose client acknowledges
/// every message: it gets 2 000 in order, exactly once, while the hog stays at 24. The
/// total never passes 64 KiB.
#[tokio::test(start_paused = true)]
async fn the_session_that_holds_most_waits_while_one_that_acknowledges_goes_on() {
    let sessions = sessions(64 * KIB);
    let (server, mut hog) = pair().await;
    let hogging = serve(&sessions, server, None);
    hello(&mut hog, 1).await;
    never_acknowledge(hog);
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(hogging.lock().unwrap().sent, 24);
    assert_eq!(sessions.memory_used(), PER + 16 * 1032 + STEP);

    let (server, mut good) = pair().await;
    let serving = serve(&sessions, server, None);
    hello(&mut good, 2).await;
    for i in 0..2000usize {
        let text = next_text(&mut good).await;
        assert_eq!(text.trim_start(), i.to_string());
        good.send(Message::text(format!("\u{10}ack {}", i + 1)))
            .await
            .unwrap();
        assert!(sessions.memory_used() <= 64 * KIB);
    }
    tokio::time::sleep(ms(10_000)).await;
    let hogging = hogging.lock().unwrap();
    assert_eq!((hogging.sent, hogging.ended.as_deref()), (24, None));
    assert!(serving.lock().unwrap().sent >= 2000);
}

/// Budget 64 KiB. Timeline: t=0 a session starts whose client never acknowledges: 24
/// messages, then its handler waits (as above). t=1 s its client goes: the session parks,
/// and its handler's next message would need room the budget does not give: the session
/// ends at once with `OverBudget`, its 24 messages unconfirmed, and its share comes back.
#[tokio::test(start_paused = true)]
async fn a_parked_session_that_would_pass_the_budget_ends() {
    let sessions = sessions(64 * KIB);
    let (server, mut client) = pair().await;
    let handler = serve(&sessions, server, None);
    hello(&mut client, 1).await;
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(handler.lock().unwrap().sent, 24);
    drop(client);
    tokio::time::sleep(ms(1)).await;
    let handler = handler.lock().unwrap();
    assert_eq!(handler.ended.as_deref(), Some("lost OverBudget 24"));
    assert_eq!((sessions.memory_used(), sessions.len()), (0, 0));
}

/// A budget with room for one session and a step (a newcomer needs its 1 KiB and a step
/// with as much again left free: 3 KiB + 16 KiB, one byte short). Timeline: t=0 the first
/// session starts. t=0 the Rust client's hello is refused with 1013; it tries again after
/// its backoff (10 ms, then 20, 40, 80, 100 at most, halved and more by the dice) and is
/// refused each time. t=1 s the first session's client closes: its share comes back, and
/// the client's next attempt starts its session and sends through it.
#[tokio::test(start_paused = true)]
async fn a_new_session_beyond_the_budget_is_refused_with_1013_and_comes_back_later() {
    let sessions = sessions(3 * PER + 2 * STEP - 1);
    let (server, mut first) = pair().await;
    serve(&sessions, server, None);
    hello(&mut first, 1).await;

    let (refused_tx, mut refused) = mpsc::unbounded_channel();
    let events = Arc::new(Mutex::new(Vec::new()));
    let connect = {
        let sessions = sessions.clone();
        move || {
            let (sessions, refused) = (sessions.clone(), refused_tx.clone());
            async move {
                let (a, b) = tokio::io::duplex(64 * KIB);
                let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
                serve(&sessions, server, Some(refused));
                Ok::<_, io::Error>(WebSocketStream::from_raw_socket(b, Role::Client, None).await)
            }
        }
    };
    let seen = events.clone();
    let mut client = Reconnect::builder(connect)
        .heartbeat(HeartbeatLayer::new().interval(ms(1000)).jitter(false))
        .backoff(Backoff::new().initial(ms(10)).max_delay(ms(100)))
        .resume(Resume::new())
        .on_event(move |event| seen.lock().unwrap().push(event.clone()))
        .build();
    let reading = tokio::spawn(async move {
        match client.next().await {
            Some(Ok(Message::Text(text))) => text.to_string(),
            other => panic!("{other:?}"),
        }
    });

    tokio::time::sleep(ms(1000)).await;
    let busy = |event: &Event| {
        matches!(
            event,
            Event::Reconnecting {
                after: Why::ServerClosed { code: 1013, .. },
                ..
            }
        )
    };
    let refusals = events.lock().unwrap().iter().filter(|e| busy(e)).count();
    assert!(
        refusals >= 10,
        "{refusals} refusals in 1 s of backoff up to 100 ms"
    );
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    );
    let mut codes = Vec::new();
    while let Ok(code) = refused.try_recv() {
        codes.push(code);
    }
    assert_eq!(codes, vec![Some(1013); refusals]);

    // The first session ends: room again.
    first.close(None).await.unwrap();
    tokio::time::sleep(ms(200)).await;
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    );
    assert_eq!(
        reading.await.unwrap().trim_start(),
        "0",
        "the new session's handler sends through it"
    );
    let _ = AcceptError::<io::Error>::Busy;
    let _ = Reason::OverBudget;
}

/// What an idle session holds: after a burst its client acknowledged, the session keeps the
/// room its storage took (giving it back at each acknowledgement, to take it again with the
/// next message, would allocate per message) until a tick finds that it sent nothing for a
/// whole interval. Timeline: t=0 the handler sends 20 messages and then reads; the client
/// reads them and acknowledges all 20: the session holds its storage (20 × 1 024 bytes and
/// growth) and at most a step more. t=1 s a tick: the session sent since the last, so it
/// keeps a step of room; the storage the burst left, more than twice what it keeps
/// (nothing), goes back. t=2 s a tick after an idle interval: 1 KiB, its `PER_SESSION`, and
/// nothing else.
#[tokio::test(start_paused = true)]
async fn an_idle_session_holds_nothing_after_an_idle_interval() {
    let sessions = sessions(64 << 20);
    let (server, mut client) = pair().await;
    let accepting = sessions.clone();
    tokio::spawn(async move {
        let mut session = accepting.accept(server).await.unwrap().unwrap();
        for i in 0..20 {
            session
                .send(Message::text(format!("{i:>1024}")))
                .await
                .unwrap();
        }
        while let Some(Ok(_)) = session.next().await {}
    });
    hello(&mut client, 1).await;
    for _ in 0..20 {
        next_text(&mut client).await;
    }
    client.send(Message::text("\u{10}ack 20")).await.unwrap();
    tokio::time::sleep(ms(10)).await;
    let held = sessions.memory_used();
    assert!(
        held > PER && held <= PER + 20 * KIB + 2 * STEP,
        "{held} held after the burst"
    );
    // The client goes on reading, and so answers the tick's ping.
    tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(
        sessions.memory_used(),
        PER + STEP,
        "busy since the last tick"
    );
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(sessions.memory_used(), PER);
}
