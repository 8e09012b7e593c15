//! [`Kit`]: what the connections of one layer share, behind one pointer in each hub.

use std::sync::Arc;

use crate::drain::Group;
use crate::protocol::Protocol;

/// The application protocol of a layer's connections and the group its drain closes. One
/// per layer (rebuilt when the builder changes the protocol, the group kept), so that a
/// connection holds both in the 8 bytes the protocol alone took: the drain adds no byte
/// to a connection. The per-message path never looks here: whether a connection speaks an
/// application protocol is a bit of its `Rules` (`app_protocol`).
#[derive(Debug)]
pub(crate) struct Kit {
    pub(crate) protocol: Protocol,
    pub(crate) group: Arc<Group>,
}

/// The protocol of a connection without a kit (`Heartbeat::new`): control frames.
pub(crate) static CONTROL: Protocol = Protocol::Control;

impl Kit {
    /// The protocol of a connection that has `kit`.
    #[inline]
    pub(crate) fn protocol_of(kit: Option<&Arc<Kit>>) -> &Protocol {
        kit.map_or(&CONTROL, |kit| &kit.protocol)
    }
}
