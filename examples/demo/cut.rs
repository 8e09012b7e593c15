//! A listener whose connections the demo can cut: `GET /cut` drops the TCP connections of the
//! live session sockets without a Close frame, as a broken network would, in the middle of
//! whatever they carry.
//!
//! Every accepted `TcpStream` is wrapped in a [`Cuttable`] sharing a [`Switch`] with the
//! listener's list. Once cut, the stream drops its socket at its next poll (the peer sees the
//! connection end), its reads end and its writes fail; cutting wakes a pending read or write
//! so that this happens at once. The `/session` route marks its connections
//! ([`Conn::mark`]), and [`Cuttables::cut_marked`] cuts the marked ones that are still open.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One connection's switch: whether it is cut, whether `/cut` may cut it, and the tasks to
/// wake when it is.
#[derive(Default)]
pub struct Switch {
    cut: AtomicBool,
    marked: AtomicBool,
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl Switch {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for slot in [&self.reader, &self.writer] {
            if let Some(waker) = slot.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Registers the task, then looks again: a cut between the first look and the
    /// registration is not missed.
    fn watch(&self, slot: &Mutex<Option<Waker>>, cx: &Context<'_>) -> bool {
        let mut slot = slot.lock().unwrap();
        match &*slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        drop(slot);
        self.is_cut()
    }
}

/// The switches of the connections accepted so far (those still open).
#[derive(Default)]
pub struct Cuttables {
    list: Mutex<Vec<Weak<Switch>>>,
}

impl Cuttables {
    fn add(&self, switch: &Arc<Switch>) {
        let mut list = self.list.lock().unwrap();
        list.retain(|weak| weak.strong_count() > 0);
        list.push(Arc::downgrade(switch));
    }

    /// Cuts every open marked connection; returns how many.
    pub fn cut_marked(&self) -> usize {
        let list = self.list.lock().unwrap();
        let mut cut = 0;
        for switch in list.iter().filter_map(Weak::upgrade) {
            if switch.marked.load(Ordering::SeqCst) && !switch.is_cut() {
                switch.cut();
                cut += 1;
            }
        }
        cut
    }
}

/// A `TcpListener` whose streams can be cut; `axum::serve` takes it like the listener itself.
pub struct CuttableListener {
    inner: TcpListener,
    cuttables: Arc<Cuttables>,
}

impl CuttableListener {
    pub fn new(inner: TcpListener, cuttables: Arc<Cuttables>) -> Self {
        Self { inner, cuttables }
    }
}

impl Listener for CuttableListener {
    type Io = Cuttable;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.inner).await;
        // Small frames (a session's acknowledgements, heartbeats) go out at once: with Nagle, one
        // written while the peer has nothing to send waits for its delayed ACK (40 ms here).
        let _ = tcp.set_nodelay(true);
        let switch = Arc::new(Switch::default());
        self.cuttables.add(&switch);
        (
            Cuttable {
                tcp: Some(tcp),
                switch,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted stream that can be cut.
pub struct Cuttable {
    /// `None` once cut: the socket is closed.
    tcp: Option<TcpStream>,
    switch: Arc<Switch>,
}

impl Cuttable {
    /// The socket, unless cut (then it is dropped here, closing the connection).
    fn live(
        &mut self,
        slot: fn(&Switch) -> &Mutex<Option<Waker>>,
        cx: &Context<'_>,
    ) -> Option<Pin<&mut TcpStream>> {
        if self.tcp.is_some() && self.switch.watch(slot(&self.switch), cx) {
            self.tcp = None;
        }
        self.tcp.as_mut().map(Pin::new)
    }
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "cut by the demo")
}

impl AsyncRead for Cuttable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().live(|s| &s.reader, cx) {
            Some(tcp) => tcp.poll_read(cx, buf),
            None => Poll::Ready(Ok(())), // the end of the stream, without a Close
        }
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().live(|s| &s.writer, cx) {
            Some(tcp) => tcp.poll_write(cx, buf),
            None => Poll::Ready(Err(cut_error())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().live(|s| &s.writer, cx) {
            Some(tcp) => tcp.poll_flush(cx),
            None => Poll::Ready(Err(cut_error())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().live(|s| &s.writer, cx) {
            Some(tcp) => tcp.poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// The connection a request came on, as `ConnectInfo<Conn>`: a route marks it for `/cut`.
#[derive(Clone)]
pub struct Conn(Arc<Switch>);

impl Conn {
    /// From now on `/cut` cuts this connection.
    pub fn mark(&self) {
        self.0.marked.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        Conn(stream.io().switch.clone())
    }
}
