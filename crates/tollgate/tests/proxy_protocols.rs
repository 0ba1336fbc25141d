//! HTTP/2 (h2c), WebSocket, streaming bodies, trailers and 100-continue,
//! end to end through the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use support::backend::Backend;
use support::client::{collect, h2c, raw};
use support::gateway::Gateway;

fn one_service(url: &str) -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {url}\n  routes:\n  - paths: [/]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_prior_knowledge_is_proxied_to_an_http1_backend() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[]);
    let mut send = h2c(gw.proxy).await;
    for i in 0..3 {
        let req = http::Request::post(format!("http://example.test/echo/{i}"))
            .body(Full::new(Bytes::from_static(b"hello h2")))
            .unwrap();
        let got = collect(send.send_request(req).await.unwrap()).await;
        assert_eq!(got.status, 200);
        let v = got.json();
        assert_eq!(v["uri"], format!("/echo/{i}"));
        assert_eq!(v["version"], "HTTP/1.1");
        assert_eq!(v["body_len"], 8);
        assert_eq!(v["headers"]["x-forwarded-host"], "example.test");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_passes_through_both_ways() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[]);
    let stream = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let url = format!("ws://{}/ws", gw.proxy);
    support::client::websocket_echo(&url, stream, "ping").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_is_not_tunnelled_when_backend_refuses_it() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[]);
    // The backend answers /status/200 with a plain 200 even to an Upgrade request.
    let got = raw(
        gw.proxy,
        b"GET /status/200 HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        !got.to_ascii_lowercase().contains("upgrade: websocket"),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    const SIZE: u64 = 1 << 30; // 1 GiB each way
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[("TOLLGATE_WORKER_THREADS", "1")]);
    let client = support::client::http1();

    // Download.
    let resp = client
        .request(
            http::Request::get(format!("{}/bytes/{SIZE}", gw.url()))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Some(d) = f.unwrap().data_ref() {
            n += d.len() as u64;
        }
    }
    assert_eq!(n, SIZE);

    // Upload (chunked, streamed from a generator).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'y'; 256 * 1024]);
        let mut sent = 0u64;
        while sent < SIZE {
            tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
            sent += chunk.len() as u64;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(gw.proxy).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("{}/upload", gw.url()))
        .header("host", "a")
        .body(StreamBody::new(stream))
        .unwrap();
    let got = collect(send.send_request(req).await.unwrap()).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["body_len"], SIZE);

    let peak = gw.peak_rss_kib();
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB is not under 100 MB");
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_request_with_trailers_and_expect_continue() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[]);
    let got = raw(
        gw.proxy,
        b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x-sum\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"body_len\":5"), "{got}");
    assert!(
        got.contains("\"x-sum\":\"42\""),
        "trailer not forwarded: {got}"
    );

    // Expect: 100-continue gets its interim answer before the body is sent.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(b"body").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("200 OK") && rest.contains("\"body_len\":4"),
        "{rest}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_websocket_upgrades_are_tunnelled() {
    let b = Backend::start("b").await;
    let gw = Gateway::start(&one_service(&b.url()), &[]);
    let got = raw(
        gw.proxy,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let lower = got.to_ascii_lowercase();
    assert!(
        !lower.contains("\"upgrade\""),
        "Upgrade: h2c reached the backend: {got}"
    );
    assert!(!lower.contains("http2-settings"), "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_websocket_is_closed_after_the_read_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  read_timeout: 500\n  routes:\n  - paths: [/]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let stream = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.proxy), stream)
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "hi"
    );
    // Traffic keeps it open past the timeout…
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        ws.send(Message::text("again")).await.unwrap();
        assert!(ws.next().await.unwrap().is_ok());
    }
    // …silence closes it.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(3), ws.next()).await;
    match ended {
        Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {}
        other => panic!("tunnel still open after idling: {other:?}"),
    }
}
