//! Traffic-control plugins on the proxy: rate-limiting (`policy: local`): Kong's headers and 429 body,
//! exactness under concurrency, and counters that survive unrelated
//! configuration changes. The brief's Admin API call is used verbatim.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1, post_form};
use support::gateway::Gateway;

#[tokio::test(flavor = "multi_thread")]
async fn the_briefs_minute_limit_is_enforced_exactly_under_concurrency() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[("TOLLGATE_ACCESS_LOG", "off")]);
    let c = http1();
    let admin = gw.admin_url();
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services"),
            &format!("name=example-service&url={}", b.url())
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services/example-service/routes"),
            "paths[]=/rl"
        )
        .await
        .status,
        201
    );
    // curl -X POST .../services/example-service/plugins --data name=rate-limiting --data config.minute=100
    support::client::created(
        &c,
        &format!("{admin}/services/example-service/plugins"),
        "name=rate-limiting&config.minute=100",
    )
    .await;

    // Don't straddle a minute boundary.
    let sec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if sec > 45 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - sec)).await;
    }
    let first = get(&c, &format!("{}/rl/x", gw.url()), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit-minute"), Some("100"));
    assert_eq!(first.header("x-ratelimit-remaining-minute"), Some("99"));
    assert_eq!(first.header("ratelimit-limit"), Some("100"));
    assert_eq!(first.header("ratelimit-remaining"), Some("99"));
    assert!(first.header("ratelimit-reset").is_some());

    // An unrelated change does not reset the counters.
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services"),
            "name=other&host=other.internal"
        )
        .await
        .status,
        201
    );

    // 500 concurrent requests over 50 connections: exactly 99 more pass.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = format!("{}/rl/x", gw.url());
        tasks.push(tokio::spawn(async move {
            let c = http1();
            let mut codes = Vec::new();
            for _ in 0..10 {
                codes.push(get(&c, &url, &[]).await);
            }
            codes
        }));
    }
    let mut ok = 0;
    let mut limited = Vec::new();
    for t in tasks {
        for g in t.await.unwrap() {
            match g.status {
                200 => ok += 1,
                429 => limited.push(g),
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(ok, 99, "passed: {ok}");
    assert_eq!(limited.len(), 401);
    let l = &limited[0];
    assert_eq!(l.json()["message"], "API rate limit exceeded");
    assert_eq!(l.header("x-ratelimit-remaining-minute"), Some("0"));
    let retry: u64 = l.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_per_consumer_and_rejections_are_not_counted() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins:
  - name: key-auth
  - name: rate-limiting
    config: {{hour: 3, limit_by: consumer}}
consumers:
- username: a
  keyauth_credentials: [{{key: ka}}]
- username: b
  keyauth_credentials: [{{key: kb}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/x", gw.url());
    for _ in 0..3 {
        assert_eq!(get(&c, &url, &[("apikey", "ka")]).await.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(&c, &url, &[("apikey", "ka")]).await.status, 429);
    }
    // b has its own budget.
    let g = get(&c, &url, &[("apikey", "kb")]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.header("x-ratelimit-remaining-hour"), Some("2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_restriction_denies_and_allows_by_cidr() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - name: open
    paths: [/open]
    plugins: [{{name: ip-restriction, config: {{allow: ["127.0.0.0/8"]}}}}]
  - name: closed
    paths: [/closed]
    plugins: [{{name: ip-restriction, config: {{deny: ["127.0.0.1"], status: 401, message: "go away"}}}}]
  - name: other
    paths: [/other]
    plugins: [{{name: ip-restriction, config: {{allow: ["10.0.0.0/8"]}}}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    assert_eq!(
        get(&c, &format!("{}/open", gw.url()), &[]).await.status,
        200
    );
    let closed = get(&c, &format!("{}/closed", gw.url()), &[]).await;
    assert_eq!(
        (closed.status, closed.json()["message"].as_str().unwrap()),
        (401, "go away")
    );
    let other = get(&c, &format!("{}/other", gw.url()), &[]).await;
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["message"], "Your IP address is not allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_size_limiting_and_correlation_id() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins:
  - {{name: request-size-limiting, config: {{allowed_payload_size: 10, size_unit: bytes}}}}
  - {{name: correlation-id, config: {{echo_downstream: true}}}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let small = support::client::raw(
        gw.proxy,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    // The backend saw the generated correlation id, and the client got it back.
    let lower = small.to_ascii_lowercase();
    assert!(lower.contains("kong-request-id: "), "{small}");
    assert!(small.contains("\"kong-request-id\":\""), "{small}");

    let declared = support::client::raw(gw.proxy, b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\nConnection: close\r\n\r\n0123456789012345678901234567890123456789012345678").await;
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(
        declared.contains("Request size limit exceeded"),
        "{declared}"
    );

    let chunked = support::client::raw(
        gw.proxy,
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");

    // An incoming id is kept.
    let kept = support::client::get(
        &http1(),
        &format!("{}/k", gw.url()),
        &[("kong-request-id", "mine-1")],
    )
    .await;
    assert_eq!(kept.json()["headers"]["kong-request-id"], "mine-1");
    assert_eq!(kept.header("kong-request-id"), Some("mine-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_preflights_and_marks_allowed_origins() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins:
  - name: cors
    config: {{origins: ["https://app.example", "https://.*\\.partner\\.example"], credentials: true, max_age: 600, exposed_headers: [x-total]}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/items", gw.url());
    let pre = support::client::send(
        &c,
        "OPTIONS",
        &url,
        None,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a"),
        ],
    )
    .await;
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    assert_eq!(pre.header("access-control-allow-headers"), Some("x-a"));
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    assert_eq!(
        b.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "preflight reached the backend"
    );

    let ok = get(&c, &url, &[("origin", "https://eu.partner.example")]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://eu.partner.example")
    );
    assert_eq!(ok.header("access-control-expose-headers"), Some("x-total"));
    let other = get(&c, &url, &[("origin", "https://evil.example")]).await;
    assert_eq!(other.status, 200);
    assert!(other.header("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn request_and_response_transformers_edit_headers() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins:
  - name: request-transformer
    config:
      remove: {{headers: [x-drop]}}
      rename: {{headers: ["x-old:x-new"]}}
      replace: {{headers: ["x-rep:replaced"]}}
      add: {{headers: ["x-added:1", "x-keep:not-used"]}}
      append: {{headers: ["x-multi:two"]}}
  - name: response-transformer
    config:
      remove: {{headers: [content-type]}}
      add: {{headers: ["x-served-by:tollgate"]}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(
        &http1(),
        &format!("{}/t", gw.url()),
        &[
            ("x-drop", "1"),
            ("x-old", "o"),
            ("x-rep", "orig"),
            ("x-keep", "mine"),
            ("x-multi", "one"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let h = &got.json()["headers"];
    assert!(h.get("x-drop").is_none(), "{h}");
    assert!(h.get("x-old").is_none() && h["x-new"] == "o", "{h}");
    assert_eq!(h["x-rep"], "replaced");
    assert_eq!(h["x-added"], "1");
    assert_eq!(h["x-keep"], "mine");
    assert_eq!(h["x-multi"], "one, two");
    assert!(got.header("content-type").is_none());
    assert_eq!(got.header("x-served-by"), Some("tollgate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bot_detection_refuses_crawlers_and_deny_matches_unless_allowed() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    support::client::created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=bot-detection&config.deny[]=^BadClient&config.allow[]=FriendlyBot",
    )
    .await;
    let bad = post_form(
        &c,
        &format!("{admin}/plugins"),
        "name=bot-detection&config.deny[]=(unclosed",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("invalid regex"), "{}", bad.text());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let url = format!("{}/api/x", gw.url());
    for (agent, status) in [
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            200,
        ),
        ("curl/8.5.0", 200),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            403,
        ),
        ("BadClient/1.0", 403),
        ("FriendlyBot/3.0", 200),
    ] {
        let got = get(&c, &url, &[("user-agent", agent)]).await;
        assert_eq!(got.status, status, "{agent}: {}", got.text());
        if status == 403 {
            assert_eq!(got.json()["message"], "Forbidden");
        }
    }
    // Two User-Agent headers are ambiguous.
    let two = support::client::raw(
        gw.proxy,
        b"GET /api/x HTTP/1.1\r\nHost: a\r\nUser-Agent: a\r\nUser-Agent: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_transformer_edits_query_body_uri_and_method() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    support::client::created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=request-transformer&config.remove.querystring=drop&config.rename.querystring=old:new\
         &config.add.querystring=added:1&config.replace.uri=/rewritten\
         &config.add.headers=x-user:$(headers.x-name)&config.add.body=source:gateway\
         &config.remove.body=secret",
    )
    .await;
    // A second route whose requests become GETs (a form body moves to the query).
    support::client::created(
        &c,
        &format!("{admin}/services/s/routes"),
        "name=as-get&paths[]=/get",
    )
    .await;
    support::client::created(
        &c,
        &format!("{admin}/routes/as-get/plugins"),
        "name=request-transformer&config.http_method=GET",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let form = support::client::send(
        &c,
        "POST",
        &format!("{}/api/x?drop=1&old=v&keep=k", gw.url()),
        Some(("application/x-www-form-urlencoded", "secret=s&a=1")),
        &[("x-name", "ann")],
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text());
    let j = form.json();
    assert_eq!(j["uri"], "/rewritten?new=v&keep=k&added=1");
    assert_eq!(j["body"], "a=1&source=gateway");
    assert_eq!(j["headers"]["content-length"], "18");
    assert_eq!(j["headers"]["x-user"], "ann");

    let json = support::client::send(
        &c,
        "POST",
        &format!("{}/api/x", gw.url()),
        Some(("application/json", r#"{"secret":"s","a":1}"#)),
        &[],
    )
    .await;
    assert_eq!(json.status, 200, "{}", json.text());
    let body: serde_json::Value =
        serde_json::from_str(json.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"a": 1, "source": "gateway"}));

    let as_get = support::client::send(
        &c,
        "POST",
        &format!("{}/get/x?z=0", gw.url()),
        Some(("application/x-www-form-urlencoded", "q=1")),
        &[],
    )
    .await;
    assert_eq!(as_get.status, 200, "{}", as_get.text());
    let j = as_get.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["uri"], "/x?z=0&q=1");
    assert_eq!(j["body_len"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sliding_window_still_counts_part_of_the_previous_window() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_plugin(
        &c,
        &admin,
        &b.url(),
        "/api",
        "name=rate-limiting&config.second=10&config.window_type=sliding&config.limit_by=ip",
    )
    .await;
    let url = format!("{}/api/x", gw.url());
    support::windows::assert_sliding_second_of_ten(&c, &url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_policy_counts_on_a_sqlite_node_and_is_refused_db_less() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_plugin(
        &c,
        &admin,
        &b.url(),
        "/api",
        "name=rate-limiting&config.hour=2&config.policy=cluster&config.limit_by=ip",
    )
    .await;
    let url = format!("{}/api/x", gw.url());
    let statuses = [
        get(&c, &url, &[]).await.status,
        get(&c, &url, &[]).await.status,
        get(&c, &url, &[]).await.status,
    ];
    assert_eq!(statuses, [200, 200, 429]);

    // Without a database there is nowhere to keep a cluster's counters.
    let dir = support::gateway::temp_dir("cluster-dbless");
    let file = dir.join("kong.yml");
    std::fs::write(
        &file,
        "_format_version: \"3.0\"\nplugins:\n- name: rate-limiting\n  config: {minute: 5, policy: cluster}\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::gateway::binary())
        .arg("check")
        .arg(&file)
        .env("TOLLGATE_DATABASE", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kong.yml") && err.contains("policy"), "{err}");
    assert!(err.contains("database = off"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_transformer_templates_read_the_routes_regex_captures() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - name: users
    paths: ['~/users/(?<id>\d+)/(\w+)$']
    strip_path: false
    plugins:
    - name: request-transformer
      config:
        replace: {{uri: '/accounts/$(uri_captures.id)'}}
        add:
          headers: ['x-user-id:$(uri_captures["id"])', 'x-section:$(uri_captures[2])']
          querystring: ['whole:$(uri_captures[0])']
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let got = get(&c, &format!("{}/users/42/orders", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let j = got.json();
    assert_eq!(j["uri"], "/accounts/42?whole=%2Fusers%2F42%2Forders");
    assert_eq!(j["headers"]["x-user-id"], "42");
    assert_eq!(j["headers"]["x-section"], "orders");
}

/// Sends `n` requests over `conns` connections at once; returns how many
/// passed (200) and checks the rest were 429.
async fn burst(url: &str, n: usize, conns: usize, headers: &[(&str, &str)]) -> usize {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (url, headers) = (url.to_owned(), headers.clone());
        let share = n / conns + usize::from(i < n % conns);
        tasks.push(tokio::spawn(async move {
            let c = http1();
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut passed = 0;
            for _ in 0..share {
                match get(&c, &url, &h).await.status {
                    200 => passed += 1,
                    429 => {}
                    s => panic!("unexpected {s}"),
                }
            }
            passed
        }));
    }
    let mut passed = 0;
    for t in tasks {
        passed += t.await.unwrap();
    }
    passed
}

#[tokio::test(flavor = "multi_thread")]
async fn every_window_is_enforced_exactly_under_concurrency() {
    let b = Backend::start("b").await;
    let mut cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n",
        b.url()
    );
    for unit in ["second", "hour", "day", "month", "year"] {
        cfg.push_str(&format!(
            "  - name: {unit}\n    paths: [/{unit}]\n    plugins:\n    - name: rate-limiting\n      config: {{{unit}: 7, limit_by: ip}}\n"
        ));
    }
    let gw = Gateway::start(&cfg, &[("TOLLGATE_ACCESS_LOG", "off")]);
    for unit in ["hour", "day", "month", "year"] {
        let url = format!("{}/{unit}/x", gw.url());
        assert_eq!(burst(&url, 60, 12, &[]).await, 7, "{unit}");
    }
    // A second is short: the burst must fit in one, else it is tried again.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let url = format!("{}/second/x", gw.url());
    let mut checked = false;
    for _ in 0..5 {
        while now().subsec_millis() > 100 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let started = now().as_secs();
        let passed = burst(&url, 30, 10, &[]).await;
        if now().as_secs() == started {
            assert_eq!(passed, 7);
            checked = true;
            break;
        }
    }
    assert!(checked, "no burst fit in one second");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_limit_by_counts_against_its_own_key() {
    let b = Backend::start("b").await;
    let rl = |extra: &str| {
        format!("    plugins:\n    - name: rate-limiting\n      config: {{hour: 2{extra}}}\n")
    };
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - name: credential
    paths: [/credential]
    plugins:
    - name: key-auth
    - name: rate-limiting
      config: {{hour: 2, limit_by: credential}}
  - name: header
    paths: [/header]
{header}  - name: path
    paths: [/path]
{path}- name: whole
  url: {u}
  plugins:
  - name: rate-limiting
    config: {{hour: 2, limit_by: service}}
  routes:
  - {{name: w1, paths: [/w1]}}
  - {{name: w2, paths: [/w2]}}
consumers:
- username: ann
  keyauth_credentials: [{{key: one}}, {{key: two}}]
"#,
        u = b.url(),
        header = rl(", limit_by: header, header_name: x-tenant"),
        path = rl(", limit_by: path, path: /path/special"),
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let g = gw.url();
    let statuses = |url: String, headers: Vec<(&'static str, &'static str)>, n: usize| {
        let c = c.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(get(&c, &url, &headers).await.status);
            }
            out
        }
    };
    // credential: each key of the same consumer has its own budget.
    let one = vec![("apikey", "one")];
    assert_eq!(
        statuses(format!("{g}/credential"), one, 3).await,
        [200, 200, 429]
    );
    let two = vec![("apikey", "two")];
    assert_eq!(
        statuses(format!("{g}/credential"), two, 2).await,
        [200, 200]
    );
    // header: per value of X-Tenant.
    let a = vec![("x-tenant", "a")];
    assert_eq!(statuses(format!("{g}/header"), a, 3).await, [200, 200, 429]);
    let bt = vec![("x-tenant", "b")];
    assert_eq!(statuses(format!("{g}/header"), bt, 1).await, [200]);
    // path: the configured path has its own budget; other paths count by IP.
    let special = statuses(format!("{g}/path/special"), vec![], 3).await;
    assert_eq!(special, [200, 200, 429]);
    let others = statuses(format!("{g}/path/other"), vec![], 3).await;
    assert_eq!(others, [200, 200, 429]);
    // service: both routes of the service share one budget.
    assert_eq!(statuses(format!("{g}/w1"), vec![], 1).await, [200]);
    assert_eq!(statuses(format!("{g}/w2"), vec![], 2).await, [200, 429]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_not_shown_as_counted_in_the_longer_windows() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes: [{{name: r, paths: [/]}}]\n  plugins:\n  - name: rate-limiting\n    config: {{second: 2, hour: 10, limit_by: ip}}\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/x", gw.url());
    // Start early in a second so the three requests share it.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        > 100
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for _ in 0..2 {
        assert_eq!(get(&c, &url, &[]).await.status, 200);
    }
    let refused = get(&c, &url, &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-ratelimit-remaining-second"), Some("0"));
    assert_eq!(refused.header("x-ratelimit-remaining-hour"), Some("8"));
}
