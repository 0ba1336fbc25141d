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
