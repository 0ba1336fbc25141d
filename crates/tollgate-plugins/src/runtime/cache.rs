//! proxy-cache's memory strategy: stored answers by key, within a byte
//! budget, with requests for a key being filled waiting for that fill.
//!
//! Entries live in a [`moka`] cache (TinyLFU admission, LRU eviction,
//! weighed in bytes); the node keeps one store per `memory.dictionary_name`
//! ([`ProxyCaches`]), shared by every configuration snapshot, so entries
//! survive configuration changes as Kong's shared dictionary does.
//! Freshness is decided by the plugin with the store's [`Clock`], which tests
//! can move by hand.
//!
//! The disk strategy (beyond Kong) keeps the same index in memory but each
//! body in a file under the node's prefix (`proxy-cache/<dictionary>/`),
//! weighed against its own budget; a file is removed when its entry is
//! evicted, purged or replaced and no request is still reading it. The
//! folder is emptied when the node starts.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The default size of each disk store (`proxy_cache_disk_size`, 1g).
pub const DEFAULT_DISK_BUDGET: u64 = 1024 * 1024 * 1024;

/// A stored body kept in a file (the disk strategy). The file goes when
/// the last holder of its entry lets it go.
#[derive(Debug)]
pub struct DiskBody {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
}

impl Drop for DiskBody {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One stored answer.
#[derive(Debug)]
pub struct CachedAnswer {
    /// Status.
    pub status: StatusCode,
    /// Headers as the backend sent them (no cache headers of ours).
    pub headers: HeaderMap,
    /// Body (empty when it is on disk).
    pub body: Bytes,
    /// The body's file, for the disk strategy.
    pub disk: Option<DiskBody>,
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
        let total = self.body_len() + headers as u64 + 128;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// The body's length, in memory or on disk.
    pub fn body_len(&self) -> u64 {
        self.body.len() as u64 + self.disk.as_ref().map_or(0, |d| d.len)
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
    /// The folder of the disk strategy's files.
    dir: Option<PathBuf>,
    /// Numbers the files (a replaced entry's file stays until read).
    seq: AtomicU64,
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
        Self::build(budget, clock, None)
    }

    /// An empty disk store: bodies in files under `dir` (made, or emptied
    /// of what an earlier run left), at most `budget` bytes of them.
    pub fn on_disk(budget: u64, clock: Arc<dyn Clock>, dir: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self::build(budget, clock, Some(dir.to_owned())))
    }

    fn build(budget: u64, clock: Arc<dyn Clock>, dir: Option<PathBuf>) -> Arc<Self> {
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
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// Whether bodies are kept in files.
    pub fn is_disk(&self) -> bool {
        self.dir.is_some()
    }

    /// Stores `answer` with `body` under the fill's key, then ends the fill
    /// (`guard`). A disk store writes the file on the blocking pool first.
    pub fn store(self: &Arc<Self>, guard: FillGuard, mut answer: CachedAnswer, body: Bytes) {
        let Some(dir) = self.dir.clone() else {
            answer.body = body;
            self.put(guard.key.clone(), answer);
            return;
        };
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = dir.join(format!("{}.{n}", guard.key));
            let tmp = dir.join(format!("{}.{n}.tmp", guard.key));
            let written = std::fs::write(&tmp, &body).and_then(|_| std::fs::rename(&tmp, &path));
            match written {
                Ok(()) => {
                    answer.disk = Some(DiskBody {
                        path,
                        len: body.len() as u64,
                    });
                    store.put(guard.key.clone(), answer);
                    // Evict now, so files beyond the budget go at once.
                    store.entries.run_pending_tasks();
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!("proxy-cache: could not write {}: {e}", tmp.display());
                }
            }
            drop(guard);
        });
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
        let found = self.entries.remove(key).is_some();
        self.entries.run_pending_tasks();
        found
    }

    /// Removes every entry.
    pub fn purge_all(&self) {
        // One by one: `invalidate_all` leaves the values (and a disk
        // store's files) to later housekeeping.
        let keys: Vec<Arc<str>> = self.entries.iter().map(|(k, _)| (*k).clone()).collect();
        for k in keys {
            self.entries.invalidate(&k);
        }
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

/// The node's proxy-cache stores, by strategy and `memory.dictionary_name`.
#[derive(Debug)]
pub struct ProxyCaches {
    budget: u64,
    clock: Arc<dyn Clock>,
    /// The disk strategy's folder and budget.
    disk: Option<(PathBuf, u64)>,
    stores: Mutex<HashMap<(bool, String), Arc<CacheStore>>>,
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
            disk: None,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Enables the disk strategy: files under `dir/<dictionary>/`, at most
    /// `budget` bytes per store.
    pub fn with_disk(mut self, dir: PathBuf, budget: u64) -> Self {
        self.disk = Some((dir, budget));
        self
    }

    /// The store named `name` (on disk when `disk`), made on first use;
    /// `None` when a disk store cannot be made (logged).
    pub fn store(&self, name: &str, disk: bool) -> Option<Arc<CacheStore>> {
        let mut stores = match self.stores.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = stores.get(&(disk, name.to_owned())) {
            return Some(s.clone());
        }
        let store = if disk {
            let Some((dir, budget)) = &self.disk else {
                tracing::error!("proxy-cache: the disk strategy has no folder on this node");
                return None;
            };
            let dir = dir.join(name.replace(['/', '\\', '.'], "_"));
            match CacheStore::on_disk(*budget, self.clock.clone(), &dir) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("proxy-cache: cannot use {}: {e}", dir.display());
                    return None;
                }
            }
        } else {
            CacheStore::new(self.budget, self.clock.clone())
        };
        stores.insert((disk, name.to_owned()), store.clone());
        Some(store)
    }

    /// Every store made so far: (name, on disk, store).
    pub fn all(&self) -> Vec<(String, bool, Arc<CacheStore>)> {
        let stores = match self.stores.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut v: Vec<_> = stores
            .iter()
            .map(|((disk, name), s)| (name.clone(), *disk, s.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
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
            disk: None,
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
