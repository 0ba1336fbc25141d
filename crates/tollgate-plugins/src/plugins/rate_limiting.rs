//! `rate-limiting`: config schema (Kong 3.x fields, with Redis settings
//! nested under `redis`, plus Tollgate's `window_type`).

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
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        RateLimiting::new(plugin.id, &plugin.config)
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

/// The rate-limiting plugin at run time (`policy: local`; fixed windows, or
/// sliding ones with `window_type: sliding`).
#[derive(Debug)]
pub struct RateLimiting {
    id: uuid::Uuid,
    config: RateLimitingConfig,
    /// (unit, limit), shortest window first.
    windows: Vec<(&'static str, u64)>,
}

impl RateLimiting {
    /// Builds the instance; `None` for policies this version does not run
    /// (redis, cluster), so the node warns instead of limiting per node.
    pub fn new(id: uuid::Uuid, config: &serde_json::Value) -> Option<Self> {
        let config: RateLimitingConfig = serde_json::from_value(config.clone()).ok()?;
        if config.policy != Policy::Local {
            return None;
        }
        let windows = [
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
        Some(RateLimiting {
            id,
            config,
            windows,
        })
    }

    fn identifier(&self, ctx: &crate::runtime::AccessCtx<'_>) -> String {
        let ip = || ctx.client_ip.to_string();
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
}

/// `X-RateLimit-Limit-<Window>` and `X-RateLimit-Remaining-<Window>` (static names: no
/// allocation per request).
fn window_headers(unit: &str) -> (http::HeaderName, http::HeaderName) {
    use http::HeaderName as H;
    match unit {
        "second" => (
            H::from_static("x-ratelimit-limit-second"),
            H::from_static("x-ratelimit-remaining-second"),
        ),
        "minute" => (
            H::from_static("x-ratelimit-limit-minute"),
            H::from_static("x-ratelimit-remaining-minute"),
        ),
        "hour" => (
            H::from_static("x-ratelimit-limit-hour"),
            H::from_static("x-ratelimit-remaining-hour"),
        ),
        "day" => (
            H::from_static("x-ratelimit-limit-day"),
            H::from_static("x-ratelimit-remaining-day"),
        ),
        "month" => (
            H::from_static("x-ratelimit-limit-month"),
            H::from_static("x-ratelimit-remaining-month"),
        ),
        _ => (
            H::from_static("x-ratelimit-limit-year"),
            H::from_static("x-ratelimit-remaining-year"),
        ),
    }
}

impl crate::runtime::Plugin for RateLimiting {
    fn name(&self) -> &'static str {
        "rate-limiting"
    }

    fn priority(&self) -> i32 {
        910
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{window_start, Counters, EarlyResponse, Flow};
        use http::{HeaderName, HeaderValue};
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = now_ms.div_euclid(1000);
        let sliding = self.config.window_type == WindowType::Sliding;
        let id = self.identifier(ctx);
        let counters = Counters::global();
        let mut taken = Vec::new();
        // (unit, limit, remaining, reset in seconds)
        let mut state = Vec::new();
        let mut blocked: Option<i64> = None;
        for (unit, limit) in &self.windows {
            let (start, end) = window_start(unit, now);
            let len = end - start;
            let key = (self.id, id.clone(), len as u64, start);
            // Sliding: the previous window still counts for the share of it
            // the sliding window covers; this window's counter must then
            // live through the next one too.
            let (allowance, expires) = if sliding {
                let previous = counters.count(&(self.id, id.clone(), len as u64, start - len));
                let elapsed = now_ms - start * 1000;
                (
                    crate::runtime::sliding_allowance(*limit, previous, elapsed, len * 1000),
                    end + len,
                )
            } else {
                (*limit, end)
            };
            let (count, ok) = counters.try_take(key.clone(), allowance, expires, now);
            let used = count + (*limit - allowance);
            if ok {
                taken.push(key);
            } else {
                blocked = Some(blocked.map_or(end - now, |b| b.max(end - now)));
            }
            state.push((*unit, *limit, limit.saturating_sub(used), end - now));
        }
        if blocked.is_some() {
            // Rejected requests are not counted in any window.
            for key in taken {
                counters.give_back(key);
            }
        }
        if !self.config.hide_client_headers {
            for (unit, limit, remaining, _) in &state {
                let (limit_name, remaining_name) = window_headers(unit);
                ctx.response_headers
                    .push((limit_name, HeaderValue::from(*limit)));
                ctx.response_headers
                    .push((remaining_name, HeaderValue::from(*remaining)));
            }
            // RateLimit-*: the window closest to its limit.
            if let Some((_, limit, remaining, reset)) =
                state.iter().rev().min_by_key(|(_, _, r, _)| *r)
            {
                ctx.response_headers.push((
                    HeaderName::from_static("ratelimit-limit"),
                    HeaderValue::from(*limit),
                ));
                ctx.response_headers.push((
                    HeaderName::from_static("ratelimit-remaining"),
                    HeaderValue::from(*remaining),
                ));
                ctx.response_headers.push((
                    HeaderName::from_static("ratelimit-reset"),
                    HeaderValue::from((*reset).max(0) as u64),
                ));
            }
        }
        match blocked {
            None => Flow::Continue,
            Some(retry) => {
                let status = http::StatusCode::from_u16(self.config.error_code as u16)
                    .unwrap_or(http::StatusCode::TOO_MANY_REQUESTS);
                let mut r = EarlyResponse::message(status, self.config.error_message.clone());
                if !self.config.hide_client_headers {
                    r = r.with_header(
                        http::header::RETRY_AFTER,
                        HeaderValue::from(retry.max(0) as u64),
                    );
                }
                Flow::Respond(r)
            }
        }
    }
}
