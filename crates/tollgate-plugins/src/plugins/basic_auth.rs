//! `basic-auth`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Field, PluginSchema, Ty};

/// `basic-auth` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Remove the credential before proxying (false).
    pub hide_credentials: bool,
    /// Realm for `WWW-Authenticate` ("service").
    pub realm: String,
}

impl Default for BasicAuthConfig {
    fn default() -> Self {
        Self {
            anonymous: None,
            hide_credentials: false,
            realm: "service".to_string(),
        }
    }
}

impl PluginSchema for BasicAuthConfig {
    const NAME: &'static str = "basic-auth";
    const PRIORITY: i32 = 1100;
    const FIELDS: &'static [Field] = &[
        field("anonymous", Ty::Str),
        field("hide_credentials", Ty::Bool),
        field("realm", Ty::Str),
    ];
}
