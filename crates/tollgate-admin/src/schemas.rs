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
