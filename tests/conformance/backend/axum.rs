//! axum 0.8: the drop-in `ws_heartbeat::axum::WebSocketUpgrade`, its settings in an
//! `Extension`.

use axum::extract::ws::{CloseFrame, Message};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::axum::WebSocketUpgrade;

use super::{Backend, Server};
use crate::program::{self, Msg, Neutral, Program};

pub struct Axum;

impl Backend for Axum {
    async fn serve(layer: HeartbeatLayer, program: Program) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let listener = listener.tap_io(|tcp| tcp.set_nodelay(true).unwrap());
        let (reports, rx) = mpsc::unbounded_channel();
        let route = move |ws: WebSocketUpgrade| {
            let reports = reports.clone();
            async move { ws.on_upgrade(move |socket| program::run(program, socket, reports)) }
        };
        let app = Router::new().route("/", get(route)).layer(Extension(layer));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
            Message::Close(frame) => Msg::Close(frame.as_ref().map(|f| f.code)),
        }
    }

    fn from_msg(msg: Msg) -> Self {
        match msg {
            Msg::Text(text) => Message::Text(text.into()),
            Msg::Binary(bytes) => Message::Binary(bytes.into()),
            Msg::Ping(bytes) => Message::Ping(bytes.into()),
            Msg::Pong(bytes) => Message::Pong(bytes.into()),
            Msg::Close(code) => Message::Close(code.map(|code| CloseFrame {
                code,
                reason: "".into(),
            })),
            Msg::Other(other) => panic!("cannot send {other}"),
        }
    }
}
