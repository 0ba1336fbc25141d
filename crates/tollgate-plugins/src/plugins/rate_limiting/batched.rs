//! `policy: redis` with `sync_rate` > 0: requests are counted in this node's
//! memory and decided there, off the Redis round trip; every `sync_rate`
//! seconds a background task pushes the node's new counts to Redis
//! (`INCRBY`) and reads back the totals of every node.
//!
//! The price is a bounded overshoot: between two syncs each node decides
//! with the other nodes' counts as of the last sync, so a shared limit may
//! be passed by at most what the other nodes admit in one `sync_rate`. A
//! counter new to this node is read from Redis before its first decision
//! (one round trip per key and window), so a client moving to another node
//! does not start from zero. Windows follow Redis's clock (the offset to it
//! is measured at each sync) and use the same keys as the synchronous
//! policy. While Redis is unreachable, decisions go on from the last known
//! totals plus local counts (`fault_tolerant: true`) or are answered 500
//! (`false`); counts made meanwhile are pushed when Redis is back.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use uuid::Uuid;

use super::redis::{integers, key_prefix, window_seconds};
use super::{RateLimiting, WindowState, REDIS_FAILURES};
use crate::runtime::redis::{script_sha, RedisClient};
use crate::runtime::{sliding_allowance, AccessCtx, Flow};

const SHARDS: usize = 64;
/// Most live counters per shard (262,144 in all); past it, the quarter of
/// the shard closest to expiry is dropped.
const MAX_PER_SHARD: usize = 4_096;
/// Counters pushed per script call.
const KEYS_PER_SCRIPT: usize = 256;

/// Adds each delta to its key (setting the key's lifetime when it creates
/// it) or, for a zero delta, reads it. ARGV: (delta, seconds to keep) per
/// key. Returns `{redis time in ms, total₁, total₂, …}`.
const SYNC_SCRIPT: &str = r#"
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
for i = 1, #KEYS do
  local delta = tonumber(ARGV[2 * i - 1])
  local n
  if delta > 0 then
    n = redis.call('INCRBY', KEYS[i], delta)
    if n == delta then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
  else
    n = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  out[#out + 1] = n
end
return out
"#;

/// One counter: (identifier, unit, window start in epoch seconds).
type Key = (String, &'static str, i64);

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The total Redis last reported (every node's counts, with those this
    /// node pushed).
    global: u64,
    /// Counted here and being pushed now.
    in_flight: u64,
    /// Counted here since the last push.
    pending: u64,
    /// Whether Redis's total has been read at least once.
    synced: bool,
    /// Used since the last sync (only those are read back).
    touched: bool,
    /// When the window stops mattering (epoch seconds).
    expires: i64,
}

impl Entry {
    fn total(&self) -> u64 {
        self.global + self.in_flight + self.pending
    }
}

type Shard = HashMap<Key, Entry, foldhash::fast::FixedState>;

/// The batched counters of one plugin instance (kept across configuration
/// changes while its Redis settings and `sync_rate` stay the same).
pub(super) struct Batched {
    plugin: Uuid,
    client: RedisClient,
    every: Duration,
    sliding: bool,
    shards: Vec<Mutex<Shard>>,
    hasher: foldhash::fast::RandomState,
    /// Redis's clock minus this node's, in ms.
    offset_ms: AtomicI64,
    /// Whether the last exchange with Redis worked.
    healthy: AtomicBool,
    /// Whether the sync task runs.
    started: AtomicBool,
}

impl std::fmt::Debug for Batched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched")
            .field("plugin", &self.plugin)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

fn local_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How long Redis keeps a counter (a sliding window's counter also serves
/// the next window).
fn keep_seconds(len: i64, sliding: bool) -> i64 {
    if sliding {
        2 * len + 1
    } else {
        len + 1
    }
}

impl Batched {
    /// The instance's counters: the live ones when the plugin was already
    /// running with the same settings, else new ones.
    pub(super) fn shared(
        plugin: Uuid,
        client: RedisClient,
        every: Duration,
        sliding: bool,
    ) -> Arc<Batched> {
        static LIVE: OnceLock<Mutex<HashMap<Uuid, Weak<Batched>>>> = OnceLock::new();
        let mut live = LIVE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        live.retain(|_, w| w.strong_count() > 0);
        if let Some(b) = live.get(&plugin).and_then(Weak::upgrade) {
            if b.client.target() == client.target() && b.every == every && b.sliding == sliding {
                return b;
            }
        }
        let hasher = foldhash::fast::RandomState::default();
        let b = Arc::new(Batched {
            plugin,
            client,
            every,
            sliding,
            shards: (0..SHARDS)
                .map(|i| {
                    Mutex::new(HashMap::with_hasher(foldhash::fast::FixedState::with_seed(
                        hasher.hash_one(i),
                    )))
                })
                .collect(),
            hasher,
            offset_ms: AtomicI64::new(0),
            healthy: AtomicBool::new(true),
            started: AtomicBool::new(false),
        });
        live.insert(plugin, Arc::downgrade(&b));
        b
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now on Redis's clock, in ms.
    fn now_ms(&self) -> i64 {
        local_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Starts the sync task unless it runs.
    fn ensure_started(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.started.store(false, Ordering::Release);
            return;
        };
        let me = self.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(me.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Only this task holds the counters: the plugin is gone or
                // replaced; push what is left, then stop.
                let last = Arc::strong_count(&me) == 1;
                let _ = me.sync(None).await;
                if last {
                    me.started.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }

    /// Counts one request in every window unless one is full (then in
    /// none). With `fetch`, a counter not yet read from Redis is not decided
    /// on: its keys come back to be read first.
    fn take(
        &self,
        id: &str,
        windows: &[(&'static str, u64)],
        now_ms: i64,
        fetch: bool,
    ) -> Result<(Vec<WindowState>, Option<i64>), Vec<Key>> {
        let now = now_ms.div_euclid(1000);
        let mut unread = Vec::new();
        let mut taken: Vec<(usize, Key)> = Vec::with_capacity(windows.len());
        let mut state: Vec<WindowState> = Vec::with_capacity(windows.len());
        let mut blocked: Option<i64> = None;
        for (unit, limit) in windows {
            let len = window_seconds(unit);
            let start = now - now.rem_euclid(len);
            let end = start + len;
            let mut allowance = *limit;
            if self.sliding {
                let key = (id.to_owned(), *unit, start - len);
                let mut shard = self.shard(&key);
                let previous = shard.entry(key.clone()).or_insert(Entry::new(end));
                previous.touched = true;
                if !previous.synced && fetch {
                    unread.push(key);
                }
                let elapsed = now_ms - start * 1000;
                allowance = sliding_allowance(*limit, previous.total(), elapsed, len * 1000);
            }
            let key = (id.to_owned(), *unit, start);
            let mut shard = self.shard(&key);
            let expires = if self.sliding { end + len } else { end };
            if shard.len() >= MAX_PER_SHARD && !shard.contains_key(&key) {
                trim(&mut shard, now);
            }
            let entry = shard.entry(key.clone()).or_insert(Entry::new(expires));
            entry.touched = true;
            if !entry.synced && fetch {
                unread.push(key);
                continue;
            }
            if entry.total() >= allowance {
                blocked = Some(blocked.map_or(end - now, |b| b.max(end - now)));
            } else {
                entry.pending += 1;
                taken.push((state.len(), key));
            }
            let used = entry.total() + (*limit - allowance);
            state.push((*unit, *limit, limit.saturating_sub(used), end - now));
        }
        if blocked.is_some() || !unread.is_empty() {
            // Refused (or not decided): counted in no window.
            for (i, key) in taken {
                if let Some(e) = self.shard(&key).get_mut(&key) {
                    e.pending = e.pending.saturating_sub(1);
                }
                if let Some(s) = state.get_mut(i) {
                    s.2 = (s.2 + 1).min(s.1);
                }
            }
        }
        if unread.is_empty() {
            Ok((state, blocked))
        } else {
            Err(unread)
        }
    }

    /// Pushes this node's new counts to Redis and reads back the totals:
    /// of the counters used since the last sync, or of `only`.
    async fn sync(&self, only: Option<Vec<Key>>) -> Result<(), String> {
        let now = self.now_ms().div_euclid(1000);
        let mut batch: Vec<(Key, u64)> = Vec::new();
        let mut take = |key: &Key, e: &mut Entry| {
            let delta = e.pending;
            e.pending = 0;
            e.in_flight += delta;
            e.touched = false;
            batch.push((key.clone(), delta));
        };
        match &only {
            Some(keys) => {
                for key in keys {
                    if let Some(e) = self.shard(key).get_mut(key) {
                        take(key, e);
                    }
                }
            }
            None => {
                for shard in &self.shards {
                    let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                    // Windows over, with nothing left to push, are dropped;
                    // so are counts Redis could not take for a minute past
                    // their window.
                    shard.retain(|_, e| {
                        e.expires > now || (e.pending + e.in_flight > 0 && e.expires + 60 > now)
                    });
                    for (key, e) in shard.iter_mut() {
                        if e.pending > 0 || (e.touched && e.expires > now) {
                            take(key, e);
                        }
                    }
                }
            }
        }
        let mut result = Ok(());
        for chunk in batch.chunks(KEYS_PER_SCRIPT) {
            if let Err(e) = self.push(chunk).await {
                result = Err(e);
            }
        }
        let was_healthy = self.healthy.swap(result.is_ok(), Ordering::AcqRel);
        match &result {
            Err(e) => {
                REDIS_FAILURES.fetch_add(1, Ordering::Relaxed);
                if was_healthy {
                    tracing::warn!(plugin = %self.plugin, "rate-limiting: Redis sync failed, deciding locally until it is back: {e}");
                }
            }
            Ok(()) if !was_healthy => {
                tracing::info!(plugin = %self.plugin, "rate-limiting: Redis sync works again");
            }
            Ok(()) => {}
        }
        result
    }

    /// One script call for a chunk of counters; on failure their counts go
    /// back to pending.
    async fn push(&self, chunk: &[(Key, u64)]) -> Result<(), String> {
        static SHA: OnceLock<String> = OnceLock::new();
        let sha = SHA.get_or_init(|| script_sha(SYNC_SCRIPT));
        let mut keys = Vec::with_capacity(chunk.len());
        let mut args = Vec::with_capacity(2 * chunk.len());
        for ((id, unit, start), delta) in chunk {
            keys.push(format!("{}:{start}", key_prefix(self.plugin, id, unit)));
            args.push(delta.to_string());
            args.push(keep_seconds(window_seconds(unit), self.sliding).to_string());
        }
        let sent = local_ms();
        let reply = self.client.eval(SYNC_SCRIPT, sha, &keys, &args).await;
        let received = local_ms();
        match integers(Some(reply), 1 + chunk.len()) {
            Ok(totals) => {
                self.offset_ms
                    .store(totals[0] - (sent + received) / 2, Ordering::Relaxed);
                for ((key, delta), total) in chunk.iter().zip(&totals[1..]) {
                    if let Some(e) = self.shard(key).get_mut(key) {
                        e.in_flight = e.in_flight.saturating_sub(*delta);
                        // Counters only grow within a window: a slower,
                        // older answer never lowers what is known.
                        e.global = e.global.max((*total).max(0) as u64);
                        e.synced = true;
                    }
                }
                Ok(())
            }
            Err(e) => {
                for (key, delta) in chunk {
                    if let Some(entry) = self.shard(key).get_mut(key) {
                        entry.in_flight = entry.in_flight.saturating_sub(*delta);
                        entry.pending += delta;
                    }
                }
                Err(e)
            }
        }
    }
}

impl Entry {
    fn new(expires: i64) -> Entry {
        Entry {
            global: 0,
            in_flight: 0,
            pending: 0,
            synced: false,
            touched: true,
            expires,
        }
    }
}

/// Makes room in a full shard: expired windows go, then the quarter closest
/// to expiry.
fn trim(shard: &mut Shard, now: i64) {
    shard.retain(|_, e| e.expires > now);
    if shard.len() >= MAX_PER_SHARD {
        let mut expiries: Vec<i64> = shard.values().map(|e| e.expires).collect();
        expiries.sort_unstable();
        let cut = expiries[expiries.len() / 4];
        shard.retain(|_, e| e.expires > cut);
    }
}

impl RateLimiting {
    /// Decides from this node's counters; a counter not yet read from Redis
    /// is read first (the access phase runs again once it is).
    pub(super) fn access_batched(&self, batch: &Arc<Batched>, ctx: &mut AccessCtx<'_>) -> Flow {
        batch.ensure_started();
        let healthy = batch.healthy.load(Ordering::Acquire);
        if !healthy && !self.config.fault_tolerant {
            return self.store_failed("the last sync failed");
        }
        let id = self.identifier(ctx);
        match batch.take(&id, &self.windows, batch.now_ms(), healthy && !ctx.retried) {
            Ok((state, blocked)) => self.answer(ctx, &state, blocked),
            Err(unread) => {
                let batch = batch.clone();
                Flow::Retry(Box::pin(async move {
                    let _ = batch.sync(Some(unread)).await;
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::redis::RedisTarget;

    fn batched(sliding: bool) -> Arc<Batched> {
        let target = RedisTarget {
            host: "127.0.0.1".into(),
            port: 9,
            username: None,
            password: None,
            database: 0,
            timeout: Duration::from_millis(10),
            tls: None,
        };
        Batched::shared(
            Uuid::new_v4(),
            RedisClient::new(target, Arc::default()),
            Duration::from_secs(1),
            sliding,
        )
    }

    fn live(b: &Batched) -> usize {
        b.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }

    #[test]
    fn local_counts_decide_until_the_limit_and_refusals_are_not_counted() {
        let b = batched(false);
        let now = 1_800_000_000_000;
        let windows = [("minute", 3), ("hour", 10)];
        for left in [2, 1, 0] {
            let (state, blocked) = b.take("ann", &windows, now, false).unwrap();
            assert_eq!(blocked, None);
            assert_eq!(state[0].2, left);
        }
        let (state, blocked) = b.take("ann", &windows, now, false).unwrap();
        assert!(blocked.is_some());
        assert_eq!((state[0].2, state[1].2), (0, 7));
        // A counter never read from Redis is sent to be read first.
        assert_eq!(b.take("bob", &windows, now, true).unwrap_err().len(), 2);
    }

    #[test]
    fn a_million_distinct_clients_cannot_grow_the_batched_counters_past_their_bound() {
        let b = batched(true);
        let now = 1_800_000_000_000;
        for i in 0..1_000_000u32 {
            let _ = b.take(&i.to_string(), &[("minute", 5)], now, false);
        }
        assert!(live(&b) <= SHARDS * MAX_PER_SHARD, "{}", live(&b));
    }
}
