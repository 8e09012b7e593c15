//! [`WsMessage`]: what the adapter needs to know about a message type to heartbeat with it.

use crate::protocol::{AppFrame, AppMessage, SharedFrame};

/// What a received message means to the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind<'a> {
    /// A ping from the peer. The WebSocket library answers it; the heartbeat only hides it
    /// (or forwards it, see [`HeartbeatLayer::forward_pings`](crate::HeartbeatLayer::forward_pings)).
    Ping,
    /// A pong, with its payload. Never reaches the handler.
    Pong(&'a [u8]),
    /// A Close frame (the start or the end of the closing handshake), with its status code
    /// and reason if it has them.
    Close(Option<(u16, &'a str)>),
    /// Anything else: application data, passed through untouched.
    Data,
}

/// A WebSocket message type the heartbeat can build pings and Close frames of, and classify.
///
/// Implemented for `tungstenite::Message` (feature `tungstenite`, on by default),
/// `axum::extract::ws::Message` (feature `axum`), `actix_ws::Message` (feature `actix`) and
/// `tokio_websockets::Message` (feature `tokio-websockets`). Implement it for the message type
/// of another WebSocket library to heartbeat that library's streams; if that library does not
/// answer the peer's pings itself, also [`answer_ping`](WsMessage::answer_ping).
///
/// [`kind`](WsMessage::kind) runs once for every message in each direction, so it should be a
/// plain `match`: no allocation, no parsing.
///
/// ```
/// use ws_heartbeat::protocol::{AppFrame, AppMessage};
/// use ws_heartbeat::{MessageKind, WsMessage};
///
/// enum Frame { Text(String), Binary(Vec<u8>), Ping(Vec<u8>), Pong(Vec<u8>), Close(u16) }
///
/// impl WsMessage for Frame {
///     fn ping(payload: [u8; 8]) -> Self { Frame::Ping(payload.to_vec()) }
///     fn close(code: u16, _reason: &'static str) -> Self { Frame::Close(code) }
///     fn from_app(msg: AppMessage) -> Self {
///         match msg {
///             AppMessage::Text(t) => Frame::Text(t),
///             AppMessage::Binary(b) => Frame::Binary(b),
///         }
///     }
///     fn kind(&self) -> MessageKind<'_> {
///         match self {
///             Frame::Ping(_) => MessageKind::Ping,
///             Frame::Pong(p) => MessageKind::Pong(p),
///             Frame::Close(code) => MessageKind::Close(Some((*code, ""))),
///             Frame::Text(_) | Frame::Binary(_) => MessageKind::Data,
///         }
///     }
///     fn as_app(&self) -> Option<AppFrame<'_>> {
///         match self {
///             Frame::Text(t) => Some(AppFrame::Text(t)),
///             Frame::Binary(b) => Some(AppFrame::Binary(b)),
///             _ => None,
///         }
///     }
/// }
/// ```
pub trait WsMessage: Sized {
    /// A ping frame carrying `payload` (the heartbeat's sequence number).
    fn ping(payload: [u8; 8]) -> Self;
    /// A Close frame with a status code and a reason.
    fn close(code: u16, reason: &'static str) -> Self;
    /// A text or binary message, for application heartbeats ([`crate::protocol`]).
    fn from_app(msg: AppMessage) -> Self;
    /// What this message means to the heartbeat.
    fn kind(&self) -> MessageKind<'_>;
    /// The text or the bytes of a text or binary message, for application heartbeats.
    fn as_app(&self) -> Option<AppFrame<'_>>;

    /// This text or binary message's payload as reference-counted bytes, if the message
    /// holds it so: a session keeps a message of at least
    /// [`Resume::share_from`](crate::resume::Resume::share_from) bytes by taking a reference
    /// to it instead of a copy. Called only for messages that [`as_app`](WsMessage::as_app)
    /// gives a frame of, and only for large ones: a clone of the reference costs two atomic
    /// operations, which a small copy does not.
    ///
    /// The default, `None`, has every kept message copied. The built-in implementations
    /// share: tungstenite's, axum's, actix-ws's and tokio-websockets' payloads are
    /// `bytes::Bytes` (or wrap one).
    #[inline(always)]
    fn shared(&self) -> Option<SharedFrame> {
        None
    }

    /// The message of a payload a session kept shared ([`shared`](WsMessage::shared)), to
    /// send again after a resume. The default builds it with
    /// [`from_app`](WsMessage::from_app) from a copy.
    fn from_shared(frame: SharedFrame) -> Self {
        Self::from_app(frame.to_app())
    }

    /// The pong that answers this message, a ping from the peer, for a WebSocket library that
    /// leaves answering pings to the application (actix-ws). The heartbeat then sends it
    /// itself, exactly once per ping, before it reads the next frame (ARCHITECTURE.md,
    /// "The adapter": the pong-flush rule).
    ///
    /// Called only for messages whose [`kind`](WsMessage::kind) is [`MessageKind::Ping`].
    /// The default, `None`, means the library answers pings itself (tungstenite, axum,
    /// tokio-websockets): then nothing is sent and no ping pays anything for this.
    ///
    /// ```
    /// # use ws_heartbeat::protocol::{AppFrame, AppMessage};
    /// # use ws_heartbeat::{MessageKind, WsMessage};
    /// # #[derive(Clone)]
    /// enum Frame { Ping(Vec<u8>), Pong(Vec<u8>), Text(String) }
    ///
    /// impl WsMessage for Frame {
    ///     // ...
    /// #   fn ping(payload: [u8; 8]) -> Self { Frame::Ping(payload.to_vec()) }
    /// #   fn close(_code: u16, _reason: &'static str) -> Self { Frame::Text(String::new()) }
    /// #   fn from_app(_msg: AppMessage) -> Self { Frame::Text(String::new()) }
    /// #   fn kind(&self) -> MessageKind<'_> {
    /// #       match self {
    /// #           Frame::Ping(_) => MessageKind::Ping,
    /// #           Frame::Pong(p) => MessageKind::Pong(p),
    /// #           Frame::Text(_) => MessageKind::Data,
    /// #       }
    /// #   }
    /// #   fn as_app(&self) -> Option<AppFrame<'_>> { None }
    ///     // This library does not answer pings: the heartbeat does, with the same payload.
    ///     fn answer_ping(&self) -> Option<Self> {
    ///         match self {
    ///             Frame::Ping(payload) => Some(Frame::Pong(payload.clone())),
    ///             _ => None,
    ///         }
    ///     }
    /// }
    /// ```
    #[inline(always)]
    fn answer_ping(&self) -> Option<Self> {
        None
    }
}

/// For each built-in message type's tests: its text and binary messages share their
/// payload (the same bytes, not a copy) and are rebuilt from it unchanged.
#[cfg(test)]
pub(crate) fn assert_shares<M: WsMessage + std::fmt::Debug>(messages: [M; 2]) {
    for msg in messages {
        let payload = match msg.as_app() {
            Some(AppFrame::Text(text)) => text.as_ptr(),
            Some(AppFrame::Binary(bytes)) => bytes.as_ptr(),
            None => panic!("not a data message: {msg:?}"),
        };
        let shared = msg.shared().expect("shared");
        assert_eq!(shared.bytes().as_ptr(), payload, "{msg:?}: a copy");
        assert_eq!(
            matches!(shared, SharedFrame::Text(_)),
            matches!(msg.as_app(), Some(AppFrame::Text(_)))
        );
        assert_eq!(M::from_shared(shared).as_app(), msg.as_app());
    }
}

#[cfg(feature = "tungstenite")]
mod tungstenite_message {
    use super::{AppFrame, AppMessage, MessageKind, SharedFrame, WsMessage};
    use tungstenite::Message;
    use tungstenite::protocol::CloseFrame;
    use tungstenite::protocol::frame::Utf8Bytes;

    impl WsMessage for Message {
        fn ping(payload: [u8; 8]) -> Self {
            Message::Ping(tungstenite::Bytes::copy_from_slice(&payload))
        }

        fn close(code: u16, reason: &'static str) -> Self {
            Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: Utf8Bytes::from_static(reason),
            }))
        }

        fn from_app(msg: AppMessage) -> Self {
            match msg {
                AppMessage::Text(text) => Message::text(text),
                AppMessage::Binary(bytes) => Message::binary(bytes),
            }
        }

        // Every message is classified, on both paths: a call here would cost each one more
        // than the match does.
        #[inline(always)]
        fn kind(&self) -> MessageKind<'_> {
            match self {
                Message::Ping(_) => MessageKind::Ping,
                Message::Pong(payload) => MessageKind::Pong(payload),
                Message::Close(frame) => MessageKind::Close(
                    frame
                        .as_ref()
                        .map(|f| (u16::from(f.code), f.reason.as_str())),
                ),
                // tungstenite never reads a raw `Frame`; one that is sent is the user's data.
                Message::Text(_) | Message::Binary(_) | Message::Frame(_) => MessageKind::Data,
            }
        }

        #[inline]
        fn as_app(&self) -> Option<AppFrame<'_>> {
            match self {
                Message::Text(text) => Some(AppFrame::Text(text.as_str())),
                Message::Binary(bytes) => Some(AppFrame::Binary(bytes)),
                _ => None,
            }
        }

        fn shared(&self) -> Option<SharedFrame> {
            match self {
                Message::Text(text) => Some(SharedFrame::Text(text.clone().into())),
                Message::Binary(bytes) => Some(SharedFrame::Binary(bytes.clone())),
                _ => None,
            }
        }

        fn from_shared(frame: SharedFrame) -> Self {
            match frame {
                // Taken from a text message, the check passes (the only way to a `Utf8Bytes`
                // without `unsafe`); a broken `shared` loses nothing either.
                SharedFrame::Text(bytes) => match Utf8Bytes::try_from(bytes.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::text(String::from_utf8_lossy(&bytes).into_owned()),
                },
                SharedFrame::Binary(bytes) => Message::Binary(bytes),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use tungstenite::protocol::frame::coding::CloseCode;

        #[test]
        fn classifies_every_variant() {
            assert_eq!(Message::Ping(vec![1].into()).kind(), MessageKind::Ping);
            assert_eq!(
                Message::Pong(vec![7, 8].into()).kind(),
                MessageKind::Pong(&[7, 8])
            );
            assert_eq!(Message::Close(None).kind(), MessageKind::Close(None));
            assert_eq!(
                <Message as WsMessage>::close(4000, "kicked").kind(),
                MessageKind::Close(Some((4000, "kicked")))
            );
            assert_eq!(Message::text("ping").kind(), MessageKind::Data);
            assert_eq!(Message::binary(vec![0x9]).kind(), MessageKind::Data);
        }

        #[test]
        fn text_and_binary_payloads_are_shared() {
            super::super::assert_shares([Message::text("text"), Message::binary(vec![1, 2])]);
        }

        #[test]
        fn builds_ping_and_close() {
            assert_eq!(
                <Message as WsMessage>::ping([0, 0, 0, 0, 0, 0, 0, 5]),
                Message::Ping(vec![0, 0, 0, 0, 0, 0, 0, 5].into())
            );
            let Message::Close(Some(frame)) =
                <Message as WsMessage>::close(1011, "keepalive timeout")
            else {
                panic!("not a close frame");
            };
            assert_eq!(frame.code, CloseCode::Error);
            assert_eq!(frame.reason.as_str(), "keepalive timeout");
        }
    }
}

#[cfg(feature = "tokio-websockets")]
mod tokio_websockets_message {
    use super::{AppFrame, AppMessage, MessageKind, SharedFrame, WsMessage};
    use tokio_websockets::{CloseCode, Message};

    /// tokio-websockets answers the peer's pings itself (it queues the pong while reading,
    /// like tungstenite) and hands pings and pongs to the reader: the defaults apply.
    impl WsMessage for Message {
        fn ping(payload: [u8; 8]) -> Self {
            Message::ping(payload.to_vec())
        }

        fn close(code: u16, reason: &'static str) -> Self {
            // Only a code tokio-websockets accepts carries the reason; ours (1011) is one.
            Message::close(CloseCode::try_from(code).ok(), reason)
        }

        fn from_app(msg: AppMessage) -> Self {
            match msg {
                AppMessage::Text(text) => Message::text(text),
                AppMessage::Binary(bytes) => Message::binary(bytes),
            }
        }

        #[inline]
        fn kind(&self) -> MessageKind<'_> {
            if self.is_ping() {
                MessageKind::Ping
            } else if self.is_pong() {
                MessageKind::Pong(self.as_payload())
            } else if self.is_close() {
                // An empty Close carries no code (`as_close` would report 1005 for it).
                MessageKind::Close(if self.as_payload().is_empty() {
                    None
                } else {
                    self.as_close()
                        .map(|(code, reason)| (u16::from(code), reason))
                })
            } else {
                MessageKind::Data
            }
        }

        #[inline]
        fn as_app(&self) -> Option<AppFrame<'_>> {
            // Only called on received messages, which tokio-websockets has checked to be
            // UTF-8 if text: `as_text` cannot panic here.
            if let Some(text) = self.as_text() {
                Some(AppFrame::Text(text))
            } else if self.is_binary() {
                Some(AppFrame::Binary(self.as_payload()))
            } else {
                None
            }
        }

        fn shared(&self) -> Option<SharedFrame> {
            let bytes = || self.as_payload().clone().into();
            if self.is_text() {
                Some(SharedFrame::Text(bytes()))
            } else if self.is_binary() {
                Some(SharedFrame::Binary(bytes()))
            } else {
                None
            }
        }

        fn from_shared(frame: SharedFrame) -> Self {
            match frame {
                SharedFrame::Text(bytes) => Message::text(bytes),
                SharedFrame::Binary(bytes) => Message::binary(bytes),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn text_and_binary_payloads_are_shared() {
            super::super::assert_shares([Message::text("text"), Message::binary(vec![1, 2])]);
        }

        #[test]
        fn classifies_and_builds() {
            assert_eq!(
                <Message as WsMessage>::ping([0, 0, 0, 0, 0, 0, 0, 5]).kind(),
                MessageKind::Ping
            );
            assert_eq!(
                <Message as WsMessage>::ping([0, 0, 0, 0, 0, 0, 0, 5])
                    .as_payload()
                    .as_ref(),
                &[0, 0, 0, 0, 0, 0, 0, 5]
            );
            assert_eq!(Message::pong(&b"ab"[..]).kind(), MessageKind::Pong(b"ab"));
            assert_eq!(Message::close(None, "").kind(), MessageKind::Close(None));
            assert_eq!(
                <Message as WsMessage>::close(1011, "keepalive timeout").kind(),
                MessageKind::Close(Some((1011, "keepalive timeout")))
            );
            assert_eq!(Message::text("ping").kind(), MessageKind::Data);
            assert_eq!(Message::text("ping").as_app(), Some(AppFrame::Text("ping")));
            assert_eq!(
                Message::from_app(AppMessage::Binary(vec![1, 2])).as_app(),
                Some(AppFrame::Binary(&[1, 2]))
            );
            assert_eq!(Message::ping(&b"x"[..]).answer_ping().map(|_| ()), None);
        }
    }
}
