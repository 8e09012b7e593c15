//! A relay between two byte streams that a test can cut (both ends dropped, at once or
//! after a given number of bytes, mid-frame if that is where it falls) or freeze (nothing
//! more passes either way, and both ends stay open: a silent path, as a pulled cable is).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What stopped a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Cut,
    Freeze,
}

/// The controls of one relayed connection.
#[derive(Debug)]
pub struct Ctl {
    /// Bytes (both directions together) after which the relay cuts; `u64::MAX`: never.
    pub cut_after: AtomicU64,
    /// Bytes (both directions together) after which the relay freezes; `u64::MAX`: never.
    pub freeze_after: AtomicU64,
    /// Bytes passed so far.
    pub passed: AtomicU64,
    pub frozen: AtomicBool,
    pub cut: AtomicBool,
    /// When and how the relay first stopped passing bytes, by a call or at its byte limit
    /// (not when the peers close their ends): what a test measures recovery from.
    pub stopped: OnceLock<(Instant, Stop)>,
    cut_now: Notify,
}

impl Default for Ctl {
    fn default() -> Self {
        Self {
            cut_after: AtomicU64::new(u64::MAX),
            freeze_after: AtomicU64::new(u64::MAX),
            passed: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            stopped: OnceLock::new(),
            cut_now: Notify::new(),
        }
    }
}

impl Ctl {
    /// Cuts now: both ends are dropped.
    pub fn cut(&self) {
        let _ = self.stopped.set((Instant::now(), Stop::Cut));
        self.cut.store(true, Ordering::SeqCst);
        self.cut_now.notify_one();
    }

    /// Freezes now: nothing passes any more; the ends stay open until a cut.
    pub fn freeze(&self) {
        let _ = self.stopped.set((Instant::now(), Stop::Freeze));
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// How many of `n` bytes may pass before the cut or the freeze point, and which comes.
    fn allow(&self, n: u64) -> (u64, Option<bool>) {
        let passed = self.passed.load(Ordering::SeqCst);
        let cut = self.cut_after.load(Ordering::SeqCst);
        let freeze = self.freeze_after.load(Ordering::SeqCst);
        let limit = cut.min(freeze);
        if passed + n < limit {
            return (n, None);
        }
        (limit.saturating_sub(passed), Some(cut <= freeze))
    }
}

/// Relays between `a` and `b` until a cut, or until both ends close.
pub async fn relay<A, B>(a: A, b: B, ctl: Arc<Ctl>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let mut abuf = vec![0u8; 16 * 1024];
    let mut bbuf = vec![0u8; 16 * 1024];
    let (mut a_open, mut b_open) = (true, true);
    while (a_open || b_open) && !ctl.cut.load(Ordering::SeqCst) {
        tokio::select! {
            n = ar.read(&mut abuf), if a_open => {
                let n = n.unwrap_or(0);
                if n == 0 { a_open = false; let _ = bw.shutdown().await; continue; }
                if !pass(&ctl, &abuf[..n], &mut bw).await { break; }
            }
            n = br.read(&mut bbuf), if b_open => {
                let n = n.unwrap_or(0);
                if n == 0 { b_open = false; let _ = aw.shutdown().await; continue; }
                if !pass(&ctl, &bbuf[..n], &mut aw).await { break; }
            }
            _ = ctl.cut_now.notified() => break,
        }
    }
    ctl.cut.store(true, Ordering::SeqCst);
}

/// Passes `bytes` on unless frozen; `false` once the relay must cut.
async fn pass<W: AsyncWrite + Unpin>(ctl: &Ctl, bytes: &[u8], to: &mut W) -> bool {
    if ctl.frozen.load(Ordering::SeqCst) {
        return true; // read and dropped: the peers hear nothing
    }
    let (allowed, stop) = ctl.allow(bytes.len() as u64);
    let allowed = allowed as usize;
    if allowed > 0 && to.write_all(&bytes[..allowed]).await.is_err() {
        return false;
    }
    let _ = to.flush().await;
    ctl.passed.fetch_add(allowed as u64, Ordering::SeqCst);
    match stop {
        None => true,
        Some(true) => {
            let _ = ctl.stopped.set((Instant::now(), Stop::Cut));
            false
        }
        Some(false) => {
            ctl.freeze();
            true
        }
    }
}
