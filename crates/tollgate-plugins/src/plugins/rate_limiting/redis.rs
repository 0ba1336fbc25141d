//! `policy: redis`, synchronous: one Lua script per request decides for
//! every window at once, with Redis's clock, so nodes sharing the Redis
//! enforce one limit exactly.

use std::sync::Arc;

use super::{RateLimiting, WindowState};
use crate::runtime::redis::{RedisClient, Reply};
use crate::runtime::{AccessCtx, Flow};

/// One decision for all windows, atomically, with Redis's clock: refuses
/// without counting when any window is full, else counts in every window.
/// ARGV: the sliding flag (`1` or `0`), then (window length in seconds,
/// limit) per key. Under a sliding window the previous window's count weighs
/// by the share of it the window still covers. Returns
/// `{blocked, used₁, reset₁, used₂, reset₂, …}`.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = math.floor(now_ms / 1000)
local sliding = ARGV[1] == '1'
local blocked = 0
local names, counts, weighted = {}, {}, {}
for i = 1, #KEYS do
  local len = tonumber(ARGV[2 * i])
  local start = now - (now % len)
  names[i] = KEYS[i] .. ':' .. start
  counts[i] = tonumber(redis.call('GET', names[i]) or '0')
  weighted[i] = 0
  if sliding then
    local previous = tonumber(redis.call('GET', KEYS[i] .. ':' .. (start - len)) or '0')
    local span = len * 1000
    weighted[i] = math.floor(previous * (span - (now_ms - start * 1000)) / span)
  end
  if counts[i] + weighted[i] >= tonumber(ARGV[2 * i + 1]) then blocked = 1 end
end
local out = {blocked}
for i = 1, #KEYS do
  local len = tonumber(ARGV[2 * i])
  if blocked == 0 then
    counts[i] = redis.call('INCR', names[i])
    if counts[i] == 1 then
      local keep = len + 1
      if sliding then keep = 2 * len + 1 end
      redis.call('EXPIRE', names[i], keep)
    end
  end
  out[#out + 1] = counts[i] + weighted[i]
  out[#out + 1] = len - (now % len)
end
return out
"#;

/// Window lengths with `policy: redis` (months and years as 30 and 365
/// days, aligned on the epoch: Redis's clock has no calendar).
pub(super) fn window_seconds(unit: &str) -> i64 {
    match unit {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "month" => 30 * 86_400,
        _ => 365 * 86_400,
    }
}

/// The Redis key prefix of one counter; the window start is appended.
pub(super) fn key_prefix(plugin: uuid::Uuid, id: &str, unit: &str) -> String {
    format!("tollgate:ratelimit:{plugin}:{id}:{unit}")
}

/// A script's reply as integers, checking there are `expected` of them.
pub(super) fn integers(
    reply: Option<Result<Reply, String>>,
    expected: usize,
) -> Result<Vec<i64>, String> {
    let numbers = match reply {
        Some(Ok(Reply::Array(items))) => items
            .into_iter()
            .map(|r| match r {
                Reply::Int(n) => Ok(n),
                other => Err(format!("unexpected reply {other:?}")),
            })
            .collect::<Result<Vec<i64>, String>>()?,
        Some(Ok(other)) => return Err(format!("unexpected reply {other:?}")),
        Some(Err(e)) => return Err(e),
        None => return Err("no reply".to_owned()),
    };
    if numbers.len() != expected {
        return Err(format!("unexpected reply length {}", numbers.len()));
    }
    Ok(numbers)
}

/// The reply of one Redis decision, between the two runs of the access phase.
type Slot = Arc<std::sync::Mutex<Option<Result<Reply, String>>>>;

impl RateLimiting {
    /// The first run starts the decision on Redis and waits for it
    /// ([`Flow::Retry`]); the second run answers from it.
    pub(super) fn access_redis(&self, client: &Arc<RedisClient>, ctx: &mut AccessCtx<'_>) -> Flow {
        if !ctx.retried {
            let id = self.identifier(ctx);
            let keys = self
                .windows
                .iter()
                .map(|(unit, _)| key_prefix(self.id, &id, unit))
                .collect::<Vec<_>>();
            let mut args = Vec::with_capacity(1 + 2 * self.windows.len());
            args.push(if self.sliding() { "1" } else { "0" }.to_owned());
            for (unit, limit) in &self.windows {
                args.push(window_seconds(unit).to_string());
                args.push(limit.to_string());
            }
            let slot: Slot = Default::default();
            ctx.scratch = Some(Box::new(slot.clone()));
            let client = client.clone();
            return Flow::Retry(Box::pin(async move {
                static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let sha = SHA.get_or_init(|| crate::runtime::redis::script_sha(SCRIPT));
                let reply = client.eval(SCRIPT, sha, &keys, &args).await;
                if let Ok(mut s) = slot.lock() {
                    *s = Some(reply);
                }
            }));
        }
        let reply = ctx
            .scratch
            .take()
            .and_then(|b| b.downcast::<Slot>().ok())
            .and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
        let numbers = match integers(reply, 1 + 2 * self.windows.len()) {
            Ok(n) => n,
            Err(e) => return self.store_failed(&e),
        };
        let blocked_now = numbers[0] == 1;
        let mut state: Vec<WindowState> = Vec::with_capacity(self.windows.len());
        let mut blocked = None;
        for (i, (unit, limit)) in self.windows.iter().enumerate() {
            let used = numbers[1 + 2 * i].max(0) as u64;
            let reset = numbers[2 + 2 * i];
            if blocked_now && used >= *limit {
                blocked = Some(blocked.map_or(reset, |b: i64| b.max(reset)));
            }
            state.push((*unit, *limit, limit.saturating_sub(used), reset));
        }
        self.answer(ctx, &state, blocked)
    }
}
