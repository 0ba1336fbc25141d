//! Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1) and the
//! `X-Forwarded-*` / `X-Real-IP` / `Via` headers Kong sets upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`: the request id sent upstream and to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `X-Forwarded-Path`.
pub const X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
/// `X-Forwarded-Prefix`.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// `X-Real-IP`.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Kong's upstream latency header (ms), kept for Kong users' tooling.
pub const X_KONG_UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
/// Kong's proxy latency header (ms).
pub const X_KONG_PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
/// Kong's latency header for answers produced by the gateway itself (ms).
pub const X_KONG_RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers, including those the `Connection` header
/// names. With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive
/// (a WebSocket handshake being tunnelled).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which hop-by-hop headers are present:
    // comparing names is much cheaper than a hashed removal per candidate,
    // and most messages carry at most `Connection: keep-alive`.
    let mut present = 0u8;
    for name in headers.keys() {
        present |= hop_bit(name);
    }
    if present == 0 {
        return;
    }
    if present & CONNECTION_BIT != 0 {
        let mut named: Vec<HeaderName> = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            let Ok(v) = v.to_str() else { continue };
            for token in v.split(',') {
                let token = token.trim();
                // The common tokens name no header to remove.
                if token.is_empty()
                    || token.eq_ignore_ascii_case("keep-alive")
                    || token.eq_ignore_ascii_case("close")
                    || (keep_upgrade && token.eq_ignore_ascii_case("upgrade"))
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(&name);
        }
        headers.remove(header::CONNECTION);
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    if present & KEEP_ALIVE_BIT != 0 {
        headers.remove(KEEP_ALIVE);
    }
    if present & PROXY_BIT != 0 {
        headers.remove(PROXY_CONNECTION);
        headers.remove(header::PROXY_AUTHENTICATE);
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    if present & TRANSFER_ENCODING_BIT != 0 {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if present & UPGRADE_BIT != 0 && !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
    // `TE: trailers` is the one TE value that may pass (gRPC needs it).
    if present & TE_BIT != 0 {
        if let Some(te) = headers.get(header::TE) {
            if !te.as_bytes().eq_ignore_ascii_case(b"trailers") {
                headers.remove(header::TE);
            }
        }
    }
}

/// `Connection`, in [`hop_bit`]'s answer.
pub const CONNECTION_BIT: u8 = 1;
/// `Keep-Alive`.
pub const KEEP_ALIVE_BIT: u8 = 2;
/// `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`.
pub const PROXY_BIT: u8 = 4;
/// `Transfer-Encoding`.
pub const TRANSFER_ENCODING_BIT: u8 = 8;
/// `Upgrade`.
pub const UPGRADE_BIT: u8 = 16;
/// `TE`.
pub const TE_BIT: u8 = 32;

/// Which hop-by-hop header `name` is (0: none).
pub fn hop_bit(name: &HeaderName) -> u8 {
    if *name == header::CONNECTION {
        CONNECTION_BIT
    } else if *name == header::TRANSFER_ENCODING {
        TRANSFER_ENCODING_BIT
    } else if *name == header::UPGRADE {
        UPGRADE_BIT
    } else if *name == header::TE {
        TE_BIT
    } else if *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == PROXY_CONNECTION
    {
        PROXY_BIT
    } else if *name == KEEP_ALIVE {
        KEEP_ALIVE_BIT
    } else {
        0
    }
}

/// A latency in milliseconds as a header value, without allocating for the
/// common small values.
pub fn millis_value(ms: u128) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(ms as usize) {
        Some(s) if ms < 10 => HeaderValue::from_static(s),
        _ => HeaderValue::from(ms as u64),
    }
}

/// Whether a request asks for a protocol upgrade (`Connection: upgrade` +
/// `Upgrade: x`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    // Only WebSocket is tunnelled (as Kong): an `Upgrade: h2c` or other
    // protocol would hand the client a raw connection to the backend that
    // bypasses routing and plugins for every later request on it.
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_are_formatted_on_the_stack() {
        assert_eq!(super::Decimal::new(0).as_bytes(), b"0");
        assert_eq!(super::Decimal::new(1234).as_bytes(), b"1234");
        assert_eq!(
            super::Decimal::new(u64::MAX).as_bytes(),
            u64::MAX.to_string().as_bytes()
        );
    }

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_listed_ones_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-normal", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-normal"));
    }

    #[test]
    fn te_trailers_survives() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut h, false);
        assert!(h.contains_key(header::TE));
    }

    #[test]
    fn upgrade_kept_when_tunnelling() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }
}

/// The decimal digits of a number, formatted on the stack (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    /// Formats `n`.
    pub fn new(mut n: u64) -> Self {
        let mut d = Decimal {
            buf: [0; 20],
            start: 20,
        };
        loop {
            d.start -= 1;
            d.buf[d.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return d;
            }
        }
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Header maps kept for reuse by this worker thread: building a request's
/// and a response's map would otherwise cost four allocations per request.
mod recycle {
    use http::HeaderMap;
    use std::cell::RefCell;

    /// Most maps kept per thread.
    const KEEP: usize = 64;
    /// Maps that grew beyond this many entries are not kept.
    const LARGEST: usize = 64;

    thread_local! {
        static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty map with room for `n` entries.
    pub fn take(n: usize) -> HeaderMap {
        let reused = MAPS.with(|m| m.borrow_mut().pop());
        match reused {
            Some(mut map) => {
                map.reserve(n);
                map
            }
            None => HeaderMap::with_capacity(n),
        }
    }

    /// Gives a map back once its message is done with.
    pub fn give(mut map: HeaderMap) {
        if map.capacity() > LARGEST {
            return;
        }
        map.clear();
        MAPS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() < KEEP {
                m.push(map);
            }
        });
    }
}

pub use recycle::{give as recycle_map, take as reuse_map};

/// What a header name means to the proxy when a head is passed on without
/// a header map (see [`raw_class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawClass {
    /// Passed on as it is.
    Other,
    /// `Date`: passed on, and none is added.
    Date,
    /// `Content-Length`: replaced by the proxy's own framing.
    ContentLength,
    /// `Connection`: read for keep-alive, not passed on.
    Connection,
    /// `Transfer-Encoding`: read for framing, not passed on.
    TransferEncoding,
    /// Another hop-by-hop header: not passed on.
    Hop,
    /// A header the proxy sets itself (`X-Request-Id`, latencies): replaced.
    Edge,
}

/// Classifies a header name given as bytes (case-insensitive), without
/// building a `HeaderName`. Length and first letter pick the one candidate
/// to compare, so most names are told apart without comparing bytes.
pub fn raw_class(name: &[u8]) -> RawClass {
    let Some(first) = name.first().map(|b| b | 0x20) else {
        return RawClass::Other;
    };
    let (candidate, class) = match (name.len(), first) {
        (2, b't') => ("te", RawClass::Hop),
        (4, b'd') => ("date", RawClass::Date),
        (7, b'u') => ("upgrade", RawClass::Hop),
        (10, b'c') => ("connection", RawClass::Connection),
        (10, b'k') => ("keep-alive", RawClass::Hop),
        (12, b'x') => ("x-request-id", RawClass::Edge),
        (14, b'c') => ("content-length", RawClass::ContentLength),
        (16, b'p') => ("proxy-connection", RawClass::Hop),
        (17, b't') => ("transfer-encoding", RawClass::TransferEncoding),
        (18, b'p') => ("proxy-authenticate", RawClass::Hop),
        (19, b'p') => ("proxy-authorization", RawClass::Hop),
        (20, b'x') => ("x-kong-proxy-latency", RawClass::Edge),
        (23, b'x') => ("x-kong-upstream-latency", RawClass::Edge),
        _ => return RawClass::Other,
    };
    // `| 0x20` lower-cases letters and leaves every other token character
    // unable to match a lower-case letter or `-` (names are tokens).
    if name
        .iter()
        .zip(candidate.as_bytes())
        .all(|(a, c)| a | 0x20 == *c)
    {
        class
    } else {
        RawClass::Other
    }
}
