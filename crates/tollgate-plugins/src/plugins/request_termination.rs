//! `request-termination`: config schema.

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

impl RequestTermination {
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
