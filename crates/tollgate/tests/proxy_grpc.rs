//! gRPC through the gateway: HTTP/2 on both sides to a real gRPC echo
//! server (tonic's, over h2c and over TLS), unary and streaming calls with
//! their trailers, and Kong's answers to requests a gRPC route cannot take.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use support::client::raw;
use support::gateway::Gateway;
use support::grpc::{client, client_tls, message, start, start_with, ChannelBody};
use support::tls::TestPki;
use tokio::sync::mpsc;

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        "_format_version: \"3.0\"
services:
  - name: echo
    protocol: grpc
    host: {}
    port: {}
    routes:
      - name: echo
        protocols: [grpc]
        paths: [/echo.Echo/]
",
        backend.ip(),
        backend.port()
    )
}

fn call(path: &str, content_type: &str, body: ChannelBody) -> http::Request<ChannelBody> {
    http::Request::post(format!("http://gateway{path}"))
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

/// A unary `/echo.Echo/Say` call with `word`: asserts 200, the echo and
/// `grpc-status: 0` in the trailers; returns the response head.
async fn unary_echo(
    send: &mut hyper::client::conn::http2::SendRequest<ChannelBody>,
    word: &str,
) -> http::response::Parts {
    let (tx, rx) = mpsc::channel(4);
    tx.send(Frame::data(message(word.as_bytes())))
        .await
        .unwrap();
    drop(tx);
    let resp = send
        .send_request(call("/echo.Echo/Say", "application/grpc", ChannelBody(rx)))
        .await
        .unwrap();
    let (head, body) = resp.into_parts();
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["x-path"], "/echo.Echo/Say");
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), message(word.as_bytes()));
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_streaming_grpc_calls_pass_with_their_trailers() {
    let (backend, _task) = start().await;
    let gw = Gateway::start(&config(backend), &[]);
    let mut send = client(gw.proxy).await;

    // Unary: one message, the echo and grpc-status in the trailers.
    let head = unary_echo(&mut send, "hello").await;
    assert_eq!(head.headers["content-type"], "application/grpc");
    assert_eq!(head.headers["x-te"], "trailers");

    // A client Host cannot steer the backend's :authority or :path.
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    let mut req = call("/echo.Echo/Say", "application/grpc", ChannelBody(rx));
    req.headers_mut()
        .insert("host", "evil/admin.Svc/Delete?".parse().unwrap());
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["x-path"], "/echo.Echo/Say");

    // Bidirectional streaming: each message comes back before the next is sent.
    let (tx, rx) = mpsc::channel(4);
    let resp = send
        .send_request(call("/echo.Echo/Chat", "application/grpc", ChannelBody(rx)))
        .await;
    let mut body = resp.unwrap().into_body();
    for i in 0..3 {
        let m = message(format!("msg {i}").as_bytes());
        tx.send(Frame::data(m.clone())).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("echo before the stream ended")
            .unwrap()
            .unwrap();
        assert_eq!(got.into_data().unwrap(), m);
    }
    drop(tx);
    let mut trailers = None;
    while let Some(f) = body.frame().await {
        if let Ok(t) = f.unwrap().into_trailers() {
            trailers = Some(t);
        }
    }
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_routes_refuse_http1_and_non_grpc_content() {
    let (backend, _task) = start().await;
    let gw = Gateway::start(&config(backend), &[]);
    let got = raw(
        gw.proxy,
        b"POST /echo.Echo/Say HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 426"), "{got}");
    assert!(got.contains("Please use HTTP2 protocol"), "{got}");

    let mut send = client(gw.proxy).await;
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    let resp = send
        .send_request(call("/echo.Echo/Say", "application/json", ChannelBody(rx)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Non-gRPC request matched gRPC route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_grpc_stream_counts_against_max_requests_until_it_ends() {
    let (backend, _task) = start().await;
    let config = format!(
        "_format_version: \"3.0\"
upstreams:
  - name: echo.up
    circuit_breakers: {{max_requests: 1}}
    targets:
      - target: {backend}
services:
  - name: echo
    protocol: grpc
    host: echo.up
    routes:
      - name: echo
        protocols: [grpc]
        paths: [/echo.Echo/]
"
    );
    let gw = Gateway::start(&config, &[]);
    let mut send = client(gw.proxy).await;
    // A stream whose response head came back and whose body is still open.
    let (tx, rx) = mpsc::channel(4);
    tx.send(Frame::data(message(b"open"))).await.unwrap();
    let open = send
        .send_request(call("/echo.Echo/Chat", "application/grpc", ChannelBody(rx)))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let mut open_body = open.into_body();
    assert!(open_body.frame().await.unwrap().unwrap().is_data());

    let unary = |send: &mut hyper::client::conn::http2::SendRequest<ChannelBody>| {
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        send.send_request(call("/echo.Echo/Say", "application/grpc", ChannelBody(rx)))
    };
    let busy = unary(&mut send).await.unwrap();
    assert_eq!(busy.status(), 503);

    // Once the stream ends, the target takes calls again.
    drop(tx);
    while open_body.frame().await.is_some() {}
    drop(open_body);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let again = unary(&mut send).await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_calls_pass_over_tls_on_both_sides_with_the_backend_verified() {
    let dir = support::gateway::temp_dir("grpcs");
    let pki = TestPki::new(&dir);
    let (backend, _task) = start_with(Some(pki.server_config())).await;
    let ca_id = "6b0b3e5c-5a1a-4c53-9f37-0d4e3c2b1a90";
    // JSON, which the declarative reader takes as well as YAML.
    let config = serde_json::json!({
        "_format_version": "3.0",
        "ca_certificates": [{"id": ca_id, "cert": pki.ca_pem}],
        "services": [{
            "name": "echo",
            "protocol": "grpcs",
            "host": "localhost",
            "port": backend.port(),
            "tls_verify": true,
            "ca_certificates": [ca_id],
            "routes": [{"name": "echo", "protocols": ["grpcs"], "paths": ["/echo.Echo/"]}],
        }],
    });
    let gw = Gateway::start(
        &config.to_string(),
        &[
            ("TOLLGATE_PROXY_LISTEN", "127.0.0.1:0 ssl"),
            ("TOLLGATE_SSL_CERT", pki.cert_file.to_str().unwrap()),
            ("TOLLGATE_SSL_CERT_KEY", pki.key_file.to_str().unwrap()),
        ],
    );
    let mut send = client_tls(gw.proxy, pki.client_config(true, &[]), "localhost").await;
    for word in ["one", "two"] {
        unary_echo(&mut send, word).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
