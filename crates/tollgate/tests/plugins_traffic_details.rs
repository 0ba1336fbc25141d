//! The traffic plugins' less common settings, black-box: request-termination
//! `echo` and `trigger`, correlation-id's generators, cors
//! `preflight_continue`, request-size-limiting's `require_content_length`,
//! and the client address plugins see behind trusted proxies
//! (`trusted_ips`, `real_ip_header`, `real_ip_recursive`).
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1, send};
use support::gateway::Gateway;

fn service(backend: &str, routes: &str) -> String {
    format!("_format_version: \"3.0\"\nservices:\n- name: s\n  url: {backend}\n  routes:\n{routes}")
}

#[tokio::test(flavor = "multi_thread")]
async fn request_termination_echoes_the_request_and_only_fires_on_its_trigger() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        r#"  - name: echo
    paths: ['~/echo/(?<item>\w+)$']
    plugins:
    - name: request-termination
      config: {status_code: 418, echo: true, message: teapot}
  - name: maintenance
    paths: [/m]
    plugins:
    - name: request-termination
      config: {status_code: 503, message: down for maintenance, trigger: x-maintenance}
"#,
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let got = send(
        &c,
        "POST",
        &format!("{}/echo/pen?a=1&a=2&b=x", gw.url()),
        Some(("application/json", r#"{"n":1}"#)),
        &[("x-who", "ann")],
    )
    .await;
    assert_eq!(got.status, 418, "{}", got.text());
    let j = got.json();
    assert_eq!(j["message"], "teapot");
    let r = &j["request"];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["scheme"], "http");
    assert_eq!(r["host"], "127.0.0.1");
    assert_eq!(r["path"], "/echo/pen");
    assert_eq!(r["query"], serde_json::json!({"a": ["1", "2"], "b": "x"}));
    assert_eq!(r["headers"]["x-who"], "ann");
    assert_eq!(r["raw_body"], r#"{"n":1}"#);
    assert_eq!(r["body"], serde_json::json!({"n": 1}));
    assert_eq!(r["uri_captures"]["item"], "pen");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Without its trigger the route is served; with it (header or query), not.
    let url = format!("{}/m", gw.url());
    assert_eq!(get(&c, &url, &[]).await.status, 200);
    let down = get(&c, &url, &[("x-maintenance", "1")]).await;
    assert_eq!(
        (down.status, down.json()["message"].as_str()),
        (503, Some("down for maintenance"))
    );
    let down = get(&c, &format!("{url}?x-maintenance"), &[]).await;
    assert_eq!(down.status, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn correlation_id_generators_make_kongs_formats() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        r#"  - name: counter
    paths: [/counter]
    plugins: [{name: correlation-id, config: {generator: "uuid#counter", header_name: x-cid, echo_downstream: true}}]
  - name: tracker
    paths: [/tracker]
    plugins: [{name: correlation-id, config: {generator: tracker, header_name: x-cid, echo_downstream: true}}]
  - name: uuid
    paths: [/uuid]
    plugins: [{name: correlation-id, config: {generator: uuid, header_name: x-cid}}]
"#,
    );
    let gw = Gateway::start(&cfg, &[("TOLLGATE_WORKER_THREADS", "1")]);
    let c = http1();
    let id = |path: &'static str| {
        let (c, url) = (c.clone(), format!("{}{path}", gw.url()));
        async move {
            let got = get(&c, &url, &[]).await;
            let sent = got.json()["headers"]["x-cid"].as_str().unwrap().to_owned();
            if path != "/uuid" {
                assert_eq!(got.header("x-cid"), Some(sent.as_str()));
            } else {
                assert_eq!(got.header("x-cid"), None);
            }
            sent
        }
    };
    // uuid#counter: one UUID per worker, then a counter.
    let (first, second) = (id("/counter").await, id("/counter").await);
    let (base1, n1) = first.split_once('#').unwrap();
    let (base2, n2) = second.split_once('#').unwrap();
    assert_eq!(base1, base2);
    assert_eq!(base1.len(), 36);
    assert_eq!(n2.parse::<u64>().unwrap(), n1.parse::<u64>().unwrap() + 1);
    // tracker: starts with the client address.
    assert!(id("/tracker").await.starts_with("127.0.0.1-"));
    let u = id("/uuid").await;
    assert_eq!((u.len(), u.matches('-').count()), (36, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_continue_lets_the_backend_answer_preflights() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        "  - name: r\n    paths: [/]\n    plugins: [{name: cors, config: {origins: [\"https://app.example\"], preflight_continue: true}}]\n",
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = send(
        &http1(),
        "OPTIONS",
        &format!("{}/x", gw.url()),
        None,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["method"], "OPTIONS");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_size_limiting_can_require_a_content_length() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        "  - name: r\n    paths: [/]\n    plugins: [{name: request-size-limiting, config: {allowed_payload_size: 1, require_content_length: true}}]\n",
    );
    let gw = Gateway::start(&cfg, &[]);
    let chunked = support::client::raw(
        gw.proxy,
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
    assert!(
        chunked.contains("A valid Content-Length header is required"),
        "{chunked}"
    );
    let sized = support::client::raw(
        gw.proxy,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert!(sized.starts_with("HTTP/1.1 200"), "{sized}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_see_the_client_a_trusted_proxy_forwarded() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        "  - name: r\n    paths: [/]\n    plugins: [{name: ip-restriction, config: {deny: [203.0.113.0/24]}}]\n",
    );
    let c = http1();
    // Untrusted peer: its X-Real-IP is not believed.
    let open = Gateway::start(&cfg, &[]);
    let got = get(
        &c,
        &format!("{}/x", open.url()),
        &[("x-real-ip", "203.0.113.5")],
    )
    .await;
    assert_eq!(got.status, 200);
    // Trusted peer: X-Real-IP (the default real_ip_header) names the client.
    let trusting = Gateway::start(&cfg, &[("TOLLGATE_TRUSTED_IPS", "127.0.0.1")]);
    let url = format!("{}/x", trusting.url());
    let got = get(&c, &url, &[("x-real-ip", "203.0.113.5")]).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert_eq!(got.json()["message"], "Your IP address is not allowed");
    assert_eq!(
        get(&c, &url, &[("x-real-ip", "198.51.100.1")]).await.status,
        200
    );
    // X-Forwarded-For, skipping trusted hops from the right.
    let recursive = Gateway::start(
        &cfg,
        &[
            ("TOLLGATE_TRUSTED_IPS", "127.0.0.1,10.0.0.0/8"),
            ("TOLLGATE_REAL_IP_HEADER", "X-Forwarded-For"),
            ("TOLLGATE_REAL_IP_RECURSIVE", "on"),
        ],
    );
    let xff = [("x-forwarded-for", "203.0.113.5, 10.0.0.2")];
    let got = get(&c, &format!("{}/x", recursive.url()), &xff).await;
    assert_eq!(got.status, 403, "{}", got.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limiting_error_code_message_and_hidden_headers() {
    let b = Backend::start("b").await;
    let cfg = service(
        &b.url(),
        r#"  - name: r
    paths: [/]
    plugins:
    - name: rate-limiting
      config: {hour: 1, limit_by: ip, error_code: 403, error_message: quota used up, hide_client_headers: true}
"#,
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/x", gw.url());
    let ok = get(&c, &url, &[]).await;
    assert_eq!(ok.status, 200);
    let refused = get(&c, &url, &[]).await;
    assert_eq!(
        (refused.status, refused.json()["message"].as_str()),
        (403, Some("quota used up"))
    );
    for got in [&ok, &refused] {
        for h in [
            "x-ratelimit-limit-hour",
            "x-ratelimit-remaining-hour",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
        ] {
            assert_eq!(got.header(h), None, "{h}");
        }
    }
}
