//! Tollgate's data plane.
//!
//! The binary binds listeners and hands each worker thread a [`Worker`];
//! [`server::serve`] accepts connections and runs [`handler::handle`] for every
//! request against the current [`Snapshot`], which the control plane swaps
//! atomically through a [`SnapshotHandle`]. Nothing here creates a runtime or
//! handles signals.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access_log;
pub mod balancer;
pub mod body;
pub mod chunked;
pub mod context;
pub mod downstream;
pub mod error;
pub mod fetch;
pub mod handler;
pub mod headers;
pub mod pump;
pub mod request_id;
pub mod respond;
pub mod server;
pub mod snapshot;
pub mod sock;
pub mod status;
pub mod trusted;
pub mod upstream;

pub use context::{ConnInfo, ProxyContext, ProxyOptions, Worker};
pub use snapshot::{Snapshot, SnapshotHandle};

/// `Server` header value on answers Tollgate produces itself.
pub const SERVER_TOKEN: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));
/// `Via` token added upstream and downstream.
pub const VIA_TOKEN: &str = concat!("1.1 tollgate/", env!("CARGO_PKG_VERSION"));
