//! Rate-limit counters of this node (`policy: local`), for fixed windows
//! and for sliding ones (see [`sliding_allowance`]).
//!
//! They live outside configuration snapshots, keyed by plugin id, so a
//! change to an unrelated entity does not reset them. The map is split in
//! shards (a request locks one shard for one key, never a lock shared by all
//! requests), and expired windows are swept as shards are used, so a flood
//! of distinct client addresses cannot grow memory without limit.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, OnceLock};
use uuid::Uuid;

const SHARDS: usize = 64;
/// Most live counters per shard (64 × 4,096 = 262,144 in all, some 30 MB):
/// past it, the quarter of the shard's counters closest to expiry is
/// dropped (those clients start their window again).
const MAX_PER_SHARD: usize = 4_096;

/// One counter: (plugin, identifier, window length in seconds, window start).
type Key = (Uuid, String, u64, i64);

#[derive(Debug, Default)]
struct Shard {
    counts: HashMap<Key, (u64, i64), foldhash::fast::FixedState>,
    ops: u64,
}

/// The node's counters.
#[derive(Debug)]
pub struct Counters {
    shards: Vec<Mutex<Shard>>,
    /// Seeded at random per process: which shard a key lands in cannot be
    /// chosen by clients (foldhash: fast on short keys, minimally
    /// DoS-resistant; a shard is also bounded in size).
    hasher: foldhash::fast::RandomState,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Counters {
    /// The process-wide counters.
    pub fn global() -> &'static Counters {
        static C: OnceLock<Counters> = OnceLock::new();
        C.get_or_init(Counters::new)
    }

    /// An empty set of counters.
    pub fn new() -> Counters {
        let hasher = foldhash::fast::RandomState::default();
        Counters {
            shards: (0..SHARDS)
                .map(|i| {
                    Mutex::new(Shard {
                        counts: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(
                            hasher.hash_one(i),
                        )),
                        ops: 0,
                    })
                })
                .collect(),
            hasher,
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Counts one request against `limit` unless that would exceed it;
    /// returns the count after the call and whether the request was counted.
    /// `expires` is when the window ends (epoch seconds). The key is copied
    /// only when its window is new.
    pub fn try_take(&self, key: &Key, limit: u64, expires: i64, now: i64) -> (u64, bool) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard.ops += 1;
        if shard.ops.is_multiple_of(1024) || shard.counts.len() >= MAX_PER_SHARD {
            shard.counts.retain(|_, (_, exp)| *exp > now);
        }
        let count = match shard.counts.get_mut(key) {
            Some((count, _)) => count,
            None => {
                if shard.counts.len() >= MAX_PER_SHARD {
                    let mut expiries: Vec<i64> = shard.counts.values().map(|(_, e)| *e).collect();
                    expiries.sort_unstable();
                    let cut = expiries[expiries.len() / 4];
                    shard.counts.retain(|_, (_, exp)| *exp > cut);
                }
                &mut shard.counts.entry(key.clone()).or_insert((0, expires)).0
            }
        };
        if *count >= limit {
            return (*count, false);
        }
        *count += 1;
        (*count, true)
    }

    /// The count of a window (0 when it has none, or it expired).
    pub fn count(&self, key: &Key) -> u64 {
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard.counts.get(key).map_or(0, |(n, _)| *n)
    }

    /// Takes back one counted request (another window refused it).
    pub fn give_back(&self, key: &Key) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = shard.counts.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    /// Number of live counters (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.counts.len()).unwrap_or(0))
            .sum()
    }

    /// Whether there are no counters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many requests the current window may still count under a sliding
/// window: the previous window's count weighs by the part of it the sliding
/// window still covers (`elapsed_ms` into the current window of `len_ms`).
pub fn sliding_allowance(limit: u64, previous: u64, elapsed_ms: i64, len_ms: i64) -> u64 {
    let len = len_ms.max(1) as u128;
    let left = (len_ms - elapsed_ms).clamp(0, len_ms) as u128;
    let weighted = (previous as u128 * left / len) as u64;
    limit.saturating_sub(weighted)
}

/// Start and end (epoch seconds, UTC) of the fixed window of `unit` holding `now`.
pub fn window_start(unit: &str, now: i64) -> (i64, i64) {
    let day = 86_400;
    match unit {
        "second" => (now, now + 1),
        "minute" => (now - now.rem_euclid(60), now - now.rem_euclid(60) + 60),
        "hour" => (
            now - now.rem_euclid(3600),
            now - now.rem_euclid(3600) + 3600,
        ),
        "day" => (now - now.rem_euclid(day), now - now.rem_euclid(day) + day),
        "month" | "year" => {
            let (y, m, _) = civil(now.div_euclid(day));
            let (start, end) = if unit == "month" {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days(y, m, 1), days(ny, nm, 1))
            } else {
                (days(y, 1, 1), days(y + 1, 1, 1))
            };
            (start * day, end * day)
        }
        _ => (now, now + 1),
    }
}

/// Days since 1970-01-01 → (year, month, day).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_calendar() {
        // 2026-11-28T00:47:20Z
        let now = 1_795_826_840;
        assert_eq!(window_start("minute", now), (1_795_826_820, 1_795_826_880));
        let (s, e) = window_start("month", now);
        assert_eq!(civil(s / 86_400), (2026, 11, 1));
        assert_eq!(civil(e / 86_400), (2026, 12, 1));
        let (s, e) = window_start("year", now);
        assert_eq!(civil(s / 86_400), (2026, 1, 1));
        assert_eq!(civil(e / 86_400), (2027, 1, 1));
    }

    #[test]
    fn a_sliding_window_counts_the_previous_window_by_its_remaining_share() {
        // 10 in the previous minute; 15 s into this one, 3/4 of it still counts.
        assert_eq!(sliding_allowance(10, 10, 15_000, 60_000), 3);
        assert_eq!(sliding_allowance(10, 10, 0, 60_000), 0);
        assert_eq!(sliding_allowance(10, 10, 60_000, 60_000), 10);
        assert_eq!(sliding_allowance(10, 0, 1, 60_000), 10);
    }

    #[test]
    fn a_million_distinct_clients_cannot_grow_the_counters_past_their_bound() {
        let c = Counters::new();
        let id = Uuid::new_v4();
        for i in 0..1_000_000u32 {
            c.try_take(&(id, i.to_string(), 60, 0), 100, 60, 1);
        }
        assert!(c.len() <= SHARDS * MAX_PER_SHARD, "{}", c.len());
        // Expired windows are swept as the shards are used again.
        for i in 0..200_000u32 {
            c.try_take(&(id, format!("later-{i}"), 60, 60), 100, 120, 61);
        }
        assert!(c.len() <= 200_000 + SHARDS * 1024, "{}", c.len());
    }

    #[test]
    fn the_limit_is_never_exceeded_and_refusals_are_not_counted() {
        let c = Counters::global();
        let id = Uuid::new_v4();
        let key = || (id, "ip".to_owned(), 60, 0);
        for i in 1..=3 {
            assert_eq!(c.try_take(&key(), 3, i64::MAX, 0), (i, true));
        }
        assert_eq!(c.try_take(&key(), 3, i64::MAX, 0), (3, false));
        c.give_back(&key());
        assert_eq!(c.try_take(&key(), 3, i64::MAX, 0), (3, true));
    }
}
