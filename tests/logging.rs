//! The log lines of a connection carry `conn` (its id) and `layer` (its layer's name):
//! the lines of one connection share `conn`, another connection's differs. Paused clock;
//! interval 1 s, 3 missed: a silent peer is dead at 4 s.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use support::*;

/// Where the test's subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self, containing: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|line| line.contains(containing))
            .map(str::to_owned)
            .collect()
    }
}

/// The value of `field=` in `line`.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 2..]
        .split_whitespace()
        .next()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_connections_lines_carry_its_id_and_its_layers_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Two connections of the layer "chat": one whose peer closes at once, one whose peer is
    // silent and found dead at 4 s.
    let layer = one_second().name("chat");
    let (mut closing, mut peer) = pair(layer.clone()).await;
    closing.send(Message::text("first poll")).await.unwrap();
    peer.close(None).await.unwrap();
    while closing.next().await.is_some() {}
    let (mut silent, _silent_peer) = pair(layer).await;
    let (_, err, _) = read_until_end(&mut silent).await;
    assert!(err.is_some_and(|e| is_dead(&e)));

    let opened = captured.lines("websocket connection opened");
    let ended = captured.lines("websocket connection ended");
    let dead = captured.lines("websocket peer is dead");
    assert_eq!((opened.len(), ended.len(), dead.len()), (2, 1, 1));
    for line in opened.iter().chain(&ended).chain(&dead) {
        assert_eq!(field(line, "layer"), "\"chat\"", "{line}");
    }
    assert_eq!(field(&ended[0], "cause"), "\"peer_close\"");
    // The first connection's lines share its id; the dead one is the other.
    assert_eq!(field(&opened[0], "conn"), field(&ended[0], "conn"));
    assert_eq!(field(&opened[1], "conn"), field(&dead[0], "conn"));
    assert_ne!(field(&opened[0], "conn"), field(&opened[1], "conn"));
}
