//! A slow link: a transport that moves at most `chunk` bytes per `period` in each direction,
//! and can stop dead after a number of bytes written (a peer that freezes mid-message).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct Throttle<T> {
    inner: T,
    chunk: usize,
    period: Duration,
    read_wait: Option<Pin<Box<Sleep>>>,
    scratch: Vec<u8>,
    write_wait: Option<Pin<Box<Sleep>>>,
    /// Stop writing (for good, silently) once this many bytes went out.
    pub stop_writing_after: Option<usize>,
    pub written: usize,
}

impl<T> Throttle<T> {
    pub fn new(inner: T, chunk: usize, period: Duration) -> Self {
        Self {
            inner,
            chunk,
            period,
            read_wait: None,
            scratch: vec![0; chunk],
            write_wait: None,
            stop_writing_after: None,
            written: 0,
        }
    }
}

fn wait(slot: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(sleep) = slot {
        ready!(sleep.as_mut().poll(cx));
        *slot = None;
    }
    Poll::Ready(())
}

impl<T: AsyncRead + Unpin> AsyncRead for Throttle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(wait(&mut this.read_wait, cx));
        let room = buf.remaining().min(this.chunk);
        let mut limited = ReadBuf::new(&mut this.scratch[..room]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        buf.put_slice(limited.filled());
        this.read_wait = Some(Box::pin(tokio::time::sleep(this.period)));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Throttle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this
            .stop_writing_after
            .is_some_and(|limit| this.written >= limit)
        {
            return Poll::Pending; // frozen: never woken
        }
        ready!(wait(&mut this.write_wait, cx));
        let mut n = data.len().min(this.chunk);
        if let Some(limit) = this.stop_writing_after {
            n = n.min(limit - this.written);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..n]))?;
        this.written += n;
        this.write_wait = Some(Box::pin(tokio::time::sleep(this.period)));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
