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
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        IpRestriction::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

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

/// One parsed IP or CIDR block.
#[derive(Debug, Clone, Copy)]
struct Net {
    ip: std::net::IpAddr,
    len: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: std::net::IpAddr = ip.trim().parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Net { ip, len })
    }

    fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (a, b): (Vec<u8>, Vec<u8>) = match (self.ip, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                (n.octets().to_vec(), a.octets().to_vec())
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                (n.octets().to_vec(), a.octets().to_vec())
            }
            _ => return false,
        };
        let full = (self.len / 8) as usize;
        if a[..full] != b[..full] {
            return false;
        }
        let rest = self.len % 8;
        rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0
    }
}

/// The ip-restriction plugin at run time (deny is checked before allow).
#[derive(Debug)]
pub struct IpRestriction {
    allow: Option<Vec<Net>>,
    deny: Vec<Net>,
    status: http::StatusCode,
    message: String,
}

impl IpRestriction {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: IpRestrictionConfig = serde_json::from_value(config.clone()).ok()?;
        let parse = |l: &Vec<String>| l.iter().filter_map(|s| Net::parse(s)).collect::<Vec<_>>();
        Some(IpRestriction {
            allow: config.allow.as_ref().map(parse),
            deny: config.deny.as_ref().map(parse).unwrap_or_default(),
            status: config
                .status
                .and_then(|s| http::StatusCode::from_u16(s as u16).ok())
                .unwrap_or(http::StatusCode::FORBIDDEN),
            message: config
                .message
                .unwrap_or_else(|| "Your IP address is not allowed".to_owned()),
        })
    }
}

impl crate::runtime::Plugin for IpRestriction {
    fn name(&self) -> &'static str {
        "ip-restriction"
    }

    fn priority(&self) -> i32 {
        990
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        let ip = ctx.client_ip;
        let denied = self.deny.iter().any(|n| n.contains(ip))
            || self
                .allow
                .as_ref()
                .is_some_and(|a| !a.iter().any(|n| n.contains(ip)));
        if denied {
            Flow::Respond(EarlyResponse::message(self.status, self.message.clone()))
        } else {
            Flow::Continue
        }
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::Net;

    #[test]
    fn cidr_blocks_match_as_expected() {
        let n = Net::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(Net::parse("127.0.0.1")
            .unwrap()
            .contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(Net::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Net::parse("10.0.0.0/33").is_none());
    }
}
