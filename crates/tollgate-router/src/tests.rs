//! Router-level tests: matching criteria, priority ordering, scale.

use crate::{Match, RequestInfo, Router, UriCaptures};
use std::collections::BTreeMap;
use tollgate_model::{PathHandling, Protocol, Route};
use uuid::Uuid;

/// A route with Kong's defaults and nothing to match on; `id` doubles as the uuid.
fn route(id: u128) -> Route {
    Route {
        id: Uuid::from_u128(id),
        name: None,
        protocols: vec![Protocol::Http, Protocol::Https],
        methods: Vec::new(),
        hosts: Vec::new(),
        paths: Vec::new(),
        headers: BTreeMap::new(),
        strip_path: true,
        preserve_host: false,
        regex_priority: 0,
        path_handling: PathHandling::V0,
        https_redirect_status_code: 426,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        request_buffering: true,
        response_buffering: true,
        service: None,
        tags: Vec::new(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn with_paths(id: u128, paths: &[&str]) -> Route {
    Route {
        paths: strings(paths),
        ..route(id)
    }
}

fn with_hosts(id: u128, hosts: &[&str]) -> Route {
    Route {
        hosts: strings(hosts),
        ..route(id)
    }
}

fn with_headers(mut r: Route, headers: &[(&str, &[&str])]) -> Route {
    for (name, values) in headers {
        r.headers.insert((*name).to_owned(), strings(values));
    }
    r
}

/// A request to match.
struct Req<'a> {
    method: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
    headers: http::HeaderMap,
}

impl<'a> Req<'a> {
    fn new(host: &'a str, path: &'a str) -> Self {
        Req {
            method: "GET",
            host,
            port: 8000,
            path,
            headers: http::HeaderMap::new(),
        }
    }
    fn method(mut self, m: &'a str) -> Self {
        self.method = m;
        self
    }
    fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        self.headers
            .append(name, http::HeaderValue::from_str(value).unwrap());
        self
    }
    fn find(&self, router: &Router) -> Option<Match> {
        router.find(&RequestInfo {
            method: self.method,
            host: self.host,
            port: self.port,
            path: self.path,
            headers: &self.headers,
        })
    }
}

fn router(routes: &[Route]) -> Router {
    Router::new(routes).unwrap()
}

/// Index of the route matched by `req`.
fn hit(router: &Router, req: &Req<'_>) -> Option<usize> {
    req.find(router).map(|m| m.route)
}

// --- hosts ---

#[test]
fn exact_host_matches_ignoring_ascii_case() {
    let r = router(&[with_hosts(1, &["Example.com"])]);
    assert_eq!(hit(&r, &Req::new("example.com", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("EXAMPLE.COM", "/x")), Some(0));
    assert_eq!(hit(&r, &Req::new("www.example.com", "/")), None);
    assert_eq!(hit(&r, &Req::new("example.co", "/")), None);
}

#[test]
fn leading_wildcard_host_matches_subdomains_of_any_depth() {
    let r = router(&[with_hosts(1, &["*.example.com"])]);
    assert_eq!(hit(&r, &Req::new("a.example.com", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("a.b.example.com", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("example.com", "/")), None);
    assert_eq!(hit(&r, &Req::new("aexample.com", "/")), None);
}

#[test]
fn trailing_wildcard_host_matches_any_suffix() {
    let r = router(&[with_hosts(1, &["example.*"])]);
    assert_eq!(hit(&r, &Req::new("example.org", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("example.co.uk", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("www.example.org", "/")), None);
}

#[test]
fn host_with_port_requires_the_listener_port() {
    let r = router(&[
        with_hosts(1, &["a.com:8443"]),
        with_hosts(2, &["*.b.com:9000"]),
    ]);
    assert_eq!(hit(&r, &Req::new("a.com", "/").port(8443)), Some(0));
    assert_eq!(hit(&r, &Req::new("a.com", "/").port(8000)), None);
    assert_eq!(hit(&r, &Req::new("x.b.com", "/").port(9000)), Some(1));
    assert_eq!(hit(&r, &Req::new("x.b.com", "/").port(9001)), None);
}

#[test]
fn any_of_several_hosts_may_match() {
    let r = router(&[with_hosts(1, &["a.com", "*.b.com", "c.*"])]);
    for host in ["a.com", "x.b.com", "c.net"] {
        assert_eq!(hit(&r, &Req::new(host, "/")), Some(0), "{host}");
    }
    assert_eq!(hit(&r, &Req::new("b.com", "/")), None);
}

#[test]
fn wildcard_not_at_a_label_boundary_still_matches_as_suffix() {
    // Kong's validation forbids it, but the router must stay correct anyway.
    let r = router(&[with_hosts(1, &["*ample.com"])]);
    assert_eq!(hit(&r, &Req::new("example.com", "/")), Some(0));
    assert_eq!(hit(&r, &Req::new("example.org", "/")), None);
}

// --- methods ---

#[test]
fn methods_match_exactly_and_case_sensitively() {
    let r = router(&[Route {
        methods: strings(&["GET", "POST"]),
        ..route(1)
    }]);
    assert_eq!(hit(&r, &Req::new("h", "/").method("POST")), Some(0));
    assert_eq!(hit(&r, &Req::new("h", "/").method("GET")), Some(0));
    assert_eq!(hit(&r, &Req::new("h", "/").method("get")), None);
    assert_eq!(hit(&r, &Req::new("h", "/").method("PUT")), None);
}

// --- headers ---

#[test]
fn header_values_compare_case_insensitively() {
    let r = router(&[with_headers(route(1), &[("x-version", &["V1"])])]);
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("x-version", "v1")),
        Some(0)
    );
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("X-Version", "V1")),
        Some(0)
    );
    assert_eq!(hit(&r, &Req::new("h", "/").header("x-version", "v2")), None);
    assert_eq!(hit(&r, &Req::new("h", "/")), None);
}

#[test]
fn any_request_value_may_match_any_configured_value() {
    let r = router(&[with_headers(route(1), &[("x-env", &["prod", "stage"])])]);
    let req = Req::new("h", "/")
        .header("x-env", "dev")
        .header("x-env", "STAGE");
    assert_eq!(hit(&r, &req), Some(0));
}

#[test]
fn every_configured_header_must_match() {
    let r = router(&[with_headers(route(1), &[("x-a", &["1"]), ("x-b", &["2"])])]);
    assert_eq!(
        hit(
            &r,
            &Req::new("h", "/").header("x-a", "1").header("x-b", "2")
        ),
        Some(0)
    );
    assert_eq!(hit(&r, &Req::new("h", "/").header("x-a", "1")), None);
    assert_eq!(
        hit(
            &r,
            &Req::new("h", "/").header("x-a", "1").header("x-b", "3")
        ),
        None
    );
}

#[test]
fn tilde_star_header_value_is_a_case_insensitive_unanchored_regex() {
    let r = router(&[with_headers(route(1), &[("user-agent", &[r"~*curl/\d+"])])]);
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("user-agent", "CURL/8.1")),
        Some(0)
    );
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("user-agent", "x curl/7")),
        Some(0)
    );
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("user-agent", "curl/x")),
        None
    );
}

#[test]
fn underscore_in_configured_header_name_matches_dash() {
    let r = router(&[with_headers(route(1), &[("x_tenant", &["a"])])]);
    assert_eq!(
        hit(&r, &Req::new("h", "/").header("x-tenant", "a")),
        Some(0)
    );
}

// --- paths ---

#[test]
fn prefix_path_is_a_case_sensitive_byte_prefix() {
    let r = router(&[with_paths(1, &["/api"])]);
    let m = Req::new("h", "/api/users").find(&r).unwrap();
    assert_eq!((m.route, m.matched_len, m.uri_captures), (0, 4, None));
    assert_eq!(hit(&r, &Req::new("h", "/apix")), Some(0));
    assert_eq!(hit(&r, &Req::new("h", "/API")), None);
    assert_eq!(hit(&r, &Req::new("h", "/ap")), None);
}

#[test]
fn regex_path_is_anchored_at_the_start_only() {
    let r = router(&[with_paths(1, &[r"~/users/\d+"])]);
    let m = Req::new("h", "/users/42/profile").find(&r).unwrap();
    assert_eq!(m.matched_len, "/users/42".len());
    assert_eq!(hit(&r, &Req::new("h", "/v1/users/42")), None);
}

#[test]
fn regex_alternation_is_anchored_as_a_whole() {
    let r = router(&[with_paths(1, &["~/a|/b"])]);
    assert_eq!(hit(&r, &Req::new("h", "/b/x")), Some(0));
    assert_eq!(hit(&r, &Req::new("h", "/x/b")), None);
}

#[test]
fn regex_captures_are_reported_as_uri_captures() {
    let r = router(&[with_paths(1, &[r"~/users/(?<id>\d+)(/(\w+))?"])]);
    let m = Req::new("h", "/users/42/x").find(&r).unwrap();
    assert_eq!(m.matched_len, 11);
    assert_eq!(
        m.uri_captures,
        Some(UriCaptures {
            positional: vec![
                Some("/users/42/x".into()),
                Some("42".into()),
                Some("/x".into()),
                Some("x".into())
            ],
            named: vec![("id".into(), "42".into())],
        })
    );
    let m = Req::new("h", "/users/7").find(&r).unwrap();
    assert_eq!(
        m.uri_captures.unwrap().positional,
        vec![Some("/users/7".into()), Some("7".into()), None, None]
    );
}

#[test]
fn regex_without_groups_has_no_uri_captures() {
    let r = router(&[with_paths(1, &[r"~/v\d"])]);
    assert_eq!(Req::new("h", "/v2/x").find(&r).unwrap().uri_captures, None);
}

#[test]
fn first_matching_regex_of_a_route_decides_the_matched_length() {
    let r = router(&[with_paths(1, &["~/a", "~/a/b"])]);
    assert_eq!(Req::new("h", "/a/b/c").find(&r).unwrap().matched_len, 2);
}

#[test]
fn route_without_paths_matches_with_zero_length() {
    let r = router(&[with_hosts(1, &["h"])]);
    assert_eq!(Req::new("h", "/any/thing").find(&r).unwrap().matched_len, 0);
}

#[test]
fn no_match_and_empty_router_return_none() {
    let r = router(&[with_paths(1, &["/a"])]);
    assert_eq!(hit(&r, &Req::new("h", "/b")), None);
    let empty = Router::new(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(hit(&empty, &Req::new("h", "/")), None);
    assert_eq!(Router::default().len(), 0);
}

#[test]
fn all_criteria_must_hold_together() {
    let r = router(&[Route {
        methods: strings(&["GET"]),
        hosts: strings(&["a.com"]),
        paths: strings(&["/p"]),
        ..route(1)
    }]);
    assert_eq!(hit(&r, &Req::new("a.com", "/p")), Some(0));
    assert_eq!(hit(&r, &Req::new("a.com", "/p").method("POST")), None);
    assert_eq!(hit(&r, &Req::new("b.com", "/p")), None);
    assert_eq!(hit(&r, &Req::new("a.com", "/q")), None);
}

// --- priority ---

#[test]
fn more_criteria_win_over_a_longer_prefix() {
    let routes = [
        with_paths(1, &["/very/long/prefix"]),
        Route {
            methods: strings(&["GET"]),
            paths: strings(&["/"]),
            ..route(2)
        },
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("h", "/very/long/prefix/x")), Some(1));
    assert_eq!(
        hit(&r, &Req::new("h", "/very/long/prefix/x").method("POST")),
        Some(0)
    );
}

#[test]
fn plain_host_beats_wildcard_host() {
    let routes = [
        Route {
            hosts: strings(&["*.a.com"]),
            paths: strings(&["/long/prefix"]),
            ..route(9)
        },
        Route {
            hosts: strings(&["x.a.com"]),
            paths: strings(&["/"]),
            ..route(1)
        },
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("x.a.com", "/long/prefix")), Some(1));
    assert_eq!(hit(&r, &Req::new("y.a.com", "/long/prefix")), Some(0));
}

#[test]
fn more_headers_win() {
    let routes = [
        with_headers(route(9), &[("x-a", &["1"])]),
        with_headers(route(1), &[("x-a", &["1"]), ("x-b", &["2"])]),
    ];
    let r = router(&routes);
    assert_eq!(
        hit(
            &r,
            &Req::new("h", "/").header("x-a", "1").header("x-b", "2")
        ),
        Some(1)
    );
    assert_eq!(hit(&r, &Req::new("h", "/").header("x-a", "1")), Some(0));
}

#[test]
fn regex_beats_prefix() {
    let routes = [
        with_paths(9, &["/users/123456789"]),
        with_paths(1, &[r"~/users/\d+"]),
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("h", "/users/123456789")), Some(1));
}

#[test]
fn higher_regex_priority_wins() {
    let routes = [
        Route {
            regex_priority: 5,
            ..with_paths(1, &["~/a"])
        },
        Route {
            regex_priority: 10,
            ..with_paths(2, &["~/a/b"])
        },
        Route {
            regex_priority: -1,
            ..with_paths(3, &["~/"])
        },
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("h", "/a/b")), Some(1));
    assert_eq!(hit(&r, &Req::new("h", "/a/c")), Some(0));
    assert_eq!(hit(&r, &Req::new("h", "/z")), Some(2));
}

#[test]
fn longer_prefix_wins() {
    let routes = [
        with_paths(9, &["/"]),
        with_paths(8, &["/a"]),
        with_paths(7, &["/a/b"]),
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("h", "/a/b/c")), Some(2));
    assert_eq!(hit(&r, &Req::new("h", "/a/c")), Some(1));
    assert_eq!(hit(&r, &Req::new("h", "/c")), Some(0));
}

#[test]
fn equal_priority_goes_to_the_higher_uuid() {
    let low = with_paths(1, &["/a"]);
    let high = with_paths(2, &["/b"]); // same length, same priority
    let high_same = with_paths(2, &["/a"]);
    let r = router(&[low.clone(), high_same.clone()]);
    assert_eq!(hit(&r, &Req::new("h", "/a")), Some(1));
    let r = router(&[high_same, low]);
    assert_eq!(hit(&r, &Req::new("h", "/a")), Some(0));
    let r = router(&[high, with_paths(3, &["/b"])]);
    assert_eq!(hit(&r, &Req::new("h", "/b")), Some(1));
}

#[test]
fn route_with_several_paths_competes_per_path_group() {
    // Route 0's "/abc" group (length 4) beats "/ab" (3), but its "/a" group
    // (2) loses to it.
    let routes = [with_paths(1, &["/a", "/abc"]), with_paths(2, &["/ab"])];
    let r = router(&routes);
    let m = Req::new("h", "/abcd").find(&r).unwrap();
    assert_eq!((m.route, m.matched_len), (0, 4));
    assert_eq!(hit(&r, &Req::new("h", "/abx")), Some(1));
    let m = Req::new("h", "/ax").find(&r).unwrap();
    assert_eq!((m.route, m.matched_len), (0, 2));
}

#[test]
fn mixed_regex_and_prefix_paths_prefer_the_regex_group() {
    let r = router(&[with_paths(1, &["/users/me", r"~/users/\d+"])]);
    assert_eq!(Req::new("h", "/users/1/x").find(&r).unwrap().matched_len, 8);
    assert_eq!(
        Req::new("h", "/users/me/x").find(&r).unwrap().matched_len,
        9
    );
}

#[test]
fn host_bucket_and_any_host_routes_compete_by_priority() {
    let routes = [
        with_paths(1, &["/api"]),
        Route {
            hosts: strings(&["a.com"]),
            paths: strings(&["/"]),
            ..route(2)
        },
        Route {
            methods: strings(&["GET"]),
            hosts: strings(&["*.com"]),
            paths: strings(&["/"]),
            ..route(3)
        },
    ];
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("a.com", "/api")), Some(2));
    assert_eq!(hit(&r, &Req::new("a.com", "/api").method("PUT")), Some(1));
    assert_eq!(hit(&r, &Req::new("b.org", "/api")), Some(0));
}

#[test]
fn many_regex_routes_without_literal_prefix_keep_priority() {
    // `[a-z]+` hides any literal prefix beyond `/`, so all these regexes share
    // one index slot and go through a regex set.
    let mut routes: Vec<Route> = (0..50)
        .map(|i| with_paths(100 + i, &[&format!(r"~/[a-z]+/r{i}/\d+")]))
        .collect();
    routes.push(Route {
        regex_priority: 3,
        ..with_paths(1, &[r"~/[a-z]+/r7/\d"])
    });
    routes.push(with_paths(2, &[r"~/[a-z]+/r(?<n>\d+)/(?<id>\w+)"]));
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("h", "/abc/r7/9")), Some(50));
    assert_eq!(hit(&r, &Req::new("h", "/abc/r8/9")), Some(8));
    let m = Req::new("h", "/abc/r8/x").find(&r).unwrap();
    assert_eq!(m.route, 51);
    assert_eq!(
        m.uri_captures.unwrap().named,
        vec![("n".into(), "8".into()), ("id".into(), "x".into())]
    );
    assert_eq!(hit(&r, &Req::new("h", "/s")), None);
    assert_eq!(hit(&r, &Req::new("h", "/ABC/r8/9")), None);
}

#[test]
fn hundreds_of_regex_routes_are_found_through_their_literal_prefixes() {
    let routes: Vec<Route> = (0..300u32)
        .map(|i| with_paths(u128::from(i) + 1, &[&format!(r"~/r{i}/(\d+)$")]))
        .collect();
    let r = router(&routes);
    let m = Req::new("h", "/r277/123").find(&r).unwrap();
    assert_eq!((m.route, m.matched_len), (277, 9));
    assert_eq!(
        m.uri_captures.unwrap().positional[1].as_deref(),
        Some("123")
    );
    assert_eq!(hit(&r, &Req::new("h", "/r77/1")), Some(77));
    assert_eq!(hit(&r, &Req::new("h", "/r277/x")), None);
    assert_eq!(hit(&r, &Req::new("h", "/r300/1")), None);
}

// --- errors ---

#[test]
fn invalid_regex_path_is_an_error_naming_the_route() {
    let err = Router::new(&[with_paths(1, &["/ok"]), with_paths(2, &["~/(unclosed"])]).unwrap_err();
    assert_eq!(err.route, 1);
    assert!(err.to_string().starts_with("route 1: invalid regex path"));
}

#[test]
fn invalid_header_regex_or_empty_values_are_errors() {
    assert!(Router::new(&[with_headers(route(1), &[("x", &["~*("])])]).is_err());
    assert!(Router::new(&[with_headers(route(1), &[("x", &[])])]).is_err());
    assert!(Router::new(&[with_headers(route(1), &[("bad name", &["v"])])]).is_err());
}

// --- scale ---

#[test]
fn ten_thousand_prefix_routes_match_correctly() {
    let routes: Vec<Route> = (0..10_000u32)
        .map(|i| with_paths(u128::from(i) + 1, &[&format!("/svc{i}/")]))
        .collect();
    let r = router(&routes);
    assert_eq!(r.len(), 10_000);
    for (path, want) in [
        ("/svc123/foo", Some(123)),
        ("/svc0/", Some(0)),
        ("/svc12/x/y", Some(12)),
        ("/svc9999/", Some(9999)),
        ("/svc10000/", None),
        ("/svc123", None),
        ("/other", None),
    ] {
        assert_eq!(hit(&r, &Req::new("h", path)), want, "{path}");
    }
    assert_eq!(
        Req::new("h", "/svc123/foo").find(&r).unwrap().matched_len,
        8
    );
}

#[test]
fn ten_thousand_host_routes_match_correctly() {
    let hosts: Vec<String> = (0..10_000)
        .map(|i| format!("tenant{i}.example.com"))
        .collect();
    let mut routes: Vec<Route> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Route {
            hosts: vec![h.clone()],
            paths: strings(&["/"]),
            ..route(i as u128 + 1)
        })
        .collect();
    routes.push(with_hosts(99_999, &["*.example.com"]));
    let r = router(&routes);
    assert_eq!(hit(&r, &Req::new("tenant42.example.com", "/x")), Some(42));
    assert_eq!(hit(&r, &Req::new("TENANT7.example.com", "/")), Some(7));
    assert_eq!(hit(&r, &Req::new("nobody.example.com", "/")), Some(10_000));
    assert_eq!(hit(&r, &Req::new("tenant42.example.org", "/")), None);
}
