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
const EC_PUBLIC: &str = include_str!("fixtures/jwt-ec-public.pem");
const EC_PRIVATE: &str = include_str!("fixtures/jwt-ec-private.pem");
const ED_PUBLIC: &str = include_str!("fixtures/jwt-ed25519-public.pem");
const ED_PRIVATE: &str = include_str!("fixtures/jwt-ed25519-private.pem");

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
    // Claim failures answer Kong's map form.
    let g = get(&c, &url, &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!((g.status, g.json()), (401, json!({"exp": "token expired"})));
    let early = hs(
        secret,
        json!({"iss": "hs-issuer", "exp": now() + 300, "nbf": now() + 100}),
    );
    let g = get(&c, &url, &[("authorization", &format!("Bearer {early}"))]).await;
    assert_eq!(
        (g.status, g.json()),
        (401, json!({"nbf": "token not valid yet"}))
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

fn signed(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_verifies_each_algorithm_family_and_kongs_claim_rules() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    post_form(&c, &format!("{admin}/consumers"), "username=multi").await;
    // HS512 with a base64 secret, PS256, ES256 and EdDSA credentials.
    let raw_secret = b"binary\x00secret-binary-secret-0000";
    let b64_secret = base64::engine::general_purpose::STANDARD.encode(raw_secret);
    for cred in [
        json!({"key": "hs512", "algorithm": "HS512", "secret": b64_secret}),
        json!({"key": "ps256", "algorithm": "PS256", "rsa_public_key": PUBLIC}),
        json!({"key": "es256", "algorithm": "ES256", "rsa_public_key": EC_PUBLIC}),
        json!({"key": "ed", "algorithm": "EdDSA", "rsa_public_key": ED_PUBLIC}),
    ] {
        let got = send_json(&c, "POST", &format!("{admin}/consumers/multi/jwt"), &cred).await;
        assert_eq!(got.status, 201, "{}", got.text());
    }
    let got = send_json(
        &c,
        "POST",
        &format!("{admin}/services/s/plugins"),
        &json!({"name": "jwt", "config": {"secret_is_base64": true, "maximum_expiration": 600, "claims_to_verify": ["exp"]}}),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let url = format!("{}/api/x", gw.url());
    let claims = |iss: &str, ttl: i64| json!({"iss": iss, "exp": now() + ttl});
    let bearer = |t: &str| format!("Bearer {t}");
    let tokens = [
        signed(
            Algorithm::HS512,
            &EncodingKey::from_secret(raw_secret),
            claims("hs512", 300),
        ),
        signed(
            Algorithm::PS256,
            &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
            claims("ps256", 300),
        ),
        signed(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            claims("es256", 300),
        ),
        signed(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            claims("ed", 300),
        ),
    ];
    for t in &tokens {
        let g = get(&c, &url, &[("authorization", &bearer(t))]).await;
        assert_eq!(g.status, 200, "{t}: {}", g.text());
        assert_eq!(g.json()["headers"]["x-consumer-username"], "multi");
    }
    // PS256 signed by another RSA key; RS256 (same key) where PS256 is required.
    let forged = signed(
        Algorithm::PS256,
        &EncodingKey::from_rsa_pem(ATTACKER.as_bytes()).unwrap(),
        claims("ps256", 300),
    );
    let g = get(&c, &url, &[("authorization", &bearer(&forged))]).await;
    assert_eq!(
        (g.status, g.json()["message"].as_str()),
        (401, Some("Invalid signature"))
    );
    let wrong_alg = rs(PRIVATE, claims("ps256", 300));
    let g = get(&c, &url, &[("authorization", &bearer(&wrong_alg))]).await;
    assert_eq!(
        (g.status, g.json()["message"].as_str()),
        (401, Some("Invalid algorithm"))
    );
    // maximum_expiration: 600 s at most.
    let long = signed(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        claims("ed", 3600),
    );
    let g = get(&c, &url, &[("authorization", &bearer(&long))]).await;
    assert_eq!(
        (g.status, g.json()),
        (401, json!({"exp": "exceeds maximum allowed expiration"}))
    );
    // The secret is base64: the same bytes used as text do not verify.
    let text = signed(
        Algorithm::HS512,
        &EncodingKey::from_secret(b64_secret.as_bytes()),
        claims("hs512", 300),
    );
    let g = get(&c, &url, &[("authorization", &bearer(&text))]).await;
    assert_eq!(g.status, 401);
}
