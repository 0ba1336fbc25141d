//! `rate-limiting`: config schema (Kong 3.x fields, with Redis settings
//! nested under `redis`, plus Tollgate's `window_type`) and the runtime,
//! one file per counter store: [`local`] (this node), [`redis`] (one Lua
//! decision per request) and [`batched`] (Redis with `sync_rate` > 0).

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Bound, Field, PluginSchema, Ty, HEADER_NAME, PORT};
use crate::Problem;

/// The periods, shortest first.
pub const PERIODS: [&str; 6] = ["second", "minute", "hour", "day", "month", "year"];

/// What the counters are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitBy {
    /// The authenticated consumer (falling back to the credential, then the IP).
    #[default]
    Consumer,
    /// The credential.
    Credential,
    /// The client IP.
    Ip,
    /// The service.
    Service,
    /// The value of `header_name`.
    Header,
    /// The request path, when it equals `path`.
    Path,
}

/// Where the counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// In this node's memory.
    #[default]
    Local,
    /// In the database.
    Cluster,
    /// In Redis.
    Redis,
}

/// Tollgate's window kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowType {
    /// Kong's fixed calendar windows.
    #[default]
    Fixed,
    /// A sliding window.
    Sliding,
}

/// Redis connection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Host name.
    pub host: Option<String>,
    /// Port (6379).
    pub port: u16,
    /// ACL user name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Database number (0).
    pub database: i64,
    /// Timeout in ms (2000).
    pub timeout: i64,
    /// Use TLS.
    pub ssl: bool,
    /// Verify the server certificate.
    pub ssl_verify: bool,
    /// SNI name.
    pub server_name: Option<String>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 6379,
            username: None,
            password: None,
            database: 0,
            timeout: 2000,
            ssl: false,
            ssl_verify: false,
            server_name: None,
        }
    }
}

/// `rate-limiting` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Requests per second.
    pub second: Option<f64>,
    /// Requests per minute.
    pub minute: Option<f64>,
    /// Requests per hour.
    pub hour: Option<f64>,
    /// Requests per day.
    pub day: Option<f64>,
    /// Requests per month.
    pub month: Option<f64>,
    /// Requests per year.
    pub year: Option<f64>,
    /// What the counters are keyed by (consumer).
    pub limit_by: LimitBy,
    /// Header for `limit_by: header`.
    pub header_name: Option<String>,
    /// Path for `limit_by: path`.
    pub path: Option<String>,
    /// Counter storage (local).
    pub policy: Policy,
    /// Allow requests when the storage fails (true).
    pub fault_tolerant: bool,
    /// Hide the rate-limit response headers (false).
    pub hide_client_headers: bool,
    /// Status when blocked (429).
    pub error_code: f64,
    /// Message when blocked.
    pub error_message: String,
    /// Seconds between counter syncs; -1 is synchronous.
    pub sync_rate: f64,
    /// Redis settings for `policy: redis`.
    pub redis: RedisConfig,
    /// Tollgate: fixed or sliding windows (fixed).
    pub window_type: WindowType,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        Self {
            second: None,
            minute: None,
            hour: None,
            day: None,
            month: None,
            year: None,
            limit_by: LimitBy::Consumer,
            header_name: None,
            path: None,
            policy: Policy::Local,
            fault_tolerant: true,
            hide_client_headers: false,
            error_code: 429.0,
            error_message: "API rate limit exceeded".to_string(),
            sync_rate: -1.0,
            redis: RedisConfig::default(),
            window_type: WindowType::Fixed,
        }
    }
}

impl RateLimitingConfig {
    /// The configured limits as (period, limit), shortest period first.
    pub fn limits(&self) -> Vec<(&'static str, f64)> {
        let values = [
            self.second,
            self.minute,
            self.hour,
            self.day,
            self.month,
            self.year,
        ];
        PERIODS
            .iter()
            .zip(values)
            .filter_map(|(p, v)| v.map(|v| (*p, v)))
            .collect()
    }
}

const LIMIT: Ty = Ty::Num(Bound::Gt(0.0));

const REDIS_FIELDS: &[Field] = &[
    field("host", Ty::Str),
    field("port", PORT),
    field("username", Ty::Str),
    field("password", Ty::Str),
    field("database", Ty::Int(Bound::Any)),
    field("timeout", Ty::Int(Bound::Between(0.0, 2147483646.0))),
    field("ssl", Ty::Bool),
    field("ssl_verify", Ty::Bool),
    field("server_name", Ty::Str),
];

impl PluginSchema for RateLimitingConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        RateLimiting::new(plugin.id, &plugin.config, env)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "rate-limiting";
    const PRIORITY: i32 = 910;
    const FIELDS: &'static [Field] = &[
        field("second", LIMIT),
        field("minute", LIMIT),
        field("hour", LIMIT),
        field("day", LIMIT),
        field("month", LIMIT),
        field("year", LIMIT),
        field(
            "limit_by",
            Ty::OneOf(&["consumer", "credential", "ip", "service", "header", "path"]),
        ),
        field("header_name", HEADER_NAME),
        field("path", Ty::Str),
        field("policy", Ty::OneOf(&["local", "cluster", "redis"])),
        field("fault_tolerant", Ty::Bool),
        field("hide_client_headers", Ty::Bool),
        field("error_code", Ty::Num(Bound::Gt(0.0))),
        field("error_message", Ty::Str),
        field("sync_rate", Ty::Num(Bound::Any)),
        field("redis", Ty::Record(REDIS_FIELDS)),
        field("window_type", Ty::OneOf(&["fixed", "sliding"])),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let limits = self.limits();
        if limits.is_empty() {
            problems.push(problem(
                &[],
                "at least one of these fields must be non-empty: 'config.second', 'config.minute', \
                 'config.hour', 'config.day', 'config.month', 'config.year'",
            ));
        }
        'order: for (i, (shorter, v1)) in limits.iter().enumerate() {
            for (longer, v2) in &limits[i + 1..] {
                if v2 < v1 {
                    problems.push(problem(
                        &[],
                        format!(
                            "The limit for {longer}({v2:.1}) cannot be lower than the limit for {shorter}({v1:.1})"
                        ),
                    ));
                    break 'order;
                }
            }
        }
        if self.limit_by == LimitBy::Header && self.header_name.is_none() {
            problems.push(problem(&["header_name"], "required field missing"));
        }
        if self.limit_by == LimitBy::Path && self.path.is_none() {
            problems.push(problem(&["path"], "required field missing"));
        }
        if self.policy == Policy::Redis && self.redis.host.is_none() {
            problems.push(problem(&["redis", "host"], "required field missing"));
        }
        if self.sync_rate != -1.0 && self.sync_rate < 0.02 && self.sync_rate != 0.0 {
            problems.push(problem(
                &["sync_rate"],
                "sync_rate must be -1, 0 or at least 0.02",
            ));
        }
        result(problems)
    }
}

mod batched;
mod local;
mod redis;

use std::sync::Arc;

use crate::runtime::redis::{RedisClient, RedisTarget};
use crate::runtime::{AccessCtx, EarlyResponse, Flow};

/// Decisions `policy: redis` could not get from Redis, and failed batch
/// syncs with `sync_rate` (let through with `fault_tolerant`, else
/// answered 500).
pub static REDIS_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where one instance keeps its counters.
#[derive(Debug)]
enum Store {
    /// This node's memory.
    Local,
    /// Redis, one script per decision (`sync_rate` -1 or 0).
    Redis(Arc<RedisClient>),
    /// Redis, counted locally and synced every `sync_rate` seconds.
    Batched(Arc<batched::Batched>),
}

/// The rate-limiting plugin at run time: `policy: local` and `policy: redis`
/// (synchronous, or batched with `sync_rate` > 0), each with fixed or
/// sliding windows.
#[derive(Debug)]
pub struct RateLimiting {
    id: uuid::Uuid,
    config: RateLimitingConfig,
    /// (unit, limit), shortest window first.
    windows: Vec<(&'static str, u64)>,
    /// The limits as header values, made once.
    limit_values: Vec<http::HeaderValue>,
    store: Store,
}

/// One window's outcome: (unit, limit, remaining, seconds to reset).
type WindowState = (&'static str, u64, u64, i64);

impl RateLimiting {
    /// Builds the instance (`None` when the config does not parse, which
    /// validation rules out).
    pub fn new(
        id: uuid::Uuid,
        config: &serde_json::Value,
        env: &crate::runtime::PluginEnv,
    ) -> Option<Self> {
        let config: RateLimitingConfig = serde_json::from_value(config.clone()).ok()?;
        let store = match config.policy {
            // A DB-less node refuses `cluster` when loading; with the
            // embedded SQLite store one node is the whole cluster, so its
            // memory holds the cluster's counters.
            Policy::Local | Policy::Cluster => Store::Local,
            Policy::Redis => {
                let r = &config.redis;
                let host = r.host.clone()?;
                let target = RedisTarget {
                    tls: r.ssl.then(|| crate::runtime::redis::RedisTls {
                        server_name: r.server_name.clone().unwrap_or_else(|| host.clone()),
                        verify: r.ssl_verify,
                    }),
                    host,
                    port: r.port,
                    username: r.username.clone(),
                    password: r.password.clone(),
                    database: r.database,
                    timeout: std::time::Duration::from_millis(r.timeout.max(1) as u64),
                };
                if config.sync_rate > 0.0 {
                    let every = std::time::Duration::from_secs_f64(config.sync_rate);
                    Store::Batched(batched::Batched::shared(
                        id,
                        RedisClient::new(target, env.tls.clone()),
                        every,
                        config.window_type == WindowType::Sliding,
                    ))
                } else {
                    Store::Redis(Arc::new(RedisClient::new(target, env.tls.clone())))
                }
            }
        };
        let windows: Vec<(&'static str, u64)> = [
            ("second", config.second),
            ("minute", config.minute),
            ("hour", config.hour),
            ("day", config.day),
            ("month", config.month),
            ("year", config.year),
        ]
        .into_iter()
        .filter_map(|(u, l)| l.map(|l| (u, l.max(0.0) as u64)))
        .collect();
        let limit_values = windows
            .iter()
            .map(|(_, l)| http::HeaderValue::from(*l))
            .collect();
        Some(RateLimiting {
            id,
            config,
            windows,
            limit_values,
            store,
        })
    }

    fn sliding(&self) -> bool {
        self.config.window_type == WindowType::Sliding
    }

    fn identifier(&self, ctx: &AccessCtx<'_>) -> String {
        let ip = || ctx.client_ip_text.to_owned();
        match self.config.limit_by {
            LimitBy::Consumer => ctx
                .identity
                .as_ref()
                .map(|i| i.consumer.id.to_string())
                .unwrap_or_else(ip),
            LimitBy::Credential => ctx
                .identity
                .as_ref()
                .and_then(|i| i.credential)
                .map(|c| c.to_string())
                .unwrap_or_else(ip),
            LimitBy::Ip => ip(),
            LimitBy::Service => ctx.service.map(|s| s.to_string()).unwrap_or_else(ip),
            LimitBy::Header => self
                .config
                .header_name
                .as_deref()
                .and_then(|h| ctx.headers.get(h))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(ip),
            // Kong: count by path only for the configured path, else by IP.
            LimitBy::Path => match &self.config.path {
                Some(p) if p == ctx.uri.path() => p.clone(),
                _ => ip(),
            },
        }
    }

    /// What to do when the counters' store failed: let through
    /// (`fault_tolerant`, counted and logged) or answer 500.
    fn store_failed(&self, error: &str) -> Flow {
        REDIS_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(plugin = %self.id, fault_tolerant = self.config.fault_tolerant, "rate-limiting: Redis unavailable: {error}");
        if self.config.fault_tolerant {
            Flow::Continue
        } else {
            Flow::Respond(EarlyResponse::message(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
            ))
        }
    }

    /// Kong's headers for the windows' `state`, and the 429 when `blocked`
    /// (seconds to retry).
    fn answer(&self, ctx: &mut AccessCtx<'_>, state: &[WindowState], blocked: Option<i64>) -> Flow {
        use http::HeaderValue;
        if !self.config.hide_client_headers {
            ctx.response_headers.reserve(2 * state.len() + 3);
            for (i, (unit, limit, remaining, _)) in state.iter().enumerate() {
                let (limit_name, remaining_name) = window_headers(unit);
                let limit_value = self
                    .limit_values
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| HeaderValue::from(*limit));
                ctx.response_headers.push((limit_name, limit_value));
                ctx.response_headers
                    .push((remaining_name, count_value(*remaining)));
            }
            // RateLimit-*: the window closest to its limit.
            if let Some((_, limit, remaining, reset)) =
                state.iter().rev().min_by_key(|(_, _, r, _)| *r)
            {
                ctx.response_headers
                    .push((names::RATELIMIT_LIMIT, count_value(*limit)));
                ctx.response_headers
                    .push((names::RATELIMIT_REMAINING, count_value(*remaining)));
                ctx.response_headers
                    .push((names::RATELIMIT_RESET, count_value((*reset).max(0) as u64)));
            }
        }
        match blocked {
            None => Flow::Continue,
            Some(retry) => {
                let status = http::StatusCode::from_u16(self.config.error_code as u16)
                    .unwrap_or(http::StatusCode::TOO_MANY_REQUESTS);
                let mut r = EarlyResponse::message(status, self.config.error_message.clone());
                if !self.config.hide_client_headers {
                    r = r.with_header(http::header::RETRY_AFTER, count_value(retry.max(0) as u64));
                }
                Flow::Respond(r)
            }
        }
    }
}

/// A count as a header value; counts below 4,096 come from a table made
/// once (a clone of a static value, no allocation per request).
fn count_value(n: u64) -> http::HeaderValue {
    use std::sync::OnceLock;
    const CACHED: u64 = 4096;
    static TABLE: OnceLock<Vec<http::HeaderValue>> = OnceLock::new();
    if n >= CACHED {
        return http::HeaderValue::from(n);
    }
    let table = TABLE.get_or_init(|| {
        let text: &'static str = Box::leak(
            (0..CACHED)
                .map(|i| i.to_string())
                .collect::<String>()
                .into_boxed_str(),
        );
        let mut at = 0;
        (0..CACHED)
            .map(|i| {
                let len = if i < 10 {
                    1
                } else if i < 100 {
                    2
                } else if i < 1000 {
                    3
                } else {
                    4
                };
                let v = http::HeaderValue::from_static(&text[at..at + len]);
                at += len;
                v
            })
            .collect()
    });
    table[n as usize].clone()
}

/// Header names made at compile time (`from_static` in a `const` is
/// checked once, by the compiler).
mod names {
    use http::HeaderName as H;
    pub const LIMIT: [H; 6] = [
        H::from_static("x-ratelimit-limit-second"),
        H::from_static("x-ratelimit-limit-minute"),
        H::from_static("x-ratelimit-limit-hour"),
        H::from_static("x-ratelimit-limit-day"),
        H::from_static("x-ratelimit-limit-month"),
        H::from_static("x-ratelimit-limit-year"),
    ];
    pub const REMAINING: [H; 6] = [
        H::from_static("x-ratelimit-remaining-second"),
        H::from_static("x-ratelimit-remaining-minute"),
        H::from_static("x-ratelimit-remaining-hour"),
        H::from_static("x-ratelimit-remaining-day"),
        H::from_static("x-ratelimit-remaining-month"),
        H::from_static("x-ratelimit-remaining-year"),
    ];
    pub const RATELIMIT_LIMIT: H = H::from_static("ratelimit-limit");
    pub const RATELIMIT_REMAINING: H = H::from_static("ratelimit-remaining");
    pub const RATELIMIT_RESET: H = H::from_static("ratelimit-reset");
}

/// `X-RateLimit-Limit-<Window>` and `X-RateLimit-Remaining-<Window>`.
fn window_headers(unit: &str) -> (http::HeaderName, http::HeaderName) {
    let i = PERIODS.iter().position(|p| *p == unit).unwrap_or(5);
    (names::LIMIT[i].clone(), names::REMAINING[i].clone())
}

impl crate::runtime::Plugin for RateLimiting {
    fn name(&self) -> &'static str {
        "rate-limiting"
    }

    fn priority(&self) -> i32 {
        910
    }

    fn access(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        match &self.store {
            Store::Local => self.access_local(ctx),
            Store::Redis(client) => self.access_redis(client, ctx),
            Store::Batched(batch) => self.access_batched(batch, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn count_values_read_as_the_number() {
        for n in [0u64, 7, 10, 99, 100, 999, 1000, 4095, 4096, 1_000_000] {
            assert_eq!(
                super::count_value(n).to_str().ok(),
                Some(n.to_string().as_str())
            );
        }
    }
}
