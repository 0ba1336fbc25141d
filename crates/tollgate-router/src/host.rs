//! Route host patterns: `a.com`, `*.a.com`, `a.*`, each optionally `:port`.
//!
//! Hosts are compared ASCII case-insensitively (DNS names are
//! case-insensitive; Kong compares them byte for byte, so `A.com` would not
//! match a route for `a.com` there). Patterns are lowercased when compiled and
//! the router lowercases the request host once per lookup.
//!
//! - `a.com`: the request host equals `a.com`;
//! - `*.a.com`: the request host ends with `.a.com` (so deeper subdomains
//!   such as `x.y.a.com` match too, but `a.com` itself does not);
//! - `a.*`: the request host starts with `a.`;
//! - `…:8000`: additionally, the request arrived on port 8000. A suffix after
//!   the first `:` that is not a port number is kept as part of the host, as
//!   Kong does.

/// How the host part of a pattern is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// The whole host (lowercase).
    Exact(Box<str>),
    /// `*.a.com`: the part after `*` (lowercase, normally starting with `.`).
    Suffix(Box<str>),
    /// `a.*`: the part before `*` (lowercase, normally ending with `.`).
    Prefix(Box<str>),
}

/// A compiled host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    /// How the host is compared.
    pub(crate) kind: HostKind,
    /// Required listener port, from `host:port`.
    pub(crate) port: Option<u16>,
}

impl HostPattern {
    /// Parses a route host as configured.
    pub(crate) fn parse(raw: &str) -> HostPattern {
        let (host, port) = match raw.split_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(port) => (h, Some(port)),
                Err(_) => (raw, None),
            },
            None => (raw, None),
        };
        let host = host.to_ascii_lowercase();
        let kind = if let Some(rest) = host.strip_prefix('*') {
            HostKind::Suffix(rest.into())
        } else if let Some(rest) = host.strip_suffix('*') {
            HostKind::Prefix(rest.into())
        } else {
            HostKind::Exact(host.into())
        };
        HostPattern { kind, port }
    }

    /// Whether a request host (already lowercased, without port) arriving on
    /// `port` matches.
    pub(crate) fn matches(&self, host_lc: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.kind {
            HostKind::Exact(h) => host_lc == &**h,
            HostKind::Suffix(s) => host_lc.ends_with(&**s),
            HostKind::Prefix(p) => host_lc.starts_with(&**p),
        }
    }
}

/// Whether a configured host contains a wildcard (for the priority's
/// "plain hosts only" bit, Kong looks for any `*` in the configured host).
pub(crate) fn is_wildcard(raw: &str) -> bool {
    raw.contains('*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, host: &str, port: u16) -> bool {
        HostPattern::parse(pattern).matches(&host.to_ascii_lowercase(), port)
    }

    #[test]
    fn exact_host_matches_only_itself() {
        assert!(m("a.com", "a.com", 80));
        assert!(!m("a.com", "b.a.com", 80));
        assert!(!m("a.com", "a.com.evil", 80));
        assert!(!m("a.com", "a.co", 80));
    }

    #[test]
    fn host_comparison_ignores_ascii_case() {
        assert!(m("A.Com", "a.com", 80));
        assert!(m("a.com", "A.COM", 80));
        assert!(m("*.Example.org", "API.example.ORG", 80));
    }

    #[test]
    fn leading_wildcard_matches_any_depth_of_subdomain() {
        assert!(m("*.a.com", "x.a.com", 80));
        assert!(m("*.a.com", "x.y.a.com", 80));
        assert!(!m("*.a.com", "a.com", 80));
        assert!(!m("*.a.com", "xa.com", 80));
    }

    #[test]
    fn trailing_wildcard_matches_any_tld() {
        assert!(m("a.*", "a.com", 80));
        assert!(m("a.*", "a.co.uk", 80));
        assert!(!m("a.*", "ba.com", 80));
        assert!(!m("a.*", "a", 80));
    }

    #[test]
    fn host_with_port_also_requires_the_port() {
        assert!(m("a.com:8000", "a.com", 8000));
        assert!(!m("a.com:8000", "a.com", 80));
        assert!(m("*.a.com:8443", "x.a.com", 8443));
        assert!(!m("*.a.com:8443", "x.a.com", 8000));
        assert!(m("a.*:81", "a.org", 81));
    }

    #[test]
    fn non_numeric_port_suffix_stays_part_of_the_host() {
        let p = HostPattern::parse("a.com:http");
        assert_eq!(p.port, None);
        assert_eq!(p.kind, HostKind::Exact("a.com:http".into()));
        let p = HostPattern::parse("a.com:99999");
        assert_eq!(p.port, None);
    }

    #[test]
    fn wildcard_detection_looks_for_any_star() {
        assert!(is_wildcard("*.a.com"));
        assert!(is_wildcard("a.*:80"));
        assert!(!is_wildcard("a.com:80"));
    }
}
