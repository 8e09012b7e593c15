//! tokio-websockets 0.13: `HeartbeatLayer::layer` on the `WebSocketStream` its
//! `ServerBuilder` accepted.

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_websockets::{CloseCode, Message, ServerBuilder};
use tower::Layer;
use ws_heartbeat::HeartbeatLayer;

use super::{Backend, Server};
use crate::program::{self, Msg, Neutral, Program};

pub struct TokioWebsockets;

impl Backend for TokioWebsockets {
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
                    let (_request, ws) = ServerBuilder::new().accept(tcp).await.unwrap();
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
        if let Some(text) = self.as_text() {
            Msg::Text(text.to_owned())
        } else if self.is_binary() {
            Msg::Binary(self.as_payload().to_vec())
        } else if self.is_ping() {
            Msg::Ping(self.as_payload().to_vec())
        } else if self.is_pong() {
            Msg::Pong(self.as_payload().to_vec())
        } else if self.as_payload().is_empty() {
            Msg::Close(None)
        } else {
            Msg::Close(self.as_close().map(|(code, _)| code.into()))
        }
    }

    fn from_msg(msg: Msg) -> Self {
        match msg {
            Msg::Text(text) => Message::text(text),
            Msg::Binary(bytes) => Message::binary(bytes),
            Msg::Ping(bytes) => Message::ping(bytes),
            Msg::Pong(bytes) => Message::pong(bytes),
            Msg::Close(code) => Message::close(code.map(|c| CloseCode::try_from(c).unwrap()), ""),
            Msg::Other(other) => panic!("cannot send {other}"),
        }
    }
}
