//! The consistent-hashing ring: each target owns points in proportion to
//! its weight, placed by hashing its address, so adding or removing one
//! target only moves the keys that land on (or left) its points, about 1/N.

/// Points per unit of weight (weight 100, Kong's default, gets 1,000).
const POINTS_PER_WEIGHT: u64 = 10;
/// Upper bound on the ring's size; larger weights are scaled down.
const MAX_POINTS: u64 = 1 << 20;

/// A 64-bit hash that is the same in every process and version (keys must
/// map to the same target after a restart): FNV-1a, then a finaliser that
/// spreads similar inputs over the whole range.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Points sorted by position; each names a target index.
#[derive(Debug, Default)]
pub struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// A ring over targets given as `(identity, weight)`.
    pub fn new(targets: &[(&str, u32)]) -> Ring {
        let total: u64 = targets.iter().map(|(_, w)| u64::from(*w)).sum();
        let scale = if total * POINTS_PER_WEIGHT > MAX_POINTS {
            MAX_POINTS as f64 / (total * POINTS_PER_WEIGHT) as f64
        } else {
            1.0
        };
        let mut points = Vec::new();
        for (i, (id, w)) in targets.iter().enumerate() {
            let n = ((u64::from(*w) * POINTS_PER_WEIGHT) as f64 * scale).max(1.0) as u64;
            for k in 0..n {
                points.push((stable_hash(&[id.as_bytes(), &k.to_le_bytes()]), i as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// Target indexes in ring order starting at the point for `hash`
    /// (the first is the key's owner; the rest are its fallbacks).
    pub fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < hash);
        let n = self.points.len();
        (0..n).map(move |i| self.points[(start + i) % n].1 as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(r: &Ring, key: u64) -> usize {
        r.walk(key).next().unwrap_or(usize::MAX)
    }

    #[test]
    fn adding_a_target_moves_about_a_quarter_of_keys_from_three_to_four() {
        let three = Ring::new(&[("a:1", 100), ("b:1", 100), ("c:1", 100)]);
        let four = Ring::new(&[("a:1", 100), ("b:1", 100), ("c:1", 100), ("d:1", 100)]);
        let keys: Vec<u64> = (0..10_000u32)
            .map(|k| stable_hash(&[&k.to_le_bytes()]))
            .collect();
        let moved = keys
            .iter()
            .filter(|k| owner(&three, **k) != owner(&four, **k))
            .count();
        // Every moved key went to the new target.
        assert!(keys
            .iter()
            .filter(|k| owner(&three, **k) != owner(&four, **k))
            .all(|k| owner(&four, *k) == 3));
        assert!((1_800..=3_200).contains(&moved), "moved {moved}");
    }

    #[test]
    fn shares_follow_weights() {
        let r = Ring::new(&[("a:1", 100), ("b:1", 200), ("c:1", 300)]);
        let mut counts = [0u32; 3];
        for k in 0..60_000u32 {
            counts[owner(&r, stable_hash(&[&k.to_le_bytes()]))] += 1;
        }
        for (i, expected) in [10_000f64, 20_000.0, 30_000.0].iter().enumerate() {
            let got = f64::from(counts[i]);
            assert!((got - expected).abs() / 60_000.0 < 0.05, "{counts:?}");
        }
    }
}
