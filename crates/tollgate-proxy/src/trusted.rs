//! `trusted_ips`: the client addresses whose `X-Forwarded-*` headers are believed.

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
