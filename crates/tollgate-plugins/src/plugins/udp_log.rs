//! `udp-log`: config schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Bound, Field, PluginSchema, Ty, PORT, STRING_MAP};

/// `udp-log` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpLogConfig {
    /// Log server host (required).
    pub host: String,
    /// Log server port (required).
    pub port: u16,
    /// Timeout in ms (10000).
    pub timeout: f64,
    /// Extra fields (name → Lua expression in Kong).
    pub custom_fields_by_lua: Option<BTreeMap<String, String>>,
}

impl Default for UdpLogConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            timeout: 10000.0,
            custom_fields_by_lua: None,
        }
    }
}

impl PluginSchema for UdpLogConfig {
    const NAME: &'static str = "udp-log";
    const PRIORITY: i32 = 8;
    const FIELDS: &'static [Field] = &[
        required("host", Ty::Str),
        required("port", PORT),
        field("timeout", Ty::Num(Bound::Any)),
        field("custom_fields_by_lua", STRING_MAP),
    ];
}
