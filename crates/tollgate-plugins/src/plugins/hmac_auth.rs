//! `hmac-auth`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The signature algorithms `hmac-auth` knows.
pub const ALGORITHMS: &[&str] = &["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// `hmac-auth` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HmacAuthConfig {
    /// Remove the credential before proxying (false).
    pub hide_credentials: bool,
    /// Allowed clock skew in seconds (300).
    pub clock_skew: f64,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Check the `Digest` header against the body (false).
    pub validate_request_body: bool,
    /// Headers the signature must cover ([]).
    pub enforce_headers: Vec<String>,
    /// Accepted algorithms (all four).
    pub algorithms: Vec<String>,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for HmacAuthConfig {
    fn default() -> Self {
        Self {
            hide_credentials: false,
            clock_skew: 300.0,
            anonymous: None,
            validate_request_body: false,
            enforce_headers: Vec::new(),
            algorithms: ALGORITHMS.iter().map(|a| a.to_string()).collect(),
            realm: None,
        }
    }
}

impl PluginSchema for HmacAuthConfig {
    const NAME: &'static str = "hmac-auth";
    const PRIORITY: i32 = 1030;
    const FIELDS: &'static [Field] = &[
        field("hide_credentials", Ty::Bool),
        field("clock_skew", Ty::Num(Bound::Gt(0.0))),
        field("anonymous", Ty::Str),
        field("validate_request_body", Ty::Bool),
        field("enforce_headers", STRINGS),
        field("algorithms", Ty::Array(&Ty::OneOf(ALGORITHMS))),
        field("realm", Ty::Str),
    ];
}
