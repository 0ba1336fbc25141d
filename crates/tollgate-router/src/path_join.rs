//! The upstream path: Kong's `path_handling = "v0"` rules for joining the
//! service path and the (possibly stripped) request path.
//!
//! Terms, as in Kong:
//! - `base`: the service path, `/` when the service has none;
//! - `post`: with `strip_path` on and a path matched, what follows the matched
//!   part of the request path (for regex routes, the whole regex match is
//!   stripped); otherwise the request path without its leading `/`. A leading
//!   `./` or `../` is dropped from it, and `.`/`..` become empty.
//!
//! | base ends with `/` | strip_path | result |
//! |---|---|---|
//! | yes | on  | `post` empty: `/` if base is `/`, else base, minus its trailing `/` unless the request path ends in `/`; otherwise base + post without a doubled `/` |
//! | yes | off | base + request path minus its leading `/` |
//! | no  | on  | `post` empty: base, plus `/` if the request path (longer than `/`) ends in `/`; otherwise base + `/` + post without a doubled `/` |
//! | no  | off | base + request path (just base when the request path is `/`) |
//!
//! Kong's `traditional_compatible` router applies these v0 rules whatever a
//! route's `path_handling` says (only the old `traditional` router knew
//! `v1`), so there is no v1 variant here.
//!
//! A matched length of 0 (a route without paths, or a regex that matched the
//! empty string) counts as "no path matched", as in Kong, where an empty match
//! is reported as no match.

/// Builds the upstream path from the service path, the normalised request
/// path and the matched length (Kong's v0 path handling table).
///
/// - `service_path`: the service's path; `None` (or an empty string) means `/`.
/// - `req_path`: the normalised request path, without the query (the proxy
///   appends the query string itself).
/// - `matched_len`: [`Match::matched_len`](crate::Match::matched_len); only
///   used when `strip_path` is on.
pub fn upstream_path(
    service_path: Option<&str>,
    req_path: &str,
    matched_len: usize,
    strip_path: bool,
) -> String {
    let base = match service_path {
        Some(p) if !p.is_empty() => p,
        _ => "/",
    };

    if !strip_path {
        return if base.ends_with('/') {
            // Append the request path minus its first character (its `/`).
            format!("{base}{}", req_path.get(1..).unwrap_or(""))
        } else if req_path == "/" {
            base.to_owned()
        } else {
            format!("{base}{req_path}")
        };
    }

    let post = postfix(req_path, matched_len);
    if let Some(trimmed) = base.strip_suffix('/') {
        if post.is_empty() {
            if base == "/" || req_path.ends_with('/') {
                base.to_owned()
            } else {
                trimmed.to_owned()
            }
        } else if post.starts_with('/') {
            format!("{trimmed}{post}")
        } else {
            format!("{base}{post}")
        }
    } else if post.is_empty() {
        if req_path.len() > 1 && req_path.ends_with('/') {
            format!("{base}/")
        } else {
            base.to_owned()
        }
    } else if post.starts_with('/') {
        format!("{base}{post}")
    } else {
        format!("{base}/{post}")
    }
}

/// The part of the request path left after stripping, sanitised as Kong does.
fn postfix(req_path: &str, matched_len: usize) -> &str {
    let raw = if matched_len > 0 {
        req_path.get(matched_len..).unwrap_or("")
    } else {
        req_path.get(1..).unwrap_or("")
    };
    match raw {
        "." | ".." => "",
        _ => raw
            .strip_prefix("./")
            .or_else(|| raw.strip_prefix("../"))
            .unwrap_or(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Route prefix `route` matched `req` (strip on): the matched length is the prefix length.
    fn strip(service: &str, route: &str, req: &str) -> String {
        assert!(
            req.starts_with(route),
            "test bug: {req} does not start with {route}"
        );
        upstream_path(Some(service), req, route.len(), true)
    }

    fn keep(service: &str, req: &str) -> String {
        upstream_path(Some(service), req, 0, false)
    }

    // --- row 1: base ends with `/`, strip_path on ---

    #[test]
    fn slash_base_strip_empty_post_gives_base_without_trailing_slash() {
        assert_eq!(strip("/srv/", "/rou", "/rou"), "/srv");
        assert_eq!(strip("/service/", "/route", "/route"), "/service");
        assert_eq!(
            upstream_path(Some("/service/"), "/route/x", 8, true),
            "/service"
        );
    }

    #[test]
    fn slash_base_strip_post_is_slash_keeps_single_slash() {
        assert_eq!(strip("/service/", "/route", "/route/"), "/service/");
    }

    #[test]
    fn root_base_strip_empty_post_gives_root() {
        assert_eq!(strip("/", "/route", "/route"), "/");
        assert_eq!(strip("/", "/route/", "/route/"), "/");
        assert_eq!(strip("/", "/", "/"), "/");
        assert_eq!(upstream_path(None, "/route", 6, true), "/");
    }

    #[test]
    fn slash_base_strip_appends_post_without_doubling_slash() {
        assert_eq!(strip("/", "/route", "/route/"), "/");
        assert_eq!(strip("/", "/route", "/routereq"), "/req");
        assert_eq!(strip("/", "/route/", "/route/req"), "/req");
        assert_eq!(strip("/", "/", "/route/req"), "/route/req");
        assert_eq!(strip("/service/", "/route", "/routereq"), "/service/req");
        assert_eq!(strip("/service/", "/route/", "/route/req"), "/service/req");
        assert_eq!(strip("/service/", "/route", "/route/a/b"), "/service/a/b");
    }

    #[test]
    fn slash_base_strip_request_ending_in_slash_keeps_base_slash() {
        assert_eq!(strip("/service/", "/route/", "/route/"), "/service/");
        assert_eq!(strip("/srv/", "/a/b/", "/a/b/"), "/srv/");
        // Nothing matched (host-only route): post is the path minus `/`.
        assert_eq!(upstream_path(Some("/service/"), "/", 0, true), "/service/");
        assert_eq!(
            upstream_path(Some("/service/"), "/route", 0, true),
            "/service/route"
        );
        assert_eq!(
            upstream_path(Some("/service/"), "/route/", 0, true),
            "/service/route/"
        );
    }

    // --- row 2: base ends with `/`, strip_path off ---

    #[test]
    fn slash_base_no_strip_appends_request_minus_leading_slash() {
        assert_eq!(keep("/", "/"), "/");
        assert_eq!(keep("/", "/route/req"), "/route/req");
        assert_eq!(keep("/srv/", "/rou"), "/srv/rou");
        assert_eq!(keep("/service/", "/"), "/service/");
        assert_eq!(keep("/service/", "/route/"), "/service/route/");
        assert_eq!(keep("/service/", "/routereq"), "/service/routereq");
    }

    #[test]
    fn no_strip_ignores_matched_len() {
        assert_eq!(
            upstream_path(Some("/service/"), "/route/x", 6, false),
            "/service/route/x"
        );
        assert_eq!(
            upstream_path(Some("/service"), "/route/x", 6, false),
            "/service/route/x"
        );
    }

    // --- row 3: base without trailing `/`, strip_path on ---

    #[test]
    fn plain_base_strip_empty_post_gives_base() {
        assert_eq!(strip("/service", "/route", "/route"), "/service");
        assert_eq!(strip("/service", "/", "/"), "/service");
        assert_eq!(upstream_path(Some("/service"), "/", 0, true), "/service");
    }

    #[test]
    fn plain_base_strip_empty_post_and_request_ending_in_slash_adds_slash() {
        assert_eq!(strip("/service", "/route/", "/route/"), "/service/");
    }

    #[test]
    fn plain_base_strip_joins_with_single_slash() {
        // The example from Kong's docs.
        assert_eq!(strip("/v1", "/api", "/api/users"), "/v1/users");
        assert_eq!(strip("/service", "/route", "/route/"), "/service/");
        assert_eq!(strip("/srv", "/rou", "/roureq"), "/srv/req");
        assert_eq!(strip("/service", "/route/", "/route/req"), "/service/req");
        assert_eq!(strip("/service", "/", "/route"), "/service/route");
        assert_eq!(strip("/service", "/", "/route/"), "/service/route/");
        assert_eq!(
            upstream_path(Some("/service"), "/route/req", 0, true),
            "/service/route/req"
        );
    }

    // --- row 4: base without trailing `/`, strip_path off ---

    #[test]
    fn plain_base_no_strip_prepends_base() {
        assert_eq!(keep("/srv", "/roureq"), "/srv/roureq");
        assert_eq!(keep("/service", "/route"), "/service/route");
        assert_eq!(keep("/service", "/route/"), "/service/route/");
        assert_eq!(keep("/v1", "/api/users"), "/v1/api/users");
    }

    #[test]
    fn plain_base_no_strip_root_request_gives_base() {
        assert_eq!(keep("/service", "/"), "/service");
    }

    // --- defaults and sanitising ---

    #[test]
    fn missing_or_empty_service_path_means_root() {
        assert_eq!(upstream_path(None, "/api/users", 4, true), "/users");
        assert_eq!(upstream_path(None, "/api/users", 0, false), "/api/users");
        assert_eq!(upstream_path(Some(""), "/api/users", 4, true), "/users");
    }

    #[test]
    fn leading_dot_segments_of_post_are_dropped() {
        assert_eq!(strip("/v1", "/api", "/api."), "/v1");
        assert_eq!(strip("/v1", "/api/", "/api/.."), "/v1");
        assert_eq!(strip("/v1", "/api", "/api../x"), "/v1/x");
        assert_eq!(strip("/v1", "/api", "/api./x"), "/v1/x");
    }

    #[test]
    fn out_of_range_matched_len_gives_empty_post() {
        assert_eq!(upstream_path(Some("/v1"), "/api", 99, true), "/v1");
        assert_eq!(upstream_path(Some("/v1"), "/é", 2, true), "/v1");
    }
}
