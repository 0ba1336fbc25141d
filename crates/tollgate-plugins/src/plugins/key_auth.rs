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
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        KeyAuth::new(&plugin.config, dir)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

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

/// The key-auth plugin at run time.
#[derive(Debug)]
pub struct KeyAuth {
    config: KeyAuthConfig,
    names: Vec<http::HeaderName>,
    dir: std::sync::Arc<crate::runtime::Directory>,
}

impl KeyAuth {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        dir: &std::sync::Arc<crate::runtime::Directory>,
    ) -> Option<Self> {
        let config: KeyAuthConfig = serde_json::from_value(config.clone()).ok()?;
        let names = config
            .key_names
            .iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        Some(KeyAuth {
            config,
            names,
            dir: dir.clone(),
        })
    }

    fn find_key(&self, ctx: &crate::runtime::AccessCtx<'_>) -> Option<(String, Option<Found>)> {
        if self.config.key_in_header {
            for n in &self.names {
                let mut values = ctx.headers.get_all(n).iter();
                if let Some(v) = values.next().and_then(|v| v.to_str().ok()) {
                    if values.next().is_some() {
                        return Some((String::new(), Some(Found::Duplicate)));
                    }
                    return Some((v.to_owned(), Some(Found::Header(n.clone()))));
                }
            }
        }
        if self.config.key_in_query {
            if let Some(query) = ctx.uri.query() {
                let pairs = tollgate_model::form::parse_urlencoded(query.as_bytes());
                for n in &self.config.key_names {
                    let mut values = pairs.iter().filter(|(k, v)| k == n && !v.is_empty());
                    if let Some((_, v)) = values.next() {
                        if values.next().is_some() {
                            return Some((String::new(), Some(Found::Duplicate)));
                        }
                        return Some((v.clone(), Some(Found::Query)));
                    }
                }
            }
        }
        if self.config.key_in_body {
            let params = ctx
                .body
                .as_ref()
                .and_then(|b| crate::runtime::BodyParams::parse(ctx.headers, b))?;
            for n in &self.config.key_names {
                if let Some(v) = params.get(n).filter(|v| !v.is_empty()) {
                    return Some((v, Some(Found::Body(params))));
                }
            }
        }
        None
    }
}

/// Where the key was found (what `hide_credentials` removes).
#[derive(Debug)]
enum Found {
    Header(http::HeaderName),
    Query,
    Body(crate::runtime::BodyParams),
    /// The key was given more than once (Kong: "Duplicate API key found").
    Duplicate,
}

impl crate::runtime::Plugin for KeyAuth {
    fn name(&self) -> &'static str {
        "key-auth"
    }

    fn priority(&self) -> i32 {
        1250
    }

    fn wants_body(&self, _method: &http::Method, headers: &http::HeaderMap) -> bool {
        self.config.key_in_body && crate::runtime::BodyParams::understood(headers)
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow, Identity};
        if !self.config.run_on_preflight && ctx.method == http::Method::OPTIONS {
            return Flow::Continue;
        }
        if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
            return Flow::Continue;
        }
        let failure = match self.find_key(ctx) {
            Some((_, Some(Found::Duplicate))) => "Duplicate API key found",
            Some((key, header)) => match self.dir.key(&key) {
                Some((consumer, cred, cred_id)) => {
                    if self.config.hide_credentials {
                        match header {
                            Some(Found::Header(h)) => {
                                ctx.headers.remove(h);
                            }
                            Some(Found::Query | Found::Duplicate) | None => ctx
                                .strip_query_args
                                .extend(self.config.key_names.iter().cloned()),
                            Some(Found::Body(mut params)) => {
                                for n in &self.config.key_names {
                                    params.remove(n);
                                }
                                ctx.body = Some(params.encode().into());
                            }
                        }
                    }
                    let identity = Identity {
                        consumer,
                        credential: Some(cred),
                        identifier: Some(cred_id),
                        anonymous: false,
                    };
                    return crate::runtime::authenticate(ctx, identity);
                }
                None => "Unauthorized",
            },
            None => "No API key found in request",
        };
        let challenge = format!(
            "Key realm=\"{}\"",
            self.config.realm.as_deref().unwrap_or("kong")
        );
        let mut r = EarlyResponse::message(http::StatusCode::UNAUTHORIZED, failure);
        if let Ok(v) = http::HeaderValue::from_str(&challenge) {
            r = r.with_header(http::header::WWW_AUTHENTICATE, v);
        }
        crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, r)
    }
}
