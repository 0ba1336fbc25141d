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
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        BasicAuth::new(&plugin.config, dir)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "basic-auth";
    const PRIORITY: i32 = 1100;
    const FIELDS: &'static [Field] = &[
        field("anonymous", Ty::Str),
        field("hide_credentials", Ty::Bool),
        field("realm", Ty::Str),
    ];
}

/// The basic-auth plugin at run time.
#[derive(Debug)]
pub struct BasicAuth {
    config: BasicAuthConfig,
    dir: std::sync::Arc<crate::runtime::Directory>,
}

impl BasicAuth {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        dir: &std::sync::Arc<crate::runtime::Directory>,
    ) -> Option<Self> {
        Some(BasicAuth {
            config: serde_json::from_value(config.clone()).ok()?,
            dir: dir.clone(),
        })
    }
}

/// `Basic base64(user:pass)` → (user, pass) (also oauth2's client
/// authentication).
pub(crate) fn parse_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

impl crate::runtime::Plugin for BasicAuth {
    fn name(&self) -> &'static str {
        "basic-auth"
    }

    fn priority(&self) -> i32 {
        1100
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow, Identity};
        if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
            return Flow::Continue;
        }
        let header = [
            http::header::AUTHORIZATION,
            http::header::PROXY_AUTHORIZATION,
        ]
        .into_iter()
        .find_map(|h| {
            ctx.headers
                .get(&h)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_basic)
                .map(|c| (h, c))
        });
        if let Some((h, (user, pass))) = header {
            if let Some((consumer, cred)) = self.dir.basic(&user, &pass) {
                if self.config.hide_credentials {
                    ctx.headers.remove(h);
                }
                let identity = Identity {
                    consumer,
                    credential: Some(cred),
                    identifier: http::HeaderValue::from_str(&user).ok(),
                    anonymous: false,
                };
                return crate::runtime::authenticate(ctx, identity);
            }
        }
        let challenge = format!("Basic realm=\"{}\"", self.config.realm);
        let mut r = EarlyResponse::message(http::StatusCode::UNAUTHORIZED, "Unauthorized");
        if let Ok(v) = http::HeaderValue::from_str(&challenge) {
            r = r.with_header(http::header::WWW_AUTHENTICATE, v);
        }
        crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, r)
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::parse_basic;

    #[test]
    fn basic_header_is_decoded() {
        // admin:mypassword
        assert_eq!(
            parse_basic("Basic YWRtaW46bXlwYXNzd29yZA=="),
            Some(("admin".into(), "mypassword".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
