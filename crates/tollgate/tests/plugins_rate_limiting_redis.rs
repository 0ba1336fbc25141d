//! rate-limiting with `policy: redis` against a real redis-server: two
//! gateway nodes enforce one limit together, and a Redis crash is let
//! through (`fault_tolerant: true`) or answered 500 (`false`) until Redis
//! is back, without restarting the nodes.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::Gateway;
use support::redis::Redis;

fn config(backend: &str, redis_port: u16, fault_tolerant: bool) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {backend}
  routes: [{{name: r, paths: [/api]}}]
  plugins:
  - name: rate-limiting
    config:
      minute: 60
      limit_by: ip
      policy: redis
      fault_tolerant: {fault_tolerant}
      redis: {{host: 127.0.0.1, port: {redis_port}, timeout: 500}}
"#
    )
}

/// Waits until a minute has at least 20 s left, so a test's requests fall
/// in one window.
async fn early_in_a_minute() {
    loop {
        let s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60;
        if s < 40 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_one_redis_limit_exactly() {
    let b = Backend::start("b").await;
    let redis = Redis::start();
    let cfg = config(&b.url(), redis.port, true);
    let (one, two) = (Gateway::start(&cfg, &[]), Gateway::start(&cfg, &[]));
    early_in_a_minute().await;
    let c = http1();
    // 100 requests, 25 at a time, spread over both nodes.
    let mut passed = 0;
    let mut refused = 0;
    for batch in 0..4 {
        let mut tasks = Vec::new();
        for i in 0..25 {
            let url = format!(
                "{}/api/x",
                if (batch + i) % 2 == 0 {
                    one.url()
                } else {
                    two.url()
                }
            );
            let c = c.clone();
            tasks.push(tokio::spawn(async move { get(&c, &url, &[]).await }));
        }
        for t in tasks {
            let got = t.await.unwrap();
            match got.status {
                200 => passed += 1,
                429 => {
                    refused += 1;
                    assert_eq!(got.json()["message"], "API rate limit exceeded");
                    assert_eq!(got.header("x-ratelimit-remaining-minute"), Some("0"));
                }
                s => panic!("unexpected {s}: {}", got.text()),
            }
        }
    }
    assert_eq!((passed, refused), (60, 40));
    let got = get(&c, &format!("{}/api/x", one.url()), &[]).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.header("x-ratelimit-limit-minute"), Some("60"));
    assert!(got.header("retry-after").is_some());
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_crash_is_let_through_or_refused_by_fault_tolerant_until_redis_is_back() {
    let b = Backend::start("b").await;
    let mut redis = Redis::start();
    let tolerant = Gateway::start(&config(&b.url(), redis.port, true), &[]);
    let strict = Gateway::start(&config(&b.url(), redis.port, false), &[]);
    let c = http1();
    let t_url = format!("{}/api/x", tolerant.url());
    let s_url = format!("{}/api/x", strict.url());
    let got = get(&c, &s_url, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("x-ratelimit-limit-minute"), Some("60"));

    redis.kill();
    let got = get(&c, &t_url, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("x-ratelimit-limit-minute"), None);
    // Let through, but counted where operators look.
    let status = format!("http://{}/status", tolerant.status.unwrap());
    let failures = get(&c, &status, &[]).await.json()["plugins"]["rate_limiting_redis_failures"]
        .as_u64()
        .unwrap();
    assert_eq!(failures, 1);
    let got = get(&c, &s_url, &[]).await;
    assert_eq!(got.status, 500, "{}", got.text());
    assert_eq!(got.json()["message"], "An unexpected error occurred");

    // Redis comes back on the same port: the nodes reconnect by themselves.
    redis.restart();
    let got = get(&c, &s_url, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.header("x-ratelimit-remaining-minute").is_some());
}
