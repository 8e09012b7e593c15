//! The driver task of a [`Background`](super::Background) connection: spawned at the first
//! wake-up that finds the handler away, it reads the connection (which runs its heartbeat)
//! into the queue while the handler is away, and does nothing while the handler reads
//! itself ([`Link`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::link::{Link, Taken};
use crate::error::Dead;
use crate::message::WsMessage;

/// Starts the driver of `link` on `runtime`.
#[cold]
pub(super) fn spawn<S, M, E>(link: Arc<Link<S>>, runtime: &tokio::runtime::Handle)
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    // Detached: it ends with the connection, or when the handler drops its side.
    drop(runtime.spawn(Driver { link }));
}

/// The task's future: a pointer, so that the task is as small as tokio makes one.
struct Driver<S: Stream> {
    link: Arc<Link<S>>,
}

impl<S, M, E> Future for Driver<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let link = &self.link;
        // Registered before the look, so that a wake-up during it is not lost.
        link.register_driver(cx);
        if link.dropped() {
            return Poll::Ready(());
        }
        let mut guard = link.lock();
        let Some(inner) = guard.as_mut() else {
            return Poll::Ready(());
        };
        match link.take_over(inner) {
            Taken::Waiting => Poll::Pending,
            Taken::Ended => Poll::Ready(()),
        }
    }
}
