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
    const NAME: &'static str = "request-size-limiting";
    const PRIORITY: i32 = 951;
    const FIELDS: &'static [Field] = &[
        field("allowed_payload_size", Ty::Int(Bound::Gt(0.0))),
        field("size_unit", Ty::OneOf(&["megabytes", "kilobytes", "bytes"])),
        field("require_content_length", Ty::Bool),
    ];
}
