//! `mtls-auth` on a TLS listener: clients authenticated by the certificate
//! they present, verified against the plugin's `ca_certificates`, mapped to
//! a consumer by the subject's common name.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::backend::Backend;
use support::client::{http1, send_json};
use support::gateway::Gateway;
use support::tls::{https, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_authenticate_consumers_by_common_name() {
    let dir = support::gateway::temp_dir("mtls-auth");
    let pki = TestPki::new(&dir);
    let other = TestPki::new(&dir.join("other"));
    let backend = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[
        ("TOLLGATE_PROXY_LISTEN", "127.0.0.1:0 ssl"),
        ("TOLLGATE_SSL_CERT", pki.cert_file.to_str().unwrap()),
        ("TOLLGATE_SSL_CERT_KEY", pki.key_file.to_str().unwrap()),
    ]);
    let c = http1();
    let admin = gw.admin_url();
    let post = |path: &str, body: serde_json::Value| {
        let (c, url) = (c.clone(), format!("{admin}{path}"));
        async move {
            let got = send_json(&c, "POST", &url, &body).await;
            assert_eq!(got.status, 201, "{url}: {}", got.text());
            got.json()
        }
    };
    let ca = post("/ca_certificates", json!({ "cert": pki.ca_pem })).await;
    post("/consumers", json!({ "username": "alice" })).await;
    post(
        "/consumers",
        json!({ "username": "svc", "custom_id": "billing" }),
    )
    .await;
    post("/services", json!({ "name": "s", "url": backend.url() })).await;
    post(
        "/services/s/routes",
        json!({ "name": "m", "paths": ["/m"] }),
    )
    .await;
    post(
        "/services/s/routes",
        json!({ "name": "open", "paths": ["/open"] }),
    )
    .await;
    post(
        "/routes/m/plugins",
        json!({ "name": "mtls-auth", "config": { "ca_certificates": [ca["id"]] } }),
    )
    .await;
    // A config that names no CA is refused with the field.
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/routes/open/plugins"),
        &json!({ "name": "mtls-auth", "config": { "ca_certificates": ["nope"] } }),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(got.text().contains("ca_certificates"), "{}", got.text());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let call = |config, path: &'static str| {
        let addr = gw.proxy;
        async move {
            https(config, addr, "localhost", "GET", path, None)
                .await
                .unwrap()
        }
    };
    // alice's certificate: authenticated as alice.
    let alice = pki.client_config_with_cert(&pki.issue_client("alice"));
    let got = call(alice.clone(), "/m/x").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let echo: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(echo["headers"]["x-consumer-username"], "alice");
    // The common name also matches a custom_id.
    let billing = pki.client_config_with_cert(&pki.issue_client("billing"));
    let got = call(billing, "/m/x").await;
    let echo: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(echo["headers"]["x-consumer-username"], "svc");

    // No certificate: 401, and routes without the plugin are unaffected.
    let none = pki.client_config(true, &[]);
    let got = call(none.clone(), "/m/x").await;
    assert_eq!(got.status, 401);
    assert!(
        got.body.contains("No required TLS certificate was sent"),
        "{}",
        got.body
    );
    assert_eq!(call(none, "/open/x").await.status, 200);

    // A certificate from another CA, or for nobody known: 401.
    let stranger = pki.client_config_with_cert(&other.issue_client("alice"));
    let got = call(stranger, "/m/x").await;
    assert_eq!(got.status, 401);
    assert!(
        got.body.contains("TLS certificate failed verification"),
        "{}",
        got.body
    );
    let bob = pki.client_config_with_cert(&pki.issue_client("bob"));
    assert_eq!(call(bob, "/m/x").await.status, 401);
    let _ = std::fs::remove_dir_all(dir);
}
