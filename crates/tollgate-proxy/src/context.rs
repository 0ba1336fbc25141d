//! What the data plane needs besides the snapshot: options fixed at start,
//! per-worker state, and per-connection facts.

use crate::access_log::AccessLog;
use crate::snapshot::SnapshotHandle;
use crate::trusted::TrustedIps;
use crate::upstream::pool::Pool;
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Data-plane options set at start (node settings).
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Clients whose `X-Forwarded-*` headers are believed.
    pub trusted_ips: TrustedIps,
    /// Where a trusted client names the real client address (what plugins
    /// see as the client IP).
    pub real_ip: crate::trusted::RealIp,
    /// Longest accepted request target (bytes); longer → 414.
    pub max_uri_len: usize,
    /// Largest request head (request line + headers, bytes); larger → 431.
    pub max_header_size: usize,
    /// Most request headers; more → 431.
    pub max_headers: usize,
    /// Time allowed to receive a request head, and to wait idle on a
    /// keep-alive connection for the next one (slowloris guard).
    pub client_header_timeout: Duration,
    /// Longest wait between two reads of a request body (nginx's client_body_timeout).
    pub client_body_timeout: Duration,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Most concurrent client connections on the node; further ones are closed at once.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// ACME challenges answered before routing (HTTP-01).
    pub acme: Option<std::sync::Arc<tollgate_tls::acme::Challenges>>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            trusted_ips: TrustedIps::default(),
            real_ip: crate::trusted::RealIp::default(),
            max_uri_len: 8 * 1024,
            max_header_size: 32 * 1024,
            max_headers: 100,
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            h2_max_concurrent_streams: 128,
            max_connections: 16_384,
            drain_timeout: Duration::from_secs(30),
            acme: None,
        }
    }
}

/// State shared by all workers.
#[derive(Debug)]
pub struct ProxyContext {
    /// The current configuration.
    pub snapshot: SnapshotHandle,
    /// Options.
    pub options: ProxyOptions,
    /// The access log, if on.
    pub access_log: Option<Arc<AccessLog>>,
    /// Connection slots (max_connections).
    pub connections: Arc<tokio::sync::Semaphore>,
}

impl ProxyContext {
    /// Shared state for a node.
    pub fn new(
        snapshot: SnapshotHandle,
        options: ProxyOptions,
        access_log: Option<Arc<AccessLog>>,
    ) -> Arc<Self> {
        let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
        Arc::new(ProxyContext {
            snapshot,
            options,
            access_log,
            connections,
        })
    }
}

/// One worker thread's state: its own connection pool, so no worker waits for another.
#[derive(Debug)]
pub struct Worker {
    /// Shared state.
    pub shared: Arc<ProxyContext>,
    /// This worker's upstream connections.
    pub pool: Arc<Pool>,
}

/// Facts about one client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Client address.
    pub client: SocketAddr,
    /// Client IP as a header value (X-Real-IP, X-Forwarded-For).
    pub client_ip_value: HeaderValue,
    /// The listener's port as a header value (X-Forwarded-Port).
    pub port_value: HeaderValue,
    /// The listener's port.
    pub port: u16,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Whether the client is in trusted_ips.
    pub trusted: bool,
    /// The connection's slot under `max_connections`; held as long as
    /// anything (the connection, or a WebSocket tunnel born from it) lives.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The certificate chain the client presented in the TLS handshake
    /// (leaf first), not verified yet (see the `mtls-auth` plugin).
    pub client_certs: Option<ClientCerts>,
}

/// A client's certificate chain, leaf first.
pub type ClientCerts = Arc<[tollgate_tls::rustls::pki_types::CertificateDer<'static>]>;

impl ConnInfo {
    /// Attaches the connection's slot.
    pub fn with_permit(mut self, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Computes the facts for a new connection.
    pub fn new(client: SocketAddr, local: SocketAddr, tls: bool, trusted: &TrustedIps) -> Self {
        let ip = client.ip();
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        ConnInfo {
            client: SocketAddr::new(ip, client.port()),
            client_ip_value: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            port_value: HeaderValue::from(local.port()),
            port: local.port(),
            tls,
            trusted: trusted.contains(ip),
            permit: None,
            client_certs: None,
        }
    }
}
