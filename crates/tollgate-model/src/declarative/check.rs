//! Validators for single values (names, hosts, paths, regexes, tags), each
//! returning a message without the path; callers attach the path.

use crate::Protocol;
use std::net::{IpAddr, Ipv6Addr};

/// A protocol name of a service or route.
pub(crate) fn protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "http" => Ok(Protocol::Http),
        "https" => Ok(Protocol::Https),
        "grpc" => Ok(Protocol::Grpc),
        "grpcs" => Ok(Protocol::Grpcs),
        "tcp" | "tls" | "udp" | "tls_passthrough" | "ws" | "wss" => {
            Err(format!("protocol '{s}' is not supported yet"))
        }
        _ => Err(format!(
            "invalid protocol {s:?}: expected one of: http, https, grpc, grpcs"
        )),
    }
}

/// Kong's `utf8_name`: non-empty; ASCII characters limited to letters,
/// digits and `.`, `-`, `_`, `~`; other UTF-8 characters allowed.
pub(crate) fn name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    match s
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || ".-_~".contains(*c)))
    {
        Some(c) => Err(format!(
            "invalid name {s:?}: character {c:?} not allowed (the only accepted ascii characters are alphanumerics or ., -, _, and ~)"
        )),
        None => Ok(()),
    }
}

/// A tag: non-empty, printable, without `,` or `/`.
pub(crate) fn tag(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ',' || c == '/') {
        return Err(format!(
            "invalid tag {s:?}: expected printable characters except ',' and '/'"
        ));
    }
    Ok(())
}

/// A DNS host name (not an IP): labels of letters, digits, `-` and `_`.
pub(crate) fn hostname(s: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid hostname {s:?}"));
    if s.is_empty() || s.len() > 253 {
        return bad();
    }
    for label in s.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad();
        }
    }
    Ok(())
}

/// A host without a port: IPv4, IPv6 (bare or in brackets) or a host name.
/// Returns the host as stored (IPv6 without brackets).
pub(crate) fn host(s: &str) -> Result<String, String> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(inner.to_owned()),
            Err(_) => Err(format!("invalid IPv6 address {s:?}")),
        };
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    if s.contains(':') {
        return Err(format!("invalid host {s:?}: must not have a port"));
    }
    hostname(s).map(|()| s.to_owned())
}

/// Parses a port number (0–65535).
pub(crate) fn port(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port {s:?}"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("invalid port {s:?}: should be between 0 and 65535"))
}

/// `host[:port]` where host may be `[v6]`, or a bare IPv6 address without a
/// port. Returns the host (IPv6 without brackets) and the port if given.
pub(crate) fn host_and_port(s: &str) -> Result<(String, Option<u16>), String> {
    if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return Err(format!("invalid address {s:?}: missing ']'"));
        };
        let host = &s[1..end];
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address in {s:?}"))?;
        let rest = &s[end + 1..];
        if rest.is_empty() {
            return Ok((host.to_owned(), None));
        }
        let Some(p) = rest.strip_prefix(':') else {
            return Err(format!("invalid address {s:?}"));
        };
        return Ok((host.to_owned(), Some(port(p)?)));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_owned(), None));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((host(h)?, Some(port(p)?))),
        None => Ok((host(s)?, None)),
    }
}

/// A route host: `example.com`, `*.example.com`, `example.*`, an IP, each
/// with an optional `:port`. At most one `*`, as a whole leftmost or
/// rightmost label.
pub(crate) fn route_host(s: &str) -> Result<(), String> {
    if s.starts_with('[') {
        return host_and_port(s).map(|_| ());
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    let name = match s.rsplit_once(':') {
        Some((h, p)) => {
            port(p)?;
            h
        }
        None => s,
    };
    let stars = name.matches('*').count();
    if stars == 0 {
        return host(name).map(|_| ());
    }
    let wildcard_err = || {
        Err(format!(
            "invalid wildcard host {s:?}: only one '*' is allowed, as the whole leftmost or rightmost label (e.g. '*.example.com' or 'example.*')"
        ))
    };
    if stars > 1 {
        return wildcard_err();
    }
    let rest = if let Some(rest) = name.strip_prefix("*.") {
        rest
    } else if let Some(rest) = name.strip_suffix(".*") {
        rest
    } else {
        return wildcard_err();
    };
    hostname(rest).map_err(|_| format!("invalid wildcard host {s:?}"))
}

/// An SNI name: a host name, optionally with `*` as its whole leftmost or
/// rightmost label (`*.example.com`, `example.*`); no port, no IP address.
pub(crate) fn sni(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() {
        return Err(format!("invalid sni {s:?}: must not be an IP address"));
    }
    if s.contains(':') {
        return Err(format!("invalid sni {s:?}: must not have a port"));
    }
    let stars = s.matches('*').count();
    if stars == 0 {
        return hostname(s).map_err(|_| format!("invalid sni {s:?}"));
    }
    let rest = match (s.strip_prefix("*."), s.strip_suffix(".*")) {
        _ if stars > 1 => None,
        (Some(rest), _) | (None, Some(rest)) => Some(rest),
        _ => None,
    };
    match rest {
        Some(rest) if hostname(rest).is_ok() => Ok(()),
        _ => Err(format!(
            "invalid wildcard sni {s:?}: only one '*' is allowed, as the whole leftmost or rightmost label (e.g. '*.example.com' or 'example.*')"
        )),
    }
}

/// Characters allowed in a path besides letters, digits and `%` escapes
/// (RFC 3986 unreserved, sub-delims, `:`, `@`, `/`).
const PATH_CHARS: &str = "-._~!$&'()*+,;=:@/";

/// A service path or route prefix: starts with `/`, no empty segment
/// (`//`), only URL path characters, valid `%` escapes.
pub(crate) fn path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("invalid path {s:?}: should start with: /"));
    }
    if s.contains("//") {
        return Err(format!("invalid path {s:?}: must not have empty segments"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(format!("invalid path {s:?}: invalid url-encoded value"));
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || PATH_CHARS.as_bytes().contains(&b) || b >= 0x80) {
            return Err(format!(
                "invalid path {s:?}: character {:?} not allowed",
                char::from(b)
            ));
        }
        i += 1;
    }
    Ok(())
}

/// A route prefix path: a [`path`] that is also normalised (no `.` or `..`
/// segment), as Kong requires.
pub(crate) fn route_prefix(s: &str) -> Result<(), String> {
    path(s)?;
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!(
            "invalid path {s:?}: non-normalized path ('.' and '..' segments are not allowed)"
        ));
    }
    Ok(())
}

/// A regex in the Rust `regex` syntax the router compiles it with. Only
/// parsed here (compiling is the router's job and costs far more).
pub(crate) fn regex(re: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(re)
        .map(|_| ())
        .map_err(|e| format!("invalid regex {re:?}: {}", one_line(&e.to_string())))
}

/// The `error: ...` line of a multi-line regex error, or the text joined.
fn one_line(msg: &str) -> String {
    msg.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| msg.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// An HTTP header name (RFC 9110 token).
pub(crate) fn header_name(s: &str) -> Result<(), String> {
    const TCHAR: &str = "!#$%&'*+-.^_`|~";
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.as_bytes().contains(&b))
    {
        return Err(format!("invalid header name {s:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_utf8_and_reject_spaces() {
        assert!(name("orders-v1.2_x~").is_ok());
        assert!(name("café").is_ok());
        assert!(name("a b").is_err());
        assert!(name("").is_err());
    }

    #[test]
    fn hosts_accept_ips_and_names_but_not_ports() {
        assert_eq!(host("example.com").unwrap(), "example.com");
        assert_eq!(host("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(host("[::1]").unwrap(), "::1");
        assert_eq!(host("::1").unwrap(), "::1");
        assert!(host("example.com:80").is_err());
        assert!(host("exa mple").is_err());
        assert!(host("a..b").is_err());
    }

    #[test]
    fn host_and_port_handles_ipv6_brackets() {
        assert_eq!(host_and_port("[::1]:80").unwrap(), ("::1".into(), Some(80)));
        assert_eq!(host_and_port("[::1]").unwrap(), ("::1".into(), None));
        assert_eq!(host_and_port("::1").unwrap(), ("::1".into(), None));
        assert_eq!(
            host_and_port("a.com:8080").unwrap(),
            ("a.com".into(), Some(8080))
        );
        assert_eq!(host_and_port("a.com").unwrap(), ("a.com".into(), None));
        assert!(host_and_port("a.com:99999").is_err());
        assert!(host_and_port("[::1]80").is_err());
    }

    #[test]
    fn route_host_wildcards_must_be_a_whole_outer_label() {
        assert!(route_host("*.example.com").is_ok());
        assert!(route_host("example.*").is_ok());
        assert!(route_host("*.example.com:8000").is_ok());
        assert!(route_host("example.com:8000").is_ok());
        assert!(route_host("[::1]:8000").is_ok());
        assert!(route_host("a.*.com").is_err());
        assert!(route_host("*.a.*").is_err());
        assert!(route_host("*example.com").is_err());
        assert!(route_host("*").is_err());
    }

    #[test]
    fn sni_wildcards_must_be_a_whole_outer_label() {
        assert!(sni("example.com").is_ok());
        assert!(sni("*.example.com").is_ok());
        assert!(sni("example.*").is_ok());
        assert!(sni("a.*.com").is_err());
        assert!(sni("*a.com").is_err());
        assert!(sni("*.a.*").is_err());
        assert!(sni("a.com:443").is_err());
        assert!(sni("10.0.0.1").is_err());
    }

    #[test]
    fn paths_reject_empty_segments_and_bad_escapes() {
        assert!(path("/").is_ok());
        assert!(path("/a/b%20c").is_ok());
        assert!(path("a").is_err());
        assert!(path("/a//b").is_err());
        assert!(path("/a%2").is_err());
        assert!(path("/a b").is_err());
        assert!(path("/a?b").is_err());
        assert!(route_prefix("/a/../b").is_err());
        assert!(route_prefix("/a/.b").is_ok());
    }

    #[test]
    fn regex_errors_fit_on_one_line() {
        let e = regex("/a(b").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("unclosed group"), "{e}");
        assert!(regex(r"/users/(?<id>\d+)$").is_ok());
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(header_name("x-foo").is_ok());
        assert!(header_name("x foo").is_err());
    }
}
