//! actix-web 4 with actix-ws 0.4: `ws_heartbeat::actix::handle` where actix-ws's handler
//! calls `actix_ws::handle`, the settings in `web::Data<HeartbeatLayer>`. actix runs on its
//! own system, in a thread of its own, as an actix application would.

use std::future::Future;
use std::sync::mpsc as std_mpsc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{CloseReason, Message, Session};
use futures_util::future;
use tokio::sync::mpsc;
use ws_heartbeat::HeartbeatHandle;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::actix::MessageStream;

use super::{Backend, Server};
use crate::program::{self, BoxError, Conn, Msg, Neutral, Outcome, Program, Reports, SEND_EVERY};

pub struct Actix;

impl Backend for Actix {
    async fn serve(layer: HeartbeatLayer, program: Program) -> Server {
        let (reports, rx) = mpsc::unbounded_channel();
        let (started, address) = std_mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let layer = web::Data::new(layer);
                let context = web::Data::new((program, reports));
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(layer.clone())
                        .app_data(context.clone())
                        .route("/", web::get().to(handler))
                })
                .on_connect(|io, _| {
                    if let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() {
                        tcp.set_nodelay(true).unwrap();
                    }
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                started.send((addr, server.handle())).unwrap();
                server.await
            })
        });
        let (addr, handle) = address.recv().unwrap();
        Server {
            url: format!("ws://{addr}/"),
            reports: rx,
            stop: Some(Box::new(move || drop(handle.stop(false)))),
        }
    }
}

async fn handler(
    req: HttpRequest,
    body: web::Payload,
    context: web::Data<(Program, Reports)>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = ws_heartbeat::actix::handle(&req, body)?;
    let (program, reports) = context.get_ref().clone();
    actix_web::rt::spawn(program::run(
        program,
        ActixConn { stream, session },
        reports,
    ));
    Ok(response)
}

/// The handler's two halves, as actix-ws hands them out.
struct ActixConn {
    stream: MessageStream,
    session: Session,
}

impl Conn for ActixConn {
    async fn recv(&mut self) -> Option<Result<Msg, BoxError>> {
        Some(match self.stream.recv().await? {
            Ok(msg) => Ok(msg.to_msg()),
            Err(err) => Err(err.into()),
        })
    }

    async fn send(&mut self, msg: Msg) -> Result<(), BoxError> {
        let sent = match msg {
            Msg::Text(text) => self.session.text(text).await,
            Msg::Binary(bytes) => self.session.binary(bytes).await,
            Msg::Ping(bytes) => self.session.ping(&bytes).await,
            Msg::Pong(bytes) => self.session.pong(&bytes).await,
            Msg::Close(code) => {
                let reason = code.map(|code| CloseReason {
                    code: code.into(),
                    description: None,
                });
                self.session.clone().close(reason).await
            }
            Msg::Other(other) => panic!("cannot send {other}"),
        };
        sent.map_err(Into::into)
    }

    fn handle(&self) -> HeartbeatHandle {
        self.stream.handle()
    }

    fn close_received(&mut self) -> impl Future<Output = ()> {
        let session = self.session.clone();
        async move {
            let _ = session.close(None).await;
        }
    }

    /// actix-ws's handler writes through its own `Session`, which the heartbeat does not
    /// see: a send-only handler keeps a reader going beside its writer (the recipe in
    /// `ws_heartbeat::actix`). The reader gets the death; the death's Close frame closes the
    /// session, so the writer's next send fails, which ends the writer.
    async fn send_only(&mut self) -> Outcome {
        let ActixConn { stream, session } = self;
        let reader = async {
            loop {
                match stream.recv().await {
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Outcome::of(&err),
                    None => return Outcome::Ended,
                }
            }
        };
        let writer = async {
            for n in 0u32.. {
                tokio::time::sleep(SEND_EVERY).await;
                if session.text(n.to_string()).await.is_err() {
                    return;
                }
            }
        };
        future::join(reader, writer).await.0
    }
}

impl Neutral for Message {
    fn to_msg(&self) -> Msg {
        match self {
            Message::Text(text) => Msg::Text(text.to_string()),
            Message::Binary(bytes) => Msg::Binary(bytes.to_vec()),
            Message::Ping(bytes) => Msg::Ping(bytes.to_vec()),
            Message::Pong(bytes) => Msg::Pong(bytes.to_vec()),
            Message::Close(reason) => Msg::Close(reason.as_ref().map(|r| r.code.into())),
            other => Msg::Other(format!("{other:?}")),
        }
    }

    fn from_msg(_: Msg) -> Self {
        unreachable!("the actix handler sends through its Session")
    }
}
