//! Request ids: honour a sane incoming `X-Request-Id`, else make a new one
//! (32 hex characters, as Kong's). Cheap: a thread-local generator, no lock.

use http::HeaderValue;
use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    (t ^ addr.rotate_left(32) ^ std::process::id() as u64) | 1
}

fn next() -> u64 {
    STATE.with(|s| {
        // splitmix64
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A fresh request id.
pub fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let (a, b) = (next(), next());
    for i in 0..16 {
        buf[i] = HEX[((a >> (60 - i * 4)) & 0xf) as usize];
        buf[16 + i] = HEX[((b >> (60 - i * 4)) & 0xf) as usize];
    }
    // Only ASCII hex digits were written: always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The incoming id if it is acceptable (1–200 visible ASCII characters), else a new one.
pub fn from_incoming(v: Option<&HeaderValue>) -> HeaderValue {
    match v {
        Some(v)
            if !v.is_empty()
                && v.len() <= 200
                && v.as_bytes().iter().all(|b| (0x21..0x7f).contains(b)) =>
        {
            v.clone()
        }
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 32);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn incoming_id_is_honoured_when_sane() {
        let v = HeaderValue::from_static("abc-123");
        assert_eq!(from_incoming(Some(&v)), v);
        let bad = HeaderValue::from_static("has space");
        assert_ne!(from_incoming(Some(&bad)), bad);
    }
}
