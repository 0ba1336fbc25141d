//! oauth2 on the proxy: the token endpoint (client credentials, password and
//! refresh grants, Kong's error bodies), bearer-token authentication with
//! scopes and expiry, and tokens kept in the SQLite store across a restart.
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use support::backend::Backend;
use support::client::{created, get, http1, send, Got, HttpClient};
use support::gateway::Gateway;

const FORM: &str = "application/x-www-form-urlencoded";
const HTTPS: (&str, &str) = ("x-forwarded-proto", "https");

async fn setup(c: &HttpClient, admin: &str, backend: &str, plugin: &str) {
    support::client::admin_service_with_route(c, admin, backend, "/api").await;
    created(c, &format!("{admin}/consumers"), "username=alice").await;
    created(
        c,
        &format!("{admin}/consumers/alice/oauth2"),
        "name=app&client_id=cid&client_secret=csecret&redirect_uris[]=https://app.example/cb",
    )
    .await;
    created(
        c,
        &format!("{admin}/services/s/plugins"),
        &format!("name=oauth2&config.accept_http_if_already_terminated=true&{plugin}"),
    )
    .await;
}

async fn token(c: &HttpClient, gw: &Gateway, form: &str) -> Got {
    let url = format!("{}/api/oauth2/token", gw.url());
    send(c, "POST", &url, Some((FORM, form)), &[HTTPS]).await
}

fn error_of(got: &Got) -> (u16, String, String) {
    let j = got.json();
    (
        got.status,
        j["error"].as_str().unwrap_or("").to_owned(),
        j["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_grants_issue_tokens_that_authenticate_with_their_scopes() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[("TOLLGATE_TRUSTED_IPS", "127.0.0.1")]);
    let c = http1();
    let admin = gw.admin_url();
    setup(
        &c,
        &admin,
        &b.url(),
        "config.enable_client_credentials=true&config.enable_password_grant=true\
         &config.scopes[]=read&config.scopes[]=write&config.provision_key=pk",
    )
    .await;
    let api = format!("{}/api/x", gw.url());

    // The token endpoint wants HTTPS (here: a trusted proxy that terminated it).
    let plain = send(
        &c,
        "POST",
        &format!("{}/api/oauth2/token", gw.url()),
        Some((
            FORM,
            "grant_type=client_credentials&client_id=cid&client_secret=csecret",
        )),
        &[],
    )
    .await;
    assert_eq!(
        error_of(&plain),
        (400, "access_denied".into(), "You must use HTTPS".into())
    );

    // Client credentials: a bearer token, no refresh token.
    let got = token(
        &c,
        &gw,
        "grant_type=client_credentials&client_id=cid&client_secret=csecret&scope=read",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("cache-control"), Some("no-store"));
    let j = got.json();
    assert_eq!(j["token_type"], "bearer");
    assert_eq!(j["expires_in"], 7200);
    assert!(j.get("refresh_token").is_none(), "{j}");
    let cc = j["access_token"].as_str().unwrap().to_owned();
    let ok = get(&c, &api, &[("authorization", &bearer(&cc))]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let h = &ok.json()["headers"];
    assert_eq!(h["x-consumer-username"], "alice");
    assert_eq!(h["x-credential-identifier"], "cid");
    assert_eq!(h["x-authenticated-scope"], "read");
    // The token in the query string works too.
    let q = get(&c, &format!("{api}?access_token={cc}"), &[]).await;
    assert_eq!(q.status, 200, "{}", q.text());

    // Password grant: a user, scopes, and a refresh token.
    let got = token(
        &c,
        &gw,
        "grant_type=password&client_id=cid&client_secret=csecret&provision_key=pk\
         &authenticated_userid=u42&scope=read%20write",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let j = got.json();
    let (access, refresh) = (
        j["access_token"].as_str().unwrap().to_owned(),
        j["refresh_token"].as_str().unwrap().to_owned(),
    );
    let ok = get(&c, &api, &[("authorization", &bearer(&access))]).await;
    assert_eq!(ok.json()["headers"]["x-authenticated-userid"], "u42");
    assert_eq!(ok.json()["headers"]["x-authenticated-scope"], "read write");

    // Refresh: a new pair; the old access and refresh tokens stop working.
    let got = token(
        &c,
        &gw,
        &format!(
            "grant_type=refresh_token&client_id=cid&client_secret=csecret&refresh_token={refresh}"
        ),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let renewed = got.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(renewed, access);
    let ok = get(&c, &api, &[("authorization", &bearer(&renewed))]).await;
    assert_eq!(ok.json()["headers"]["x-authenticated-userid"], "u42");
    let old = get(&c, &api, &[("authorization", &bearer(&access))]).await;
    assert_eq!(
        error_of(&old),
        (
            401,
            "invalid_token".into(),
            "The access token is invalid or has expired".into()
        )
    );
    assert!(old
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let again = token(
        &c,
        &gw,
        &format!(
            "grant_type=refresh_token&client_id=cid&client_secret=csecret&refresh_token={refresh}"
        ),
    )
    .await;
    assert_eq!(
        error_of(&again),
        (
            400,
            "invalid_request".into(),
            "Invalid refresh_token".into()
        )
    );

    // Client authentication through HTTP Basic.
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let url = format!("{}/api/oauth2/token", gw.url());
    let got = send(
        &c,
        "POST",
        &url,
        Some((FORM, "grant_type=client_credentials")),
        &[HTTPS, ("authorization", &basic("cid", "csecret"))],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = send(
        &c,
        "POST",
        &url,
        Some((FORM, "grant_type=client_credentials")),
        &[HTTPS, ("authorization", &basic("cid", "wrong"))],
    )
    .await;
    assert_eq!(
        error_of(&got),
        (
            401,
            "invalid_client".into(),
            "Invalid client authentication".into()
        )
    );
    assert_eq!(
        got.header("www-authenticate"),
        Some("Basic realm=\"OAuth2.0\"")
    );

    // Kong's errors at the token endpoint.
    for (form, want) in [
        (
            "grant_type=client_credentials&client_id=cid&client_secret=wrong",
            (400, "invalid_client", "Invalid client authentication"),
        ),
        (
            "grant_type=client_credentials&client_id=nobody&client_secret=csecret",
            (400, "invalid_client", "Invalid client authentication"),
        ),
        (
            "grant_type=authorization_code&client_id=cid&client_secret=csecret",
            (400, "unsupported_grant_type", "Invalid grant_type"),
        ),
        (
            "grant_type=client_credentials&client_id=cid&client_secret=csecret&scope=admin",
            (400, "invalid_scope", "\"admin\" is an invalid scope"),
        ),
        (
            "grant_type=password&client_id=cid&client_secret=csecret&provision_key=no&authenticated_userid=u",
            (400, "invalid_provision_key", "Invalid Kong provision_key"),
        ),
        (
            "grant_type=password&client_id=cid&client_secret=csecret&provision_key=pk",
            (400, "invalid_request", "Missing authenticated_userid parameter"),
        ),
        (
            "grant_type=client_credentials&client_id=cid&client_secret=csecret&redirect_uri=https://evil.example/",
            (
                400,
                "invalid_request",
                "Invalid redirect_uri that does not match with any redirect_uri created with the application",
            ),
        ),
    ] {
        let got = token(&c, &gw, form).await;
        assert_eq!(
            error_of(&got),
            (want.0, want.1.to_owned(), want.2.to_owned()),
            "{form}"
        );
    }
    // The endpoint takes POST only.
    let got = get(&c, &format!("{}/api/oauth2/token", gw.url()), &[HTTPS]).await;
    assert_eq!(got.status, 405);

    // Requests without a usable token.
    let none = get(&c, &api, &[]).await;
    assert_eq!(
        error_of(&none),
        (
            401,
            "invalid_request".into(),
            "The access token is missing".into()
        )
    );
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"service\"")
    );
    let forged = get(&c, &api, &[("authorization", "Bearer not-a-token")]).await;
    assert_eq!(forged.status, 401);
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_tokens_expire_and_survive_a_restart() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[("TOLLGATE_TRUSTED_IPS", "127.0.0.1")]);
    let c = http1();
    let admin = gw.admin_url();
    setup(
        &c,
        &admin,
        &b.url(),
        "config.enable_client_credentials=true&config.token_expiration=2",
    )
    .await;
    let form = "grant_type=client_credentials&client_id=cid&client_secret=csecret";
    let short = token(&c, &gw, form).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = format!("{}/api/x", gw.url());
    assert_eq!(
        get(&c, &api, &[("authorization", &bearer(&short))])
            .await
            .status,
        200
    );
    // A second token from a plugin that never expires them.
    let plugins = get(&c, &format!("{admin}/services/s/plugins"), &[]).await;
    let id = plugins.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let got = send(
        &c,
        "PATCH",
        &format!("{admin}/plugins/{id}"),
        Some((FORM, "config.token_expiration=0")),
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let long = token(&c, &gw, form).await;
    assert!(long.json().get("expires_in").is_none(), "{}", long.text());
    let long = long.json()["access_token"].as_str().unwrap().to_owned();

    let gw = gw.kill9_and_restart();
    let api = format!("{}/api/x", gw.url());
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let expired = get(&c, &api, &[("authorization", &bearer(&short))]).await;
    assert_eq!(
        error_of(&expired),
        (
            401,
            "invalid_token".into(),
            "The access token is invalid or has expired".into()
        )
    );
    let kept = get(&c, &api, &[("authorization", &bearer(&long))]).await;
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(kept.json()["headers"]["x-consumer-username"], "alice");
}
