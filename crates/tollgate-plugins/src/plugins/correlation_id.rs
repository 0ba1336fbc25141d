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
    const NAME: &'static str = "correlation-id";
    const PRIORITY: i32 = 100001;
    const FIELDS: &'static [Field] = &[
        field("header_name", Ty::Str),
        field("generator", Ty::OneOf(&["uuid", "uuid#counter", "tracker"])),
        field("echo_downstream", Ty::Bool),
    ];
}
