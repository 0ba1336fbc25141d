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
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        OAuth2::new(&plugin.config, env, dir)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

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

/// The oauth2 plugin at run time: the token endpoint (`…/oauth2/token`:
/// client credentials, password and refresh grants) and bearer-token
/// authentication. Kong's authorization-code and implicit flows (the
/// `…/oauth2/authorize` endpoint) are not offered: it answers
/// `unsupported_response_type`.
#[derive(Debug)]
pub struct OAuth2 {
    config: OAuth2Config,
    header: http::HeaderName,
    dir: std::sync::Arc<crate::runtime::Directory>,
    tokens: std::sync::Arc<crate::runtime::TokenVault>,
}

/// An OAuth 2.0 error answer (`{"error", "error_description"}`).
fn oauth_error(
    status: http::StatusCode,
    error: &str,
    description: &str,
) -> crate::runtime::EarlyResponse {
    let body = serde_json::json!({"error": error, "error_description": description});
    json_answer(status, &body)
}

fn json_answer(
    status: http::StatusCode,
    body: &serde_json::Value,
) -> crate::runtime::EarlyResponse {
    crate::runtime::EarlyResponse {
        status,
        message: None,
        body: Some(("application/json; charset=utf-8".into(), body.to_string())),
        headers: vec![
            (
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            ),
            (
                http::header::PRAGMA,
                http::HeaderValue::from_static("no-cache"),
            ),
        ],
    }
}

/// Which endpoint of the plugin a path names.
#[derive(Debug, PartialEq)]
enum Endpoint {
    Token,
    Authorize,
}

fn endpoint(path: &str) -> Option<Endpoint> {
    let p = path.strip_suffix('/').unwrap_or(path);
    if p.ends_with("/oauth2/token") {
        Some(Endpoint::Token)
    } else if p.ends_with("/oauth2/authorize") {
        Some(Endpoint::Authorize)
    } else {
        None
    }
}

/// A new random token (122 bits from the OS generator, as 32 hex digits).
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

use crate::runtime::epoch_secs as epoch_now;

/// The request's parameters: the body's, then the query string's.
struct Params {
    body: Option<crate::runtime::BodyParams>,
    query: Vec<(String, String)>,
}

impl Params {
    fn of(ctx: &crate::runtime::AccessCtx<'_>) -> Params {
        Params {
            body: ctx
                .body
                .as_ref()
                .and_then(|b| crate::runtime::BodyParams::parse(ctx.headers, b)),
            query: tollgate_model::form::parse_urlencoded(ctx.uri.query().unwrap_or("").as_bytes()),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.body
            .as_ref()
            .and_then(|b| b.get(name))
            .or_else(|| {
                self.query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty())
    }
}

impl OAuth2 {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        env: &crate::runtime::PluginEnv,
        dir: &std::sync::Arc<crate::runtime::Directory>,
    ) -> Option<Self> {
        let config: OAuth2Config = serde_json::from_value(config.clone()).ok()?;
        let header = http::HeaderName::from_bytes(config.auth_header_name.as_bytes()).ok()?;
        Some(OAuth2 {
            config,
            header,
            dir: dir.clone(),
            tokens: env.tokens.clone(),
        })
    }

    /// HTTPS, or plain HTTP behind a TLS-terminating proxy when allowed
    /// (`X-Forwarded-Proto: https` from a trusted address).
    fn secure(&self, ctx: &crate::runtime::AccessCtx<'_>) -> bool {
        ctx.tls
            || (self.config.accept_http_if_already_terminated
                && ctx.trusted_client
                && ctx
                    .headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
    }

    /// The granted scopes, or the error answer.
    fn scopes(&self, params: &Params) -> Result<Option<String>, crate::runtime::EarlyResponse> {
        let bad = |d: String| oauth_error(http::StatusCode::BAD_REQUEST, "invalid_scope", &d);
        let Some(asked) = params.get("scope") else {
            if self.config.mandatory_scope {
                return Err(bad("You must specify a scope".into()));
            }
            return Ok(None);
        };
        let allowed = self.config.scopes.as_deref().unwrap_or_default();
        let mut granted = Vec::new();
        for s in asked.split_whitespace() {
            if !allowed.iter().any(|a| a == s) {
                return Err(bad(format!("\"{s}\" is an invalid scope")));
            }
            granted.push(s);
        }
        Ok((!granted.is_empty()).then(|| granted.join(" ")))
    }

    /// `…/oauth2/token`.
    fn issue_token(&self, ctx: &crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::Flow;
        use http::StatusCode;
        if !self.secure(ctx) {
            return Flow::Respond(oauth_error(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "You must use HTTPS",
            ));
        }
        let params = Params::of(ctx);
        let grant = params.get("grant_type").unwrap_or_default();
        let supported = match grant.as_str() {
            "client_credentials" => self.config.enable_client_credentials,
            "password" => self.config.enable_password_grant,
            "refresh_token" => true,
            _ => false,
        };
        // Client authentication: HTTP Basic, else client_id/client_secret.
        let basic = ctx
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::plugins::basic_auth::parse_basic);
        let from_header = basic.is_some();
        let (client_id, secret) = match basic {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (params.get("client_id"), params.get("client_secret")),
        };
        let invalid_client = || {
            let mut r = oauth_error(
                if from_header {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                },
                "invalid_client",
                "Invalid client authentication",
            );
            if from_header {
                r = r.with_header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"OAuth2.0\""),
                );
            }
            r
        };
        if !supported {
            return Flow::Respond(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type",
            ));
        }
        let Some(client) = client_id
            .as_deref()
            .and_then(|id| self.dir.oauth2_client(id))
        else {
            return Flow::Respond(invalid_client());
        };
        if let Some(uri) = params.get("redirect_uri") {
            if !client.redirect_uris.contains(&uri) {
                return Flow::Respond(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                ));
            }
        }
        if !client.secret_matches(secret.as_deref()) {
            return Flow::Respond(invalid_client());
        }
        // Without a configured provision_key no grant may name a user (Kong
        // generates one; here it must be set in the plugin's config).
        let provision_ok = || match (&self.config.provision_key, params.get("provision_key")) {
            (Some(want), Some(given)) => {
                crate::runtime::constant_time_eq(want.as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        let bad_provision = || {
            Flow::Respond(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_provision_key",
                "Invalid Kong provision_key",
            ))
        };
        let user = params.get("authenticated_userid");
        let (user, scope, refresh, replaces) = match grant.as_str() {
            "client_credentials" => {
                if user.is_some() && !provision_ok() {
                    return bad_provision();
                }
                match self.scopes(&params) {
                    Ok(s) => (user, s, false, None),
                    Err(e) => return Flow::Respond(e),
                }
            }
            "password" => {
                if !provision_ok() {
                    return bad_provision();
                }
                if user.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    return Flow::Respond(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Missing authenticated_userid parameter",
                    ));
                }
                match self.scopes(&params) {
                    Ok(s) => (user, s, true, None),
                    Err(e) => return Flow::Respond(e),
                }
            }
            _ => {
                let old = params
                    .get("refresh_token")
                    .and_then(|r| self.tokens.refresh(&r));
                let Some(old) = old else {
                    return Flow::Respond(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Invalid refresh_token",
                    ));
                };
                if old.credential != client.id {
                    return Flow::Respond(invalid_client());
                }
                (
                    old.authenticated_userid.clone(),
                    old.scope.clone(),
                    true,
                    Some(old),
                )
            }
        };
        let expires_in = self.config.token_expiration.max(0.0) as i64;
        let refresh_token = (refresh && expires_in > 0).then(|| match &replaces {
            Some(old) if self.config.reuse_refresh_token => {
                old.refresh_token.clone().unwrap_or_else(random_token)
            }
            _ => random_token(),
        });
        let now = epoch_now();
        let ttl = self.config.refresh_token_ttl as i64;
        let token = crate::runtime::OAuthToken {
            id: uuid::Uuid::new_v4(),
            created_at: now,
            credential: client.id,
            service: if self.config.global_credentials {
                None
            } else {
                ctx.service
            },
            access_token: random_token(),
            refresh_token: refresh_token.clone(),
            expires_in,
            refresh_expires_at: match (&refresh_token, ttl) {
                (Some(_), t) if t > 0 => Some(now + t),
                (Some(_), _) => None,
                (None, _) if expires_in > 0 => Some(now + expires_in),
                (None, _) => None,
            },
            authenticated_userid: user,
            scope,
        };
        let mut answer = serde_json::json!({
            "access_token": token.access_token,
            "token_type": "bearer",
        });
        if expires_in > 0 {
            answer["expires_in"] = expires_in.into();
        }
        if let Some(r) = &refresh_token {
            answer["refresh_token"] = r.clone().into();
        }
        if let Some(state) = params.get("state") {
            answer["state"] = state.into();
        }
        let stored = self.tokens.issue(token, replaces);
        Flow::Pending(Box::pin(async move {
            match stored.await {
                Ok(()) => json_answer(StatusCode::OK, &answer),
                Err(_) => crate::runtime::EarlyResponse::message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An unexpected error occurred",
                ),
            }
        }))
    }

    /// The bearer token of a request, and where it was found.
    fn access_token(&self, ctx: &crate::runtime::AccessCtx<'_>) -> Option<(String, bool)> {
        if let Some(v) = ctx.headers.get(&self.header).and_then(|v| v.to_str().ok()) {
            let mut parts = v.split_whitespace();
            let token = match (parts.next(), parts.next(), parts.next()) {
                (Some(kind), Some(t), None)
                    if kind.eq_ignore_ascii_case("bearer")
                        || kind.eq_ignore_ascii_case("token") =>
                {
                    t
                }
                _ => v,
            };
            return Some((token.to_owned(), true));
        }
        Params::of(ctx).get("access_token").map(|t| (t, false))
    }

    fn authenticate(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::Identity;
        use http::StatusCode;
        const INVALID: &str = "The access token is invalid or has expired";
        let challenge_invalid = http::HeaderValue::from_static(
            "Bearer realm=\"service\" error=\"invalid_token\" error_description=\"The access token is invalid or has expired\"",
        );
        let invalid = |d: &str| {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", d)
                .with_header(http::header::WWW_AUTHENTICATE, challenge_invalid.clone())
        };
        let Some((given, in_header)) = self.access_token(ctx).filter(|(t, _)| !t.is_empty()) else {
            let missing = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "The access token is missing",
            )
            .with_header(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"service\""),
            );
            return crate::runtime::reject(
                ctx,
                self.config.anonymous.as_deref(),
                &self.dir,
                missing,
            );
        };
        let token = self.tokens.access(&given);
        let Some(token) = token.filter(|t| !t.access_expired(epoch_now())) else {
            return crate::runtime::reject(
                ctx,
                self.config.anonymous.as_deref(),
                &self.dir,
                invalid(INVALID),
            );
        };
        let scoped_ok = match token.service {
            Some(s) => Some(s) == ctx.service,
            None => self.config.global_credentials,
        };
        if !scoped_ok {
            let r = invalid(
                "The access token is global, but the current plugin is configured without 'global_credentials'",
            );
            return crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, r);
        }
        let Some((client, consumer)) = self.dir.oauth2_credential(token.credential) else {
            return crate::runtime::reject(
                ctx,
                self.config.anonymous.as_deref(),
                &self.dir,
                invalid(INVALID),
            );
        };
        if self.config.hide_credentials {
            if in_header {
                ctx.headers.remove(&self.header);
            } else {
                ctx.strip_query_args.push("access_token".into());
                if let Some(mut p) = ctx
                    .body
                    .as_ref()
                    .and_then(|b| crate::runtime::BodyParams::parse(ctx.headers, b))
                {
                    if p.remove("access_token") {
                        ctx.body = Some(p.encode().into());
                    }
                }
            }
        }
        for (name, value) in [
            ("x-authenticated-scope", token.scope.as_deref()),
            (
                "x-authenticated-userid",
                token.authenticated_userid.as_deref(),
            ),
        ] {
            match value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
                Some(v) => {
                    ctx.headers.insert(name, v);
                }
                None => {
                    ctx.headers.remove(name);
                }
            }
        }
        let identity = Identity {
            consumer,
            credential: Some(client.id),
            identifier: http::HeaderValue::from_str(&client.client_id).ok(),
            anonymous: false,
        };
        crate::runtime::authenticate(ctx, identity)
    }
}

impl crate::runtime::Plugin for OAuth2 {
    fn name(&self) -> &'static str {
        "oauth2"
    }

    fn priority(&self) -> i32 {
        1400
    }

    fn wants_body(&self, method: &http::Method, headers: &http::HeaderMap) -> bool {
        crate::runtime::BodyParams::understood(headers)
            && (method == http::Method::POST || !headers.contains_key(&self.header))
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        match endpoint(ctx.uri.path()) {
            Some(_) if ctx.method != http::Method::POST => Flow::Respond(EarlyResponse::message(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            )),
            Some(Endpoint::Token) => self.issue_token(ctx),
            Some(Endpoint::Authorize) => Flow::Respond(if self.secure(ctx) {
                oauth_error(
                    http::StatusCode::BAD_REQUEST,
                    "unsupported_response_type",
                    "Invalid response_type",
                )
            } else {
                oauth_error(
                    http::StatusCode::BAD_REQUEST,
                    "access_denied",
                    "You must use HTTPS",
                )
            }),
            None => {
                if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
                    return Flow::Continue;
                }
                self.authenticate(ctx)
            }
        }
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn token_and_authorize_endpoints_are_found_at_the_end_of_any_path() {
        assert_eq!(endpoint("/api/oauth2/token"), Some(Endpoint::Token));
        assert_eq!(endpoint("/oauth2/token/"), Some(Endpoint::Token));
        assert_eq!(endpoint("/x/oauth2/authorize"), Some(Endpoint::Authorize));
        assert_eq!(endpoint("/oauth2/token/more"), None);
        assert_eq!(endpoint("/api"), None);
    }

    #[test]
    fn random_tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
