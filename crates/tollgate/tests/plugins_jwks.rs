//! jwt credentials whose keys come from a JWKS URL (an identity provider on
//! loopback): keys fetched on first use and cached, a rotated-in key picked
//! up by a refresh on its unknown `kid`, forged tokens still refused; an
//! https provider verified against `lua_ssl_trusted_certificate`.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::backend::Backend;
use support::client::{get, http1, post_form};
use support::gateway::Gateway;

const PRIVATE: &str = include_str!("fixtures/jwt-rsa-private.pem");
const OTHER: &str = include_str!("fixtures/jwt-rsa-attacker-private.pem");
const JWK1: &str = include_str!("fixtures/jwk-rsa.json");
const JWK2: &str = include_str!("fixtures/jwk-rsa-attacker.json");

/// A loopback identity provider serving a JWKS document that can change.
struct Idp {
    url: String,
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

async fn idp(keys: &[&str]) -> Idp {
    idp_over(keys, None).await
}

/// The identity provider over TLS when `tls` is given.
async fn idp_over(keys: &[&str], tls: Option<Arc<tollgate_tls::rustls::ServerConfig>>) -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "{}://{}/.well-known/jwks.json",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr().unwrap()
    );
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let doc = Arc::new(Mutex::new(format!("{{\"keys\":[{}]}}", keys.join(","))));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (doc.clone(), fetches.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (d, f) = (d.clone(), f.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let body = d.lock().unwrap().clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(a) => {
                        if let Ok(tls) = a.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                }
            });
        }
    });
    Idp { url, doc, fetches }
}

fn token(private: &str, kid: &str, iss: &str) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    encode(
        &h,
        &json!({"iss": iss, "sub": "user-1", "exp": exp}),
        &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_keys_come_from_a_jwks_url_and_rotate_on_unknown_kid() {
    let b = Backend::start("b").await;
    let provider = idp(&[JWK1]).await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=alice")
            .await
            .status,
        201
    );
    // A JWKS URL holds public keys: HS* credentials and URLs other than
    // http(s) are refused, naming the field.
    for bad in [
        format!("key=idp&algorithm=HS256&jwks_uri={}", provider.url),
        "key=idp&algorithm=RS256&jwks_uri=ftp://idp.example/jwks".to_owned(),
    ] {
        let got = post_form(&c, &format!("{admin}/consumers/alice/jwt"), &bad).await;
        assert_eq!(got.status, 400, "{}", got.text());
        assert!(
            got.json()["fields"]["jwks_uri"].is_string(),
            "{}",
            got.text()
        );
    }
    let got = support::client::created(
        &c,
        &format!("{admin}/consumers/alice/jwt"),
        &format!("key=idp&algorithm=RS256&jwks_uri={}", provider.url),
    )
    .await;
    assert_eq!(got.json()["jwks_uri"], provider.url.as_str());
    support::client::created(&c, &format!("{admin}/services/s/plugins"), "name=jwt").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let api = format!("{}/api/x", gw.url());
    let bearer = |t: &str| format!("Bearer {t}");

    // First use fetches the set; later uses are served from the cache.
    let good = token(PRIVATE, "k1", "idp");
    let ok = get(&c, &api, &[("authorization", &bearer(&good))]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "alice");
    assert_eq!(ok.json()["headers"]["x-credential-identifier"], "idp");
    assert_eq!(
        get(&c, &api, &[("authorization", &bearer(&good))])
            .await
            .status,
        200
    );
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);

    // A kid the set does not have, within a second of the last fetch: no
    // new fetch (refreshes are at least 1 s apart), refused.
    let next = token(OTHER, "k2", "idp");
    let refused = get(&c, &api, &[("authorization", &bearer(&next))]).await;
    assert_eq!(
        (refused.status, refused.json()["message"].as_str()),
        (401, Some("Invalid key/secret"))
    );
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);

    // The provider rotates k2 in: the next request with it refreshes and passes.
    *provider.doc.lock().unwrap() = format!("{{\"keys\":[{JWK1},{JWK2}]}}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = get(&c, &api, &[("authorization", &bearer(&next))]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);

    // Forged: k1's kid on a token signed by the other key.
    let forged = token(OTHER, "k1", "idp");
    let got = get(&c, &api, &[("authorization", &bearer(&forged))]).await;
    assert_eq!(
        (got.status, got.json()["message"].as_str()),
        (401, Some("Invalid signature"))
    );
    // Made-up kids do not make the gateway hammer the provider.
    for i in 0..20 {
        let t = token(PRIVATE, &format!("made-up-{i}"), "idp");
        assert_eq!(
            get(&c, &api, &[("authorization", &bearer(&t))])
                .await
                .status,
            401
        );
    }
    assert!(
        provider.fetches.load(Ordering::SeqCst) <= 5,
        "{:?}",
        provider.fetches
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_jwks_url_is_verified_against_the_trusted_authorities() {
    let b = Backend::start("b").await;
    let dir = support::gateway::temp_dir("jwks-tls");
    let pki = support::tls::TestPki::new(&dir);
    let provider = idp_over(&[JWK1], Some(pki.server_config())).await;
    assert!(provider.url.starts_with("https://127.0.0.1:"));
    let ca = pki.ca_file.to_str().unwrap();
    // One node trusts the test CA; the other only the system's authorities.
    let trusting = Gateway::start_sqlite(&[("TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE", ca)]);
    let wary = Gateway::start_sqlite(&[]);
    let c = http1();
    for gw in [&trusting, &wary] {
        let admin = gw.admin_url();
        support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
        support::client::created(&c, &format!("{admin}/consumers"), "username=alice").await;
        support::client::created(
            &c,
            &format!("{admin}/consumers/alice/jwt"),
            &format!("key=idp&algorithm=RS256&jwks_uri={}", provider.url),
        )
        .await;
        support::client::created(&c, &format!("{admin}/services/s/plugins"), "name=jwt").await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let auth = format!("Bearer {}", token(PRIVATE, "k1", "idp"));
    let ok = get(
        &c,
        &format!("{}/api/x", trusting.url()),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "alice");
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
    // Not trusted: the handshake fails, no key set, the token is refused.
    let refused = get(
        &c,
        &format!("{}/api/x", wary.url()),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreadable_trusted_certificate_file_stops_the_node_naming_the_setting() {
    let out = std::process::Command::new(support::gateway::binary())
        .arg("check")
        .env(
            "TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE",
            "/nonexistent/ca.pem",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOLLGATE_LUA_SSL_TRUSTED_CERTIFICATE") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
