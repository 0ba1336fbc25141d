//! `key-auth`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Field, PluginSchema, Ty, HEADER_NAMES};

/// `key-auth` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Header / query / body names holding the key (["apikey"]).
    pub key_names: Vec<String>,
    /// Remove the credential before proxying (false).
    pub hide_credentials: bool,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Look in headers (true).
    pub key_in_header: bool,
    /// Look in the query string (true).
    pub key_in_query: bool,
    /// Look in the body (false).
    pub key_in_body: bool,
    /// Authenticate OPTIONS preflights too (true).
    pub run_on_preflight: bool,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for KeyAuthConfig {
    fn default() -> Self {
        Self {
            key_names: vec!["apikey".to_string()],
            hide_credentials: false,
            anonymous: None,
            key_in_header: true,
            key_in_query: true,
            key_in_body: false,
            run_on_preflight: true,
            realm: None,
        }
    }
}

impl PluginSchema for KeyAuthConfig {
    const NAME: &'static str = "key-auth";
    const PRIORITY: i32 = 1250;
    const FIELDS: &'static [Field] = &[
        field("key_names", HEADER_NAMES),
        field("hide_credentials", Ty::Bool),
        field("anonymous", Ty::Str),
        field("key_in_header", Ty::Bool),
        field("key_in_query", Ty::Bool),
        field("key_in_body", Ty::Bool),
        field("run_on_preflight", Ty::Bool),
        field("realm", Ty::Str),
    ];
}
