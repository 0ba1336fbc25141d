//! `jwt`: config schema.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};
use crate::Problem;

/// A registered claim the plugin can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    /// Expiration time.
    Exp,
    /// Not before.
    Nbf,
}

/// `jwt` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Query parameters holding the token (["jwt"]).
    pub uri_param_names: Vec<String>,
    /// Cookies holding the token ([]).
    pub cookie_names: Vec<String>,
    /// Headers holding the token (["authorization"]).
    pub header_names: Vec<String>,
    /// Claims to verify.
    pub claims_to_verify: Option<Vec<Claim>>,
    /// Claim naming the credential key ("iss").
    pub key_claim_name: String,
    /// The secret is base64-encoded (false).
    pub secret_is_base64: bool,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Authenticate OPTIONS preflights too (true).
    pub run_on_preflight: bool,
    /// Maximum token lifetime in seconds; 0 disables (0).
    pub maximum_expiration: i64,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            uri_param_names: vec!["jwt".to_string()],
            cookie_names: Vec::new(),
            header_names: vec!["authorization".to_string()],
            claims_to_verify: None,
            key_claim_name: "iss".to_string(),
            secret_is_base64: false,
            anonymous: None,
            run_on_preflight: true,
            maximum_expiration: 0,
            realm: None,
        }
    }
}

impl PluginSchema for JwtConfig {
    const NAME: &'static str = "jwt";
    const PRIORITY: i32 = 1450;
    const FIELDS: &'static [Field] = &[
        field("uri_param_names", STRINGS),
        field("cookie_names", STRINGS),
        field("header_names", STRINGS),
        field("claims_to_verify", Ty::Array(&Ty::OneOf(&["exp", "nbf"]))),
        field("key_claim_name", Ty::Str),
        field("secret_is_base64", Ty::Bool),
        field("anonymous", Ty::Str),
        field("run_on_preflight", Ty::Bool),
        field(
            "maximum_expiration",
            Ty::Int(Bound::Between(0.0, 31536000.0)),
        ),
        field("realm", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let has_exp = self
            .claims_to_verify
            .as_ref()
            .is_some_and(|c| c.contains(&Claim::Exp));
        if self.maximum_expiration > 0 && !has_exp {
            problems.push(problem(&["claims_to_verify"], "expected to contain: exp"));
        }
        result(problems)
    }
}
