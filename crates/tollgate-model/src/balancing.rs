//! How an upstream spreads requests over its targets and decides which of
//! them are healthy (Kong's `algorithm`, `hash_*` and `healthchecks` fields).

/// A balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Smooth weighted round-robin (Kong's default).
    RoundRobin,
    /// Consistent hashing on a request property ([`HashOn`]).
    ConsistentHashing,
    /// Fewest requests in flight relative to weight.
    LeastConnections,
    /// Peak-EWMA response time, choosing between two random targets.
    Latency,
    /// Tollgate extension (`random`, Envoy's default): the less loaded of
    /// two random targets (power of two choices, least request).
    Random,
}

impl Algorithm {
    /// The name used in configuration and by the Admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::ConsistentHashing => "consistent-hashing",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::Latency => "latency",
            Algorithm::Random => "random",
        }
    }
}

/// The request property a consistent-hashing upstream hashes on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    /// Nothing (no hashing).
    #[default]
    None,
    /// The authenticated consumer's id.
    Consumer,
    /// The client address (after `trusted_ips` / real-IP resolution).
    Ip,
    /// A request header's value.
    Header(String),
    /// A cookie's value; Tollgate sets the cookie when the client has none.
    Cookie {
        /// Cookie name.
        name: String,
        /// `Path` of the cookie Tollgate sets.
        path: String,
    },
    /// The request path.
    Path,
    /// A query-string argument.
    QueryArg(String),
    /// A named capture of the route's regex path.
    UriCapture(String),
}

/// Tollgate extension (`circuit_breakers` on an upstream): per-target
/// limits past which requests fail fast (503) instead of queueing on a
/// struggling target. 0 means no limit (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitBreakers {
    /// Requests in flight to one target.
    pub max_requests: u32,
    /// Connections being opened to one target at the same time.
    pub max_pending_connections: u32,
}

/// An upstream's `healthchecks` record, with Kong's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Healthchecks {
    /// Percentage of healthy weight below which the whole upstream counts
    /// as unhealthy (0 = never).
    pub threshold: f64,
    /// Probes sent by Tollgate.
    pub active: ActiveChecks,
    /// Judgement of proxied traffic.
    pub passive: PassiveChecks,
}

/// How an active probe talks to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP/1.1 request.
    Http,
    /// An HTTP/1.1 request over TLS.
    Https,
}

/// Active health checks (`healthchecks.active`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveChecks {
    /// Probe protocol.
    pub kind: ProbeKind,
    /// Probe timeout, seconds.
    pub timeout: f64,
    /// Probes run at the same time.
    pub concurrency: u32,
    /// Path probed over http(s).
    pub http_path: String,
    /// SNI for https probes (default: the target's host).
    pub https_sni: Option<String>,
    /// Whether https probes verify the target's certificate.
    pub https_verify_certificate: bool,
    /// Extra probe headers: name → values.
    pub headers: Vec<(String, Vec<String>)>,
    /// Probing of healthy targets.
    pub healthy: ActiveHealthy,
    /// Probing of unhealthy targets.
    pub unhealthy: ActiveUnhealthy,
}

/// `healthchecks.active.healthy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveHealthy {
    /// Seconds between probes of healthy targets (0 = not probed).
    pub interval: f64,
    /// Statuses that count as a success.
    pub http_statuses: Vec<u16>,
    /// Successes that make a target healthy (0 = never by probes).
    pub successes: u32,
}

/// `healthchecks.active.unhealthy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveUnhealthy {
    /// Seconds between probes of unhealthy targets (0 = not probed).
    pub interval: f64,
    /// Statuses that count as a failure.
    pub http_statuses: Vec<u16>,
    /// Connection failures that make a target unhealthy (0 = never).
    pub tcp_failures: u32,
    /// Timeouts that make a target unhealthy (0 = never).
    pub timeouts: u32,
    /// Failing statuses that make a target unhealthy (0 = never).
    pub http_failures: u32,
}

/// Passive health checks (`healthchecks.passive`), on proxied traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveChecks {
    /// Statuses that count as a success.
    pub healthy_statuses: Vec<u16>,
    /// Successes that make a target healthy again (0 = never by traffic).
    pub successes: u32,
    /// Statuses that count as a failure.
    pub unhealthy_statuses: Vec<u16>,
    /// Connection failures that make a target unhealthy (0 = never).
    pub tcp_failures: u32,
    /// Timeouts that make a target unhealthy (0 = never).
    pub timeouts: u32,
    /// Failing statuses that make a target unhealthy (0 = never).
    pub http_failures: u32,
    /// Tollgate extension (`healthchecks.passive.unhealthy.cooldown`,
    /// seconds, default 30): a target made unhealthy by traffic gets
    /// traffic again after this long even without active checks, so it is
    /// never stuck out of the pool (0 = until active checks or an Admin API
    /// call bring it back, as Kong).
    pub cooldown: f64,
}

/// Kong's default active healthy statuses.
pub const ACTIVE_HEALTHY_STATUSES: [u16; 2] = [200, 302];
/// Kong's default active unhealthy statuses.
pub const ACTIVE_UNHEALTHY_STATUSES: [u16; 8] = [429, 404, 500, 501, 502, 503, 504, 505];
/// Kong's default passive healthy statuses.
pub const PASSIVE_HEALTHY_STATUSES: [u16; 19] = [
    200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
];
/// Kong's default passive unhealthy statuses.
pub const PASSIVE_UNHEALTHY_STATUSES: [u16; 3] = [429, 500, 503];
/// Default passive cool-down, seconds.
pub const DEFAULT_COOLDOWN: f64 = 30.0;

impl Default for Healthchecks {
    fn default() -> Self {
        Healthchecks {
            threshold: 0.0,
            active: ActiveChecks {
                kind: ProbeKind::Http,
                timeout: 1.0,
                concurrency: 10,
                http_path: "/".into(),
                https_sni: None,
                https_verify_certificate: true,
                headers: Vec::new(),
                healthy: ActiveHealthy {
                    interval: 0.0,
                    http_statuses: ACTIVE_HEALTHY_STATUSES.to_vec(),
                    successes: 0,
                },
                unhealthy: ActiveUnhealthy {
                    interval: 0.0,
                    http_statuses: ACTIVE_UNHEALTHY_STATUSES.to_vec(),
                    tcp_failures: 0,
                    timeouts: 0,
                    http_failures: 0,
                },
            },
            passive: PassiveChecks {
                healthy_statuses: PASSIVE_HEALTHY_STATUSES.to_vec(),
                successes: 0,
                unhealthy_statuses: PASSIVE_UNHEALTHY_STATUSES.to_vec(),
                tcp_failures: 0,
                timeouts: 0,
                http_failures: 0,
                cooldown: DEFAULT_COOLDOWN,
            },
        }
    }
}

impl Healthchecks {
    /// Whether active probing is on (either interval > 0).
    pub fn active_on(&self) -> bool {
        self.active.healthy.interval > 0.0 || self.active.unhealthy.interval > 0.0
    }

    /// Whether proxied traffic can change a target's health.
    pub fn passive_on(&self) -> bool {
        let p = &self.passive;
        p.tcp_failures > 0 || p.timeouts > 0 || p.http_failures > 0 || p.successes > 0
    }

    /// Whether any health checking is on (else targets report
    /// `HEALTHCHECKS_OFF`).
    pub fn any_on(&self) -> bool {
        self.active_on() || self.passive_on()
    }
}
