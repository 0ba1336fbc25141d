//! `cors`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The methods `cors` accepts (and allows by default).
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// `cors` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (exact or regex); none or `*` allows all.
    pub origins: Option<Vec<String>>,
    /// `Access-Control-Allow-Headers` (echoed from the request when unset).
    pub headers: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers`.
    pub exposed_headers: Option<Vec<String>>,
    /// `Access-Control-Allow-Methods`.
    pub methods: Vec<String>,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age: Option<f64>,
    /// `Access-Control-Allow-Credentials` (false).
    pub credentials: bool,
    /// `Access-Control-Allow-Private-Network` (false).
    pub private_network: bool,
    /// Proxy preflights upstream instead of answering them (false).
    pub preflight_continue: bool,
    /// Add CORS headers when the request has no Origin (true).
    pub allow_origin_absent: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            origins: None,
            headers: None,
            exposed_headers: None,
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            max_age: None,
            credentials: false,
            private_network: false,
            preflight_continue: false,
            allow_origin_absent: true,
        }
    }
}

impl PluginSchema for CorsConfig {
    const NAME: &'static str = "cors";
    const PRIORITY: i32 = 2000;
    const FIELDS: &'static [Field] = &[
        field("origins", STRINGS),
        field("headers", STRINGS),
        field("exposed_headers", STRINGS),
        field("methods", Ty::Array(&Ty::OneOf(METHODS))),
        field("max_age", Ty::Num(Bound::Any)),
        field("credentials", Ty::Bool),
        field("private_network", Ty::Bool),
        field("preflight_continue", Ty::Bool),
        field("allow_origin_absent", Ty::Bool),
    ];
}
