//! Upstreams with several real loopback backends: how each algorithm
//! spreads requests, consistent hashing's stickiness, health checks taking
//! a killed target out and bringing it back, retries and their budget, and
//! the Admin API's view of target health.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::{get, http1, send, HttpClient};
use support::gateway::Gateway;

/// The name of the backend that answered (the echo's `"backend"`).
fn answered_by(got: &support::client::Got) -> String {
    got.json()["backend"].as_str().unwrap_or("?").to_owned()
}

/// Sends `n` GETs to `url` from `concurrency` tasks; counts answers by
/// backend name (non-200 answers count under their status).
async fn spread(url: &str, n: usize, concurrency: usize) -> HashMap<String, usize> {
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = http1();
            let mut seen: HashMap<String, usize> = HashMap::new();
            for _ in 0..n / concurrency {
                let got = get(&client, &url, &[]).await;
                let key = if got.status == 200 {
                    answered_by(&got)
                } else {
                    format!("status {}", got.status)
                };
                *seen.entry(key).or_default() += 1;
            }
            seen
        }));
    }
    let mut all = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    all
}

/// Asserts each backend's share of `counts` is within 5 percentage points
/// of `weights`' share.
fn assert_shares(what: &str, counts: &HashMap<String, usize>, weights: &[(&str, f64)]) {
    let total: usize = counts.values().sum();
    let wsum: f64 = weights.iter().map(|(_, w)| w).sum();
    for (name, w) in weights {
        let share = *counts.get(*name).unwrap_or(&0) as f64 / total as f64;
        let want = w / wsum;
        assert!(
            (share - want).abs() <= 0.05,
            "{what}: {name} got {:.1}% (want {:.1}%): {counts:?}",
            share * 100.0,
            want * 100.0
        );
    }
}

fn upstream(name: &str, algorithm: &str, targets: &[(&Backend, u32)], extra: &str) -> String {
    let mut s = format!("  - name: {name}\n    algorithm: {algorithm}\n{extra}    targets:\n");
    for (b, w) in targets {
        s.push_str(&format!(
            "      - target: {}\n        weight: {w}\n",
            b.addr
        ));
    }
    s
}

fn service(name: &str, host: &str, path: &str) -> String {
    format!(
        "  - name: {name}\n    host: {host}\n    port: 80\n    routes:\n      - paths: [\"{path}\"]\n"
    )
}

/// A declarative document with these upstreams and services.
fn document(upstreams: &[String], services: &[String]) -> String {
    format!(
        "_format_version: \"3.0\"\nupstreams:\n{}services:\n{}",
        upstreams.concat(),
        services.concat()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_algorithms_spread_requests_1_2_3() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let t = [(&a, 100), (&b, 200), (&c, 300)];
    let algorithms = ["round-robin", "least-connections", "random"];
    let config = document(
        &algorithms.map(|alg| upstream(&format!("{alg}.up"), alg, &t, "")),
        &algorithms.map(|alg| service(alg, &format!("{alg}.up"), &format!("/{alg}"))),
    );
    let gw = Gateway::start(&config, &[]);
    let weights = [("a", 1.0), ("b", 2.0), ("c", 3.0)];
    // least-connections (as nginx's least_conn) and random (two draws by
    // weight) send to the fewest in flight per weight and break ties by
    // weight: one client at a time always ties, so they follow the weights
    // (how they avoid busy targets is tested below).
    for (alg, clients) in [("round-robin", 4), ("least-connections", 1), ("random", 1)] {
        let counts = spread(&format!("{}/{alg}", gw.url()), 6_000, clients).await;
        assert_shares(alg, &counts, &weights);
    }
    // Smooth round-robin has no bursts: one client sees a fixed interleave.
    let client = http1();
    let mut order = String::new();
    for _ in 0..6 {
        order.push_str(&answered_by(
            &get(&client, &format!("{}/round-robin", gw.url()), &[]).await,
        ));
    }
    let runs = order
        .as_bytes()
        .windows(3)
        .filter(|w| w[0] == w[1] && w[1] == w[2])
        .count();
    assert_eq!(runs, 0, "three in a row to one target: {order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_is_sticky_and_a_new_target_takes_about_a_quarter_of_keys() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
        Backend::start("d").await,
    ];
    let config = |n: usize| {
        let t: Vec<(&Backend, u32)> = backends[..n].iter().map(|b| (b, 100)).collect();
        document(
            &[
                upstream(
                    "hash.up",
                    "consistent-hashing",
                    &t,
                    "    hash_on: header\n    hash_on_header: x-user\n    hash_fallback: query_arg\n    hash_fallback_query_arg: user\n",
                ),
                upstream(
                    "sticky.up",
                    "consistent-hashing",
                    &t,
                    "    hash_on: cookie\n    hash_on_cookie: tg-sticky\n    hash_on_cookie_path: /sticky\n",
                ),
            ],
            &[
                service("hash", "hash.up", "/hash"),
                service("sticky", "sticky.up", "/sticky"),
            ],
        )
    };
    let gw = Gateway::start(&config(3), &[]);
    let client = http1();
    let url = format!("{}/hash", gw.url());
    let mut before = Vec::new();
    for k in 0..300 {
        let user = format!("user-{k}");
        let got = get(&client, &url, &[("x-user", &user)]).await;
        before.push(answered_by(&got));
    }
    let mut per_target: HashMap<&str, usize> = HashMap::new();
    for b in &before {
        *per_target.entry(b).or_default() += 1;
    }
    assert_eq!(per_target.len(), 3, "{per_target:?}");
    for k in (0..300).step_by(7) {
        let user = format!("user-{k}");
        // Same key, same target; the fallback key (query) is used when the
        // header is missing and lands where the same value did.
        let got = get(&client, &url, &[("x-user", &user)]).await;
        assert_eq!(answered_by(&got), before[k]);
        let got = get(&client, &format!("{url}?user={user}"), &[]).await;
        assert_eq!(answered_by(&got), before[k]);
    }

    let line = gw.reload_with(&config(4));
    assert!(line.contains("reloaded"), "{line}");
    let mut moved = 0;
    for (k, old) in before.iter().enumerate() {
        let user = format!("user-{k}");
        let now = answered_by(&get(&client, &url, &[("x-user", &user)]).await);
        if &now != old {
            assert_eq!(now, "d", "key {user} moved between old targets");
            moved += 1;
        }
    }
    assert!((40..=110).contains(&moved), "{moved} of 300 keys moved");

    // hash_on cookie: the first answer sets the cookie; sending it back sticks.
    let sticky = format!("{}/sticky", gw.url());
    let first = get(&client, &sticky, &[]).await;
    let set = first.header("set-cookie").expect("set-cookie").to_owned();
    assert!(
        set.starts_with("tg-sticky=") && set.ends_with("; Path=/sticky"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let owner = answered_by(&first);
    for _ in 0..10 {
        let got = get(&client, &sticky, &[("cookie", &cookie)]).await;
        assert_eq!(answered_by(&got), owner);
        assert!(got.header("set-cookie").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_least_connections_and_random_avoid_a_slow_target() {
    let fast1 = Backend::start("fast1").await;
    let fast2 = Backend::start("fast2").await;
    let slow = Backend::start_with(
        "slow",
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(40),
    )
    .await;
    let t = [(&fast1, 100), (&fast2, 100), (&slow, 100)];
    let config = document(
        &[
            upstream("lat.up", "latency", &t, ""),
            upstream("lc.up", "least-connections", &t, ""),
            upstream("p2c.up", "random", &t, ""),
        ],
        &[
            service("lat", "lat.up", "/lat"),
            service("lc", "lc.up", "/lc"),
            service("p2c", "p2c.up", "/p2c"),
        ],
    );
    let gw = Gateway::start(&config, &[]);
    // Round-robin would give it a third.
    for (path, most) in [("lat", 0.10), ("lc", 0.15), ("p2c", 0.20)] {
        let counts = spread(&format!("{}/{path}", gw.url()), 600, 4).await;
        let total: usize = counts.values().sum();
        let slow_share = *counts.get("slow").unwrap_or(&0) as f64 / total as f64;
        assert!(
            slow_share < most,
            "{path}: slow target got {:.1}%: {counts:?}",
            slow_share * 100.0
        );
    }
}

/// Waits (up to 5 s) until target `key` of `upstream` reports `want`.
async fn wait_health(client: &HttpClient, admin: &str, upstream: &str, key: &str, want: &str) {
    let started = Instant::now();
    loop {
        let now = health(client, admin, upstream).await[key].clone();
        if now == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} still {now}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PUT /upstreams/{upstream}/targets/{target}/{verdict}`; returns the status.
async fn mark(
    client: &HttpClient,
    admin: &str,
    upstream: &str,
    target: &str,
    verdict: &str,
) -> u16 {
    let url = format!("{admin}/upstreams/{upstream}/targets/{target}/{verdict}");
    send(client, "PUT", &url, None, &[]).await.status
}

/// The Admin API's health words for an upstream's targets, by `host:port`.
async fn health(client: &HttpClient, admin: &str, upstream: &str) -> HashMap<String, String> {
    let got = get(client, &format!("{admin}/upstreams/{upstream}/health"), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    got.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_owned(),
                t["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_costs_no_errors_is_marked_down_and_comes_back_through_active_checks() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let checks = "    healthchecks:
      active:
        type: http
        http_path: /status/200
        healthy: {interval: 0, successes: 2}
        unhealthy: {interval: 0.2, tcp_failures: 1}
      passive:
        unhealthy: {tcp_failures: 2, cooldown: 0}
";
    let config = document(
        &[upstream(
            "pool.up",
            "round-robin",
            &[(&a, 100), (&b, 100), (&c, 100)],
            checks,
        )],
        &[service("pool", "pool.up", "/pool")],
    );
    let gw = Gateway::start(&config, &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
    let client = http1();
    let admin = gw.admin_url();
    let b_key = b.addr.to_string();
    assert_eq!(health(&client, &admin, "pool.up").await[&b_key], "HEALTHY");

    // Load from 4 clients; target b dies in the middle of it.
    let url = format!("{}/pool", gw.url());
    let load = tokio::spawn(async move { spread(&url, 800, 4).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b_addr = b.addr;
    drop(b);
    let counts = load.await.unwrap();
    let errors: Vec<_> = counts
        .iter()
        .filter(|(k, _)| k.starts_with("status"))
        .collect();
    assert!(errors.is_empty(), "client-visible errors: {counts:?}");
    assert!(
        counts.get("b").is_some_and(|n| *n > 0),
        "b served before dying: {counts:?}"
    );
    assert_eq!(
        health(&client, &admin, "pool.up").await[&b_key],
        "UNHEALTHY"
    );

    // While down, b gets nothing; once it is back, active checks (every
    // 0.2 s, 2 successes) return it to the pool.
    let b = Backend::start_with("b", b_addr, Duration::ZERO).await;
    let started = Instant::now();
    while health(&client, &admin, "pool.up").await[&b_key] != "HEALTHY" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = spread(&format!("{}/pool", gw.url()), 60, 1).await;
    assert_eq!(counts.get("b"), Some(&20), "{counts:?}");
    assert!(b.hits.load(Ordering::SeqCst) >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_move_to_another_target_within_the_retry_budget() {
    let alive = Backend::start("alive").await;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "_format_version: \"3.0\"
upstreams:
  - name: half.up
    targets:
      - target: {}
      - target: {dead}
services:
  - name: half
    host: half.up
    port: 80
    retries: 5
    routes:
      - paths: [\"/half\"]
",
        alive.addr
    );
    let gw = Gateway::start(&config, &[]);
    let client = http1();
    let started = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    for _ in 0..400 {
        let got = get(&client, &format!("{}/half", gw.url()), &[]).await;
        match got.status {
            200 => ok += 1,
            502 => failed += 1,
            s => panic!("unexpected {s}: {}", got.text()),
        }
    }
    let secs = started.elapsed().as_secs_f64().ceil();
    // Half the requests go to the dead target first; each needs a retry.
    // The budget allows 20 % of requests plus 10 per second.
    let retries = ok - 200;
    let allowed = (0.2 * 400.0 + 10.0 * secs) as usize + 2;
    assert!(failed > 0, "no retry was refused ({ok} ok)");
    assert!(retries <= allowed, "{retries} retries > budget {allowed}");
    assert!(retries >= 80, "only {retries} retries");
    assert_eq!(alive.hits.load(Ordering::SeqCst), ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_marked_down_through_the_admin_api_get_no_traffic_then_503() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = document(
        &[upstream(
            "two.up",
            "round-robin",
            &[(&a, 100), (&b, 100)],
            "",
        )],
        &[service("two", "two.up", "/two")],
    );
    let gw = Gateway::start(&config, &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
    let client = http1();
    let admin = gw.admin_url();
    let h = health(&client, &admin, "two.up").await;
    assert!(h.values().all(|v| v == "HEALTHCHECKS_OFF"), "{h:?}");

    let (a_key, b_key) = (a.addr.to_string(), b.addr.to_string());
    assert_eq!(
        mark(&client, &admin, "two.up", &a_key, "unhealthy").await,
        204
    );
    assert_eq!(health(&client, &admin, "two.up").await[&a_key], "UNHEALTHY");
    let counts = spread(&format!("{}/two", gw.url()), 20, 1).await;
    assert_eq!(counts.get("b"), Some(&20), "{counts:?}");

    assert_eq!(
        mark(&client, &admin, "two.up", &b_key, "unhealthy").await,
        204
    );
    let got = get(&client, &format!("{}/two", gw.url()), &[]).await;
    assert_eq!(got.status, 503);
    assert!(
        got.text()
            .contains("failure to get a peer from the ring-balancer"),
        "{}",
        got.text()
    );
    let got = get(
        &client,
        &format!("{admin}/upstreams/two.up/health?balancer_health=1"),
        &[],
    )
    .await;
    assert_eq!(got.json()["data"]["health"], "UNHEALTHY");

    assert_eq!(
        mark(&client, &admin, "two.up", &a_key, "healthy").await,
        204
    );
    let got = get(&client, &format!("{}/two", gw.url()), &[]).await;
    assert_eq!(answered_by(&got), "a");
    assert_eq!(
        mark(&client, &admin, "two.up", "127.0.0.1:1", "healthy").await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_at_its_circuit_breaker_limit_fails_fast_with_503() {
    let slow = Backend::start_with(
        "slow",
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(400),
    )
    .await;
    let config = document(
        &[upstream(
            "cb.up",
            "round-robin",
            &[(&slow, 100)],
            "    circuit_breakers: {max_requests: 2}\n",
        )],
        &[service("cb", "cb.up", "/cb")],
    );
    let gw = Gateway::start(&config, &[]);
    let url = format!("{}/cb", gw.url());
    let mut tasks = Vec::new();
    for k in 0..5u64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // The first two are in flight before the others arrive.
            tokio::time::sleep(Duration::from_millis(if k < 2 { 0 } else { 100 })).await;
            let started = Instant::now();
            let got = get(&http1(), &url, &[]).await;
            (got.status, got.text(), started.elapsed())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, text, took) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(text.contains("overloaded"), "{text}");
                assert!(took < Duration::from_millis(200), "503 took {took:?}");
            }
            s => panic!("unexpected {s}: {text}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(slow.hits.load(Ordering::SeqCst), 2);
    // Once they finish, the target takes requests again.
    assert_eq!(get(&http1(), &url, &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_pending_connections_fail_fast() {
    // A listener that never accepts, its backlog filled: further connects
    // hang until the gateway's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let stuck = socket.listen(1).unwrap();
    let addr = stuck.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let config = format!(
        "_format_version: \"3.0\"
upstreams:
  - name: pending.up
    circuit_breakers: {{max_pending_connections: 1}}
    targets:
      - target: {addr}
services:
  - name: pending
    host: pending.up
    port: 80
    retries: 0
    connect_timeout: 1500
    routes:
      - paths: [\"/pending\"]
"
    );
    let gw = Gateway::start(&config, &[]);
    let url = format!("{}/pending", gw.url());
    let hanging = {
        let url = url.clone();
        tokio::spawn(async move { get(&http1(), &url, &[]).await.status })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let got = get(&http1(), &url, &[]).await;
    assert_eq!(got.status, 503, "{}", got.text());
    assert!(got.text().contains("overloaded"), "{}", got.text());
    assert!(started.elapsed() < Duration::from_millis(300));
    // The first one waited out its connect timeout.
    assert_eq!(hanging.await.unwrap(), 504);
    drop(fillers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_marks_and_warm_connections_survive_a_reload_that_keeps_the_upstream() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |extra: &str| {
        document(
            &[upstream(
                "keep.up",
                "round-robin",
                &[(&a, 100), (&b, 100)],
                "",
            )],
            &[service("keep", "keep.up", "/keep"), extra.to_owned()],
        )
    };
    let gw = Gateway::start(
        &config(""),
        &[
            ("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0"),
            ("TOLLGATE_WORKER_THREADS", "1"),
        ],
    );
    let client = http1();
    let admin = gw.admin_url();
    let counts = spread(&format!("{}/keep", gw.url()), 10, 1).await;
    assert_eq!(counts.get("b"), Some(&5), "{counts:?}");
    let a_key = a.addr.to_string();
    assert_eq!(
        mark(&client, &admin, "keep.up", &a_key, "unhealthy").await,
        204
    );
    let b_connections = b.connections.load(Ordering::SeqCst);

    let line = gw.reload_with(&config(&service("other", "127.0.0.1", "/other")));
    assert!(line.contains("reloaded"), "{line}");
    assert_eq!(
        health(&client, &admin, "keep.up").await[&a_key],
        "UNHEALTHY"
    );
    let counts = spread(&format!("{}/keep", gw.url()), 10, 1).await;
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        b_connections,
        "pool was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_settings_bound_backend_connection_reuse() {
    let backend = Backend::start("a").await;
    let config = format!(
        "_format_version: \"3.0\"\nservices:\n  - name: s\n    url: {}\n    routes:\n      - paths: [\"/\"]\n",
        backend.url()
    );
    let single = [("TOLLGATE_WORKER_THREADS", "1")];
    for (setting, value, connections) in [
        ("TOLLGATE_UPSTREAM_KEEPALIVE_MAX_REQUESTS", "2", 5),
        ("TOLLGATE_UPSTREAM_KEEPALIVE_POOL_SIZE", "0", 10),
    ] {
        let before = backend.connections.load(Ordering::SeqCst);
        let gw = Gateway::start(&config, &[single[0], (setting, value)]);
        let client = http1();
        for _ in 0..10 {
            assert_eq!(
                get(&client, &format!("{}/", gw.url()), &[]).await.status,
                200
            );
        }
        let opened = backend.connections.load(Ordering::SeqCst) - before;
        assert_eq!(opened, connections, "{setting}={value}");
    }
    // A bad value is refused, naming the setting.
    let out = std::process::Command::new(support::gateway::binary())
        .arg("check")
        .env("TOLLGATE_DATABASE", "off")
        .env("TOLLGATE_UPSTREAM_KEEPALIVE_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOLLGATE_UPSTREAM_KEEPALIVE_POOL_SIZE"),
        "{err}"
    );
}

/// An HTTPS health endpoint (certificate from `pki`) answering `status`.
async fn https_health_server(
    pki: &support::tls::TestPki,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, status) = (acceptor.clone(), status.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let code = status.load(Ordering::SeqCst);
                let answer =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_active_checks_verify_the_certificate_and_follow_the_status() {
    let dir = support::gateway::temp_dir("https-probe");
    let pki = support::tls::TestPki::new(&dir);
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
    let addr = https_health_server(&pki, status.clone()).await;
    let config = format!(
        "_format_version: \"3.0\"
upstreams:
  - name: tls.up
    healthchecks:
      active:
        type: https
        http_path: /ready
        healthy: {{interval: 0.1, successes: 1}}
        unhealthy: {{interval: 0.1, http_failures: 1}}
    targets:
      - target: {addr}
"
    );
    let gw = Gateway::start(
        &config,
        &[
            ("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0"),
            (
                "TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE",
                pki.ca_file.to_str().unwrap(),
            ),
        ],
    );
    let client = http1();
    let admin = gw.admin_url();
    let key = addr.to_string();
    wait_health(&client, &admin, "tls.up", &key, "HEALTHY").await;
    status.store(500, Ordering::SeqCst);
    wait_health(&client, &admin, "tls.up", &key, "UNHEALTHY").await;
    status.store(200, Ordering::SeqCst);
    wait_health(&client, &admin, "tls.up", &key, "HEALTHY").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_upstreams_balance_over_named_targets_and_keep_health_across_other_writes() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let client = http1();
    let admin = gw.admin_url();
    let form = |url: String, body: String| {
        let client = client.clone();
        async move {
            let got = support::client::post_form(&client, &url, &body).await;
            assert_eq!(got.status, 201, "{url} {body}: {}", got.text());
        }
    };
    form(format!("{admin}/upstreams"), "name=api.up".into()).await;
    form(
        format!("{admin}/upstreams/api.up/targets"),
        format!("target={}", a.addr),
    )
    .await;
    // A target by host name, resolved through the system resolver.
    let named = format!("localhost:{}", b.addr.port());
    form(
        format!("{admin}/upstreams/api.up/targets"),
        format!("target={named}"),
    )
    .await;
    form(
        format!("{admin}/services"),
        "name=api&host=api.up&port=80".into(),
    )
    .await;
    form(
        format!("{admin}/services/api/routes"),
        "paths[]=/api".into(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = spread(&format!("{}/api", gw.url()), 10, 1).await;
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&5), Some(&5)),
        "{counts:?}"
    );

    assert_eq!(
        mark(&client, &admin, "api.up", &named, "unhealthy").await,
        204
    );
    // Writes to other entities recompile the configuration; the mark stays.
    form(
        format!("{admin}/services"),
        "name=other&url=http://127.0.0.1:9".into(),
    )
    .await;
    form(
        format!("{admin}/services/other/routes"),
        "paths[]=/other".into(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health(&client, &admin, "api.up").await[&named], "UNHEALTHY");
    let counts = spread(&format!("{}/api", gw.url()), 10, 1).await;
    assert_eq!(counts.get("a"), Some(&10), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_checks_count_failing_statuses_and_tcp_probes_see_a_target_come_back() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    // Active tcp probes every 0.1 s: one failed connect marks down, one
    // successful connect brings back.
    let spare = Backend::start("spare").await;
    let spare_addr = spare.addr;
    drop(spare);
    let tcp = format!(
        "  - name: tcp.up
    healthchecks:
      active:
        type: tcp
        healthy: {{interval: 0.1, successes: 1}}
        unhealthy: {{interval: 0.1, tcp_failures: 1}}
    targets:
      - target: {spare_addr}
"
    );
    let config = document(
        &[
            // Passive: two 500s mark a target down (cool-down off).
            upstream(
                "statuses.up",
                "round-robin",
                &[(&a, 100), (&b, 100)],
                "    healthchecks:\n      passive:\n        unhealthy: {http_failures: 2, cooldown: 0}\n",
            ),
            tcp,
        ],
        &[service("statuses", "statuses.up", "/statuses")],
    );
    let gw = Gateway::start(&config, &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
    let client = http1();
    let admin = gw.admin_url();
    // Round-robin alternates a, b: four /status/500 give each target two.
    for _ in 0..4 {
        let got = get(&client, &format!("{}/statuses/status/500", gw.url()), &[]).await;
        assert_eq!(got.status, 500);
    }
    let h = health(&client, &admin, "statuses.up").await;
    assert!(h.values().all(|v| v == "UNHEALTHY"), "{h:?}");
    let got = get(&client, &format!("{}/statuses", gw.url()), &[]).await;
    assert_eq!(got.status, 503);

    let key = spare_addr.to_string();
    wait_health(&client, &admin, "tcp.up", &key, "UNHEALTHY").await;
    let _back = Backend::start_with("spare", spare_addr, Duration::ZERO).await;
    wait_health(&client, &admin, "tcp.up", &key, "HEALTHY").await;
}
