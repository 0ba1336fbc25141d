//! `cors`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The methods `cors` accepts (and allows by default).
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// `cors` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (exact or regex); none or `*` allows all.
    pub origins: Option<Vec<String>>,
    /// `Access-Control-Allow-Headers` (echoed from the request when unset).
    pub headers: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers`.
    pub exposed_headers: Option<Vec<String>>,
    /// `Access-Control-Allow-Methods`.
    pub methods: Vec<String>,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age: Option<f64>,
    /// `Access-Control-Allow-Credentials` (false).
    pub credentials: bool,
    /// `Access-Control-Allow-Private-Network` (false).
    pub private_network: bool,
    /// Proxy preflights upstream instead of answering them (false).
    pub preflight_continue: bool,
    /// Add CORS headers when the request has no Origin (true).
    pub allow_origin_absent: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            origins: None,
            headers: None,
            exposed_headers: None,
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            max_age: None,
            credentials: false,
            private_network: false,
            preflight_continue: false,
            allow_origin_absent: true,
        }
    }
}

impl PluginSchema for CorsConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        Cors::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "cors";
    const PRIORITY: i32 = 2000;
    const FIELDS: &'static [Field] = &[
        field("origins", STRINGS),
        field("headers", STRINGS),
        field("exposed_headers", STRINGS),
        field("methods", Ty::Array(&Ty::OneOf(METHODS))),
        field("max_age", Ty::Num(Bound::Any)),
        field("credentials", Ty::Bool),
        field("private_network", Ty::Bool),
        field("preflight_continue", Ty::Bool),
        field("allow_origin_absent", Ty::Bool),
    ];
}

/// The cors plugin at run time: answers preflights and adds
/// `Access-Control-*` headers to answers for allowed origins.
#[derive(Debug)]
pub struct Cors {
    config: CorsConfig,
    /// None: every origin is allowed.
    origins: Option<Vec<regex::Regex>>,
}

impl Cors {
    /// Builds the instance from a validated config; an origin is compared
    /// exactly, or as an anchored regex when it is not a plain origin.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: CorsConfig = serde_json::from_value(config.clone()).ok()?;
        let origins = match &config.origins {
            Some(list) if !list.is_empty() && !list.iter().any(|o| o == "*") => Some(
                list.iter()
                    .filter_map(|o| {
                        let plain = o
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || ":/.-_".contains(c));
                        let pattern = if plain { regex::escape(o) } else { o.clone() };
                        regex::Regex::new(&format!("^(?:{pattern})$")).ok()
                    })
                    .collect(),
            ),
            _ => None,
        };
        Some(Cors { config, origins })
    }

    /// The `Access-Control-Allow-Origin` value for this request, if any.
    fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        match (&self.origins, origin) {
            (None, Some(o)) if self.config.credentials => Some(o.to_owned()),
            (None, _) => Some("*".to_owned()),
            (Some(list), Some(o)) if list.iter().any(|r| r.is_match(o)) => Some(o.to_owned()),
            _ => None,
        }
    }
}

impl crate::runtime::Plugin for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn priority(&self) -> i32 {
        2000
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        use http::{header, HeaderValue};
        let origin = ctx
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if origin.is_none() && !self.config.allow_origin_absent {
            return Flow::Continue;
        }
        let Some(allow) = self.allow_origin(origin.as_deref()) else {
            return Flow::Continue;
        };
        let mut headers = Vec::new();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            headers.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, v));
        }
        if allow != "*" {
            headers.push((header::VARY, HeaderValue::from_static("Origin")));
        }
        if self.config.credentials {
            headers.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        let preflight = ctx.method == http::Method::OPTIONS
            && ctx
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && !self.config.preflight_continue {
            if let Ok(v) = HeaderValue::from_str(&self.config.methods.join(",")) {
                headers.push((header::ACCESS_CONTROL_ALLOW_METHODS, v));
            }
            let allow_headers = match &self.config.headers {
                Some(h) => HeaderValue::from_str(&h.join(",")).ok(),
                None => ctx
                    .headers
                    .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                    .cloned(),
            };
            if let Some(v) = allow_headers {
                headers.push((header::ACCESS_CONTROL_ALLOW_HEADERS, v));
            }
            if let Some(age) = self.config.max_age {
                headers.push((
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(age.max(0.0) as u64),
                ));
            }
            return Flow::Respond(EarlyResponse {
                status: http::StatusCode::OK,
                message: None,
                body: Some(("text/plain; charset=utf-8".into(), String::new())),
                headers,
            });
        }
        if let Some(exposed) = &self.config.exposed_headers {
            if let Ok(v) = HeaderValue::from_str(&exposed.join(",")) {
                headers.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, v));
            }
        }
        ctx.response_headers.extend(headers);
        Flow::Continue
    }
}
