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
