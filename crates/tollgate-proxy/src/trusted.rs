//! `trusted_ips`: the client addresses whose `X-Forwarded-*` headers are
//! believed, and the real client address behind them (`real_ip_header`,
//! `real_ip_recursive`, as nginx's realip module and Kong).

use std::net::IpAddr;

/// A set of CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct TrustedIps {
    nets: Vec<(IpAddr, u8)>,
}

/// A `trusted_ips` entry that is not an IP or CIDR.
#[derive(Debug, thiserror::Error)]
#[error("invalid IP or CIDR {0:?}")]
pub struct BadCidr(pub String);

impl TrustedIps {
    /// Parses a list of IPs / CIDRs (`0.0.0.0/0,::/0` trusts everyone, as Kong).
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, BadCidr> {
        let mut nets = Vec::new();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (ip, len) = match item.split_once('/') {
                Some((ip, len)) => (ip, Some(len)),
                None => (item, None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| BadCidr(item.to_owned()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| BadCidr(item.to_owned()))?,
                None => max,
            };
            nets.push((ip, len));
        }
        Ok(TrustedIps { nets })
    }

    /// Whether `ip` is trusted.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            _ => false,
        })
    }

    /// Whether no address is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// How the real client address is found behind a trusted proxy.
#[derive(Debug, Clone)]
pub struct RealIp {
    /// The header naming it (`X-Real-IP` by default, or `X-Forwarded-For`).
    pub header: http::HeaderName,
    /// With a list header: skip trusted addresses from the right instead of
    /// taking the last one.
    pub recursive: bool,
}

impl Default for RealIp {
    fn default() -> Self {
        RealIp {
            header: http::HeaderName::from_static("x-real-ip"),
            recursive: false,
        }
    }
}

impl RealIp {
    /// The client address a trusted peer forwarded in `headers` (`None`
    /// when there is none or it is not an address): the last address of
    /// the header's values or, when `recursive`, the right-most one that is
    /// not itself trusted (the left-most when all are).
    pub fn resolve(&self, headers: &http::HeaderMap, trusted: &TrustedIps) -> Option<IpAddr> {
        let mut found = None;
        let values = headers.get_all(&self.header).iter().rev();
        'values: for value in values {
            let text = value.to_str().ok()?;
            for item in text.rsplit(',') {
                let ip = parse_ip(item.trim())?;
                found = Some(ip);
                if !self.recursive || !trusted.contains(ip) {
                    break 'values;
                }
            }
        }
        found
    }
}

/// An address as proxies write it: `1.2.3.4`, `::1`, `[::1]`, `1.2.3.4:5678`, `[::1]:5678`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let full = (len / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = len % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_ip_is_the_last_forwarded_address_or_the_first_untrusted_one() {
        let trusted = TrustedIps::parse(["10.0.0.0/8"]).unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.7".parse().unwrap());
        h.append(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9".parse().unwrap(),
        );
        h.append("x-forwarded-for", "10.1.1.1".parse().unwrap());
        let real = RealIp::default();
        assert_eq!(real.resolve(&h, &trusted), "203.0.113.7".parse().ok());
        let xff = |recursive| RealIp {
            header: http::HeaderName::from_static("x-forwarded-for"),
            recursive,
        };
        assert_eq!(xff(false).resolve(&h, &trusted), "10.1.1.1".parse().ok());
        assert_eq!(xff(true).resolve(&h, &trusted), "203.0.113.9".parse().ok());
        h.insert("x-real-ip", "not an address".parse().unwrap());
        assert_eq!(real.resolve(&h, &trusted), None);
        h.insert("x-real-ip", "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(real.resolve(&h, &trusted), "2001:db8::1".parse().ok());
    }

    #[test]
    fn cidr_membership() {
        let t = TrustedIps::parse(["10.0.0.0/8", "127.0.0.1", "::1"]).unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
    }

    #[test]
    fn bad_cidr_is_refused() {
        assert!(TrustedIps::parse(["10.0.0.0/33"]).is_err());
        assert!(TrustedIps::parse(["nope"]).is_err());
    }
}
