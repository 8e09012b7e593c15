//! The handlers a conformance server runs, written once for every backend: each backend
//! turns its connection into a [`Conn`] and its messages into [`Msg`], and the same
//! program runs on all of them, reporting what it saw through a channel.

use std::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use ws_heartbeat::{Dead, Heartbeat, HeartbeatHandle, Stats};

pub type BoxError = Box<dyn Error + Send + Sync>;

/// A message as the tests see it, whatever library carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A Close frame, with its code if it has one.
    Close(Option<u16>),
    /// Anything else a library can yield (actix-ws's continuation frames): never expected.
    Other(String),
}

/// A library's message type, as [`Msg`].
pub trait Neutral: Sized {
    fn to_msg(&self) -> Msg;
    fn from_msg(msg: Msg) -> Self;
}

/// What the program of a connection can do with it.
pub trait Conn {
    fn recv(&mut self) -> impl Future<Output = Option<Result<Msg, BoxError>>>;
    fn send(&mut self, msg: Msg) -> impl Future<Output = Result<(), BoxError>>;
    fn handle(&self) -> HeartbeatHandle;

    /// The peer's Close came in. tungstenite, axum and tokio-websockets answer it
    /// themselves; actix-ws leaves it to the handler.
    fn close_received(&mut self) -> impl Future<Output = ()> {
        async {}
    }

    /// Sends a text every 20 ms and never reads, until a send fails. Where the handler's
    /// sink is the heartbeat's, that drives the heartbeat (and reads the pongs ahead).
    fn send_only(&mut self) -> impl Future<Output = Outcome> {
        async {
            for n in 0u32.. {
                tokio::time::sleep(SEND_EVERY).await;
                if let Err(err) = self.send(Msg::Text(n.to_string())).await {
                    return Outcome::of(&*err);
                }
            }
            unreachable!()
        }
    }
}

/// How often the send-only program sends.
pub const SEND_EVERY: Duration = Duration::from_millis(20);

/// A handler's connection with a heartbeat it can show: a `Heartbeat`, or the axum drop-in's
/// `WebSocket` (a `Heartbeat` inside, or a background connection, or a session).
pub trait Heartbeated {
    fn heartbeat(&self) -> HeartbeatHandle;
}

impl<S> Heartbeated for Heartbeat<S> {
    fn heartbeat(&self) -> HeartbeatHandle {
        self.handle()
    }
}

impl Heartbeated for ws_heartbeat::axum::WebSocket {
    fn heartbeat(&self) -> HeartbeatHandle {
        self.handle()
    }
}

/// Every backend whose handler holds a heartbeated `Stream + Sink` is a `Conn`.
impl<W, M, E> Conn for W
where
    W: Heartbeated + Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: Neutral,
    E: Error + Send + Sync + 'static,
{
    async fn recv(&mut self) -> Option<Result<Msg, BoxError>> {
        Some(match self.next().await? {
            Ok(msg) => Ok(msg.to_msg()),
            Err(err) => Err(err.into()),
        })
    }

    async fn send(&mut self, msg: Msg) -> Result<(), BoxError> {
        SinkExt::send(self, M::from_msg(msg))
            .await
            .map_err(Into::into)
    }

    fn handle(&self) -> HeartbeatHandle {
        self.heartbeat()
    }
}

/// The backend-neutral handlers.
#[derive(Clone, Copy, Debug)]
pub enum Program {
    /// Reads everything; sends back every text and binary message.
    Echo,
    /// Reads everything, sends nothing.
    Record,
    /// Sends a text every 20 ms, reads nothing ([`Conn::send_only`]).
    SendOnly,
}

/// How a connection's program ended.
#[derive(Debug)]
pub enum Outcome {
    /// The stream ended.
    Ended,
    /// An error carrying `Dead`.
    Dead(Dead),
    /// Any other error.
    Error(String),
}

impl Outcome {
    pub fn of(err: &(dyn Error + 'static)) -> Self {
        match Dead::find(err) {
            Some(dead) => Outcome::Dead(*dead),
            None => Outcome::Error(err.to_string()),
        }
    }

    #[track_caller]
    pub fn dead(&self) -> Dead {
        match self {
            Outcome::Dead(dead) => *dead,
            Outcome::Error(err) => panic!("expected a death, got the error {err}"),
            Outcome::Ended => panic!("expected a death, the stream ended"),
        }
    }
}

/// What one connection's handler saw, sent when its program ends.
#[derive(Debug)]
pub struct Report {
    pub program: Program,
    /// When the handler got its connection (the heartbeat was made just before).
    pub started: Instant,
    /// When its program ended.
    pub ended: Instant,
    /// Every message it read, in order.
    pub seen: Vec<Msg>,
    pub outcome: Outcome,
    pub stats: Stats,
    pub rtt: Option<Duration>,
}

pub type Reports = mpsc::UnboundedSender<Report>;

/// Runs `program` on `conn` and reports.
pub async fn run<C: Conn>(program: Program, mut conn: C, reports: Reports) {
    let started = Instant::now();
    let handle = conn.handle();
    let mut seen = Vec::new();
    let outcome = match program {
        Program::Echo => read(&mut conn, &mut seen, true).await,
        Program::Record => read(&mut conn, &mut seen, false).await,
        Program::SendOnly => conn.send_only().await,
    };
    let ended = Instant::now();
    drop(conn);
    let _ = reports.send(Report {
        program,
        started,
        ended,
        seen,
        outcome,
        stats: handle.stats(),
        rtt: handle.rtt(),
    });
}

async fn read<C: Conn>(conn: &mut C, seen: &mut Vec<Msg>, echo: bool) -> Outcome {
    loop {
        let msg = match conn.recv().await {
            None => return Outcome::Ended,
            Some(Err(err)) => return Outcome::of(&*err),
            Some(Ok(msg)) => msg,
        };
        seen.push(msg.clone());
        match msg {
            Msg::Text(_) | Msg::Binary(_) if echo => {
                if let Err(err) = conn.send(msg).await {
                    return Outcome::of(&*err);
                }
            }
            Msg::Close(_) => conn.close_received().await,
            _ => {}
        }
    }
}
