//! Routing and upstream path joining, end to end through the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::Gateway;

/// One service per (service path, strip_path) combination, each with route
/// prefix `/r<N>`, so every row of Kong's v0 path table can be checked.
fn path_table_config(backend: &str) -> String {
    let cases = [
        ("s1", "/", true),
        ("s2", "/", false),
        ("s3", "/fee/", true),
        ("s4", "/fee/", false),
        ("s5", "/fee", true),
        ("s6", "/fee", false),
    ];
    let mut y = String::from("_format_version: \"3.0\"\nservices:\n");
    for (name, path, strip) in cases {
        y.push_str(&format!(
            "- name: {name}\n  url: {backend}{path}\n  routes:\n  - name: {name}-r\n    paths: [/{name}]\n    strip_path: {strip}\n"
        ));
    }
    y
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_kongs_path_joining_table() {
    let backend = Backend::start("b").await;
    let gw = Gateway::start(&path_table_config(&backend.url()), &[]);
    let c = http1();
    // (request path, expected upstream uri). Routes are /s1../s6 (prefix).
    let cases = [
        // base "/" (ends with /), strip on
        ("/s1", "/"),
        ("/s1/", "/"),
        ("/s1/foo", "/foo"),
        ("/s1/foo/", "/foo/"),
        ("/s1foo", "/foo"),
        // base "/", strip off
        ("/s2", "/s2"),
        ("/s2/", "/s2/"),
        ("/s2/foo", "/s2/foo"),
        // base "/fee/", strip on: post "" gives base minus trailing slash unless request ends with /
        ("/s3", "/fee"),
        ("/s3/", "/fee/"),
        ("/s3/foo", "/fee/foo"),
        ("/s3/foo/", "/fee/foo/"),
        // base "/fee/", strip off
        ("/s4", "/fee/s4"),
        ("/s4/", "/fee/s4/"),
        ("/s4/foo", "/fee/s4/foo"),
        // base "/fee" (no trailing /), strip on
        ("/s5", "/fee"),
        ("/s5/", "/fee/"),
        ("/s5/foo", "/fee/foo"),
        ("/s5foo", "/fee/foo"),
        // base "/fee", strip off
        ("/s6", "/fee/s6"),
        ("/s6/", "/fee/s6/"),
        ("/s6/foo", "/fee/s6/foo"),
    ];
    let mut failures = Vec::new();
    for (req, want) in cases {
        let got = get(&c, &format!("{}{req}", gw.url()), &[]).await;
        assert_eq!(got.status, 200, "{req}: {}", got.text());
        let uri = got.json()["uri"].as_str().unwrap().to_owned();
        if uri != want {
            failures.push(format!("{req} -> {uri} (want {want})"));
        }
    }
    assert!(
        failures.is_empty(),
        "path joining mismatches: {failures:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_string_is_passed_unchanged_and_kong_example_holds() {
    let backend = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: api\n  url: {}/v1\n  routes:\n  - paths: [/api]\n",
        backend.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(&http1(), &format!("{}/api/users?a=1&b=%20x", gw.url()), &[]).await;
    assert_eq!(got.json()["uri"], "/v1/users?a=1&b=%20x");
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_routes_follow_kong_priority() {
    let a = Backend::start("prefix-short").await;
    let b = Backend::start("prefix-long").await;
    let r = Backend::start("regex").await;
    let h = Backend::start("host-and-path").await;
    let m = Backend::start("method").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: short
  url: {a}
  routes: [{{name: short, paths: [/api]}}]
- name: long
  url: {b}
  routes: [{{name: long, paths: [/api/v2]}}]
- name: regex
  url: {r}
  routes: [{{name: regex, paths: ["~/api/v[0-9]+/items$"]}}]
- name: host
  url: {h}
  routes: [{{name: host, hosts: [shop.example.com], paths: [/api]}}]
- name: method
  url: {m}
  routes: [{{name: method, methods: [DELETE], paths: [/api]}}]
"#,
        a = a.url(),
        b = b.url(),
        r = r.url(),
        h = h.url(),
        m = m.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let who = |g: support::client::Got| g.json()["backend"].as_str().unwrap().to_owned();
    assert_eq!(
        who(get(&c, &format!("{}/api/x", gw.url()), &[]).await),
        "prefix-short"
    );
    assert_eq!(
        who(get(&c, &format!("{}/api/v2/x", gw.url()), &[]).await),
        "prefix-long"
    );
    // regex beats a longer prefix
    assert_eq!(
        who(get(&c, &format!("{}/api/v2/items", gw.url()), &[]).await),
        "regex"
    );
    // more criteria (host + path) beat path alone
    assert_eq!(
        who(get(
            &c,
            &format!("{}/api/v2/items", gw.url()),
            &[("host", "shop.example.com")]
        )
        .await),
        "host-and-path"
    );
    // methods + path beat path alone
    let req = http::Request::delete(format!("{}/api/x", gw.url()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let got = support::client::collect(c.request(req).await.unwrap()).await;
    assert_eq!(who(got), "method");
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_wildcards_ports_and_headers_match() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - {{name: suffix, hosts: ["*.example.com"]}}
  - {{name: prefix, hosts: ["example.*"], paths: [/p]}}
  - {{name: hdr, headers: {{x-version: ["~*^v[12]$"]}}, paths: [/h]}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_ACCESS_LOG", "off")]);
    let c = http1();
    let url = gw.url();
    assert_eq!(
        get(&c, &format!("{url}/x"), &[("host", "a.b.example.com")])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, &format!("{url}/x"), &[("host", "example.com")])
            .await
            .status,
        404
    );
    assert_eq!(
        get(&c, &format!("{url}/p"), &[("host", "example.org")])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, &format!("{url}/h"), &[("x-version", "V2")])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, &format!("{url}/h"), &[("x-version", "v3")])
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_is_normalised_before_matching() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/admin]\n    strip_path: false\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = support::client::raw(
        gw.proxy,
        b"GET /x/../%61dmin//users HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"uri\":\"/admin/users\""), "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preserve_host_and_forwarded_headers() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - {{name: keep, paths: [/keep], preserve_host: true}}
  - {{name: plain, paths: [/plain]}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let got = get(
        &c,
        &format!("{}/keep/x", gw.url()),
        &[("host", "client.example"), ("x-forwarded-for", "6.6.6.6")],
    )
    .await;
    let h = &got.json()["headers"];
    assert_eq!(h["host"], "client.example");
    // untrusted client: its X-Forwarded-For is replaced, not appended to
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "client.example");
    assert_eq!(h["x-forwarded-port"], gw.proxy.port().to_string());
    assert_eq!(h["x-forwarded-path"], "/keep/x");
    assert_eq!(h["x-forwarded-prefix"], "/keep");
    assert!(h["via"].as_str().unwrap().contains("tollgate"));
    assert_eq!(got.header("x-request-id").map(str::len), Some(32));
    assert_eq!(h["x-request-id"], got.header("x-request-id").unwrap());

    let got = get(
        &c,
        &format!("{}/plain/x", gw.url()),
        &[("host", "client.example"), ("x-request-id", "my-id-1")],
    )
    .await;
    let h = &got.json()["headers"];
    assert_eq!(h["host"], b.addr.to_string());
    assert_eq!(h["x-request-id"], "my-id-1");
    assert_eq!(got.header("x-request-id"), Some("my-id-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_clients_forwarded_headers_are_kept() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_TRUSTED_IPS", "127.0.0.1/32")]);
    let got = get(
        &http1(),
        &format!("{}/x", gw.url()),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    let h = &got.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_targets_are_balanced_round_robin() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
upstreams:
- name: pool.internal
  targets: [{{target: "{a}"}}, {{target: "{b}"}}]
services:
- name: s
  host: pool.internal
  port: 80
  routes: [{{paths: [/]}}]
"#,
        a = a.addr,
        b = b.addr
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_WORKER_THREADS", "1")]);
    let c = http1();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..10 {
        let got = get(&c, &format!("{}/", gw.url()), &[]).await;
        *seen
            .entry(got.json()["backend"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");
}
