//! Byte-level progress of the transport under a WebSocket, seen by its heartbeat.
//!
//! What counts as progress: [`Progress::track`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes moving on the transport under a WebSocket, counted as life by its heartbeat.
///
/// A peer that is alive but slow (a huge message crawling over a slow link) completes no
/// frame for a long time, and a huge message of ours holds our pings back. [`Progress::track`]
/// wraps the transport, [`Heartbeat::with_progress`](crate::Heartbeat::with_progress) hands
/// its progress to the heartbeat: while bytes move, the peer is alive.
///
/// ```
/// # async fn accept(tcp: tokio::net::TcpStream) -> Result<(), tungstenite::Error> {
/// use tower::Layer;
/// use ws_heartbeat::{HeartbeatLayer, Progress};
///
/// let (tcp, progress) = Progress::track(tcp);
/// let ws = tokio_tungstenite::accept_async(tcp).await?;
/// let ws = HeartbeatLayer::new().layer(ws).with_progress(progress);
/// # Ok(())
/// # }
/// ```
///
/// What counts: bytes read from the peer, and bytes written after the transport had made us
/// wait (the peer drained what we sent, so it is reading). Bytes written into a send buffer
/// with room prove nothing (a dead peer's kernel takes a ping too) and do not count. The
/// cost: one relaxed atomic store per read or unblocked write of the transport.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    moved: Arc<AtomicBool>,
}

impl Progress {
    /// Wraps `io` so that its progress is recorded; attach the returned `Progress` to the
    /// heartbeat of the WebSocket built on it.
    pub fn track<T>(io: T) -> (Tracked<T>, Progress) {
        let progress = Progress::default();
        let tracked = Tracked {
            inner: io,
            progress: progress.clone(),
            write_blocked: false,
        };
        (tracked, progress)
    }

    /// Whether bytes moved since the last call (and forget it).
    pub(crate) fn take(&self) -> bool {
        self.moved.load(Relaxed) && self.moved.swap(false, Relaxed)
    }

    #[inline]
    fn mark(&self) {
        self.moved.store(true, Relaxed);
    }
}

pin_project! {
    /// A transport whose progress a heartbeat can see; made by [`Progress::track`].
    #[derive(Debug)]
    pub struct Tracked<T> {
        #[pin]
        inner: T,
        progress: Progress,
        // The last write had to wait: the next one that goes through proves the peer drains.
        write_blocked: bool,
    }
}

impl<T> Tracked<T> {
    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The wrapped transport.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if buf.filled().len() > before {
                this.progress.mark();
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        note_write(this.progress, this.write_blocked, &polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        note_write(this.progress, this.write_blocked, &polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

fn note_write(progress: &Progress, blocked: &mut bool, polled: &Poll<io::Result<usize>>) {
    match polled {
        Poll::Pending => *blocked = true,
        Poll::Ready(Ok(n)) if *n > 0 && *blocked => {
            *blocked = false;
            progress.mark();
        }
        Poll::Ready(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_count_and_unblocked_writes_count_but_writes_into_room_do_not() {
        let (a, mut b) = tokio::io::duplex(8);
        let (mut a, progress) = Progress::track(a);
        // Room in the pipe: a write proves nothing.
        a.write_all(b"1234").await.unwrap();
        assert!(!progress.take());
        // Bytes from the peer count.
        b.write_all(b"x").await.unwrap();
        let mut one = [0; 1];
        a.read_exact(&mut one).await.unwrap();
        assert!(progress.take());
        assert!(!progress.take(), "taken");
        // A write that had to wait for the peer to read counts once it goes through.
        let writer = tokio::spawn(async move {
            a.write_all(&[0; 32]).await.unwrap();
            a
        });
        tokio::task::yield_now().await;
        let mut sink = [0; 36];
        b.read_exact(&mut sink).await.unwrap();
        let _a = writer.await.unwrap();
        assert!(progress.take());
    }
}
