//! The node's live upstream state, kept across snapshots: each upstream's
//! targets' health and load, its retry budget and its active checker.
//!
//! Snapshots are compiled against the registry ([`Registry::shared`],
//! [`UpstreamShared::target`]); once a configuration is published,
//! [`Registry::activate`] forgets what it removed and (re)starts the active
//! checkers whose settings or targets changed. Nothing here is touched per
//! request except through the `Arc`s a snapshot holds.

use super::active::{self, ProbeSpec, ProbeTarget};
use super::budget::RetryBudget;
use super::dns::{Answer, Dns};
use super::state::{Source, TargetState};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tollgate_model::{Config, Healthchecks, Upstream};
use tollgate_tls::ClientTls;
use uuid::Uuid;

/// A running active checker; aborted when dropped.
#[derive(Debug)]
struct Checker {
    /// What it was started with (restarted when this changes).
    spec: (Healthchecks, Vec<Arc<str>>),
    task: tokio::task::AbortHandle,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The live state of one upstream (or of a service's single host).
#[derive(Debug, Default)]
pub struct UpstreamShared {
    /// Its retry budget.
    pub budget: RetryBudget,
    targets: Mutex<HashMap<Arc<str>, Arc<TargetState>>>,
    /// Each target (`host:port`) as the published configuration expanded
    /// it: its live-state keys and addresses (empty: its name has no address).
    expanded: Mutex<HashMap<Arc<str>, Expansion>>,
    healthchecks: Mutex<Healthchecks>,
    checker: Mutex<Option<Checker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UpstreamShared {
    /// The live state of target `key` (`host:port`), created when new.
    pub fn target(&self, key: &Arc<str>) -> Arc<TargetState> {
        lock(&self.targets).entry(key.clone()).or_default().clone()
    }
}

/// A target's health as the Admin API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Health checks are on and the target is healthy.
    Healthy,
    /// The target is unhealthy (by checks or by an Admin API call).
    Unhealthy,
    /// No health check is configured and nobody marked it down.
    ChecksOff,
    /// The target's name has no address in DNS.
    DnsError,
}

impl Health {
    /// Kong's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
            Health::ChecksOff => "HEALTHCHECKS_OFF",
            Health::DnsError => "DNS_ERROR",
        }
    }
}

/// A TLS client configuration for backends, by settings hash.
type ClientConfigs = HashMap<u64, Arc<tollgate_tls::rustls::ClientConfig>>;

/// Every upstream's live state.
#[derive(Debug, Default)]
pub struct Registry {
    upstreams: Mutex<HashMap<Uuid, Arc<UpstreamShared>>>,
    /// Backend TLS settings built so far (kept across snapshots, so
    /// sessions resume and trust stores are read once).
    client_configs: Mutex<ClientConfigs>,
    /// Settings asked for since the last [`Registry::activate`]: the ones
    /// the published configuration uses (the others are dropped then).
    configs_used: Mutex<std::collections::HashSet<u64>>,
    /// Where active checkers run, and their TLS client (none: no checkers).
    checkers: Option<(tokio::runtime::Handle, Arc<ClientTls>)>,
    /// Host names resolved and re-resolved on their TTL (none: names are
    /// resolved by the system at each new connection).
    dns: Option<Arc<Dns>>,
}

/// A target's live-state keys and addresses (see [`Registry::expand`]).
type Expansion = Vec<(Arc<str>, Option<SocketAddr>)>;

/// What a target's host stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// An IP literal.
    Ip(IpAddr),
    /// A name and its current addresses (each one a balancer entry).
    Addresses(Arc<[IpAddr]>),
    /// A name DNS says has no address.
    NotFound,
    /// A name not resolved yet: dialled through the system resolver.
    Lazy,
}

/// The identity of address `addr` of target `target` (`host:port`): the
/// key of its live state, e.g. `api.internal:8080@10.0.0.7:8080`.
pub fn address_key(target: &str, addr: SocketAddr) -> Arc<str> {
    format!("{target}@{addr}").into()
}

/// A host without the brackets of an IPv6 literal.
pub fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Registry {
    /// A registry whose active checkers run on the runtime `handle` (the
    /// node gives them a thread of their own), probing https targets with
    /// `tls`.
    pub fn with_checkers(handle: tokio::runtime::Handle, tls: Arc<ClientTls>) -> Registry {
        Registry {
            checkers: Some((handle, tls)),
            ..Registry::default()
        }
    }

    /// Resolves host names with `dns` (whose [`Dns::run`] the caller runs).
    pub fn with_dns(self, dns: Arc<Dns>) -> Registry {
        Registry {
            dns: Some(dns),
            ..self
        }
    }

    /// The node's resolver, when it resolves names itself.
    pub fn dns(&self) -> Option<&Arc<Dns>> {
        self.dns.as_ref()
    }

    /// What `host` stands for now.
    pub fn resolve(&self, host: &str) -> Resolved {
        if let Ok(ip) = bare_host(host).parse::<IpAddr>() {
            return Resolved::Ip(ip);
        }
        match self.dns.as_ref().map(|d| d.answer(host)) {
            Some(Answer::Addresses(a)) => Resolved::Addresses(a),
            Some(Answer::NotFound) => Resolved::NotFound,
            Some(Answer::Pending) | None => Resolved::Lazy,
        }
    }

    /// The live-state keys and addresses of target `host:port`: one per
    /// address of a resolved name, else the target itself (`addr` None
    /// when it is dialled by name).
    pub fn expand(&self, host: &str, port: u16) -> Expansion {
        let key = super::target_key(host, port);
        match self.resolve(host) {
            Resolved::Ip(ip) => vec![(key, Some(SocketAddr::new(ip, port)))],
            Resolved::Addresses(ips) => ips
                .iter()
                .map(|ip| {
                    let addr = SocketAddr::new(*ip, port);
                    (address_key(&key, addr), Some(addr))
                })
                .collect(),
            Resolved::NotFound => Vec::new(),
            Resolved::Lazy => vec![(key, None)],
        }
    }

    /// The backend TLS configuration for settings hash `identity`, built
    /// with `build` the first time.
    pub fn client_config(
        &self,
        identity: u64,
        build: impl FnOnce() -> Result<Arc<tollgate_tls::rustls::ClientConfig>, tollgate_tls::TlsError>,
    ) -> Result<Arc<tollgate_tls::rustls::ClientConfig>, tollgate_tls::TlsError> {
        lock(&self.configs_used).insert(identity);
        if let Some(c) = lock(&self.client_configs).get(&identity) {
            return Ok(c.clone());
        }
        let config = build()?;
        lock(&self.client_configs).insert(identity, config.clone());
        Ok(config)
    }

    /// The live state of `upstream`, created when new.
    pub fn shared(&self, upstream: &Upstream) -> Arc<UpstreamShared> {
        lock(&self.upstreams)
            .entry(upstream.id)
            .or_default()
            .clone()
    }

    /// After `config` was published: forgets removed upstreams and
    /// targets, and (re)starts the active checkers that changed.
    pub fn activate(&self, config: &Config) {
        {
            let mut used = lock(&self.configs_used);
            lock(&self.client_configs).retain(|id, _| used.contains(id));
            used.clear();
        }
        let mut map = lock(&self.upstreams);
        let in_config = |id: &Uuid| config.upstreams.iter().any(|u| u.id == *id);
        // An upstream this configuration lacks is forgotten once no
        // snapshot holds it: a configuration compiled at the same time
        // (two Admin API replacements racing) may still publish it after
        // this one. Its checker stops now.
        map.retain(|id, shared| in_config(id) || Arc::strong_count(shared) > 1);
        for (id, shared) in map.iter() {
            if !in_config(id) {
                *lock(&shared.checker) = None;
            }
        }
        if let Some(dns) = &self.dns {
            let names: HashSet<&str> = config
                .upstreams
                .iter()
                .flat_map(|u| u.targets.iter().map(|t| t.host.as_str()))
                .chain(config.services.iter().map(|s| s.host.as_str()))
                .collect();
            dns.retain(&names);
        }
        for u in &config.upstreams {
            let shared = map.entry(u.id).or_default().clone();
            // Each target, or each address of a resolved name.
            let expanded: Vec<(&tollgate_model::Target, Arc<str>, Option<SocketAddr>)> = u
                .targets
                .iter()
                .flat_map(|t| {
                    self.expand(&t.host, t.port)
                        .into_iter()
                        .map(move |(key, addr)| (t, key, addr))
                })
                .collect();
            {
                let mut by_target: HashMap<Arc<str>, Expansion> = u
                    .targets
                    .iter()
                    .map(|t| (super::target_key(&t.host, t.port), Vec::new()))
                    .collect();
                for (t, key, addr) in &expanded {
                    if let Some(list) = by_target.get_mut(&*super::target_key(&t.host, t.port)) {
                        list.push((key.clone(), *addr));
                    }
                }
                *lock(&shared.expanded) = by_target;
            }
            let keys: Vec<Arc<str>> = expanded
                .iter()
                .filter(|(t, ..)| t.weight > 0)
                .map(|(_, k, _)| k.clone())
                .collect();
            let probes: Vec<ProbeTarget> = {
                let mut targets = lock(&shared.targets);
                let all: HashSet<&str> = expanded.iter().map(|(_, k, _)| &**k).collect();
                targets.retain(|k, _| all.contains(&**k));
                expanded
                    .iter()
                    .filter(|(t, ..)| t.weight > 0)
                    .map(|(t, key, addr)| ProbeTarget {
                        state: targets.entry(key.clone()).or_default().clone(),
                        key: key.clone(),
                        host: bare_host(&t.host).into(),
                        addr: *addr,
                        port: t.port,
                        dns: self.dns.clone(),
                    })
                    .collect()
            };
            *lock(&shared.healthchecks) = u.healthchecks.clone();
            let spec = (u.healthchecks.clone(), keys);
            let mut checker = lock(&shared.checker);
            if checker.as_ref().is_some_and(|c| c.spec == spec) {
                continue;
            }
            *checker = None;
            let (Some(probe), Some((rt, tls))) = (ProbeSpec::new(&u.healthchecks), &self.checkers)
            else {
                continue;
            };
            let task = rt.spawn(active::run(
                u.name.as_str().into(),
                probe,
                probes,
                tls.clone(),
            ));
            *checker = Some(Checker {
                spec,
                task: task.abort_handle(),
            });
        }
    }

    fn upstream(&self, id: Uuid) -> Option<Arc<UpstreamShared>> {
        lock(&self.upstreams).get(&id).cloned()
    }

    /// The health of target `key` (`host:port`) of upstream `id`, and of
    /// each of its addresses when it is a resolved name. A name is healthy
    /// while one of its addresses is; one without address is `DnsError`.
    pub fn health(&self, id: Uuid, key: &str) -> (Health, Vec<(SocketAddr, Health)>) {
        let Some(u) = self.upstream(id) else {
            return (Health::ChecksOff, Vec::new());
        };
        let checks_on = lock(&u.healthchecks).any_on();
        let word = |healthy: bool| match (healthy, checks_on) {
            (false, _) => Health::Unhealthy,
            (true, true) => Health::Healthy,
            (true, false) => Health::ChecksOff,
        };
        // As the data plane sees it: the expansion last published.
        let Some(expansion) = lock(&u.expanded).get(key).cloned() else {
            return (Health::ChecksOff, Vec::new());
        };
        if expansion.is_empty() {
            return (Health::DnsError, Vec::new());
        }
        let targets = lock(&u.targets);
        let mut addresses = Vec::new();
        let mut any_healthy = false;
        for (k, addr) in expansion {
            let healthy = targets.get(&k).is_none_or(|s| s.is_healthy());
            any_healthy |= healthy;
            if let Some(a) = addr {
                addresses.push((a, word(healthy)));
            }
        }
        (word(any_healthy), addresses)
    }

    /// Marks target `key` of upstream `id` healthy or not (Admin API), or
    /// only its `address` (`ip:port`) when given; false when there is no
    /// such target or address.
    pub fn set_health(&self, id: Uuid, key: &str, address: Option<&str>, healthy: bool) -> bool {
        let Some(u) = self.upstream(id) else {
            return false;
        };
        let Some(expansion) = lock(&u.expanded).get(key).cloned() else {
            return false;
        };
        let wanted: Option<SocketAddr> = match address {
            Some(a) => match a.parse() {
                Ok(a) => Some(a),
                Err(_) => return false,
            },
            None => None,
        };
        let targets = lock(&u.targets);
        let mut found = false;
        for (k, addr) in expansion {
            if wanted.is_some() && addr != wanted {
                continue;
            }
            if let Some(state) = targets.get(&k) {
                state.set_healthy(healthy, Source::Manual);
                found = true;
            }
        }
        found
    }
}
