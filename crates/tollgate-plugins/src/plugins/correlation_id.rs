//! `correlation-id`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Field, PluginSchema, Ty};

/// How ids are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Generator {
    /// A random UUID per request.
    #[serde(rename = "uuid")]
    Uuid,
    /// A per-worker UUID plus a counter.
    #[default]
    #[serde(rename = "uuid#counter")]
    UuidCounter,
    /// Server address, port, timestamp, pid and a random part.
    #[serde(rename = "tracker")]
    Tracker,
}

/// `correlation-id` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationIdConfig {
    /// Header carrying the id ("Kong-Request-ID").
    pub header_name: String,
    /// Id generator (uuid#counter).
    pub generator: Generator,
    /// Also send the header to the client (false).
    pub echo_downstream: bool,
}

impl Default for CorrelationIdConfig {
    fn default() -> Self {
        Self {
            header_name: "Kong-Request-ID".to_string(),
            generator: Generator::UuidCounter,
            echo_downstream: false,
        }
    }
}

impl PluginSchema for CorrelationIdConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        CorrelationId::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "correlation-id";
    const PRIORITY: i32 = 100001;
    const FIELDS: &'static [Field] = &[
        field("header_name", Ty::Str),
        field("generator", Ty::OneOf(&["uuid", "uuid#counter", "tracker"])),
        field("echo_downstream", Ty::Bool),
    ];
}

/// The correlation-id plugin at run time.
#[derive(Debug)]
pub struct CorrelationId {
    config: CorrelationIdConfig,
    header: http::HeaderName,
}

thread_local! {
    /// Per-worker base and counter for the `uuid#counter` generator.
    static COUNTER: std::cell::Cell<(u128, u64)> = std::cell::Cell::new((uuid::Uuid::new_v4().as_u128(), 0));
}

impl CorrelationId {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: CorrelationIdConfig = serde_json::from_value(config.clone()).ok()?;
        let header = http::HeaderName::from_bytes(config.header_name.as_bytes()).ok()?;
        Some(CorrelationId { config, header })
    }

    fn generate(&self, ctx: &crate::runtime::AccessCtx<'_>) -> String {
        match self.config.generator {
            Generator::Uuid => uuid::Uuid::new_v4().to_string(),
            Generator::UuidCounter => COUNTER.with(|c| {
                let (base, n) = c.get();
                c.set((base, n + 1));
                format!("{}#{}", uuid::Uuid::from_u128(base), n + 1)
            }),
            Generator::Tracker => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                format!(
                    "{}-{}-{}-{}",
                    ctx.client_ip,
                    now,
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                )
            }
        }
    }
}

impl crate::runtime::Plugin for CorrelationId {
    fn name(&self) -> &'static str {
        "correlation-id"
    }

    fn priority(&self) -> i32 {
        100_001
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        let value = match ctx.headers.get(&self.header) {
            Some(v) => v.clone(),
            None => {
                let id = self.generate(ctx);
                match http::HeaderValue::from_str(&id) {
                    Ok(v) => {
                        ctx.headers.insert(self.header.clone(), v.clone());
                        v
                    }
                    Err(_) => return crate::runtime::Flow::Continue,
                }
            }
        };
        if self.config.echo_downstream {
            ctx.response_headers.push((self.header.clone(), value));
        }
        crate::runtime::Flow::Continue
    }
}
