//! `ip-restriction`: config schema.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{check_ip_or_cidr, field, Bound, Field, PluginSchema, Ty};
use crate::Problem;

/// `ip-restriction` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpRestrictionConfig {
    /// Allowed IPs or CIDR ranges.
    pub allow: Option<Vec<String>>,
    /// Denied IPs or CIDR ranges (checked first).
    pub deny: Option<Vec<String>>,
    /// Status when refused (403 when unset).
    pub status: Option<f64>,
    /// Message when refused.
    pub message: Option<String>,
}

const IPS: Ty = Ty::Array(&Ty::Check(check_ip_or_cidr));

impl PluginSchema for IpRestrictionConfig {
    const NAME: &'static str = "ip-restriction";
    const PRIORITY: i32 = 990;
    const FIELDS: &'static [Field] = &[
        field("allow", IPS),
        field("deny", IPS),
        field("status", Ty::Num(Bound::Any)),
        field("message", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let set = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
        let mut problems = Vec::new();
        if !set(&self.allow) && !set(&self.deny) {
            problems.push(problem(
                &[],
                "at least one of these fields must be non-empty: 'config.allow', 'config.deny'",
            ));
        }
        result(problems)
    }
}
