//! `request-size-limiting`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty};

/// Unit of `allowed_payload_size` (binary multiples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeUnit {
    /// 2^20 bytes.
    #[default]
    Megabytes,
    /// 2^10 bytes.
    Kilobytes,
    /// Bytes.
    Bytes,
}

impl SizeUnit {
    /// Bytes per unit.
    pub fn bytes(self) -> u64 {
        match self {
            SizeUnit::Megabytes => 1 << 20,
            SizeUnit::Kilobytes => 1 << 10,
            SizeUnit::Bytes => 1,
        }
    }
}

/// `request-size-limiting` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestSizeLimitingConfig {
    /// Maximum body size, in `size_unit` (128).
    pub allowed_payload_size: i64,
    /// Unit of the size (megabytes).
    pub size_unit: SizeUnit,
    /// Refuse requests without a valid Content-Length (false).
    pub require_content_length: bool,
}

impl Default for RequestSizeLimitingConfig {
    fn default() -> Self {
        Self {
            allowed_payload_size: 128,
            size_unit: SizeUnit::Megabytes,
            require_content_length: false,
        }
    }
}

impl PluginSchema for RequestSizeLimitingConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        RequestSizeLimiting::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "request-size-limiting";
    const PRIORITY: i32 = 951;
    const FIELDS: &'static [Field] = &[
        field("allowed_payload_size", Ty::Int(Bound::Gt(0.0))),
        field("size_unit", Ty::OneOf(&["megabytes", "kilobytes", "bytes"])),
        field("require_content_length", Ty::Bool),
    ];
}

/// The request-size-limiting plugin at run time: a declared size above the
/// limit is refused at once (413); a body without a declared size is
/// counted as it streams and cut at the limit.
#[derive(Debug)]
pub struct RequestSizeLimiting {
    limit: u64,
    require_content_length: bool,
}

impl RequestSizeLimiting {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: RequestSizeLimitingConfig = serde_json::from_value(config.clone()).ok()?;
        Some(RequestSizeLimiting {
            limit: (config.allowed_payload_size.max(0) as u64)
                .saturating_mul(config.size_unit.bytes()),
            require_content_length: config.require_content_length,
        })
    }
}

impl crate::runtime::Plugin for RequestSizeLimiting {
    fn name(&self) -> &'static str {
        "request-size-limiting"
    }

    fn priority(&self) -> i32 {
        951
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        // A body of undeclared length is refused before anything else when
        // a Content-Length is required (even if another plugin read it).
        if self.require_content_length && ctx.unsized_body {
            return Flow::Respond(EarlyResponse::message(
                http::StatusCode::LENGTH_REQUIRED,
                "A valid Content-Length header is required",
            ));
        }
        let declared = ctx
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            // Read already for another plugin on the route: its size is known.
            .or(ctx.body.as_ref().map(|b| b.len() as u64));
        match declared {
            Some(n) if n > self.limit => Flow::Respond(EarlyResponse::message(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "Request size limit exceeded",
            )),
            Some(_) => Flow::Continue,
            None => {
                ctx.body_limit = Some(ctx.body_limit.map_or(self.limit, |l| l.min(self.limit)));
                Flow::Continue
            }
        }
    }
}
