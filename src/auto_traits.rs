//! Which public types are `Send`, `Sync` and `Unpin`, checked at compile time: a change of
//! fields that loses one of these fails the build here rather than in a user's `spawn`.

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use crate::{Dead, Heartbeat, HeartbeatHandle, HeartbeatLayer, Progress, Settings, Stats};

type Ws = WebSocketStream<TcpStream>;

fn send_sync_unpin<T: Send + Sync + Unpin>() {}

#[test]
fn the_heartbeat_types_are_send_sync_and_unpin() {
    send_sync_unpin::<Heartbeat<Ws>>();
    send_sync_unpin::<HeartbeatLayer>();
    send_sync_unpin::<HeartbeatHandle>();
    send_sync_unpin::<Settings<'static>>();
    send_sync_unpin::<Stats>();
    send_sync_unpin::<Dead>();
    send_sync_unpin::<Progress>();
    // The modes: a background connection is moved to and from its driver task, a session
    // is held by its handler's task; both are `Unpin` whatever the stream.
    send_sync_unpin::<crate::background::Background<Ws>>();
    send_sync_unpin::<crate::background::BackgroundLayer>();
    send_sync_unpin::<crate::DrainReport>();
}

#[test]
fn a_drain_is_a_send_future_that_outlives_its_layer() {
    // `tokio::spawn(layer.drain(window))` from a shutdown path.
    fn send_static<T: Send + 'static>(_: T) {}
    send_static(HeartbeatLayer::new().drain(std::time::Duration::ZERO));
}

#[cfg(feature = "resume")]
#[test]
fn the_session_types_are_send_sync_and_unpin() {
    use crate::resume::{Resume, Session, SessionLost, Sessions};
    send_sync_unpin::<Session<Ws>>();
    send_sync_unpin::<Sessions>();
    send_sync_unpin::<Resume>();
    send_sync_unpin::<SessionLost>();
}

#[cfg(feature = "axum")]
#[test]
fn the_axum_drop_in_is_send_and_unpin_like_axums_own() {
    // Not `Sync`: axum's is not (hyper's upgraded connection is a `dyn Io + Send`).
    fn send_unpin<T: Send + Unpin>() {}
    send_unpin::<crate::axum::WebSocket>();
    send_unpin::<::axum::extract::ws::WebSocket>();
}

#[cfg(feature = "reconnect")]
#[test]
fn the_reconnecting_client_is_send_and_unpin_but_not_sync() {
    use crate::reconnect::{Backoff, Error, Event, Reason, Reconnect, ReconnectBuilder};

    fn send_unpin<T: Send + Unpin>() {}

    /// Compiles only when `T` is not `Sync` (with a `Sync` type both impls apply and the call
    /// is ambiguous), the trick of the `static_assertions` crate.
    fn not_sync<T, Marker>()
    where
        T: NotSync<Marker>,
    {
    }

    trait NotSync<Marker> {}
    impl<T> NotSync<()> for T {}
    impl<T: Sync> NotSync<u8> for T {}

    send_unpin::<Reconnect<Ws>>();
    send_unpin::<ReconnectBuilder<Ws>>();
    not_sync::<Reconnect<Ws>, _>();
    not_sync::<ReconnectBuilder<Ws>, _>();
    // The errors and events go anywhere, `Box<dyn Error + Send + Sync>` included.
    send_sync_unpin::<Error>();
    send_sync_unpin::<Reason>();
    send_sync_unpin::<Event>();
    send_sync_unpin::<Backoff>();
}

#[cfg(feature = "tokio-websockets")]
#[test]
fn a_tokio_websockets_heartbeat_is_send_sync_and_unpin() {
    send_sync_unpin::<Heartbeat<tokio_websockets::WebSocketStream<TcpStream>>>();
}

#[cfg(feature = "actix")]
#[test]
fn the_actix_stream_is_unpin_like_actix_ws_own() {
    // Not `Send`: actix-ws's stream is not (actix keeps a connection on one thread).
    fn unpin<T: Unpin>() {}
    unpin::<crate::actix::MessageStream>();
    unpin::<::actix_ws::MessageStream>();
}
