//! Host names of targets and services resolved through DNS and re-resolved
//! when their records expire (Kong's model): each address of a name becomes
//! a balancer entry of its own, with its own health.
//!
//! The data plane never waits for DNS: snapshots are compiled from the
//! answers known so far ([`Dns::answer`]), and a background task
//! ([`Dns::run`]) resolves new names at once and known ones when their TTL
//! runs out. When a name's set of addresses changes, [`Dns::changed`] wakes
//! whoever republishes the configuration (the node), so the new addresses
//! are served from the next snapshot. Until a name's first answer, a new
//! connection to it asks the same resolver ([`Dns::addresses`]), sharing a
//! lookup already running.

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The node's DNS settings (Kong's `dns_*`).
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Name servers to ask (`dns_resolver`); empty: those of `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
    /// A TTL used instead of the records' own (`dns_valid_ttl`).
    pub valid_ttl: Option<Duration>,
    /// How soon a failed lookup is retried (`dns_error_ttl`); the last
    /// addresses stay in use meanwhile.
    pub error_ttl: Duration,
    /// How soon a name that does not exist is asked again (`dns_not_found_ttl`).
    pub not_found_ttl: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            servers: Vec::new(),
            valid_ttl: None,
            error_ttl: Duration::from_secs(1),
            not_found_ttl: Duration::from_secs(30),
        }
    }
}

/// How long a connection waits for a name's first answer being looked up.
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(12);

/// Shortest time between two lookups of one name (a TTL of 0 must not turn
/// into a query loop), and the longest a record's own TTL is trusted (a
/// week-long TTL must not hide a change).
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(3600);

/// What is known of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not resolved yet (or only failures so far): connections resolve it
    /// when they open ([`Dns::addresses`]).
    Pending,
    /// Its addresses, sorted.
    Addresses(Arc<[IpAddr]>),
    /// The name does not exist or has no address records.
    NotFound,
}

#[derive(Debug)]
struct Name {
    answer: Answer,
    /// When to ask again (None: a lookup is running).
    due: Option<Instant>,
    /// When the last lookup failed, while no answer was ever had.
    failed_at: Option<Instant>,
}

/// Why the resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct DnsError(String);

/// The names in use and what DNS said about them.
#[derive(Debug)]
pub struct Dns {
    resolver: TokioResolver,
    settings: DnsSettings,
    names: Mutex<HashMap<Arc<str>, Name>>,
    /// A new name wants resolving.
    wake: Notify,
    /// Some name's addresses changed.
    changed: Notify,
    /// A lookup's outcome was recorded (wakes connections waiting for a
    /// name's first answer).
    recorded: Notify,
    /// Counts address changes (a publish compiled before a change knows
    /// it is stale, see [`Dns::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dns {
    /// A resolver with `settings` (reading `/etc/resolv.conf` when no
    /// server is given).
    pub fn new(settings: DnsSettings) -> Result<Dns, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsError(e.to_string()))?
        } else {
            let servers = settings
                .servers
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts = builder.options_mut();
        // Every lookup asks the servers: TTLs are tracked here.
        opts.cache_size = 0;
        // A records, and AAAA only for names without any (Kong asks for A
        // only by default; a name with both is not split across families).
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        opts.use_hosts_file = ResolveHosts::Always;
        let resolver = builder.build().map_err(|e| DnsError(e.to_string()))?;
        Ok(Dns {
            resolver,
            settings,
            names: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            changed: Notify::new(),
            recorded: Notify::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// What is known of `host` (a name, not an IP literal); a name seen
    /// for the first time is resolved in the background.
    pub fn answer(&self, host: &str) -> Answer {
        let mut names = lock(&self.names);
        if let Some(n) = names.get(host) {
            return n.answer.clone();
        }
        names.insert(
            host.into(),
            Name {
                answer: Answer::Pending,
                due: Some(Instant::now()),
                failed_at: None,
            },
        );
        drop(names);
        self.wake.notify_one();
        Answer::Pending
    }

    /// Forgets the names not in `in_use` (after a configuration change).
    pub fn retain(&self, in_use: &HashSet<&str>) {
        lock(&self.names).retain(|k, _| in_use.contains(&**k));
    }

    /// How many address changes were recorded so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks for a republish when addresses changed after `seen` (a
    /// configuration compiled then and published now is stale).
    pub fn published(&self, seen: u64) {
        if self.generation() != seen {
            self.changed.notify_one();
        }
    }

    /// Waits until some name's addresses changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Resolves names as they come and as they expire, forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            let mut next = now + MAX_TTL;
            let due: Vec<Arc<str>> = {
                let mut names = lock(&self.names);
                names
                    .iter_mut()
                    .filter_map(|(k, n)| match n.due {
                        Some(at) if at <= now => {
                            n.due = None;
                            Some(k.clone())
                        }
                        Some(at) => {
                            next = next.min(at);
                            None
                        }
                        None => None,
                    })
                    .collect()
            };
            for name in due {
                tokio::spawn(self.clone().refresh(name));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Looks `name` up once and records the outcome.
    async fn refresh(self: Arc<Self>, name: Arc<str>) {
        let (answer, ttl) = self.lookup(&name).await;
        self.record(&name, answer, ttl);
    }

    /// The addresses of `host` now: the known ones, or a lookup made on
    /// the spot for a name not resolved yet (its first connection).
    /// Connections share a lookup already running for the name, and fail
    /// at once within `dns_error_ttl` of a failed one.
    pub async fn addresses(&self, host: &str) -> Result<Arc<[IpAddr]>, DnsError> {
        let failed = || DnsError(format!("{host}: name resolution failed"));
        let recorded = self.recorded.notified();
        tokio::pin!(recorded);
        recorded.as_mut().enable();
        let answer = self.answer(host);
        let (in_flight, failed_recently) = {
            let names = lock(&self.names);
            names.get(host).map_or((false, false), |n| {
                (
                    n.due.is_none(),
                    n.failed_at
                        .is_some_and(|t| t.elapsed() < self.settings.error_ttl),
                )
            })
        };
        match answer {
            Answer::Addresses(a) => return Ok(a),
            Answer::NotFound => return Err(DnsError(format!("{host}: no address"))),
            Answer::Pending if failed_recently => return Err(failed()),
            Answer::Pending if in_flight => {
                let _ = tokio::time::timeout(FIRST_ANSWER_WAIT, recorded).await;
                return match self.answer(host) {
                    Answer::Addresses(a) => Ok(a),
                    _ => Err(failed()),
                };
            }
            Answer::Pending => {}
        }
        let (answer, ttl) = self.lookup(host).await;
        self.record(host, answer.clone(), ttl);
        match answer {
            Some(Answer::Addresses(a)) => Ok(a),
            _ => Err(DnsError(format!("{host}: name resolution failed"))),
        }
    }

    /// Asks the servers about `name`: the new answer (None: the lookup
    /// failed, keep the last one) and when to ask again.
    async fn lookup(&self, name: &str) -> (Option<Answer>, Duration) {
        // As written: resolv.conf's search domains and ndots apply (short
        // names such as Kubernetes services); a trailing dot opts out.
        let looked = self.resolver.lookup_ip(name).await;
        let (answer, ttl) = match looked {
            Ok(l) => {
                let mut ips: Vec<IpAddr> = l.iter().collect();
                ips.sort();
                ips.dedup();
                // The records' own TTL is kept within [1 s, 1 h];
                // dns_valid_ttl replaces it as configured.
                let ttl = self.settings.valid_ttl.unwrap_or_else(|| {
                    l.valid_until()
                        .saturating_duration_since(std::time::Instant::now())
                        .clamp(MIN_TTL, MAX_TTL)
                });
                if ips.is_empty() {
                    (Some(Answer::NotFound), self.settings.not_found_ttl)
                } else {
                    (Some(Answer::Addresses(ips.into())), ttl)
                }
            }
            Err(e) if e.is_no_records_found() => {
                tracing::warn!(%name, "DNS: no address for this name: {e}");
                (Some(Answer::NotFound), self.settings.not_found_ttl)
            }
            Err(e) => {
                // Kept: the last addresses stay in use until an answer comes.
                tracing::warn!(%name, "DNS lookup failed, keeping the last answer: {e}");
                (None, self.settings.error_ttl)
            }
        };
        (answer, ttl.max(MIN_TTL))
    }

    /// Records what a lookup of `name` found; wakes the republisher when
    /// its addresses changed.
    fn record(&self, name: &str, answer: Option<Answer>, ttl: Duration) {
        let mut names = lock(&self.names);
        // Gone while it was being looked up: nothing to record.
        let Some(n) = names.get_mut(name) else {
            return;
        };
        n.due = Some(Instant::now() + ttl);
        n.failed_at = match (&answer, &n.answer) {
            (None, Answer::Pending) => Some(Instant::now()),
            _ => None,
        };
        let changed = answer.is_some_and(|a| {
            let changed = a != n.answer;
            n.answer = a;
            changed
        });
        drop(names);
        self.recorded.notify_waiters();
        if changed {
            tracing::info!(%name, "DNS: addresses changed");
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            self.changed.notify_one();
        }
        self.wake.notify_one();
    }
}

/// The addresses to dial for `host:port`: through `dns` when the node
/// resolves names itself, else through the system resolver.
pub async fn dial_addresses(
    dns: Option<&Dns>,
    host: &str,
    port: u16,
) -> std::io::Result<Vec<SocketAddr>> {
    match dns {
        Some(d) => d
            .addresses(host)
            .await
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .map_err(|e| std::io::Error::other(e.to_string())),
        None => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
    }
}
