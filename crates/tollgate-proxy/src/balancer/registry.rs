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
use super::state::{Source, TargetState};
use std::collections::HashMap;
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
}

impl Health {
    /// Kong's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
            Health::ChecksOff => "HEALTHCHECKS_OFF",
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
}

impl Registry {
    /// A registry whose active checkers run on the runtime `handle` (the
    /// node gives them a thread of their own), probing https targets with
    /// `tls`.
    pub fn with_checkers(handle: tokio::runtime::Handle, tls: Arc<ClientTls>) -> Arc<Registry> {
        Arc::new(Registry {
            checkers: Some((handle, tls)),
            ..Registry::default()
        })
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
        for u in &config.upstreams {
            let shared = map.entry(u.id).or_default().clone();
            let keys: Vec<Arc<str>> = u
                .targets
                .iter()
                .filter(|t| t.weight > 0)
                .map(|t| super::target_key(&t.host, t.port))
                .collect();
            let probes: Vec<ProbeTarget> = {
                let mut targets = lock(&shared.targets);
                let all: Vec<Arc<str>> = u
                    .targets
                    .iter()
                    .map(|t| super::target_key(&t.host, t.port))
                    .collect();
                targets.retain(|k, _| all.contains(k));
                u.targets
                    .iter()
                    .filter(|t| t.weight > 0)
                    .map(|t| {
                        let key = super::target_key(&t.host, t.port);
                        ProbeTarget {
                            state: targets.entry(key.clone()).or_default().clone(),
                            key,
                            host: t.host.as_str().into(),
                            port: t.port,
                        }
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

    /// The health of target `key` of upstream `id`.
    pub fn health(&self, id: Uuid, key: &str) -> Health {
        let Some(u) = self.upstream(id) else {
            return Health::ChecksOff;
        };
        let checks_on = lock(&u.healthchecks).any_on();
        let healthy = lock(&u.targets).get(key).is_none_or(|s| s.is_healthy());
        match (healthy, checks_on) {
            (false, _) => Health::Unhealthy,
            (true, true) => Health::Healthy,
            (true, false) => Health::ChecksOff,
        }
    }

    /// Marks target `key` of upstream `id` healthy or not (Admin API);
    /// false when there is no such target.
    pub fn set_health(&self, id: Uuid, key: &str, healthy: bool) -> bool {
        let Some(u) = self.upstream(id) else {
            return false;
        };
        let targets = lock(&u.targets);
        let Some(state) = targets.get(key) else {
            return false;
        };
        state.set_healthy(healthy, Source::Manual);
        true
    }
}
