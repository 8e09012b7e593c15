//! tokio-tungstenite: `HeartbeatLayer::layer` on the accepted `WebSocketStream`.

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

use super::{Backend, Server};
use crate::program::{self, Msg, Neutral, Program};

pub struct Tungstenite;

impl Backend for Tungstenite {
    async fn serve(layer: HeartbeatLayer, program: Program) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let (reports, rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let (layer, reports) = (layer.clone(), reports.clone());
                tokio::spawn(async move {
                    let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    program::run(program, layer.layer(ws), reports).await;
                });
            }
        });
        Server {
            url,
            reports: rx,
            stop: Some(Box::new(move || server.abort())),
        }
    }
}

impl Neutral for Message {
    fn to_msg(&self) -> Msg {
        match self {
            Message::Text(text) => Msg::Text(text.to_string()),
            Message::Binary(bytes) => Msg::Binary(bytes.to_vec()),
            Message::Ping(bytes) => Msg::Ping(bytes.to_vec()),
            Message::Pong(bytes) => Msg::Pong(bytes.to_vec()),
            Message::Close(frame) => Msg::Close(frame.as_ref().map(|f| f.code.into())),
            Message::Frame(frame) => Msg::Other(format!("{frame:?}")),
        }
    }

    fn from_msg(msg: Msg) -> Self {
        match msg {
            Msg::Text(text) => Message::text(text),
            Msg::Binary(bytes) => Message::binary(bytes),
            Msg::Ping(bytes) => Message::Ping(bytes.into()),
            Msg::Pong(bytes) => Message::Pong(bytes.into()),
            Msg::Close(code) => Message::Close(code.map(|code| CloseFrame {
                code: code.into(),
                reason: "".into(),
            })),
            Msg::Other(other) => panic!("cannot send {other}"),
        }
    }
}
