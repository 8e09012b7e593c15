//! The peers the tests control: a raw one that reads frames and never answers, and
//! tokio-tungstenite clients (which answer pings only while they read).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A tokio-tungstenite client, with Nagle's algorithm off: a pong held back behind an
/// unacknowledged write would add the delayed ACK (tens of milliseconds) to the RTT.
pub async fn connect(url: &str) -> Client {
    tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap()
        .0
}

/// A frame the server sent, and when it arrived.
#[derive(Debug)]
pub struct Frame {
    pub at: Instant,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub const PING: u8 = 0x9;
pub const CLOSE: u8 = 0x8;

/// A client that shakes hands by hand, then reads the server's frames off the socket and
/// sends nothing, ever: a silent peer whose socket still drains.
pub struct RawPeer {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Just before the connection was opened, and when the handshake's answer came: the
    /// server made its heartbeat between the two.
    pub opened: Instant,
    pub connected: Instant,
}

impl RawPeer {
    pub async fn connect(url: &str) -> Self {
        let addr = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap();
        let opened = Instant::now();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0; 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let connected = Instant::now();
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        Self {
            tcp,
            buf,
            opened,
            connected,
        }
    }

    /// The server's frames, each stamped when it arrived, up to and including its Close
    /// frame (or until the connection ends, or `limit` has passed).
    pub async fn frames_until_close(&mut self, limit: Duration) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut frames = Vec::new();
        loop {
            while let Some((opcode, payload, len)) = parse(&self.buf) {
                self.buf.drain(..len);
                // Parsed as soon as read: frames of one read arrived together.
                frames.push(Frame {
                    at: Instant::now(),
                    opcode,
                    payload,
                });
                if opcode == CLOSE {
                    return frames;
                }
            }
            let mut chunk = [0; 4096];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return frames,
            }
        }
    }
}

/// One unmasked server frame at the start of `buf`: (opcode, payload, bytes used).
fn parse(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let [head, len, rest @ ..] = buf else {
        return None;
    };
    assert_eq!(head & 0x80, 0x80, "fragmented frame: {buf:?}");
    assert_eq!(len & 0x80, 0, "a masked server frame");
    let (len, rest, header) = match len & 0x7f {
        126 => {
            let [a, b, rest @ ..] = rest else { return None };
            (usize::from(u16::from_be_bytes([*a, *b])), rest, 4)
        }
        127 => panic!("a frame over 64 KiB"),
        len => (usize::from(len), rest, 2),
    };
    (rest.len() >= len).then(|| (head & 0x0f, rest[..len].to_vec(), header + len))
}

/// Answers the server's application pings the way a browser page does, for as long as the
/// client reads: JSON and text pings get their pong, binary command 100 gets command 101.
pub fn app_answer(msg: &Message) -> Option<Message> {
    match msg {
        Message::Text(text) if text.as_str() == "ping" => Some(Message::text("pong")),
        Message::Text(text) if text.starts_with(r#"{"type":"ping""#) => {
            Some(Message::text(text.replacen(r#""ping""#, r#""pong""#, 1)))
        }
        Message::Binary(bytes) if bytes.starts_with(&[0, 100]) => {
            let mut answer = bytes.to_vec();
            answer[1] = 101;
            Some(Message::binary(answer))
        }
        _ => None,
    }
}
