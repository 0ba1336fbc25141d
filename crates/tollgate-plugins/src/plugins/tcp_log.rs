//! `tcp-log`: config schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Bound, Field, PluginSchema, Ty, PORT, STRING_MAP};

/// `tcp-log` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpLogConfig {
    /// Log server host (required).
    pub host: String,
    /// Log server port (required).
    pub port: u16,
    /// Timeout in ms (10000).
    pub timeout: f64,
    /// Idle keepalive in ms (60000).
    pub keepalive: f64,
    /// Use TLS (false).
    pub tls: bool,
    /// SNI name for TLS.
    pub tls_sni: Option<String>,
    /// Extra fields (name → Lua expression in Kong).
    pub custom_fields_by_lua: Option<BTreeMap<String, String>>,
}

impl Default for TcpLogConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            timeout: 10000.0,
            keepalive: 60000.0,
            tls: false,
            tls_sni: None,
            custom_fields_by_lua: None,
        }
    }
}

impl PluginSchema for TcpLogConfig {
    const NAME: &'static str = "tcp-log";
    const PRIORITY: i32 = 7;
    const FIELDS: &'static [Field] = &[
        required("host", Ty::Str),
        required("port", PORT),
        field("timeout", Ty::Num(Bound::Any)),
        field("keepalive", Ty::Num(Bound::Any)),
        field("tls", Ty::Bool),
        field("tls_sni", Ty::Str),
        field("custom_fields_by_lua", STRING_MAP),
    ];
}
