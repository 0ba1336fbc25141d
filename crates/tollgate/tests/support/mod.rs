//! Shared test helpers: a real backend HTTP server, the real `tollgate`
//! binary started on ephemeral loopback ports, small HTTP clients, a real
//! redis-server, and certificates made for a test.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod backend;
pub mod client;
pub mod curl;
pub mod dns;
pub mod gateway;
pub mod grpc;
pub mod pebble;
pub mod redis;
pub mod tls;
pub mod windows;

/// Polls `check` every 50 ms until it holds and returns how long that took;
/// panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(
    what: &str,
    limit: std::time::Duration,
    mut check: F,
) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "never happened within {limit:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    start.elapsed()
}
