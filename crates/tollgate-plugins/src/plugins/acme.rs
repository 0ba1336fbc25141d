//! `acme`: certificates obtained and renewed automatically from an ACME CA
//! (Let's Encrypt by default) for the names in `domains` (Kong's plugin,
//! global only). The work itself is the node's (`tollgate-acme`); this is
//! the config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Bound, Field, PluginSchema, Ty};

/// Let's Encrypt's production directory, Kong's default `api_uri`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `acme` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// Contact e-mail of the ACME account.
    pub account_email: String,
    /// An account key kept in a Kong key set (accepted; Tollgate keeps the
    /// account key under its prefix).
    pub account_key: Option<serde_json::Value>,
    /// The ACME directory URL.
    pub api_uri: String,
    /// Agreement to the CA's terms of service.
    pub tos_accepted: bool,
    /// External account binding key id.
    pub eab_kid: Option<String>,
    /// External account binding HMAC key (base64url).
    pub eab_hmac_key: Option<String>,
    /// Key type of certificates: `rsa` or `ecc` (P-256).
    pub cert_type: String,
    /// RSA key size (2048, 3072 or 4096).
    pub rsa_key_size: u32,
    /// Renew certificates expiring within this many days.
    pub renew_threshold_days: f64,
    /// Names (exact, or `*.example.com`) certificates are obtained for.
    pub domains: Vec<String>,
    /// Obtain certificates for any name clients ask for.
    pub allow_any_domain: bool,
    /// Minutes before a name whose order failed is tried again.
    pub fail_backoff_minutes: f64,
    /// Where certificates are kept: `kong` (the database, shared by the
    /// nodes) or `shm` (node memory).
    pub storage: String,
    /// Settings of the storage (accepted).
    pub storage_config: serde_json::Value,
    /// Preferred chain (accepted; the CA's default chain is used).
    pub preferred_chain: Option<String>,
    /// Accepted (IP identifiers are not ordered).
    pub enable_ipv4_common_name: bool,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            account_email: String::new(),
            account_key: None,
            api_uri: LETS_ENCRYPT.into(),
            tos_accepted: false,
            eab_kid: None,
            eab_hmac_key: None,
            cert_type: "rsa".into(),
            rsa_key_size: 4096,
            renew_threshold_days: 14.0,
            domains: Vec::new(),
            allow_any_domain: false,
            fail_backoff_minutes: 5.0,
            storage: "shm".into(),
            storage_config: serde_json::json!({"shm": {"shm_name": "kong"}, "kong": {}}),
            preferred_chain: None,
            enable_ipv4_common_name: true,
        }
    }
}

fn check_email(s: &str) -> Result<(), String> {
    match s.split_once('@') {
        Some((user, host)) if !user.is_empty() && host.contains('.') && !host.contains('@') => {
            Ok(())
        }
        _ => Err("invalid value: ".to_owned() + s),
    }
}

fn check_url(s: &str) -> Result<(), String> {
    if s.starts_with("https://") || s.starts_with("http://") {
        Ok(())
    } else {
        Err("missing URL scheme".into())
    }
}

impl PluginSchema for AcmeConfig {
    const NAME: &'static str = "acme";
    const PRIORITY: i32 = 1705;
    const FIELDS: &'static [Field] = &[
        required("account_email", Ty::Check(check_email)),
        field("account_key", Ty::Map(&Ty::Str)),
        field("api_uri", Ty::Check(check_url)),
        field("tos_accepted", Ty::Bool),
        field("eab_kid", Ty::Str),
        field("eab_hmac_key", Ty::Str),
        field("cert_type", Ty::OneOf(&["rsa", "ecc"])),
        field("rsa_key_size", Ty::Int(Bound::Between(2048.0, 4096.0))),
        field(
            "renew_threshold_days",
            Ty::Num(Bound::Between(0.0, 36500.0)),
        ),
        field("domains", Ty::Array(&Ty::Str)),
        field("allow_any_domain", Ty::Bool),
        field("fail_backoff_minutes", Ty::Num(Bound::Between(0.0, 1e6))),
        field(
            "storage",
            Ty::OneOf(&["kong", "shm", "redis", "consul", "vault"]),
        ),
        field(
            "storage_config",
            Ty::Record(&[
                field("shm", Ty::Record(&[field("shm_name", Ty::Str)])),
                field("kong", Ty::Map(&Ty::Str)),
            ]),
        ),
        field("preferred_chain", Ty::Str),
        field("enable_ipv4_common_name", Ty::Bool),
    ];

    fn validate(&self) -> Result<(), Vec<crate::Problem>> {
        let mut problems = Vec::new();
        if !matches!(self.rsa_key_size, 2048 | 3072 | 4096) {
            problems.push(super::problem(
                &["rsa_key_size"],
                "expected one of: 2048, 3072, 4096",
            ));
        }
        if self.api_uri.contains("api.letsencrypt.org") && !self.tos_accepted {
            problems.push(super::problem(
                &["tos_accepted"],
                "terms of service must be accepted, see https://letsencrypt.org/repository/",
            ));
        }
        if !matches!(self.storage.as_str(), "kong" | "shm") {
            problems.push(super::problem(
                &["storage"],
                "only kong (the database) and shm (node memory) storage are supported",
            ));
        }
        if self.eab_kid.is_some() != self.eab_hmac_key.is_some() {
            problems.push(super::problem(
                &["eab_hmac_key"],
                "eab_kid and eab_hmac_key go together",
            ));
        }
        for (i, d) in self.domains.iter().enumerate() {
            let bare = d.strip_prefix("*.").unwrap_or(d);
            if bare.is_empty() || bare.contains('*') || bare.contains(['/', ':', ' ']) {
                problems.push((
                    vec!["domains".into(), i.to_string()],
                    format!("invalid domain: {d}"),
                ));
            }
        }
        super::result(problems)
    }
}
