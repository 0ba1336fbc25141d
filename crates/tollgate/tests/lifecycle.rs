//! Node life cycle: `check`, hot reload under load, refused broken files,
//! graceful shutdown, and the status listener.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::{binary, temp_dir, Gateway};

fn config(url: &str, route: &str) -> String {
    format!("_format_version: \"3.0\"\nservices:\n- name: s\n  url: {url}\n  routes:\n  - name: r\n    paths: [{route}]\n")
}

#[test]
fn check_exits_0_for_a_good_file_and_1_naming_the_problem_for_a_bad_one() {
    let dir = temp_dir("check");
    let good = dir.join("good.yml");
    std::fs::write(&good, config("http://127.0.0.1:9", "/a")).unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "_format_version: \"3.0\"\nservices:\n- name: orders\n  url: http://127.0.0.1:9\n  routes:\n  - paths: [/a]\n    strip_pth: true\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml"), "{err}");
    assert!(err.contains("orders"), "{err}");
    assert!(err.contains("strip_pth"), "{err}");

    // A certificate whose key is not its own is refused, naming the field.
    let made = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let yaml_block = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let mismatched = dir.join("mismatched.yml");
    std::fs::write(
        &mismatched,
        format!(
            "_format_version: \"3.0\"\ncertificates:\n  - cert: |\n{}    key: |\n{}    snis: [a.test]\n",
            yaml_block(&made.cert.pem()),
            yaml_block(&other.serialize_pem())
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&mismatched)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mismatched.yml") && err.contains("key: does not match"),
        "{err}"
    );

    // Stream protocols are not there yet: refused, never proxied as HTTP.
    let tls = dir.join("tls.yml");
    std::fs::write(&tls, config("tcp://127.0.0.1:9443", "/a")).unwrap();
    let out = Command::new(binary())
        .args(["check"])
        .arg(&tls)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported yet"));

    let out = Command::new(binary())
        .args(["check"])
        .env("TOLLGATE_DECLARATIVE_CONFIG", &good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_reloads_under_load_lose_no_request_and_broken_files_are_refused() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&config(&b.url(), "/"), &[("TOLLGATE_ACCESS_LOG", "off")]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), gw.url());
        load.push(tokio::spawn(async move {
            let c = http1();
            while !stop.load(Ordering::Relaxed) {
                let g = get(&c, &format!("{url}/x"), &[]).await;
                if g.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 0..20 {
        // Alternate between two equivalent files so every reload changes something.
        let route = if i % 2 == 0 { "/" } else { "/x" };
        let line = tokio::task::block_in_place(|| gw.reload_with(&config(&b.url(), route)));
        assert!(line.contains("reloaded"), "{line}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = tokio::task::block_in_place(|| {
        gw.reload_with("_format_version: \"3.0\"\nservices: [{name: s, url: 'nope://'}]\n")
    });
    assert!(line.contains("refused"), "{line}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    // The old configuration still serves after the refused reload.
    assert_eq!(
        get(&http1(), &format!("{}/x", gw.url()), &[]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_command_signals_the_running_node() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&config(&b.url(), "/old"), &[]);
    assert_eq!(
        get(&http1(), &format!("{}/new", gw.url()), &[])
            .await
            .status,
        404
    );
    std::fs::write(&gw.config, config(&b.url(), "/new")).unwrap();
    let before = gw.log.lock().unwrap().len();
    let out = Command::new(binary())
        .arg("reload")
        .env("TOLLGATE_PREFIX", gw.dir.join("prefix"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::task::block_in_place(|| gw.wait_log_after(before, |l| l.contains("reloaded")));
    assert_eq!(
        get(&http1(), &format!("{}/new", gw.url()), &[])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_an_in_flight_slow_request_then_exits_0() {
    let b = Backend::start("b").await;
    let mut gw = Gateway::start(&config(&b.url(), "/"), &[]);
    let url = gw.url();
    let slow = tokio::spawn(async move { get(&http1(), &format!("{url}/slow/1500"), &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("TERM");
    // New connections are refused soon after the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(gw.proxy).await.is_err(),
        "still accepting after SIGTERM"
    );
    let got = slow.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "slept 1500");
    let status = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10)));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_listener_reports_ready_and_counts() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&config(&b.url(), "/"), &[]);
    let status = gw.status.unwrap();
    let got = get(&http1(), &format!("http://{status}/status/ready"), &[]).await;
    assert_eq!(got.status, 200);
    let got = get(&http1(), &format!("http://{status}/status"), &[]).await;
    assert_eq!(got.json()["configuration"]["routes"], 1);
}

#[test]
fn one_worker_thread_serves_from_environment_settings_alone() {
    // The README's DB-less example: settings only from the environment.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Backend::start("b").await;
        let gw = Gateway::start(&config(&b.url(), "/"), &[("TOLLGATE_WORKER_THREADS", "1")]);
        assert_eq!(
            get(&http1(), &format!("{}/", gw.url()), &[]).await.status,
            200
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_and_keepalive_connections_survive_a_reload() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let b = Backend::start("b").await;
    let gw = Gateway::start(&config(&b.url(), "/"), &[]);
    let stream = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.proxy), stream)
        .await
        .unwrap();
    // A keep-alive HTTP/1.1 connection opened before the reload.
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(gw.proxy).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = || {
        http::Request::get("/x")
            .header("host", "a")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    assert_eq!(send.send_request(req()).await.unwrap().status(), 200);

    let line = tokio::task::block_in_place(|| gw.reload_with(&config(&b.url(), "/x")));
    assert!(line.contains("reloaded"), "{line}");

    ws.send(Message::text("after reload")).await.unwrap();
    let m = ws.next().await.unwrap().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "after reload");
    send.ready().await.unwrap();
    assert_eq!(send.send_request(req()).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_cannot_share_a_port_or_a_prefix() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&config(&b.url(), "/"), &[]);
    let run = |port: String, prefix: std::path::PathBuf| {
        Command::new(binary())
            .arg("run")
            .env("TOLLGATE_DATABASE", "off")
            .env("TOLLGATE_PROXY_LISTEN", port)
            .env("TOLLGATE_ADMIN_LISTEN", "off")
            .env("TOLLGATE_STATUS_LISTEN", "off")
            .env("TOLLGATE_PREFIX", prefix)
            .output()
            .unwrap()
    };
    let other = temp_dir("second-node");
    let out = run(gw.proxy.to_string(), other.join("p"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run("127.0.0.1:0".into(), gw.dir.join("prefix"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another node is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first node still serves.
    assert_eq!(
        get(&http1(), &format!("{}/x", gw.url()), &[]).await.status,
        200
    );
    let _ = std::fs::remove_dir_all(other);
}
