//! [`Heartbeat::into_parts`], which hands back the message the writing side read ahead with
//! the wrapped stream, and the bounds behind the stream's `size_hint`.

use futures_core::Stream;

use super::Heartbeat;
use super::state::State;

impl<S> Heartbeat<S>
where
    S: Stream,
    S::Item: 'static,
{
    /// Stops the heartbeat and returns the wrapped stream with the item the writing side
    /// read ahead for the reader, if it holds one (see [`Heartbeat`]: a handler that only
    /// writes gets the pongs read for it, and the first data message is kept). That item
    /// came before anything still in the stream, so it goes first.
    ///
    /// ```
    /// # async fn f(ws: ws_heartbeat::Heartbeat<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>) {
    /// let (bare, read_ahead) = ws.into_parts();
    /// if let Some(msg) = read_ahead {
    ///     println!("read before the hand-over: {msg:?}");
    /// }
    /// # drop(bare);
    /// # }
    /// ```
    pub fn into_parts(self) -> (S, Option<S::Item>) {
        let mut conn = self.conn;
        // The read-ahead slot only ever holds an item of the inner stream, `S::Item`.
        let read_ahead = conn.take_kept::<S::Item>();
        (self.inner, read_ahead)
    }
}

impl<S> Heartbeat<S>
where
    S: Stream,
{
    /// The stream's `size_hint`. The inner stream's own hint says little about ours: any of
    /// its items may be a pong or a ping that is hidden (so its lower bound is not ours), and
    /// the heartbeat adds items of its own, the `Dead` error and the sink's errors met while
    /// sending a ping (so its upper bound is not ours either). What is known: an item read
    /// ahead is still to come, and once the peer is dead or the inner stream has ended,
    /// exactly what is left is.
    pub(crate) fn items_left(&self) -> (usize, Option<usize>) {
        let held = usize::from(self.conn.has_read_ahead());
        match &self.conn.state {
            State::Running(_) => (held, None),
            State::Ended => (held, Some(held)),
            State::Dead(death) => {
                let left = held + usize::from(!death.reported);
                (left, Some(left))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_core::Stream;
    use futures_util::{SinkExt, StreamExt};
    use tokio::time::sleep;
    use tokio_tungstenite::WebSocketStream;
    use tower_layer::Layer;
    use tungstenite::{Message, protocol::Role};

    use crate::HeartbeatLayer;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn into_parts_returns_the_message_a_send_only_handler_read_ahead() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let peer = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let (mut tx, mut rx) = peer.split();
        // The peer reads (so its library answers the pings) and sends one text at 1.5 s.
        tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
        tokio::spawn(async move {
            sleep(ms(1500)).await;
            tx.send(Message::text("hello")).await.unwrap();
            std::future::pending::<()>().await;
        });
        let layer = HeartbeatLayer::new().interval(ms(1000)).jitter(false);
        let mut ws = layer.layer(server);
        assert_eq!(ws.size_hint(), (0, None));
        // Only sending: at the 2 s tick the writing side reads for the pong and keeps the
        // text it finds first.
        for _ in 0..42 {
            sleep(ms(50)).await;
            ws.send(Message::text("out")).await.expect("alive");
        }
        assert_eq!(ws.handle().stats().pings_sent, 2);
        assert_eq!(ws.size_hint(), (1, None));
        let (_bare, read_ahead) = ws.into_parts();
        assert_eq!(read_ahead.unwrap().unwrap(), Message::text("hello"));
    }

    #[tokio::test(start_paused = true)]
    async fn into_parts_of_an_adapter_that_read_nothing_ahead_holds_nothing() {
        let (a, _b) = tokio::io::duplex(64);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let (_bare, read_ahead) = HeartbeatLayer::new().layer(server).into_parts();
        assert!(read_ahead.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_size_hint_is_exact_once_the_stream_has_ended_or_the_peer_is_dead() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut ws = HeartbeatLayer::new().layer(server);
        drop(b);
        while ws.next().await.is_some() {}
        assert_eq!(ws.size_hint(), (0, Some(0)));

        // A peer that never reads nor answers: dead after 3 missed pings; the error is left.
        let (a, _b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let mut ws = HeartbeatLayer::new().interval(ms(1000)).layer(server);
        sleep(ms(5000)).await;
        // One poll runs the heartbeat and yields the death straight away.
        let first = ws.next().await.expect("the death");
        assert!(crate::Dead::find(&first.unwrap_err()).is_some());
        assert_eq!(ws.size_hint(), (0, Some(0)));
        assert!(ws.next().await.is_none());
    }
}
