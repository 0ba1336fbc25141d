//! `request-termination`: config schema and runtime (a fixed answer, or
//! with `echo` the request itself as JSON; only when `trigger` is present
//! when it is set).

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Bound, Field, PluginSchema, Ty};
use crate::Problem;

/// `request-termination` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestTerminationConfig {
    /// Response status (503).
    pub status_code: u16,
    /// Message for a `{"message": …}` body.
    pub message: Option<String>,
    /// Content type of `body`.
    pub content_type: Option<String>,
    /// Raw response body.
    pub body: Option<String>,
    /// Echo the request back (false).
    pub echo: bool,
    /// Only terminate when this header or query parameter is present.
    pub trigger: Option<String>,
}

impl Default for RequestTerminationConfig {
    fn default() -> Self {
        Self {
            status_code: 503,
            message: None,
            content_type: None,
            body: None,
            echo: false,
            trigger: None,
        }
    }
}

impl PluginSchema for RequestTerminationConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        RequestTermination::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "request-termination";
    const PRIORITY: i32 = 2;
    const FIELDS: &'static [Field] = &[
        field("status_code", Ty::Int(Bound::Between(100.0, 599.0))),
        field("message", Ty::Str),
        field("content_type", Ty::Str),
        field("body", Ty::Str),
        field("echo", Ty::Bool),
        field("trigger", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        if self.message.is_some() && (self.content_type.is_some() || self.body.is_some()) {
            problems.push(problem(
                &[],
                "message cannot be used with content_type or body",
            ));
        } else if self.content_type.is_some() && self.body.is_none() {
            problems.push(problem(&[], "content_type requires a body"));
        } else if self.echo && (self.content_type.is_some() || self.body.is_some()) {
            problems.push(problem(
                &[],
                "echo cannot be used with content_type and body",
            ));
        }
        result(problems)
    }
}

/// The request-termination plugin at run time.
#[derive(Debug)]
pub struct RequestTermination {
    config: RequestTerminationConfig,
}

/// Adds `value` under `key`, turning repeated keys into arrays (as Kong's
/// `get_headers` and `get_query`).
fn insert_multi(map: &mut serde_json::Map<String, serde_json::Value>, key: &str, value: &str) {
    use serde_json::Value;
    match map.get_mut(key) {
        None => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
        Some(Value::Array(a)) => a.push(Value::String(value.to_owned())),
        Some(other) => {
            let first = other.take();
            *other = Value::Array(vec![first, Value::String(value.to_owned())]);
        }
    }
}

impl RequestTermination {
    /// Kong's echo document: the message and the request as received.
    fn echo(&self, ctx: &crate::runtime::AccessCtx<'_>) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut headers = Map::new();
        for (name, value) in ctx.headers.iter() {
            insert_multi(
                &mut headers,
                name.as_str(),
                &String::from_utf8_lossy(value.as_bytes()),
            );
        }
        let mut query = Map::new();
        let pairs =
            tollgate_model::form::parse_urlencoded(ctx.uri.query().unwrap_or("").as_bytes());
        for (k, v) in &pairs {
            insert_multi(&mut query, k, v);
        }
        let host = ctx
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| ctx.uri.host())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned());
        let raw = ctx.body.as_deref().unwrap_or_default();
        let body = ctx
            .body
            .as_ref()
            .and_then(|b| crate::runtime::BodyParams::parse(ctx.headers, b))
            .map(|p| match p {
                crate::runtime::BodyParams::Json(m) => Value::Object(m),
                crate::runtime::BodyParams::Form(p)
                | crate::runtime::BodyParams::Multipart(p, _) => {
                    let mut m = Map::new();
                    for (k, v) in &p {
                        insert_multi(&mut m, k, v);
                    }
                    Value::Object(m)
                }
            });
        let mut captures = Map::new();
        for (k, v) in ctx.uri_captures.named {
            captures.insert(k.clone(), json!(v));
        }
        for (i, v) in ctx.uri_captures.positional.iter().enumerate() {
            if let Some(v) = v {
                captures.insert(i.to_string(), json!(v));
            }
        }
        json!({
            "message": self.config.message,
            "request": {
                "scheme": if ctx.tls { "https" } else { "http" },
                "host": host,
                "method": ctx.method.as_str(),
                "path": ctx.uri.path(),
                "query": query,
                "headers": headers,
                "raw_body": String::from_utf8_lossy(raw),
                "body": body,
                "uri_captures": captures,
                "client_ip": ctx.client_ip_text,
            },
        })
    }

    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        Some(RequestTermination {
            config: serde_json::from_value(config.clone()).ok()?,
        })
    }
}

impl crate::runtime::Plugin for RequestTermination {
    fn name(&self) -> &'static str {
        "request-termination"
    }

    fn priority(&self) -> i32 {
        2
    }

    fn wants_body(&self, _method: &http::Method, _headers: &http::HeaderMap) -> bool {
        self.config.echo
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        if let Some(trigger) = &self.config.trigger {
            let in_query = ctx.uri.query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p.split('=').next() == Some(trigger.as_str()))
            });
            if !ctx.headers.contains_key(trigger.as_str()) && !in_query {
                return Flow::Continue;
            }
        }
        let status = http::StatusCode::from_u16(self.config.status_code)
            .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
        if self.config.echo {
            return Flow::Respond(EarlyResponse::json(status, &self.echo(ctx)));
        }
        let r = match (&self.config.body, &self.config.message) {
            (Some(body), _) => EarlyResponse {
                status,
                message: None,
                body: Some((
                    self.config
                        .content_type
                        .clone()
                        .unwrap_or_else(|| "application/json; charset=utf-8".into()),
                    body.clone(),
                )),
                headers: Vec::new(),
            },
            (None, Some(m)) => EarlyResponse::message(status, m.clone()),
            (None, None) => EarlyResponse::message(status, "Service unavailable"),
        };
        Flow::Respond(r)
    }
}
