//! proxy-cache's memory strategy: stored answers by key, within a byte
//! budget, with requests for a key being filled waiting for that fill.
//!
//! Entries live in a [`moka`] cache (TinyLFU admission, LRU eviction,
//! weighed in bytes); the node keeps one store per `memory.dictionary_name`
//! ([`ProxyCaches`]), shared by every configuration snapshot, so entries
//! survive configuration changes as Kong's shared dictionary does.
//! Freshness is decided by the plugin with the store's [`Clock`], which tests
//! can move by hand.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kong's default size of its shared cache (`mem_cache_size`, 128m).
pub const DEFAULT_BUDGET: u64 = 128 * 1024 * 1024;

/// How long requests wait for another request filling the same key before
/// going upstream themselves (nginx's `proxy_cache_lock_timeout`).
pub const FILL_WAIT: Duration = Duration::from_secs(5);

/// Seconds since the Unix epoch, as the cache reads them.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> f64;
}

/// The system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// One stored answer.
#[derive(Debug)]
pub struct CachedAnswer {
    /// Status.
    pub status: StatusCode,
    /// Headers as the backend sent them (no cache headers of ours).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it was stored.
    pub stored_at: f64,
    /// Seconds it is fresh for.
    pub ttl: f64,
    /// Seconds past `ttl` it may still be served while one request
    /// refreshes it (`stale-while-revalidate`).
    pub stale_while_revalidate: f64,
    /// Seconds past `ttl` it may be served instead of a backend's 5xx
    /// (`stale-if-error`).
    pub stale_if_error: f64,
    /// Request headers the answer varies on, with the request's values.
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// Seconds it is kept in storage.
    pub storage_ttl: f64,
}

impl CachedAnswer {
    /// Bytes it is counted for against the budget.
    fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let total = self.body.len() + headers + 128;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// Seconds since it was stored.
    pub fn age(&self, now: f64) -> f64 {
        (now - self.stored_at).max(0.0)
    }
}

/// Expires entries after their own storage time.
struct StorageExpiry;

impl moka::Expiry<Arc<str>, Arc<CachedAnswer>> for StorageExpiry {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<CachedAnswer>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs_f64(value.storage_ttl.clamp(0.0, 1e9)))
    }

    fn expire_after_update(
        &self,
        key: &Arc<str>,
        value: &Arc<CachedAnswer>,
        updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// A fill in progress: requests for its key wait until it is dropped.
#[derive(Debug)]
pub struct FillGuard {
    key: Arc<str>,
    store: Arc<CacheStore>,
    _done: tokio::sync::watch::Sender<()>,
}

impl FillGuard {
    /// The store being filled.
    pub fn store(&self) -> &Arc<CacheStore> {
        &self.store
    }

    /// The key being filled.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if let Ok(mut fills) = self.store.fills.lock() {
            fills.remove(&self.key);
        }
    }
}

/// Whether a request fills a key or waits for another one filling it.
#[derive(Debug)]
pub enum Fill {
    /// This request fills the key; the waiters wake when the guard drops.
    Leader(FillGuard),
    /// Another request is filling it; this resolves when it is done.
    Wait(tokio::sync::watch::Receiver<()>),
}

/// One named store.
pub struct CacheStore {
    entries: moka::sync::Cache<Arc<str>, Arc<CachedAnswer>>,
    fills: Mutex<HashMap<Arc<str>, tokio::sync::watch::Sender<()>>>,
    budget: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// An empty store holding at most `budget` bytes.
    pub fn new(budget: u64, clock: Arc<dyn Clock>) -> Arc<Self> {
        let entries = moka::sync::Cache::builder()
            .max_capacity(budget)
            .weigher(|_k: &Arc<str>, v: &Arc<CachedAnswer>| v.weight())
            .expire_after(StorageExpiry)
            .build();
        Arc::new(CacheStore {
            entries,
            fills: Mutex::new(HashMap::new()),
            budget,
            clock,
        })
    }

    /// Now, by this store's clock.
    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    /// The largest answer body worth storing (an eighth of the budget).
    pub fn max_body(&self) -> usize {
        usize::try_from(self.budget / 8).unwrap_or(usize::MAX)
    }

    /// The entry stored under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<CachedAnswer>> {
        self.entries.get(key)
    }

    /// Stores an entry (replacing any under the same key).
    pub fn put(&self, key: Arc<str>, answer: CachedAnswer) {
        self.entries.insert(key, Arc::new(answer));
    }

    /// Removes one entry; whether it was there.
    pub fn purge(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes every entry.
    pub fn purge_all(&self) {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
    }

    /// Joins the fill of `key`: the first request leads it, the others wait.
    pub fn fill(self: &Arc<Self>, key: &Arc<str>) -> Fill {
        let Ok(mut fills) = self.fills.lock() else {
            // A poisoned map only loses coalescing, never answers.
            let (tx, _) = tokio::sync::watch::channel(());
            return Fill::Leader(FillGuard {
                key: key.clone(),
                store: self.clone(),
                _done: tx,
            });
        };
        if let Some(tx) = fills.get(key) {
            return Fill::Wait(tx.subscribe());
        }
        let (tx, _) = tokio::sync::watch::channel(());
        // The map holds a second sender: waiters subscribe through it, and
        // wake when the guard removes it (the last sender is dropped).
        let (guard_tx, map_tx) = (tx.clone(), tx);
        fills.insert(key.clone(), map_tx);
        Fill::Leader(FillGuard {
            key: key.clone(),
            store: self.clone(),
            _done: guard_tx,
        })
    }

    /// (entries, bytes used, budget), after pending evictions ran.
    pub fn usage(&self) -> (u64, u64, u64) {
        self.entries.run_pending_tasks();
        (
            self.entries.entry_count(),
            self.entries.weighted_size(),
            self.budget,
        )
    }
}

/// The node's proxy-cache stores, by `memory.dictionary_name`.
#[derive(Debug)]
pub struct ProxyCaches {
    budget: u64,
    clock: Arc<dyn Clock>,
    stores: Mutex<HashMap<String, Arc<CacheStore>>>,
}

impl Default for ProxyCaches {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET, Arc::new(SystemClock))
    }
}

impl ProxyCaches {
    /// Stores of `budget` bytes each, reading time from `clock`.
    pub fn new(budget: u64, clock: Arc<dyn Clock>) -> Self {
        ProxyCaches {
            budget,
            clock,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// The store named `name`, made on first use.
    pub fn store(&self, name: &str) -> Arc<CacheStore> {
        let mut stores = match self.stores.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        stores
            .entry(name.to_owned())
            .or_insert_with(|| CacheStore::new(self.budget, self.clock.clone()))
            .clone()
    }

    /// Every store made so far, by name.
    pub fn all(&self) -> Vec<(String, Arc<CacheStore>)> {
        let stores = match self.stores.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut v: Vec<_> = stores.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A clock moved by hand.
    #[derive(Debug, Default)]
    pub struct ManualClock(Mutex<f64>);

    impl Clock for ManualClock {
        fn now(&self) -> f64 {
            *self.0.lock().unwrap()
        }
    }

    fn answer(body: &'static [u8], ttl: f64, now: f64) -> CachedAnswer {
        CachedAnswer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
            stored_at: now,
            ttl,
            stale_while_revalidate: 0.0,
            stale_if_error: 0.0,
            vary: Vec::new(),
            storage_ttl: 3600.0,
        }
    }

    #[test]
    fn age_follows_the_clock() {
        let clock = Arc::new(ManualClock::default());
        let store = CacheStore::new(1 << 20, clock.clone());
        store.put("k".into(), answer(b"x", 10.0, store.now()));
        *clock.0.lock().unwrap() += 7.0;
        let e = store.get("k").unwrap();
        assert_eq!(e.age(store.now()), 7.0);
    }

    #[test]
    fn budget_bounds_the_bytes_stored() {
        let store = CacheStore::new(64 * 1024, Arc::new(SystemClock));
        for i in 0..10_000 {
            store.put(format!("k{i}").into(), answer(&[b'a'; 1000], 60.0, 0.0));
        }
        let (entries, bytes, budget) = store.usage();
        assert!(bytes <= budget, "{bytes} > {budget}");
        assert!(entries > 0 && entries < 100, "{entries}");
    }

    #[tokio::test]
    async fn second_request_waits_for_the_first_fill() {
        let store = CacheStore::new(1 << 20, Arc::new(SystemClock));
        let key: Arc<str> = "k".into();
        let Fill::Leader(guard) = store.fill(&key) else {
            panic!("first is not the leader")
        };
        let Fill::Wait(mut rx) = store.fill(&key) else {
            panic!("second does not wait")
        };
        let waiter = tokio::spawn(async move { rx.changed().await.is_err() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert!(waiter.await.unwrap(), "waiter woken by the fill's end");
        assert!(matches!(store.fill(&key), Fill::Leader(_)));
    }
}
