//! The data plane's view of upstream targets' health, as the Admin API
//! reads and changes it (`GET /upstreams/{u}/health`,
//! `PUT /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy`).

use std::net::SocketAddr;
use uuid::Uuid;

/// One target's live health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    /// Kong's word: `HEALTHY`, `UNHEALTHY`, `HEALTHCHECKS_OFF` or `DNS_ERROR`.
    pub health: &'static str,
    /// Each address the target stands for (one per DNS answer for a name),
    /// with its own health word.
    pub addresses: Vec<(SocketAddr, &'static str)>,
}

/// Live target health, provided by the node that runs the data plane.
pub trait TargetHealth: Send + Sync + std::fmt::Debug {
    /// The health of target `target` (`host:port`) of upstream `upstream`.
    fn health(&self, upstream: Uuid, target: &str) -> TargetReport;
    /// Marks the target (or only its `address`, `ip:port`) healthy or
    /// unhealthy; false when the data plane does not know it.
    fn set_health(
        &self,
        upstream: Uuid,
        target: &str,
        address: Option<&str>,
        healthy: bool,
    ) -> bool;
}

/// No data plane attached: everything reads `HEALTHCHECKS_OFF`.
#[derive(Debug, Default)]
pub struct NoHealth;

impl TargetHealth for NoHealth {
    fn health(&self, _: Uuid, _: &str) -> TargetReport {
        TargetReport {
            health: "HEALTHCHECKS_OFF",
            addresses: Vec::new(),
        }
    }

    fn set_health(&self, _: Uuid, _: &str, _: Option<&str>, _: bool) -> bool {
        false
    }
}
