//! Route priority, packed into a `u64` as Kong's `traditional_compatible`
//! router does (higher wins), and the tie-break ids of split routes.
//!
//! | bits | meaning |
//! |---|---|
//! | 61–63 | number of non-empty fields among methods, hosts, headers, paths |
//! | 60 | all hosts plain (hosts non-empty, none with a `*`) |
//! | 52–59 | number of header keys (at most 255) |
//! | 51 | regex path |
//! | 19–50 | regex_priority (regex path groups only) |
//! | 0–18 | prefix length (prefix path groups only) |
//!
//! Decisions:
//! - snis, sources and destinations are not modelled, so they never count.
//! - Bit 60 with no hosts: Kong sets it whenever `hosts` is a Lua table, so
//!   an explicitly empty `hosts: []` gets it but an absent `hosts` (null, the
//!   usual case) does not. Our model cannot tell the two apart; we follow the
//!   usual case and leave the bit clear when there are no hosts.
//! - regex_priority is stored as `clamp(regex_priority, i32) + 2^31` so that
//!   the 32-bit field orders every value numerically, negatives below zero
//!   (Kong shifts the raw integer, which spills into the higher fields for
//!   negative or very large values).
//! - Prefix lengths above 2^19 - 1 are clamped (Kong masks them).

use uuid::Uuid;

/// Kong's namespace for the ids of routes split by path group.
const SPLIT_NAMESPACE: Uuid = Uuid::from_u128(0x7f14_5bf9_0dce_4f91_98eb_debb_ce4b_9f6b);

/// The path part of a matcher (one path group of a route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathGroup {
    /// The route has no paths.
    None,
    /// All the route's regex paths.
    Regex,
    /// The route's prefix paths of this length.
    Prefix(usize),
}

/// What the priority of one matcher depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PriorityInput {
    /// The route has methods.
    pub(crate) methods: bool,
    /// Number of configured hosts.
    pub(crate) hosts: usize,
    /// No configured host contains a `*`.
    pub(crate) no_wildcard_host: bool,
    /// Number of header keys.
    pub(crate) headers: usize,
    /// The path group of this matcher.
    pub(crate) path: PathGroup,
    /// The route's regex_priority.
    pub(crate) regex_priority: i64,
}

const MAX_HEADER_COUNT: u64 = 255;
const MAX_PREFIX_LEN: u64 = 0x7FFFF;
const PLAIN_HOSTS_BIT: u64 = 1 << 60;
const REGEX_BIT: u64 = 1 << 51;

/// Computes the packed priority of one matcher.
pub(crate) fn priority(input: &PriorityInput) -> u64 {
    let weight = u64::from(input.methods)
        + u64::from(input.hosts > 0)
        + u64::from(input.headers > 0)
        + u64::from(input.path != PathGroup::None);
    let mut p = weight << 61;
    if input.hosts > 0 && input.no_wildcard_host {
        p |= PLAIN_HOSTS_BIT;
    }
    p |= (input.headers as u64).min(MAX_HEADER_COUNT) << 52;
    match input.path {
        PathGroup::None => {}
        PathGroup::Regex => {
            p |= REGEX_BIT;
            p |= regex_priority_field(input.regex_priority) << 19;
        }
        PathGroup::Prefix(len) => p |= (len as u64).min(MAX_PREFIX_LEN),
    }
    p
}

/// The 32-bit, order-preserving encoding of regex_priority.
fn regex_priority_field(rp: i64) -> u64 {
    let clamped = rp.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    // In 0..2^32 after the offset.
    (clamped - i64::from(i32::MIN)) as u64
}

/// The id Kong gives a route's path group when it splits a route with several
/// paths (UUIDv5 of `"<route id>#<key>"`, key `true` for the regex group or
/// the prefix length), used for the uuid tie-break.
pub(crate) fn split_id(route_id: Uuid, group: PathGroup) -> Uuid {
    let name = match group {
        PathGroup::Regex => format!("{route_id}#true"),
        PathGroup::Prefix(len) => format!("{route_id}#{len}"),
        PathGroup::None => return route_id,
    };
    Uuid::new_v5(&SPLIT_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PriorityInput {
        PriorityInput {
            methods: false,
            hosts: 0,
            no_wildcard_host: true,
            headers: 0,
            path: PathGroup::None,
            regex_priority: 0,
        }
    }

    #[test]
    fn each_non_empty_field_counts_in_the_top_bits() {
        let p = priority(&PriorityInput {
            methods: true,
            hosts: 1,
            headers: 2,
            path: PathGroup::Prefix(3),
            ..input()
        });
        assert_eq!(p >> 61, 4);
        assert_eq!(
            priority(&PriorityInput {
                methods: true,
                ..input()
            }) >> 61,
            1
        );
    }

    #[test]
    fn plain_hosts_bit_needs_hosts_without_wildcard() {
        assert_ne!(
            priority(&PriorityInput {
                hosts: 2,
                ..input()
            }) & PLAIN_HOSTS_BIT,
            0
        );
        assert_eq!(
            priority(&PriorityInput {
                hosts: 2,
                no_wildcard_host: false,
                ..input()
            }) & PLAIN_HOSTS_BIT,
            0
        );
        assert_eq!(priority(&input()) & PLAIN_HOSTS_BIT, 0);
    }

    #[test]
    fn exact_layout_of_a_full_priority() {
        let p = priority(&PriorityInput {
            methods: true,
            hosts: 1,
            headers: 3,
            path: PathGroup::Prefix(5),
            ..input()
        });
        assert_eq!(p, (4 << 61) | (1 << 60) | (3 << 52) | 5);
    }

    #[test]
    fn header_count_and_prefix_length_are_capped() {
        let p = priority(&PriorityInput {
            headers: 1000,
            path: PathGroup::Prefix(1 << 20),
            ..input()
        });
        assert_eq!((p >> 52) & 0xFF, 255);
        assert_eq!(p & MAX_PREFIX_LEN, MAX_PREFIX_LEN);
        assert_eq!(p & REGEX_BIT, 0);
    }

    #[test]
    fn regex_priority_only_counts_for_regex_groups_and_keeps_numeric_order() {
        let rx = |rp| {
            priority(&PriorityInput {
                path: PathGroup::Regex,
                regex_priority: rp,
                ..input()
            })
        };
        assert!(rx(-5) < rx(0));
        assert!(rx(0) < rx(1));
        assert!(rx(1) < rx(i64::MAX));
        assert!(rx(i64::MIN) < rx(-5));
        assert_eq!(
            rx(i64::MAX) >> 51,
            (1 << 61 | REGEX_BIT) >> 51,
            "must not spill"
        );
        let prefix = priority(&PriorityInput {
            path: PathGroup::Prefix(4),
            regex_priority: 100,
            ..input()
        });
        assert_eq!(prefix, (1 << 61) | 4);
    }

    #[test]
    fn split_ids_use_kongs_uuid_v5_derivation() {
        // lua-resty-jit-uuid's published v5 vector (as used by Kong): the uuid
        // crate's v5 gives the same result.
        let ns = Uuid::parse_str("e6ebd542-06ae-11e6-8e82-bba81706b27d").unwrap();
        assert_eq!(
            Uuid::new_v5(&ns, b"hello").to_string(),
            "4850816f-1658-5890-8bfd-1ed14251f1f0"
        );
        let id = Uuid::from_u128(7);
        assert_eq!(split_id(id, PathGroup::None), id);
        assert_eq!(
            split_id(id, PathGroup::Regex),
            Uuid::new_v5(&SPLIT_NAMESPACE, format!("{id}#true").as_bytes())
        );
        assert_ne!(
            split_id(id, PathGroup::Prefix(3)),
            split_id(id, PathGroup::Prefix(4))
        );
    }
}
