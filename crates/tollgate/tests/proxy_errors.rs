//! Kong's error answers (404, 502, 503, 504, 426) and the access log.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1};
use support::gateway::Gateway;

#[tokio::test(flavor = "multi_thread")]
async fn no_route_is_404_with_kong_body_and_request_id() {
    let gw = Gateway::start("_format_version: \"3.0\"\n", &[]);
    let got = get(&http1(), &format!("{}/nothing", gw.url()), &[]).await;
    assert_eq!(got.status, 404);
    let v = got.json();
    assert_eq!(v["message"], "no Route matched with those values");
    assert_eq!(v["request_id"].as_str(), got.header("x-request-id"));
    assert!(got.header("server").unwrap().starts_with("tollgate/"));

    let got = get(
        &http1(),
        &format!("{}/nothing", gw.url()),
        &[("accept", "text/plain")],
    )
    .await;
    assert!(got
        .text()
        .starts_with("no Route matched with those values\nrequest_id: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_is_502() {
    // A port nobody listens on: bind, learn it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://127.0.0.1:{port}\n  retries: 2\n  routes:\n  - paths: [/]\n"
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(&http1(), &format!("{}/", gw.url()), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(
        got.json()["message"],
        "An invalid response was received from the upstream server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504_after_read_timeout() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  read_timeout: 300\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let t = std::time::Instant::now();
    let got = get(&http1(), &format!("{}/slow/3000", gw.url()), &[]).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["message"], "The upstream server is timing out");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    // A fast answer on the same service still works.
    assert_eq!(
        get(&http1(), &format!("{}/slow/10", gw.url()), &[])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_only_route_over_http_is_426_or_redirect() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - {{paths: [/secure], protocols: [https]}}
  - {{paths: [/moved], protocols: [https], https_redirect_status_code: 301}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(&http1(), &format!("{}/secure", gw.url()), &[]).await;
    assert_eq!(got.status, 426);
    assert_eq!(got.json()["message"], "Please use HTTPS protocol");
    let got = get(
        &http1(),
        &format!("{}/moved?x=1", gw.url()),
        &[("host", "shop.example")],
    )
    .await;
    assert_eq!(got.status, 301);
    assert_eq!(
        got.header("location"),
        Some("https://shop.example/moved?x=1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_writes_combined_lines_to_stdout() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(
        &http1(),
        &format!("{}/bytes/10", gw.url()),
        &[("user-agent", "test-agent")],
    )
    .await;
    assert_eq!(got.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let lines = gw.stdout.lock().unwrap().clone();
        if let Some(l) = lines.iter().find(|l| l.contains("GET /bytes/10")) {
            assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
            assert!(
                l.ends_with("\"GET /bytes/10 HTTP/1.1\" 200 10 \"-\" \"test-agent\""),
                "{l}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line: {lines:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_json_format_to_a_file_under_the_prefix() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: svc\n  url: {}\n  routes:\n  - name: rt\n    paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(
        &cfg,
        &[
            ("TOLLGATE_ACCESS_LOG", "logs/access.log"),
            ("TOLLGATE_ACCESS_LOG_FORMAT", "json"),
        ],
    );
    assert_eq!(
        get(&http1(), &format!("{}/j", gw.url()), &[]).await.status,
        200
    );
    let path = gw.dir.join("prefix/logs/access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["request"]["uri"], "/j");
            assert_eq!(v["response"]["status"], 200);
            assert_eq!(v["route"], "rt");
            assert_eq!(v["service"], "svc");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log at {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn service_at(addr: std::net::SocketAddr, extra: &str) -> String {
    format!("_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{addr}\n{extra}  routes:\n  - paths: [/]\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_upstream_response_head_is_502() {
    let bad =
        support::backend::RawBackend::start(Some(b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\nhello"))
            .await;
    let gw = Gateway::start(&service_at(bad.addr, ""), &[]);
    let got = get(&http1(), &format!("{}/", gw.url()), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(
        got.json()["message"],
        "An invalid response was received from the upstream server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_upstream_body_is_never_passed_on_as_complete() {
    let bad = support::backend::RawBackend::start(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
    ))
    .await;
    let gw = Gateway::start(&service_at(bad.addr, ""), &[]);
    let resp = support::client::raw(gw.proxy, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 100"),
        "{head}"
    );
    // The client sees the connection cut before the announced length: it
    // can tell the answer is incomplete.
    assert!(body.len() < 100, "{body:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_that_stops_reading_hits_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stuck = support::backend::RawBackend::start(None).await;
    let gw = Gateway::start(
        &service_at(stuck.addr, "  write_timeout: 300\n  read_timeout: 60000\n"),
        &[],
    );
    let s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr
            .write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 268435456\r\n\r\n")
            .await;
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..256 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut tmp = [0u8; 4096];
        while let Ok(n) = rd.read(&mut tmp).await {
            if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    })
    .await;
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_cancels_the_upstream_request() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&service_at(b.addr, ""), &[("TOLLGATE_ACCESS_LOG", "off")]);
    {
        let resp = http1()
            .request(
                http::Request::get(format!("{}/bytes/{}", gw.url(), 1u64 << 34))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        use http_body_util::BodyExt;
        for _ in 0..4 {
            body.frame().await.unwrap().unwrap();
        }
        // Dropping the body (and its connection) here is the client going away.
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.aborted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backend kept streaming after the client left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upload_longer_than_read_timeout_still_completes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Backend::start("b").await;
    let gw = Gateway::start(&service_at(b.addr, "  read_timeout: 400\n"), &[]);
    let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for chunk in [b"ab", b"cd", b"ef"] {
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        s.write_all(chunk).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"body_len\":6"), "{text}");
}
