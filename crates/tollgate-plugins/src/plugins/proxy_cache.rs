//! `proxy-cache`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The in-memory strategy's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Shared dictionary name ("kong_db_cache").
    pub dictionary_name: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            dictionary_name: "kong_db_cache".to_string(),
        }
    }
}

/// Which cache headers the client sees (all true).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseHeaders {
    /// `Age`.
    pub age: bool,
    /// `X-Cache-Status`.
    #[serde(rename = "X-Cache-Status")]
    pub x_cache_status: bool,
    /// `X-Cache-Key`.
    #[serde(rename = "X-Cache-Key")]
    pub x_cache_key: bool,
}

impl Default for ResponseHeaders {
    fn default() -> Self {
        Self {
            age: true,
            x_cache_status: true,
            x_cache_key: true,
        }
    }
}

/// `proxy-cache` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyCacheConfig {
    /// Cacheable upstream statuses ([200, 301, 404]).
    pub response_code: Vec<u16>,
    /// Cacheable methods (["GET", "HEAD"]).
    pub request_method: Vec<String>,
    /// Cacheable content types.
    pub content_type: Vec<String>,
    /// Entry lifetime in seconds (300).
    pub cache_ttl: i64,
    /// Storage strategy ("memory").
    pub strategy: String,
    /// Honour Cache-Control (false).
    pub cache_control: bool,
    /// Case-insensitive URI in the key (false).
    pub ignore_uri_case: bool,
    /// How long entries are kept in storage, in seconds.
    pub storage_ttl: Option<i64>,
    /// Memory strategy settings.
    pub memory: MemoryConfig,
    /// Query parameters in the key (all when unset).
    pub vary_query_params: Option<Vec<String>>,
    /// Headers in the key.
    pub vary_headers: Option<Vec<String>>,
    /// Which cache headers to send.
    pub response_headers: ResponseHeaders,
}

impl Default for ProxyCacheConfig {
    fn default() -> Self {
        Self {
            response_code: vec![200, 301, 404],
            request_method: vec!["GET".to_string(), "HEAD".to_string()],
            content_type: vec!["text/plain".to_string(), "application/json".to_string()],
            cache_ttl: 300,
            strategy: "memory".to_string(),
            cache_control: false,
            ignore_uri_case: false,
            storage_ttl: None,
            memory: MemoryConfig::default(),
            vary_query_params: None,
            vary_headers: None,
            response_headers: ResponseHeaders::default(),
        }
    }
}

impl PluginSchema for ProxyCacheConfig {
    const NAME: &'static str = "proxy-cache";
    const PRIORITY: i32 = 100;
    const FIELDS: &'static [Field] = &[
        field(
            "response_code",
            Ty::Array(&Ty::Int(Bound::Between(100.0, 900.0))),
        ),
        field(
            "request_method",
            Ty::Array(&Ty::OneOf(&["HEAD", "GET", "POST", "PATCH", "PUT"])),
        ),
        field("content_type", STRINGS),
        field("cache_ttl", Ty::Int(Bound::Gt(0.0))),
        field("strategy", Ty::OneOf(&["memory"])),
        field("cache_control", Ty::Bool),
        field("ignore_uri_case", Ty::Bool),
        field("storage_ttl", Ty::Int(Bound::Any)),
        field("memory", Ty::Record(&[field("dictionary_name", Ty::Str)])),
        field("vary_query_params", STRINGS),
        field("vary_headers", STRINGS),
        field(
            "response_headers",
            Ty::Record(&[
                field("age", Ty::Bool),
                field("X-Cache-Status", Ty::Bool),
                field("X-Cache-Key", Ty::Bool),
            ]),
        ),
    ];
}
