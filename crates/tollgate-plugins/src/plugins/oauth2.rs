//! `oauth2`: config schema.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Bound, Field, PluginSchema, Ty, HEADER_NAME, STRINGS};
use crate::Problem;

/// PKCE enforcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pkce {
    /// Never required.
    None,
    /// Required for public clients (default).
    #[default]
    Lax,
    /// Required for every client.
    Strict,
}

/// `oauth2` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuth2Config {
    /// Scopes clients may request.
    pub scopes: Option<Vec<String>>,
    /// Require a scope (false).
    pub mandatory_scope: bool,
    /// Provision key for the authorize/token endpoints (Kong generates one
    /// when unset).
    pub provision_key: Option<String>,
    /// Access token lifetime in seconds (7200).
    pub token_expiration: f64,
    /// Authorization code grant (false).
    pub enable_authorization_code: bool,
    /// Implicit grant (false).
    pub enable_implicit_grant: bool,
    /// Client credentials grant (false).
    pub enable_client_credentials: bool,
    /// Password grant (false).
    pub enable_password_grant: bool,
    /// Remove the token before proxying (false).
    pub hide_credentials: bool,
    /// Accept HTTP when a proxy terminated TLS (false).
    pub accept_http_if_already_terminated: bool,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Share credentials between plugin instances (false).
    pub global_credentials: bool,
    /// Header carrying the token ("authorization").
    pub auth_header_name: String,
    /// Refresh token lifetime in seconds; 0 never expires (1209600).
    pub refresh_token_ttl: f64,
    /// Keep the refresh token when refreshing (false).
    pub reuse_refresh_token: bool,
    /// Keep refresh tokens when access tokens expire (false).
    pub persistent_refresh_token: bool,
    /// PKCE enforcement (lax).
    pub pkce: Pkce,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for OAuth2Config {
    fn default() -> Self {
        Self {
            scopes: None,
            mandatory_scope: false,
            provision_key: None,
            token_expiration: 7200.0,
            enable_authorization_code: false,
            enable_implicit_grant: false,
            enable_client_credentials: false,
            enable_password_grant: false,
            hide_credentials: false,
            accept_http_if_already_terminated: false,
            anonymous: None,
            global_credentials: false,
            auth_header_name: "authorization".to_string(),
            refresh_token_ttl: 1209600.0,
            reuse_refresh_token: false,
            persistent_refresh_token: false,
            pkce: Pkce::Lax,
            realm: None,
        }
    }
}

impl PluginSchema for OAuth2Config {
    const NAME: &'static str = "oauth2";
    const PRIORITY: i32 = 1400;
    const FIELDS: &'static [Field] = &[
        field("scopes", STRINGS),
        field("mandatory_scope", Ty::Bool),
        field("provision_key", Ty::Str),
        field("token_expiration", Ty::Num(Bound::Any)),
        field("enable_authorization_code", Ty::Bool),
        field("enable_implicit_grant", Ty::Bool),
        field("enable_client_credentials", Ty::Bool),
        field("enable_password_grant", Ty::Bool),
        field("hide_credentials", Ty::Bool),
        field("accept_http_if_already_terminated", Ty::Bool),
        field("anonymous", Ty::Str),
        field("global_credentials", Ty::Bool),
        field("auth_header_name", HEADER_NAME),
        field(
            "refresh_token_ttl",
            Ty::Num(Bound::Between(0.0, 100000000.0)),
        ),
        field("reuse_refresh_token", Ty::Bool),
        field("persistent_refresh_token", Ty::Bool),
        field("pkce", Ty::OneOf(&["none", "lax", "strict"])),
        field("realm", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        if self.mandatory_scope && self.scopes.as_ref().is_none_or(Vec::is_empty) {
            problems.push(problem(&["scopes"], "required field missing"));
        }
        result(problems)
    }
}
