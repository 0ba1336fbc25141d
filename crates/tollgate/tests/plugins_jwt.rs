//! The jwt plugin on the proxy: HS256 and RS256 credentials created through
//! the Admin API, tokens from the header, query and cookie, and the attack
//! cases (alg none, HS/RS confusion, forged and tampered tokens, expired,
//! not yet valid, unknown issuer).
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use support::backend::Backend;
use support::client::{get, http1, post_form, send_json};
use support::gateway::Gateway;

const PUBLIC: &str = include_str!("fixtures/jwt-rsa-public.pem");
const PRIVATE: &str = include_str!("fixtures/jwt-rsa-private.pem");
const ATTACKER: &str = include_str!("fixtures/jwt-rsa-attacker-private.pem");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs(secret: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs(private: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_accepts_good_tokens_and_refuses_every_attack_case() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=hs-user")
            .await
            .status,
        201
    );
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=rs-user")
            .await
            .status,
        201
    );
    let got = post_form(
        &c,
        &format!("{admin}/consumers/hs-user/jwt"),
        "key=hs-issuer&secret=s3cr3t-s3cr3t-s3cr3t-s3cr3t-0000",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/consumers/rs-user/jwt"),
        &json!({"key": "rs-issuer", "algorithm": "RS256", "rsa_public_key": PUBLIC}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/services/s/plugins"),
        &json!({"name": "jwt", "config": {"claims_to_verify": ["exp", "nbf"], "cookie_names": ["token"]}}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let url = format!("{}/api/x", gw.url());
    let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-0000";
    let fresh = |iss: &str| json!({"iss": iss, "exp": now() + 300, "nbf": now() - 10, "sub": "u1"});

    // Good tokens: HS256 in the Authorization header, RS256 in the query and a cookie.
    let t = hs(secret, fresh("hs-issuer"));
    let ok = get(&c, &url, &[("authorization", &format!("Bearer {t}"))]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "hs-user");
    let t = rs(PRIVATE, fresh("rs-issuer"));
    let ok = get(&c, &format!("{url}?jwt={t}"), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "rs-user");
    assert_eq!(
        get(&c, &url, &[("cookie", &format!("a=b; token={t}"))])
            .await
            .status,
        200
    );

    let refused = |msg: &'static str| {
        move |g: support::client::Got| {
            assert_eq!(g.status, 401, "{}", g.text());
            assert_eq!(g.json()["message"], msg, "{}", g.text());
        }
    };
    // No token.
    refused("Unauthorized")(get(&c, &url, &[]).await);
    // alg: none.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&fresh("hs-issuer"))
    );
    let g = get(&c, &url, &[("authorization", &format!("Bearer {none}"))]).await;
    assert_eq!(g.status, 401, "alg none accepted: {}", g.text());
    // HS/RS confusion: HS256 signed with the RSA public key against an RS256 credential.
    let confused = hs(PUBLIC, fresh("rs-issuer"));
    refused("Invalid algorithm")(
        get(
            &c,
            &url,
            &[("authorization", &format!("Bearer {confused}"))],
        )
        .await,
    );
    // Forged: RS256 signed by another key.
    let forged = rs(ATTACKER, fresh("rs-issuer"));
    refused("Invalid signature")(
        get(&c, &url, &[("authorization", &format!("Bearer {forged}"))]).await,
    );
    // Tampered payload, original signature.
    let good = hs(secret, fresh("hs-issuer"));
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = fresh("hs-issuer");
    evil["sub"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    refused("Invalid signature")(
        get(
            &c,
            &url,
            &[("authorization", &format!("Bearer {tampered}"))],
        )
        .await,
    );
    // Expired, and not valid yet.
    let expired = hs(
        secret,
        json!({"iss": "hs-issuer", "exp": now() - 10, "nbf": now() - 100}),
    );
    refused("token expired")(
        get(&c, &url, &[("authorization", &format!("Bearer {expired}"))]).await,
    );
    let early = hs(
        secret,
        json!({"iss": "hs-issuer", "exp": now() + 300, "nbf": now() + 100}),
    );
    refused("token not valid yet")(
        get(&c, &url, &[("authorization", &format!("Bearer {early}"))]).await,
    );
    // Unknown issuer; missing issuer.
    let stranger = hs(secret, fresh("nobody"));
    refused("No credentials found for given 'iss'")(
        get(
            &c,
            &url,
            &[("authorization", &format!("Bearer {stranger}"))],
        )
        .await,
    );
    let anonymous = hs(secret, json!({"exp": now() + 300, "nbf": now()}));
    refused("No mandatory 'iss' in claims")(
        get(
            &c,
            &url,
            &[("authorization", &format!("Bearer {anonymous}"))],
        )
        .await,
    );
    // Garbage.
    refused("Bad token; invalid JSON")(
        get(&c, &url, &[("authorization", "Bearer not.a.token")]).await,
    );
}
