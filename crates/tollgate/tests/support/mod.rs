//! Shared test helpers: a real backend HTTP server, the real `tollgate`
//! binary started on ephemeral loopback ports, small HTTP clients, a real
//! redis-server, and certificates made for a test.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod backend;
pub mod client;
pub mod dns;
pub mod gateway;
pub mod grpc;
pub mod pebble;
pub mod redis;
pub mod tls;
pub mod windows;
