//! Choosing a target for each request: the balancing algorithms, the
//! targets' live health and load, and the retry budget.
//!
//! A [`Balancer`] is compiled per upstream into each snapshot; the live
//! state it reads ([`state::TargetState`], the retry budget) comes from the
//! node's [`registry::Registry`] and outlives snapshots, so health marks,
//! counters and in-flight counts survive configuration changes.

pub mod active;
pub mod budget;
pub mod dns;
pub mod hash;
pub mod registry;
pub mod ring;
pub mod state;

use http::HeaderValue;
use registry::UpstreamShared;
use ring::Ring;
use state::{Failure, Source, TargetState, Thresholds};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tollgate_model::{Algorithm, CircuitBreakers, HashOn};

/// One backend address a service can send to.
#[derive(Debug)]
pub struct TargetEntry {
    /// Identity (key of its live state, ring point, logs): the target's
    /// `host:port`, or `host:port@ip:port` for one address of a name.
    pub key: Arc<str>,
    /// The configured target, `host:port`.
    pub target: Arc<str>,
    /// Host to connect to (name or IP).
    pub host: Arc<str>,
    /// Port to connect to.
    pub port: u16,
    /// Pre-parsed address when `host` is an IP literal (no DNS lookup).
    pub addr: Option<SocketAddr>,
    /// `Host` header sent upstream when the route does not preserve the client's.
    pub host_header: HeaderValue,
    /// Balancing weight (> 0).
    pub weight: u32,
    /// Live health and load, shared with other snapshots.
    pub state: Arc<TargetState>,
    /// Connection pool key: the address, plus the TLS identity for TLS.
    pub pool_key: Arc<str>,
    /// TLS to this target (`https` services).
    pub tls: Option<Arc<TargetTls>>,
    /// Resolves `host` when `addr` is None (else the system resolver does).
    pub dns: Option<Arc<dns::Dns>>,
}

/// How to open TLS to a target.
#[derive(Debug)]
pub struct TargetTls {
    /// Client settings (verification, trusted authorities, client certificate).
    pub config: Arc<tollgate_tls::rustls::ClientConfig>,
    /// The name sent as SNI and verified (an IP address sends no SNI).
    pub server_name: Arc<str>,
}

/// A set of HTTP statuses (100–999) as a bitmap.
#[derive(Debug, Clone)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// The set of `statuses`.
    pub fn new(statuses: &[u16]) -> Self {
        let mut bits = [0u64; 16];
        for s in statuses.iter().filter(|s| **s < 1024) {
            bits[usize::from(*s / 64)] |= 1 << (s % 64);
        }
        StatusSet(bits)
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        status < 1024 && self.0[usize::from(status / 64)] & (1 << (status % 64)) != 0
    }
}

/// How proxied traffic changes health (passive checks).
#[derive(Debug)]
pub struct Passive {
    /// Statuses that count as a success.
    pub healthy: StatusSet,
    /// Statuses that count as a failure.
    pub unhealthy: StatusSet,
    /// The thresholds.
    pub thresholds: Thresholds,
}

/// Targets already tried by one request (a retry avoids them while
/// another usable target exists).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tried {
    list: [u16; 8],
    len: u8,
}

impl Tried {
    /// Remembers target `i`.
    pub fn add(&mut self, i: usize) {
        if usize::from(self.len) < self.list.len() {
            self.list[usize::from(self.len)] = i as u16;
            self.len += 1;
        }
    }

    /// Whether target `i` was tried.
    pub fn has(&self, i: usize) -> bool {
        self.list[..usize::from(self.len)].contains(&(i as u16))
    }
}

/// A request's draw for choosing targets: a round-robin position or random
/// number, and its hash key for consistent hashing.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    n: usize,
    hash: Option<u64>,
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        let here = &seed as *const u64 as u64;
        (seed ^ here.rotate_left(32)) | 1
    });
}

/// A fast per-thread random number (xorshift64*), for choosing targets.
fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// One upstream (or a service's single host) compiled for a snapshot.
#[derive(Debug)]
pub struct Balancer {
    /// Upstream name, or the service's host.
    pub name: Arc<str>,
    targets: Vec<TargetEntry>,
    algorithm: Algorithm,
    /// Smooth weighted round-robin order, also used as a weighted sample.
    schedule: Vec<u32>,
    next: AtomicUsize,
    ring: Option<Ring>,
    /// What consistent hashing hashes on, and its fallback.
    pub hash_on: (HashOn, HashOn),
    passive: Option<Box<Passive>>,
    cooldown_ms: u64,
    limits: CircuitBreakers,
    tracks_load: bool,
    unresolved: bool,
    shared: Arc<UpstreamShared>,
}

/// What a balancer is built from.
#[derive(Debug)]
pub struct BalancerSpec {
    /// Upstream name, or the service's host.
    pub name: Arc<str>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Hash inputs (consistent hashing only).
    pub hash_on: (HashOn, HashOn),
    /// Passive checks, when on.
    pub passive: Option<Passive>,
    /// Passive cool-down, milliseconds.
    pub cooldown_ms: u64,
    /// Per-target limits.
    pub limits: CircuitBreakers,
    /// Some target's name has no address in DNS.
    pub unresolved: bool,
}

/// Why no target could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTarget {
    /// None is healthy (503 "failure to get a peer from the ring-balancer").
    Unhealthy,
    /// The healthy ones are all at their circuit-breaker limit.
    Saturated,
    /// There is no target because no name resolved (503 "name resolution failed").
    Unresolved,
}

impl Balancer {
    /// Compiles a balancer over `targets` (weight > 0) with live state `shared`.
    pub fn new(spec: BalancerSpec, targets: Vec<TargetEntry>, shared: Arc<UpstreamShared>) -> Self {
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        let ring = (spec.algorithm == Algorithm::ConsistentHashing).then(|| {
            let ids: Vec<(&str, u32)> = targets.iter().map(|t| (&*t.key, t.weight)).collect();
            Ring::new(&ids)
        });
        Balancer {
            name: spec.name,
            schedule: smooth_schedule(&weights),
            next: AtomicUsize::new(0),
            ring,
            tracks_load: spec.limits.max_requests > 0
                || matches!(
                    spec.algorithm,
                    Algorithm::LeastConnections | Algorithm::Latency | Algorithm::Random
                ),
            limits: spec.limits,
            algorithm: spec.algorithm,
            hash_on: spec.hash_on,
            passive: spec.passive.map(Box::new),
            cooldown_ms: spec.cooldown_ms,
            unresolved: spec.unresolved,
            targets,
            shared,
        }
    }

    /// The targets (weight > 0).
    pub fn targets(&self) -> &[TargetEntry] {
        &self.targets
    }

    /// The balancing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether response times feed the choice (the `latency` algorithm).
    pub fn times_answers(&self) -> bool {
        self.algorithm == Algorithm::Latency
    }

    /// Draws a ticket for one request; `hash` is its consistent-hashing key.
    pub fn ticket(&self, hash: Option<u64>) -> Ticket {
        self.shared.budget.deposit();
        let n = match self.algorithm {
            _ if self.targets.len() <= 1 => 0,
            Algorithm::Latency | Algorithm::Random => random() as usize,
            _ => self.next.fetch_add(1, Ordering::Relaxed),
        };
        Ticket { n, hash }
    }

    /// Whether target `i` is healthy (or back from its cool-down).
    fn healthy(&self, i: usize) -> bool {
        let s = &self.targets[i].state;
        s.is_healthy() || s.is_up(state::now_ms(), self.cooldown_ms)
    }

    /// Whether target `i` may get a request now: healthy, and under its
    /// circuit-breaker limit.
    fn usable(&self, i: usize) -> bool {
        self.healthy(i)
            && (self.limits.max_requests == 0
                || self.targets[i].state.in_flight() < self.limits.max_requests)
    }

    /// The target for `ticket`, avoiding those already `tried` while
    /// another usable one exists.
    pub fn choose(&self, ticket: &Ticket, tried: &Tried) -> Result<usize, NoTarget> {
        let n = self.targets.len();
        if n == 0 || self.schedule.is_empty() {
            return Err(if self.unresolved {
                NoTarget::Unresolved
            } else {
                NoTarget::Unhealthy
            });
        }
        let fresh = |i: usize| !tried.has(i) && self.usable(i);
        let first = self.schedule[ticket.n % self.schedule.len()] as usize;
        let found = match (self.algorithm, ticket.hash, &self.ring) {
            (Algorithm::ConsistentHashing, Some(h), Some(ring)) => {
                // Stop once every target was looked at (a ring has up to
                // a million points; most targets may be down).
                let mut seen = vec![false; n];
                let mut left = n;
                ring.walk(h)
                    .take_while(|i| {
                        if left == 0 {
                            return false;
                        }
                        if !seen[*i] {
                            seen[*i] = true;
                            left -= 1;
                        }
                        true
                    })
                    .find(|i| fresh(*i))
            }
            (Algorithm::LeastConnections, _, _) => {
                // Fewest in flight per unit of weight (nginx's least_conn);
                // ties go to the round-robin choice, so light load still
                // follows weights.
                let mut best: Option<(u64, usize)> = None;
                for i in (0..n).map(|k| (first + k) % n).filter(|i| fresh(*i)) {
                    let t = &self.targets[i];
                    let score = u64::from(t.state.in_flight()) * 1_000_000 / u64::from(t.weight);
                    if best.is_none_or(|(b, _)| score < b) {
                        best = Some((score, i));
                    }
                }
                best.map(|(_, i)| i)
            }
            (Algorithm::Latency | Algorithm::Random, _, _) if n > 1 => {
                self.two_choices(ticket, &fresh)
            }
            _ => None,
        };
        let ring_order = |k: usize| (first + k) % n;
        found
            .or_else(|| (0..n).map(ring_order).find(|i| fresh(*i)))
            // Every usable target was tried: try one again.
            .or_else(|| (0..n).map(ring_order).find(|i| self.usable(*i)))
            .ok_or_else(|| {
                if (0..n).any(|i| self.healthy(i)) {
                    NoTarget::Saturated
                } else {
                    NoTarget::Unhealthy
                }
            })
    }

    /// Counts a connection being opened to target `i`; None when its
    /// `max_pending_connections` are being opened already.
    pub fn connecting(&self, i: usize) -> Option<state::Connecting> {
        self.targets[i]
            .state
            .connecting(self.limits.max_pending_connections)
    }

    /// Power of two choices: two targets drawn by weight, the less loaded
    /// (or, for `latency`, the faster under load) wins.
    fn two_choices(&self, ticket: &Ticket, fresh: &dyn Fn(usize) -> bool) -> Option<usize> {
        let len = self.schedule.len();
        let a = self.schedule[ticket.n % len] as usize;
        let mut b = self.schedule[(random() as usize) % len] as usize;
        if b == a {
            b = (a + 1 + (random() as usize) % (self.targets.len() - 1)) % self.targets.len();
        }
        let now = state::now_ms();
        let score = |i: usize| -> f64 {
            let s = &self.targets[i].state;
            let load = f64::from(s.in_flight());
            match self.algorithm {
                Algorithm::Latency => (s.latency(now) + 1.0) * (load + 1.0),
                // As least-connections: in flight per weight; a tie (both
                // idle) keeps the first draw, so light load follows weights.
                _ => load / f64::from(self.targets[i].weight),
            }
        };
        match (fresh(a), fresh(b)) {
            (true, true) if score(b) < score(a) => Some(b),
            (true, _) => Some(a),
            (false, true) => Some(b),
            (false, false) => None,
        }
    }

    /// Target `i`.
    pub fn target(&self, i: usize) -> &TargetEntry {
        &self.targets[i]
    }

    /// Starts a request to target `i`: counted in flight when the
    /// algorithm looks at load.
    pub fn begin(&self, i: usize) -> Option<state::Load> {
        self.tracks_load.then(|| self.targets[i].state.begin())
    }

    /// Whether the retry budget allows one more retry.
    pub fn may_retry(&self) -> bool {
        self.shared.budget.withdraw()
    }

    /// Reports how a request to target `i` went: its status, or the
    /// failure that ended it; and its time to the response head.
    pub fn report(&self, i: usize, outcome: Result<u16, Failure>, micros: Option<u64>) {
        let state = &self.targets[i].state;
        if let (Some(us), Algorithm::Latency) = (micros, self.algorithm) {
            state.observe(us);
        }
        let Some(p) = &self.passive else { return };
        match outcome {
            Ok(status) if p.unhealthy.contains(status) => {
                if state.failure(Failure::Http, &p.thresholds, Source::Passive) {
                    tracing::warn!(upstream = %self.name, target = %self.targets[i].key,
                        "target marked unhealthy by passive checks ({status} answers)");
                }
            }
            Ok(status) if p.healthy.contains(status) => {
                // Traffic only vouches for targets traffic took down, once
                // their cool-down let them back; active checks and the
                // Admin API decide for the ones they marked.
                if !state.is_healthy() && !state.down_by_passive() {
                    return;
                }
                let probation =
                    !state.is_healthy() && state.is_up(state::now_ms(), self.cooldown_ms);
                if state.success(&p.thresholds, probation) {
                    tracing::info!(upstream = %self.name, target = %self.targets[i].key,
                        "target healthy again");
                }
            }
            Ok(_) => {}
            Err(f) => {
                if state.failure(f, &p.thresholds, Source::Passive) {
                    tracing::warn!(upstream = %self.name, target = %self.targets[i].key,
                        "target marked unhealthy by passive checks ({f:?} failures)");
                }
            }
        }
    }
}

/// A target's identity and pool key: `host:port`, `[v6]:port`.
pub fn target_key(host: &str, port: u16) -> Arc<str> {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}").into()
    } else {
        format!("{host}:{port}").into()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// nginx's smooth weighted round-robin, unrolled once into a schedule so a
/// request only does one atomic increment: weights 5,1,1 give a a b a c a a,
/// never a burst of one target. Weights are reduced by their gcd; the
/// schedule is capped at 65536 entries.
fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let w: Vec<i64> = weights.iter().map(|x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let len = total.min(65_536) as usize;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn balancer(algorithm: Algorithm, n: usize, passive: Option<Passive>) -> Balancer {
        let shared = Arc::new(UpstreamShared::default());
        let targets = (0..n)
            .map(|i| {
                let key = target_key("127.0.0.1", 8000 + i as u16);
                TargetEntry {
                    state: shared.target(&key),
                    pool_key: key.clone(),
                    target: key.clone(),
                    key,
                    host: "127.0.0.1".into(),
                    port: 8000 + i as u16,
                    addr: None,
                    host_header: HeaderValue::from_static("a"),
                    weight: 100,
                    tls: None,
                    dns: None,
                }
            })
            .collect();
        let spec = BalancerSpec {
            name: "u".into(),
            algorithm,
            hash_on: Default::default(),
            passive,
            cooldown_ms: 0,
            limits: CircuitBreakers::default(),
            unresolved: false,
        };
        Balancer::new(spec, targets, shared)
    }

    #[test]
    fn retries_avoid_the_tried_target_with_every_algorithm() {
        for alg in [
            Algorithm::RoundRobin,
            Algorithm::LeastConnections,
            Algorithm::Latency,
            Algorithm::Random,
        ] {
            let b = balancer(alg, 2, None);
            for _ in 0..200 {
                let t = b.ticket(None);
                let first = b.choose(&t, &Tried::default()).unwrap();
                let mut tried = Tried::default();
                tried.add(first);
                assert_ne!(b.choose(&t, &tried).unwrap(), first, "{alg:?}");
            }
        }
    }

    #[test]
    fn traffic_does_not_undo_an_admin_or_probe_mark() {
        let passive = Passive {
            healthy: StatusSet::new(&[200]),
            unhealthy: StatusSet::new(&[500]),
            thresholds: Thresholds {
                successes: 1,
                http_failures: 1,
                ..Thresholds::default()
            },
        };
        let b = balancer(Algorithm::RoundRobin, 1, Some(passive));
        let state = &b.target(0).state;
        state.set_healthy(false, Source::Manual);
        b.report(0, Ok(200), None);
        assert!(!state.is_healthy());
        // A passive mark is lifted by traffic once successes are seen.
        state.set_healthy(true, Source::Manual);
        b.report(0, Ok(500), None);
        assert!(!state.is_healthy());
        b.report(0, Ok(200), None);
        assert!(state.is_healthy());
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        assert_eq!(smooth_schedule(&[100, 100]), vec![0, 1]);
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
    }
}
