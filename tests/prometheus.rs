//! A real Prometheus scrapes the demo's metrics (`GET /metrics`, feature `metrics`): Debian's
//! `prometheus`, started by the test on 127.0.0.1 with a 1 s scrape of the demo, which runs
//! a 300 ms heartbeat (dead within 1.2 s). The scenario: three clients that answer, one that
//! freezes after its handshake and is found dead, one session whose socket the demo cuts and
//! which resumes. Then Prometheus's HTTP API (`/api/v1/query`) must hold: four connections
//! open (three clients and the session's socket), exactly one death, one resume, round trips
//! measured.
//!
//! Real time, about 15 s. Needs `prometheus` on `PATH` (`apt-get install prometheus`;
//! `.ci/run` installs it); without it the test is reported as ignored; under `CI=true` it
//! fails. A `harness = false` test (see `support::trials`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::reconnect::{Backoff, Reconnect};
use ws_heartbeat::resume::Resume;

use support::ms;
use support::trials::{self, Flavor, Suite};

fn main() {
    let prometheus = trials::program("prometheus", "apt-get install prometheus");
    let mut suite = Suite::new();
    suite.test(
        "prometheus_stores_what_the_demo_measured",
        &prometheus,
        Flavor::MultiThread { workers: 2 },
        prometheus_stores_what_the_demo_measured,
    );
    suite.run()
}

/// The demo on 127.0.0.1: its process and its `host:port`.
async fn demo() -> (Child, String) {
    let mut child = Command::new(trials::example("demo"))
        .args(["127.0.0.1:0", "--interval-ms", "300", "--max-missed", "3"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("the demo says where it listens")
        .unwrap()
        .expect("a line");
    let host = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("not `demo on http://…`: {line}"))
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, host)
}

/// Prometheus scraping `target` every second: its process, its port, its data directory.
async fn prometheus(program: &Path, target: &str) -> (Child, u16, PathBuf) {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!(
        "ws-heartbeat-prometheus-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let child = Command::new(program)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    (child, port, dir)
}

/// An HTTP GET on 127.0.0.1:`port`: the body.
async fn get(port: u16, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// The value of an instant query that returns one sample, if it does.
async fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(port, &format!("/api/v1/query?query={encoded}")).await?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    let value = json["data"]["result"].get(0)?["value"][1].as_str()?;
    value.parse().ok()
}

/// Waits (up to 30 s) until `promql` has `expected`; returns what it last had.
async fn until(port: u16, promql: &str, expected: impl Fn(f64) -> bool) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = query(port, promql).await;
        if last.is_some_and(&expected) {
            break;
        }
        tokio::time::sleep(ms(250)).await;
    }
    last
}

async fn prometheus_stores_what_the_demo_measured(program: PathBuf) {
    let (_demo, host) = demo().await;
    let (_prometheus, port, dir) = prometheus(&program, &host).await;
    let url = |path: &str| format!("ws://{host}{path}");

    // Three clients that answer (tokio-tungstenite answers Ping frames as it reads).
    let mut answering = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = tokio_tungstenite::connect_async(url("/ws?heartbeat=control"))
            .await
            .unwrap();
        answering.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    // One that freezes after its handshake: never reads, so never answers.
    let (frozen, _) = tokio_tungstenite::connect_async(url("/ws?heartbeat=control"))
        .await
        .unwrap();
    // A session: its socket is cut by the demo, and it resumes.
    let session_url = url("/session?heartbeat=control");
    let mut session = Reconnect::builder(move || {
        let session_url = session_url.clone();
        async move {
            tokio_tungstenite::connect_async(session_url)
                .await
                .map(|(ws, _)| ws)
        }
    })
    .heartbeat(HeartbeatLayer::new().interval(ms(300)))
    .backoff(Backoff::new().initial(ms(100)))
    .resume(Resume::new())
    .build();
    session.send(Message::text("hello")).await.unwrap();
    let greeting = timeout(Duration::from_secs(5), session.next())
        .await
        .unwrap();
    assert!(greeting.is_some_and(|m| m.is_ok()));
    let session = tokio::spawn(async move { while let Some(Ok(_)) = session.next().await {} });
    tokio::time::sleep(ms(500)).await;
    let cut = get(host.split(':').nth(1).unwrap().parse().unwrap(), "/cut").await;
    assert!(cut.is_some_and(|body| body.contains("\"cut\":1")));

    let deaths = until(port, "sum(ws_heartbeat_deaths_total)", |v| v == 1.0).await;
    assert_eq!(deaths, Some(1.0), "exactly one death");
    let resumes = until(port, "sum(ws_heartbeat_session_resumes_total)", |v| {
        v == 1.0
    })
    .await;
    assert_eq!(resumes, Some(1.0), "one resume");
    let open = until(port, "sum(ws_heartbeat_connections)", |v| v == 4.0).await;
    assert_eq!(open, Some(4.0), "three clients and the session's socket");
    let dead_ends = "sum(ws_heartbeat_closed_total{cause=\"dead\"})";
    assert_eq!(until(port, dead_ends, |v| v == 1.0).await, Some(1.0));
    let samples = until(port, "sum(ws_heartbeat_rtt_seconds_count)", |v| v > 0.0).await;
    assert!(samples.is_some_and(|n| n > 0.0), "round trips: {samples:?}");
    let p99 = "histogram_quantile(0.99, sum by (le) (rate(ws_heartbeat_rtt_seconds_bucket[1m])))";
    let quantile = until(port, p99, |v| v > 0.0 && v < 0.1).await;
    assert!(
        quantile.is_some_and(|q| q > 0.0 && q < 0.1),
        "p99 RTT on loopback: {quantile:?}"
    );
    println!("prometheus: 1 death, 1 resume, 4 open, {samples:?} RTT samples, p99 {quantile:?} s");

    drop(frozen);
    session.abort();
    for client in answering {
        client.abort();
    }
    let _ = std::fs::remove_dir_all(dir);
}
