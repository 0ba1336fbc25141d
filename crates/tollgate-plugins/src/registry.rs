//! The list of bundled plugins with a schema. Adding a plugin is one line in
//! [`PLUGINS`].

use serde_json::Value;

use crate::plugins::*;
use crate::schema::{defaults_of, validate_as, Field, PluginSchema};
use crate::SchemaError;

/// The Kong version whose bundled plugins these schemas follow; bundled
/// plugins report it as their `VERSION`.
const KONG_VERSION: &str = "3.9.1";

/// A bundled plugin.
#[derive(Debug, Clone, Copy)]
pub struct PluginInfo {
    /// The plugin name, e.g. `rate-limiting`.
    pub name: &'static str,
    /// Kong's `PRIORITY` (higher runs first in each phase).
    pub priority: i32,
    /// The plugin version.
    pub version: &'static str,
    validate: fn(&Value) -> Result<Value, SchemaError>,
    defaults: fn() -> Value,
    fields: &'static [Field],
    runtime: Runtime,
}

/// Builds a plugin's runtime (see [`PluginSchema::runtime`]).
type Runtime = fn(
    &tollgate_model::Plugin,
    &std::sync::Arc<crate::runtime::Directory>,
    &crate::runtime::PluginEnv,
) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>>;

impl PluginInfo {
    /// Validates `config` for this plugin; see [`validate_config`].
    pub fn validate_config(&self, config: &Value) -> Result<Value, SchemaError> {
        (self.validate)(config)
    }

    /// The config with every default filled (required fields unset).
    pub fn defaults(&self) -> Value {
        (self.defaults)()
    }

    /// The JSON shape of the config record.
    pub fn fields(&self) -> &'static [Field] {
        self.fields
    }

    /// The runtime of a configured instance (None: not run by this version).
    pub fn runtime(
        &self,
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        (self.runtime)(plugin, dir, env)
    }
}

const fn plugin<T: PluginSchema>() -> PluginInfo {
    PluginInfo {
        name: T::NAME,
        priority: T::PRIORITY,
        version: KONG_VERSION,
        validate: validate_as::<T>,
        defaults: defaults_of::<T>,
        fields: T::FIELDS,
        runtime: T::runtime,
    }
}

/// Every bundled plugin with a schema, by descending priority.
static PLUGINS: &[PluginInfo] = &[
    plugin::<correlation_id::CorrelationIdConfig>(),
    plugin::<bot_detection::BotDetectionConfig>(),
    plugin::<cors::CorsConfig>(),
    plugin::<acme::AcmeConfig>(),
    plugin::<mtls_auth::MtlsAuthConfig>(),
    plugin::<jwt::JwtConfig>(),
    plugin::<oauth2::OAuth2Config>(),
    plugin::<key_auth::KeyAuthConfig>(),
    plugin::<basic_auth::BasicAuthConfig>(),
    plugin::<hmac_auth::HmacAuthConfig>(),
    plugin::<ip_restriction::IpRestrictionConfig>(),
    plugin::<request_size_limiting::RequestSizeLimitingConfig>(),
    plugin::<acl::AclConfig>(),
    plugin::<rate_limiting::RateLimitingConfig>(),
    plugin::<limit_req::LimitReqConfig>(),
    plugin::<request_transformer::RequestTransformerConfig>(),
    plugin::<response_transformer::ResponseTransformerConfig>(),
    plugin::<compression::CompressionConfig>(),
    plugin::<static_files::StaticFilesConfig>(),
    plugin::<proxy_cache::ProxyCacheConfig>(),
    plugin::<prometheus::PrometheusConfig>(),
    plugin::<http_log::HttpLogConfig>(),
    plugin::<file_log::FileLogConfig>(),
    plugin::<udp_log::UdpLogConfig>(),
    plugin::<tcp_log::TcpLogConfig>(),
    plugin::<request_termination::RequestTerminationConfig>(),
];

/// All bundled plugins with schemas, by descending priority.
pub fn registry() -> &'static [PluginInfo] {
    PLUGINS
}

/// The bundled plugin `name`.
pub fn find(name: &str) -> Option<&'static PluginInfo> {
    PLUGINS.iter().find(|p| p.name == name)
}

/// Kong's `PRIORITY` of the bundled plugin `name`.
pub fn priority(name: &str) -> Option<i32> {
    find(name).map(|p| p.priority)
}

/// Validates `config` (a JSON object, possibly partial; `null` counts as
/// `{}`) for plugin `name`; returns the full config with Kong's defaults
/// filled, or the problems as (path inside config, message). An unknown
/// plugin gives [`SchemaError::UnknownPlugin`].
pub fn validate_config(name: &str, config: &Value) -> Result<Value, SchemaError> {
    find(name)
        .ok_or(SchemaError::UnknownPlugin)?
        .validate_config(config)
}
