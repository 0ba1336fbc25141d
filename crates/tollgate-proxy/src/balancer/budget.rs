//! The retry budget: retries may add at most a fixed share of the
//! requests (20 %), plus a small floor per second so that a quiet upstream
//! can still retry. When a backend fails wholesale, retries then cannot
//! multiply the load on what is left.

use super::state::now_ms;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Share of requests that may be retried, in thousandths.
const RATIO_MILLI: i64 = 200;
/// Retries always allowed per second, whatever the ratio says.
const MIN_PER_SECOND: u32 = 10;
/// Most retry credit that can be saved up, in thousandths of a retry.
const MAX_BALANCE: i64 = 100 * 1000;

/// One upstream's retry budget.
#[derive(Debug, Default)]
pub struct RetryBudget {
    /// Saved-up credit, thousandths of a retry.
    balance: AtomicI64,
    /// The second (of [`now_ms`]) the floor is counted in.
    second: AtomicU64,
    /// Retries taken from the floor in that second.
    floor_used: AtomicU32,
}

impl RetryBudget {
    /// Credits one request.
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < MAX_BALANCE {
            self.balance.fetch_add(RATIO_MILLI, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        let second = now_ms() / 1000;
        if self.second.load(Ordering::Relaxed) != second {
            self.second.store(second, Ordering::Relaxed);
            self.floor_used.store(0, Ordering::Relaxed);
        }
        if self.floor_used.fetch_add(1, Ordering::Relaxed) < MIN_PER_SECOND {
            return true;
        }
        if self.balance.fetch_sub(1000, Ordering::Relaxed) >= 1000 {
            return true;
        }
        self.balance.fetch_add(1000, Ordering::Relaxed);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_at_the_floor_plus_a_fifth_of_requests() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.deposit();
        }
        let allowed = (0..100).filter(|_| b.withdraw()).count();
        // 10 from the floor (within one second) and 20 earned.
        assert!((30..=40).contains(&allowed), "allowed {allowed}");
    }
}
