//! The behaviours every backend must show, each a test generic over the [`Backend`]. Interval
//! 100 ms, 3 missed, jitter on (the default): a peer silent since `t0` is dead in
//! `(t0 + 300 ms, t0 + 400 ms]`. Real sockets and real time: [`SLACK`] is allowed on upper
//! bounds for scheduling; lower bounds are exact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::protocol::{BinaryCommand, Json, Text};

use crate::backend::Backend;
use crate::peer::{self, CLOSE, Frame, PING, RawPeer};
use crate::program::{Msg, Outcome, Program, Report, SEND_EVERY};

pub const INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_MISSED: u32 = 3;
/// A silent peer is dead strictly after this ...
const LOWER: Duration = Duration::from_millis(300);
/// ... and no later than this, after the handshake.
const UPPER: Duration = Duration::from_millis(400);
/// Scheduling delay allowed on an upper bound in real time (the tests of a run share two
/// cores, and this suite's traffic test keeps one busy).
const SLACK: Duration = Duration::from_millis(100);

fn layer() -> HeartbeatLayer {
    HeartbeatLayer::new()
        .interval(INTERVAL)
        .max_missed(MAX_MISSED)
}

/// A raw peer that shakes hands, then only reads the server's frames until its Close.
struct Silent {
    peer: RawPeer,
    frames: Vec<Frame>,
    report: Report,
}

async fn silent<B: Backend>(program: Program) -> Silent {
    let mut server = B::serve(layer(), program).await;
    let mut peer = RawPeer::connect(&server.url).await;
    let frames = peer.frames_until_close(Duration::from_secs(3)).await;
    let report = server.report().await;
    Silent {
        peer,
        frames,
        report,
    }
}

/// The death of a silent peer within its bounds, as the handler saw it (at `ended`) and on
/// the wire (the Close frame's arrival); `late` is what the program may add to the upper
/// bound. Prints the detection times, from the handshake's answer.
fn assert_dead_in_bound(name: &str, silent: &Silent, late: Duration) {
    let Silent {
        peer,
        frames,
        report,
    } = silent;
    let dead = report.outcome.dead();
    assert_eq!(dead.missed(), MAX_MISSED, "{name}");
    let close = frames.last().filter(|f| f.opcode == CLOSE);
    let close = close.unwrap_or_else(|| panic!("{name}: no Close frame in {frames:?}"));
    // The heartbeat was made after the connection was opened: exact.
    for (what, at) in [
        ("the handler's error", report.ended),
        ("the Close frame", close.at),
    ] {
        let after = at - peer.opened;
        assert!(after > LOWER, "{name}: {what} {after:?} after opening");
    }
    // ... and before the handshake's answer came (axum's, in `on_upgrade`, just after).
    for (what, at) in [
        ("the handler's error", report.ended),
        ("the Close frame", close.at),
    ] {
        let after = at - peer.connected;
        assert!(
            after <= UPPER + late + SLACK,
            "{name}: {what} {after:?} after the handshake"
        );
    }
    let lasted = report.ended - report.started;
    assert!(
        lasted <= UPPER + late + SLACK,
        "{name}: the handler lasted {lasted:?}"
    );
    eprintln!(
        "{name}: {:?}: silent peer dead after {:?}, Close frame read after {:?} (bound {UPPER:?}; \
         silent for at least {:?})",
        report.program,
        report.ended - peer.connected,
        close.at - peer.connected,
        dead.silent_for()
    );
}

pub async fn a_silent_peer_is_dead_within_the_bound<B: Backend>(name: &str) {
    let silent = silent::<B>(Program::Record).await;
    assert_dead_in_bound(name, &silent, Duration::ZERO);
    // Exactly `max_missed` unanswered pings went out first; the handler saw nothing.
    let pings = silent.frames.iter().filter(|f| f.opcode == PING).count();
    assert_eq!(pings, MAX_MISSED as usize, "{name}: {:?}", silent.frames);
    assert_eq!(silent.report.seen, [], "{name}");
}

pub async fn the_close_frame_after_death_is_1011<B: Backend>(name: &str) {
    let Silent { frames, .. } = silent::<B>(Program::Record).await;
    let (close, pings) = frames.split_last().expect("frames");
    // Three pings, consecutive 8-byte sequence numbers, then the Close, and nothing else.
    let seqs: Vec<u64> = pings
        .iter()
        .map(|f| {
            assert_eq!(f.opcode, PING, "{name}: {frames:?}");
            u64::from_be_bytes(f.payload.as_slice().try_into().expect("8 bytes"))
        })
        .collect();
    assert_eq!(seqs.len(), MAX_MISSED as usize, "{name}: {frames:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "{name}: {seqs:?}"
    );
    let mut expected = 1011u16.to_be_bytes().to_vec();
    expected.extend(b"keepalive timeout");
    assert_eq!((close.opcode, &close.payload), (CLOSE, &expected), "{name}");
}

pub async fn an_answering_peer_is_never_dead_and_its_rtt_is_measured<B: Backend>(name: &str) {
    let mut server = B::serve(layer(), Program::Echo).await;
    let mut client = peer::connect(&server.url).await;
    let started = Instant::now();
    let (mut sent, mut echoes, mut pings) = (0, 0, 0);
    // 20 intervals: a text each interval, and reading all the while (which answers pings).
    while started.elapsed() < 20 * INTERVAL {
        client.send(Message::text(sent.to_string())).await.unwrap();
        sent += 1;
        let next = tokio::time::Instant::now() + INTERVAL;
        while let Ok(msg) = tokio::time::timeout_at(next, client.next()).await {
            match msg.expect("open").unwrap() {
                Message::Ping(_) => pings += 1,
                Message::Text(_) => echoes += 1,
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
    }
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    let report = server.report().await;
    assert!(
        matches!(report.outcome, Outcome::Ended),
        "{name}: {report:?}"
    );
    assert_eq!(echoes, sent, "{name}");
    let mut expected: Vec<Msg> = (0..sent).map(|n| Msg::Text(n.to_string())).collect();
    expected.push(Msg::Close(None));
    assert_eq!(report.seen, expected, "{name}");
    let stats = report.stats;
    // 20 intervals, the first tick jittered within the first, and the close: 20 or 21
    // ticks, one either way for where the close falls.
    assert!((19..=22).contains(&stats.pings_sent), "{name}: {stats:?}");
    assert!(
        (stats.pings_sent - 1..=stats.pings_sent).contains(&pings),
        "{name}: {pings}"
    );
    assert_eq!(stats.missed, 0, "{name}: {stats:?}");
    assert!(
        stats.rtt_samples + 1 >= stats.pings_sent,
        "{name}: {stats:?}"
    );
    let rtt = report.rtt.expect("an RTT sample");
    assert!(rtt < Duration::from_millis(50), "{name}: {rtt:?}");
    eprintln!(
        "{name}: {} pings, {} RTT samples, last RTT {rtt:?}",
        stats.pings_sent, stats.rtt_samples
    );
}

pub async fn the_peers_pings_are_answered_exactly_once<B: Backend>(name: &str) {
    const N: usize = 50;
    let mut server = B::serve(layer(), Program::Echo).await;
    let mut client = peer::connect(&server.url).await;
    for i in 0..N {
        let payload = format!("peer-{i:02}").into_bytes();
        client.send(Message::Ping(payload.into())).await.unwrap();
    }
    client.send(Message::text("done")).await.unwrap();
    let mut pongs = BTreeMap::<Vec<u8>, usize>::new();
    let mut count = |msg: Message| match msg {
        Message::Pong(payload) => *pongs.entry(payload.to_vec()).or_default() += 1,
        Message::Ping(_) => {}
        Message::Text(text) => assert_eq!(text.as_str(), "done", "{name}"),
        other => panic!("{name}: unexpected {other:?}"),
    };
    // Every pong comes before the echo of "done", but look three intervals more for a
    // second one.
    loop {
        let msg = client.next().await.expect("open").unwrap();
        let done = msg.is_text();
        count(msg);
        if done {
            break;
        }
    }
    let until = tokio::time::Instant::now() + 3 * INTERVAL;
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, client.next()).await {
        count(msg.unwrap());
    }
    let expected: BTreeMap<Vec<u8>, usize> = (0..N)
        .map(|i| (format!("peer-{i:02}").into_bytes(), 1))
        .collect();
    assert_eq!(pongs, expected, "{name}: pongs per payload");
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    let report = server.report().await;
    assert_eq!(
        report.seen,
        [Msg::Text("done".into()), Msg::Close(None)],
        "{name}"
    );
}

pub async fn pongs_never_reach_the_handler<B: Backend>(name: &str) {
    let mut server = B::serve(layer(), Program::Echo).await;
    let mut client = peer::connect(&server.url).await;
    // Five rounds: an unsolicited pong, a text, and an interval of reading (which answers
    // the server's pings with pongs too).
    for i in 0..5 {
        let pong = format!("unsolicited-{i}").into_bytes();
        client.send(Message::Pong(pong.into())).await.unwrap();
        client.send(Message::text(i.to_string())).await.unwrap();
        let _ = timeout(INTERVAL, async {
            while let Some(msg) = client.next().await {
                match msg.unwrap() {
                    Message::Ping(_) | Message::Text(_) => {}
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
        })
        .await;
    }
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    let report = server.report().await;
    let mut expected: Vec<Msg> = (0..5).map(|i| Msg::Text(i.to_string())).collect();
    expected.push(Msg::Close(None));
    assert_eq!(report.seen, expected, "{name}");
    // Every pong was counted, matched or not: five unsolicited, and the answers.
    let stats = report.stats;
    assert!(stats.rtt_samples >= 3, "{name}: {stats:?}");
    assert!(
        stats.pongs_received >= 5 + stats.rtt_samples,
        "{name}: {stats:?}"
    );
}

pub async fn a_send_only_handler_sees_dead<B: Backend>(name: &str) {
    let silent = silent::<B>(Program::SendOnly).await;
    // The heartbeat runs when the handler next polls: up to one send period late.
    assert_dead_in_bound(name, &silent, SEND_EVERY);
    let pings = silent.frames.iter().filter(|f| f.opcode == PING).count();
    assert_eq!(pings, MAX_MISSED as usize, "{name}: {:?}", silent.frames);
    // The handler's texts went out in order.
    let texts: Vec<Vec<u8>> = silent
        .frames
        .iter()
        .filter(|f| f.opcode == 0x1)
        .map(|f| f.payload.clone())
        .collect();
    assert!(texts.len() >= 10, "{name}: {} texts", texts.len());
    let expected: Vec<Vec<u8>> = (0..texts.len())
        .map(|n| n.to_string().into_bytes())
        .collect();
    assert_eq!(texts, expected, "{name}");
}

pub async fn application_heartbeats_are_answered_and_hidden<B: Backend>(name: &str) {
    let text = |t: &str| Message::text(t);
    let binary = |b: &[u8]| Message::binary(b.to_vec());
    let cases = [
        (
            "json",
            layer().protocol(Json::new()),
            text(r#"{"type":"ping","id":5}"#),
            text(r#"{"type":"pong","id":5}"#),
            text(r#"{"type":"chat"}"#),
        ),
        (
            "text",
            layer().protocol(Text::new()),
            text("ping"),
            text("pong"),
            text("hello"),
        ),
        (
            "binary",
            layer().protocol(BinaryCommand::new()),
            binary(&[0, 100, 0, 0, 0, 3, 1, 2, 3]),
            binary(&[0, 101, 0, 0, 0, 3, 1, 2, 3]),
            binary(&[1, 2, 3]),
        ),
    ];
    for (shape, layer, ping, answer, data) in cases {
        let mut server = B::serve(layer, Program::Echo).await;
        let mut client = peer::connect(&server.url).await;
        client.send(ping).await.unwrap();
        client.send(data.clone()).await.unwrap();
        let (mut answers, mut echoes, mut server_pings) = (0, 0, 0);
        // Four intervals, answering the server's pings of the same shape as a page would.
        let _ = timeout(4 * INTERVAL, async {
            while let Some(msg) = client.next().await {
                let msg = msg.unwrap();
                if let Some(pong) = peer::app_answer(&msg) {
                    server_pings += 1;
                    client.send(pong).await.unwrap();
                } else if msg == answer {
                    answers += 1;
                } else if msg == data {
                    echoes += 1;
                } else {
                    panic!("{name} {shape}: unexpected {msg:?}");
                }
            }
        })
        .await;
        // A tick may fall between the window's end and the close: its ping is drained here
        // (unanswered), or, once the server has our Close, counted but never written.
        client.close(None).await.unwrap();
        let mut late_pings = 0;
        while let Some(Ok(msg)) = client.next().await {
            late_pings += u64::from(peer::app_answer(&msg).is_some());
        }
        let report = server.report().await;
        assert_eq!((answers, echoes), (1, 1), "{name} {shape}");
        let data = match data {
            Message::Text(t) => Msg::Text(t.to_string()),
            Message::Binary(b) => Msg::Binary(b.to_vec()),
            _ => unreachable!(),
        };
        assert_eq!(report.seen, [data, Msg::Close(None)], "{name} {shape}");
        // Four intervals, the first tick jittered: 3 or 4 pings, each answered in shape and
        // counted like a pong.
        let stats = report.stats;
        assert!(
            (3..=5).contains(&server_pings),
            "{name} {shape}: {server_pings}"
        );
        let pings_sent = stats.pings_sent - late_pings;
        assert!(
            pings_sent == server_pings || pings_sent == server_pings + 1,
            "{name} {shape}: {server_pings} answered, {late_pings} after, {stats:?}"
        );
        assert!(
            stats.rtt_samples + 1 >= server_pings,
            "{name} {shape}: {stats:?}"
        );
        assert_eq!(stats.missed, 0, "{name} {shape}: {stats:?}");
    }
}

pub async fn nothing_is_lost_or_reordered_under_heavy_heartbeat_traffic<B: Backend>(name: &str) {
    const N: u64 = 10_000;
    // A tick every millisecond. 100 missed (a 101 ms bound) so that the machine's own
    // scheduling gaps under this load are not taken for a dead peer: the test is about
    // the data, not the bound.
    let layer = HeartbeatLayer::new()
        .interval(Duration::from_millis(1))
        .max_missed(100);
    let mut server = B::serve(layer, Program::Echo).await;
    let client = peer::connect(&server.url).await;
    let started = Instant::now();
    let (mut tx, mut rx) = client.split();
    // Each numbered text is followed by a ping carrying its number.
    let writer = tokio::spawn(async move {
        for i in 0..N {
            tx.feed(Message::text(i.to_string())).await.unwrap();
            tx.feed(Message::Ping(i.to_be_bytes().to_vec().into()))
                .await
                .unwrap();
            if i % 64 == 63 {
                tx.flush().await.unwrap();
            }
        }
        tx.flush().await.unwrap();
        tx
    });
    let (mut next, mut pongs, mut server_pings) = (0u64, vec![0u32; N as usize], 0u64);
    let all_pongs = |pongs: &[u32]| pongs.iter().all(|&n| n >= 1);
    while next < N || !all_pongs(&pongs) {
        let msg = timeout(Duration::from_secs(10), rx.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: stuck at {next}"))
            .expect("open")
            .unwrap();
        match msg {
            Message::Text(text) => {
                assert_eq!(text.as_str(), next.to_string(), "{name}: out of order");
                next += 1;
            }
            Message::Pong(payload) => {
                let i = u64::from_be_bytes(payload.as_ref().try_into().unwrap());
                pongs[i as usize] += 1;
            }
            Message::Ping(_) => server_pings += 1,
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let mut tx = writer.await.unwrap();
    tx.send(Message::Close(None)).await.unwrap();
    while let Some(msg) = rx.next().await {
        if let Ok(Message::Pong(payload)) = msg {
            pongs[u64::from_be_bytes(payload.as_ref().try_into().unwrap()) as usize] += 1;
        }
    }
    assert!(
        pongs.iter().all(|&n| n == 1),
        "{name}: a ping answered twice"
    );
    let report = server.report().await;
    assert!(
        matches!(report.outcome, Outcome::Ended),
        "{name}: {:?}",
        report.outcome
    );
    let (close, texts) = report.seen.split_last().unwrap();
    assert_eq!(close, &Msg::Close(None), "{name}");
    assert_eq!(texts.len() as u64, N, "{name}");
    assert!(
        texts
            .iter()
            .enumerate()
            .all(|(i, m)| *m == Msg::Text(i.to_string())),
        "{name}: the handler saw other than the texts in order"
    );
    // The heartbeat ran all along: a tick, and so a ping, every millisecond or so (the
    // fastest backend takes under 100 ms for the lot).
    assert!(report.stats.pings_sent >= 10, "{name}: {:?}", report.stats);
    eprintln!(
        "{name}: {N} texts echoed in order and {N} pings answered once each in {elapsed:?}, \
         while the server sent {} pings ({server_pings} read by the peer)",
        report.stats.pings_sent
    );
}
