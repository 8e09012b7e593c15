//! The queue between a background connection's driver and its handler, every interleaving:
//! no item lost or reordered, the reader woken after every push (a reader that waited would
//! otherwise hang: loom reports the deadlock), room made known to the driver, the end seen
//! once.

use std::future::poll_fn;

use loom::sync::Arc;

use super::Queue;

/// The driver pushes `n` items into a queue of `capacity`, waiting for room as `drive` does,
/// and closes it; the handler reads to the end. Both as tasks of their own.
fn model(capacity: usize, n: u32) {
    loom::model(move || {
        let queue = Arc::new(Queue::new(capacity));
        let driver = {
            let queue = queue.clone();
            loom::thread::spawn(move || {
                loom::future::block_on(async {
                    for i in 0..n {
                        poll_fn(|cx| queue.poll_room(cx)).await;
                        queue.push(i);
                    }
                });
                queue.close();
            })
        };
        let read = loom::future::block_on(async {
            let mut read = Vec::new();
            while let Some(item) = poll_fn(|cx| queue.poll_next(cx)).await {
                read.push(item);
            }
            read
        });
        assert_eq!(read, (0..n).collect::<Vec<_>>(), "every item, in order");
        // The end is seen once, and stays the end.
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert_eq!(queue.poll_next(&mut cx), std::task::Poll::Ready(None));
        driver.join().unwrap();
    });
}

#[test]
fn loom_a_queue_with_room_delivers_everything_in_order() {
    model(4, 3);
}

#[test]
fn loom_a_full_queue_makes_the_driver_wait_and_wakes_it() {
    model(1, 3);
}
