//! `limit-req` (Tollgate's; nginx's `limit_req` as a plugin): a leaky
//! bucket per key at `rate` requests per second. Up to `burst` requests
//! above the rate wait their turn (delayed to the rate) or, with `nodelay`,
//! pass at once while burst slots remain (with `delay=N`, the first N pass
//! at once and the rest wait); beyond the burst, requests are answered
//! `status` (503). Requests that were refused do not fill the bucket.
//!
//! Buckets live in named zones shared by every route that names the same
//! `zone` (as nginx's `limit_req_zone`), each holding at most `max_keys`
//! keys: when full, keys whose bucket has drained are dropped, then a
//! request for a new key is refused rather than growing memory.

use serde::{Deserialize, Serialize};

use crate::runtime::{AccessCtx, EarlyResponse, Flow};
use crate::schema::{field, Bound, Field, PluginSchema, Ty};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `limit-req` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitReqConfig {
    /// The zone (buckets shared by every instance naming it).
    pub zone: String,
    /// Requests per second (may be fractional: 30r/m is 0.5).
    pub rate: f64,
    /// Requests above the rate that may wait (0).
    pub burst: u64,
    /// Serve burst requests at once instead of spacing them (false).
    pub nodelay: bool,
    /// The first `delay` burst requests pass at once (0).
    pub delay: u64,
    /// What a bucket is per: the client address, a header, or one for all.
    pub limit_by: String,
    /// The header for `limit_by: header`.
    pub header_name: Option<String>,
    /// The refusal status (503, nginx's `limit_req_status`).
    pub status: u16,
    /// Most keys the zone holds (nginx: about 16,000 per megabyte).
    pub max_keys: u64,
}

impl Default for LimitReqConfig {
    fn default() -> Self {
        Self {
            zone: "default".into(),
            rate: 1.0,
            burst: 0,
            nodelay: false,
            delay: 0,
            limit_by: "ip".into(),
            header_name: None,
            status: 503,
            max_keys: 160_000,
        }
    }
}

impl PluginSchema for LimitReqConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        let config: LimitReqConfig = serde_json::from_value(plugin.config.clone()).ok()?;
        let zone = zone(&config.zone, config.max_keys);
        Some(Arc::new(LimitReq { config, zone }))
    }

    const NAME: &'static str = "limit-req";
    const PRIORITY: i32 = 905;
    const FIELDS: &'static [Field] = &[
        field("zone", Ty::Str),
        field("rate", Ty::Num(Bound::Gt(0.0))),
        field("burst", Ty::Int(Bound::Between(0.0, 1e9))),
        field("nodelay", Ty::Bool),
        field("delay", Ty::Int(Bound::Between(0.0, 1e9))),
        field("limit_by", Ty::OneOf(&["ip", "header", "global"])),
        field("header_name", Ty::Str),
        field("status", Ty::Int(Bound::Between(400.0, 599.0))),
        field("max_keys", Ty::Int(Bound::Between(1.0, 1e9))),
    ];
}

/// One key's bucket: the excess over the rate (in thousandths of a
/// request) when it was last updated.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    excess: u64,
    at: Instant,
}

/// A named set of buckets.
#[derive(Debug)]
pub struct Zone {
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

/// The zone named `name`, made on first use (shared process-wide, as
/// nginx's shared-memory zones are shared by its workers).
fn zone(name: &str, max_keys: u64) -> Arc<Zone> {
    static ZONES: OnceLock<Mutex<HashMap<String, Arc<Zone>>>> = OnceLock::new();
    let zones = ZONES.get_or_init(Default::default);
    let mut zones = match zones.lock() {
        Ok(z) => z,
        Err(poisoned) => poisoned.into_inner(),
    };
    zones
        .entry(name.to_owned())
        .or_insert_with(|| {
            Arc::new(Zone {
                buckets: Mutex::new(HashMap::new()),
                max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX),
            })
        })
        .clone()
}

/// What the bucket says about one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Pass after this wait.
    Pass(Duration),
    /// Refuse.
    Refuse,
}

impl Zone {
    /// nginx's leaky bucket: the excess drains at `rate` and each request
    /// adds one; past `burst` the request is refused and not counted.
    fn take(&self, key: &str, rate: f64, burst: u64, free: u64, now: Instant) -> Verdict {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let drained = |b: &Bucket| {
            let ms = now.saturating_duration_since(b.at).as_millis() as f64;
            (b.excess as f64 - rate * ms).max(0.0)
        };
        let excess = match buckets.get(key) {
            Some(b) => drained(b) + 1000.0,
            None => {
                if buckets.len() >= self.max_keys {
                    buckets.retain(|_, b| drained(b) > 0.0);
                    if buckets.len() >= self.max_keys {
                        return Verdict::Refuse;
                    }
                }
                0.0
            }
        };
        if excess > (burst * 1000) as f64 {
            return Verdict::Refuse;
        }
        buckets.insert(
            key.to_owned(),
            Bucket {
                excess: excess as u64,
                at: now,
            },
        );
        let free = (free * 1000) as f64;
        if excess <= free {
            return Verdict::Pass(Duration::ZERO);
        }
        // `rate` is in thousandths of a request per ms.
        Verdict::Pass(Duration::from_millis(((excess - free) / rate) as u64))
    }
}

/// The limit-req plugin at run time.
#[derive(Debug)]
pub struct LimitReq {
    config: LimitReqConfig,
    zone: Arc<Zone>,
}

impl crate::runtime::Plugin for LimitReq {
    fn name(&self) -> &'static str {
        "limit-req"
    }

    fn priority(&self) -> i32 {
        905
    }

    fn access(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        if ctx.retried {
            // Back from waiting its turn: already counted.
            return Flow::Continue;
        }
        let key = match self.config.limit_by.as_str() {
            "global" => String::new(),
            "header" => self
                .config
                .header_name
                .as_deref()
                .and_then(|h| ctx.headers.get(h))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            _ => ctx.client_ip_text.to_owned(),
        };
        let free = if self.config.nodelay {
            self.config.burst
        } else {
            self.config.delay
        };
        let rate = self.config.rate; // per second = thousandths per ms
        match self
            .zone
            .take(&key, rate, self.config.burst, free, Instant::now())
        {
            Verdict::Pass(wait) if wait.is_zero() => Flow::Continue,
            Verdict::Pass(wait) => Flow::Retry(Box::pin(tokio::time::sleep(wait))),
            Verdict::Refuse => {
                let status = StatusCode::from_u16(self.config.status)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                Flow::Respond(EarlyResponse::message(
                    status,
                    status.canonical_reason().unwrap_or("Service Unavailable"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_at_once_at_ten_per_second_with_burst_twenty() {
        let zone = Zone {
            buckets: Mutex::new(HashMap::new()),
            max_keys: 10,
        };
        let now = Instant::now();
        let verdicts: Vec<Verdict> = (0..40).map(|_| zone.take("k", 10.0, 20, 0, now)).collect();
        let passed: Vec<&Verdict> = verdicts.iter().filter(|v| **v != Verdict::Refuse).collect();
        assert_eq!(passed.len(), 21);
        // Spaced at the rate: the nth waits n × 100 ms.
        assert_eq!(*passed[0], Verdict::Pass(Duration::ZERO));
        assert_eq!(*passed[20], Verdict::Pass(Duration::from_millis(2000)));
        // A second later ten slots have drained.
        let later = now + Duration::from_secs(1);
        let more = (0..15).filter(|_| zone.take("k", 10.0, 20, 0, later) != Verdict::Refuse);
        assert_eq!(more.count(), 10);
    }

    #[test]
    fn a_full_zone_drops_drained_keys_then_refuses_new_ones() {
        let zone = Zone {
            buckets: Mutex::new(HashMap::new()),
            max_keys: 2,
        };
        let now = Instant::now();
        assert_eq!(
            zone.take("a", 1.0, 5, 5, now),
            Verdict::Pass(Duration::ZERO)
        );
        assert_eq!(
            zone.take("a", 1.0, 5, 5, now),
            Verdict::Pass(Duration::ZERO)
        );
        assert_eq!(
            zone.take("b", 1.0, 5, 5, now),
            Verdict::Pass(Duration::ZERO)
        );
        assert_eq!(
            zone.take("b", 1.0, 5, 5, now),
            Verdict::Pass(Duration::ZERO)
        );
        assert_eq!(zone.take("c", 1.0, 5, 5, now), Verdict::Refuse);
        // A second later both buckets have drained: "c" fits.
        let later = now + Duration::from_millis(1100);
        assert_eq!(
            zone.take("c", 1.0, 5, 5, later),
            Verdict::Pass(Duration::ZERO)
        );
    }
}
