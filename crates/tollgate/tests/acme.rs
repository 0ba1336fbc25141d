//! Automatic certificates (the acme plugin) against a real Pebble ACME CA
//! on loopback: issuance through HTTP-01 started by a handshake and stored
//! as certificate entities, renewal in place, TLS-ALPN-01 on a node with
//! only a TLS listener, and the Admin API's errors.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use support::client::{get, http1, send, send_json, HttpClient};
use support::dns::DnsServer;
use support::gateway::{temp_dir, Gateway};
use support::pebble::Pebble;
use support::redis::free_port;
use tollgate_tls::rustls;

/// A client configuration trusting only `root_pem` (Pebble's root).
fn trusting(root_pem: &str, dir: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let file = dir.join("pebble-root.pem");
    std::fs::write(&file, root_pem).unwrap();
    let tls = tollgate_tls::ClientTls::new(tollgate_tls::Trust::parse(file.to_str().unwrap()));
    let mut config = (*tls.config(true).unwrap()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Whether a handshake with `sni` at `addr` verifies against `config`.
async fn verifies(config: &Arc<rustls::ClientConfig>, addr: SocketAddr, sni: &str) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    tollgate_tls::connect(config.clone(), sni, tcp)
        .await
        .is_ok()
}

/// Waits up to a minute for `check` (an ACME order) and reports how long.
async fn within_a_minute<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let took = support::eventually(what, Duration::from_secs(60), check).await;
    eprintln!("{what}: {took:?}");
}

/// The serial numbers in `GET /acme/certificates`.
async fn serials(client: &HttpClient, admin: &str) -> Vec<String> {
    let got = get(client, &format!("{admin}/acme/certificates"), &[]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    got.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["serial_number"].as_str().map(str::to_owned))
        .collect()
}

/// A DNS server where `shop.test` is 127.0.0.1 (Pebble asks it).
async fn dns_with_shop() -> DnsServer {
    let dns = DnsServer::start(60).await;
    dns.set("shop.test", &[Ipv4Addr::LOCALHOST]);
    dns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_for_a_managed_name_gets_a_certificate_through_http_01_and_it_is_renewed_in_place(
) {
    let dir = temp_dir("acme-http");
    let dns = dns_with_shop().await;
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http_port, tls_port, dns.addr);
    let listen = format!("127.0.0.1:{http_port}, 127.0.0.1:{tls_port} ssl");
    let trusted = pebble.pki.ca_file.to_str().unwrap().to_owned();
    let gw = Gateway::start_sqlite(&[
        ("TOLLGATE_PROXY_LISTEN", &listen),
        ("TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE", &trusted),
    ]);
    let (client, admin) = (http1(), gw.admin_url());
    let plugin = json!({
        "name": "acme",
        "config": {
            "account_email": "ops@shop.test",
            "api_uri": pebble.directory,
            "domains": ["shop.test"],
            "cert_type": "ecc",
            "storage": "kong",
        }
    });
    let got = send_json(&client, "POST", &format!("{admin}/plugins"), &plugin).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let plugin_id = got.json()["id"].as_str().unwrap().to_owned();

    // The first handshake gets the default certificate and starts the order.
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let root = pebble.root_pem().await;
    let by_pebble = trusting(&root, &dir);
    assert!(!verifies(&by_pebble, tls_addr, "shop.test").await);
    within_a_minute("certificate issued through HTTP-01", || {
        verifies(&by_pebble, tls_addr, "shop.test")
    })
    .await;
    // Stored as certificate and SNI entities, tagged acme.
    let got = get(&client, &format!("{admin}/certificates"), &[]).await;
    let certs = got.json()["data"].as_array().unwrap().clone();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["tags"], json!(["acme"]));
    let cert_id = certs[0]["id"].as_str().unwrap().to_owned();
    let got = get(&client, &format!("{admin}/snis/shop.test"), &[]).await;
    assert_eq!(got.json()["certificate"]["id"], json!(cert_id));
    // The challenge answer is gone once validated.
    let got = get(
        &client,
        &format!("http://127.0.0.1:{http_port}/.well-known/acme-challenge/x"),
        &[],
    )
    .await;
    assert_eq!(got.status, 404);

    // Renewal: a threshold longer than the certificate's life makes it due;
    // it is replaced in the same entity.
    let first = serials(&client, &admin).await;
    assert_eq!(first.len(), 1);
    let got = send_json(
        &client,
        "PATCH",
        &format!("{admin}/plugins/{plugin_id}"),
        &json!({"config": {"renew_threshold_days": 36500}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    within_a_minute("certificate renewed", || async {
        let now = serials(&client, &admin).await;
        now.len() == 1 && now != first
    })
    .await;
    let got = get(&client, &format!("{admin}/certificates/{cert_id}"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(verifies(&by_pebble, tls_addr, "shop.test").await);

    // Not due: PATCH /acme leaves it alone.
    let got = send_json(
        &client,
        "PATCH",
        &format!("{admin}/plugins/{plugin_id}"),
        &json!({"config": {"renew_threshold_days": 14}}),
    )
    .await;
    assert_eq!(got.status, 200);
    let renewed = serials(&client, &admin).await;
    let got = send(&client, "PATCH", &format!("{admin}/acme"), None, &[]).await;
    assert_eq!(got.status, 202, "{}", got.text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(serials(&client, &admin).await, renewed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_acme_obtains_a_certificate_through_tls_alpn_01_on_a_tls_only_node() {
    let dir = temp_dir("acme-alpn");
    let dns = dns_with_shop().await;
    let tls_port = free_port();
    // Nothing listens on the HTTP-01 port: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start(&dir, free_port(), tls_port, dns.addr);
    let config = format!(
        "_format_version: \"3.0\"
plugins:
  - name: acme
    config:
      account_email: ops@shop.test
      api_uri: {}
      domains: [shop.test]
      cert_type: rsa
      rsa_key_size: 2048
",
        pebble.directory
    );
    let listen = format!("127.0.0.1:{tls_port} ssl");
    let trusted = pebble.pki.ca_file.to_str().unwrap().to_owned();
    let gw = Gateway::start(
        &config,
        &[
            ("TOLLGATE_PROXY_LISTEN", &listen),
            ("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0"),
            ("TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE", &trusted),
        ],
    );
    let (client, admin) = (http1(), gw.admin_url());
    let got = send_json(
        &client,
        "POST",
        &format!("{admin}/acme"),
        &json!({"host": "shop.test"}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(
        got.json()["message"],
        "certificate for host shop.test is created"
    );
    // Kept in node memory (no database) and served from the next handshake.
    let by_pebble = trusting(&pebble.root_pem().await, &dir);
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    assert!(verifies(&by_pebble, tls_addr, "shop.test").await);
    // Kong's listing: one entry per certificate, and by host.
    let got = get(&client, &format!("{admin}/acme/certificates"), &[]).await;
    let listed = got.json()["data"][0].clone();
    assert_eq!(listed["host"], "shop.test");
    assert_eq!(listed["valid"], true);
    assert_eq!(listed["pubkey_type"], "rsaEncryption");
    assert!(
        listed["issuer_cn"].as_str().unwrap().contains("Pebble"),
        "{listed}"
    );
    assert_eq!(listed["not_after"].as_str().unwrap().len(), 19, "{listed}");
    assert_eq!(listed["digest"].as_str().unwrap().len(), 64);
    let got = get(
        &client,
        &format!("{admin}/acme/certificates/shop.test"),
        &[],
    )
    .await;
    assert_eq!(got.json()["data"], listed);
    let got = get(
        &client,
        &format!("{admin}/acme/certificates/nothere.test"),
        &[],
    )
    .await;
    assert_eq!(got.status, 404);
    let got = get(
        &client,
        &format!("{admin}/acme/certificates?invalid_only=true"),
        &[],
    )
    .await;
    assert_eq!(got.json()["data"], json!([]));

    // Refused hosts, with Kong's messages where Kong has one.
    for (body, message) in [
        (json!({"host": "elsewhere.test"}), None),
        (json!({}), Some("host must be provided")),
        (
            json!({"host": "shop.test:443"}),
            Some("port is not allowed in host"),
        ),
    ] {
        let got = send_json(&client, "POST", &format!("{admin}/acme"), &body).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text());
        if let Some(m) = message {
            assert_eq!(got.json()["message"], m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acme_plugin_is_global_only_and_names_unsupported_fields() {
    let gw = Gateway::start_sqlite(&[]);
    let (client, admin) = (http1(), gw.admin_url());
    let got = send_json(
        &client,
        "POST",
        &format!("{admin}/acme"),
        &json!({"host": "shop.test"}),
    )
    .await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["message"], "no acme plugin is enabled");

    let got = send_json(
        &client,
        "POST",
        &format!("{admin}/services"),
        &json!({"name": "s", "url": "http://127.0.0.1:9"}),
    )
    .await;
    assert_eq!(got.status, 201);
    let config =
        json!({"account_email": "ops@shop.test", "domains": ["shop.test"], "tos_accepted": true});
    let got = send_json(
        &client,
        "POST",
        &format!("{admin}/services/s/plugins"),
        &json!({"name": "acme", "config": config}),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(
        got.text().contains("acme can only be applied globally"),
        "{}",
        got.text()
    );

    // Fields the node cannot honour are named.
    for (field, value) in [("storage", json!("redis")), ("tos_accepted", json!(false))] {
        let mut refused = config.clone();
        refused[field] = value;
        let got = send_json(
            &client,
            "POST",
            &format!("{admin}/plugins"),
            &json!({"name": "acme", "config": refused}),
        )
        .await;
        assert_eq!(got.status, 400, "{}", got.text());
        assert!(
            got.json()["fields"]["config"][field].is_string(),
            "{}",
            got.text()
        );
    }
}
