//! The compiled, immutable configuration the data plane serves from.
//!
//! A [`Snapshot`] is built off the hot path from a validated
//! [`tollgate_model::Config`] and swapped in atomically ([`SnapshotHandle`]);
//! a request keeps the snapshot it started with until it ends.

use crate::balancer::registry::{bare_host, Registry, UpstreamShared};
use crate::balancer::state::Thresholds;
use crate::balancer::{
    target_key, Balancer, BalancerSpec, Passive, StatusSet, TargetEntry, TargetTls,
};
use arc_swap::ArcSwap;
use http::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tollgate_model::{Config, Protocol, Route, Service, Upstream};
use tollgate_plugins::runtime::{Directory, Plugin, PluginEnv};
use tollgate_router::{Router, RouterError};
use uuid::Uuid;

/// A service with its backends resolved.
#[derive(Debug)]
pub struct ServiceEntry {
    /// The service as configured.
    pub service: Service,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout (between two reads, and for the response head).
    pub read_timeout: Duration,
    /// Write timeout (a write to the backend pending this long fails).
    pub write_timeout: Duration,
    /// Retries (Kong's `retries`): further tries after a failed one.
    pub retries: u16,
    /// Its targets and how to choose one.
    pub balancer: Balancer,
    /// Whether it is spoken to in HTTP/2 (`grpc`, `grpcs`).
    pub h2: bool,
}

/// One plugin (by name) on a route's chain: the instance for requests in
/// general, and the more specific consumer-scoped instances that replace it
/// once a consumer is identified (Kong's precedence, resolved at compile time).
#[derive(Debug)]
pub struct PluginSlot {
    /// Plugin name.
    pub name: String,
    /// Priority (higher runs first).
    pub priority: i32,
    /// Instance for requests without a consumer-scoped override.
    pub default: Option<Arc<dyn Plugin>>,
    /// Consumer id → instance scoped to that consumer.
    pub by_consumer: HashMap<Uuid, Arc<dyn Plugin>>,
}

impl PluginSlot {
    /// The instance to run for a request by `consumer`.
    pub fn for_consumer(&self, consumer: Option<Uuid>) -> Option<&Arc<dyn Plugin>> {
        consumer
            .and_then(|c| self.by_consumer.get(&c))
            .or(self.default.as_ref())
    }

    /// Whether any instance in this slot needs the request body read first.
    pub fn wants_body(&self, method: &http::Method, headers: &http::HeaderMap) -> bool {
        self.default
            .iter()
            .chain(self.by_consumer.values())
            .any(|p| p.wants_body(method, headers))
    }
}

/// Kong's precedence of a plugin's scope for a route (lower = more specific),
/// or None when the plugin does not apply to that route.
fn precedence(p: &tollgate_model::Plugin, route: Uuid, service: Option<Uuid>) -> Option<u8> {
    let r = match p.route {
        Some(id) if id == route => true,
        Some(_) => return None,
        None => false,
    };
    let s = match p.service {
        Some(id) if Some(id) == service => true,
        Some(_) => return None,
        None => false,
    };
    let c = p.consumer.is_some();
    Some(match (r, s, c) {
        (true, true, true) => 1,
        (true, false, true) => 2,
        (false, true, true) => 3,
        (true, true, false) => 4,
        (false, false, true) => 5,
        (true, false, false) => 6,
        (false, true, false) => 7,
        (false, false, false) => 8,
    })
}

fn plugin_chain(
    config: &Config,
    instances: &HashMap<Uuid, Arc<dyn Plugin>>,
    route: Uuid,
    service: Option<Uuid>,
) -> Arc<[PluginSlot]> {
    let mut slots: BTreeMap<String, (PluginSlot, u8, HashMap<Uuid, u8>)> = BTreeMap::new();
    let mut orderings: HashMap<String, serde_json::Value> = HashMap::new();
    for p in &config.plugins {
        let Some(instance) = instances.get(&p.id) else {
            continue;
        };
        let Some(level) = precedence(p, route, service) else {
            continue;
        };
        let (slot, best, by_consumer_level) = slots.entry(p.name.clone()).or_insert_with(|| {
            (
                PluginSlot {
                    name: p.name.clone(),
                    priority: instance.priority(),
                    default: None,
                    by_consumer: HashMap::new(),
                },
                u8::MAX,
                HashMap::new(),
            )
        });
        match p.consumer {
            Some(c) => {
                if by_consumer_level.get(&c).is_none_or(|l| level < *l) {
                    by_consumer_level.insert(c, level);
                    slot.by_consumer.insert(c, instance.clone());
                }
            }
            None => {
                if level < *best {
                    *best = level;
                    slot.default = Some(instance.clone());
                    match &p.ordering {
                        Some(o) => {
                            orderings.insert(p.name.clone(), o.clone());
                        }
                        None => {
                            orderings.remove(&p.name);
                        }
                    }
                }
            }
        }
    }
    let mut list: Vec<PluginSlot> = slots
        .into_values()
        .map(|(mut s, best, levels)| {
            // A consumer-scoped instance only wins when its scope is more
            // specific than the general one (Kong's precedence list).
            s.by_consumer
                .retain(|c, _| levels.get(c).is_some_and(|l| *l < best));
            s
        })
        .collect();
    // Kong: priority descending, ties by name descending.
    list.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| b.name.cmp(&a.name))
    });
    apply_ordering(&mut list, &orderings);
    list.into()
}

/// Kong Enterprise's `ordering: {before: {access: [names]}, after: {access: [names]}}`:
/// moves a plugin ahead of (or behind) the named ones, keeping priority
/// order otherwise. Contradictory (cyclic) constraints stop after a bounded
/// number of moves and leave a deterministic order.
fn apply_ordering(list: &mut Vec<PluginSlot>, orderings: &HashMap<String, serde_json::Value>) {
    if orderings.is_empty() {
        return;
    }
    let names = |o: &serde_json::Value, rel: &str| -> Vec<String> {
        o.get(rel)
            .and_then(|r| r.get("access"))
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut keys: Vec<&String> = orderings.keys().collect();
    keys.sort();
    let limit = list.len() * list.len() + 1;
    for _ in 0..limit {
        let mut moved = false;
        for name in &keys {
            let Some(o) = orderings.get(*name) else {
                continue;
            };
            if let Some(i) = list.iter().position(|s| &s.name == *name) {
                let target = names(o, "before")
                    .iter()
                    .filter_map(|other| list.iter().position(|s| &s.name == other))
                    .filter(|j| *j < i)
                    .min();
                if let Some(j) = target {
                    let slot = list.remove(i);
                    list.insert(j, slot);
                    moved = true;
                }
            }
            if let Some(i) = list.iter().position(|s| &s.name == *name) {
                let target = names(o, "after")
                    .iter()
                    .filter_map(|other| list.iter().position(|s| &s.name == other))
                    .filter(|j| *j > i)
                    .max();
                if let Some(j) = target {
                    let slot = list.remove(i);
                    list.insert(j, slot);
                    moved = true;
                }
            }
        }
        if !moved {
            return;
        }
    }
}

/// A route with its compiled service.
#[derive(Debug)]
pub struct RouteEntry {
    /// The route as configured.
    pub route: Route,
    /// Its service (None: the route has no service; answered 503).
    pub service: Option<Arc<ServiceEntry>>,
    /// Whether plain http is accepted on this route.
    pub accepts_http: bool,
    /// Whether it is a gRPC route (`grpc`/`grpcs`): HTTP/2 with an
    /// `application/grpc` body only.
    pub grpc: bool,
    /// `Strict-Transport-Security` for its answers over TLS.
    pub hsts: Option<HeaderValue>,
    /// The plugins that run for this route, in execution order.
    pub plugins: Arc<[PluginSlot]>,
    /// Whether no plugin of the route edits answers from the backend: their
    /// header lines can then be passed to HTTP/1 clients as they are.
    pub raw_answers: bool,
}

/// A compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// The router over `routes`.
    pub router: Router,
    /// Routes, indexed as the router reports them.
    pub routes: Vec<RouteEntry>,
    /// The validated model this was compiled from.
    pub config: Arc<Config>,
    /// Whether any plugin has a log phase (requests then keep what it needs).
    pub has_loggers: bool,
}

/// A configuration that could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A route could not be compiled into the router.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The service's TLS settings cannot be used.
    #[error("service {service}: TLS: {reason}")]
    Tls {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// The service asks for something this version cannot do yet.
    #[error("service {service}: protocol {protocol} is not supported yet (only http, https, grpc and grpcs)")]
    Unsupported {
        /// The service.
        service: String,
        /// The protocol.
        protocol: &'static str,
    },
    /// A header value could not be built from a host name.
    #[error("service {service}: host {host:?} is not a valid Host header")]
    BadHost {
        /// The service.
        service: String,
        /// The host.
        host: String,
    },
}

fn host_header(
    host: &str,
    port: u16,
    protocol: Protocol,
    service: &str,
) -> Result<HeaderValue, CompileError> {
    let v = if port == protocol.default_port() {
        HeaderValue::from_str(host)
    } else if host.contains(':') {
        HeaderValue::from_str(&format!("[{host}]:{port}"))
    } else {
        HeaderValue::from_str(&format!("{host}:{port}"))
    };
    v.map_err(|_| CompileError::BadHost {
        service: service.to_owned(),
        host: host.to_owned(),
    })
}

/// A service's TLS to its backends, compiled.
struct ServiceTlsConfig {
    config: Arc<tollgate_tls::rustls::ClientConfig>,
    /// SNI for every target (an upstream's `host_header`); None: each
    /// target's own host.
    server_name: Option<String>,
    /// A hash of the settings, part of the pool key.
    identity: u64,
}

/// The TLS settings of `https` service `s`, built once per distinct
/// settings and kept in the registry (rustls then resumes sessions across
/// configuration changes).
fn service_tls(
    s: &Service,
    config: &Config,
    env: &PluginEnv,
    registry: &Registry,
    server_name: Option<&str>,
    label: &str,
) -> Result<ServiceTlsConfig, CompileError> {
    let tls = &s.tls;
    let cas: Vec<&str> = tls
        .ca_certificates
        .iter()
        .filter_map(|id| config.ca_certificates.iter().find(|c| c.id == *id))
        .map(|c| c.cert.as_str())
        .collect();
    let client = tls
        .client_certificate
        .and_then(|id| config.certificates.iter().find(|c| c.id == id))
        .map(|c| (c.cert.as_str(), c.key.as_str()));
    let spec = tollgate_tls::upstream::UpstreamTls {
        verify: tls.verify.unwrap_or(false),
        depth: tls.verify_depth,
        extra_cas: &cas,
        client,
        h2: s.protocol == Protocol::Grpcs,
    };
    let key = format!(
        "{}|{}|{:?}|{}|{}",
        spec.h2,
        spec.verify,
        spec.depth,
        cas.join(""),
        client.map(|(c, k)| format!("{c}{k}")).unwrap_or_default()
    );
    let identity = crate::balancer::ring::stable_hash(&[key.as_bytes()]);
    let config = registry
        .client_config(identity, || env.tls.upstream(&spec))
        .map_err(|e| CompileError::Tls {
            service: label.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(ServiceTlsConfig {
        config,
        server_name: server_name.map(str::to_owned),
        identity,
    })
}

/// One configured target.
struct TargetSpec<'a> {
    host: &'a str,
    port: u16,
    weight: u32,
    header: HeaderValue,
}

/// The balancer entries of target `t`: itself, or one per address of its
/// name when DNS resolved it (none when DNS says it has no address).
fn target_entries(
    t: TargetSpec<'_>,
    registry: &Registry,
    shared: &UpstreamShared,
    tls: Option<&ServiceTlsConfig>,
    out: &mut Vec<TargetEntry>,
) {
    let target = target_key(t.host, t.port);
    let bare: Arc<str> = bare_host(t.host).into();
    let identity = tls.map_or(0, |c| c.identity);
    let tls = tls.map(|c| {
        Arc::new(TargetTls {
            config: c.config.clone(),
            server_name: c.server_name.as_deref().unwrap_or(&bare).into(),
        })
    });
    for (key, addr) in registry.expand(t.host, t.port) {
        let pool_key = match &tls {
            // The same address with other TLS settings is another backend.
            Some(c) => format!("{key}|tls|{}|{:x}", c.server_name, identity).into(),
            None => key.clone(),
        };
        out.push(TargetEntry {
            state: shared.target(&key),
            pool_key,
            tls: tls.clone(),
            key,
            target: target.clone(),
            host: bare.clone(),
            port: t.port,
            addr,
            host_header: t.header.clone(),
            weight: t.weight,
            dns: registry.dns().cloned(),
        });
    }
}

/// The balancer settings of upstream `up`.
fn balancer_spec(up: &Upstream) -> BalancerSpec {
    let p = &up.healthchecks.passive;
    let passive = up.healthchecks.passive_on().then(|| Passive {
        healthy: StatusSet::new(&p.healthy_statuses),
        unhealthy: StatusSet::new(&p.unhealthy_statuses),
        thresholds: Thresholds {
            successes: p.successes,
            tcp_failures: p.tcp_failures,
            timeouts: p.timeouts,
            http_failures: p.http_failures,
        },
    });
    BalancerSpec {
        name: up.name.as_str().into(),
        algorithm: up.algorithm,
        hash_on: (up.hash_on.clone(), up.hash_fallback.clone()),
        passive,
        cooldown_ms: (p.cooldown * 1000.0) as u64,
        limits: up.circuit_breakers,
        unresolved: false,
    }
}

fn compile_service(
    s: &Service,
    config: &Config,
    env: &PluginEnv,
    registry: &Registry,
) -> Result<ServiceEntry, CompileError> {
    let label = s.name.clone().unwrap_or_else(|| s.id.to_string());
    let upstream = config.upstreams.iter().find(|u| u.name == s.host);
    let tls = match s.protocol {
        Protocol::Http => None,
        Protocol::Https | Protocol::Grpcs => {
            let sni = upstream.and_then(|u| u.host_header.as_deref());
            Some(service_tls(s, config, env, registry, sni, &label)?)
        }
        _ => None,
    };
    if !matches!(
        s.protocol,
        Protocol::Http | Protocol::Https | Protocol::Grpc | Protocol::Grpcs
    ) {
        // Refused rather than silently sent in clear text to a TLS port.
        return Err(CompileError::Unsupported {
            service: label,
            protocol: s.protocol.as_str(),
        });
    }
    let mut targets = Vec::new();
    let balancer = if let Some(up) = upstream {
        let shared = registry.shared(up);
        for t in up.targets.iter().filter(|t| t.weight > 0) {
            let header = match &up.host_header {
                Some(h) => host_header(h, s.protocol.default_port(), s.protocol, &label)?,
                None => host_header(&t.host, t.port, s.protocol, &label)?,
            };
            let spec = TargetSpec {
                host: &t.host,
                port: t.port,
                weight: t.weight,
                header,
            };
            target_entries(spec, registry, &shared, tls.as_ref(), &mut targets);
        }
        let mut spec = balancer_spec(up);
        spec.unresolved = targets.is_empty() && !up.targets.iter().all(|t| t.weight == 0);
        Balancer::new(spec, targets, shared)
    } else {
        let shared = Arc::new(UpstreamShared::default());
        let header = host_header(&s.host, s.port, s.protocol, &label)?;
        let target = TargetSpec {
            host: &s.host,
            port: s.port,
            weight: 1,
            header,
        };
        target_entries(target, registry, &shared, tls.as_ref(), &mut targets);
        let spec = BalancerSpec {
            name: s.host.as_str().into(),
            algorithm: tollgate_model::Algorithm::RoundRobin,
            hash_on: Default::default(),
            passive: None,
            cooldown_ms: 0,
            limits: Default::default(),
            unresolved: targets.is_empty(),
        };
        Balancer::new(spec, targets, shared)
    };
    Ok(ServiceEntry {
        service: s.clone(),
        connect_timeout: Duration::from_millis(u64::from(s.connect_timeout)),
        read_timeout: Duration::from_millis(u64::from(s.read_timeout)),
        write_timeout: Duration::from_millis(u64::from(s.write_timeout)),
        retries: s.retries,
        balancer,
        h2: matches!(s.protocol, Protocol::Grpc | Protocol::Grpcs),
    })
}

impl Snapshot {
    /// Compiles a validated configuration; plugins get the node's `env`
    /// (e.g. its OAuth 2.0 tokens, which outlive snapshots), balancers the
    /// live upstream state in `registry`.
    pub fn compile(
        config: Arc<Config>,
        env: &PluginEnv,
        registry: &Registry,
    ) -> Result<Snapshot, CompileError> {
        let directory = Directory::build(&config, env);
        let mut instances: HashMap<Uuid, Arc<dyn Plugin>> = HashMap::new();
        let mut not_run = Vec::new();
        for p in config.plugins.iter().filter(|p| p.enabled) {
            let http = p.protocols.iter().any(|x| x == "http" || x == "https");
            match tollgate_plugins::runtime::instantiate(p, &directory, env) {
                Some(i) if http => {
                    instances.insert(p.id, i);
                }
                Some(_) => {}
                // acme runs in the node (certificates), not per request.
                None if p.name == "acme" => {}
                None => not_run.push(p.name.clone()),
            }
        }
        if !not_run.is_empty() {
            not_run.sort();
            not_run.dedup();
            tracing::warn!(
                "plugins stored and validated but not run by this version yet: {}",
                not_run.join(", ")
            );
        }
        let mut services = std::collections::HashMap::new();
        for s in &config.services {
            services.insert(s.id, Arc::new(compile_service(s, &config, env, registry)?));
        }
        let mut routes = Vec::new();
        for r in &config.routes {
            let service = match r.service {
                Some(id) => match services.get(&id) {
                    Some(s) if s.service.enabled => Some(s.clone()),
                    // Routes of disabled services are left out of the router.
                    _ => continue,
                },
                None => None,
            };
            let plugins = plugin_chain(&config, &instances, r.id, r.service);
            let raw_answers = plugins.iter().all(|s| {
                s.default
                    .iter()
                    .chain(s.by_consumer.values())
                    .all(|p| !p.edits_answers())
            });
            routes.push(RouteEntry {
                plugins,
                raw_answers,
                accepts_http: r
                    .protocols
                    .iter()
                    .any(|p| matches!(p, Protocol::Http | Protocol::Grpc)),
                hsts: r.hsts_max_age.and_then(|age| {
                    let sub = if r.hsts_include_subdomains {
                        "; includeSubDomains"
                    } else {
                        ""
                    };
                    HeaderValue::from_str(&format!("max-age={age}{sub}")).ok()
                }),
                grpc: r
                    .protocols
                    .iter()
                    .any(|p| matches!(p, Protocol::Grpc | Protocol::Grpcs)),
                route: r.clone(),
                service,
            });
        }
        let plain: Vec<Route> = routes.iter().map(|e| e.route.clone()).collect();
        let router = Router::new(&plain)?;
        let has_loggers = instances.values().any(|p| p.logs());
        Ok(Snapshot {
            router,
            routes,
            config,
            has_loggers,
        })
    }

    /// An empty snapshot (every request gets 404).
    pub fn empty() -> Snapshot {
        Snapshot {
            has_loggers: false,
            router: Router::default(),
            routes: Vec::new(),
            config: Arc::new(Config::default()),
        }
    }
}

/// The swappable pointer to the current snapshot.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;
