//! Tollgate's configuration model: the validated entities every front door
//! (declarative file, nginx.conf, Admin API) produces, and the reader for
//! Kong's declarative format (`_format_version: "3.0"`, YAML or JSON).
//!
//! Invariant: a [`Config`] value is always valid — every reference resolves,
//! names are unique, and every field is within Kong's bounds. Later stages
//! (router, proxy) rely on that and never re-validate.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod balancing;
pub mod declarative;
mod entities;
mod error;
pub mod form;

pub use balancing::*;
pub use entities::*;
pub use error::{ConfigError, FieldPath, Issue, PathSegment};
