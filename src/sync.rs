//! The synchronisation primitives of the parts whose interleavings are model-checked (the
//! filing word, a session's mailbox and halves, the sessions' memory
//! budget): std's and futures' in a normal build, loom's under `RUSTFLAGS="--cfg
//! ws_heartbeat_loom"`, where the models (the `loom_tests` modules) run every interleaving
//! of them. DEVELOPING.md, "Loom models".

#[cfg(all(feature = "resume", not(ws_heartbeat_loom)))]
pub(crate) use std::sync::atomic::AtomicUsize;
#[cfg(not(ws_heartbeat_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};
#[cfg(not(ws_heartbeat_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(all(feature = "resume", ws_heartbeat_loom))]
pub(crate) use loom::sync::atomic::AtomicUsize;
#[cfg(ws_heartbeat_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};
#[cfg(ws_heartbeat_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

use std::task::Waker;

/// A waker slot for one waiting task: `futures`' `AtomicWaker`, or loom's, behind one API.
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker {
    #[cfg(not(ws_heartbeat_loom))]
    inner: futures_util::task::AtomicWaker,
    #[cfg(ws_heartbeat_loom)]
    inner: loom::future::AtomicWaker,
}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The task to wake next: `waker`'s.
    #[inline]
    pub(crate) fn register(&self, waker: &Waker) {
        #[cfg(not(ws_heartbeat_loom))]
        self.inner.register(waker);
        #[cfg(ws_heartbeat_loom)]
        self.inner.register_by_ref(waker);
    }

    /// Wakes the task registered, if any.
    #[inline]
    pub(crate) fn wake(&self) {
        self.inner.wake();
    }
}

/// A lock that a panic elsewhere does not poison for us: what the modelled parts keep under
/// a lock is consistent at every step.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
