//! Tollgate's own HTTP/1.1 client towards backends: body framings, trailers,
//! and connections the backend closes while they sit in the pool.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::RawBackend;
use support::client::{get, http1, raw};
use support::gateway::Gateway;

fn service_at(addr: std::net::SocketAddr) -> String {
    format!("_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{addr}\n  routes:\n  - paths: [/]\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_the_backend_closed_is_replaced_without_failing_the_request() {
    // The backend answers as if the connection stayed open, then closes it:
    // every next request meets a connection the backend already gave up.
    let b = RawBackend::start(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")).await;
    let gw = Gateway::start(&service_at(b.addr), &[("TOLLGATE_ACCESS_LOG", "off")]);
    let client = http1();
    for i in 0..30 {
        let got = get(&client, &format!("{}/n{i}", gw.url()), &[]).await;
        assert_eq!(got.status, 200, "request {i}: {}", got.text());
        assert_eq!(got.text(), "hello");
        if i % 3 == 0 {
            // Let the close reach the gateway before the next request.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_answers_keep_their_trailers_and_close_delimited_ones_arrive_whole() {
    let chunked = RawBackend::start(Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n",
    ))
    .await;
    let gw = Gateway::start(&service_at(chunked.addr), &[]);
    let resp = raw(
        gw.proxy,
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let body = body.to_ascii_lowercase();
    assert!(body.contains("hello") && body.contains(" world"), "{body}");
    assert!(body.contains("x-sum: 42"), "trailer lost: {body}");

    let closing = RawBackend::start(Some(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")).await;
    let gw = Gateway::start(&service_at(closing.addr), &[]);
    let got = get(&http1(), &format!("{}/", gw.url()), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "until the end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_answer_with_conflicting_lengths_is_502() {
    let b = RawBackend::start(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ))
    .await;
    let gw = Gateway::start(&service_at(b.addr), &[]);
    let got = get(&http1(), &format!("{}/", gw.url()), &[]).await;
    assert_eq!(got.status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_request_id_via_and_latencies_over_http1_and_http2() {
    let b = RawBackend::start(Some(
        b"HTTP/1.1 200 OK\r\nX-Request-Id: from-backend\r\nVia: 1.1 backend\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nProxy-Connection: x\r\nX-Kong-Proxy-Latency: 999\r\nX-Backend: kept\r\nContent-Length: 2\r\n\r\nok",
    ))
    .await;
    let gw = Gateway::start(&service_at(b.addr), &[]);
    let check = |h: &http::HeaderMap| {
        assert_eq!(h["x-backend"], "kept");
        for hop in ["keep-alive", "proxy-connection"] {
            assert!(!h.contains_key(hop), "{hop} passed on: {h:?}");
        }
        assert_eq!(h["x-request-id"], "abc-123");
        assert_eq!(h.get_all("x-request-id").iter().count(), 1);
        let via: Vec<_> = h.get_all("via").iter().collect();
        assert_eq!(via.len(), 2, "{via:?}");
        assert_eq!(via[0], "1.1 backend");
        assert!(via[1].to_str().unwrap().contains("tollgate"));
        for name in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
            assert_eq!(h.get_all(name).iter().count(), 1, "{name}");
            let ms: u64 = h[name].to_str().unwrap().parse().unwrap();
            assert!(ms < 999, "{name}: {ms}");
        }
    };
    let got = get(
        &http1(),
        &format!("{}/", gw.url()),
        &[("x-request-id", "abc-123")],
    )
    .await;
    assert_eq!(got.status, 200);
    check(&got.headers);

    let mut h2 = support::client::h2c(gw.proxy).await;
    let req = http::Request::get(format!("http://{}/", gw.proxy))
        .header("x-request-id", "abc-123")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    check(resp.headers());
}

#[tokio::test(flavor = "multi_thread")]
async fn head_and_304_answers_keep_the_backends_content_length_and_carry_no_body() {
    let head = RawBackend::start(Some(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 42\r\n\r\n",
    ))
    .await;
    let gw = Gateway::start(&service_at(head.addr), &[]);
    let resp = raw(
        gw.proxy,
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (h, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert!(h.to_ascii_lowercase().contains("content-length: 42"), "{h}");
    assert_eq!(
        h.to_ascii_lowercase().matches("content-length").count(),
        1,
        "{h}"
    );
    assert!(h.contains("Content-Type: text/plain"), "{h}");
    assert!(body.is_empty(), "a HEAD answer carried a body: {body:?}");

    let not_modified = RawBackend::start(Some(
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 42\r\n\r\n",
    ))
    .await;
    let gw = Gateway::start(&service_at(not_modified.addr), &[]);
    let resp = raw(
        gw.proxy,
        b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"v1\"\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (h, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(h.starts_with("HTTP/1.1 304"), "{h}");
    assert!(h.contains("ETag: \"v1\""), "{h}");
    assert!(body.is_empty(), "{body:?}");
}
