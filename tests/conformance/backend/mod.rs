//! The backends under test: each starts a real server on 127.0.0.1 whose connections run a
//! [`Program`] behind a `HeartbeatLayer`, the way a user of that library would write it.

mod actix;
mod axum;
mod tokio_websockets;
mod tungstenite;

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use ws_heartbeat::HeartbeatLayer;

use crate::program::{Program, Report};

pub use self::actix::Actix;
pub use self::axum::Axum;
pub use self::tokio_websockets::TokioWebsockets;
pub use self::tungstenite::Tungstenite;

/// A WebSocket library, as a server. Servers and clients turn Nagle's algorithm off, as
/// latency-minded servers do: a heartbeat frame held back behind an unacknowledged write
/// would add TCP's delayed ACK (up to 40 ms) to the RTT.
pub trait Backend {
    /// Starts a server on 127.0.0.1:0 whose every connection runs `program`, with a heartbeat
    /// of `layer`'s settings.
    fn serve(layer: HeartbeatLayer, program: Program) -> impl Future<Output = Server>;
}

/// A running server: where to connect, and the report of each connection that ended.
pub struct Server {
    /// `ws://127.0.0.1:PORT/`
    pub url: String,
    pub reports: mpsc::UnboundedReceiver<Report>,
    /// Stops the server when the test is done with it.
    pub stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Server {
    /// The report of the next connection to end (within 10 s).
    pub async fn report(&mut self) -> Report {
        tokio::time::timeout(Duration::from_secs(10), self.reports.recv())
            .await
            .expect("no report within 10 s")
            .expect("the server is gone")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}
