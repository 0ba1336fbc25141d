//! `policy: local`: counters in this node's memory ([`Counters`]), exact
//! under concurrency.

use super::{RateLimiting, WindowState};
use crate::runtime::{sliding_allowance, window_start, AccessCtx, Counters, Flow};

impl RateLimiting {
    /// Counts the request in every window, or in none when one is full.
    pub(super) fn access_local(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = now_ms.div_euclid(1000);
        let sliding = self.sliding();
        let id = self.identifier(ctx);
        let counters = Counters::global();
        let mut taken = Vec::new();
        let mut state: Vec<WindowState> = Vec::with_capacity(self.windows.len());
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
                    sliding_allowance(*limit, previous, elapsed, len * 1000),
                    end + len,
                )
            } else {
                (*limit, end)
            };
            let (count, ok) = counters.try_take(key.clone(), allowance, expires, now);
            let used = count + (*limit - allowance);
            if ok {
                taken.push((state.len(), key));
            } else {
                blocked = Some(blocked.map_or(end - now, |b| b.max(end - now)));
            }
            state.push((*unit, *limit, limit.saturating_sub(used), end - now));
        }
        if blocked.is_some() {
            // Rejected requests are not counted in any window (nor shown
            // as counted).
            for (i, key) in taken {
                counters.give_back(key);
                state[i].2 = (state[i].2 + 1).min(state[i].1);
            }
        }
        self.answer(ctx, &state, blocked)
    }
}
