//! [`Kit`]: what the connections of one layer share, behind one pointer in each hub.

use std::sync::Arc;

use crate::drain::Group;
use crate::protocol::Protocol;

/// The application protocol of a layer's connections and the group its drain closes. One
/// per layer (rebuilt when the builder changes the protocol, the group kept), so that a
/// connection holds both in the 8 bytes the protocol alone took: the drain adds no byte
/// to a connection. The per-message path never looks here: whether a connection speaks an
/// application protocol is a bit of its `Rules` (`app_protocol`).
pub(crate) struct Kit {
    pub(crate) protocol: Protocol,
    pub(crate) group: Arc<Group>,
    /// The layer's name: the `layer` label of its metrics.
    pub(crate) name: Arc<str>,
    /// Its metrics, registered with the first connection.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: std::sync::OnceLock<crate::metrics::LayerMetrics>,
}

/// The protocol of a connection without a kit (`Heartbeat::new`): control frames.
pub(crate) static CONTROL: Protocol = Protocol::Control;

impl Kit {
    /// A layer's kit.
    pub(crate) fn new(protocol: Protocol, group: Arc<Group>, name: Arc<str>) -> Self {
        Self {
            protocol,
            group,
            name,
            #[cfg(feature = "metrics")]
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// The layer's metrics (registered now, the first time).
    #[cfg(feature = "metrics")]
    pub(crate) fn metrics(&self) -> &crate::metrics::LayerMetrics {
        self.metrics
            .get_or_init(|| crate::metrics::LayerMetrics::new(&self.name))
    }

    /// The protocol of a connection that has `kit`.
    #[inline]
    pub(crate) fn protocol_of(kit: Option<&Arc<Kit>>) -> &Protocol {
        kit.map_or(&CONTROL, |kit| &kit.protocol)
    }
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}
