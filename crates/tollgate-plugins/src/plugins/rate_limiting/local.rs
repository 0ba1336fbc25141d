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
        let mut id = self.identifier(ctx);
        let counters = Counters::global();
        // At most six windows: state on the stack, no allocation.
        let n = self.windows.len().min(6);
        let mut state: [WindowState; 6] = [("", 0, 0, 0); 6];
        let mut taken = [None::<(u64, i64)>; 6];
        let mut blocked: Option<i64> = None;
        for (i, (unit, limit)) in self.windows.iter().take(n).enumerate() {
            let (start, end) = window_start(unit, now);
            let len = end - start;
            // Sliding: the previous window still counts for the share of it
            // the sliding window covers; this window's counter must then
            // live through the next one too.
            let (allowance, expires) = if sliding {
                let key = (self.id, std::mem::take(&mut id), len as u64, start - len);
                let previous = counters.count(&key);
                id = key.1;
                let elapsed = now_ms - start * 1000;
                (
                    sliding_allowance(*limit, previous, elapsed, len * 1000),
                    end + len,
                )
            } else {
                (*limit, end)
            };
            // The identifier moves into the key and back out (no copy).
            let key = (self.id, std::mem::take(&mut id), len as u64, start);
            let (count, ok) = counters.try_take(&key, allowance, expires, now);
            id = key.1;
            let used = count + (*limit - allowance);
            if ok {
                taken[i] = Some((len as u64, start));
            } else {
                blocked = Some(blocked.map_or(end - now, |b| b.max(end - now)));
            }
            state[i] = (*unit, *limit, limit.saturating_sub(used), end - now);
        }
        if blocked.is_some() {
            // Rejected requests are not counted in any window (nor shown
            // as counted).
            for (i, t) in taken.iter().enumerate().take(n) {
                if let Some((len, start)) = t {
                    counters.give_back(&(self.id, id.clone(), *len, *start));
                    state[i].2 = (state[i].2 + 1).min(state[i].1);
                }
            }
        }
        self.answer(ctx, &state[..n], blocked)
    }
}
