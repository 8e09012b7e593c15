//! [`Cause`]: how a connection ended, as the metrics name it (the `cause` label, feature
//! `metrics`). Noted where the end is decided: a death, the drain's close, the stream's end
//! or error, the adapter's drop.

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Cause {
    /// The peer's Close came first.
    PeerClose,
    /// The handler's Close came first, or the handler dropped the open connection.
    LocalClose,
    /// The heartbeat found the peer dead.
    Dead,
    /// Closed by a drain of its layer.
    Drained,
    /// The socket failed, or ended without a Close.
    Error,
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
impl Cause {
    pub(crate) const ALL: [Cause; 5] = [
        Cause::PeerClose,
        Cause::LocalClose,
        Cause::Dead,
        Cause::Drained,
        Cause::Error,
    ];

    /// The `cause` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Cause::PeerClose => "peer_close",
            Cause::LocalClose => "local_close",
            Cause::Dead => "dead",
            Cause::Drained => "drained",
            Cause::Error => "error",
        }
    }
}
