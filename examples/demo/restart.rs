//! Restarting the demo without dropping its pages: the listener is bound with
//! `SO_REUSEPORT`, so a second demo process can listen on the same port while the first
//! still runs; SIGTERM or Ctrl-C then drains the first (every WebSocket closed with 1012 at
//! its own moment of `--drain-ms`, the pages coming back spread over their first backoff,
//! to whichever process the kernel hands them: the draining one closes a newcomer with 1012
//! at once), and it exits once its connections are gone.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use ws_heartbeat::HeartbeatLayer;

/// `addr`, bound so that another process may bind it too.
pub fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Resolves once SIGTERM or SIGINT came and `keepalive`'s connections (every route's: the
/// demo's layers are all made from one) are drained over `window`: the demo's
/// graceful-shutdown signal, so that it accepts until then.
pub async fn drained(keepalive: HeartbeatLayer, window: Duration) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    println!("draining over {window:?}");
    let report = keepalive.drain(window).await;
    println!("drained: {report:?}");
}
