//! Plugins running on the proxy: key-auth, basic-auth, acl and
//! request-termination, configured through the Admin API (real SQLite file)
//! or a declarative file, with Kong's statuses, bodies and headers.
#![allow(clippy::unwrap_used)]

mod support;

use support::backend::Backend;
use support::client::{get, http1, post_form};
use support::gateway::Gateway;

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_lets_admin_with_mypassword_through_and_nobody_else() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=admin")
            .await
            .status,
        201
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/consumers/admin/basic-auth"),
            "username=admin&password=mypassword"
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services/s/plugins"),
            "name=basic-auth"
        )
        .await
        .status,
        201
    );
    let url = format!("{}/api/x", gw.url());

    // admin:mypassword
    let ok = get(
        &c,
        &url,
        &[("authorization", "Basic YWRtaW46bXlwYXNzd29yZA==")],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "admin");
    // Kong: basic-auth identifies the credential by its username.
    assert_eq!(ok.json()["headers"]["x-credential-identifier"], "admin");
    // Cached verification: the second request is as good as the first.
    assert_eq!(
        get(
            &c,
            &url,
            &[("authorization", "Basic YWRtaW46bXlwYXNzd29yZA==")]
        )
        .await
        .status,
        200
    );

    // admin:wrong
    let bad = get(&c, &url, &[("authorization", "Basic YWRtaW46d3Jvbmc=")]).await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["message"], "Unauthorized");
    assert_eq!(
        bad.header("www-authenticate"),
        Some("Basic realm=\"service\"")
    );
    let none = get(&c, &url, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Basic realm=\"service\"")
    );
    assert_eq!(
        b.hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "refused requests reached the backend"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn key_auth_acl_and_consumer_scoped_plugins() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    for (user, key, group) in [("alice", "alice-key", "ops"), ("bob", "bob-key", "dev")] {
        assert_eq!(
            post_form(
                &c,
                &format!("{admin}/consumers"),
                &format!("username={user}")
            )
            .await
            .status,
            201
        );
        assert_eq!(
            post_form(
                &c,
                &format!("{admin}/consumers/{user}/key-auth"),
                &format!("key={key}")
            )
            .await
            .status,
            201
        );
        assert_eq!(
            post_form(
                &c,
                &format!("{admin}/consumers/{user}/acls"),
                &format!("group={group}")
            )
            .await
            .status,
            201
        );
    }
    let got = post_form(
        &c,
        &format!("{admin}/routes/r/plugins"),
        "name=key-auth&config.hide_credentials=true",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let url = format!("{}/api/x", gw.url());

    let none = get(&c, &url, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["message"], "No API key found in request");
    let wrong = get(&c, &url, &[("apikey", "nope")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["message"], "Unauthorized");
    let ok = get(&c, &url, &[("apikey", "alice-key")]).await;
    assert_eq!(ok.status, 200);
    let h = &ok.json()["headers"];
    assert_eq!(h["x-consumer-username"], "alice");
    assert!(
        h.get("apikey").is_none(),
        "hide_credentials left the key: {h}"
    );
    assert_eq!(
        get(&c, &format!("{url}?apikey=bob-key"), &[]).await.status,
        200
    );

    // acl: only ops.
    assert_eq!(
        post_form(
            &c,
            &format!("{admin}/services/s/plugins"),
            "name=acl&config.allow=ops"
        )
        .await
        .status,
        201
    );
    assert_eq!(
        get(&c, &url, &[("apikey", "alice-key")]).await.json()["headers"]["x-consumer-groups"],
        "ops"
    );
    let denied = get(&c, &url, &[("apikey", "bob-key")]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["message"], "You cannot consume this service");

    // A plugin scoped to one consumer applies to that consumer only.
    let got = post_form(
        &c,
        &format!("{admin}/consumers/alice/plugins"),
        "name=request-termination&config.status_code=429&config.message=slow down",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let t = get(&c, &url, &[("apikey", "alice-key")]).await;
    assert_eq!(t.status, 429);
    assert_eq!(t.json()["message"], "slow down");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anonymous_consumer_that_does_not_exist_is_a_500() {
    let b = Backend::start("b").await;
    let cfg = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {}\n  routes: [{{name: r, paths: [/]}}]\n  plugins: [{{name: key-auth, config: {{anonymous: ghost}}}}]\n",
        b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let got = get(&http1(), &format!("{}/x", gw.url()), &[]).await;
    assert_eq!(got.status, 500, "{}", got.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_from_a_declarative_file_run_too() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins: [{{name: key-auth}}]
consumers:
- username: carol
  keyauth_credentials: [{{key: carol-key}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    assert_eq!(get(&c, &format!("{}/x", gw.url()), &[]).await.status, 401);
    let ok = get(&c, &format!("{}/x", gw.url()), &[("apikey", "carol-key")]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "carol");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_anonymous_every_auth_plugin_must_pass_and_identity_headers_cannot_be_stripped() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins: [{{name: key-auth}}, {{name: basic-auth}}]
consumers:
- username: dora
  keyauth_credentials: [{{key: dora-key}}]
  basicauth_credentials: [{{username: dora, password: pw}}]
  jwt_secrets: [{{key: no-secret-iss, algorithm: HS256}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let url = format!("{}/x", gw.url());
    // key alone is not enough when basic-auth is also on the route (no anonymous).
    assert_eq!(get(&c, &url, &[("apikey", "dora-key")]).await.status, 401);
    // dora:pw
    let both = get(
        &c,
        &url,
        &[
            ("apikey", "dora-key"),
            ("authorization", "Basic ZG9yYTpwdw=="),
            ("connection", "x-consumer-username, x-consumer-id"),
        ],
    )
    .await;
    assert_eq!(both.status, 200, "{}", both.text());
    // A client's Connection header cannot delete what the auth plugins set.
    assert_eq!(both.json()["headers"]["x-consumer-username"], "dora");

    // Identity headers sent by the client are replaced, or removed when
    // the consumer has no such value.
    let spoofed = get(
        &c,
        &url,
        &[
            ("apikey", "dora-key"),
            ("authorization", "Basic ZG9yYTpwdw=="),
            ("x-consumer-username", "admin"),
            ("x-consumer-custom-id", "root"),
            ("x-anonymous-consumer", "false"),
            ("x-credential-identifier", "forged"),
        ],
    )
    .await;
    assert_eq!(spoofed.status, 200, "{}", spoofed.text());
    let h = &spoofed.json()["headers"];
    assert_eq!(h["x-consumer-username"], "dora");
    assert!(h.get("x-consumer-custom-id").is_none(), "{h}");
    assert!(h.get("x-anonymous-consumer").is_none(), "{h}");
    assert_ne!(h["x-credential-identifier"], "forged");
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_credential_without_secret_never_verifies() {
    use base64::Engine;
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes: [{{name: r, paths: [/]}}]
  plugins: [{{name: jwt}}]
consumers:
- username: eve
  jwt_secrets: [{{key: empty-iss, algorithm: HS256}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    // HS256 over an empty key.
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let msg = format!(
        "{}.{}",
        enc(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        enc(serde_json::json!({"iss": "empty-iss"}))
    );
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"").unwrap();
    m.update(msg.as_bytes());
    let token = format!(
        "{msg}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    );
    let got = get(
        &http1(),
        &format!("{}/x", gw.url()),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(got.status, 401, "{}", got.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn ordering_moves_a_plugin_ahead_of_the_priority_order() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - name: plain
    paths: [/plain]
    plugins:
    - {{name: key-auth}}
    - {{name: request-termination, config: {{status_code: 503, message: maintenance}}}}
  - name: ordered
    paths: [/ordered]
    plugins:
    - {{name: key-auth}}
    - name: request-termination
      config: {{status_code: 503, message: maintenance}}
      ordering: {{before: {{access: [key-auth]}}}}
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    // Priority order: key-auth (1250) answers first.
    assert_eq!(
        get(&c, &format!("{}/plain", gw.url()), &[]).await.status,
        401
    );
    // `ordering` runs request-termination (2) before key-auth.
    let got = get(&c, &format!("{}/ordered", gw.url()), &[]).await;
    assert_eq!(
        (got.status, got.json()["message"].as_str().unwrap()),
        (503, "maintenance")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_a_ttl_stops_working_when_it_expires() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/api").await;
    assert_eq!(
        post_form(&c, &format!("{admin}/consumers"), "username=tmp")
            .await
            .status,
        201
    );
    let got = post_form(
        &c,
        &format!("{admin}/consumers/tmp/key-auth"),
        "key=short-lived&ttl=2",
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.json()["ttl"], 2);
    assert_eq!(
        post_form(&c, &format!("{admin}/services/s/plugins"), "name=key-auth")
            .await
            .status,
        201
    );
    let url = format!("{}/api/x", gw.url());
    assert_eq!(
        get(&c, &url, &[("apikey", "short-lived")]).await.status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        get(&c, &url, &[("apikey", "short-lived")]).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_on_preflight_false_lets_options_requests_through_key_auth_and_jwt() {
    let b = Backend::start("b").await;
    let cfg = format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: {u}
  routes:
  - name: key-default
    paths: [/key-default]
    plugins: [{{name: key-auth}}]
  - name: key-open
    paths: [/key-open]
    plugins: [{{name: key-auth, config: {{run_on_preflight: false}}}}]
  - name: jwt-open
    paths: [/jwt-open]
    plugins: [{{name: jwt, config: {{run_on_preflight: false}}}}]
"#,
        u = b.url()
    );
    let gw = Gateway::start(&cfg, &[]);
    let c = http1();
    let preflight = |path: &'static str| {
        let (c, url) = (c.clone(), format!("{}{path}", gw.url()));
        async move {
            support::client::send(
                &c,
                "OPTIONS",
                &url,
                None,
                &[
                    ("origin", "https://app.example"),
                    ("access-control-request-method", "POST"),
                ],
            )
            .await
            .status
        }
    };
    // Kong's default: preflights must authenticate too.
    assert_eq!(preflight("/key-default").await, 401);
    assert_eq!(preflight("/key-open").await, 200);
    assert_eq!(preflight("/jwt-open").await, 200);
    // Other methods still need credentials.
    assert_eq!(
        get(&c, &format!("{}/key-open", gw.url()), &[]).await.status,
        401
    );
    assert_eq!(
        get(&c, &format!("{}/jwt-open", gw.url()), &[]).await.status,
        401
    );
}
