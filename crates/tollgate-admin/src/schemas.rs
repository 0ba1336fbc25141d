//! Bridges the bundled plugins' config schemas (`tollgate-plugins`) to the
//! model's validator, so a plugin's `config` is checked when it is written.

use serde_json::Value;
use tollgate_model::{PluginConfigError, PluginSchemas};

/// The bundled plugins, as the model's plugin validator.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginRegistry;

impl PluginSchemas for PluginRegistry {
    fn validate(&self, name: &str, config: &Value) -> Result<Value, PluginConfigError> {
        tollgate_plugins::validate_config(name, config).map_err(|e| match e {
            tollgate_plugins::SchemaError::UnknownPlugin => PluginConfigError::UnknownPlugin,
            tollgate_plugins::SchemaError::Invalid(list) => PluginConfigError::Invalid(list),
        })
    }
}

/// The bundled plugins as validated for a DB-less node (`database = off`):
/// as [`PluginRegistry`], and what needs a database is refused
/// (`rate-limiting` with `policy: cluster`, as Kong does).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbLessPluginRegistry;

impl PluginSchemas for DbLessPluginRegistry {
    fn validate(&self, name: &str, config: &Value) -> Result<Value, PluginConfigError> {
        let config = PluginRegistry.validate(name, config)?;
        if name == "rate-limiting"
            && config.get("policy").and_then(Value::as_str) == Some("cluster")
        {
            return Err(PluginConfigError::Invalid(vec![(
                vec!["policy".to_owned()],
                "the cluster policy keeps counters in the database: not available with \
                 database = off (use local or redis)"
                    .to_owned(),
            )]));
        }
        Ok(config)
    }
}
