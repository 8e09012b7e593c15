//! The background driver's queue: what the driver read, waiting for the handler. Bounded,
//! single producer, single consumer. Unlike a channel with preallocated blocks (tokio's mpsc
//! took 3.5 KiB per connection at 32 items), it holds nothing until an item comes, and gives
//! back what a burst grew once it is empty again: idle connections are the common case.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use crate::sync::{AtomicBool, AtomicWaker, Mutex, MutexGuard, lock};

/// What an emptied queue keeps: room for a steady trickle of messages, so that one does not
/// allocate per message.
const KEEP: usize = 4;

#[derive(Debug)]
pub(super) struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    /// The handler, waiting for an item.
    reader: AtomicWaker,
    /// The driver, waiting for room.
    writer: AtomicWaker,
    /// The driver is done: nothing more will come.
    closed: AtomicBool,
}

impl<T> Queue<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Nothing panics while holding the lock; a poisoned one holds a consistent queue.
        lock(&self.items)
    }

    /// The driver: `Ready` when there is room for one more item.
    pub(super) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.items().len() < self.capacity {
            return Poll::Ready(());
        }
        self.writer.register(cx.waker());
        // The handler may have taken one between the check and the registration.
        if self.items().len() < self.capacity {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The driver: an item, after `poll_room` said there is room.
    pub(super) fn push(&self, item: T) {
        self.items().push_back(item);
        self.reader.wake();
    }

    /// The driver is done.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// The handler: the next item, `None` once the driver is done and all is taken.
    pub(super) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.take() {
            return Poll::Ready(Some(item));
        }
        self.reader.register(cx.waker());
        // An item may have come, or the driver ended, before the registration.
        if let Some(item) = self.take() {
            return Poll::Ready(Some(item));
        }
        if self.closed.load(Ordering::Acquire) {
            // Whatever the driver pushed before closing is visible now (Release/Acquire).
            return Poll::Ready(self.take());
        }
        Poll::Pending
    }

    fn take(&self) -> Option<T> {
        let mut items = self.items();
        let item = items.pop_front()?;
        let was_full = items.len() + 1 == self.capacity;
        if items.is_empty() && items.capacity() > KEEP {
            // Give back what a burst grew.
            items.shrink_to(KEEP);
        }
        drop(items);
        if was_full {
            self.writer.wake();
        }
        Some(item)
    }
}

#[cfg(all(test, ws_heartbeat_loom))]
mod loom_tests;

#[cfg(all(test, not(ws_heartbeat_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use futures_util::task::{ArcWake, waker};

    use super::*;

    struct Count(AtomicUsize);
    impl ArcWake for Count {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, std::task::Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), waker(count))
    }

    #[test]
    fn bounded_in_order_and_woken_both_ways() {
        let queue = Queue::new(2);
        let (reads, reader) = counter();
        let (writes, writer) = counter();
        let (mut rcx, mut wcx) = (Context::from_waker(&reader), Context::from_waker(&writer));
        assert_eq!(queue.poll_next(&mut rcx), Poll::Pending);
        assert_eq!(queue.poll_room(&mut wcx), Poll::Ready(()));
        queue.push(1);
        assert_eq!(
            reads.0.load(Ordering::Relaxed),
            1,
            "the reader is woken by an item"
        );
        queue.push(2);
        assert_eq!(queue.poll_room(&mut wcx), Poll::Pending, "full at 2");
        assert_eq!(queue.poll_next(&mut rcx), Poll::Ready(Some(1)));
        assert_eq!(
            writes.0.load(Ordering::Relaxed),
            1,
            "the writer is woken by room"
        );
        assert_eq!(queue.poll_room(&mut wcx), Poll::Ready(()));
        queue.push(3);
        queue.close();
        assert_eq!(queue.poll_next(&mut rcx), Poll::Ready(Some(2)));
        assert_eq!(queue.poll_next(&mut rcx), Poll::Ready(Some(3)));
        assert_eq!(queue.poll_next(&mut rcx), Poll::Ready(None));
    }

    #[test]
    fn an_emptied_queue_gives_back_what_a_burst_grew() {
        let queue = Queue::new(32);
        let (_, reader) = counter();
        let mut cx = Context::from_waker(&reader);
        for i in 0..32 {
            queue.push(i);
        }
        assert!(queue.items().capacity() >= 32);
        while let Poll::Ready(Some(_)) = queue.poll_next(&mut cx) {}
        assert!(
            queue.items().capacity() <= KEEP,
            "{}",
            queue.items().capacity()
        );
    }
}
