//! The background driver (`HeartbeatLayer::background`): at its first poll the connection
//! moves to a task of its own, which reads ahead into a bounded queue and so keeps the
//! heartbeat running (pings out, the peer's pings answered, the peer found dead) while the
//! handler is away. The handler keeps its `Heartbeat<S>`: its reads come from the queue, its
//! writes go to the same connection through a lock shared with the driver.
//!
//! The design: ARCHITECTURE.md, "The background driver".

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use pin_project_lite::pin_project;
use tokio::task::AbortHandle;

use super::queue::Queue;
use super::{Conn, Gone, Heartbeat, Slot, SlotProj};
use crate::error::Dead;
use crate::message::WsMessage;
use crate::protocol::Protocol;
use crate::wake::{Hub, Shared};

/// Items read while the handler is away wait in a queue of this many; when it is full, the
/// driver stops reading until the handler takes one.
pub(crate) const QUEUE: usize = 32;

pin_project! {
    /// The connection as the driver runs it: the stream pinned in its box, with the
    /// heartbeat, polled through the methods for a stream that is here. (Through the trait
    /// impls of `Heartbeat`, the type would contain its own background path, and that path
    /// another driver, without end.)
    struct Driven<S> {
        #[pin]
        hb: Heartbeat<Pin<Box<S>>>,
    }
}

impl<S, M, E> Stream for Driven<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Item = Result<M, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().hb.poll_next_msg(cx)
    }
}

impl<S, M, E> Sink<M> for Driven<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Error = E;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.project().hb.poll_ready_msg(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), E> {
        self.project().hb.start_send_msg(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.project().hb.poll_flush_msg(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.project().hb.poll_close_msg(cx)
    }
}

/// What the handler's `Heartbeat<S>` holds once its stream is with the driver.
struct Remote<S, M, E> {
    /// The writing half of the connection; the driver holds the reading half.
    sink: SplitSink<Driven<S>, M>,
    /// What the driver read, in order.
    queue: Arc<Queue<Result<M, E>>>,
    driver: AbortHandle,
}

impl<S, M, E> Drop for Remote<S, M, E> {
    /// The handler dropped its connection: the driver, which owns the socket, stops now
    /// rather than at the peer's next frame.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl<S> Heartbeat<S> {
    /// A parked stream goes to its driver task (from a pinned adapter, at its first poll).
    #[inline(always)]
    fn go_away<M, E>(self: Pin<&mut Self>)
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        let this = self.project();
        if let SlotProj::Away { gone } = this.slot.project() {
            if let Gone::Parked(_) = **gone {
                start::<S, M, E, ()>(gone, this.conn, this.protocol, this.shared, |_| None);
            }
        }
    }

    /// A parked stream goes to its driver task at once (the service form and the axum
    /// drop-in, which hand the handler its connection unpolled), with what `keep` keeps of it
    /// for the handler's accessors ([`Heartbeat::keepsake`]).
    pub(crate) fn start_background<M, E, K>(&mut self, keep: impl FnOnce(&S) -> Option<K>)
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
        K: Send + Sync + 'static,
    {
        if let Slot::Away { gone } = &mut self.slot {
            if let Gone::Parked(_) = **gone {
                start::<S, M, E, K>(gone, &mut self.conn, &self.protocol, &self.shared, keep);
            }
        }
    }

    /// What `start_background` kept of the stream, once it is with its driver.
    #[cfg(feature = "axum")]
    pub(crate) fn keepsake<K: 'static>(&self) -> Option<&K> {
        match &self.slot {
            Slot::Away { gone } => match &**gone {
                Gone::Driven {
                    keepsake: Some(k), ..
                } => k.downcast_ref(),
                _ => None,
            },
            Slot::Session { .. } => self.conn.rare.as_ref()?.keepsake.as_ref()?.downcast_ref(),
            Slot::Here { .. } => None,
        }
    }

    /// Keeps `keepsake` for the handler's accessors of a session ([`Heartbeat::keepsake`]).
    #[cfg(feature = "axum")]
    pub(crate) fn keep_for_session<K: Send + Sync + 'static>(&mut self, keepsake: K) {
        if let Slot::Session { .. } = self.slot {
            self.conn.rare().keepsake = Some(Box::new(keepsake));
        }
    }

    /// The session this adapter is the handler's side of, if it is one.
    #[inline]
    fn session<M, E>(self: Pin<&mut Self>) -> Option<&mut crate::resume::Session<S, M, E>>
    where
        S: 'static,
        M: 'static,
        E: 'static,
    {
        match self.project().slot.project() {
            SlotProj::Session { session } => Some(
                session
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .downcast_mut()
                    .expect("a session holds its socket's own item and error types"),
            ),
            SlotProj::Away { .. } | SlotProj::Here { .. } => None,
        }
    }

    /// The remote of a connection that went away, and whether its queue ended.
    fn remote<M, E>(self: Pin<&mut Self>) -> (&mut Remote<S, M, E>, &mut bool)
    where
        S: 'static,
        M: 'static,
        E: 'static,
    {
        match self.project().slot.project() {
            SlotProj::Away { gone } => match &mut **gone {
                Gone::Driven { remote, ended, .. } => (
                    remote
                        .downcast_mut()
                        .expect("a remote holds the stream's own item and error types"),
                    ended,
                ),
                _ => unreachable!("the driver started at the first poll"),
            },
            SlotProj::Here { .. } | SlotProj::Session { .. } => {
                unreachable!("only a connection that went away has a remote")
            }
        }
    }

    /// `poll_next` in background mode: the next item the driver read.
    #[cold]
    #[inline(never)]
    pub(super) fn poll_next_away<M, E>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<M, E>>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        if let Some(session) = self.as_mut().session::<M, E>() {
            return session.poll_next(cx);
        }
        self.as_mut().go_away();
        let (remote, ended) = self.remote::<M, E>();
        if *ended {
            return Poll::Ready(None);
        }
        let next = remote.queue.poll_next(cx);
        *ended = matches!(next, Poll::Ready(None));
        next
    }

    /// A sink operation in background mode, on the connection's writing half.
    #[cold]
    #[inline(never)]
    pub(super) fn poll_sink_away<M, E>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: super::sink::SinkOp,
    ) -> Poll<Result<(), E>>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        use super::sink::SinkOp;
        if let Some(session) = self.as_mut().session::<M, E>() {
            return match op {
                SinkOp::Ready => session.poll_ready(cx),
                SinkOp::Flush => session.poll_flush(cx),
                SinkOp::Close => session.poll_close(cx),
            };
        }
        self.as_mut().go_away();
        let sink = Pin::new(&mut self.remote::<M, E>().0.sink);
        match op {
            SinkOp::Ready => sink.poll_ready(cx),
            SinkOp::Flush => sink.poll_flush(cx),
            SinkOp::Close => sink.poll_close(cx),
        }
    }

    /// `start_send` in background mode (after a `poll_ready`, so the stream went away).
    #[cold]
    #[inline(never)]
    pub(super) fn start_send_away<M, E>(mut self: Pin<&mut Self>, item: M) -> Result<(), E>
    where
        S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
        M: WsMessage + Send + Sync + 'static,
        E: From<Dead> + Send + Sync + 'static,
    {
        if let Some(session) = self.as_mut().session::<M, E>() {
            return session.start_send(item);
        }
        self.as_mut().go_away();
        Pin::new(&mut self.remote::<M, E>().0.sink).start_send(item)
    }

    /// Whether the handler has read the end of the driver's queue.
    pub(super) fn ended_away(&self) -> bool {
        matches!(&self.slot, Slot::Away { gone } if matches!(**gone, Gone::Driven { ended: true, .. }))
    }
}

/// Moves the parked stream in `gone`, with the connection's state, into a heartbeat of its
/// own run by a new task; `gone` keeps what the handler's side needs.
#[cold]
#[inline(never)]
fn start<S, M, E, K>(
    gone: &mut Gone<S>,
    conn: &mut Conn,
    protocol: &Protocol,
    shared: &Arc<Shared>,
    keep: impl FnOnce(&S) -> Option<K>,
) where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
    K: Send + Sync + 'static,
{
    let Gone::Parked(inner) = std::mem::replace(gone, Gone::Moving) else {
        return;
    };
    let keepsake = keep(&inner).map(|k| Box::new(k) as Box<dyn Any + Send + Sync>);
    // The driver takes the schedule as it stands (the first tick was drawn at construction);
    // the handler's side keeps a fresh copy it never runs.
    let conn = std::mem::replace(conn, Conn::new(conn.config(shared)));
    let driven = Driven {
        hb: Heartbeat {
            slot: Slot::Here {
                inner: Box::pin(inner),
            },
            protocol: protocol.clone(),
            shared: Hub(shared.clone()),
            conn,
        },
    };
    let (sink, stream) = driven.split();
    let queue = Arc::new(Queue::new(QUEUE));
    let driver = tokio::spawn(drive(stream, queue.clone(), shared.clone())).abort_handle();
    *gone = Gone::Driven {
        remote: Box::new(Remote {
            sink,
            queue,
            driver,
        }),
        ended: false,
        keepsake,
    };
}

/// The driver: reads the connection (which runs its heartbeat) into the queue, and stops
/// reading while the queue is full. That silence is ours, not the peer's: the pause is noted
/// in the wake hub, and the next tick does not count a miss for it.
async fn drive<S, M, E>(
    mut stream: SplitStream<Driven<S>>,
    queue: Arc<Queue<Result<M, E>>>,
    shared: Arc<Shared>,
) where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    // The queue is closed however this ends, even aborted: the handler then reads the end.
    struct Closing<'q, T>(&'q Queue<T>);
    impl<T> Drop for Closing<'_, T> {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _closing = Closing(&queue);
    loop {
        let mut paused = false;
        std::future::poll_fn(|cx| {
            let room = queue.poll_room(cx);
            if room.is_pending() && !paused {
                paused = true;
                shared.pause_reading(true);
            }
            room
        })
        .await;
        if paused {
            shared.pause_reading(false);
        }
        match stream.next().await {
            Some(item) => queue.push(item),
            None => return,
        }
    }
}
