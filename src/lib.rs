#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Heartbeats for any WebSocket.
//!
//! TODO crate docs
mod config;
mod error;
mod handle;
mod heartbeat;
mod layer;
mod message;
mod pacemaker;
mod random;
mod service;

pub use error::Dead;
pub use handle::{HeartbeatHandle, Stats};
pub use heartbeat::Heartbeat;
pub use layer::HeartbeatLayer;
pub use message::{MessageKind, WsMessage};
