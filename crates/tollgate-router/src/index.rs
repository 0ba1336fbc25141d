//! Lookup indexes, built once, so that finding a route does not scan every
//! route.
//!
//! Matchers are numbered by *rank*: sorted by (priority, tie-break id)
//! descending, so a smaller rank always wins. Every candidate list below is
//! sorted by rank, which lets a lookup stop scanning a list as soon as it
//! reaches a rank no better than the best match found so far.
//!
//! Two levels:
//! 1. **Host buckets.** A matcher with hosts goes into one bucket per host
//!    pattern: exact hosts by name, `*.a.com` by its suffix `.a.com`, `a.*`
//!    by its prefix `a.`. A lookup consults the bucket of the request host,
//!    the suffix buckets for each `.`-suffix of the host, the prefix buckets
//!    for each `.`-prefix, and the *any-host* bucket, which holds matchers
//!    without hosts (and the rare wildcard that is not at a label boundary).
//! 2. **Path index** inside each bucket: maps keyed by length then bytes (a
//!    lookup probes `path[..len]` for each distinct length). Prefix matchers
//!    are filed under their prefix, regex matchers under the literal prefix
//!    every match of their regex must start with (`/users/` for
//!    `~/users/\d+`; empty when there is none). Within a key, many regexes
//!    are tried through a [`RegexSet`], a few one by one. Matchers without
//!    paths sit in a list.
//!
//! Each candidate is then fully checked ([`Matcher::check`]). Routes that
//! differ only by methods or headers share a list that is scanned in
//! priority order.

use crate::host::HostKind;
use crate::matcher::{Hit, Matcher, PathRule};
use crate::RequestInfo;
use regex::{RegexSet, RegexSetBuilder};
use std::collections::HashMap;

/// Below this many regex patterns in a bucket, they are tried one by one
/// rather than through a [`RegexSet`].
const REGEX_SET_THRESHOLD: usize = 8;

/// Size limit for a compiled [`RegexSet`]; past it, patterns are tried one by one.
const REGEX_SET_SIZE_LIMIT: usize = 64 << 20;

/// The best match found so far during one lookup.
#[derive(Debug)]
pub(crate) struct Best {
    /// Rank of the best matcher so far (`u32::MAX`: none yet).
    pub(crate) rank: u32,
    /// Its hit.
    pub(crate) hit: Option<Hit>,
}

/// One lookup in progress.
struct Search<'a, 'r> {
    matchers: &'a [Matcher],
    req: &'a RequestInfo<'r>,
    host_lc: &'a str,
    best: Best,
}

impl Search<'_, '_> {
    /// Scans a rank-sorted candidate list, stopping at the first full match
    /// or at the first rank that cannot beat the best so far.
    fn scan(&mut self, ranks: &[u32]) {
        for &rank in ranks {
            if rank >= self.best.rank {
                return;
            }
            if self.try_rank(rank) {
                return;
            }
        }
    }

    /// Fully checks one candidate; records it when it matches.
    fn try_rank(&mut self, rank: u32) -> bool {
        let Some(m) = self.matchers.get(rank as usize) else {
            return false;
        };
        match m.check(self.req, self.host_lc) {
            Some(hit) => {
                self.best = Best {
                    rank,
                    hit: Some(hit),
                };
                true
            }
            None => false,
        }
    }
}

/// Regex matchers sharing a slot.
#[derive(Debug, Default)]
enum RegexIndex {
    /// No regex matchers.
    #[default]
    Empty,
    /// Few matchers: ranks, checked in order.
    Linear(Box<[u32]>),
    /// Many: a set over all their patterns, `owners[i]` being the rank of the
    /// matcher of pattern `i` (patterns ordered by owner rank).
    Set {
        set: RegexSet,
        owners: Box<[u32]>,
        best_rank: u32,
    },
}

impl RegexIndex {
    /// Builds from the ranks (ascending, unique) of regex matchers.
    fn build(ranks: Vec<u32>, matchers: &[Matcher]) -> RegexIndex {
        let Some(&best_rank) = ranks.first() else {
            return RegexIndex::Empty;
        };
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        for &rank in &ranks {
            if let Some(Matcher {
                paths: PathRule::Regexes(list),
                ..
            }) = matchers.get(rank as usize)
            {
                for r in list.iter() {
                    patterns.push(r.re.as_str());
                    owners.push(rank);
                }
            }
        }
        if patterns.len() < REGEX_SET_THRESHOLD {
            return RegexIndex::Linear(ranks.into());
        }
        match RegexSetBuilder::new(&patterns)
            .size_limit(REGEX_SET_SIZE_LIMIT)
            .build()
        {
            Ok(set) => RegexIndex::Set {
                set,
                owners: owners.into(),
                best_rank,
            },
            Err(_) => RegexIndex::Linear(ranks.into()),
        }
    }

    /// Offers the matchers whose regex matches to the search.
    fn search(&self, s: &mut Search<'_, '_>) {
        match self {
            RegexIndex::Empty => {}
            RegexIndex::Linear(ranks) => s.scan(ranks),
            RegexIndex::Set {
                set,
                owners,
                best_rank,
            } => {
                if *best_rank >= s.best.rank {
                    return;
                }
                let mut last_tried = None;
                for i in set.matches(s.req.path).iter() {
                    let Some(&rank) = owners.get(i) else { continue };
                    if rank >= s.best.rank {
                        return;
                    }
                    if last_tried != Some(rank) {
                        last_tried = Some(rank);
                        if s.try_rank(rank) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The candidates filed under one path key (prefix bytes).
#[derive(Debug, Default)]
struct Slot {
    /// Prefix matchers with exactly this prefix.
    prefixes: Box<[u32]>,
    /// Regex matchers one of whose regexes has this literal prefix.
    regexes: RegexIndex,
}

/// Key bytes → slot, for one key length. FNV: the keys come from the
/// configuration, not from requests, and the lookup runs on every request.
type SlotMap = HashMap<Box<[u8]>, Slot, fnv::FnvBuildHasher>;

/// Host name → path index (FNV, as [`SlotMap`]).
type HostMap = HashMap<Box<str>, PathIndex, fnv::FnvBuildHasher>;

/// The path index of one host bucket.
///
/// Prefix matchers are filed under their prefix; regex matchers under the
/// literal prefix every match of their regex starts with (often empty, which
/// is a key of length 0 that every path has).
#[derive(Debug, Default)]
struct PathIndex {
    /// (key length, key → slot), ascending by length.
    slots: Vec<(usize, SlotMap)>,
    /// Matchers without paths.
    no_path: Box<[u32]>,
}

/// A slot while the index is being built.
#[derive(Default)]
struct SlotBuilder {
    prefixes: Vec<u32>,
    regexes: Vec<u32>,
}

/// The slot builder for a key, created on first use.
fn slot_builder<'a>(
    by_len: &'a mut HashMap<usize, HashMap<Box<[u8]>, SlotBuilder>>,
    key: &[u8],
) -> &'a mut SlotBuilder {
    by_len
        .entry(key.len())
        .or_default()
        .entry(key.into())
        .or_default()
}

impl PathIndex {
    /// Builds the index of a bucket from its matcher ranks (ascending, unique).
    fn build(ranks: &[u32], matchers: &[Matcher]) -> PathIndex {
        let mut by_len: HashMap<usize, HashMap<Box<[u8]>, SlotBuilder>> = HashMap::new();
        let mut no_path = Vec::new();
        for &rank in ranks {
            let Some(m) = matchers.get(rank as usize) else {
                continue;
            };
            match &m.paths {
                PathRule::Any => no_path.push(rank),
                PathRule::Prefixes(list) => {
                    for p in list.iter() {
                        push_unique(&mut slot_builder(&mut by_len, p.as_bytes()).prefixes, rank);
                    }
                }
                PathRule::Regexes(list) => {
                    for r in list.iter() {
                        push_unique(
                            &mut slot_builder(&mut by_len, &r.literal_prefix).regexes,
                            rank,
                        );
                    }
                }
            }
        }
        let mut slots: Vec<(usize, SlotMap)> = by_len
            .into_iter()
            .map(|(len, map)| {
                let map = map
                    .into_iter()
                    .map(|(key, b)| {
                        let slot = Slot {
                            prefixes: b.prefixes.into(),
                            regexes: RegexIndex::build(b.regexes, matchers),
                        };
                        (key, slot)
                    })
                    .collect();
                (len, map)
            })
            .collect();
        slots.sort_by_key(|(len, _)| *len);
        PathIndex {
            slots,
            no_path: no_path.into(),
        }
    }

    /// Offers this bucket's candidates to the search.
    fn search(&self, s: &mut Search<'_, '_>) {
        let path = s.req.path.as_bytes();
        for (len, map) in &self.slots {
            let Some(key) = path.get(..*len) else { break };
            if let Some(slot) = map.get(key) {
                s.scan(&slot.prefixes);
                slot.regexes.search(s);
            }
        }
        s.scan(&self.no_path);
    }
}

/// Collects matcher ranks per bucket before the path indexes are built.
#[derive(Default)]
struct Buckets {
    exact: HashMap<Box<str>, Vec<u32>>,
    suffix: HashMap<Box<str>, Vec<u32>>,
    prefix: HashMap<Box<str>, Vec<u32>>,
    any_host: Vec<u32>,
}

fn push_unique(list: &mut Vec<u32>, rank: u32) {
    if list.last() != Some(&rank) {
        list.push(rank);
    }
}

/// The whole two-level index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    exact: HostMap,
    suffix: HostMap,
    prefix: HostMap,
    any_host: PathIndex,
}

impl Index {
    /// Builds the index over matchers sorted by rank.
    pub(crate) fn build(matchers: &[Matcher]) -> Index {
        let mut b = Buckets::default();
        for (rank, m) in matchers.iter().enumerate() {
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            let indexable = m.hosts.iter().all(|h| match &h.kind {
                HostKind::Exact(_) => true,
                HostKind::Suffix(s) => s.starts_with('.'),
                HostKind::Prefix(p) => p.ends_with('.'),
            });
            if m.hosts.is_empty() || !indexable {
                push_unique(&mut b.any_host, rank);
                continue;
            }
            for h in m.hosts.iter() {
                let (map, key) = match &h.kind {
                    HostKind::Exact(k) => (&mut b.exact, k),
                    HostKind::Suffix(k) => (&mut b.suffix, k),
                    HostKind::Prefix(k) => (&mut b.prefix, k),
                };
                push_unique(map.entry(Box::from(&**key)).or_default(), rank);
            }
        }
        let build_map = |m: HashMap<Box<str>, Vec<u32>>| -> HostMap {
            m.into_iter()
                .map(|(k, ranks)| (k, PathIndex::build(&ranks, matchers)))
                .collect()
        };
        Index {
            exact: build_map(b.exact),
            suffix: build_map(b.suffix),
            prefix: build_map(b.prefix),
            any_host: PathIndex::build(&b.any_host, matchers),
        }
    }

    /// Finds the best matcher for a request; `host_lc` is its lowercased host.
    pub(crate) fn find(&self, matchers: &[Matcher], req: &RequestInfo<'_>, host_lc: &str) -> Best {
        let mut s = Search {
            matchers,
            req,
            host_lc,
            best: Best {
                rank: u32::MAX,
                hit: None,
            },
        };
        if let Some(bucket) = self.exact.get(host_lc) {
            bucket.search(&mut s);
        }
        if !self.suffix.is_empty() || !self.prefix.is_empty() {
            for (i, _) in host_lc.match_indices('.') {
                if let Some(bucket) = self.suffix.get(&host_lc[i..]) {
                    bucket.search(&mut s);
                }
                if let Some(bucket) = self.prefix.get(&host_lc[..=i]) {
                    bucket.search(&mut s);
                }
            }
        }
        self.any_host.search(&mut s);
        s.best
    }
}
