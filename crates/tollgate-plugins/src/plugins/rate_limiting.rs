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

/// Decisions `policy: redis` could not get from Redis (let through with
/// `fault_tolerant`, else answered 500).
pub static REDIS_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The rate-limiting plugin at run time: `policy: local` (fixed windows, or
/// sliding ones with `window_type: sliding`) and `policy: redis` (fixed
/// windows shared by every node using that Redis).
#[derive(Debug)]
pub struct RateLimiting {
    id: uuid::Uuid,
    config: RateLimitingConfig,
    /// (unit, limit), shortest window first.
    windows: Vec<(&'static str, u64)>,
    /// The limits as header values, made once.
    limit_values: Vec<http::HeaderValue>,
    /// The shared counters' server, with `policy: redis`.
    redis: Option<std::sync::Arc<crate::runtime::redis::RedisClient>>,
}

impl RateLimiting {
    /// Builds the instance; `None` for policies this version does not run
    /// (redis, cluster), so the node warns instead of limiting per node.
    pub fn new(id: uuid::Uuid, config: &serde_json::Value) -> Option<Self> {
        let config: RateLimitingConfig = serde_json::from_value(config.clone()).ok()?;
        let redis = match config.policy {
            Policy::Local => None,
            // TLS to Redis needs a TLS client (not in this version).
            Policy::Redis if !config.redis.ssl => Some(std::sync::Arc::new(
                crate::runtime::redis::RedisClient::new(crate::runtime::redis::RedisTarget {
                    host: config.redis.host.clone()?,
                    port: config.redis.port,
                    username: config.redis.username.clone(),
                    password: config.redis.password.clone(),
                    database: config.redis.database,
                    timeout: std::time::Duration::from_millis(config.redis.timeout.max(1) as u64),
                }),
            )),
            _ => return None,
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
            redis,
        })
    }

    fn identifier(&self, ctx: &crate::runtime::AccessCtx<'_>) -> String {
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
        use crate::runtime::{window_start, Counters};
        if self.config.policy == Policy::Redis {
            return self.access_redis(ctx);
        }
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
        self.answer(ctx, &state, blocked)
    }
}

/// One decision for all windows, atomically, with Redis's clock: refuses
/// without counting when any window is full, else counts in every window.
/// ARGV: (window length in seconds, limit) per key. Returns
/// `{blocked, count₁, reset₁, count₂, reset₂, …}`.
const REDIS_SCRIPT: &str = r#"
local now = tonumber(redis.call('TIME')[1])
local blocked = 0
local names, counts = {}, {}
for i = 1, #KEYS do
  local len = tonumber(ARGV[2 * i - 1])
  local start = now - (now % len)
  names[i] = KEYS[i] .. ':' .. start
  counts[i] = tonumber(redis.call('GET', names[i]) or '0')
  if counts[i] >= tonumber(ARGV[2 * i]) then blocked = 1 end
end
local out = {blocked}
for i = 1, #KEYS do
  local len = tonumber(ARGV[2 * i - 1])
  if blocked == 0 then
    counts[i] = redis.call('INCR', names[i])
    if counts[i] == 1 then redis.call('EXPIRE', names[i], len + 1) end
  end
  out[#out + 1] = counts[i]
  out[#out + 1] = len - (now % len)
end
return out
"#;

/// Window lengths with `policy: redis` (months and years as 30 and 365
/// days, aligned on the epoch: Redis's clock has no calendar).
fn window_seconds(unit: &str) -> u64 {
    match unit {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "month" => 30 * 86_400,
        _ => 365 * 86_400,
    }
}

/// The reply of one Redis decision, between the two runs of the access phase.
type RedisSlot =
    std::sync::Arc<std::sync::Mutex<Option<Result<crate::runtime::redis::Reply, String>>>>;

impl RateLimiting {
    /// `policy: redis`: the first run starts the decision on Redis and
    /// waits for it ([`Flow::Retry`]); the second run answers from it.
    ///
    /// [`Flow::Retry`]: crate::runtime::Flow::Retry
    fn access_redis(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::redis::Reply;
        use crate::runtime::{EarlyResponse, Flow};
        let Some(client) = &self.redis else {
            return Flow::Continue;
        };
        if !ctx.retried {
            let id = self.identifier(ctx);
            let keys = self
                .windows
                .iter()
                .map(|(unit, _)| format!("tollgate:ratelimit:{}:{id}:{unit}", self.id))
                .collect::<Vec<_>>();
            let args = self
                .windows
                .iter()
                .flat_map(|(unit, limit)| [window_seconds(unit).to_string(), limit.to_string()])
                .collect::<Vec<_>>();
            let slot: RedisSlot = Default::default();
            ctx.scratch = Some(Box::new(slot.clone()));
            let client = client.clone();
            return Flow::Retry(Box::pin(async move {
                static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let sha = SHA.get_or_init(|| crate::runtime::redis::script_sha(REDIS_SCRIPT));
                let reply = client.eval(REDIS_SCRIPT, sha, &keys, &args).await;
                if let Ok(mut s) = slot.lock() {
                    *s = Some(reply);
                }
            }));
        }
        let reply = ctx
            .scratch
            .take()
            .and_then(|b| b.downcast::<RedisSlot>().ok())
            .and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
        let numbers = match reply {
            Some(Ok(Reply::Array(items))) => items
                .into_iter()
                .map(|r| match r {
                    Reply::Int(n) => Ok(n),
                    other => Err(format!("unexpected reply {other:?}")),
                })
                .collect::<Result<Vec<i64>, String>>(),
            Some(Ok(other)) => Err(format!("unexpected reply {other:?}")),
            Some(Err(e)) => Err(e),
            None => Err("no reply".to_owned()),
        };
        let expected = 1 + 2 * self.windows.len();
        let numbers = numbers.and_then(|n| {
            if n.len() == expected {
                Ok(n)
            } else {
                Err(format!("unexpected reply length {}", n.len()))
            }
        });
        let numbers = match numbers {
            Ok(n) => n,
            Err(e) => {
                REDIS_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(plugin = %self.id, fault_tolerant = self.config.fault_tolerant, "rate-limiting: Redis unavailable: {e}");
                return if self.config.fault_tolerant {
                    Flow::Continue
                } else {
                    Flow::Respond(EarlyResponse::message(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "An unexpected error occurred",
                    ))
                };
            }
        };
        let blocked_now = numbers[0] == 1;
        let mut state = Vec::with_capacity(self.windows.len());
        let mut blocked = None;
        for (i, (unit, limit)) in self.windows.iter().enumerate() {
            let count = numbers[1 + 2 * i].max(0) as u64;
            let reset = numbers[2 + 2 * i];
            if blocked_now && count >= *limit {
                blocked = Some(blocked.map_or(reset, |b: i64| b.max(reset)));
            }
            state.push((*unit, *limit, limit.saturating_sub(count), reset));
        }
        self.answer(ctx, &state, blocked)
    }

    /// Kong's headers for the windows' `state` (unit, limit, remaining,
    /// seconds to reset), and the 429 when `blocked` (seconds to retry).
    fn answer(
        &self,
        ctx: &mut crate::runtime::AccessCtx<'_>,
        state: &[(&'static str, u64, u64, i64)],
        blocked: Option<i64>,
    ) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow};
        use http::{HeaderName, HeaderValue};
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
