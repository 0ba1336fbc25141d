//! The data plane's view of upstream targets' health, as the Admin API
//! reads and changes it (`GET /upstreams/{u}/health`,
//! `PUT /upstreams/{u}/targets/{t}/healthy|unhealthy`).

use uuid::Uuid;

/// Live target health, provided by the node that runs the data plane.
pub trait TargetHealth: Send + Sync + std::fmt::Debug {
    /// Kong's health word for target `target` (`host:port`) of upstream
    /// `upstream`: `HEALTHY`, `UNHEALTHY` or `HEALTHCHECKS_OFF`.
    fn health(&self, upstream: Uuid, target: &str) -> &'static str;
    /// Marks the target healthy or unhealthy; false when the data plane
    /// does not know it.
    fn set_health(&self, upstream: Uuid, target: &str, healthy: bool) -> bool;
}

/// No data plane attached: everything reads `HEALTHCHECKS_OFF`.
#[derive(Debug, Default)]
pub struct NoHealth;

impl TargetHealth for NoHealth {
    fn health(&self, _: Uuid, _: &str) -> &'static str {
        "HEALTHCHECKS_OFF"
    }

    fn set_health(&self, _: Uuid, _: &str, _: bool) -> bool {
        false
    }
}
