//! Upstreams and targets.
#![allow(clippy::unwrap_used)]

mod support;
use support::{err, has_line, ok};
use tollgate_model::Algorithm;

#[test]
fn upstream_with_nested_targets_and_defaults() {
    let c = ok(r#"
_format_version: "3.0"
upstreams:
  - name: backend.upstream
    targets:
      - target: 10.0.0.1:8080
        weight: 50
      - target: app.internal
      - target: "[::1]:80"
"#);
    let u = &c.upstreams[0];
    assert_eq!(u.name, "backend.upstream");
    assert_eq!(u.algorithm, Algorithm::RoundRobin);
    assert_eq!(u.host_header, None);
    let t: Vec<_> = u
        .targets
        .iter()
        .map(|t| (t.host.as_str(), t.port, t.weight))
        .collect();
    assert_eq!(
        t,
        vec![
            ("10.0.0.1", 8080, 50),
            ("app.internal", 8000, 100),
            ("::1", 80, 100)
        ]
    );
}

#[test]
fn top_level_targets_attach_to_their_upstream() {
    let c = ok(r#"
_format_version: "3.0"
upstreams:
  - name: u1
    targets: [{target: a:1}]
  - name: u2
targets:
  - {target: b:2, upstream: u2}
  - {target: c:3, upstream: u1}
"#);
    assert_eq!(c.upstreams[0].targets.len(), 2);
    assert_eq!(c.upstreams[0].targets[1].host, "c");
    assert_eq!(c.upstreams[1].targets[0].host, "b");
}

#[test]
fn algorithm_and_hash_fields_are_validated() {
    let c = ok(r#"
_format_version: "3.0"
upstreams:
  - name: lc
    algorithm: least-connections
    slots: 100
    host_header: api.example.com
  - name: ch
    hash_on: header
    hash_on_header: x-user
    hash_fallback: ip
    healthchecks:
      threshold: 50
      active: {type: http, healthy: {interval: 5}}
      passive: {}
"#);
    assert_eq!(c.upstreams[0].algorithm, Algorithm::LeastConnections);
    assert_eq!(
        c.upstreams[0].host_header.as_deref(),
        Some("api.example.com")
    );
    assert_eq!(c.upstreams[1].algorithm, Algorithm::ConsistentHashing);

    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: u
    algorithm: fastest
    hash_on: cookie
    slots: 5
    healthchecks: {activ: {}}
"#);
    has_line(
        &e,
        "kong.yml: upstreams[0] (name \"u\").algorithm: expected one of: round-robin",
    );
    has_line(&e, "kong.yml: upstreams[0] (name \"u\").hash_on_cookie: required field missing when 'hash_on' is 'cookie'");
    has_line(&e, "kong.yml: upstreams[0] (name \"u\").slots: value should be between 10 and 65536, got integer 5");
    has_line(&e, "kong.yml: upstreams[0] (name \"u\").healthchecks: unknown field 'activ' (did you mean 'active'?)");
}

#[test]
fn healthchecks_take_kongs_defaults_and_check_every_field() {
    let c = ok(r#"
_format_version: "3.0"
upstreams:
  - name: plain
  - name: checked
    algorithm: random
    healthchecks:
      active:
        type: tcp
        timeout: 0.5
        healthy: {interval: 2, successes: 1}
        unhealthy: {interval: 1, tcp_failures: 2}
      passive:
        unhealthy: {http_statuses: [502], http_failures: 3, cooldown: 5}
"#);
    let d = &c.upstreams[0].healthchecks;
    assert!(!d.any_on());
    assert_eq!(d.active.http_path, "/");
    assert_eq!(d.passive.unhealthy_statuses, vec![429, 500, 503]);
    let h = &c.upstreams[1].healthchecks;
    assert_eq!(c.upstreams[1].algorithm, Algorithm::Random);
    assert_eq!(h.active.kind, tollgate_model::ProbeKind::Tcp);
    assert_eq!(h.active.timeout, 0.5);
    assert_eq!(h.active.unhealthy.tcp_failures, 2);
    assert_eq!(h.passive.unhealthy_statuses, vec![502]);
    assert_eq!(h.passive.http_failures, 3);
    assert_eq!(h.passive.cooldown, 5.0);
    assert!(h.active_on() && h.passive_on());

    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: u
    healthchecks:
      active:
        type: udp
        concurrency: 0
        healthy: {interval: -1, http_statuses: [200, 42]}
        unhealthy: {tcp_failures: 300}
      passive:
        unhealthy: {timeout: 3}
"#);
    let at = "kong.yml: upstreams[0] (name \"u\").healthchecks";
    has_line(
        &e,
        &format!("{at}.active.type: expected one of: tcp, http, https, grpc, grpcs, got \"udp\""),
    );
    has_line(
        &e,
        &format!("{at}.active.concurrency: value should be between 1 and"),
    );
    has_line(
        &e,
        &format!("{at}.active.healthy.interval: value should be between 0 and 65535"),
    );
    has_line(
        &e,
        &format!("{at}.active.healthy.http_statuses[1]: expected an integer between 100 and 999"),
    );
    has_line(
        &e,
        &format!("{at}.active.unhealthy.tcp_failures: value should be between 0 and 255"),
    );
    has_line(
        &e,
        &format!("{at}.passive.unhealthy: unknown field 'timeout' (did you mean 'timeouts'?)"),
    );
}

#[test]
fn upstream_name_must_be_a_hostname() {
    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: 10.0.0.1
  - name: a.com:80
  - name: "bad name"
  - {}
"#);
    has_line(&e, "kong.yml: upstreams[0] (name \"10.0.0.1\").name: invalid name \"10.0.0.1\": must not be an IP address");
    has_line(&e, "kong.yml: upstreams[1] (name \"a.com:80\").name: invalid name \"a.com:80\": must not have a port");
    has_line(
        &e,
        "kong.yml: upstreams[2] (name \"bad name\").name: invalid hostname",
    );
    has_line(&e, "kong.yml: upstreams[3].name: required field missing");
}

#[test]
fn targets_are_unique_per_upstream_with_default_port() {
    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: u
    targets:
      - target: a.com
      - target: a.com:8000
  - name: v
    targets:
      - target: a.com
"#);
    has_line(
        &e,
        "kong.yml: upstreams[0] (name \"u\").targets[1] (target \"a.com:8000\").target: duplicate target \"a.com:8000\" in upstream \"u\" (already declared at upstreams[0] (name \"u\").targets[0] (target \"a.com\"))",
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn target_weight_out_of_range_and_dangling_upstream_are_reported() {
    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: u
    targets: [{target: a:1, weight: 65536}]
targets:
  - {target: b:2, upstream: nope}
  - {target: c:3}
"#);
    has_line(&e, "kong.yml: upstreams[0] (name \"u\").targets[0] (target \"a:1\").weight: value should be between 0 and 65535");
    has_line(
        &e,
        "kong.yml: targets[0] (target \"b:2\").upstream: no upstream with name or id \"nope\"",
    );
    has_line(
        &e,
        "kong.yml: targets[1] (target \"c:3\").upstream: required field missing",
    );
}

#[test]
fn invalid_target_addresses_are_reported() {
    let e = err(r#"
_format_version: "3.0"
upstreams:
  - name: u
    targets: [{target: "a b:1"}, {target: "a:99999"}]
"#);
    has_line(
        &e,
        "kong.yml: upstreams[0] (name \"u\").targets[0] (target \"a b:1\").target: invalid target",
    );
    has_line(&e, "kong.yml: upstreams[0] (name \"u\").targets[1] (target \"a:99999\").target: invalid target");
}
