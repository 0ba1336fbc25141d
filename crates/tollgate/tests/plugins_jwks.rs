//! jwt credentials whose keys come from a JWKS URL (an identity provider on
//! loopback): keys fetched on first use and cached, a rotated-in key picked
//! up by a refresh on its unknown `kid`, forged tokens still refused.
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let doc = Arc::new(Mutex::new(format!("{{\"keys\":[{}]}}", keys.join(","))));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (doc.clone(), fetches.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (d, f) = (d.clone(), f.clone());
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
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
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
    // A JWKS URL holds public keys: HS* credentials and https URLs (no TLS
    // client yet) are refused, naming the field.
    for bad in [
        format!("key=idp&algorithm=HS256&jwks_uri={}", provider.url),
        "key=idp&algorithm=RS256&jwks_uri=https://idp.example/jwks".to_owned(),
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
