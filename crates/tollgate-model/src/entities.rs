//! The validated entities (Kong's field names and defaults).

use std::collections::BTreeMap;
use uuid::Uuid;

/// A whole, validated configuration: what a snapshot is compiled from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Services, in file order.
    pub services: Vec<Service>,
    /// Routes (nested and top-level ones flattened), in file order.
    pub routes: Vec<Route>,
    /// Upstreams with their targets.
    pub upstreams: Vec<Upstream>,
}

/// The protocol of a service or one accepted by a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// gRPC over plain HTTP/2.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
}

impl Protocol {
    /// Kong's spelling of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Grpc => "grpc",
            Protocol::Grpcs => "grpcs",
        }
    }

    /// The default port of the scheme (80 or 443).
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Http | Protocol::Grpc => 80,
            Protocol::Https | Protocol::Grpcs => 443,
        }
    }
}

/// A backend service (Kong's Service entity).
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Entity id (given, or UUIDv5 of the name as Kong derives it).
    pub id: Uuid,
    /// Unique name, if any.
    pub name: Option<String>,
    /// Protocol to the backend (default http).
    pub protocol: Protocol,
    /// Backend host name, IP address, or the name of an [`Upstream`]
    /// (an IPv6 address is stored without brackets).
    pub host: String,
    /// Backend port (default 80, or 443 for https/grpcs `url`s).
    pub port: u16,
    /// Path prefix on the backend; `None` means "/".
    pub path: Option<String>,
    /// Retries on connect failure (default 5).
    pub retries: u16,
    /// Connect timeout in milliseconds (default 60000).
    pub connect_timeout: u32,
    /// Timeout between two writes to the backend in milliseconds (default 60000).
    pub write_timeout: u32,
    /// Timeout between two reads from the backend in milliseconds (default 60000).
    pub read_timeout: u32,
    /// When false, the service's routes are left out of the router.
    pub enabled: bool,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A route (Kong's Route entity, `traditional_compatible` flavour).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Entity id.
    pub id: Uuid,
    /// Unique name, if any.
    pub name: Option<String>,
    /// Accepted protocols (default `[http, https]`).
    pub protocols: Vec<Protocol>,
    /// Accepted methods, uppercase; empty = any.
    pub methods: Vec<String>,
    /// Accepted hosts (`a.com`, `*.a.com`, `a.*`, optionally `:port`); empty = any.
    pub hosts: Vec<String>,
    /// Path prefixes (`/p`) or regexes (`~/re`); empty = any.
    pub paths: Vec<String>,
    /// Header name (lowercase) → accepted values (`~*` prefix = regex).
    pub headers: BTreeMap<String, Vec<String>>,
    /// Strip the matched path prefix before proxying (default true).
    pub strip_path: bool,
    /// Forward the client's Host header (default false).
    pub preserve_host: bool,
    /// Priority among regex routes (default 0).
    pub regex_priority: i64,
    /// How the service path and the request path are joined (default v0).
    pub path_handling: PathHandling,
    /// Status for http requests on https-only routes (426, 301, 302, 307, 308).
    pub https_redirect_status_code: u16,
    /// Buffer the request body before proxying (default true).
    pub request_buffering: bool,
    /// Buffer the response body before sending it (default true).
    pub response_buffering: bool,
    /// The service this route forwards to (None: the route answers 503 as Kong does).
    pub service: Option<Uuid>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// Kong's `path_handling` of a route: how the upstream path is built from the
/// service `path` and the (possibly stripped) request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathHandling {
    /// Kong's default (`v0`).
    #[default]
    V0,
    /// The deprecated alternative (`v1`).
    V1,
}

impl PathHandling {
    /// Kong's spelling (`v0` or `v1`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathHandling::V0 => "v0",
            PathHandling::V1 => "v1",
        }
    }
}

impl Default for Route {
    /// Kong's defaults for every field; the id is nil and no matcher is set,
    /// so the result is only a starting point (e.g. for tests).
    fn default() -> Route {
        Route {
            id: Uuid::nil(),
            name: None,
            protocols: vec![Protocol::Http, Protocol::Https],
            methods: Vec::new(),
            hosts: Vec::new(),
            paths: Vec::new(),
            headers: BTreeMap::new(),
            strip_path: true,
            preserve_host: false,
            regex_priority: 0,
            path_handling: PathHandling::V0,
            https_redirect_status_code: 426,
            request_buffering: true,
            response_buffering: true,
            service: None,
            tags: Vec::new(),
        }
    }
}

/// A load-balancing upstream (Kong's Upstream entity); a service whose
/// `host` equals the upstream's name balances over its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Entity id.
    pub id: Uuid,
    /// Unique name (a hostname).
    pub name: String,
    /// Balancing algorithm (default round-robin).
    pub algorithm: Algorithm,
    /// Host header to send to targets instead of the target's host.
    pub host_header: Option<String>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Weighted round-robin (Kong's default).
    RoundRobin,
    /// Consistent hashing.
    ConsistentHashing,
    /// Least connections.
    LeastConnections,
    /// Latency (EWMA).
    Latency,
}

/// One backend of an upstream (Kong's Target entity).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Entity id.
    pub id: Uuid,
    /// Host part of `host:port` (an IPv6 address is stored without brackets).
    pub host: String,
    /// Port part of `host:port` (default 8000).
    pub port: u16,
    /// Weight 0–65535 (default 100); 0 disables the target.
    pub weight: u32,
    /// Free-form tags.
    pub tags: Vec<String>,
}
