//! `mtls-auth`: authenticates clients by the certificate they presented in
//! the TLS handshake (Kong Enterprise's plugin, open here). The chain must
//! lead to one of `ca_certificates`; its subject's common name names the
//! consumer (by username, then custom_id, as `consumer_by` lists).

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Bound, Field, PluginSchema, Ty};

/// `mtls-auth` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtlsAuthConfig {
    /// Ids of the CA certificates trusted for client certificates.
    pub ca_certificates: Vec<String>,
    /// Let any valid certificate through without looking up a consumer.
    pub skip_consumer_lookup: bool,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// What names the authenticated group with `skip_consumer_lookup` (CN).
    pub authenticated_group_by: String,
    /// Consumer fields the common name is matched against, in order.
    pub consumer_by: Vec<String>,
    /// Consumer (id or username) for valid certificates that match none.
    pub default_consumer: Option<String>,
    /// Revocation checks (OCSP/CRL): accepted; Tollgate checks none, which
    /// is `IGNORE_CA_ERROR`'s outcome when no responder answers.
    pub revocation_check_mode: String,
    /// Accepted for compatibility (caching is per snapshot).
    pub cache_ttl: f64,
    /// Accepted for compatibility.
    pub cert_cache_ttl: f64,
    /// Accepted; chains must reach one of `ca_certificates`.
    pub allow_partial_chain: bool,
    /// Accepted; no CA names are sent in the handshake.
    pub send_ca_dn: bool,
    /// Accepted (revocation checks are not made).
    pub http_timeout: f64,
    /// Accepted (revocation checks are not made).
    pub ssl_verify: Option<bool>,
    /// Accepted (revocation checks are not made).
    pub http_proxy_host: Option<String>,
    /// Accepted (revocation checks are not made).
    pub http_proxy_port: Option<i64>,
    /// Accepted (revocation checks are not made).
    pub https_proxy_host: Option<String>,
    /// Accepted (revocation checks are not made).
    pub https_proxy_port: Option<i64>,
}

impl Default for MtlsAuthConfig {
    fn default() -> Self {
        Self {
            ca_certificates: Vec::new(),
            skip_consumer_lookup: false,
            anonymous: None,
            authenticated_group_by: "CN".into(),
            consumer_by: vec!["username".into(), "custom_id".into()],
            default_consumer: None,
            revocation_check_mode: "IGNORE_CA_ERROR".into(),
            cache_ttl: 60.0,
            cert_cache_ttl: 60_000.0,
            allow_partial_chain: false,
            send_ca_dn: false,
            http_timeout: 30_000.0,
            ssl_verify: None,
            http_proxy_host: None,
            http_proxy_port: None,
            https_proxy_host: None,
            https_proxy_port: None,
        }
    }
}

fn check_uuid(s: &str) -> Result<(), String> {
    uuid::Uuid::parse_str(s)
        .map(|_| ())
        .map_err(|_| "expected a valid UUID".to_owned())
}

const PORT: Ty = Ty::Int(Bound::Between(0.0, 65535.0));

impl PluginSchema for MtlsAuthConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        MtlsAuth::new(&plugin.config, dir)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "mtls-auth";
    const PRIORITY: i32 = 1600;
    const FIELDS: &'static [Field] = &[
        required("ca_certificates", Ty::Array(&Ty::Check(check_uuid))),
        field("skip_consumer_lookup", Ty::Bool),
        field("anonymous", Ty::Str),
        field("authenticated_group_by", Ty::OneOf(&["CN", "DN"])),
        field(
            "consumer_by",
            Ty::Array(&Ty::OneOf(&["username", "custom_id"])),
        ),
        field("default_consumer", Ty::Str),
        field(
            "revocation_check_mode",
            Ty::OneOf(&["SKIP", "IGNORE_CA_ERROR", "STRICT"]),
        ),
        field("cache_ttl", Ty::Num(Bound::Any)),
        field("cert_cache_ttl", Ty::Num(Bound::Any)),
        field("allow_partial_chain", Ty::Bool),
        field("send_ca_dn", Ty::Bool),
        field("http_timeout", Ty::Num(Bound::Any)),
        field("ssl_verify", Ty::Bool),
        field("http_proxy_host", Ty::Str),
        field("http_proxy_port", PORT),
        field("https_proxy_host", Ty::Str),
        field("https_proxy_port", PORT),
    ];

    fn validate(&self) -> Result<(), Vec<crate::Problem>> {
        let mut problems = Vec::new();
        if self.ca_certificates.is_empty() {
            problems.push(super::problem(
                &["ca_certificates"],
                "length must be at least 1",
            ));
        }
        if self.revocation_check_mode == "STRICT" {
            problems.push(super::problem(
                &["revocation_check_mode"],
                "STRICT revocation checks (OCSP/CRL) are not supported yet",
            ));
        }
        super::result(problems)
    }
}

/// The mtls-auth plugin at run time.
#[derive(Debug)]
pub struct MtlsAuth {
    config: MtlsAuthConfig,
    /// None when none of `ca_certificates` exists: every certificate fails.
    verifier: Option<tollgate_tls::client_auth::ChainVerifier>,
    dir: std::sync::Arc<crate::runtime::Directory>,
}

impl MtlsAuth {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        dir: &std::sync::Arc<crate::runtime::Directory>,
    ) -> Option<Self> {
        let config: MtlsAuthConfig = serde_json::from_value(config.clone()).ok()?;
        let cas: Vec<&str> = config
            .ca_certificates
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .filter_map(|id| dir.ca_certificate(id))
            .collect();
        let verifier = match tollgate_tls::client_auth::ChainVerifier::new(&cas) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("mtls-auth: no usable ca_certificates ({e}); every client certificate will be refused");
                None
            }
        };
        Some(MtlsAuth {
            config,
            verifier,
            dir: dir.clone(),
        })
    }

    /// The consumer the certificate's common name names.
    fn consumer(&self, cn: &str) -> Option<std::sync::Arc<crate::runtime::ConsumerInfo>> {
        self.config
            .consumer_by
            .iter()
            .find_map(|by| match by.as_str() {
                "username" => self.dir.consumer_by_username(cn),
                "custom_id" => self.dir.consumer_by_custom_id(cn),
                _ => None,
            })
    }
}

impl crate::runtime::Plugin for MtlsAuth {
    fn name(&self) -> &'static str {
        "mtls-auth"
    }

    fn priority(&self) -> i32 {
        1600
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow, Identity};
        if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
            return Flow::Continue;
        }
        let failure = match ctx.client_certs.filter(|c| !c.is_empty()) {
            None => "No required TLS certificate was sent",
            Some(chain) if !self.verifier.as_ref().is_some_and(|v| v.verify(chain)) => {
                "TLS certificate failed verification"
            }
            Some(_) if self.config.skip_consumer_lookup => return Flow::Continue,
            Some(chain) => {
                let cn = chain
                    .first()
                    .and_then(|leaf| tollgate_tls::client_auth::subject_cn(leaf));
                let found = cn.as_deref().and_then(|cn| self.consumer(cn)).or_else(|| {
                    self.config
                        .default_consumer
                        .as_deref()
                        .and_then(|c| self.dir.consumer(c))
                });
                match found {
                    Some(consumer) => {
                        let identity = Identity {
                            consumer,
                            credential: None,
                            identifier: cn
                                .as_deref()
                                .and_then(|c| http::HeaderValue::from_str(c).ok()),
                            anonymous: false,
                        };
                        return crate::runtime::authenticate(ctx, identity);
                    }
                    None => "TLS certificate failed verification",
                }
            }
        };
        let r = EarlyResponse::message(http::StatusCode::UNAUTHORIZED, failure);
        crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, r)
    }
}
