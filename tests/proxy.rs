//! Behind a real reverse proxy: Debian's nginx, started by the test on 127.0.0.1 with its
//! own configuration and `proxy_read_timeout 2s`. An idle WebSocket without heartbeat is cut
//! at about 2 s; with a 1 s heartbeat the same idle connection stays open for 20 s and still
//! carries messages. Real time.
//!
//! Needs `nginx` on `PATH` (`apt-get install nginx`; `.ci/run` installs it). Debian puts it
//! in `/usr/sbin`, which is on root's `PATH` but not on a normal user's: add it, the test
//! runs as any user. Without nginx the test is reported as ignored, with that reason;
//! under `CI=true` it fails instead. A `harness = false` test (see `support::trials`).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

use support::ms;
use support::nginx::Nginx;
use support::trials::{self, Flavor, Suite};

fn main() {
    let nginx = trials::program("nginx", "apt-get install nginx");
    let mut suite = Suite::new();
    suite.test(
        "an_idle_websocket_is_cut_by_the_proxy_unless_the_heartbeat_keeps_it_busy",
        &nginx,
        Flavor::CurrentThread,
        an_idle_websocket_is_cut_by_the_proxy_unless_the_heartbeat_keeps_it_busy,
    );
    suite.run()
}

/// An echo server on a free port, with the heartbeat `layer` or none.
async fn upstream(layer: Option<HeartbeatLayer>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let layer = layer.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                match layer {
                    Some(layer) => echo(layer.layer(ws)).await,
                    None => echo(ws).await,
                }
            });
        }
    });
    port
}

async fn echo<S>(mut ws: S)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() && ws.send(msg).await.is_err() {
            return;
        }
    }
}

async fn an_idle_websocket_is_cut_by_the_proxy_unless_the_heartbeat_keeps_it_busy(nginx: PathBuf) {
    // Without heartbeat: the client says hello, then both sides are idle. nginx closes the
    // connection once nothing came from upstream for 2 s.
    let proxy = Nginx::start(&nginx, upstream(None).await, ms(2000)).await;
    let url = format!("ws://127.0.0.1:{}", proxy.port);
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    let idle = Instant::now();
    // Reading (the client answers nothing: nothing arrives) until the proxy cuts it.
    while let Some(Ok(_)) = client.next().await {}
    let cut_after = idle.elapsed();
    println!("without heartbeat: cut by nginx after {cut_after:?} of silence");
    assert!(
        cut_after >= ms(1900) && cut_after <= ms(3000),
        "{cut_after:?}"
    );
    drop(proxy);

    // With a 1 s heartbeat on the server: the same idle connection lives 20 s, and a message
    // still goes through at the end.
    let proxy = Nginx::start(
        &nginx,
        upstream(Some(HeartbeatLayer::new().interval(ms(1000)))).await,
        ms(2000),
    )
    .await;
    let url = format!("ws://127.0.0.1:{}", proxy.port);
    let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(20) {
        // The client only reads: it answers the server's pings and sends nothing else.
        match tokio::time::timeout(ms(500), client.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("connection lost after {:?}: {other:?}", started.elapsed()),
            Err(_) => {}
        }
    }
    client.send(Message::text("still here")).await.unwrap();
    let echo = loop {
        match client.next().await.unwrap().unwrap() {
            Message::Ping(_) => pings += 1,
            other => break other,
        }
    };
    assert_eq!(echo, Message::text("still here"));
    println!("with a 1 s heartbeat: open after 20 s, {pings} pings through nginx, message echoed");
    assert!(pings >= 19, "{pings} pings in 20 s");
}
