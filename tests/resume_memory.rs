//! What a parked session holds, measured from outside: a global allocator that counts the
//! bytes each thread holds, over 1 000 sessions whose sockets went down, driven on one
//! current-thread runtime (so every allocation of theirs is on the test's thread). The
//! figure bounds the worst case of `Resume::worst_case_parked_bytes` (`Resume::PER_SESSION`
//! besides the kept messages).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws_heartbeat::HeartbeatLayer;
use ws_heartbeat::resume::{Resume, Sessions};

use support::ms;

struct Counting;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    let _ = HELD.try_with(|held| held.set(held.get() + n));
}

fn held() -> i64 {
    HELD.with(Cell::get)
}

// SAFETY: every call is passed on unchanged to the system allocator; counting touches only
// a `Cell` of the calling thread, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SESSIONS: usize = 1000;

/// Sessions started and parked in one go; returns the bytes held per parked session.
/// Also says how big each session's task (the test's handler) is.
async fn park_sessions(sessions: &Sessions, first: usize, task_bytes: &mut i64) -> i64 {
    let before = held();
    let running = Arc::new(AtomicUsize::new(0));
    for i in first..first + SESSIONS {
        let (server, mut client) = support::bare_pair().await;
        let sessions = sessions.clone();
        let running = running.clone();
        let task = async move {
            if let Ok(Some(mut session)) = sessions.accept(server).await {
                running.fetch_add(1, Ordering::Relaxed);
                // The smallest handler: read until the session ends.
                while let Some(Ok(_)) = session.next().await {}
            }
        };
        *task_bytes = std::mem::size_of_val(&task) as i64;
        tokio::spawn(task);
        let hello = format!("\u{10}hello 1 new {i:032x} {:032x} 1000", i + 7);
        client.send(Message::text(hello)).await.unwrap();
        let welcome = client.next().await.unwrap().unwrap();
        assert!(welcome.to_text().unwrap().starts_with("\u{10}welcome 1 "));
        drop(client); // the socket goes down without a Close
    }
    tokio::time::sleep(ms(10)).await;
    assert_eq!(running.load(Ordering::Relaxed), SESSIONS);
    (held() - before) / SESSIONS as i64
}

/// `n` tasks woken at once, run to their end.
async fn wake_at_once(n: usize) {
    let (go, wait) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut wait = wait.clone();
            tokio::spawn(async move { wait.wait_for(|&go| go).await.map(drop) })
        })
        .collect();
    tokio::task::yield_now().await;
    go.send_replace(true);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_parked_session_holds_at_most_per_session_bytes() {
    let sessions = HeartbeatLayer::new()
        .interval(ms(1000))
        .resume(Resume::new().window(ms(60_000)));
    // A first round grows the registry's table and the runtime's timer structures, which
    // stay: the second round measures what each session adds. And the runtime's run queue
    // grows to the most tasks woken at once, which the first ticks of connections opened
    // together are (up to 1 024, `ticker.rs`): grown beforehand too, it is not counted.
    wake_at_once(2 * 1024).await;
    let start = held();
    let mut task = 0;
    park_sessions(&sessions, 0, &mut task).await;
    let all = park_sessions(&sessions, SESSIONS, &mut task).await;
    assert_eq!(sessions.parked(), 2 * SESSIONS);
    // The handler's task is the application's: what the crate holds is the rest.
    let per_session = all - task;
    eprintln!(
        "a parked session holds {all} bytes: its handler's task {task}, the crate's own \
         {per_session} (bound {})",
        Resume::PER_SESSION
    );
    assert!(
        per_session > 0 && per_session as usize <= Resume::PER_SESSION,
        "{per_session} bytes per parked session"
    );

    // The window passes: every session ends and gives its memory back (all but what the
    // runtime's timer keeps for its next timers).
    tokio::time::sleep(ms(60_000 + 10)).await;
    assert_eq!((sessions.parked(), sessions.len()), (0, 0));
    let left = held() - start;
    eprintln!("after 2 000 sessions ended: {left} bytes still held");
    assert!(
        left < 16 * 1024,
        "{left} bytes still held after every session ended"
    );
}
