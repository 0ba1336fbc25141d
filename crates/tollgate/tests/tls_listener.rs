//! TLS listeners (`proxy_listen … ssl`): the certificate of each handshake
//! chosen by SNI from certificates and SNIs written through the Admin API
//! (exact and wildcard names), the default self-signed certificate
//! otherwise, a replaced certificate served from the next handshake,
//! HTTP/1.1 and HTTP/2 by ALPN, and requests marked as HTTPS for the
//! backend and for plugins (oauth2's token endpoint); three certificates
//! and a wildcard, and a certificate replaced five times under a handshake
//! load without one failed handshake.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use support::backend::Backend;
use support::client::{created, http1, send};
use support::gateway::Gateway;
use support::tls::{der, https, TestPki};

const SSL: (&str, &str) = ("TOLLGATE_PROXY_LISTEN", "127.0.0.1:0 ssl");

/// A gateway on an `ssl` listener whose default certificate is `pki`'s.
fn tls_gateway(cfg: &str, pki: &TestPki) -> Gateway {
    Gateway::start(
        cfg,
        &[
            SSL,
            ("TOLLGATE_SSL_CERT", pki.cert_file.to_str().unwrap()),
            ("TOLLGATE_SSL_CERT_KEY", pki.key_file.to_str().unwrap()),
        ],
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_chosen_by_sni_and_replaced_without_restart() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-listener");
    let pki = TestPki::new(&dir);
    let gw = Gateway::start_sqlite(&[SSL]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    let (api_cert, api_key) = pki.issue(&["api.example.test"]);
    let (wild_cert, wild_key) = pki.issue(&["*.wild.test"]);
    let got = created(
        &c,
        &format!("{admin}/certificates"),
        &form(&[
            ("cert", &api_cert),
            ("key", &api_key),
            ("snis[]", "api.example.test"),
        ]),
    )
    .await;
    let api_id = got.json()["id"].as_str().unwrap().to_owned();
    created(
        &c,
        &format!("{admin}/certificates"),
        &form(&[
            ("cert", &wild_cert),
            ("key", &wild_key),
            ("snis[]", "*.wild.test"),
        ]),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let verified = pki.client_config(true, &[b"http/1.1"]);
    let got = https(
        verified.clone(),
        gw.proxy,
        "api.example.test",
        "GET",
        "/api/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.peer_cert, der(&api_cert));
    let echoed: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");
    assert!(got.headers.contains_key("x-kong-upstream-latency"));

    let got = https(
        verified.clone(),
        gw.proxy,
        "eu.wild.test",
        "GET",
        "/api/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!((got.status, got.peer_cert == der(&wild_cert)), (200, true));

    // No SNI match: the node's default certificate, self-signed under the
    // prefix (not trusted by the test CA).
    assert!(https(
        verified.clone(),
        gw.proxy,
        "other.test",
        "GET",
        "/api/x",
        None
    )
    .await
    .is_err());
    let any = pki.client_config(false, &[b"http/1.1"]);
    let got = https(any.clone(), gw.proxy, "other.test", "GET", "/api/x", None)
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    let default_pem = std::fs::read_to_string(gw.dir.join("prefix/ssl/default.crt")).unwrap();
    assert_eq!(got.peer_cert, der(&default_pem));

    // HTTP/2 when the client offers it.
    let h2 = pki.client_config(true, &[b"h2", b"http/1.1"]);
    let got = https(h2, gw.proxy, "api.example.test", "GET", "/api/x", None)
        .await
        .unwrap();
    assert_eq!((got.status, got.alpn.as_deref()), (200, Some(&b"h2"[..])));

    // Replaced through the Admin API: the next handshake shows the new one.
    let (next_cert, next_key) = pki.issue(&["api.example.test"]);
    let patched = send(
        &c,
        "PATCH",
        &format!("{admin}/certificates/{api_id}"),
        Some((
            "application/x-www-form-urlencoded",
            &form(&[("cert", &next_cert), ("key", &next_key)]),
        )),
        &[],
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A new client (no session to resume: a full handshake).
    let fresh = pki.client_config(true, &[b"http/1.1"]);
    drop(verified);
    let got = https(fresh, gw.proxy, "api.example.test", "GET", "/api/x", None)
        .await
        .unwrap();
    assert_eq!(got.peer_cert, der(&next_cert));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_cert_settings_name_the_default_certificate() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-default");
    let pki = TestPki::new(&dir);
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes: [{{name: r, paths: [/]}}]\n",
        b.url()
    );
    let gw = tls_gateway(&cfg, &pki);
    let got = https(
        pki.client_config(true, &[]),
        gw.proxy,
        "localhost",
        "GET",
        "/x",
        None,
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.peer_cert, der(&pki.cert_pem));

    // Sessions resume: a second connection with the same client settings
    // skips the full handshake, for TLS 1.3 (ticket) and TLS 1.2.
    use tollgate_tls::rustls::{version, HandshakeKind};
    for v in [&version::TLS13, &version::TLS12] {
        let provider = std::sync::Arc::new(tollgate_tls::rustls::crypto::ring::default_provider());
        let mut roots = tollgate_tls::rustls::RootCertStore::empty();
        roots.add(der(&pki.ca_pem).into()).unwrap();
        let config = std::sync::Arc::new(
            tollgate_tls::rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[v])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
            let mut tls = tollgate_tls::connect(config.clone(), "localhost", tcp)
                .await
                .unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tls.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            assert!(
                answer.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            kinds.push(tls.get_ref().1.handshake_kind());
        }
        assert_eq!(
            kinds,
            [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
            "{v:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_issues_tokens_on_a_tls_listener() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-oauth2");
    let pki = TestPki::new(&dir);
    let gw = Gateway::start_sqlite(&[
        SSL,
        ("TOLLGATE_SSL_CERT", pki.cert_file.to_str().unwrap()),
        ("TOLLGATE_SSL_CERT_KEY", pki.key_file.to_str().unwrap()),
    ]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    created(&c, &format!("{admin}/consumers"), "username=alice").await;
    created(
        &c,
        &format!("{admin}/consumers/alice/oauth2"),
        "name=app&client_id=cid&client_secret=csecret&redirect_uris[]=https://app.example/cb",
    )
    .await;
    // No accept_http_if_already_terminated: the client's own TLS counts.
    created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=oauth2&config.enable_client_credentials=true&config.provision_key=pk",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let config = pki.client_config(true, &[]);
    let got = https(
        config.clone(),
        gw.proxy,
        "localhost",
        "POST",
        "/api/oauth2/token",
        Some((
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&client_id=cid&client_secret=csecret",
        )),
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    let j: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(j["token_type"], "bearer");
    let token = j["access_token"].as_str().unwrap().to_owned();
    let got = https(
        config,
        gw.proxy,
        "localhost",
        "GET",
        &format!("/api/x?access_token={token}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_are_tunnelled_on_tls_listeners() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-ws");
    let pki = TestPki::new(&dir);
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes: [{{name: r, paths: [/]}}]\n",
        b.url()
    );
    let gw = tls_gateway(&cfg, &pki);
    let tcp = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let tls = tollgate_tls::connect(pki.client_config(true, &[b"http/1.1"]), "localhost", tcp)
        .await
        .unwrap();
    support::client::websocket_echo("wss://localhost/ws", tls, "secure").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_with_hsts_max_age_send_strict_transport_security_over_tls() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-hsts");
    let pki = TestPki::new(&dir);
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes:\n  - {{name: h, paths: [/h], hsts_max_age: 31536000, hsts_include_subdomains: true}}\n  - {{name: plain, paths: [/p]}}\n",
        b.url()
    );
    let gw = tls_gateway(&cfg, &pki);
    let config = pki.client_config(true, &[]);
    let got = https(config.clone(), gw.proxy, "localhost", "GET", "/h/x", None)
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(
        got.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let got = https(config, gw.proxy, "localhost", "GET", "/p/x", None)
        .await
        .unwrap();
    assert!(got.headers.get("strict-transport-security").is_none());
    let _ = std::fs::remove_dir_all(dir);
}

/// One handshake with `sni` and a GET over it; the certificate shown.
async fn handshake_and_get(
    config: &Arc<tollgate_tls::rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    sni: &str,
) -> Result<Vec<u8>, String> {
    let got = https(config.clone(), addr, sni, "GET", "/api/x", None).await?;
    if got.status != 200 {
        return Err(format!("status {}", got.status));
    }
    Ok(got.peer_cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_certificates_and_a_wildcard_by_sni_and_rotation_under_load_fails_no_handshake() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-rotation");
    let pki = TestPki::new(&dir);
    let gw = Gateway::start_sqlite(&[SSL]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    let mut ids = std::collections::HashMap::new();
    let mut certs = std::collections::HashMap::new();
    for name in ["a.test", "b.test", "c.test", "*.wild.test"] {
        let (cert, key) = pki.issue(&[name]);
        let got = created(
            &c,
            &format!("{admin}/certificates"),
            &form(&[("cert", &cert), ("key", &key), ("snis[]", name)]),
        )
        .await;
        ids.insert(name, got.json()["id"].as_str().unwrap().to_owned());
        certs.insert(name, cert);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Full handshakes every time: no session to resume.
    let mut config = (*pki.client_config(true, &[b"http/1.1"])).clone();
    config.resumption = tollgate_tls::rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    for (sni, name) in [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("c.test", "c.test"),
        ("eu.wild.test", "*.wild.test"),
    ] {
        let shown = handshake_and_get(&config, gw.proxy, sni).await.unwrap();
        assert_eq!(shown, der(&certs[name]), "{sni}");
    }

    // Four clients handshake in a loop while a.test's certificate is
    // replaced five times through the Admin API.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (config, stop, done, failed) =
            (config.clone(), stop.clone(), done.clone(), failed.clone());
        let addr = gw.proxy;
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match handshake_and_get(&config, addr, "a.test").await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("failed handshake: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let mut last = String::new();
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let (cert, key) = pki.issue(&["a.test"]);
        let patched = send(
            &c,
            "PATCH",
            &format!("{admin}/certificates/{}", ids["a.test"]),
            Some((
                "application/x-www-form-urlencoded",
                &form(&[("cert", &cert), ("key", &key)]),
            )),
            &[],
        )
        .await;
        assert_eq!(patched.status, 200, "{}", patched.text());
        last = cert;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{done} handshakes during rotation, {failed} failed");
    assert_eq!(failed, 0);
    assert!(done >= 40, "only {done} handshakes");
    let shown = handshake_and_get(&config, gw.proxy, "a.test")
        .await
        .unwrap();
    assert_eq!(shown, der(&last));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecdsa_cert_alt_is_served_to_clients_that_verify_ecdsa_and_rsa_to_the_others() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("tls-alt");
    let pki = TestPki::new(&dir);
    let gw = Gateway::start_sqlite(&[SSL]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    // Kong's habit: `cert` RSA, `cert_alt` ECDSA.
    let (rsa_cert, rsa_key) = pki.issue_rsa(&["dual.test"]);
    let (ec_cert, ec_key) = pki.issue(&["dual.test"]);
    created(
        &c,
        &format!("{admin}/certificates"),
        &form(&[
            ("cert", &rsa_cert),
            ("key", &rsa_key),
            ("cert_alt", &ec_cert),
            ("key_alt", &ec_key),
            ("snis[]", "dual.test"),
        ]),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let both = pki.client_config(true, &[b"http/1.1"]);
    let shown = handshake_and_get(&both, gw.proxy, "dual.test")
        .await
        .unwrap();
    assert_eq!(shown, der(&ec_cert));

    // A client that can only verify RSA signatures.
    let mut provider = tollgate_tls::rustls::crypto::ring::default_provider();
    let algs = provider.signature_verification_algorithms;
    let mapping: Vec<_> = algs
        .mapping
        .iter()
        .filter(|(scheme, _)| format!("{scheme:?}").starts_with("RSA"))
        .copied()
        .collect();
    provider.signature_verification_algorithms =
        tollgate_tls::rustls::crypto::WebPkiSupportedAlgorithms {
            all: algs.all,
            mapping: Box::leak(mapping.into_boxed_slice()),
        };
    let roots = {
        let mut r = tollgate_tls::rustls::RootCertStore::empty();
        r.add(tollgate_tls::rustls::pki_types::CertificateDer::from(der(
            &pki.ca_pem,
        )))
        .unwrap();
        r
    };
    let mut rsa_only =
        tollgate_tls::rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    rsa_only.alpn_protocols = vec![b"http/1.1".to_vec()];
    let shown = handshake_and_get(&Arc::new(rsa_only), gw.proxy, "dual.test")
        .await
        .unwrap();
    assert_eq!(shown, der(&rsa_cert));
    let _ = std::fs::remove_dir_all(dir);
}
