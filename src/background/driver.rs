//! The driver task of a [`Background`](super::Background) connection: it reads the
//! connection, which runs its heartbeat, into a bounded queue for the handler, and stops
//! reading while the queue is full.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::task::AbortHandle;

use super::queue::Queue;
use crate::error::Dead;
use crate::heartbeat::Heartbeat;
use crate::message::WsMessage;
use crate::wake::Shared;

/// Items read while the handler is away wait in a queue of this many; when it is full, the
/// driver stops reading until the handler takes one.
pub(crate) const QUEUE: usize = 32;

/// What the handler and the driver share: the connection, which the driver reads and the
/// handler writes, each under the lock for the length of one poll; and the queue of what the
/// driver read.
pub(super) struct Link<S: Stream> {
    conn: Mutex<Pin<Box<Heartbeat<S>>>>,
    pub(super) queue: Queue<S::Item>,
}

impl<S: Stream> Link<S> {
    /// The connection, locked. Nothing panics while the lock is held but the inner stream
    /// itself; a poisoned lock still holds a connection whose state is whole between polls.
    pub(super) fn conn(&self) -> MutexGuard<'_, Pin<Box<Heartbeat<S>>>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the driver of `conn`; `hub` is its wake hub.
#[cold]
pub(super) fn spawn<S, M, E>(
    conn: Pin<Box<Heartbeat<S>>>,
    hub: Arc<Shared>,
) -> (Arc<Link<S>>, AbortHandle)
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + 'static,
    M: WsMessage + Send + Sync + 'static,
    E: From<Dead> + Send + Sync + 'static,
{
    let link = Arc::new(Link {
        conn: Mutex::new(conn),
        queue: Queue::new(QUEUE),
    });
    let driver = tokio::spawn(drive(link.clone(), hub)).abort_handle();
    (link, driver)
}

/// The driver: reads the connection (which runs its heartbeat) into the queue, and stops
/// reading while the queue is full. That silence is ours, not the peer's: the pause is noted
/// in the wake hub, and the next tick does not count a miss for it.
async fn drive<S, M, E>(link: Arc<Link<S>>, hub: Arc<Shared>)
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E>,
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
    let _closing = Closing(&link.queue);
    loop {
        let mut paused = false;
        std::future::poll_fn(|cx| {
            let room = link.queue.poll_room(cx);
            if room.is_pending() && !paused {
                paused = true;
                hub.pause_reading(true);
            }
            room
        })
        .await;
        if paused {
            hub.pause_reading(false);
        }
        match std::future::poll_fn(|cx| link.conn().as_mut().poll_next(cx)).await {
            Some(item) => link.queue.push(item),
            None => return,
        }
    }
}
