//! Keep-alive connection pool to backends.
//!
//! One pool per worker thread, so checking a connection out never contends
//! with another thread (the mutex is only ever taken by its own worker).
//! Pools live outside the configuration snapshot: a reload keeps warm
//! connections. Keys are the backend identity (`host:port` as configured,
//! plus TLS settings once upstream TLS exists).

use super::conn::Conn;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Identity of a backend connection (`host:port`).
pub type PoolKey = Arc<str>;

/// Pool limits.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Idle connections kept per backend (Kong's
    /// upstream_keepalive_pool_size, 512; 0 turns keep-alive off).
    pub max_idle_per_key: usize,
    /// How long an idle connection is kept (Kong's
    /// upstream_keepalive_idle_timeout, 60 s; 0 = no limit).
    pub idle_timeout: Duration,
    /// Requests served by one connection before it is closed (Kong's
    /// upstream_keepalive_max_requests, 10000; 0 = no limit).
    pub max_requests: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_idle_per_key: 512,
            idle_timeout: Duration::from_secs(60),
            max_requests: 10_000,
        }
    }
}

/// The idle connections of one worker (FNV-hashed: the keys are a handful
/// of short `host:port` strings from the configuration). A connection stays in the same box
/// for its whole life, so moving it in and out of requests copies a pointer.
#[derive(Debug, Default)]
pub struct Pool {
    // Boxed on purpose: the box travels with the request and back (see above).
    #[allow(clippy::vec_box)]
    idle: Mutex<HashMap<PoolKey, Vec<Box<Conn>>, fnv::FnvBuildHasher>>,
    /// HTTP/2 connections (gRPC services), one per target, shared by the
    /// requests of this worker.
    h2: Mutex<HashMap<PoolKey, H2Sender, fnv::FnvBuildHasher>>,
    options: PoolOptions,
}

/// A handle for sending requests on an HTTP/2 connection.
type H2Sender = hyper::client::conn::http2::SendRequest<crate::body::ProxyBody>;

impl Pool {
    /// An empty pool.
    pub fn new(options: PoolOptions) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::default()),
            h2: Mutex::new(HashMap::default()),
            options,
        })
    }

    /// Takes the most recently used idle connection to `key`, if any is alive.
    pub fn checkout(&self, key: &str) -> Option<Box<Conn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(mut c) = list.pop() {
            let fresh = self.options.idle_timeout.is_zero()
                || now.duration_since(c.idle_since) < self.options.idle_timeout;
            if fresh && c.is_usable() {
                return Some(c);
            }
        }
        None
    }

    /// Puts a connection back after its exchange ended cleanly.
    pub fn give_back(&self, key: PoolKey, mut conn: Box<Conn>) {
        let max = self.options.max_requests;
        if (max > 0 && conn.uses >= max) || self.options.max_idle_per_key == 0 {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() >= self.options.max_idle_per_key {
            // Drop the oldest; the newest are the warmest.
            list.remove(0);
        }
        list.push(conn);
    }

    /// The open HTTP/2 connection to `key`, if it still takes requests.
    pub fn h2_sender(&self, key: &str) -> Option<H2Sender> {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        match h2.get(key) {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                h2.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps the HTTP/2 connection to `key` for the next requests.
    pub fn put_h2_sender(&self, key: PoolKey, sender: H2Sender) {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.insert(key, sender);
    }

    /// Forgets the HTTP/2 connection to `key` (it failed).
    pub fn drop_h2_sender(&self, key: &str) {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.remove(key);
    }

    /// Number of idle connections to `key` (for tests and metrics).
    pub fn idle_count(&self, key: &str) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get(key).map_or(0, Vec::len)
    }
}
