//! Tollgate's Admin API: Kong's endpoints, request forms and error shapes,
//! over the configuration store.
//!
//! [`state::ControlPlane`] owns the configuration (a mirror of the store,
//! validated whole on every write); [`api::AdminApi`] serves Kong's HTTP
//! surface over it.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acme;
pub mod api;
pub mod decode;
pub mod error;
pub mod health;
pub mod kinds;
mod password;
mod schemas;
pub mod schemas_api;
pub mod state;

pub use acme::{AcmeControl, AcmeFailure};
pub use api::AdminApi;
pub use health::{TargetHealth, TargetReport};
pub use schemas::{DbLessPluginRegistry, PluginRegistry};
pub use state::ControlPlane;
