//! `https` services: TLS to real loopback HTTPS backends, verified against
//! `ca_certificates` when `tls_verify` is on, with a client certificate
//! when the backend asks for one, over pooled connections.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::sync::atomic::Ordering;
use support::backend::Backend;
use support::client::{get, http1, send_json, HttpClient};
use support::gateway::Gateway;
use support::tls::TestPki;

/// Creates `body` at `url`; returns the new entity's id.
async fn create(client: &HttpClient, url: &str, body: serde_json::Value) -> String {
    let got = send_json(client, "POST", url, &body).await;
    assert_eq!(got.status, 201, "{url}: {}", got.text());
    got.json()["id"].as_str().unwrap().to_owned()
}

/// A service on `/{name}` to `url` with extra service fields.
async fn service(
    client: &HttpClient,
    admin: &str,
    name: &str,
    url: &str,
    extra: serde_json::Value,
) {
    let mut body = json!({ "name": name, "url": url });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    create(client, &format!("{admin}/services"), body).await;
    create(
        client,
        &format!("{admin}/services/{name}/routes"),
        json!({ "paths": [format!("/{name}")] }),
    )
    .await;
}

/// A node on SQLite with `pki`'s CA stored as a CA certificate: the node,
/// an HTTP client, the Admin API URL and the CA certificate's id.
async fn node_with_ca(
    pki: &TestPki,
    env: &[(&str, &str)],
) -> (Gateway, HttpClient, String, String) {
    let gw = Gateway::start_sqlite(env);
    let c = http1();
    let admin = gw.admin_url();
    let ca = create(
        &c,
        &format!("{admin}/ca_certificates"),
        json!({ "cert": pki.ca_pem }),
    )
    .await;
    (gw, c, admin, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_services_verify_against_ca_certificates_and_reuse_connections() {
    let pki = TestPki::new(&support::gateway::temp_dir("up-tls"));
    let backend = Backend::start_tls("secure", pki.server_config()).await;
    let port = backend.addr.port();
    // One worker: backend pools are per worker, and the count below is exact.
    let (gw, c, admin, ca) = node_with_ca(&pki, &[("TOLLGATE_WORKER_THREADS", "1")]).await;
    let url = format!("https://localhost:{port}");
    service(
        &c,
        &admin,
        "verified",
        &url,
        json!({ "tls_verify": true, "ca_certificates": [ca] }),
    )
    .await;
    service(
        &c,
        &admin,
        "unknown-ca",
        &url,
        json!({ "tls_verify": true }),
    )
    .await;
    service(&c, &admin, "unverified", &url, json!({})).await;
    let got = get(&c, &format!("{admin}/services/verified"), &[]).await;
    assert_eq!(got.json()["ca_certificates"], json!([ca]));
    assert_eq!(got.json()["tls_verify"], json!(true));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    for _ in 0..5 {
        let got = get(&c, &format!("{}/verified/x", gw.url()), &[]).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["backend"], "secure");
        assert_eq!(got.json()["headers"]["host"], format!("localhost:{port}"));
    }
    // One TLS connection carried all five (keep-alive pool).
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);

    // The test CA is not among the node's authorities: 502.
    let got = get(&c, &format!("{}/unknown-ca/x", gw.url()), &[]).await;
    assert_eq!(got.status, 502, "{}", got.text());
    // tls_verify unset is Kong's default: not verified.
    let got = get(&c, &format!("{}/unverified/x", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());

    // A large body comes through TLS intact.
    let got = get(&c, &format!("{}/verified/bytes/300000", gw.url()), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_to_backends_that_require_one() {
    let pki = TestPki::new(&support::gateway::temp_dir("up-mtls"));
    let backend = Backend::start_tls("mtls", pki.server_config_with(true)).await;
    let port = backend.addr.port();
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    let (cert, key) = pki.issue(&["tollgate-client"]);
    let cert_id = create(
        &c,
        &format!("{admin}/certificates"),
        json!({ "cert": cert, "key": key }),
    )
    .await;
    let url = format!("https://127.0.0.1:{port}");
    service(
        &c,
        &admin,
        "with-cert",
        &url,
        json!({ "client_certificate": { "id": cert_id } }),
    )
    .await;
    service(&c, &admin, "without", &url, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let got = get(&c, &format!("{}/with-cert/x", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["backend"], "mtls");
    let got = get(&c, &format!("{}/without/x", gw.url()), &[]).await;
    assert_eq!(got.status, 502, "{}", got.text());

    // A reference to a certificate that does not exist is a 400 naming it.
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/services"),
        &json!({ "name": "dangling", "url": url, "client_certificate": { "id": "6f2f8a56-2d0c-4a8e-9d83-8d8a0cf1c6b1" } }),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(
        got.text().contains("'certificates' entity"),
        "{}",
        got.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_tunnelled_to_https_backends() {
    let pki = TestPki::new(&support::gateway::temp_dir("up-wss"));
    let backend = Backend::start_tls("secure-ws", pki.server_config()).await;
    let config = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: https://localhost:{}\n  routes: [{{paths: [/]}}]\n",
        backend.addr.port()
    );
    let gw = Gateway::start(&config, &[]);
    let stream = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let url = format!("ws://{}/ws", gw.proxy);
    support::client::websocket_echo(&url, stream, "over tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_depth_bounds_the_backends_chain() {
    let pki = TestPki::new(&support::gateway::temp_dir("up-depth"));
    let (chain, key) = pki.issue_via_intermediate();
    let backend = Backend::start_tls("deep", TestPki::server_config_for(&chain, &key)).await;
    let port = backend.addr.port();
    let (gw, c, admin, ca) = node_with_ca(&pki, &[]).await;
    let url = format!("https://localhost:{port}");
    for (name, depth) in [("depth0", 0), ("depth1", 1)] {
        let extra =
            json!({ "tls_verify": true, "tls_verify_depth": depth, "ca_certificates": [ca] });
        service(&c, &admin, name, &url, extra).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // One intermediate: refused at depth 0, accepted at depth 1.
    let got = get(&c, &format!("{}/depth0/x", gw.url()), &[]).await;
    assert_eq!(got.status, 502, "{}", got.text());
    let got = get(&c, &format!("{}/depth1/x", gw.url()), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
}
