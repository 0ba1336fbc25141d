//! The live state of one target: its health and the counters that lead to
//! it, the requests in flight to it, and its response-time average.
//!
//! Shared by every worker through atomics (no lock on the request path) and
//! kept across configuration changes that keep the target (see
//! [`super::registry`]).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call (a process-wide monotonic clock that
/// fits in an atomic).
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Who last changed a target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    /// Proxied traffic (passive checks).
    Passive = 0,
    /// Probes (active checks).
    Active = 1,
    /// An Admin API call.
    Manual = 2,
}

/// What went wrong with a request or probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made or broke.
    Tcp,
    /// The target did not answer in time.
    Timeout,
    /// The target answered with a status counted as a failure.
    Http,
}

/// Thresholds for one kind of check (0 = that counter never trips).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes that make an unhealthy target healthy.
    pub successes: u32,
    /// Connection failures that make a healthy target unhealthy.
    pub tcp_failures: u32,
    /// Timeouts that make a healthy target unhealthy.
    pub timeouts: u32,
    /// Failing statuses that make a healthy target unhealthy.
    pub http_failures: u32,
}

const HEALTHY: u8 = 0;
const UNHEALTHY: u8 = 1;

/// One target's live state.
#[derive(Debug)]
pub struct TargetState {
    health: AtomicU8,
    down_by: AtomicU8,
    /// When it was last marked (or re-confirmed) unhealthy, [`now_ms`].
    down_since: AtomicU64,
    successes: AtomicU32,
    tcp_failures: AtomicU32,
    timeouts: AtomicU32,
    http_failures: AtomicU32,
    /// Requests sent to it and not finished.
    in_flight: AtomicU32,
    /// Connections being opened to it.
    connecting: AtomicU32,
    /// Peak-EWMA response time, microseconds.
    ewma_us: AtomicU64,
    /// When `ewma_us` was last updated, [`now_ms`].
    ewma_at: AtomicU64,
    /// Which of a host name's addresses the next connection tries first.
    next_address: std::sync::atomic::AtomicUsize,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            health: AtomicU8::new(HEALTHY),
            down_by: AtomicU8::new(Source::Passive as u8),
            down_since: AtomicU64::new(0),
            successes: AtomicU32::new(0),
            tcp_failures: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
            http_failures: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            connecting: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            ewma_at: AtomicU64::new(0),
            next_address: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// Decay time of the response-time average.
const EWMA_TAU_MS: f64 = 10_000.0;

/// Resets a counter, writing only when it is not zero already (the hot
/// path then reads a shared cache line instead of dirtying it).
fn clear(c: &AtomicU32) {
    if c.load(Ordering::Relaxed) != 0 {
        c.store(0, Ordering::Relaxed);
    }
}

impl TargetState {
    /// Whether the target is marked healthy.
    pub fn is_healthy(&self) -> bool {
        self.health.load(Ordering::Relaxed) == HEALTHY
    }

    /// Whether the target may get traffic at `now` ([`now_ms`]): healthy,
    /// or made unhealthy by traffic at least `cooldown_ms` ago (0 = never).
    pub fn is_up(&self, now: u64, cooldown_ms: u64) -> bool {
        if self.is_healthy() {
            return true;
        }
        cooldown_ms > 0
            && self.down_by.load(Ordering::Relaxed) == Source::Passive as u8
            && now.saturating_sub(self.down_since.load(Ordering::Relaxed)) >= cooldown_ms
    }

    /// Whether proxied traffic (not probes nor the Admin API) took it down.
    pub fn down_by_passive(&self) -> bool {
        self.down_by.load(Ordering::Relaxed) == Source::Passive as u8
    }

    /// Sets the health directly (Admin API, or a checker's verdict).
    pub fn set_healthy(&self, healthy: bool, source: Source) {
        for c in [
            &self.successes,
            &self.tcp_failures,
            &self.timeouts,
            &self.http_failures,
        ] {
            clear(c);
        }
        if healthy {
            self.health.store(HEALTHY, Ordering::Relaxed);
        } else {
            self.down_by.store(source as u8, Ordering::Relaxed);
            self.down_since.store(now_ms(), Ordering::Relaxed);
            self.health.store(UNHEALTHY, Ordering::Relaxed);
        }
    }

    /// Counts a success; returns true when it made the target healthy.
    /// `probation` says the target was let back after its cool-down: one
    /// success is then enough.
    pub fn success(&self, t: &Thresholds, probation: bool) -> bool {
        if self.is_healthy() {
            clear(&self.tcp_failures);
            clear(&self.timeouts);
            clear(&self.http_failures);
            return false;
        }
        let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if probation || (t.successes > 0 && n >= t.successes) {
            self.set_healthy(true, Source::Passive);
            return true;
        }
        false
    }

    /// Counts a failure of kind `f`; returns true when it made the target
    /// unhealthy.
    pub fn failure(&self, f: Failure, t: &Thresholds, source: Source) -> bool {
        if !self.is_healthy() {
            clear(&self.successes);
            if source == Source::Passive
                && self.down_by.load(Ordering::Relaxed) == Source::Passive as u8
            {
                // Failing on probation: the cool-down starts again.
                self.down_since.store(now_ms(), Ordering::Relaxed);
            }
            return false;
        }
        let (counter, limit) = match f {
            Failure::Tcp => (&self.tcp_failures, t.tcp_failures),
            Failure::Timeout => (&self.timeouts, t.timeouts),
            Failure::Http => (&self.http_failures, t.http_failures),
        };
        if limit == 0 {
            return false;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= limit {
            self.set_healthy(false, source);
            return true;
        }
        false
    }

    /// The position of the address a new connection to a host name tries
    /// first (each call moves on by one).
    pub fn next_address(&self) -> usize {
        self.next_address.fetch_add(1, Ordering::Relaxed)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn begin(self: &std::sync::Arc<Self>) -> Load {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Load(self.clone())
    }

    /// Counts a connection being opened until the guard is dropped; None
    /// when `max` (> 0) are being opened already.
    pub fn connecting(self: &std::sync::Arc<Self>, max: u32) -> Option<Connecting> {
        if max == 0 {
            return Some(Connecting(None));
        }
        let before = self.connecting.fetch_add(1, Ordering::Relaxed);
        let guard = Connecting(Some(self.clone()));
        (before < max).then_some(guard)
    }

    /// Folds a response time into the peak-EWMA average: a slower sample
    /// is taken at once, faster ones blend in with a 10 s time constant.
    pub fn observe(&self, micros: u64) {
        let now = now_ms();
        let old = self.ewma_us.load(Ordering::Relaxed);
        let new = if micros >= old {
            micros
        } else {
            let dt = now.saturating_sub(self.ewma_at.load(Ordering::Relaxed)) as f64;
            let w = (-dt / EWMA_TAU_MS).exp();
            (old as f64 * w + micros as f64 * (1.0 - w)) as u64
        };
        self.ewma_us.store(new, Ordering::Relaxed);
        self.ewma_at.store(now, Ordering::Relaxed);
    }

    /// The response-time average at `now`, decayed towards zero while no
    /// sample arrives (so an avoided target is tried again in time).
    pub fn latency(&self, now: u64) -> f64 {
        let v = self.ewma_us.load(Ordering::Relaxed) as f64;
        let dt = now.saturating_sub(self.ewma_at.load(Ordering::Relaxed)) as f64;
        v * (-dt / EWMA_TAU_MS).exp()
    }
}

/// A request in flight to a target (see [`TargetState::begin`]).
#[derive(Debug)]
pub struct Load(std::sync::Arc<TargetState>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection being opened to a target (see [`TargetState::connecting`]).
#[derive(Debug)]
pub struct Connecting(Option<std::sync::Arc<TargetState>>);

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.connecting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_threshold_mark_down_and_successes_bring_back() {
        let s = TargetState::default();
        let t = Thresholds {
            successes: 2,
            tcp_failures: 3,
            ..Thresholds::default()
        };
        assert!(!s.failure(Failure::Tcp, &t, Source::Passive));
        assert!(!s.failure(Failure::Tcp, &t, Source::Passive));
        // A success in between resets the count.
        assert!(!s.success(&t, false));
        assert!(!s.failure(Failure::Tcp, &t, Source::Passive));
        assert!(!s.failure(Failure::Tcp, &t, Source::Passive));
        assert!(s.failure(Failure::Tcp, &t, Source::Passive));
        assert!(!s.is_healthy());
        assert!(!s.success(&t, false));
        assert!(s.success(&t, false));
        assert!(s.is_healthy());
    }

    #[test]
    fn a_zero_threshold_never_trips() {
        let s = TargetState::default();
        for _ in 0..100 {
            s.failure(Failure::Http, &Thresholds::default(), Source::Passive);
        }
        assert!(s.is_healthy());
    }

    #[test]
    fn passive_marks_expire_after_the_cooldown_but_manual_ones_do_not() {
        let s = TargetState::default();
        s.set_healthy(false, Source::Passive);
        let now = now_ms();
        assert!(!s.is_up(now, 1_000));
        assert!(s.is_up(now + 1_000, 1_000));
        assert!(!s.is_up(now + 1_000_000, 0));
        s.set_healthy(false, Source::Manual);
        assert!(!s.is_up(now + 1_000_000, 1_000));
    }

    #[test]
    fn latency_takes_peaks_at_once_and_decays() {
        let s = TargetState::default();
        s.observe(1_000);
        s.observe(50_000);
        let now = now_ms();
        assert!(s.latency(now) > 40_000.0);
        assert!(s.latency(now + 60_000) < 200.0);
    }
}
