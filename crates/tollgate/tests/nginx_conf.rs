//! The nginx front door: nginx-subset.md's examples verbatim (addresses
//! replaced by loopback ones) served by the real binary, nginx's location
//! order and proxy_pass URI rule, and `check`/`convert` with errors naming
//! file and line.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::{binary, temp_dir, Gateway};

/// Starts the gateway on the nginx configuration `text` (its listen is
/// replaced by the test's ephemeral port through TOLLGATE_PROXY_LISTEN).
fn serve(text: &str) -> Gateway {
    let dir = temp_dir("nginx");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).unwrap();
    Gateway::start(
        "_format_version: \"3.0\"\n",
        &[("TOLLGATE_NGINX_CONF", path.to_str().unwrap())],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_single_backend_example_proxies_everything() {
    let b = Backend::start("app").await;
    let port = b.addr.port();
    let gw = serve(&format!(
        "server {{ listen 80; location / {{ proxy_pass http://localhost:{port}; }} }}\n"
    ));
    let c = http1();
    let got = get(&c, &format!("{}/any/path?q=1", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["backend"], "app");
    assert_eq!(
        got.json()["uri"],
        "/any/path?q=1",
        "the URI passes unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_example_balances_round_robin_over_three_servers() {
    let bs = [
        Backend::start("one").await,
        Backend::start("two").await,
        Backend::start("three").await,
    ];
    let servers: String = bs
        .iter()
        .map(|b| format!(" server 127.0.0.1:{};", b.addr.port()))
        .collect();
    let gw = serve(&format!(
        "upstream backend_servers {{{servers} }}\n\
         server {{ listen 80; location / {{ proxy_pass http://backend_servers; }} }}\n"
    ));
    let c = http1();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let got = get(&c, &format!("{}/", gw.url()), &[]).await;
        assert_eq!(got.status, 200);
        *seen
            .entry(got.json()["backend"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|n| *n == 10), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn locations_follow_nginx_order_and_the_proxy_pass_uri_rule() {
    let (main, php, stat, exact) = (
        Backend::start("main").await,
        Backend::start("php").await,
        Backend::start("static").await,
        Backend::start("exact").await,
    );
    let p = |b: &Backend| b.addr.port();
    let gw = serve(&format!(
        "http {{\n\
           server {{\n\
             listen 80;\n\
             location / {{ proxy_pass http://127.0.0.1:{}; }}\n\
             location /api/ {{ proxy_pass http://127.0.0.1:{}/v2/; }}\n\
             location ~ \\.php$ {{ proxy_pass http://127.0.0.1:{}; }}\n\
             location ^~ /static/ {{ proxy_pass http://127.0.0.1:{}; }}\n\
             location = /exact {{ proxy_pass http://127.0.0.1:{}; }}\n\
           }}\n\
         }}\n",
        p(&main),
        p(&main),
        p(&php),
        p(&stat),
        p(&exact)
    ));
    let c = http1();
    let at = |path: &'static str| {
        let (c, url) = (c.clone(), format!("{}{path}", gw.url()));
        async move {
            let got = get(&c, &url, &[]).await;
            assert_eq!(got.status, 200, "{path}: {}", got.text());
            let j = got.json();
            (
                j["backend"].as_str().unwrap().to_owned(),
                j["uri"].as_str().unwrap().to_owned(),
            )
        }
    };
    let pair = |b: &str, u: &str| (b.to_owned(), u.to_owned());
    assert_eq!(at("/exact").await, pair("exact", "/exact"));
    assert_eq!(at("/exact/more").await, pair("main", "/exact/more"));
    assert_eq!(
        at("/static/app.php").await,
        pair("static", "/static/app.php"),
        "^~ beats regex"
    );
    assert_eq!(
        at("/blog/index.php").await,
        pair("php", "/blog/index.php"),
        "regex beats prefix"
    );
    assert_eq!(
        at("/api/users").await,
        pair("main", "/v2/users"),
        "URI part replaces the prefix"
    );
    assert_eq!(at("/api/x.php").await, pair("php", "/api/x.php"));
    assert_eq!(at("/else").await, pair("main", "/else"));
}

/// Runs the binary with `args`: (exit ok, stdout, stderr).
fn tollgate(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_PREFIX", temp_dir("nginx-cli"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_convert_accept_good_files_and_name_the_line_of_bad_ones() {
    let dir = temp_dir("nginx-check");
    let good = dir.join("good.conf");
    std::fs::write(
        &good,
        "worker_processes 2;\nevents { worker_connections 1024; }\nhttp {\n\
         upstream b { server 127.0.0.1:9; server 127.0.0.1:10 weight=2; least_conn; }\n\
         server { listen 8080; server_name example.com *.example.org;\n\
         location / { proxy_pass http://b; proxy_read_timeout 5s; } } }\n",
    )
    .unwrap();
    let (ok, out, err) = tollgate(&["check", "--nginx-conf", good.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("syntax is ok") && out.contains("1 upstreams"),
        "{out}"
    );
    let (ok, out, _) = tollgate(&["convert", "--nginx-conf", good.to_str().unwrap()]);
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["upstreams"][0]["algorithm"], "least-connections");
    assert_eq!(doc["upstreams"][0]["targets"][1]["weight"], 200);
    assert_eq!(doc["services"][0]["read_timeout"], 5000);
    assert_eq!(doc["services"][0]["routes"][0]["hosts"][1], "*.example.org");

    for (i, (text, line, what)) in [
        ("server { listen 80;\n", 1, "expecting \"}\""),
        ("server {\n listen 80\n}\n", 3, "missing \";\""),
        (
            "server {\n location / { proxy_pass http://127.0.0.1:1; }\n}\n}\n",
            4,
            "unexpected \"}\"",
        ),
        ("server {\n  gzip_vary on;\n}\n", 2, "gzip_vary"),
        ("bogus_main 1;\n", 1, "bogus_main"),
        (
            "server {\n location / {\n proxy_pass ftp://x;\n }\n}\n",
            3,
            "invalid URL prefix",
        ),
        (
            "server {\n location ~ \\.php$ {\n proxy_pass http://127.0.0.1:1/x/;\n }\n}\n",
            3,
            "cannot have URI part",
        ),
        (
            "server {\n location / {\n proxy_pass http://no-such-host.invalid;\n }\n}\n",
            3,
            "host not found",
        ),
        ("upstream u {\n}\n", 1, "no servers"),
        (
            "upstream u {\n server 127.0.0.1:1 weight=x;\n}\n",
            2,
            "invalid weight",
        ),
        (
            "server {\n location ~ ([a- {\n proxy_pass http://127.0.0.1:1;\n }\n}\n",
            2,
            "invalid regular expression",
        ),
        ("server {\n location / {\n }\n}\n", 2, "no proxy_pass"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("bad{i}.conf"));
        std::fs::write(&path, text).unwrap();
        let (ok, _, err) = tollgate(&["check", "--nginx-conf", path.to_str().unwrap()]);
        assert!(!ok, "{text:?} accepted");
        let place = format!("{}:{line}:", path.display());
        assert!(err.contains(&place), "{text:?}: {err}");
        assert!(err.contains(what), "{text:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_nginx_file_and_keeps_serving_when_it_breaks() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let conf =
        |port: u16| format!("server {{ location / {{ proxy_pass http://127.0.0.1:{port}; }} }}\n");
    let dir = temp_dir("nginx-reload");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf(a.addr.port())).unwrap();
    let gw = Gateway::start(
        "_format_version: \"3.0\"\n",
        &[("TOLLGATE_NGINX_CONF", path.to_str().unwrap())],
    );
    let c = http1();
    let url = format!("{}/", gw.url());
    assert_eq!(get(&c, &url, &[]).await.json()["backend"], "a");

    std::fs::write(&path, conf(b.addr.port())).unwrap();
    gw.signal("HUP");
    support::eventually(
        "the new file serves",
        std::time::Duration::from_secs(5),
        || {
            let (c, url) = (c.clone(), url.clone());
            async move { get(&c, &url, &[]).await.json()["backend"] == "b" }
        },
    )
    .await;

    let before = gw.log.lock().unwrap().len();
    std::fs::write(
        &path,
        "server { location / { proxy_pass http://127.0.0.1:1 }\n",
    )
    .unwrap();
    gw.signal("HUP");
    let line = gw.wait_log_after(before, |l| l.contains("reload refused"));
    assert!(line.contains("nginx.conf:"), "{line}");
    assert_eq!(
        get(&c, &url, &[]).await.json()["backend"],
        "b",
        "old configuration kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_no_server_names_go_to_the_default_server() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let block = |name: &str, listen: &str, port: u16| {
        format!("server {{ listen {listen}; server_name {name}; location / {{ proxy_pass http://127.0.0.1:{port}; }} }}\n")
    };
    let c = http1();
    for (marked, unknown_goes_to) in [(false, "a"), (true, "b")] {
        let second = if marked { "80 default_server" } else { "80" };
        let gw = serve(&format!(
            "{}{}",
            block("a.test", "80", a.addr.port()),
            block("b.test", second, b.addr.port())
        ));
        let to = |host: &'static str| {
            let (c, url) = (c.clone(), format!("{}/", gw.url()));
            async move { get(&c, &url, &[("host", host)]).await.json()["backend"].clone() }
        };
        assert_eq!(to("a.test").await, "a");
        assert_eq!(to("b.test").await, "b");
        assert_eq!(
            to("elsewhere.test").await,
            unknown_goes_to,
            "marked: {marked}"
        );
    }
}

/// Sends 40 simultaneous requests; returns (statuses by count, seconds until
/// the last 200 arrived).
async fn forty_at_once(url: &str) -> (HashMap<u16, usize>, f64) {
    let c = http1();
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (c, url) = (c.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let got = get(&c, &url, &[]).await;
            (got.status, start.elapsed().as_secs_f64())
        }));
    }
    let mut counts = HashMap::new();
    let mut last_ok: f64 = 0.0;
    for t in tasks {
        let (status, at) = t.await.unwrap();
        *counts.entry(status).or_default() += 1;
        if status == 200 {
            last_ok = last_ok.max(at);
        }
    }
    (counts, last_ok)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limit_req_example_serves_twenty_one_spaced_at_the_rate_and_refuses_nineteen() {
    let b = Backend::start("api").await;
    let port = b.addr.port();
    let example = |extra: &str| {
        format!(
            "http {{\n\
               limit_req_zone $binary_remote_addr zone=api_limit:10m rate=10r/s;\n\
               server {{\n\
                 location /api/ {{ limit_req zone=api_limit burst=20{extra}; proxy_pass http://127.0.0.1:{port}; }}\n\
               }}\n\
             }}\n"
        )
    };
    let gw = serve(&example(""));
    let (counts, last) = forty_at_once(&format!("{}/api/x", gw.url())).await;
    assert_eq!(counts.get(&200), Some(&21), "{counts:?}");
    assert_eq!(counts.get(&503), Some(&19), "{counts:?}");
    // The 21st waits 20 × 100 ms.
    assert!((1.8..3.5).contains(&last), "last served after {last:.2}s");
    println!("delayed: {counts:?}, last 200 after {last:.2}s");

    let gw = serve(&example(" nodelay"));
    let (counts, last) = forty_at_once(&format!("{}/api/x", gw.url())).await;
    assert_eq!(counts.get(&200), Some(&21), "{counts:?}");
    assert_eq!(counts.get(&503), Some(&19), "{counts:?}");
    assert!(last < 1.0, "nodelay: last served after {last:.2}s");
    println!("nodelay: {counts:?}, last 200 after {last:.2}s");
}
