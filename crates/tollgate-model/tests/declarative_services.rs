//! Services: url shorthand, explicit fields, defaults, bounds.
#![allow(clippy::unwrap_used)]

mod support;
use support::{err, has_line, ok};
use tollgate_model::Protocol;

#[test]
fn service_defaults_follow_kong() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: a
    host: example.com
"#);
    let s = &c.services[0];
    assert_eq!(s.name.as_deref(), Some("a"));
    assert_eq!(s.protocol, Protocol::Http);
    assert_eq!(s.host, "example.com");
    assert_eq!(s.port, 80);
    assert_eq!(s.path, None);
    assert_eq!(s.retries, 5);
    assert_eq!(
        (s.connect_timeout, s.write_timeout, s.read_timeout),
        (60000, 60000, 60000)
    );
    assert!(s.enabled);
    assert!(s.tags.is_empty());
}

#[test]
fn url_shorthand_sets_protocol_host_port_and_path() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: a
    url: http://backend.internal:8080/api/v1
"#);
    let s = &c.services[0];
    assert_eq!(s.protocol, Protocol::Http);
    assert_eq!(s.host, "backend.internal");
    assert_eq!(s.port, 8080);
    assert_eq!(s.path.as_deref(), Some("/api/v1"));
}

#[test]
fn url_shorthand_defaults_to_port_443_for_https() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: a
    url: https://secure.example.com
"#);
    let s = &c.services[0];
    assert_eq!(s.protocol, Protocol::Https);
    assert_eq!(s.port, 443);
    assert_eq!(s.path, None);
}

#[test]
fn url_shorthand_defaults_to_port_80_for_http() {
    let c = ok("_format_version: \"3.0\"\nservices:\n  - url: http://a.com/\n");
    assert_eq!(c.services[0].port, 80);
    assert_eq!(c.services[0].path.as_deref(), Some("/"));
}

#[test]
fn explicit_fields_are_read() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - name: a
    protocol: https
    host: 10.0.0.7
    port: 8443
    path: /base
    retries: 0
    connect_timeout: 1
    write_timeout: 2147483646
    read_timeout: 5000
    enabled: false
    tags: [team-a, prod, team-a]
    created_at: 1700000000
    updated_at: 1700000000
    tls_verify: null
    ca_certificates: null
"#);
    let s = &c.services[0];
    assert_eq!(s.protocol, Protocol::Https);
    assert_eq!(s.host, "10.0.0.7");
    assert_eq!(s.port, 8443);
    assert_eq!(s.path.as_deref(), Some("/base"));
    assert_eq!(s.retries, 0);
    assert_eq!(s.connect_timeout, 1);
    assert_eq!(s.write_timeout, 2_147_483_646);
    assert_eq!(s.read_timeout, 5000);
    assert!(!s.enabled);
    assert_eq!(s.tags, vec!["team-a", "prod"]);
}

#[test]
fn https_service_without_port_keeps_kongs_default_80() {
    let c =
        ok("_format_version: \"3.0\"\nservices:\n  - {name: a, protocol: https, host: a.com}\n");
    assert_eq!(c.services[0].port, 80);
}

#[test]
fn url_together_with_host_is_an_error_naming_both() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: a
    url: http://a.com
    host: b.com
"#);
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").url: cannot set 'url' together with 'host'",
    );
}

#[test]
fn missing_host_is_reported() {
    let e = err("_format_version: \"3.0\"\nservices:\n  - name: a\n");
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").host: required field missing",
    );
}

#[test]
fn port_out_of_range_is_reported_with_bounds() {
    let e = err("_format_version: \"3.0\"\nservices:\n  - {name: a, host: a.com, port: 70000}\n");
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").port: value should be between 0 and 65535, got integer 70000",
    );
}

#[test]
fn retries_and_timeouts_out_of_range_are_reported() {
    let e = err(r#"
_format_version: "3.0"
services:
  - name: a
    host: a.com
    retries: 32768
    connect_timeout: 0
    read_timeout: 2147483647
"#);
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").retries: value should be between 0 and 32767",
    );
    has_line(&e, "kong.yml: services[0] (name \"a\").connect_timeout: value should be between 1 and 2147483646");
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").read_timeout: value should be between 1 and 2147483646",
    );
}

#[test]
fn wrong_type_port_is_reported() {
    let e = err("_format_version: \"3.0\"\nservices:\n  - {name: a, host: a.com, port: abc}\n");
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").port: expected an integer, got string \"abc\"",
    );
}

#[test]
fn path_must_start_with_slash_and_have_no_empty_segment() {
    let e = err(r#"
_format_version: "3.0"
services:
  - {name: a, host: a.com, path: api}
  - {name: b, host: a.com, path: /a//b}
"#);
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").path: invalid path \"api\": should start with: /",
    );
    has_line(&e, "kong.yml: services[1] (name \"b\").path: invalid path \"/a//b\": must not have empty segments");
}

#[test]
fn nested_plugins_are_scoped_to_the_service() {
    let c = ok("_format_version: \"3.0\"\nservices:\n  - {name: a, host: a.com, plugins: [{name: cors}]}\n");
    assert_eq!(c.plugins.len(), 1);
    assert_eq!(c.plugins[0].service, Some(c.services[0].id));
}

#[test]
fn unsupported_protocol_is_named() {
    let e = err("_format_version: \"3.0\"\nservices:\n  - {name: a, host: a.com, protocol: tcp}\n");
    has_line(
        &e,
        "kong.yml: services[0] (name \"a\").protocol: protocol 'tcp' is not supported yet",
    );
}

#[test]
fn grpc_service_must_not_have_a_path() {
    let e = err("_format_version: \"3.0\"\nservices:\n  - {name: a, host: a.com, protocol: grpc, path: /x}\n");
    has_line(&e, "kong.yml: services[0] (name \"a\").path: must be null when 'protocol' is 'grpc' or 'grpcs'");
}

#[test]
fn ipv6_hosts_are_stored_without_brackets() {
    let c = ok(r#"
_format_version: "3.0"
services:
  - {name: a, url: "http://[::1]:9000/x"}
  - {name: b, host: "[fe80::1]"}
"#);
    assert_eq!(
        (c.services[0].host.as_str(), c.services[0].port),
        ("::1", 9000)
    );
    assert_eq!(c.services[1].host, "fe80::1");
}

#[test]
fn service_tls_fields_are_read_and_their_references_checked() {
    let c = ok(r#"
_format_version: "3.0"
ca_certificates:
  - id: 0f8fad5b-d9cb-469f-a165-70867728950e
    cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
services:
  - name: s
    url: https://api.internal
    tls_verify: true
    tls_verify_depth: 2
    ca_certificates: [0f8fad5b-d9cb-469f-a165-70867728950e]
"#);
    let tls = &c.services[0].tls;
    assert_eq!(tls.verify, Some(true));
    assert_eq!(tls.verify_depth, Some(2));
    assert_eq!(tls.ca_certificates.len(), 1);
    assert_eq!(tls.client_certificate, None);

    let e = err(r#"
_format_version: "3.0"
services:
  - name: s
    url: https://api.internal
    tls_verify_depth: 65
    ca_certificates: [7d444840-9dc0-11d1-b245-5ffdce74fad2, nope]
    client_certificate: {id: 6f2f8a56-2d0c-4a8e-9d83-8d8a0cf1c6b1}
"#);
    let at = "kong.yml: services[0] (name \"s\")";
    has_line(
        &e,
        &format!("{at}.tls_verify_depth: value should be between 0 and 64"),
    );
    has_line(&e, &format!("{at}.ca_certificates[0]: no ca_certificate with id \"7d444840-9dc0-11d1-b245-5ffdce74fad2\""));
    has_line(
        &e,
        &format!("{at}.ca_certificates[1]: expected a UUID, got \"nope\""),
    );
    has_line(&e, &format!("{at}.client_certificate: no certificate with id \"6f2f8a56-2d0c-4a8e-9d83-8d8a0cf1c6b1\""));
}
