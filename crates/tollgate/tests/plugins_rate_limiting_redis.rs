//! rate-limiting with `policy: redis` against a real redis-server: two
//! gateway nodes enforce one limit together, and a Redis crash is let
//! through (`fault_tolerant: true`) or answered 500 (`false`) until Redis
//! is back, without restarting the nodes. With `sync_rate`, nodes decide
//! locally and share their counts through Redis at each sync. Sliding
//! windows work on Redis as they do locally. Redis over TLS, verified or not.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::Gateway;
use support::redis::Redis;

fn config(backend: &str, redis_port: u16, fault_tolerant: bool) -> String {
    config_with(backend, fault_tolerant, "minute: 60", &redis_at(redis_port))
}

/// The `redis` settings of a plain-TCP Redis on `port`.
fn redis_at(port: u16) -> String {
    format!("host: 127.0.0.1, port: {port}, timeout: 500")
}

/// A route `/api` limited by IP on Redis: `settings` (YAML flow mapping
/// entries) for the windows and the rest, `redis` for the connection.
fn config_with(backend: &str, fault_tolerant: bool, settings: &str, redis: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {backend}
  routes: [{{name: r, paths: [/api]}}]
  plugins:
  - name: rate-limiting
    config: {{{settings}, limit_by: ip, policy: redis, fault_tolerant: {fault_tolerant}, redis: {{{redis}}}}}
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

#[tokio::test(flavor = "multi_thread")]
async fn batched_nodes_decide_locally_and_learn_each_others_counts_at_each_sync() {
    let b = Backend::start("b").await;
    let redis = Redis::start();
    let cfg = config_with(
        &b.url(),
        true,
        "minute: 20, sync_rate: 0.05",
        &redis_at(redis.port),
    );
    let (one, two) = (Gateway::start(&cfg, &[]), Gateway::start(&cfg, &[]));
    early_in_a_minute().await;
    let c = http1();
    let (u1, u2) = (
        format!("{}/api/x", one.url()),
        format!("{}/api/x", two.url()),
    );
    for i in 0..20 {
        let got = get(&c, &u1, &[]).await;
        assert_eq!(got.status, 200, "request {i}: {}", got.text());
        assert_eq!(
            got.header("x-ratelimit-remaining-minute"),
            Some((19 - i).to_string().as_str())
        );
    }
    assert_eq!(get(&c, &u1, &[]).await.status, 429);
    // Node two never saw this client: its first decision reads the
    // shared total from Redis.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = get(&c, &u2, &[]).await;
    assert_eq!(got.status, 429, "{}", got.text());
    assert_eq!(got.header("x-ratelimit-remaining-minute"), Some("0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_overshoot_is_bounded_by_what_the_nodes_admit_between_syncs() {
    let b = Backend::start("b").await;
    let redis = Redis::start();
    let cfg = config_with(
        &b.url(),
        true,
        "minute: 100, sync_rate: 0.05",
        &redis_at(redis.port),
    );
    let (one, two) = (Gateway::start(&cfg, &[]), Gateway::start(&cfg, &[]));
    early_in_a_minute().await;
    let c = http1();
    let urls = [
        format!("{}/api/x", one.url()),
        format!("{}/api/x", two.url()),
    ];
    // 300 requests alternating between the nodes, one every 5 ms: each
    // node sees at most ~5 of the other's requests per 50 ms sync.
    let mut passed = 0;
    for i in 0..300 {
        let got = get(&c, &urls[i % 2], &[]).await;
        match got.status {
            200 => passed += 1,
            429 => {}
            s => panic!("unexpected {s}: {}", got.text()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    eprintln!("{passed} of 300 passed");
    assert!((100..=112).contains(&passed), "{passed} passed");
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_nodes_go_on_deciding_locally_while_redis_is_down() {
    let b = Backend::start("b").await;
    let mut redis = Redis::start();
    let cfg = config_with(
        &b.url(),
        true,
        "minute: 5, sync_rate: 0.05",
        &redis_at(redis.port),
    );
    let gw = Gateway::start(&cfg, &[]);
    early_in_a_minute().await;
    let c = http1();
    let url = format!("{}/api/x", gw.url());
    assert_eq!(get(&c, &url, &[]).await.status, 200);
    redis.kill();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Still limited, by this node's own counts.
    let passed = {
        let mut n = 0;
        for _ in 0..8 {
            if get(&c, &url, &[]).await.status == 200 {
                n += 1;
            }
        }
        n
    };
    assert_eq!(passed, 4);
    // The next sync (every 50 ms) fails, and is counted.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = format!("http://{}/status", gw.status.unwrap());
    let failures = get(&c, &status, &[]).await.json()["plugins"]["rate_limiting_redis_failures"]
        .as_u64()
        .unwrap();
    assert!(failures >= 1, "{failures}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sliding_window_on_redis_still_counts_part_of_the_previous_window() {
    let b = Backend::start("b").await;
    let redis = Redis::start();
    let cfg = config_with(
        &b.url(),
        false,
        "second: 10, window_type: sliding",
        &redis_at(redis.port),
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/api/x", gw.url());
    support::windows::assert_sliding_second_of_ten(&c, &url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_is_verified_against_the_trusted_authorities_when_asked() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("redis-tls");
    let pki = support::tls::TestPki::new(&dir);
    let redis = Redis::start_tls(&pki);
    let ca = pki.ca_file.to_str().unwrap();
    let tls = |verify: bool| {
        let redis = format!(
            "host: 127.0.0.1, port: {}, ssl: true, ssl_verify: {verify}, server_name: localhost",
            redis.port
        );
        config_with(&b.url(), false, "minute: 3", &redis)
    };
    let c = http1();
    // Verification off (Kong's default): any certificate will do.
    let unverified = Gateway::start(&tls(false), &[]);
    // Verified against the test CA.
    let verified = Gateway::start(&tls(true), &[("TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE", ca)]);
    for gw in [&unverified, &verified] {
        let url = format!("{}/api/x", gw.url());
        let got = get(&c, &url, &[]).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(got.header("x-ratelimit-remaining-minute").is_some());
    }
    // Verified against the system's authorities only: the handshake fails,
    // and with fault_tolerant off the request is answered 500.
    let wary = Gateway::start(&tls(true), &[]);
    let got = get(&c, &format!("{}/api/x", wary.url()), &[]).await;
    assert_eq!(got.status, 500, "{}", got.text());
    let _ = std::fs::remove_dir_all(dir);
}
