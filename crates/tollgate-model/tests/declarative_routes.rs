//! Routes: nested and top-level, fields, defaults and validation.
#![allow(clippy::unwrap_used)]

mod support;
use support::{err, has_line, ok};
use tollgate_model::{PathHandling, Protocol};

#[test]
fn nested_routes_point_to_their_service() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: orders
    url: http://orders.internal
    routes:
      - name: list-orders
        paths: [/orders]
      - paths: [/o]
"#);
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].service, Some(c.services[0].id));
    assert_eq!(c.routes[1].service, Some(c.services[0].id));
    assert_eq!(c.routes[0].name.as_deref(), Some("list-orders"));
    assert_eq!(c.routes[1].name, None);
}

#[test]
fn route_defaults_follow_kong() {
    let c = ok("_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [/]}\n");
    let r = &c.routes[0];
    assert_eq!(r.protocols, vec![Protocol::Http, Protocol::Https]);
    assert!(r.strip_path);
    assert!(!r.preserve_host);
    assert_eq!(r.regex_priority, 0);
    assert_eq!(r.path_handling, PathHandling::V0);
    assert_eq!(r.https_redirect_status_code, 426);
    assert!(r.request_buffering && r.response_buffering);
    assert_eq!(r.service, None);
}

#[test]
fn top_level_routes_resolve_their_service_by_name_or_id() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: a
    host: a.com
  - id: 3b8c1d4e-0a6f-4b8e-9a41-6b3c0f9e2d11
    host: b.com
routes:
  - name: by-name
    service: a
    paths: [/a]
  - name: by-id
    service: 3b8c1d4e-0a6f-4b8e-9a41-6b3c0f9e2d11
    paths: [/b]
  - name: by-object
    service: {name: a}
    paths: [/c]
"#);
    assert_eq!(c.routes[0].service, Some(c.services[0].id));
    assert_eq!(c.routes[1].service, Some(c.services[1].id));
    assert_eq!(c.routes[2].service, Some(c.services[0].id));
    assert_eq!(
        c.services[1].id.to_string(),
        "3b8c1d4e-0a6f-4b8e-9a41-6b3c0f9e2d11"
    );
}

#[test]
fn nested_routes_come_before_top_level_routes() {
    let c = ok(r#"
_format_version: "3.0"
routes:
  - {name: top, service: a, paths: [/t]}
services:
  - name: a
    host: a.com
    routes:
      - {name: nested, paths: [/n]}
"#);
    let names: Vec<_> = c
        .routes
        .iter()
        .map(|r| r.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["nested", "top"]);
}

#[test]
fn route_fields_are_read_and_normalised() {
    let c = ok(r#"
_format_version: "3.0"
routes:
  - name: r
    protocols: [https]
    methods: [get, POST, GET]
    hosts: ["*.example.com", "api.*", "a.com:8443"]
    paths: [/v1, "~/users/(?<id>\\d+)$"]
    headers:
      X-Version: ["1", "~*^2"]
    strip_path: false
    preserve_host: true
    regex_priority: 10
    path_handling: v1
    https_redirect_status_code: 308
    request_buffering: false
    response_buffering: false
    snis: []
    sources: null
    tags: [t]
"#);
    let r = &c.routes[0];
    assert_eq!(r.protocols, vec![Protocol::Https]);
    assert_eq!(r.methods, vec!["GET", "POST"]);
    assert_eq!(r.hosts, vec!["*.example.com", "api.*", "a.com:8443"]);
    assert_eq!(r.paths, vec!["/v1", "~/users/(?<id>\\d+)$"]);
    assert_eq!(
        r.headers.get("x-version"),
        Some(&vec!["1".to_owned(), "~*^2".to_owned()])
    );
    assert!(!r.strip_path);
    assert!(r.preserve_host);
    assert_eq!(r.regex_priority, 10);
    assert_eq!(r.path_handling, PathHandling::V1);
    assert_eq!(r.https_redirect_status_code, 308);
    assert!(!r.request_buffering && !r.response_buffering);
    assert_eq!(r.tags, vec!["t"]);
}

#[test]
fn grpc_routes_default_strip_path_to_false() {
    let c = ok("_format_version: \"3.0\"\nroutes:\n  - {name: g, protocols: [grpc, grpcs], paths: [/pkg.Svc]}\n");
    assert!(!c.routes[0].strip_path);
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: g, protocols: [grpc], paths: [/x], strip_path: true}\n");
    has_line(&e, "kong.yml: routes[0] (name \"g\").strip_path: must be false when 'protocols' is 'grpc' or 'grpcs'");
}

#[test]
fn mixing_http_and_grpc_protocols_is_refused() {
    let e = err(
        "_format_version: \"3.0\"\nroutes:\n  - {name: r, protocols: [http, grpc], paths: [/]}\n",
    );
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").protocols: these sets are mutually exclusive",
    );
}

#[test]
fn http_route_without_any_matcher_is_refused() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - name: r\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\"): must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'",
    );
}

#[test]
fn dangling_service_reference_names_route_and_field() {
    let e = err(r#"
_format_version: "3.0"
services:
  - {name: a, host: a.com}
routes:
  - {name: r, service: missing, paths: [/]}
"#);
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").service: no service with name or id \"missing\"",
    );
}

#[test]
fn service_on_a_nested_route_is_refused() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: a
    host: a.com
    routes:
      - {name: r, service: a, paths: [/]}
"#);
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").routes[0] (name \"r\").service: must not be set on a route nested under a service",
    );
}

#[test]
fn bad_regex_path_names_service_route_and_path_index() {
    let e = err(r#"
_format_version: "3.0"
services:
  - {name: a, host: a.com}
  - name: orders
    host: o.com
    routes:
      - paths: [/a, /b, "~/orders/(\\d+"]
"#);
    has_line(
        &e,
        "kong.yml: services[1] (name \"orders\").routes[0].paths[2]: invalid regex \"/orders/(\\\\d+\"",
    );
}

#[test]
fn prefix_paths_must_be_normalised() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [\"/a//b\", \"/a/../b\", \"x\"]}\n");
    has_line(&e, "kong.yml: routes[0] (name \"r\").paths[0]: invalid path \"/a//b\": must not have empty segments");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").paths[1]: invalid path \"/a/../b\": non-normalized path",
    );
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").paths[2]: invalid path \"x\": should start with: /",
    );
}

#[test]
fn bad_host_wildcards_are_refused() {
    let e = err(r#"
_format_version: "3.0"
routes:
  - name: r
    hosts: [ok.com, "a.*.com", "*.a.*", "*a.com"]
"#);
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").hosts[1]: invalid wildcard host \"a.*.com\"",
    );
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").hosts[2]: invalid wildcard host \"*.a.*\"",
    );
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").hosts[3]: invalid wildcard host \"*a.com\"",
    );
}

#[test]
fn host_header_is_refused_in_headers() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, headers: {Host: [a.com]}}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").headers.Host: cannot contain 'host' header, which must be specified in the 'hosts' attribute",
    );
}

#[test]
fn header_values_must_be_lists_of_strings() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, headers: {x-a: b}}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").headers.x-a: expected an array, got string \"b\"",
    );
}

#[test]
fn wrong_type_strip_path_is_reported() {
    let e =
        err("_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [/], strip_path: \"yes\"}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").strip_path: expected a boolean, got string \"yes\"",
    );
    // An unquoted YAML 1.1 `yes` is a string too, not a boolean.
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [/], strip_path: yes}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").strip_path: expected a boolean, got string \"yes\"",
    );
}

#[test]
fn redirect_code_must_be_one_of_kongs() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [/], https_redirect_status_code: 303}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").https_redirect_status_code: expected one of: 426, 301, 302, 307, 308, got integer 303",
    );
}

#[test]
fn unsupported_route_fields_are_refused_when_not_empty() {
    let e = err(r#"
_format_version: "3.0"
routes:
  - name: r
    protocols: [https]
    snis: [a.com]
    paths: [/]
    expression: 'http.path == "/"'
"#);
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").snis: 'snis' is not supported yet",
    );
    has_line(&e, "kong.yml: routes[0] (name \"r\").expression: 'expression' needs router_flavor = expressions");
}

#[test]
fn route_names_are_unique_across_nested_and_top_level() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: a
    host: a.com
    routes:
      - {name: r, paths: [/a]}
routes:
  - {name: r, paths: [/b]}
"#);
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").name: duplicate name \"r\" (already used by services[0] (name \"a\").routes[0] (name \"r\"))",
    );
}

#[test]
fn methods_must_be_letters() {
    let e = err("_format_version: \"3.0\"\nroutes:\n  - {name: r, methods: [\"GE T\"]}\n");
    has_line(
        &e,
        "kong.yml: routes[0] (name \"r\").methods[0]: invalid method \"GE T\"",
    );
}
