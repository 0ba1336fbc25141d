//! Tollgate's bundled plugins.
//!
//! For now this crate holds the config **schema** of each bundled plugin, so
//! the Admin API and the declarative reader can validate a plugin's `config`
//! when it is written and fill Kong's defaults:
//!
//! ```
//! let full = tollgate_plugins::validate_config("rate-limiting", &serde_json::json!({"minute": 100})).unwrap();
//! assert_eq!(full["policy"], "local");
//! assert_eq!(tollgate_plugins::priority("rate-limiting"), Some(910));
//! ```
//!
//! Each plugin lives in its own file under `plugins/` (its config struct with
//! Kong's defaults, a field table describing the JSON shape, and cross-field
//! rules); [`registry`] lists them. The plugin runtime will live here too.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod plugins;
mod registry;
pub mod runtime;
pub mod schema;

pub use registry::{priority, registry, validate_config, PluginInfo};

/// One validation problem: the path inside `config` (empty for an
/// entity-level problem; array elements are addressed by their 0-based
/// index) and Kong's message.
pub type Problem = (Vec<String>, String);

/// Why a plugin config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// No bundled plugin has this name.
    #[error("plugin not enabled or unknown")]
    UnknownPlugin,
    /// The config does not match the plugin's schema.
    #[error("schema violation: {}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|(path, msg)| {
            if path.is_empty() {
                format!("config: {msg}")
            } else {
                format!("config.{}: {msg}", path.join("."))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
