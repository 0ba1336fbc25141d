//! `http-log`: config schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{check_url, field, required, Bound, Field, PluginSchema, Ty, STRING_MAP};

/// Batching queue settings (Kong 3.x `queue` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Entries per batch (1).
    pub max_batch_size: i64,
    /// Seconds to wait for a batch to fill (1).
    pub max_coalescing_delay: f64,
    /// Queue capacity (10000).
    pub max_entries: i64,
    /// Queue capacity in bytes.
    pub max_bytes: Option<i64>,
    /// Seconds to keep retrying a batch (60).
    pub max_retry_time: f64,
    /// First retry delay in seconds (0.01).
    pub initial_retry_delay: f64,
    /// Largest retry delay in seconds (60).
    pub max_retry_delay: f64,
    /// Concurrent senders: 1, or -1 for unlimited (1).
    pub concurrency_limit: i64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 1,
            max_coalescing_delay: 1.0,
            max_entries: 10000,
            max_bytes: None,
            max_retry_time: 60.0,
            initial_retry_delay: 0.01,
            max_retry_delay: 60.0,
            concurrency_limit: 1,
        }
    }
}

/// `http-log` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLogConfig {
    /// Where to send the entries (required).
    pub http_endpoint: String,
    /// HTTP method (POST).
    pub method: String,
    /// Request content type ("application/json").
    pub content_type: String,
    /// Timeout in ms (10000).
    pub timeout: f64,
    /// Idle keepalive in ms (60000).
    pub keepalive: f64,
    /// Deprecated retry count (10).
    pub retry_count: i64,
    /// Deprecated batch size (1).
    pub queue_size: i64,
    /// Deprecated flush timeout in seconds (2).
    pub flush_timeout: f64,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Batching queue.
    pub queue: QueueConfig,
    /// Extra fields (name → Lua expression in Kong).
    pub custom_fields_by_lua: Option<BTreeMap<String, String>>,
}

impl Default for HttpLogConfig {
    fn default() -> Self {
        Self {
            http_endpoint: String::new(),
            method: "POST".to_string(),
            content_type: "application/json".to_string(),
            timeout: 10000.0,
            keepalive: 60000.0,
            retry_count: 10,
            queue_size: 1,
            flush_timeout: 2.0,
            headers: None,
            queue: QueueConfig::default(),
            custom_fields_by_lua: None,
        }
    }
}

const QUEUE: &[Field] = &[
    field("max_batch_size", Ty::Int(Bound::Between(1.0, 1000000.0))),
    field("max_coalescing_delay", Ty::Num(Bound::Between(0.0, 3600.0))),
    field("max_entries", Ty::Int(Bound::Between(1.0, 1000000.0))),
    field("max_bytes", Ty::Int(Bound::Any)),
    field("max_retry_time", Ty::Num(Bound::Any)),
    field(
        "initial_retry_delay",
        Ty::Num(Bound::Between(0.001, 1000000.0)),
    ),
    field("max_retry_delay", Ty::Num(Bound::Between(0.001, 1000000.0))),
    field("concurrency_limit", Ty::Int(Bound::Between(-1.0, 1.0))),
];

impl PluginSchema for HttpLogConfig {
    const NAME: &'static str = "http-log";
    const PRIORITY: i32 = 12;
    const FIELDS: &'static [Field] = &[
        required("http_endpoint", Ty::Check(check_url)),
        field("method", Ty::OneOf(&["POST", "PUT", "PATCH"])),
        field(
            "content_type",
            Ty::OneOf(&["application/json", "application/json; charset=utf-8"]),
        ),
        field("timeout", Ty::Num(Bound::Any)),
        field("keepalive", Ty::Num(Bound::Any)),
        field("retry_count", Ty::Int(Bound::Any)),
        field("queue_size", Ty::Int(Bound::Any)),
        field("flush_timeout", Ty::Num(Bound::Any)),
        field("headers", STRING_MAP),
        field("queue", Ty::Record(QUEUE)),
        field("custom_fields_by_lua", STRING_MAP),
    ];
}
