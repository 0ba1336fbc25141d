//! `prometheus`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Field, PluginSchema, Ty};

/// `prometheus` config (every flag off by default).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Add the consumer label.
    pub per_consumer: bool,
    /// Export `http_requests_total`.
    pub status_code_metrics: bool,
    /// Export the latency histograms.
    pub latency_metrics: bool,
    /// Export `bandwidth_bytes`.
    pub bandwidth_metrics: bool,
    /// Export `upstream_target_health`.
    pub upstream_health_metrics: bool,
}

impl PluginSchema for PrometheusConfig {
    const NAME: &'static str = "prometheus";
    const PRIORITY: i32 = 13;
    const FIELDS: &'static [Field] = &[
        field("per_consumer", Ty::Bool),
        field("status_code_metrics", Ty::Bool),
        field("latency_metrics", Ty::Bool),
        field("bandwidth_metrics", Ty::Bool),
        field("upstream_health_metrics", Ty::Bool),
    ];
}
