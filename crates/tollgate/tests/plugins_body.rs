//! Plugins that read the request body: key-auth with `key_in_body` (form,
//! JSON and multipart bodies, `hide_credentials` rewriting the body) and
//! hmac-auth with `validate_request_body` (Kong's `Digest: SHA-256=…`).
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Digest;
use support::backend::Backend;
use support::client::{created, http1, send};
use support::gateway::Gateway;

async fn consumer_with(c: &support::client::HttpClient, admin: &str, cred: &str, form: &str) {
    created(c, &format!("{admin}/consumers"), "username=alice").await;
    created(c, &format!("{admin}/consumers/alice/{cred}"), form).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_auth_reads_keys_from_form_json_and_multipart_bodies() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/k").await;
    consumer_with(&c, &admin, "key-auth", "key=body-key").await;
    created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=key-auth&config.key_in_body=true&config.key_in_header=false",
    )
    .await;
    let url = format!("{}/k/x", gw.url());
    let form = "application/x-www-form-urlencoded";

    let ok = send(&c, "POST", &url, Some((form, "a=1&apikey=body-key")), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-consumer-username"], "alice");
    // Not hidden: the backend gets the body as sent.
    assert_eq!(ok.json()["body"], "a=1&apikey=body-key");

    let json = send(
        &c,
        "POST",
        &url,
        Some(("application/json", r#"{"apikey":"body-key","n":1}"#)),
        &[],
    )
    .await;
    assert_eq!(json.status, 200, "{}", json.text());

    let multipart =
        "--XyZ\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nbody-key\r\n--XyZ--\r\n";
    let mp = send(
        &c,
        "POST",
        &url,
        Some(("multipart/form-data; boundary=XyZ", multipart)),
        &[],
    )
    .await;
    assert_eq!(mp.status, 200, "{}", mp.text());

    // Wrong key, no key, and a header key while headers are not looked at.
    let wrong = send(&c, "POST", &url, Some((form, "apikey=nope")), &[]).await;
    assert_eq!(
        (wrong.status, wrong.json()["message"].as_str()),
        (401, Some("Unauthorized"))
    );
    let none = send(&c, "POST", &url, Some((form, "a=1")), &[]).await;
    assert_eq!(none.json()["message"], "No API key found in request");
    let header = send(
        &c,
        "POST",
        &url,
        Some((form, "a=1")),
        &[("apikey", "body-key")],
    )
    .await;
    assert_eq!(header.status, 401);
    // A key given twice is refused (Kong's message), in headers or the query.
    let twice = support::client::raw(
        gw.proxy,
        b"GET /k/x?apikey=body-key&apikey=body-key HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(twice.contains("Duplicate API key found"), "{twice}");
    // Text bodies carry no parameters.
    let text = send(
        &c,
        "POST",
        &url,
        Some(("text/plain", "apikey=body-key")),
        &[],
    )
    .await;
    assert_eq!(text.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_auth_hide_credentials_removes_the_key_from_the_body() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/k").await;
    consumer_with(&c, &admin, "key-auth", "key=body-key").await;
    created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=key-auth&config.key_in_body=true&config.hide_credentials=true",
    )
    .await;
    let url = format!("{}/k/x", gw.url());
    let ok = send(
        &c,
        "POST",
        &url,
        Some(("application/x-www-form-urlencoded", "a=x+y&apikey=body-key")),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["body"], "a=x%20y");
    let twice = support::client::raw(
        gw.proxy,
        b"GET /k/x HTTP/1.1\r\nHost: a\r\napikey: body-key\r\napikey: other\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        twice.starts_with("HTTP/1.1 401") && twice.contains("Duplicate API key found"),
        "{twice}"
    );
    assert_eq!(ok.json()["headers"]["content-length"], "7");
    let json = send(
        &c,
        "POST",
        &url,
        Some(("application/json", r#"{"apikey":"body-key","keep":[1,2]}"#)),
        &[],
    )
    .await;
    assert_eq!(json.status, 200, "{}", json.text());
    let forwarded: serde_json::Value =
        serde_json::from_str(json.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(forwarded, serde_json::json!({"keep": [1, 2]}));
}

fn signed(secret: &str, lines: &str) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(lines.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn hmac_auth_validates_the_body_digest() {
    let b = Backend::start("b").await;
    let gw = Gateway::start_sqlite(&[]);
    let c = http1();
    let admin = gw.admin_url();
    support::client::admin_service_with_route(&c, &admin, &b.url(), "/h").await;
    consumer_with(&c, &admin, "hmac-auth", "username=alice&secret=s3cret").await;
    created(
        &c,
        &format!("{admin}/services/s/plugins"),
        "name=hmac-auth&config.validate_request_body=true",
    )
    .await;
    let url = format!("{}/h/upload", gw.url());
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let body = r#"{"amount":10}"#;
    let digest = |b: &str| {
        format!(
            "SHA-256={}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b.as_bytes()))
        )
    };
    let auth = |digest: &str| {
        let sig = signed("s3cret", &format!("date: {date}\ndigest: {digest}"));
        format!(
            r#"hmac username="alice", algorithm="hmac-sha256", headers="date digest", signature="{sig}""#
        )
    };
    let good = digest(body);
    let ok = send(
        &c,
        "POST",
        &url,
        Some(("application/json", body)),
        &[
            ("date", &date),
            ("digest", &good),
            ("authorization", &auth(&good)),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["body"], body);

    // The signature covers the digest, but the body was changed on the way.
    let tampered = send(
        &c,
        "POST",
        &url,
        Some(("application/json", r#"{"amount":9999}"#)),
        &[
            ("date", &date),
            ("digest", &good),
            ("authorization", &auth(&good)),
        ],
    )
    .await;
    assert_eq!(
        (tampered.status, tampered.json()["message"].as_str()),
        (401, Some("HMAC signature does not match"))
    );

    // No Digest header: only an empty body passes.
    let sig = signed("s3cret", &format!("date: {date}"));
    let no_digest = format!(
        r#"hmac username="alice", algorithm="hmac-sha256", headers="date", signature="{sig}""#
    );
    let with_body = send(
        &c,
        "POST",
        &url,
        Some(("application/json", body)),
        &[("date", &date), ("authorization", &no_digest)],
    )
    .await;
    assert_eq!(with_body.status, 401);
    let empty = send(
        &c,
        "GET",
        &url,
        None,
        &[("date", &date), ("authorization", &no_digest)],
    )
    .await;
    assert_eq!(empty.status, 200, "{}", empty.text());
    // @request-target is signed as "method-in-lowercase target".
    let sig = signed(
        "s3cret",
        &format!("@request-target: get /h/upload\ndate: {date}"),
    );
    let target = format!(
        r#"hmac username="alice", algorithm="hmac-sha256", headers="@request-target date", signature="{sig}""#
    );
    let got = send(
        &c,
        "GET",
        &url,
        None,
        &[("date", &date), ("authorization", &target)],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
}
